"""PatchingHeatmap: the heatmap of a patching or ablation result.

Cells are coloured on a diverging scale centred on 0 (from one matplotlib colormap, the same
for the live view and the PNG), with a legend. Cells whose corrected test is not significant are
hatched, in the live view and in the PNG; the hover readout gives each cell's interval and
corrected p-value. Values travel as float32 bytes; the per-example values of the clicked cell
are sent when it is clicked. ``heatmap.selected`` follows clicks.
"""

from __future__ import annotations

import html
import io
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import traitlets

from . import colors
from .base import FallbackWidget
from .labels import literal

if TYPE_CHECKING:
    from ..patching import PatchResult


def _f32(t: torch.Tensor) -> bytes:
    return t.detach().float().contiguous().numpy().astype(np.float32).tobytes()


def _u8(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().numpy().astype(np.uint8).tobytes()


class PatchingHeatmap(FallbackWidget):
    """An interactive heatmap of a :class:`~interp_magics.patching.PatchResult`."""

    _bundle = "patching"

    meta = traitlets.Dict().tag(sync=True)
    values = traitlets.Bytes().tag(sync=True)
    raw = traitlets.Bytes().tag(sync=True)
    lut = traitlets.Bytes().tag(sync=True)
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
        self, result: PatchResult, *, slice_index: int = 0, colormap: str = colors.DIVERGING
    ) -> None:
        self.result = result
        self.colormap = colormap
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
            "title": self._title(),
            "metric": result.metric,
            "normalised": result.normalised,
            "value_name": value_name,
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

    def fallback_png(self) -> bytes:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        r = self.result
        plane = self._plane()
        rows, cols = plane.shape
        top = float(np.nanmax(np.abs(plane))) or 1.0
        fig = Figure(
            figsize=(min(12, max(4.5, 2.5 + cols * 0.32)), min(8, max(2.8, 1.8 + rows * 0.32))),
            dpi=72,
        )
        fig.subplots_adjust(
            left=0.18, right=0.88, bottom=0.28 if "pos" in r.axes else 0.15, top=0.86
        )
        ax = fig.add_subplot()
        image = ax.imshow(
            plane,
            cmap=colors._cmap(self.colormap),
            vmin=-top,
            vmax=top,
            aspect="auto",
            interpolation="nearest",
        )
        col_axis = r.axes[-1] if len(r.axes) > 1 else None
        ax.set_ylabel(r.axes[0])
        ax.set_yticks(range(rows), r.labels[r.axes[0]], fontsize=7)
        if col_axis:
            ticks = r.labels[col_axis]
            step = max(1, cols // 40)
            ax.set_xticks(
                range(0, cols, step),
                [literal(_short(ticks[i])) for i in range(0, cols, step)],
                rotation=90 if col_axis == "pos" else 0,
                fontsize=7,
            )
            ax.set_xlabel(col_axis)
        else:
            ax.set_xticks([])
        hatched = self._hatch_not_significant(ax, plane.shape)
        if rows * cols <= 150:
            for (i, j), v in np.ndenumerate(plane):
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="black" if abs(v) < 0.6 * top else "white",
                )
        sub = f" (head {self.slice_index})" if len(r.axes) == 3 else ""
        ax.set_title(
            f"{self._title()}{sub}\nclean {r.clean_baseline:.3g}"
            + (f", corrupted {r.corrupt_baseline:.3g}" if r.corrupt_baseline is not None else ""),
            fontsize=9,
        )
        if hatched:
            ax.set_xlabel(
                (ax.get_xlabel() + "\n" if col_axis else "")
                + f"hatched: not significant ({r.correction} corrected, alpha {r.alpha:g})",
                fontsize=7,
            )
        label = ("normalised " if r.normalised else "") + r.metric
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=label)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.08)  # titles never cut
        return buf.getvalue()

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


def _short(text: str, n: int = 14) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
