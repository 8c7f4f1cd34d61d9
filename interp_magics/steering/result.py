"""What a steering sweep returns: :class:`SweepResult`.

Arrays first (metric per coefficient and prompt for the vector and each random direction, the
random directions themselves, the per-coefficient statistics), a tidy DataFrame, the generated
text side by side, a dose-response PNG with the random directions' band, and a text summary
that leads with the verdict in words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .statistics import DoseResponse

if TYPE_CHECKING:
    import pandas as pd


@dataclass(repr=False)
class SweepResult:
    """A metric under steering, coefficient by coefficient, beside random directions.

    Attributes:
        coefficients: ``[C]`` sorted, 0 included (the unsteered baseline).
        scores: ``[C, n]`` the metric of each prompt with ``coef * vector`` added.
        control_scores: ``[K, C, n]`` the same for each random direction.
        control_directions: ``[K, d]`` the random directions (the vector's norm).
        stats: the per-coefficient statistics (:class:`~.statistics.DoseResponse`).
        metric, site, method, norm, seed, positions, model: what was run.
        prompts: a label per prompt (its text, or ``prompt i``).
        generations: prompt x coefficient continuations (a DataFrame), when asked for.
    """

    coefficients: np.ndarray
    scores: np.ndarray
    control_scores: np.ndarray
    control_directions: torch.Tensor
    stats: DoseResponse
    metric: str
    site: str
    method: str
    norm: float
    seed: int
    positions: Any
    prompts: list[str]
    model: str
    generations: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    axes = ("coefficient", "prompt")

    @property
    def baseline(self) -> np.ndarray:
        """``[n]`` the metric of each prompt unsteered (coefficient 0)."""
        out: np.ndarray = self.scores[self._zero]
        return out

    @property
    def changes(self) -> np.ndarray:
        """``[C, n]`` each prompt's change from coefficient 0 under the vector."""
        out: np.ndarray = self.scores - self.baseline
        return out

    @property
    def control_changes(self) -> np.ndarray:
        """``[K, C, n]`` each prompt's change from coefficient 0 under each random direction."""
        out: np.ndarray = self.control_scores - self.baseline
        return out

    @property
    def _zero(self) -> int:
        return int(np.flatnonzero(self.coefficients == 0)[0])

    # -- tables ---------------------------------------------------------------------------------
    def to_dataframe(self) -> pd.DataFrame:
        """Return one row per (coefficient, kind): the mean change from coefficient 0, its
        interval (``steer``: t-interval over prompts; ``control``: the band a random direction
        of the same norm falls in), the corrected p-value and whether it is significant.

        Columns: ``coefficient``, ``kind`` (``steer`` or ``control``), ``mean``, ``low``,
        ``high``, ``p``, ``p_prompts``, ``p_directions``, ``significant`` (tests are on the
        ``steer`` rows; ``control`` rows carry NaN and False).
        """
        import pandas as pd

        s = self.stats
        nan = np.full(len(self.coefficients), np.nan)
        steer = pd.DataFrame(
            {
                "coefficient": self.coefficients,
                "kind": "steer",
                "mean": s.mean,
                "low": s.low,
                "high": s.high,
                "p": np.where(s.tested, s.p, np.nan),
                "p_prompts": np.where(s.tested, s.p_prompts, np.nan),
                "p_directions": np.where(s.tested, s.p_directions, np.nan),
                "significant": s.significant,
            }
        )
        control = pd.DataFrame(
            {
                "coefficient": self.coefficients,
                "kind": "control",
                "mean": s.control_mean,
                "low": s.control_low,
                "high": s.control_high,
                "p": nan,
                "p_prompts": nan,
                "p_directions": nan,
                "significant": False,
            }
        )
        return pd.concat([steer, control], ignore_index=True)

    def per_prompt(self) -> pd.DataFrame:
        """Return one row per (coefficient, prompt) with the vector's metric and change."""
        import pandas as pd

        c, n = self.scores.shape
        return pd.DataFrame(
            {
                "coefficient": np.repeat(self.coefficients, n),
                "prompt": self.prompts * c,
                "score": self.scores.reshape(-1),
                "change": self.changes.reshape(-1),
            }
        )

    # -- words ----------------------------------------------------------------------------------
    def verdict(self) -> str:
        """Return the result in one sentence: which coefficients move the metric beyond random
        directions of the same norm, and which way."""
        s = self.stats
        hits = [float(c) for c, ok in zip(self.coefficients, s.significant, strict=True) if ok]
        tested = int(s.tested.sum())
        where = f"steering along the {self.method} vector at {self.site} (norm {self.norm:.3g})"
        if not hits:
            big = int(np.argmax(np.abs(s.mean)))
            return (
                f"No coefficient of {where} moves {self.metric} beyond random directions of the "
                f"same norm ({tested} coefficients tested); the largest mean change, "
                f"{s.mean[big]:+.3g} at {self.coefficients[big]:g}, is within what the "
                "controls allow."
            )
        way = "rises" if s.slope > 0 else "falls"
        top = max(hits, key=abs)
        i = int(np.flatnonzero(self.coefficients == top)[0])
        return (
            f"{where[0].upper()}{where[1:]} moves {self.metric} beyond random directions of the "
            f"same norm at {len(hits)} of {tested} coefficients "
            f"({', '.join(f'{h:g}' for h in hits)}); the mean change {way} with the coefficient "
            f"(at {top:g}: {s.mean[i]:+.3g} [{s.low[i]:+.3g}, {s.high[i]:+.3g}] vs random "
            f"{s.control_mean[i]:+.3g} [{s.control_low[i]:+.3g}, {s.control_high[i]:+.3g}])."
        )

    def describe(self) -> str:
        """Return the verdict, how it was tested, and a row per coefficient."""
        s = self.stats
        n, k = self.scores.shape[1], self.control_scores.shape[0]
        level = 1 - s.alpha
        lines = [
            self.verdict(),
            f"{self.metric} on {n} prompts of {self.model}, change from coefficient 0; "
            f"{level:.0%} t-intervals over prompts; {k} random directions (seed {self.seed}) "
            f"give the band ({level:.0%} prediction interval of a random direction's mean "
            "change). Significant: the paired t-test against the random directions' mean per "
            "prompt and the t-test against their spread both reject at "
            f"alpha {s.alpha:g}, each Holm-corrected across coefficients.",
            f"{'coef':>8}  {'steer mean [interval]':>30}  {'random mean [band]':>30}  "
            f"{'p':>8}  sig",
        ]
        for i, coef in enumerate(self.coefficients):
            p = f"{s.p[i]:.3g}" if s.tested[i] else "-"
            lines.append(
                f"{coef:>8g}  {s.mean[i]:>+10.3g} [{s.low[i]:+.3g}, {s.high[i]:+.3g}]"
                f"{'':>2}  {s.control_mean[i]:>+10.3g} [{s.control_low[i]:+.3g}, "
                f"{s.control_high[i]:+.3g}]  {p:>8}  {'*' if s.significant[i] else ''}"
            )
        lines.extend(self.notes)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()

    # -- pictures -------------------------------------------------------------------------------
    def figure(self) -> Any:
        """Return a matplotlib Figure: the dose-response with its intervals and the band of
        random directions of the same norm."""
        from .plots import dose_response_figure

        return dose_response_figure(self)

    def _repr_png_(self) -> bytes:
        from .plots import png

        return png(self.figure())
