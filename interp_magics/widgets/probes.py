"""ProbePanel: a probe next to its controls, or probes across layers with corrections.

The panel leads with its verdict in words (:func:`.probe_verdict.verdict`, so the live view, the
PNG and the text fallback say the same thing), then the chart, then a table that carries every
number as text. The data is a small summary (accuracies, intervals, p-values, tooltip lines),
sent as one dict; every number is formatted here, once. (Just past 400 lines: the panel's
data and its PNG fallback are drawn from the same numbers, side by side.)
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import traitlets

from .base import FallbackWidget
from .labels import literal
from .probe_verdict import fmt_ci, fmt_p, layer_axis, p_cell, verdict

if TYPE_CHECKING:
    from ..probes import ControlResult, LayerProbeReport, ProbeReport


#: Series colours by role, (light theme, dark theme): Okabe-Ito hues (Tol's purple for the
#: control task), each at least 3:1 against its theme's background, one blue only.
PALETTE: dict[str, tuple[str, str]] = {
    "probe": ("#0072B2", "#56B4E9"),
    "shuffled": ("#D55E00", "#E69F00"),
    "random": ("#007A5A", "#2BC79A"),
    "task": ("#AA4499", "#CC79A7"),
}
#: Colours of further controls (other representations), in order.
OTHERS: tuple[tuple[str, str], ...] = (("#8F6A00", "#F0E442"), ("#555555", "#BBBBBB"))


# -- the panel ---------------------------------------------------------------------------------


def _colour(role: str, index: int = 0) -> dict[str, str]:
    light, dark = PALETTE[role] if role in PALETTE else OTHERS[index % len(OTHERS)]
    return {"light": light, "dark": dark}


def _control_role(c: ControlResult) -> str:
    return {"control task": "task", "random features": "random"}.get(c.name, "other")


def _control_items(r: ProbeReport) -> list[tuple[ControlResult, str, dict[str, str]]]:
    """Return each control with its role and colour (further controls in palette order)."""
    out, others = [], 0
    for c in r.controls.values():
        role = _control_role(c)
        out.append((c, role, _colour(role, others)))
        others += role == "other"
    return out


def _bar(
    name: str, role: str, colour: dict[str, str], value: float, ci: Any, tip: list[str]
) -> dict[str, Any]:
    return {
        "name": name,
        "role": role,
        "color": colour,
        "value": value,
        "lo": ci[0],
        "hi": ci[1],
        "tip": tip,
    }


def _bars(r: ProbeReport) -> list[dict[str, Any]]:
    """Return the bars of one report: the probe, its balanced accuracy, and every control."""
    lo, hi = r.accuracy_ci
    blo, bhi = r.balanced_ci
    tests = []
    if r.permutation:
        tests.append(f"permutation p {fmt_p(r.p_value)} ({r.permutation['n']} permutations)")
    if math.isfinite(r.binomial_p):
        tests.append(f"binomial p vs majority baseline {fmt_p(r.binomial_p)}")
    probe = _colour("probe")
    accuracy = f"held-out accuracy {r.accuracy:.3f} [95% CI {lo:.3f}, {hi:.3f}]"
    balanced = f"balanced accuracy {r.balanced_accuracy:.3f} [95% CI {blo:.3f}, {bhi:.3f}]"
    bars = [
        _bar("probe", "probe", probe, r.accuracy, r.accuracy_ci, ["probe", accuracy, *tests]),
        _bar(
            "probe (balanced)",
            "balanced",
            probe,
            r.balanced_accuracy,
            r.balanced_ci,
            ["probe (balanced: mean recall per class)", balanced],
        ),
    ]
    if r.permutation:
        nlo, nhi = r.permutation["null_ci"]
        mean, n = r.permutation["null_mean"], r.permutation["n"]
        tip = [
            "shuffled labels (the permutation test's null)",
            f"mean accuracy {mean:.3f} [95% of permutations {nlo:.3f}, {nhi:.3f}]",
            f"over {n} permutations; probe − shuffled {r.accuracy - mean:+.3f}",
        ]
        bars.append(_bar("shuffled labels", "shuffled", _colour("shuffled"), mean, (nlo, nhi), tip))
    for c, role, colour in _control_items(r):
        tip = [
            c.name + (f" ({c.detail})" if c.detail else ""),
            f"held-out accuracy {c.accuracy:.3f} [95% CI {c.ci[0]:.3f}, {c.ci[1]:.3f}]",
        ]
        if c.balanced_accuracy is not None:
            tip.append(f"balanced accuracy {c.balanced_accuracy:.3f}")
        sel = r.selectivity_ci
        if c.name == "control task" and r.selectivity is not None and sel is not None:
            tip.append(f"selectivity {r.selectivity:+.3f} [95% CI {sel[0]:+.3f}, {sel[1]:+.3f}]")
        else:
            tip.append(f"probe − {c.name} {r.accuracy - c.accuracy:+.3f}")
        bars.append(_bar(c.name, role, colour, c.accuracy, c.ci, tip))
    measures = [str(m) for m in r.to_dataframe()["measure"]]
    for b in bars:  # the table row the bar stands for (highlighted with it)
        b["row"] = measures.index(b["name"]) if b["name"] in measures else None
    return bars


def _single_table(r: ProbeReport) -> tuple[list[dict[str, str]], list[list[str]]]:
    """Return the columns and rows of one report's table (``to_dataframe``, formatted)."""
    columns = [
        {"key": "measure", "label": "measure"},
        {"key": "accuracy", "label": "accuracy"},
        {"key": "ci", "label": "95% CI"},
        {"key": "p_value", "label": "p\u2011value"},
    ]
    rows = [
        [
            str(row.measure),
            f"{row.accuracy:+.3f}"
            if str(row.measure).startswith("selectivity")
            else f"{row.accuracy:.3f}",
            fmt_ci((_num(row.ci_low), _num(row.ci_high))),
            p_cell(_num(row.p_value)),
        ]
        for row in r.to_dataframe().itertuples(index=False)
    ]
    return columns, rows


