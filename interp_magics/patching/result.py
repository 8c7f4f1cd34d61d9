"""What a patching or ablation sweep returns: :class:`PatchResult`, and its axis labels.

A result shows itself as the ``PatchingHeatmap`` widget in a notebook (``WIDGET``, looked up lazily
by :class:`~interp_magics.core.display.WidgetDisplay`) and as text or a DataFrame elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..core.display import WidgetDisplay

if TYPE_CHECKING:
    import pandas as pd

    from .runner import Batch
    from .sweep import Sweep


@dataclass(repr=False)
class PatchResult(WidgetDisplay):
    """The outcome of a patching or ablation sweep.

    Attributes:
        values: the headline numbers, shape ``[len(labels[a]) for a in axes]``. For patching
            with ``normalised=True``: the batch-mean metric rescaled so the corrupted run scores 0
            and the clean run 1. For ablation: the change of the batch-mean metric from the
            clean run.
        raw: the batch-mean metric of each patched run, same shape.
        per_example: the metric of every example in every cell, ``[..., batch]``.
        axes: names of the axes, e.g. ``("layer", "pos")``.
        labels: tick labels per axis (token strings on the position axis).
        clean_baseline, corrupt_baseline: batch-mean metric of the unpatched runs (the
            corrupted baseline is None for ablation); per-example versions alongside.
        metric, site, method, direction, corruption: what was done, in words.
        verification: for attribution with ``verify_top``, the checked cells (attribution vs
            exact), on its top cells and on a seeded random sample, and a summary.
        ci_low, ci_high: per cell, the ``1 - alpha`` Student t-interval over examples of the
            mean change from the unpatched run, on the scale of ``values`` (the baselines that
            normalise it are held fixed).
        p_values: per cell, the sign-flip test of "the patch changes nothing" (two-sided).
        p_corrected: the same, corrected across the sweep by ``correction`` (``"max-t"``: the
            maximum |t| over cells under the same sign flips, Westfall-Young single step).
        significant: ``p_corrected < alpha``.
        stats_note: how the intervals and tests were made, in words.
    """

    WIDGET = "PatchingHeatmap"

    values: torch.Tensor
    raw: torch.Tensor
    per_example: torch.Tensor
    axes: tuple[str, ...]
    labels: dict[str, list[str]]
    metric: str
    site: str
    method: str
    direction: str | None
    corruption: str
    clean_baseline: float
    corrupt_baseline: float | None
    clean_per_example: torch.Tensor
    corrupt_per_example: torch.Tensor | None
    normalised: bool
    verification: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    ci_low: torch.Tensor | None = None
    ci_high: torch.Tensor | None = None
    p_values: torch.Tensor | None = None
    p_corrected: torch.Tensor | None = None
    significant: torch.Tensor | None = None
    alpha: float = 0.05
    correction: str = "max-t"
    stats_note: str = ""

    def to_dataframe(self) -> pd.DataFrame:
        """Return one row per cell: its axis indices and labels, value, raw metric and tests.

        With per-cell statistics (every sweep has them): ``ci_low``, ``ci_high``, ``p_value``,
        ``p_corrected`` and ``significant``.
        """
        import pandas as pd

        grids = torch.meshgrid(*[torch.arange(n) for n in self.values.shape], indexing="ij")
        data: dict[str, Any] = {}
        for axis, grid in zip(self.axes, grids, strict=True):
            idx = grid.reshape(-1).tolist()
            data[axis] = idx
            if axis == "pos":
                data["token"] = [self.labels[axis][i] for i in idx]
        data["value"] = self.values.reshape(-1).tolist()
        data["raw"] = self.raw.reshape(-1).tolist()
        for name, column in (
            ("ci_low", self.ci_low),
            ("ci_high", self.ci_high),
            ("p_value", self.p_values),
            ("p_corrected", self.p_corrected),
            ("significant", self.significant),
        ):
            if column is not None:
                data[name] = column.reshape(-1).tolist()
        return pd.DataFrame(data)

    def top(self, k: int = 10) -> pd.DataFrame:
        """Return the ``k`` cells with the largest absolute value, largest first."""
        df = self.to_dataframe()
        return (
            df.reindex(df["value"].abs().sort_values(ascending=False).index)
            .head(k)
            .reset_index(drop=True)
        )

    def describe(self) -> str:
        """Return a short text summary with the baselines and the strongest cells."""
        what = f"{self.method} {self.direction + ' ' if self.direction else ''}patching"
        if self.method.endswith("ablation"):
            what = self.method
        lines = [
            f"PatchResult: {what} of {self.site} by {' x '.join(self.axes)} "
            f"({' x '.join(str(n) for n in self.values.shape)} cells); metric: {self.metric}",
            f"clean baseline {self.clean_baseline:.4g}"
            + (
                f", corrupted baseline {self.corrupt_baseline:.4g}"
                if self.corrupt_baseline is not None
                else ""
            )
            + f"; corruption: {self.corruption}",
        ]
        if self.normalised:
            lines.append("values are normalised: 0 = corrupted run, 1 = clean run")
        elif self.method.endswith("ablation"):
            lines.append("values are the change in the metric from the clean run")
        if self.direction == "noising" and self.normalised:
            # Noising: a cell near 0 is necessary; the cells near 1 say nothing.
            heading, top = (
                "cells whose patch destroys the behaviour most (smallest)",
                self.lowest(5),
            )
        else:
            heading, top = "largest cells", self.top(5)
        lines.append(f"{heading}: " + "; ".join(self._cell_text(row) for _, row in top.iterrows()))
        if self.stats_note:
            lines.append(self.stats_note)
        if self.verification:
            lines.append(self.verification["summary"])
        lines.extend(self.notes)
        return "\n".join(lines)

    def lowest(self, k: int = 10) -> pd.DataFrame:
        """Return the ``k`` cells with the smallest value, smallest first."""
        return self.to_dataframe().nsmallest(k, "value").reset_index(drop=True)

    def _cell_text(self, row: Any) -> str:
        """Return one cell of a summary: where, its value, interval and corrected p-value."""
        where = ", ".join(
            f"{a} {int(row[a])}" + (f" ({row['token']})" if a == "pos" else "") for a in self.axes
        )
        text = f"{where}: {row['value']:.3f}"
        if "ci_low" in row:
            text += f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
            text += f" p_corr {row['p_corrected']:.3g}" + ("" if row["significant"] else " (n.s.)")
        return text


def axis_labels(
    sweep: Sweep, batch: Batch, other: Batch | None, tokenizer: Any
) -> dict[str, list[str]]:
    """Return the tick labels of each axis of ``sweep``: layer and head numbers, and tokens.

    A position where ``other`` (the corrupted prompts) differs from ``batch`` shows both tokens.
    """
    labels: dict[str, list[str]] = {}
    for axis in sweep.axes:
        if axis == "layer":
            labels[axis] = [str(layer) for layer in sweep.layers]
        elif axis == "head":
            labels[axis] = [str(h) for h in range(sweep.runner.n_heads)]
        else:
            labels[axis] = _token_labels(batch, other, tokenizer)
    return labels


def _token_labels(batch: Batch, other: Batch | None, tokenizer: Any) -> list[str]:
    ids = batch["input_ids"][0].tolist()
    alt = other["input_ids"][0].tolist() if other is not None else ids

    def show(i: int) -> str:
        if tokenizer is None:
            return str(i)
        token = tokenizer.convert_ids_to_tokens([i])[0]
        return str(token if token is not None else i)

    return [show(a) if a == b else f"{show(a)}→{show(b)}" for a, b in zip(ids, alt, strict=True)]
