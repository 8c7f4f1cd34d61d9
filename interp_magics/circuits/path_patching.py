"""Path patching: a sender's effect on the metric through chosen receivers only.

For a sender ``s`` and a set of receivers ``R`` (Wang et al. 2022; Goldowsky-Dill et al. 2023),
the base run is repeated with ``s``'s output changed *only as ``R`` read it*: each receiver in
``R`` reads its own residual stream plus ``s``'s source-minus-base output; every other
component reads the base run's ``s``. Downstream of the receivers the model runs as usual, so
the receivers' changed outputs reach the logits by every path. Noising (the default) runs the
clean input and sends the corrupted output; denoising runs the corrupted input and sends the
clean one.

Receivers are query, key or value inputs of single heads, MLP inputs or the logits (see
:mod:`.graph`); a receiver before the sender (it reads before the sender writes) is no edge,
and a cell none of whose receivers is an edge is NaN. Sending to every receiver downstream of
``s`` is exactly activation patching of ``s``'s output; sending to ``logits`` alone is its
direct effect.

Cells are batched: many senders' patches run as copies along the batch, each stacked forward
starting at its receivers' layer from the base run's cached residual stream.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..core import events
from ..core.records import PathPatchRecord
from ..patching.inputs import PatchingError
from ..patching.significance import cell_fields, small_gap, stat_options
from ..patching.sweep import BATCH_TOKENS
from ..patching.uncertainty import MAX_T
from .runs import Cell, prepare, reference, run_cells

if TYPE_CHECKING:
    import pandas as pd


@dataclass(repr=False)
class PathPatchResult:
    """Path patching of every sender to every receiver set.

    Attributes:
        values: ``[senders, receiver sets]``, the batch-mean metric rescaled so the corrupted
            run scores 0 and the clean run 1 (raw differences when the two are equal); NaN
            where no receiver of the set reads the sender (no edge).
        raw: the batch-mean metric of each cell; per_example: ``[senders, sets, batch]``.
        senders, receivers: row and column labels; receiver_sets: the receivers in each set.
        clean_baseline, corrupt_baseline: batch-mean metric of the unpatched runs.
        ci_low, ci_high, p_values, p_corrected, significant: per cell, the ``1 - alpha``
            t-interval (on the scale of ``values``) and the sign-flip test of "no change from
            the base run", corrected across the cells by ``correction`` (max-|t| by default).
    """

    values: torch.Tensor
    raw: torch.Tensor
    per_example: torch.Tensor
    senders: list[str]
    receivers: list[str]
    receiver_sets: list[list[str]]
    metric: str
    direction: str
    clean_baseline: float
    corrupt_baseline: float
    clean_per_example: torch.Tensor
    corrupt_per_example: torch.Tensor
    normalised: bool
    ci_low: torch.Tensor
    ci_high: torch.Tensor
    p_values: torch.Tensor
    p_corrected: torch.Tensor
    significant: torch.Tensor
    alpha: float = 0.05
    correction: str = MAX_T
    stats_note: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def edge(self) -> torch.Tensor:
        """Return ``[senders, sets]``: whether some receiver of the set reads the sender."""
        return ~torch.isnan(self.values)

    @property
    def base_value(self) -> float:
        """Return the value of the unpatched base run (1 noising, 0 denoising, normalised)."""
        if not self.normalised:
            return 0.0  # raw differences from the corrupted run, which equals the clean one
        return 0.0 if self.direction == "denoising" else 1.0

    def to_dataframe(self) -> pd.DataFrame:
        """Return one row per cell that is an edge: sender, receiver set, value and tests."""
        import pandas as pd

        rows = []
        for i, j in self.edge.nonzero().tolist():
            rows.append(
                {
                    "sender": self.senders[i],
                    "receiver": self.receivers[j],
                    "value": float(self.values[i, j]),
                    "raw": float(self.raw[i, j]),
                    "ci_low": float(self.ci_low[i, j]),
                    "ci_high": float(self.ci_high[i, j]),
                    "p_value": float(self.p_values[i, j]),
                    "p_corrected": float(self.p_corrected[i, j]),
                    "significant": bool(self.significant[i, j]),
                }
            )
        return pd.DataFrame(rows)

    def cell(self, sender: str, receiver: str) -> dict[str, Any]:
        """Return one cell's row (``sender``, receiver-set label) as a dict."""
        if sender not in self.senders or receiver not in self.receivers:
            raise PatchingError(
                f"no cell {sender} -> {receiver}; senders: {', '.join(self.senders[:6])}..., "
                f"receivers: {', '.join(self.receivers[:6])}..."
            )
        df = self.to_dataframe()
        hit = df[(df["sender"] == sender) & (df["receiver"] == receiver)]
        if hit.empty:
            raise PatchingError(f"{sender} -> {receiver} is not an edge (the receiver reads first)")
        return dict(hit.iloc[0])

    def top(self, k: int = 10) -> pd.DataFrame:
        """Return the ``k`` cells that move the metric most from the base run, largest first."""
        df = self.to_dataframe()
        if df.empty:
            return df
        order = (df["value"] - self.base_value).abs().sort_values(ascending=False).index
        return df.reindex(order).head(k).reset_index(drop=True)

    def describe(self) -> str:
        """Return a short text summary with the baselines and the strongest paths."""
        lines = [
            f"PathPatchResult: {self.direction} path patching, {len(self.senders)} senders x "
            f"{len(self.receivers)} receiver sets; metric: {self.metric}",
            f"clean baseline {self.clean_baseline:.4g}, corrupted baseline "
            f"{self.corrupt_baseline:.4g}"
            + (
                "; values are normalised: 0 = corrupted run, 1 = clean run"
                if self.normalised
                else ""
            ),
        ]
        parts = []
        for _, row in self.top(5).iterrows():
            star = "" if row["significant"] else " (n.s.)"
            parts.append(
                f"{row['sender']} -> {row['receiver']}: {row['value']:.3f} "
                f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}] p_corr {row['p_corrected']:.3g}{star}"
            )
        lines.append("strongest paths: " + "; ".join(parts))
        if self.stats_note:
            lines.append(self.stats_note)
        lines.extend(self.notes)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()

    def _repr_png_(self) -> bytes:
        what = "normalised metric" if self.normalised else "metric change"
        return heatmap(self, what)


