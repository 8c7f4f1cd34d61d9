"""PatchingHeatmap: the heatmap of a patching or ablation result.

Cells are coloured on a diverging scale centred on 0 (from matplotlib colormaps: one for light
backgrounds, one whose centre is dark for dark themes; the PNG uses the light one), with a legend
that gives the scale, its round ticks and its units. The scale follows one rule, computed here
and used by the live view and the PNG alike (:func:`scale_limits`): by default one scale for the
whole result (every head, the raw and the normalised view), fixed at +-1 for normalised values.
Cells whose corrected test is not significant are hatched, in the live view and in the PNG; the
tooltip gives each cell's value, interval and corrected p-value. Values travel as float32 bytes;
the per-example values of the clicked cell are sent when it is clicked. ``heatmap.selected``
follows clicks.

This module is past 400 lines because the live view and its PNG fallback must share the colour
scale rule and the axis words; keeping them in one file keeps the two from drifting apart.
"""

from __future__ import annotations

import html
import io
import math
import numbers
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import traitlets

from . import colors
from .base import FallbackWidget
from .labels import literal

if TYPE_CHECKING:
    from ..patching import PatchResult

#: Diverging map for dark themes: blue - near black - red, so 0 reads as the background.
DIVERGING_DARK = "berlin"
#: The scale choices besides an explicit half-width (a positive number).
SCALES = ("shared", "per-plot")
#: Axis titles in words.
AXIS_TITLES = {"pos": "position", "layer": "layer", "head": "head"}


def _f32(t: torch.Tensor) -> bytes:
    return t.detach().float().contiguous().numpy().astype(np.float32).tobytes()


