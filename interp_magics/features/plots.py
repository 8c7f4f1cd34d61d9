"""Static pictures of feature results (matplotlib, no pyplot state): what exported notebooks
show and what a console user saves."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .dashboard_data import FeatureSet
    from .result import FeatureEffects
    from .train import TrainingReport


def png(fig: Any) -> bytes:
    """Return ``fig`` rendered as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def effects_figure(result: FeatureEffects, top: int = 20) -> Any:
    """Return a horizontal bar chart of the ``top`` features by |effect|, with intervals;
    significant features are filled, the others hollow."""
    from matplotlib.figure import Figure

    df = result.top(top).iloc[::-1]
    fig = Figure(figsize=(6.5, 1.0 + 0.28 * max(len(df), 1)))
    ax = fig.subplots()
    y = np.arange(len(df))
    effect = df["effect"].to_numpy()
    err = np.vstack([effect - df["low"].to_numpy(), df["high"].to_numpy() - effect])
    err = np.where(np.isfinite(err), err, 0.0)
    colours = ["#b2182b" if e < 0 else "#2166ac" for e in effect]
    for yi, e, c, sig in zip(y, effect, colours, df["significant"].to_numpy(), strict=True):
        ax.barh(yi, e, color=c if sig else "none", edgecolor=c, height=0.7)
    ax.errorbar(effect, y, xerr=err, fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    ax.axvline(0.0, color="grey", linewidth=0.8)
    names = [str(f) for f in df["feature"]]
    if "label" in df:
        names = [f"{f} {lab!r}" for f, lab in zip(df["feature"], df["label"], strict=True)]
    ax.set_yticks(y, names, fontsize=7)
    ax.set_xlabel(f"change in {result.metric} (mean, {1 - result.alpha:.0%} interval)")
    ax.set_ylabel("feature")
    n_sig = int(result.significant.sum())
    ax.set_title(
        f"{result.method} at {result.site}: {n_sig} of {len(result.features)} significant (filled)",
        fontsize=9,
    )
    return fig


def loss_figure(report: TrainingReport) -> Any:
    """Return the training loss per step (log scale)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.0))
    ax = fig.subplots()
    ax.plot(np.arange(len(report.losses)), report.losses, linewidth=0.8)
    if len(report.losses) and (report.losses > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(
        f"SAE on {report.site}: {report.fve:.1%} variance explained, L0 {report.l0:.1f}",
        fontsize=9,
    )
    return fig


def density_figure(features: FeatureSet) -> Any:
    """Return the histogram of features' firing densities (log10; dead features counted apart)."""
    from matplotlib.figure import Figure

    density = features.density
    alive = density[density > 0]
    fig = Figure(figsize=(5.5, 3.0))
    ax = fig.subplots()
    if alive.size:
        ax.hist(np.log10(alive), bins=40, color="#2166ac")
    ax.set_xlabel("log10 density (fraction of tokens where the feature fires)")
    ax.set_ylabel("features")
    dead = int((density == 0).sum())
    ax.set_title(
        f"{features.n_features} features at {features.site} ({dead} never fire)", fontsize=9
    )
    return fig
