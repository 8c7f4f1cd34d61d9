"""What the logit lens and the tuned lens return: :class:`LensResult`.

Tensors with labelled axes ``(layer, example, position, rank)``: each layer's top-k tokens and
their probabilities, each layer's entropy and KL divergence from the final layer, and, when an
answer was given, its log-probability and rank at every layer (the rank trajectory). A tidy
DataFrame, a trajectory table per example, a PNG grid and a text summary show it without a
widget; in a notebook it shows as the ``LensView`` widget (``WIDGET``, looked up lazily by
:class:`~interp_magics.core.display.WidgetDisplay`), whose bundle carries the PNG and text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..core.display import WidgetDisplay
from .inputs import LensError, token_labels

if TYPE_CHECKING:
    import pandas as pd


@dataclass(repr=False)
class LensResult(WidgetDisplay):
    """Each residual stream decoded by the model's own readout (logit lens) or a tuned lens.

    Attributes:
        method: ``"logit lens"`` or ``"tuned lens"``.
        model: the model's class name.
        layers: residual-stream indices read: 0 is the embeddings (the first block's input),
            ``l`` the input of block ``l``, ``n_layers`` the last block's output.
        layer_labels: ``"embed"``, ``"L0"`` (the output of block 0), ...
        positions: the absolute token positions kept.
        top_ids, top_probs: ``[layer, example, position, k]``: the k most probable tokens.
        entropy: ``[layer, example, position]`` entropy of each decoded distribution (nats).
        kl_to_final: ``[layer, example, position]`` KL(final layer || this layer) (nats).
        answer: ``[example]`` answer token ids, or None.
        answer_logprob, answer_rank: ``[layer, example, position]`` the answer's
            log-probability and rank (0 = the top token; ties rank with the answer).
        input_ids, attention_mask: ``[example, token]`` the inputs.
        tokenizer: used for token labels (None: ids are shown).
    """

    WIDGET = "LensView"

    method: str
    model: str
    n_layers: int
    layers: tuple[int, ...]
    layer_labels: list[str]
    positions: tuple[int, ...]
    top_ids: torch.Tensor
    top_probs: torch.Tensor
    entropy: torch.Tensor
    kl_to_final: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    answer: torch.Tensor | None = None
    answer_logprob: torch.Tensor | None = None
    answer_rank: torch.Tensor | None = None
    tokenizer: Any = None
    notes: list[str] = field(default_factory=list)

    axes = ("layer", "example", "position", "rank")

    @property
    def k(self) -> int:
        """How many top tokens are kept per cell."""
        return int(self.top_ids.shape[-1])

    @property
    def answer_prob(self) -> torch.Tensor | None:
        """``[layer, example, position]`` the answer's probability (None without an answer)."""
        return None if self.answer_logprob is None else self.answer_logprob.exp()

    @property
    def labels(self) -> dict[str, list[str]]:
        """Tick labels per axis (input tokens of example 0 on the position axis)."""
        return {
            "layer": list(self.layer_labels),
            "example": [str(i) for i in range(self.input_ids.shape[0])],
            "position": self.input_tokens(0),
            "rank": [str(r) for r in range(self.k)],
        }

    def input_tokens(self, example: int = 0) -> list[str]:
        """Return the input token at each kept position of ``example``."""
        ids = self.input_ids[self._example(example), list(self.positions)].tolist()
        return token_labels(self.tokenizer, ids)

    def layer_index(self, layer: int | str) -> int:
        """Return the row of ``layer`` (a residual-stream index or a label like ``"L3"``)."""
        if isinstance(layer, str):
            if layer not in self.layer_labels:
                raise LensError(f"no layer {layer!r}; this result has {self.layer_labels}")
            return self.layer_labels.index(layer)
        total = self.n_layers + 1
        if not -total <= layer < total or layer % total not in self.layers:
            raise LensError(f"layer {layer} was not read; this result has layers {self.layers}")
        return self.layers.index(layer % total)

    def _example(self, example: int) -> int:
        n = int(self.input_ids.shape[0])
        if isinstance(example, bool) or not isinstance(example, int) or not -n <= example < n:
            raise LensError(f"example {example!r} is out of range: the batch has {n}")
        return example % n

    def _real(self, example: int) -> list[bool]:
        mask = self.attention_mask[example]
        return [bool(mask[p]) for p in self.positions]

    def last_position(self, example: int = 0) -> int:
        """Return the column of ``example``'s last real token among the kept positions."""
        ex = self._example(example)
        real = [i for i, ok in enumerate(self._real(ex)) if ok]
        if not real:
            raise LensError(f"example {ex} has no real token among the kept positions")
        return real[-1]

    # -- tables -------------------------------------------------------------------------------
    def to_dataframe(self) -> pd.DataFrame:
        """Return one row per (layer, example, real position, rank): the token and its prob.

        Columns: ``layer`` (index), ``layer_label``, ``example``, ``position`` (absolute),
        ``input_token``, ``rank`` (0 = top), ``token_id``, ``token``, ``prob``. Padding
        positions are left out.
        """
        import pandas as pd

        n_layer, n_ex, n_pos, k = self.top_ids.shape
        ids = self.top_ids.reshape(-1).tolist()
        unique = sorted(set(ids))
        vocab = dict(zip(unique, token_labels(self.tokenizer, unique), strict=True))
        grid = torch.meshgrid(
            torch.arange(n_layer),
            torch.arange(n_ex),
            torch.arange(n_pos),
            torch.arange(k),
            indexing="ij",
        )
        li, ei, pi, ri = (g.reshape(-1) for g in grid)
        inputs = [self.input_tokens(e) for e in range(n_ex)]
        keep = self.attention_mask[:, list(self.positions)].bool()[ei, pi]
        frame = pd.DataFrame(
            {
                "layer": [self.layers[i] for i in li.tolist()],
                "layer_label": [self.layer_labels[i] for i in li.tolist()],
                "example": ei.tolist(),
                "position": [self.positions[i] for i in pi.tolist()],
                "input_token": [
                    inputs[e][p] for e, p in zip(ei.tolist(), pi.tolist(), strict=True)
                ],
                "rank": ri.tolist(),
                "token_id": ids,
                "token": [vocab[i] for i in ids],
                "prob": self.top_probs.reshape(-1).tolist(),
            }
        )
        return frame[keep.numpy()].reset_index(drop=True)

    def trajectory(self, example: int = 0, position: int | None = None) -> pd.DataFrame:
        """Return, per layer, the answer's prob, log-prob and rank, the top token and the KL.

        ``position`` is an absolute token position among those kept (default: the example's
        last real token). Without an answer the answer columns are left out.
        """
        import pandas as pd

        ex = self._example(example)
        if position is None:
            col = self.last_position(ex)
        else:
            length = int(self.input_ids.shape[1])
            absolute = position % length if -length <= position < length else None
            if absolute not in self.positions:
                raise LensError(f"position {position} was not kept; kept: {self.positions}")
            col = self.positions.index(absolute)
        top = self.top_ids[:, ex, col, 0].tolist()
        data: dict[str, Any] = {
            "layer": list(self.layers),
            "layer_label": list(self.layer_labels),
            "top_token": token_labels(self.tokenizer, top),
            "top_prob": self.top_probs[:, ex, col, 0].tolist(),
            "entropy": self.entropy[:, ex, col].tolist(),
            "kl_to_final": self.kl_to_final[:, ex, col].tolist(),
        }
        if self.answer is not None and self.answer_logprob is not None:
            assert self.answer_rank is not None
            answer = int(self.answer[ex])
            data["answer"] = token_labels(self.tokenizer, [answer]) * len(self.layers)
            data["answer_prob"] = self.answer_logprob[:, ex, col].exp().tolist()
            data["answer_logprob"] = self.answer_logprob[:, ex, col].tolist()
            data["answer_rank"] = self.answer_rank[:, ex, col].tolist()
        frame = pd.DataFrame(data)
        frame.attrs["position"] = self.positions[col]
        return frame

    # -- display ------------------------------------------------------------------------------
    def describe(self) -> str:
        """Return a short text summary: the top token by layer at example 0's last token."""
        n_layer, n_ex, n_pos, k = self.top_ids.shape
        lines = [
            f"LensResult: {self.method} of {self.model}, {n_layer} residual streams "
            f"({self.layer_labels[0]}..{self.layer_labels[-1]}) x {n_ex} examples x {n_pos} "
            f"positions, top-{k}"
        ]
        col = self.last_position(0)
        where = f"example 0, position {self.positions[col]} ({self.input_tokens(0)[col]!r})"
        top = token_labels(self.tokenizer, self.top_ids[:, 0, col, 0].tolist())
        probs = self.top_probs[:, 0, col, 0].tolist()
        cells = [
            f"{lab} {t!r} {p:.2f}" for lab, t, p in zip(self.layer_labels, top, probs, strict=True)
        ]
        lines.append(f"top token by layer at {where}: " + "; ".join(cells))
        if self.answer_rank is not None and self.answer is not None:
            ranks = self.answer_rank[:, 0, col].tolist()
            answer = token_labels(self.tokenizer, [int(self.answer[0])])[0]
            lines.append(f"rank of the answer {answer!r} by layer (0 = top): {ranks}")
        real = self.attention_mask[:, list(self.positions)].to(self.kl_to_final.dtype)
        kl = ((self.kl_to_final * real).sum(dim=(1, 2)) / real.sum()).tolist()
        lines.append(
            "mean KL to the final layer over real tokens (nats): "
            + ", ".join(f"{x:.3g}" for x in kl)
        )
        lines.extend(self.notes)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()

    def figure(self, example: int = 0, max_positions: int = 32) -> Any:
        """Return a matplotlib Figure: the top token of each layer x position, coloured by
        its probability (the last ``max_positions`` kept positions of ``example``)."""
        from .plots import lens_figure

        return lens_figure(self, self._example(example), max_positions)

    def _repr_png_(self) -> bytes:
        from .plots import png

        return png(self.figure())