def heatmap(result: PathPatchResult, label: str) -> bytes:
    """Return the PNG heatmap sender x receiver set of ``result``."""
    from .plots import heatmap_png

    return heatmap_png(
        result.values.numpy(),
        result.senders,
        result.receivers,
        center=result.base_value,
        title=f"{result.direction} path patching, {result.metric}\n"
        f"dots: corrected p < {result.alpha:g}",
        label=label,
        marks=result.significant.numpy() & result.edge.numpy(),
    )


def path_patch(
    model: Any,
    clean: Any,
    corrupt: Any,
    metric: Any,
    *,
    senders: Sequence[str] | str | None = None,
    receivers: Sequence[str | Sequence[str]] | str | None = None,
    direction: str = "noising",
    batch_tokens: int = BATCH_TOKENS,
    progress: bool = True,
    alpha: float = 0.05,
    correction: str = MAX_T,
    flips: int = 9999,
    seed: int = 0,
) -> PathPatchResult:
    """Return the metric when each sender's output reaches each receiver set only.

    Args:
        model: a HuggingFace GPT-2, GPT-NeoX/Pythia or Llama-family causal LM.
        clean, corrupt: tokenizer outputs or token-id tensors of equal shape.
        metric: ``patching.logit_diff(...)``, ``logprob(...)``, ``kl_to_clean()`` or a function
            ``logits [batch, pos, vocab] -> [batch]``.
        senders: sender names or globs (``"embed"``, ``"L0H2"``, ``"L0H*"``, ``"MLP3"``); each
            match is a row. Default: every sender.
        receivers: receiver sets, one column each: a receiver (``"L1H0.q"``, ``"MLP2"``,
            ``"logits"``), a glob (``"L1H*.k"``: all matches together), a head (``"L1H0"``: its
            query, key and value inputs) or a list of those. Default: every head (q, k and v
            together), every MLP, and the logits.
        direction: ``"noising"`` (run clean, send the corrupted output) or ``"denoising"``.
        batch_tokens: how many tokens one stacked forward may hold (memory knob).
        alpha, correction, flips, seed: the per-cell intervals and sign-flip tests, as in
            :func:`~interp_magics.patching.activation_patch`.
    """
    if direction not in ("noising", "denoising"):
        raise PatchingError(f"direction must be 'noising' or 'denoising', not {direction!r}")
    options = stat_options(alpha, correction, flips, seed)
    setup = prepare(model, clean, corrupt, metric, batch_tokens=batch_tokens, progress=progress)
    graph = setup.graph
    send = graph.select_senders(senders)
    groups = graph.select_receivers(receivers)
    assert setup.corrupt is not None
    clean_run = reference(setup, setup.clean, keep_logprobs=setup.metric.needs_clean_distribution())
    corrupt_run = reference(setup, setup.corrupt)
    base, source = (clean_run, corrupt_run) if direction == "noising" else (corrupt_run, clean_run)
    delta = source.senders - base.senders
    cells = [
        Cell(s, tuple(r for r in idx if bool(graph.edges[s, r]))) for s in send for _, idx in groups
    ]
    per_example = run_cells(setup, base, delta, cells).reshape(len(send), len(groups), -1)
    valid = torch.tensor([bool(c.receivers) for c in cells]).reshape(len(send), len(groups))
    events.emit(
        PathPatchRecord(
            senders=len(send),
            receivers=len(groups),
            metric=setup.metric.name,
            direction=direction,
            p_values=int(valid.sum()),
            corrected=options.correction != "none",
            correction=None if options.correction == "none" else options.correction,
        )
    )
    return _result(
        per_example,
        valid,
        (clean_run.values, corrupt_run.values, base.values),
        senders=[graph.senders[s].name for s in send],
        groups=[(label, [graph.receivers[r].name for r in idx]) for label, idx in groups],
        metric=setup.metric.name,
        direction=direction,
        options_=options,
    )


