"""What a probe returns: a report per probe, one across layers, and one result per control."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.display import WidgetDisplay
from ..stats import Chance

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class ControlResult:
    """Cross-validated accuracy of one control, with its 95% CI, and its balanced accuracy."""

    name: str
    accuracy: float
    ci: tuple[float, float]
    detail: str = ""
    balanced_accuracy: float | None = None
    balanced_ci: tuple[float, float] | None = None
    hits: np.ndarray | None = field(default=None, repr=False)  # 1 correct, 0 wrong, per example
    chance: float | None = None  # the frequency guesser's accuracy on this control's labels
    balanced_hits: np.ndarray | None = field(default=None, repr=False)  # mean: balanced accuracy


@dataclass(repr=False)
class ProbeReport(WidgetDisplay):
    """A probe's held-out accuracy together with its controls, uncertainty and tests."""

    WIDGET = "ProbePanel"

    accuracy: float
    accuracy_ci: tuple[float, float]
    balanced_accuracy: float
    balanced_ci: tuple[float, float]
    n_examples: int
    classes: list[str]
    class_counts: list[int]
    chance: Chance
    binomial_p: float  # correct predictions vs the majority-class rate
    permutation: dict[str, Any] | None  # n, p_value, null_mean, null_ci
    controls: dict[str, ControlResult]
    selectivity: float | None
    mutual_info: dict[str, float] | None
    estimator: str
    cv: int
    seed: int
    grouped: bool
    predictions: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    name: str = ""
    notes: list[str] = field(default_factory=list)
    selectivity_ci: tuple[float, float] | None = None
    balanced_selectivity: float | None = None
    balanced_selectivity_ci: tuple[float, float] | None = None
    interval: str = ""  # what the intervals cover, and how they are computed

    @property
    def imbalanced(self) -> bool:
        """Return whether the classes differ in size (then balanced accuracy is the one to read)."""
        return len(set(self.class_counts)) > 1

    @property
    def p_value(self) -> float:
        """Return the permutation p-value (or the binomial one when no permutation test ran)."""
        return float(self.permutation["p_value"]) if self.permutation else self.binomial_p

    def to_dataframe(self) -> pd.DataFrame:
        """Return one row per measure: the probe, each control and the chance levels."""
        import pandas as pd

        rows = [
            _row("probe", self.accuracy, self.accuracy_ci, self.p_value),
            _row("probe (balanced)", self.balanced_accuracy, self.balanced_ci),
        ]
        if self.permutation:
            null_ci = self.permutation["null_ci"]
            rows.append(_row("shuffled labels", self.permutation["null_mean"], null_ci))
        for c in self.controls.values():
            rows.append(_row(c.name, c.accuracy, c.ci))
            if c.balanced_accuracy is not None and c.balanced_ci is not None:
                rows.append(_row(f"{c.name} (balanced)", c.balanced_accuracy, c.balanced_ci))
        if self.selectivity is not None:
            rows.append(_row("selectivity", self.selectivity, self.selectivity_ci or (None, None)))
        if self.balanced_selectivity is not None:
            rows.append(
                _row(
                    "selectivity (balanced)",
                    self.balanced_selectivity,
                    self.balanced_selectivity_ci or (None, None),
                )
            )
        rows.append(_row("majority class", self.chance.majority, p_value=self.binomial_p))
        rows.append(_row("frequency guess", self.chance.frequency))
        return pd.DataFrame(rows)

    def describe(self) -> str:
        """Return the report as text: every number a reader needs, not only the accuracy."""
        lo, hi = self.accuracy_ci
        name = f" ({self.name})" if self.name else ""
        grouped = " by group" if self.grouped else ""
        head = (
            f"ProbeReport{name}: {self.estimator} probe, {self.cv}-fold CV{grouped}, "
            f"{self.n_examples} examples, {len(self.classes)} classes, seed {self.seed}"
        )
        binomial = (
            f"binomial test vs majority p = {_p(self.binomial_p)} (approximate: cross-validated "
            "predictions are not independent; the permutation p-value is the calibrated one)"
            if np.isfinite(self.binomial_p)
            else (
                "no binomial test (it needs independent examples; read the permutation p-value)"
                if self.grouped
                else "no binomial test"
            )
        )
        lines = [
            head,
            f"accuracy {self.accuracy:.3f} [95% CI {lo:.3f}, {hi:.3f}]; balanced accuracy "
            f"{self.balanced_accuracy:.3f} [{self.balanced_ci[0]:.3f}, {self.balanced_ci[1]:.3f}]",
            f"chance: majority class {self.chance.majority:.3f}, "
            f"frequency guess {self.chance.frequency:.3f}; {binomial}",
        ]
        if self.permutation:
            nlo, nhi = self.permutation["null_ci"]
            balanced = (
                f", balanced {self.permutation['null_balanced_mean']:.3f}"
                if self.imbalanced and "null_balanced_mean" in self.permutation
                else ""
            )
            scheme = f", {self.permutation['scheme']}" if "scheme" in self.permutation else ""
            lines.append(
                f"shuffled labels: {self.permutation['null_mean']:.3f} [{nlo:.3f}, {nhi:.3f}]"
                f"{balanced} over {self.permutation['n']} permutations{scheme}; "
                f"permutation p = {_p(self.permutation['p_value'])}"
            )
        for c in self.controls.values():
            balanced_c = (
                f"; balanced {c.balanced_accuracy:.3f} "
                f"[{c.balanced_ci[0]:.3f}, {c.balanced_ci[1]:.3f}]"
                if c.balanced_accuracy is not None and c.balanced_ci is not None
                else ""
            )
            lines.append(
                f"{c.name}: {c.accuracy:.3f} [{c.ci[0]:.3f}, {c.ci[1]:.3f}]{balanced_c}"
                + (f" ({c.detail})" if c.detail else "")
            )
        if self.selectivity is not None:
            ci = (
                f" [95% CI {self.selectivity_ci[0]:+.3f}, {self.selectivity_ci[1]:+.3f}]"
                if self.selectivity_ci
                else ""
            )
            lines.append(f"selectivity (probe - control task): {self.selectivity:+.3f}{ci}")
            if self.balanced_selectivity is not None and self.balanced_selectivity_ci:
                blo, bhi = self.balanced_selectivity_ci
                lines.append(
                    f"balanced selectivity: {self.balanced_selectivity:+.3f} "
                    f"[95% CI {blo:+.3f}, {bhi:+.3f}]"
                )
        if self.mutual_info:
            lines.append(
                "mutual information of the probe's 1-D projection with the label: "
                f"{self.mutual_info['mi']:.3f} nats "
                f"(shuffled labels: {self.mutual_info['mi_shuffled']:.3f})"
            )
        if self.interval:
            lines.append(self.interval)
        lines.extend(self.notes)
        return "\n".join(lines)


