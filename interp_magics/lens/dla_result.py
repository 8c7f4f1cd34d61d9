"""What direct logit attribution returns: :class:`DLAResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from .components import Component
from .inputs import LensError, token_labels

if TYPE_CHECKING:
    import pandas as pd


@dataclass(repr=False)
class DLAResult:
    """Each component's direct contribution to a logit difference, per example.

    Attributes:
        components: what each row is (name, kind, layer, head).
        values: ``[component, example]`` contributions (float64); they sum over components to
            ``total`` up to float rounding.
        total: ``[example]`` the logit difference the model itself gives.
        ci_low, ci_high: ``[component]`` the ``level`` Student t-interval over examples of
            each component's mean contribution (infinite with one example).
        positions, correct, wrong: ``[example]`` the scored position and the answer ids.
        scale: ``[example]`` the final norm's scale, frozen from this run.
        norm: ``"LayerNorm"`` or ``"RMSNorm"``.
        attn_error: the largest difference between a layer's heads plus bias and its
            attention output (float rounding; a check of the per-head split).
    """

    components: list[Component]
    values: torch.Tensor
    total: torch.Tensor
    ci_low: torch.Tensor
    ci_high: torch.Tensor
    level: float
    metric: str
    model: str
    n_layers: int
    n_heads: int
    positions: torch.Tensor
    correct: torch.Tensor
    wrong: torch.Tensor
    scale: torch.Tensor
    norm: str
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    tokenizer: Any = None
    attn_error: float = 0.0
    notes: list[str] = field(default_factory=list)

    axes = ("component", "example")

    @property
    def n_examples(self) -> int:
        return int(self.values.shape[1])

    @property
    def mean(self) -> torch.Tensor:
        """``[component]`` the mean contribution over examples."""
        return self.values.mean(1)

    @property
    def unexplained(self) -> torch.Tensor:
        """``[example]`` the model's logit difference minus the sum of the components."""
        return self.total - self.values.sum(0)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.components]

    def value(self, name: str) -> torch.Tensor:
        """Return the ``[example]`` contributions of the component called ``name``."""
        if name not in self.names:
            raise LensError(f"no component {name!r}; components include {self.names[:6]}...")
        return self.values[self.names.index(name)]

    def heads(self) -> torch.Tensor:
        """Return ``[layer, head]`` the mean contribution of every attention head."""
        grid = torch.zeros(self.n_layers, self.n_heads, dtype=self.values.dtype)
        mean = self.mean
        for i, c in enumerate(self.components):
            if c.kind == "head":
                assert c.layer is not None and c.head is not None
                grid[c.layer, c.head] = mean[i]
        return grid

    def to_dataframe(self, per_example: bool = False) -> pd.DataFrame:
        """Return one row per component (mean and t-interval), or with ``per_example`` one
        row per component and example (``value``)."""
        import pandas as pd

        base = {
            "component": self.names,
            "kind": [c.kind for c in self.components],
            "layer": pd.array([c.layer for c in self.components], dtype="Int64"),
            "head": pd.array([c.head for c in self.components], dtype="Int64"),
        }
        if not per_example:
            return pd.DataFrame(
                {
                    **base,
                    "mean": self.mean.tolist(),
                    "ci_low": self.ci_low.tolist(),
                    "ci_high": self.ci_high.tolist(),
                }
            )
        n_comp, n_ex = self.values.shape
        frame = pd.DataFrame({k: v for k, v in base.items()})
        frame = frame.loc[frame.index.repeat(n_ex)].reset_index(drop=True)
        frame["example"] = list(range(n_ex)) * n_comp
        frame["value"] = self.values.reshape(-1).tolist()
        return frame

    def top(self, n: int = 10) -> pd.DataFrame:
        """Return the ``n`` components with the largest absolute mean, largest first."""
        df = self.to_dataframe()
        order = df["mean"].abs().sort_values(ascending=False, kind="stable").index
        return df.reindex(order).head(n).reset_index(drop=True)

    def describe(self) -> str:
        """Return a short text summary: the total, the largest components with intervals."""
        answers = token_labels(self.tokenizer, [int(self.correct[0]), int(self.wrong[0])])
        lines = [
            f"DLAResult: direct logit attribution of the {self.metric} in {self.model} "
            f"({len(self.components)} components x {self.n_examples} examples; final "
            f"{self.norm} scale frozen from the run)",
            f"example 0: {answers[0]!r} vs {answers[1]!r} at position {int(self.positions[0])}; "
            f"mean total {self.total.mean().item():.4g} (components sum to it within "
            f"{self.unexplained.abs().max().item():.2g})",
        ]
        cells = [
            f"{row.component} {row.mean:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
            for row in self.top(8).itertuples()
        ]
        lines.append(f"largest (mean, {self.level:.0%} t-interval): " + "; ".join(cells))
        lines.extend(self.notes)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()

    def figure(self, top: int = 20) -> Any:
        """Return a matplotlib Figure: the ``top`` components as bars with their intervals,
        and the layer x head heatmap."""
        from .plots import dla_figure

        return dla_figure(self, top)

    def _repr_png_(self) -> bytes:
        from .plots import png

        return png(self.figure())
