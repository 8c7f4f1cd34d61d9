"""ProbePanel: a probe next to its controls, or probes across layers with corrections.

The panel's data is a small summary (accuracies, intervals, p-values), sent as one dict; the
table under the chart carries every number as text, and the static fallback repeats it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import traitlets

from . import colors
from .base import FallbackWidget
from .labels import literal

if TYPE_CHECKING:
    from ..probes import LayerProbeReport, ProbeReport


def _num(x: Any) -> float | None:
    if x is None:
        return None
    value = float(x)
    return value if np.isfinite(value) else None


def _selectivity(r: ProbeReport) -> str:
    ci = r.selectivity_ci
    return f"selectivity {r.selectivity:+.3f}" + (
        f" [95% CI {ci[0]:+.3f}, {ci[1]:+.3f}]" if ci is not None else ""
    )


class ProbePanel(FallbackWidget):
    """The panel of a :class:`~interp_magics.probes.ProbeReport` or a ``LayerProbeReport``."""

    _bundle = "probes"

    data = traitlets.Dict().tag(sync=True)

    def __init__(self, report: ProbeReport | LayerProbeReport) -> None:
        self.report = report
        super().__init__(data=self._data())

    def _is_layers(self) -> bool:
        return hasattr(self.report, "reports")

    def _bars(self, r: ProbeReport) -> list[dict[str, Any]]:
        bars = [
            {"name": "probe", "value": r.accuracy, "lo": r.accuracy_ci[0], "hi": r.accuracy_ci[1]},
            {
                "name": "probe (balanced)",
                "value": r.balanced_accuracy,
                "lo": r.balanced_ci[0],
                "hi": r.balanced_ci[1],
            },
        ]
        if r.permutation:
            lo, hi = r.permutation["null_ci"]
            bars.append(
                {"name": "shuffled labels", "value": r.permutation["null_mean"], "lo": lo, "hi": hi}
            )
        for c in r.controls.values():
            bars.append({"name": c.name, "value": c.accuracy, "lo": c.ci[0], "hi": c.ci[1]})
        return bars

    def _data(self) -> dict[str, Any]:
        df = self.report.to_dataframe()
        rows = [
            [
                _num(v)
                if isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)
                else (None if v is None else str(v))
                for v in row
            ]
            for row in df.itertuples(index=False)
        ]
        base = {
            "colors": list(colors.CATEGORICAL),
            "columns": [str(c) for c in df.columns],
            "rows": rows,
        }
        if not self._is_layers():
            r: ProbeReport = self.report  # type: ignore[assignment]
            return {
                **base,
                "mode": "single",
                "title": f"Probe{f' of {r.name}' if r.name else ''}: accuracy vs controls "
                f"({r.cv}-fold CV, {r.n_examples} examples)",
                "majority": r.chance.majority,
                "frequency": r.chance.frequency,
                "bars": self._bars(r),
                "notes": [
                    f"permutation p = {r.permutation['p_value']:.4g} "
                    f"({r.permutation['n']} permutations)"
                    if r.permutation
                    else "",
                    f"binomial test vs majority class p = {r.binomial_p:.4g}"
                    if np.isfinite(r.binomial_p)
                    else "no binomial test (examples are not independent)"
                    if r.grouped
                    else "",
                    *([_selectivity(r)] if r.selectivity is not None else []),
                    *([r.interval] if r.interval else []),
                    *r.notes,
                ],
            }
        lr: LayerProbeReport = self.report  # type: ignore[assignment]
        first = lr.reports[0]
        series = [
            {
                "name": "probe",
                "values": [r.accuracy for r in lr.reports],
                "lo": [r.accuracy_ci[0] for r in lr.reports],
                "hi": [r.accuracy_ci[1] for r in lr.reports],
            }
        ]
        if first.permutation:
            series.append(
                {
                    "name": "shuffled labels",
                    "values": [r.permutation["null_mean"] for r in lr.reports if r.permutation],
                }
            )
        for name in first.controls:
            series.append({"name": name, "values": [r.controls[name].accuracy for r in lr.reports]})
        return {
            **base,
            "mode": "layers",
            "title": f"Probes by layer ({first.estimator}, {first.cv}-fold CV), "
            f"p corrected with {lr.correction}",
            "majority": first.chance.majority,
            "frequency": first.chance.frequency,
            "layers": list(lr.layers),
            "series": series,
            "significant": [bool(s) for s in lr.significant],
            "notes": [
                f"{int(lr.significant.sum())} of {len(lr.layers)} layers significant at alpha "
                f"{lr.alpha} after {lr.correction}"
            ],
        }

    def fallback_text(self) -> str:
        return self.report.describe()

    def fallback_png(self) -> bytes:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        d = self.data
        palette = list(colors.CATEGORICAL)
        fig = Figure(figsize=(7.5, 3.6), dpi=72)
        ax = fig.add_subplot()
        if d["mode"] == "single":
            bars = d["bars"]
            ys = np.arange(len(bars))[::-1]
            for y, b, c in zip(ys, bars, palette, strict=False):
                ax.barh(y, b["value"], color=c, height=0.6)
                if b["lo"] is not None:
                    ax.errorbar(
                        b["value"],
                        y,
                        xerr=[[b["value"] - b["lo"]], [b["hi"] - b["value"]]],
                        color="black",
                        capsize=3,
                    )
                right = max(b["value"], b["hi"] if b["hi"] is not None else b["value"])
                ax.text(  # past the whisker, so the number stays readable
                    min(right + 0.015, 0.93), y, f"{b['value']:.3f}", va="center", fontsize=8
                )
            ax.set_yticks(ys, [literal(b["name"]) for b in bars], fontsize=8)
            ax.set_xlim(0, 1)
            ax.axvline(
                d["majority"], color="grey", ls="--", lw=1, label=f"majority {d['majority']:.3f}"
            )
            ax.axvline(
                d["frequency"],
                color="grey",
                ls=":",
                lw=1,
                label=f"frequency guess {d['frequency']:.3f}",
            )
            ax.set_xlabel("held-out accuracy")
        else:
            x = np.arange(len(d["layers"]))
            for s, c in zip(d["series"], palette, strict=False):
                ax.plot(
                    x, s["values"], color=c, lw=2 if s["name"] == "probe" else 1.2, label=s["name"]
                )
                if "lo" in s:
                    ax.fill_between(x, s["lo"], s["hi"], color=c, alpha=0.2)
            probe = d["series"][0]["values"]
            for i, sig in enumerate(d["significant"]):
                if sig:
                    ax.annotate("*", (i, probe[i]), ha="center", va="bottom", fontsize=12)
            ax.axhline(d["majority"], color="grey", ls="--", lw=1, label="majority")
            ax.set_xticks(
                x,
                [literal(lbl if len(lbl) <= 16 else "…" + lbl[-15:]) for lbl in d["layers"]],
                rotation=45,
                fontsize=7,
                ha="right",
            )
            ax.set_ylim(0, 1.1)  # room for the significance stars above accuracy 1
            ax.set_yticks(np.linspace(0, 1, 6))
            ax.set_ylabel("held-out accuracy")
        ax.set_title(d["title"], fontsize=9)
        # beside the plot, so it never hides a curve
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.08)
        return buf.getvalue()

    def fallback_html(self, png: bytes | None = None) -> str:
        table = self.report.to_dataframe().to_html(
            index=False, float_format=lambda v: f"{v:.4g}", na_rep="", escape=True
        )
        return super().fallback_html(png).replace("</div>", table + "</div>", 1)