@dataclass(repr=False)
class LayerProbeReport(WidgetDisplay):
    """Probes of every layer, with p-values corrected across layers."""

    WIDGET = "ProbePanel"

    reports: list[ProbeReport]
    layers: list[str]
    correction: str
    alpha: float
    p_raw: np.ndarray
    p_corrected: np.ndarray
    significant: np.ndarray

    def to_dataframe(self) -> pd.DataFrame:
        """Return one row per layer: accuracy with CI, controls, raw and corrected p-values."""
        import pandas as pd

        rows = []
        for layer, r, p, pc, s in zip(
            self.layers, self.reports, self.p_raw, self.p_corrected, self.significant, strict=True
        ):
            row: dict[str, Any] = {
                "layer": layer,
                "accuracy": r.accuracy,
                "ci_low": r.accuracy_ci[0],
                "ci_high": r.accuracy_ci[1],
                "balanced_accuracy": r.balanced_accuracy,
            }
            if r.permutation:
                row["shuffled"] = r.permutation["null_mean"]
            for c in r.controls.values():
                row[c.name] = c.accuracy
                if r.imbalanced and c.balanced_accuracy is not None:
                    row[f"{c.name} (balanced)"] = c.balanced_accuracy
            if r.selectivity is not None:
                row["selectivity"] = r.selectivity
                if r.selectivity_ci is not None:
                    row["selectivity_ci_low"], row["selectivity_ci_high"] = r.selectivity_ci
                if r.imbalanced and r.balanced_selectivity is not None:
                    row["selectivity (balanced)"] = r.balanced_selectivity
            row.update(
                {
                    "majority": r.chance.majority,
                    "p_raw": p,
                    "p_corrected": pc,
                    "significant": bool(s),
                }
            )
            rows.append(row)
        return pd.DataFrame(rows)

    def describe(self) -> str:
        """Return a per-layer summary with raw and corrected p-values side by side."""
        lines = [
            f"LayerProbeReport: {len(self.layers)} layers, {self.reports[0].estimator} probes, "
            f"p-values corrected across layers with {self.correction} (alpha {self.alpha})"
        ]
        for layer, r, p, pc, s in zip(
            self.layers, self.reports, self.p_raw, self.p_corrected, self.significant, strict=True
        ):
            ctrl = ", ".join(f"{c.name} {c.accuracy:.3f}" for c in r.controls.values())
            shuffled = f"shuffled {r.permutation['null_mean']:.3f}, " if r.permutation else ""
            lines.append(
                f"  {layer}: accuracy {r.accuracy:.3f} "
                f"[{r.accuracy_ci[0]:.3f}, {r.accuracy_ci[1]:.3f}]; "
                f"{shuffled}{ctrl}; p raw {_p(p)}, corrected {_p(pc)}{' *' if s else ''}"
            )
        lines.append(
            "* significant after correction; majority-class rate "
            f"{self.reports[0].chance.majority:.3f}"
        )
        return "\n".join(lines)


def _row(
    measure: str,
    accuracy: float,
    ci: tuple[float, float] | tuple[None, None] = (None, None),
    p_value: float | None = None,
) -> dict[str, Any]:
    """Return one row of :meth:`ProbeReport.to_dataframe` (no CI or p-value: None)."""
    return {
        "measure": measure,
        "accuracy": accuracy,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "p_value": p_value,
    }


def _p(p: float) -> str:
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"
