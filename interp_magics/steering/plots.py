"""Static pictures of steering sweeps (matplotlib, no pyplot state)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .result import SweepResult


def png(fig: Any) -> bytes:
    """Return ``fig`` rendered as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def dose_response_figure(result: SweepResult) -> Any:
    """Return the mean change of the metric against the coefficient: the vector with its
    t-intervals, random directions of the same norm as a line and a shaded band, significant
    coefficients starred."""
    from matplotlib.figure import Figure

    s = result.stats
    x = result.coefficients
    level = 1 - s.alpha
    fig = Figure(figsize=(6.0, 3.8))
    ax = fig.subplots()
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    ax.fill_between(
        x,
        s.control_low,
        s.control_high,
        color="0.8",
        alpha=0.7,
        label=f"random directions, {level:.0%} band",
    )
    ax.plot(x, s.control_mean, color="0.35", linestyle="--", linewidth=1.2)
    ax.errorbar(
        x,
        s.mean,
        yerr=[s.mean - s.low, s.high - s.mean],
        color="#0072B2",  # Okabe-Ito blue: colour-blind safe
        marker="o",
        capsize=3,
        label=f"steering vector, {level:.0%} CI",
    )
    for xi, yi, hit in zip(x, s.high, s.significant, strict=True):
        if hit:
            ax.annotate("*", (xi, yi), ha="center", va="bottom", fontsize=12, color="#D55E00")
    ax.set_xlabel(f"coefficient (multiples of the {result.method} vector, norm {result.norm:.3g})")
    ax.set_ylabel(f"change in {result.metric}")
    ax.set_title(f"steering at {result.site}: {result.scores.shape[1]} prompts", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    return fig
