"""What feature ablation and attribution return: :class:`FeatureEffects`.

Each feature's effect is the mean over examples of the change in a metric (edited run minus
the unedited spliced run, per example), with a Student t-interval and a sign-flip test of "no
change" corrected across the features (max-|t| by default): the statistics of patching
sweeps (:mod:`interp_magics.patching.uncertainty`), applied to features instead of cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..patching.uncertainty import StatOptions, cell_stats, describe_stats

if TYPE_CHECKING:
    import pandas as pd


@dataclass(repr=False)
class FeatureEffects:
    """Each feature's effect on a metric, per example and as a mean with its interval and test.

    Attributes:
        site: the features' site (``sae:resid_post.1``).
        features: ``[feature]`` SAE feature indices, in the order of every other field.
        effect: ``[feature]`` mean change of the metric over examples.
        low, high: ``[feature]`` the ``1 - alpha`` t-interval of the mean change.
        p, p_corrected: ``[feature]`` sign-flip p-values, raw and corrected across features.
        significant: ``[feature]`` ``p_corrected < alpha``.
        tested: ``[feature]`` features whose edit changed the metric at all (the family
            corrected; the rest changed nothing: p = 1).
        per_example: ``[feature, example]`` the changes the statistics read.
        baseline: ``[example]`` the metric of the unedited spliced run.
        method: what the change is: ``"zero ablation"``, ``"mean ablation"`` or
            ``"attribution"`` (gradient x activation: the first-order estimate of zero ablation).
        verification: with ``verify_top``, attribution's estimate against exact zero ablation
            of its largest features and as many random ones.
    """

    site: str
    features: torch.Tensor
    effect: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    p: torch.Tensor
    p_corrected: torch.Tensor
    significant: torch.Tensor
    tested: torch.Tensor
    per_example: torch.Tensor
    baseline: torch.Tensor
    method: str
    metric: str
    alpha: float
    correction: str
    stats_note: str
    model: str = ""
    labels: list[str] | None = None
    verification: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    axes = ("feature", "example")

    @property
    def n_examples(self) -> int:
        return int(self.per_example.shape[1])

    def to_dataframe(self, per_example: bool = False) -> pd.DataFrame:
        """Return one row per feature (feature, effect, low, high, p, p_corrected,
        significant), or with ``per_example`` one row per feature and example (``change``)."""
        import pandas as pd

        feats = self.features.tolist()
        if per_example:
            n_feat, n_ex = self.per_example.shape
            return pd.DataFrame(
                {
                    "feature": np.repeat(feats, n_ex),
                    "example": np.tile(np.arange(n_ex), n_feat),
                    "change": self.per_example.reshape(-1).double().numpy(),
                }
            )
        frame = pd.DataFrame(
            {
                "feature": feats,
                "effect": self.effect.double().numpy(),
                "low": self.low.double().numpy(),
                "high": self.high.double().numpy(),
                "p": self.p.double().numpy(),
                "p_corrected": self.p_corrected.double().numpy(),
                "significant": self.significant.numpy(),
            }
        )
        if self.labels is not None:
            frame.insert(1, "label", self.labels)
        return frame

    def top(self, n: int = 10) -> pd.DataFrame:
        """Return the ``n`` features with the largest absolute effect, largest first."""
        df = self.to_dataframe()
        order = df["effect"].abs().sort_values(ascending=False, kind="stable").index
        return df.reindex(order).head(n).reset_index(drop=True)

    def describe(self) -> str:
        """Return a text summary that leads with the verdict."""
        n_sig = int(self.significant.sum())
        n = len(self.features)
        lines = [
            f"{n_sig} of {n} features change the {self.metric} significantly "
            f"({self.method} at {self.site}, {self.n_examples} examples, alpha {self.alpha:g}, "
            f"corrected across features)"
        ]
        cells = [
            f"feature {row.feature} {row.effect:+.4g} [{row.low:+.3g}, {row.high:+.3g}]"
            + (" *" if row.significant else "")
            for row in self.top(6).itertuples()
        ]
        lines.append("largest (mean change, interval; * significant): " + "; ".join(cells))
        lines.append(self.stats_note)
        if self.verification is not None:
            lines.append(str(self.verification.get("summary", "")))
        lines.extend(self.notes)
        return "\n".join(line for line in lines if line)

    def __repr__(self) -> str:
        return self.describe()

    def figure(self, top: int = 20) -> Any:
        """Return a matplotlib Figure: the ``top`` features' effects as bars with intervals."""
        from .plots import effects_figure

        return effects_figure(self, top)

    def _repr_png_(self) -> bytes:
        from .plots import png

        return png(self.figure())


def summarise(
    changes: torch.Tensor,
    features: torch.Tensor,
    baseline: torch.Tensor,
    *,
    site: str,
    method: str,
    metric: str,
    options: StatOptions,
    model: str = "",
) -> FeatureEffects:
    """Return :class:`FeatureEffects` from per-example changes ``[feature, example]``.

    What counts as float rounding (changes set to 0 before testing) is relative to the largest
    |baseline| metric, as in patching sweeps.
    """
    d = changes.double().cpu().numpy()
    scale = float(baseline.abs().max()) if baseline.numel() else None
    stats = cell_stats(
        d,
        level=1 - options.alpha,
        correction=options.correction,
        flips=options.flips,
        seed=options.seed,
        scale=scale if scale else None,
    )

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))

    return FeatureEffects(
        site=site,
        features=features.cpu().long(),
        effect=tensor(stats.mean),
        low=tensor(stats.low),
        high=tensor(stats.high),
        p=tensor(stats.p),
        p_corrected=tensor(stats.p_corrected),
        significant=torch.from_numpy(stats.p_corrected < options.alpha),
        tested=torch.from_numpy(stats.tested),
        per_example=changes.double().cpu(),
        baseline=baseline.double().cpu(),
        method=method,
        metric=metric,
        alpha=options.alpha,
        correction=options.correction,
        stats_note=describe_stats(stats, int(d.shape[-1]), options.alpha),
        model=model,
    )
