"""Static pictures of circuit results: a sender x receiver heatmap as PNG bytes (matplotlib).

Drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas, so no pyplot state and
no display backend are touched. Cells that are not edges are grey; a diverging colour map
(colour-blind safe) is centred on ``center``; significant cells carry a dot.
"""

from __future__ import annotations

import io

import numpy as np


def heatmap_png(
    values: np.ndarray,
    rows: list[str],
    cols: list[str],
    *,
    center: float,
    title: str,
    label: str,
    marks: np.ndarray | None = None,
) -> bytes:
    """Return a PNG of ``values`` ``[rows, cols]`` (NaN: no edge) with labelled axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    data = np.ma.masked_invalid(np.asarray(values, dtype=float))
    finite = data.compressed()
    spread = float(np.abs(finite - center).max()) if finite.size else 1.0
    spread = spread or 1.0
    norm = TwoSlopeNorm(vcenter=center, vmin=center - spread, vmax=center + spread)
    width = min(16.0, 4.0 + 0.28 * len(cols))
    height = min(16.0, 2.4 + 0.24 * len(rows))
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    import matplotlib as mpl

    cmap = mpl.colormaps["RdBu"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(data, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xlabel("receiver")
    ax.set_ylabel("sender")
    ax.set_title(title, fontsize=9)
    if marks is not None and marks.any():
        ys, xs = np.nonzero(marks)
        ax.scatter(xs, ys, s=6, c="black", marker="o", linewidths=0)
    fig.colorbar(image, ax=ax, label=label, shrink=0.8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
