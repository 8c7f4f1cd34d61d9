"""Patching metrics: what a patched run is scored by.

A metric turns model logits into one number per example. The built-in metrics read one position
per example (by default the last real token, so left and right padding both work) and declare
which vocabulary rows they need, so a patching sweep unembeds only those rows at that position:

- :func:`logit_diff`: logit of the correct answer minus the logit of the wrong one;
- :func:`logprob`: log-probability of the answer;
- :func:`kl_to_clean`: KL divergence from the clean run's next-token distribution (0 when
  the patched run predicts exactly what the clean run predicts).

Any callable ``metric(logits) -> tensor[batch]`` also works (or ``metric(logits,
attention_mask)``, which also gets the batch's attention mask, to find each example's last real
token). Before the sweep, the entries it reads are found and proved on random logits (one
position per example and a few vocabulary rows, as ``logits[:, -1, a] - logits[:, -1, b]``
reads): then the sweep computes only those, as for the built-in metrics, and the function gets
logits that are NaN elsewhere. A function that reads more (a softmax over all positions, a
data-dependent position) gets the full logits; a function that reads a padding position is
warned about.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.errors import CaptureError
from .metric_reads import Reads, call_metric, infer_reads, sparse_logits, takes_mask


class MetricError(CaptureError):
    """A metric that cannot be evaluated on these inputs; the message says what to fix."""


@dataclass
class Metric:
    """A score per example computed from logits at one position per example.

    Subclasses implement :meth:`score`. ``position`` is ``"last"`` (the last real token of
    each example, from the attention mask), an int (the same position for every example, negative
    counts from the end), or a sequence with one position per example.
    """

    name: str = "metric"
    position: int | str | Sequence[int] = "last"
    #: Higher means more like the clean run (logit difference, log-prob); False for distances.
    higher_is_clean: bool = True
    positions_: torch.Tensor | None = field(default=None, init=False, repr=False)

    def rows(self) -> torch.Tensor | None:
        """Return the vocabulary rows this metric reads, or None for all of them."""
        return None

    @property
    def reads_all_logits(self) -> bool:
        """Whether the metric needs the full logits ``[batch, pos, vocab]`` (a function whose
        reads are not known); else one position per example, :meth:`rows` of the vocabulary."""
        return False

    def check_vocab(self, vocab_size: int) -> None:
        """Raise :class:`MetricError` if an answer token is outside the vocabulary."""
        rows = self.rows()
        if (
            rows is not None
            and rows.numel()
            and (int(rows.min()) < 0 or int(rows.max()) >= vocab_size)
        ):
            bad = sorted({int(r) for r in rows.tolist() if not 0 <= r < vocab_size})
            raise MetricError(
                f"answer token ids {bad} are outside the model's vocabulary (0..{vocab_size - 1}); "
                "check the tokenizer that produced them"
            )

    def answers(self) -> dict[str, torch.Tensor]:
        """Return the metric's answer token ids by name (one id, or one per example)."""
        return {}

    def check_batch(self, batch: int) -> None:
        """Raise :class:`MetricError` unless each answer list has one id or one per example."""
        for name, ids in self.answers().items():
            if ids.numel() not in (1, batch):
                raise MetricError(
                    f"{self.name}: {ids.numel()} {name + ' ' if name else ''}answer ids for a "
                    f"batch of {batch} examples; give one id for every example, or one per "
                    f"example ({batch})"
                )

    def resolve_positions(self, attention_mask: torch.Tensor) -> torch.Tensor:
        """Return (and keep) the position each example is scored at, from its attention mask."""
        batch, length = attention_mask.shape
        if self.position == "last":
            # The last real token: the highest index whose mask is 1 (left or right padding).
            idx = torch.arange(length).expand(batch, length)
            pos = (
                torch.where(attention_mask.bool(), idx, torch.full_like(idx, -1)).max(dim=1).values
            )
            if bool((pos < 0).any()):
                raise MetricError("an example has no real tokens (its attention mask is all 0)")
        elif isinstance(self.position, int):
            if not -length <= self.position < length:
                raise MetricError(f"metric position {self.position} is outside the {length} tokens")
            pos = torch.full((batch,), self.position % length)
        else:
            pos = torch.as_tensor(list(self.position))
            if pos.shape != (batch,) or bool((pos < 0).any()) or bool((pos >= length).any()):
                raise MetricError(
                    f"metric positions must be {batch} indices in 0..{length - 1}, "
                    f"got {pos.tolist()}"
                )
        self.positions_ = pos.long()
        return self.positions_

    def score(
        self, logits: torch.Tensor, examples: torch.Tensor, clean: torch.Tensor | None
    ) -> torch.Tensor:
        """Return the metric per row.

        Args:
            logits: ``[rows, V]``: logits at each row's scored position, restricted to
                :meth:`rows` when that is not None (in that order).
            examples: ``[rows]``: which example of the batch each row is a copy of.
            clean: ``[batch, vocab]`` clean-run log-probabilities at the scored positions
                (given to metrics that compare to the clean run), or None.
        """
        raise NotImplementedError

    def needs_clean_distribution(self) -> bool:
        """Return True when :meth:`score` compares to the clean run's distribution."""
        return False