def _u8(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().numpy().astype(np.uint8).tobytes()


# -- the colour scale: ports of widgets/src/lib/ticks.ts, so both views pick the same numbers ---


def nice_step(span: float, count: int) -> float:
    """Return a round step (1, 2 or 5 times a power of ten) near ``span / count``."""
    if not span > 0 or count < 1:
        return 1.0
    raw = span / count
    power = 10.0 ** math.floor(math.log10(raw))
    f = raw / power
    return (1 if f < 1.5 else 2 if f < 3 else 5 if f < 7 else 10) * power


def nice_limit(vmax: float) -> float:
    """Return the symmetric scale limit for values up to ``vmax``: the next round number."""
    if not vmax > 0 or not math.isfinite(vmax):
        return 1.0
    step = nice_step(vmax, 4)
    return float(f"{math.ceil(vmax / step - 1e-9) * step:.12g}")


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Return round tick values inside ``[lo, hi]``, about ``count`` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    step = nice_step(hi - lo, count)
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    # multiples of the step (adding it up would give -5.6e-17 for the zero of -0.6 + 3 * 0.2)
    return [float(f"{k * step:.12g}") + 0.0 for k in range(first, last + 1)]


def legend_ticks(lo: float, hi: float) -> list[float]:
    """Return the legend's ticks: round values, with both ends labelled when a round step allows."""
    tol = (hi - lo) * 1e-9
    for count in (4, 5, 6, 3, 2):
        ticks = nice_ticks(lo, hi, count)
        if abs(ticks[0] - lo) <= tol and abs(ticks[-1] - hi) <= tol:
            return ticks
    return nice_ticks(lo, hi, 4)


def tick_label(value: float, step: float) -> str:
    """Return ``value`` with as many decimals as ``step`` needs (minus sign as U+2212)."""
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-4:
        return f"{value:.1e}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}".replace("-", "\u2212")


def cell_text(value: float, limit: float) -> str:
    """Return a cell's number to the scale's precision (two decimals below its first digit)."""
    if not math.isfinite(value):
        return ""
    decimals = max(0, 2 - math.floor(math.log10(limit) + 1e-9)) if limit > 0 else 2
    text = f"{value:.{decimals}f}"
    if float(text) == 0:
        return "0"
    return text.replace("-", "\u2212")


def _vmax(values: np.ndarray) -> float:
    """Return the largest finite |value| to float32's precision (0.3f stays 0.3, not 0.30000001)."""
    finite = np.abs(values[np.isfinite(values)])
    return float(f"{float(finite.max()):.6g}") if finite.size else 0.0


def _planes(values: torch.Tensor) -> list[np.ndarray]:
    """Return the 2-D planes a result is shown as (one per head of a 3-axis result)."""
    v = values.detach().float().numpy()
    if v.ndim == 3:
        return [v[:, i] for i in range(v.shape[1])]
    return [v.reshape(v.shape[0], -1)]


def scale_limits(result: PatchResult, scale: str | float = "shared") -> list[float]:
    """Return the half-width of the colour scale of each plane (head) of ``result``'s values.

    ``"shared"`` (default): one limit for the whole result, +-1 for normalised values (so one
    colour always means one number) and the next round number above the largest |value|
    otherwise. ``"per-plot"``: each plane's own round limit. A positive number: that limit.
    The raw view's limit is this times ``raw_factor`` (its colours are the same).
    """
    planes = _planes(result.values)
    if not isinstance(scale, str):
        return [float(scale)] * len(planes)
    if scale == "per-plot":
        return [nice_limit(_vmax(p)) for p in planes]
    if result.normalised:
        return [1.0] * len(planes)
    return [nice_limit(max(_vmax(p) for p in planes))] * len(planes)


def check_scale(scale: object) -> str | float:
    """Return ``scale`` checked: ``"shared"``, ``"per-plot"`` or a positive finite number."""
    if isinstance(scale, str) and scale in SCALES:
        return scale
    number = isinstance(scale, numbers.Real) and not isinstance(scale, bool)
    if number and math.isfinite(float(scale)) and float(scale) > 0:  # type: ignore[arg-type]
        return float(scale)  # type: ignore[arg-type]
    raise ValueError(
        f"scale must be 'shared', 'per-plot' or a positive number (the half-width), got {scale!r}"
    )


def raw_factor(result: PatchResult) -> float:
    """Return how many raw metric units one unit of the values is (|clean - corrupted| or 1)."""
    if result.normalised and result.corrupt_baseline is not None:
        return abs(result.clean_baseline - result.corrupt_baseline) or 1.0
    return 1.0


def scale_note(result: PatchResult, scale: str | float) -> str:
    """Return what the colour scale is shared by, in words (after "scale +-L")."""
    heads = len(result.axes) == 3
    if not isinstance(scale, str):
        return "set by scale=" + f"{scale:g}"
    if scale == "per-plot":
        return "for this head only" if heads else "for this plot only"
    where = "all heads and the raw view" if heads else "the raw and the normalised view"
    if result.normalised:
        return f"fixed for normalised values, shared by {where}"
    return "shared by all heads" if heads else "from the largest |value|"


def units(result: PatchResult) -> str:
    """Return what the values are, with their units: the legend's title."""
    if result.normalised:
        return f"normalised {result.metric} (0 = corrupted run, 1 = clean run)"
    if result.method.endswith("ablation"):
        return f"change in {result.metric} from the clean run"
    return f"{result.metric} minus the corrupted run's"


class PatchingHeatmap(FallbackWidget):
    """An interactive heatmap of a :class:`~interp_magics.patching.PatchResult`."""

    _bundle = "patching"

    meta = traitlets.Dict().tag(sync=True)
    values = traitlets.Bytes().tag(sync=True)
    raw = traitlets.Bytes().tag(sync=True)
    lut = traitlets.Bytes().tag(sync=True)  # 256 x RGB for light backgrounds
    lut_dark = traitlets.Bytes().tag(sync=True)  # 256 x RGB whose centre is dark
    clean_values = traitlets.Bytes().tag(sync=True)
    corrupt_values = traitlets.Bytes().tag(sync=True)
    cell_values = traitlets.Bytes().tag(sync=True)
    ci_low = traitlets.Bytes().tag(sync=True)  # float32 per cell, or empty
    ci_high = traitlets.Bytes().tag(sync=True)
    p_corrected = traitlets.Bytes().tag(sync=True)
    significant = traitlets.Bytes().tag(sync=True)  # one byte (0 or 1) per cell, or empty
    selected = traitlets.List(traitlets.Int()).tag(sync=True)
    slice_index = traitlets.Int(0).tag(sync=True)

    def __init__(
        self,
        result: PatchResult,
        *,
        slice_index: int = 0,
        colormap: str = colors.DIVERGING,
        colormap_dark: str = DIVERGING_DARK,
        scale: str | float = "shared",
    ) -> None:
        """Show ``result`` (head ``slice_index`` of a layer x head x position sweep).

        ``scale``: ``"shared"`` (default: one colour scale for every head and the raw view, +-1
        for normalised values), ``"per-plot"`` (each head its own), or a positive half-width
        (to put several results on one scale). ``colormap`` colours light themes and the PNG,
        ``colormap_dark`` dark themes (its centre is dark, so 0 reads as the background).
        """
        self.result = result
        self.colormap = colormap
        self.scale = check_scale(scale)
        if len(result.axes) == 3 and not 0 <= slice_index < result.values.shape[1]:
            raise ValueError(f"slice_index must be in 0..{result.values.shape[1] - 1}")
        axes = list(result.axes)
        value_name = (
            "normalised " + result.metric
            if result.normalised
            else (
                "change in " + result.metric
                if result.method.endswith("ablation")
                else result.metric
            )
        )
        meta = {
            "axes": axes,
            "shape": list(result.values.shape),
            "labels": {a: result.labels.get(a, []) for a in axes},
            "axis_titles": {a: AXIS_TITLES.get(a, a) for a in axes},
            "title": self._title(),
            "metric": result.metric,
            "normalised": result.normalised,
            "value_name": value_name,
            "units": units(result),
            "scale": {
                "mode": self.scale if isinstance(self.scale, str) else "fixed",
                "limits": scale_limits(result, self.scale),
                "raw_factor": raw_factor(result),
                "note": scale_note(result, self.scale),
            },
            "clean": result.clean_baseline,
            "corrupt": result.corrupt_baseline,
            "batch": int(result.per_example.shape[-1]),
            "notes": ([result.stats_note] if result.stats_note else [])
            + list(result.notes)
            + ([result.verification["summary"]] if result.verification else []),
            "alpha": result.alpha,
            "correction": result.correction,
            "level": 1 - result.alpha,
        }
        super().__init__(
            meta=meta,
            values=_f32(result.values),
            raw=_f32(result.raw),
            lut=colors.lut(colormap),
            lut_dark=colors.lut(colormap_dark),
            clean_values=_f32(result.clean_per_example),
            corrupt_values=b""
            if result.corrupt_per_example is None
            else _f32(result.corrupt_per_example),
            ci_low=_f32(result.ci_low) if result.ci_low is not None else b"",
            ci_high=_f32(result.ci_high) if result.ci_high is not None else b"",
            p_corrected=_f32(result.p_corrected) if result.p_corrected is not None else b"",
            significant=_u8(result.significant) if result.significant is not None else b"",
            slice_index=slice_index,
        )

    def _title(self) -> str:
        r = self.result
        if r.method.endswith("ablation"):
            what = r.method.replace("-", " ")
        else:
            what = f"{r.method} {r.direction} patching"
        return f"{what} of {r.site} · {' × '.join(r.axes)}"

    def _cell(self, row: int, col: int) -> torch.Tensor:
        """Return the per-example values of the cell shown at (row, col)."""
        pe = self.result.per_example
        if pe.ndim == 2:  # one axis
            return pe[row]
        if pe.ndim == 3:
            return pe[row, col]
        return pe[row, self.slice_index, col]

    @traitlets.validate("selected")
    def _valid_selected(self, proposal: Any) -> list[int]:
        value = [int(v) for v in proposal["value"]]
        if value:
            shape = self.result.values.shape
            rows, cols = shape[0], (shape[-1] if len(shape) > 1 else 1)
            if len(value) != 2 or not (0 <= value[0] < rows and 0 <= value[1] < cols):
                raise traitlets.TraitError(
                    f"selected must be [row, column] inside {rows} x {cols}, got {value}"
                )
        return value

    @traitlets.observe("selected", "slice_index")
    def _on_selected(self, change: Any) -> None:
        if self.selected:
            self.cell_values = _f32(self._cell(*self.selected))

    # -- static fallbacks ---------------------------------------------------------------------
    def fallback_text(self) -> str:
        return self.result.describe()

    def _plane(self, v: torch.Tensor | None = None) -> np.ndarray:
        """Return the 2-D plane on show of ``v`` (default: the values)."""
        v = self.result.values if v is None else v
        if v.ndim == 1:
            return v[:, None].numpy()
        if v.ndim == 3:
            return v[:, self.slice_index].numpy()
        return v.numpy()

    def limit(self) -> float:
        """Return the half-width of the colour scale of the plane on show (the PNG's too)."""
        limits = self.meta["scale"]["limits"]
        return float(limits[min(self.slice_index, len(limits) - 1)])

    def fallback_png(self) -> bytes:
        fig = self.figure()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.08)  # titles never cut
        return buf.getvalue()

    def figure(self) -> Any:
        """Return the static picture of the plane on show (a matplotlib Figure, for the PNG)."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        r = self.result
        plane = self._plane()
        rows, cols = plane.shape
        top = self.limit()
        fig = Figure(
            figsize=(min(12, max(4.5, 2.8 + cols * 0.3)), min(8, max(2.8, 1.9 + rows * 0.32))),
            dpi=72,
        )
        ax = fig.add_subplot()
        cmap = colors._cmap(self.colormap)
        image = ax.imshow(
            plane, cmap=cmap, vmin=-top, vmax=top, aspect="auto", interpolation="nearest"
        )
        self._png_axes(ax, rows, cols)
        hatched = self._hatch_not_significant(ax, plane.shape)
        if rows * cols <= 150:
            self._png_cell_texts(ax, plane, top, cmap)
        sub = f" (head {self.slice_index})" if len(r.axes) == 3 else ""
        ax.set_title(
            f"{self._title()}{sub}\nclean {r.clean_baseline:.3g}"
            + (f", corrupted {r.corrupt_baseline:.3g}" if r.corrupt_baseline is not None else ""),
            fontsize=9,
        )
        self._png_colorbar(fig, ax, image, plane, top)
        notes = [f"colour scale ±{top:g}, {scale_note(r, self.scale)}"]
        if hatched:
            notes.append(f"hatched: not significant ({r.correction} corrected, alpha {r.alpha:g})")
        _text_below(fig, ax, "\n".join(notes))
        return fig

    def _png_axes(self, ax: Any, rows: int, cols: int) -> None:
        """Label the PNG's axes: titles in words, thinned ticks, rotated only when needed."""
        r = self.result
        row_axis = r.axes[0]
        ax.set_ylabel(AXIS_TITLES.get(row_axis, row_axis), fontsize=9)
        ax.set_yticks(range(rows), literal_labels_of(r.labels.get(row_axis), rows), fontsize=7)
        col_axis = r.axes[-1] if len(r.axes) > 1 else None
        if not col_axis:
            ax.set_xticks([])
            return
        names = r.labels.get(col_axis) or [str(i) for i in range(cols)]
        shown = thinned(cols, max(1, math.ceil(cols / 40)))
        texts = [literal(_short(names[i])) for i in shown]
        rotate = max(len(t) for t in texts) > 3 and cols > 6
        ax.set_xticks(
            shown,
            texts,
            rotation=60 if rotate else 0,
            ha="right" if rotate else "center",
            rotation_mode="anchor",
            fontsize=7,
        )
        ax.set_xlabel(AXIS_TITLES.get(col_axis, col_axis), fontsize=9)

    def _png_cell_texts(self, ax: Any, plane: np.ndarray, top: float, cmap: Any) -> None:
        """Write each cell's number to the scale's precision, in black or white by contrast."""
        for (i, j), v in np.ndenumerate(plane):
            text = cell_text(float(v), top)
            if not text:
                continue
            rgb = np.array(cmap(min(1.0, max(0.0, (float(v) / top + 1) / 2)))[:3])
            ax.text(j, i, text, ha="center", va="center", fontsize=6, color=_ink(rgb))

    def _png_colorbar(self, fig: Any, ax: Any, image: Any, plane: np.ndarray, top: float) -> None:
        """Add the legend: round ticks, units, what the scale is shared by, clipped values."""
        finite = plane[np.isfinite(plane)]
        edge = top * (1 + 1e-3)  # float noise past +-1 is not "beyond" (patching/scale.ts too)
        low, high = bool((finite < -edge).any()), bool((finite > edge).any())
        extend = "both" if low and high else "min" if low else "max" if high else "neither"
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, extend=extend)
        ticks = legend_ticks(-top, top)
        step = ticks[1] - ticks[0] if len(ticks) > 1 else top
        bar.set_ticks(ticks, labels=[tick_label(t, step) for t in ticks])
        bar.ax.tick_params(labelsize=7)
        bar.set_label(textwrap.fill(units(self.result), 34), fontsize=8)

    def _hatch_not_significant(self, ax: Any, shape: tuple[int, ...]) -> int:
        """Hatch the cells whose corrected test is not significant; return how many."""
        from matplotlib.patches import Rectangle

        if self.result.significant is None:
            return 0
        sig = self._plane(self.result.significant).reshape(shape)
        count = 0
        for (i, j), ok in np.ndenumerate(sig):
            if not ok:
                count += 1
                ax.add_patch(
                    Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0, color="0.45")
                )
        return count

    def fallback_html(self, png: bytes | None = None) -> str:
        base = super().fallback_html(png)
        top = self.result.top(10)
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in top.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
            for row in top.itertuples(index=False)
        )
        return base.replace(
            "</div>", f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>", 1
        )