#: The layer table's decisive columns, first: they stay in the first table at any width.
DECISIVE = ("layer", "accuracy", "ci", "p_corrected", "significant")
_LABELS = {
    "ci": "95% CI",
    "p_corrected": "p\u00a0corrected",  # no-break space: "p" never ends a header line alone
    "p_raw": "p\u00a0raw",
    "balanced_accuracy": "balanced accuracy",
    "shuffled": "shuffled labels",
    "selectivity_ci": "selectivity 95% CI",
}


def _layer_table(lr: LayerProbeReport) -> tuple[list[dict[str, str]], list[list[str]]]:
    """Return the columns and rows of a sweep's table: decisive columns first, then the rest."""
    df = lr.to_dataframe()
    rows: list[dict[str, str]] = []
    for rec in df.to_dict("records"):
        row: dict[str, str] = {}
        for key, value in rec.items():
            v = _num(value) if not isinstance(value, (bool, np.bool_, str)) else value
            if key in ("ci_low", "ci_high", "selectivity_ci_low", "selectivity_ci_high"):
                continue
            if key in ("p_raw", "p_corrected"):
                row[key] = p_cell(v)  # type: ignore[arg-type]
            elif key == "significant":
                row[key] = "yes" if value else "no"
            elif isinstance(v, str):
                row[key] = v
            else:
                row[key] = (
                    ""
                    if v is None
                    else (f"{v:+.3f}" if key.startswith("selectivity") else f"{v:.3f}")
                )
        row["ci"] = fmt_ci((rec["ci_low"], rec["ci_high"]))
        if "selectivity_ci_low" in rec:
            row["selectivity_ci"] = fmt_ci((rec["selectivity_ci_low"], rec["selectivity_ci_high"]))
        rows.append(row)
    keys = [*DECISIVE, *(k for k in rows[0] if k not in DECISIVE and k != "p_raw"), "p_raw"]
    columns = [{"key": k, "label": _LABELS.get(k, k)} for k in keys]
    return columns, [[row.get(k, "") for k in keys] for row in rows]