def _result(
    per_example: torch.Tensor,
    valid: torch.Tensor,
    runs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    senders: list[str],
    groups: list[tuple[str, list[str]]],
    metric: str,
    direction: str,
    options_: Any,
) -> PathPatchResult:
    """Return the normalised result with per-cell statistics; non-edges are NaN."""
    clean, corrupt, base = runs
    clean_mean, corrupt_mean = float(clean.mean()), float(corrupt.mean())
    span = clean_mean - corrupt_mean
    normalised = abs(span) > 1e-12
    raw = per_example.mean(-1)
    values = (raw - corrupt_mean) / span if normalised else raw - corrupt_mean
    notes = []
    if not normalised:
        notes.append("clean and corrupted baselines are equal: values are raw differences")
    elif gap := small_gap(clean - corrupt):
        notes.append(gap)
        warnings.warn(gap, UserWarning, stacklevel=3)
    stats = cell_fields(
        per_example,
        base,
        offset=float(base.mean()) - corrupt_mean,
        factor=1 / span if normalised else 1.0,
        options=options_,
    )
    nan = torch.tensor(float("nan"))
    for key in ("ci_low", "ci_high", "p_values", "p_corrected"):
        stats[key] = torch.where(valid, stats[key], nan)
    stats["significant"] = stats["significant"] & valid
    return PathPatchResult(
        values=torch.where(valid, values, nan),
        raw=torch.where(valid, raw, nan),
        per_example=per_example,
        senders=senders,
        receivers=[label for label, _ in groups],
        receiver_sets=[names for _, names in groups],
        metric=metric,
        direction=direction,
        clean_baseline=clean_mean,
        corrupt_baseline=corrupt_mean,
        clean_per_example=clean,
        corrupt_per_example=corrupt,
        normalised=normalised,
        notes=notes,
        **stats,
    )
