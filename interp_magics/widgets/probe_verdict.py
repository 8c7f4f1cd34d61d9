"""What a probe report shows, in words: the verdict every view of a probe leads with.

"Above chance" means the test rejects chance at alpha (corrected across layers in a sweep) and
the accuracy is above the majority rate (with imbalanced classes, judged by the binomial test
against the majority rate). "Above a control" means, for the control task, a selectivity interval
above 0; for any other control, the probe's accuracy above that control's 95% interval. The live
panel, its PNG and its text fallback all print these words, so they are computed once, here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..probes import ControlResult, LayerProbeReport, ProbeReport

#: Significance level of a single probe's verdict (a layer sweep uses its own ``alpha``).
ALPHA = 0.05


@dataclass(frozen=True)
class Verdict:
    """What a probe report shows, in words: a headline, the numbers behind it, a level."""

    headline: str  # e.g. "Above chance and above controls at layers 2-4, corrected p < 0.01"
    detail: str  # the accuracy, interval and baselines the headline rests on
    level: str  # "above", "partial" (above chance, not above a baseline), "chance", "untested"


@dataclass(frozen=True)
class _Standing:
    """Where one probe stands against chance, the majority baseline and its controls."""

    significant: bool
    above_majority: bool
    not_above: list[str]  # controls the probe does not beat


def fmt_p(p: float) -> str:
    """Return a p-value for prose: ``"< 0.001"`` or ``"= 0.76"`` (two significant digits)."""
    if not math.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 1e-3 else f"= {p:.2g}"


def p_cell(p: float | None) -> str:
    """Return a p-value for a table cell: three significant digits, or exponent form."""
    if p is None or not math.isfinite(p):
        return ""
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3g}"


def fmt_ci(ci: Sequence[float | None] | None) -> str:
    """Return a 95% interval as ``"0.425–0.725"`` ("" when there is none)."""
    if ci is None or ci[0] is None or ci[1] is None:
        return ""
    return f"{ci[0]:.3f}–{ci[1]:.3f}"


def _beats(r: ProbeReport, c: ControlResult) -> bool:
    """Return whether probe ``r`` is above control ``c``.

    The control task by its selectivity interval (the probe minus the control task, paired over
    examples: its lower 95% bound above 0); any other control when the probe's accuracy is above
    the control's 95% interval.
    """
    if c.name == "control task" and r.selectivity_ci is not None:
        return r.selectivity_ci[0] > 0
    return r.accuracy > c.ci[1] + 1e-9  # an interval's bound of 1.0 can come out as 0.99999...


def _standing(r: ProbeReport, significant: bool) -> _Standing:
    """Return where probe ``r`` stands; ``significant``: its (corrected) test rejected chance."""
    majority = r.chance.majority
    if not r.imbalanced:  # the permutation test already tests against chance
        above = r.accuracy > majority
    elif math.isfinite(r.binomial_p):  # imbalanced: the majority rate is the bar to clear
        above = r.accuracy > majority and r.binomial_p < ALPHA
    else:
        above = r.accuracy_ci[0] > majority
    not_above = [c.name for c in r.controls.values() if not _beats(r, c)]
    return _Standing(significant, above, not_above)


def _controls_phrase(names: list[str]) -> str:
    """Return "the control task", "the random features control", or a list of them."""
    named = [n if n == "control task" else f"{n} control" for n in dict.fromkeys(names)]
    text = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " or " + named[-1]
    return "the " + text


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def verdict(report: ProbeReport | LayerProbeReport) -> Verdict:
    """Return the verdict of a probe report (one probe, or a layer sweep) in words.

    A probe is *above chance* when its test rejects chance at alpha (permutation p, or the
    binomial p when no permutation ran; corrected across layers in a sweep) and its accuracy is
    above the majority-class rate (with imbalanced classes, by the binomial test against that
    rate). It is *above controls* when it beats every control (see :func:`_beats`).
    """
    if hasattr(report, "reports"):
        return _layers_verdict(report)  # type: ignore[arg-type]
    return _single_verdict(report)


def _single_verdict(r: ProbeReport) -> Verdict:
    p = r.p_value
    test = "permutation" if r.permutation else "binomial"
    majority = r.chance.majority
    detail = (
        f"Held-out accuracy {r.accuracy:.3f} [95% CI {r.accuracy_ci[0]:.3f}, "
        f"{r.accuracy_ci[1]:.3f}] vs majority baseline {majority:.3f}"
        + (f", shuffled labels {r.permutation['null_mean']:.3f}" if r.permutation else "")
        + (f"; {test} test p {fmt_p(p)}" if math.isfinite(p) else "")
    )
    if not math.isfinite(p):
        return Verdict(
            "No significance test ran (no permutations, no binomial test)", detail, "untested"
        )
    s = _standing(r, p < ALPHA)
    if not s.significant:
        what = "the majority baseline" if r.accuracy <= majority else "chance"
        return Verdict(f"Not above {what}, p {fmt_p(p)}", detail, "chance")
    if not s.above_majority:
        baseline = f"the majority baseline ({majority:.2f})"
        head = f"Above shuffled labels but not above {baseline}, p {fmt_p(p)}"
        return Verdict(head, detail, "partial")
    if s.not_above:
        head = f"Above chance but not above {_controls_phrase(s.not_above)}, p {fmt_p(p)}"
        return Verdict(head, detail, "partial")
    controls = " and above controls" if r.controls else ""
    return Verdict(f"Above chance{controls}, p {fmt_p(p)}", detail, "above")


def layer_axis(layers: Sequence[str]) -> tuple[list[str], str]:
    """Return each layer's tick label and the layer axis title.

    ``["resid_post.0", "resid_post.1"]`` gives ``(["0", "1"], "layer (resid_post.*)")``: the one
    number that varies between the names, and the name with it starred. Names without such a
    number keep their text after the common dotted prefix.
    """
    numbers = [re.findall(r"\d+", name) for name in layers]
    if len(layers) > 1 and numbers[0] and len({len(n) for n in numbers}) == 1:
        varying = [j for j in range(len(numbers[0])) if len({n[j] for n in numbers}) > 1]
        if len(varying) == 1:
            j = varying[0]
            count = iter(range(len(numbers[0])))
            pattern = re.sub(r"\d+", lambda m: "*" if next(count) == j else m.group(0), layers[0])
            return [n[j] for n in numbers], f"layer ({pattern})"
    prefix = _common_dotted_prefix(layers)
    return [name[len(prefix) :] or name for name in layers], "layer"


def _common_dotted_prefix(names: Sequence[str]) -> str:
    if len(names) < 2:
        return ""
    prefix = names[0]
    for name in names:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    return prefix[: prefix.rfind(".") + 1]


def _spans(indices: Sequence[int], ticks: Sequence[str]) -> str:
    """Return "layer 3" or "layers 2-4, 7": runs of consecutive layer numbers as ranges."""
    numeric = all(t.isdigit() for t in ticks)
    runs: list[list[int]] = []
    for i in indices:
        last = runs[-1][-1] if runs else None
        if last is not None and numeric and int(ticks[i]) == int(ticks[last]) + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    parts = [
        ticks[run[0]] if len(run) == 1 else f"{ticks[run[0]]}-{ticks[run[-1]]}" for run in runs
    ]
    return ("layer " if len(indices) == 1 else "layers ") + ", ".join(parts)


def _p_bound(ps: Sequence[float]) -> str:
    """Return "corrected p = 0.012" for one layer, "corrected p < 0.01" for several."""
    if len(ps) == 1:
        return f"corrected p {fmt_p(ps[0])}"
    worst = max(ps)
    for bound in (0.001, 0.01, 0.05):
        if worst < bound:
            return f"corrected p < {bound:g}"
    return f"corrected p ≤ {worst:.2g}"


def _layers_verdict(lr: LayerProbeReport) -> Verdict:
    ticks, _ = layer_axis(lr.layers)
    ps = [float(p) for p in lr.p_corrected]
    stand = [_standing(r, bool(s)) for r, s in zip(lr.reports, lr.significant, strict=True)]
    sig = [i for i, s in enumerate(stand) if s.significant]
    clean = [i for i in sig if stand[i].above_majority and not stand[i].not_above]
    best = int(np.argmax([r.accuracy for r in lr.reports]))
    b = lr.reports[best]
    detail = (
        f"best layer {lr.layers[best]}: held-out accuracy {b.accuracy:.3f} [95% CI "
        f"{b.accuracy_ci[0]:.3f}, {b.accuracy_ci[1]:.3f}] vs majority baseline "
        f"{b.chance.majority:.3f}; {len(sig)} of {len(lr.layers)} layers significant after "
        f"{lr.correction} (alpha {lr.alpha:g})"
    )
    if not sig:
        low = int(np.argmin(ps))
        what = "the majority baseline" if b.accuracy <= b.chance.majority else "chance"
        head = f"Not above {what} at any layer, smallest corrected p {fmt_p(ps[low])}"
        return Verdict(head, _capital(detail), "chance")
    rest = [i for i in sig if i not in clean]
    notes = []
    below_majority = [i for i in rest if not stand[i].above_majority]
    if below_majority:
        notes.append(
            f"above shuffled labels but not above the majority baseline at "
            f"{_spans(below_majority, ticks)}"
        )
    below_controls = [i for i in rest if stand[i].above_majority]
    if below_controls:
        names = [n for i in below_controls for n in stand[i].not_above]
        where = _spans(below_controls, ticks)
        notes.append(f"above chance but not above {_controls_phrase(names)} at {where}")
    if not clean:
        p = _p_bound([ps[i] for i in sig])
        more = _capital("; ".join([*notes[1:], detail]))
        return Verdict(_capital(notes[0]) + f", {p}", more, "partial")
    controls = " and above controls" if lr.reports[0].controls else ""
    where = f"{_spans(clean, ticks)}, {_p_bound([ps[i] for i in clean])}"
    return Verdict(
        f"Above chance{controls} at {where}", _capital("; ".join([*notes, detail])), "above"
    )