def _answers(value: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(value)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise MetricError(f"{name} must be token ids (integers), got {t.dtype}")
    if t.ndim > 1:
        raise MetricError(
            f"{name} must be one token id or one per example, got shape {tuple(t.shape)}"
        )
    return t.long().reshape(-1)


@dataclass
class LogitDiff(Metric):
    """Logit of the correct answer minus the logit of the wrong answer, per example."""

    correct: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    wrong: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    def rows(self) -> torch.Tensor:
        rows: torch.Tensor = torch.unique(torch.cat([self.correct, self.wrong]))
        return rows

    def answers(self) -> dict[str, torch.Tensor]:
        return {"correct": self.correct, "wrong": self.wrong}

    def score(
        self, logits: torch.Tensor, examples: torch.Tensor, clean: torch.Tensor | None
    ) -> torch.Tensor:
        rows = self.rows()
        col = {int(r): i for i, r in enumerate(rows.tolist())}
        correct = _per_example(self.correct, examples)
        wrong = _per_example(self.wrong, examples)
        c = torch.tensor([col[int(t)] for t in correct.tolist()], dtype=torch.long)
        w = torch.tensor([col[int(t)] for t in wrong.tolist()], dtype=torch.long)
        n = torch.arange(logits.shape[0])
        return logits[n, c] - logits[n, w]


@dataclass
class LogProb(Metric):
    """Log-probability of the answer token, per example (needs the whole vocabulary row)."""

    answer: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    def answers(self) -> dict[str, torch.Tensor]:
        return {"": self.answer}

    def score(
        self, logits: torch.Tensor, examples: torch.Tensor, clean: torch.Tensor | None
    ) -> torch.Tensor:
        answer = _per_example(self.answer, examples)
        return logits.float().log_softmax(-1)[torch.arange(logits.shape[0]), answer]

    def check_vocab(self, vocab_size: int) -> None:
        if self.answer.numel() and (
            int(self.answer.min()) < 0 or int(self.answer.max()) >= vocab_size
        ):
            raise MetricError(
                f"answer token ids {self.answer.tolist()} are outside the vocabulary "
                f"(0..{vocab_size - 1})"
            )


@dataclass
class KLToClean(Metric):
    """KL(clean || patched) of the next-token distributions at the scored position."""

    def __post_init__(self) -> None:
        self.higher_is_clean = False

    def needs_clean_distribution(self) -> bool:
        return True

    def score(
        self, logits: torch.Tensor, examples: torch.Tensor, clean: torch.Tensor | None
    ) -> torch.Tensor:
        if clean is None:
            raise MetricError("kl_to_clean needs the clean run's distribution")
        logp = logits.float().log_softmax(-1)
        ref = clean[examples]
        return (ref.exp() * (ref - logp)).sum(-1)


@dataclass
class CallableMetric(Metric):
    """A user function ``metric(logits [batch, pos, vocab]) -> [batch]``, or
    ``metric(logits, attention_mask)`` when it takes a second argument.

    Before a sweep, :meth:`infer` finds which position of each example and which vocabulary
    rows the function reads (:mod:`~interp_magics.patching.metric_reads`); when that is proved,
    the sweep unembeds only those and reuses unchanged prefixes, as for the built-in metrics,
    and the function gets logits that are NaN everywhere it does not read.
    """

    fn: Callable[..., torch.Tensor] | None = None
    position: int | str | Sequence[int] = "all"
    reads_: Reads | None = field(default=None, init=False, repr=False)
    mask_: torch.Tensor | None = field(default=None, init=False, repr=False)
    shape_: tuple[int, int] = field(default=(0, 0), init=False, repr=False)  # (length, vocab)
    with_mask_: bool | None = field(default=None, init=False, repr=False)

    @property
    def reads_all_logits(self) -> bool:
        return self.reads_ is None

    def rows(self) -> torch.Tensor | None:
        return None if self.reads_ is None else self.reads_.rows

    def infer(self, attention_mask: torch.Tensor, vocab: int) -> None:
        """Find which logits the function reads on this batch (see :mod:`.metric_reads`), and
        warn when it reads a padding position."""
        assert self.fn is not None
        self.mask_ = attention_mask.cpu()
        self.shape_ = (int(attention_mask.shape[1]), vocab)
        self.reads_ = infer_reads(self.fn, self.mask_, vocab)
        if self.reads_ is None:
            return
        index = torch.arange(attention_mask.shape[0])
        padded = (self.mask_[index, self.reads_.positions] == 0).nonzero().flatten()
        if padded.numel():
            first = int(padded[0])
            warnings.warn(
                f"{self.name} reads position {int(self.reads_.positions[first])} of example "
                f"{first}, which is padding ({padded.numel()} of {len(index)} examples read a "
                "pad): score the last real token, e.g. patching.logit_diff(...) (it reads the "
                "last real token of each example), or write metric(logits, attention_mask) and "
                "index with attention_mask.sum(1) - 1",
                stacklevel=4,
            )

    def resolve_positions(self, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.reads_ is not None:
            self.positions_ = self.reads_.positions.clone()
        else:  # the function sees every position; nothing to resolve
            self.positions_ = torch.full((attention_mask.shape[0],), -1)
        return self.positions_

    def score(
        self, logits: torch.Tensor, examples: torch.Tensor, clean: torch.Tensor | None
    ) -> torch.Tensor:
        assert self.fn is not None
        # Patched copies are stacked as consecutive blocks of the batch; the function is called
        # once per block, so it always sees the batch it was written for (per-example answers).
        batch = int(examples.max()) + 1 if examples.numel() else 0
        if batch and logits.shape[0] % batch == 0 and logits.shape[0] > batch:
            return torch.cat(
                [self.score(part, examples[:batch], clean) for part in logits.split(batch)]  # type: ignore[no-untyped-call]
            )
        mask = self.mask_
        rows_mask = None if mask is None else mask.to(logits.device)[examples]
        if self.reads_ is not None:
            assert rows_mask is not None
            here = Reads(self.reads_.positions.to(logits.device)[examples], self.reads_.rows)
            length, vocab = self.shape_
            logits = sparse_logits(logits, here, logits.shape[0], length, vocab)
        if rows_mask is None:
            rows_mask = torch.ones(logits.shape[:2], dtype=torch.long, device=logits.device)
        if self.with_mask_ is None:  # read the signature once, not once per patched block
            self.with_mask_ = takes_mask(self.fn)
        out = call_metric(self.fn, logits, rows_mask, self.with_mask_)
        if out.shape != (logits.shape[0],):
            raise MetricError(
                f"the metric returned shape {tuple(out.shape)} for {logits.shape[0]} examples; "
                "it must "
                "return one number per example (a tensor of shape [batch]), e.g. "
                "logits[:, -1, a] - logits[:, -1, b] rather than its mean"
            )
        if self.reads_ is not None and not bool(torch.isfinite(out).all()):
            raise MetricError(
                f"{self.name} read logits it did not read when it was checked before the sweep "
                "(the result is NaN where only those were computed); make it read the same "
                "position and vocabulary rows for any logits, or compute the score from "
                "logits[:, position, ids] directly"
            )
        if self.reads_ is not None:
            return out.float().clone()  # it may be a view of the reused logits buffer
        return out.float()


def _per_example(tokens: torch.Tensor, examples: torch.Tensor) -> torch.Tensor:
    return tokens[examples] if tokens.numel() > 1 else tokens.expand(examples.shape[0])


def logit_diff(
    correct: Any, wrong: Any, *, position: int | str | Sequence[int] = "last"
) -> LogitDiff:
    """Return the logit-difference metric: ``logit[correct] - logit[wrong]`` per example.

    ``correct`` and ``wrong`` are one token id each or one per example.
    """
    c, w = _answers(correct, "correct"), _answers(wrong, "wrong")
    if c.numel() != w.numel() and 1 not in (c.numel(), w.numel()):
        raise MetricError(f"{c.numel()} correct answers but {w.numel()} wrong ones")
    return LogitDiff(name="logit difference", position=position, correct=c, wrong=w)


def logprob(answer: Any, *, position: int | str | Sequence[int] = "last") -> LogProb:
    """Return the metric ``log p(answer)`` per example at the scored position."""
    return LogProb(
        name="log-probability of the answer", position=position, answer=_answers(answer, "answer")
    )


def kl_to_clean(*, position: int | str | Sequence[int] = "last") -> KLToClean:
    """Return the metric ``KL(clean || patched)`` of next-token distributions per example."""
    return KLToClean(name="KL divergence to the clean run", position=position)


def as_metric(metric: Any) -> Metric:
    """Return ``metric`` as a :class:`Metric` (wrapping a plain callable)."""
    if isinstance(metric, Metric):
        return metric
    if callable(metric):
        name = getattr(metric, "__name__", "metric")
        return CallableMetric(name=name if name != "<lambda>" else "custom metric", fn=metric)
    raise MetricError(
        f"metric must be a Metric (patching.logit_diff(...), logprob(...), kl_to_clean()) or a "
        f"function of the logits, not {type(metric).__name__}"
    )