def thinned(n: int, every: int) -> list[int]:
    """Return the indices of every ``every``-th label of ``n``, the last one always among them.

    The last position is often the decisive one (where the answer is read), so it replaces the
    shown label before it rather than being dropped (widgets/src/patching/layout.ts: the same).
    """
    shown = list(range(0, n, max(1, every)))
    if shown and shown[-1] != n - 1:
        shown[-1] = n - 1
    return shown


def literal_labels_of(labels: list[str] | None, n: int) -> list[str]:
    """Return ``n`` tick labels drawn verbatim (their indices when there are no labels)."""
    return [literal(labels[i]) if labels else str(i) for i in range(n)]


def _text_below(fig: Any, ax: Any, text: str) -> None:
    """Write ``text`` under everything ``ax`` draws (tick labels and axis title included)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # type: ignore[no-untyped-call]
    box = ax.get_tightbbox(renderer)
    x = ax.get_position().x0
    fig.text(x, (box.y0 - 4) / fig.bbox.height, text, va="top", ha="left", fontsize=8)


def _ink(rgb: np.ndarray) -> str:
    """Return black or white, whichever contrasts more with ``rgb`` (0..1 floats)."""
    lin = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    lum = float(lin @ np.array([0.2126, 0.7152, 0.0722]))
    return "black" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "white"


def _short(text: str, n: int = 14) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