def _layer_tips(lr: LayerProbeReport) -> list[list[str]]:
    """Return the tooltip lines of each layer: its accuracy, CI, p-values and every control."""
    tips = []
    for layer, r, p, pc, s in zip(
        lr.layers, lr.reports, lr.p_raw, lr.p_corrected, lr.significant, strict=True
    ):
        lo, hi = r.accuracy_ci
        lines = [
            layer,
            f"probe {r.accuracy:.3f} [95% CI {lo:.3f}, {hi:.3f}]",
            f"p raw {fmt_p(float(p))}, p corrected {fmt_p(float(pc))} ({lr.correction}): "
            + ("significant" if s else "not significant"),
        ]
        if r.permutation:
            lines.append(f"shuffled labels {r.permutation['null_mean']:.3f}")
        for c in r.controls.values():
            lines.append(f"{c.name} {c.accuracy:.3f} [95% CI {c.ci[0]:.3f}, {c.ci[1]:.3f}]")
        if r.selectivity is not None:
            lines.append(f"selectivity {r.selectivity:+.3f}")
        lines.append(f"majority baseline {r.chance.majority:.3f}")
        tips.append(lines)
    return tips


def _series(lr: LayerProbeReport) -> list[dict[str, Any]]:
    """Return the lines of a sweep: the probe (with its CI band), shuffled labels, controls."""
    reports = lr.reports
    series: list[dict[str, Any]] = [
        {
            "name": "probe",
            "role": "probe",
            "color": _colour("probe"),
            "values": [r.accuracy for r in reports],
            "lo": [r.accuracy_ci[0] for r in reports],
            "hi": [r.accuracy_ci[1] for r in reports],
        }
    ]
    if all(r.permutation for r in reports):
        null = [r.permutation["null_mean"] for r in reports]  # type: ignore[index]
        series.append(_line("shuffled labels", "shuffled", _colour("shuffled"), null))
    for c, role, colour in _control_items(reports[0]):
        series.append(_line(c.name, role, colour, [r.controls[c.name].accuracy for r in reports]))
    return series


def _line(name: str, role: str, colour: dict[str, str], values: list[float]) -> dict[str, Any]:
    return {"name": name, "role": role, "color": colour, "values": values}


def _num(x: Any) -> float | None:
    if x is None:
        return None
    value = float(x)
    return value if np.isfinite(value) else None


class ProbePanel(FallbackWidget):
    """The panel of a :class:`~interp_magics.probes.ProbeReport` or a ``LayerProbeReport``."""

    _bundle = "probes"

    data = traitlets.Dict().tag(sync=True)

    def __init__(self, report: ProbeReport | LayerProbeReport) -> None:
        self.report = report
        self.verdict = verdict(report)
        super().__init__(data=self._data())

    def _is_layers(self) -> bool:
        return hasattr(self.report, "reports")

    def _data(self) -> dict[str, Any]:
        v = self.verdict
        base: dict[str, Any] = {
            "verdict": {"headline": v.headline, "detail": v.detail, "level": v.level},
            "value_title": "held-out accuracy",
        }
        if not self._is_layers():
            r: ProbeReport = self.report  # type: ignore[assignment]
            columns, rows = _single_table(r)
            return {
                **base,
                "mode": "single",
                "title": f"Probe{f' of {r.name}' if r.name else ''}: {r.estimator}, "
                f"{r.cv}-fold CV, {r.n_examples} examples, accuracy vs controls",
                "chance": self._chance(r),
                "bars": _bars(r),
                "columns": columns,
                "rows": rows,
                "key_columns": 4,
                "notes": [*([r.interval] if r.interval else []), *r.notes],
            }
        lr: LayerProbeReport = self.report  # type: ignore[assignment]
        first = lr.reports[0]
        ticks, x_title = layer_axis(lr.layers)
        columns, rows = _layer_table(lr)
        return {
            **base,
            "mode": "layers",
            "title": f"Probes by layer: {first.estimator}, {first.cv}-fold CV, "
            f"{first.n_examples} examples; p corrected across layers with {lr.correction}",
            "chance": self._chance(first),
            "layers": list(lr.layers),
            "ticks": ticks,
            "x_title": x_title,
            "series": _series(lr),
            "significant": [bool(s) for s in lr.significant],
            "correction": lr.correction,
            "tips": _layer_tips(lr),
            "columns": columns,
            "rows": rows,
            "key_columns": len(DECISIVE),
            "notes": [*([first.interval] if first.interval else [])],
        }

    @staticmethod
    def _chance(r: ProbeReport) -> list[dict[str, Any]]:
        return [
            {"name": "majority baseline", "role": "majority", "value": r.chance.majority},
            {"name": "frequency guess", "role": "frequency", "value": r.chance.frequency},
        ]

    def fallback_text(self) -> str:
        return f"{self.verdict.headline}\n{self.report.describe()}"

    def fallback_png(self) -> bytes:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        d = self.data
        fig = Figure(figsize=(7.5, 3.8), dpi=72)
        ax = fig.add_subplot()
        majority, frequency = (c["value"] for c in d["chance"])
        if d["mode"] == "single":
            _png_bars(ax, d["bars"])
            ax.axvline(
                majority, color="grey", ls="--", lw=1, label=f"majority baseline {majority:.3f}"
            )
            ax.axvline(
                frequency, color="grey", ls=":", lw=1, label=f"frequency guess {frequency:.3f}"
            )
            ax.set_xlabel(d["value_title"])
        else:
            _png_layers(ax, d)
            ax.axhline(
                majority, color="grey", ls="--", lw=1, label=f"majority baseline {majority:.3f}"
            )
            ax.set_xlabel(literal(d["x_title"]))
            ax.set_ylabel(d["value_title"])
        fig.suptitle(
            literal(d["verdict"]["headline"]), fontsize=10, fontweight="bold", x=0.02, ha="left"
        )
        ax.set_title(literal(d["title"]), fontsize=8, loc="left")
        # outside the plot, so it never hides a curve: beside a sweep, under the bars (whose
        # values stand on their right)
        where = (
            {"loc": "center left", "bbox_to_anchor": (1.01, 0.5)}
            if d["mode"] == "layers"
            else {"loc": "upper center", "bbox_to_anchor": (0.5, -0.18), "ncol": 2}
        )
        ax.legend(fontsize=7, frameon=False, **where)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.08)
        return buf.getvalue()

    def fallback_html(self, png: bytes | None = None) -> str:
        table = self.report.to_dataframe().to_html(
            index=False, float_format=lambda v: f"{v:.4g}", na_rep="", escape=True
        )
        return super().fallback_html(png).replace("</div>", table + "</div>", 1)


def _png_bars(ax: Any, bars: list[dict[str, Any]]) -> None:
    """Draw one report's bars with CI whiskers and their values on a matplotlib axis."""
    ys = np.arange(len(bars))[::-1]
    trans = ax.get_yaxis_transform()  # x in axes fractions, y in data
    for y, b in zip(ys, bars, strict=True):
        alpha = 0.55 if b["role"] == "balanced" else 1.0
        ax.barh(y, b["value"], color=b["color"]["light"], alpha=alpha, height=0.6)
        if b["lo"] is not None:
            err = [[b["value"] - b["lo"]], [b["hi"] - b["value"]]]
            ax.errorbar(b["value"], y, xerr=err, color="black", capsize=3)
        # the values in a column right of the plot, as in the live view: never on a whisker
        ax.text(1.02, y, f"{b['value']:.3f}", va="center", fontsize=8, transform=trans)
    ax.set_yticks(ys, [literal(b["name"]) for b in bars], fontsize=8)
    ax.set_xlim(0, 1)


def _png_layers(ax: Any, d: dict[str, Any]) -> None:
    """Draw a sweep's lines, the probe's CI band and the significance stars on an axis."""
    x = np.arange(len(d["layers"]))
    styles = {"probe": "-", "shuffled": "-", "random": "--", "task": ":"}
    for s in d["series"]:
        colour = s["color"]["light"]
        ax.plot(
            x,
            s["values"],
            styles.get(s["role"], "-."),
            color=colour,
            lw=2 if s["role"] == "probe" else 1.2,
            label=s["name"],
        )
        if "lo" in s:
            ax.fill_between(x, s["lo"], s["hi"], color=colour, alpha=0.2)
    probe = d["series"][0]["values"]
    for i, sig in enumerate(d["significant"]):
        if sig:
            ax.annotate("*", (i, probe[i]), ha="center", va="bottom", fontsize=12)
    ax.set_xticks(
        x, [literal(t if len(t) <= 16 else "…" + t[-15:]) for t in d["ticks"]], fontsize=7
    )
    ax.set_ylim(0, 1.1)  # room for the significance stars above accuracy 1
    ax.set_yticks(np.linspace(0, 1, 6))
