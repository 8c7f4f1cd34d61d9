"""The patching heatmap's colour-scale rule, its words and its PNG, without a browser.

The same numbers are asserted in widgets/test/patching-scale.test.ts for the TypeScript side:
the live view and the PNG must pick the same limits, ticks and cell texts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp_magics.patching import PatchResult
from interp_magics.widgets import PatchingHeatmap
from interp_magics.widgets.patching import (
    cell_text,
    check_scale,
    legend_ticks,
    nice_limit,
    scale_limits,
    thinned,
    tick_label,
)

# (largest |value|, the round limit): the table widgets/test/patching-scale.test.ts also checks
LIMITS = [(0.546, 0.6), (0.092, 0.1), (0.16, 0.2), (2.95, 3.0), (3.58, 4.0), (12.3, 15.0)]
TICKS = [
    ((-1.0, 1.0), [-1.0, -0.5, 0.0, 0.5, 1.0]),
    ((-0.6, 0.6), [-0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6]),
    ((-4.0, 4.0), [-4.0, -2.0, 0.0, 2.0, 4.0]),
    ((-17.23, 5.52), [-15.0, -10.0, -5.0, 0.0, 5.0]),
]
CELLS = [
    (-3.06e-5, 1.0, "0"),
    (0.5, 1.0, "0.50"),
    (-0.153, 0.2, "\u22120.153"),
    (31.24, 50, "31.2"),
]


def result(values: torch.Tensor, axes: tuple[str, ...], *, normalised: bool = True) -> PatchResult:
    """Return a result with ``values`` on ``axes`` (positions labelled by tokens)."""
    labels = {
        a: [f"t{i}" for i in range(n)] if a == "pos" else [str(i) for i in range(n)]
        for a, n in zip(axes, values.shape, strict=True)
    }
    sig = values.abs() > 0.3
    return PatchResult(
        values=values,
        raw=values * 4.0 - 2.0,
        per_example=values[..., None].repeat(*([1] * values.ndim), 3),
        axes=axes,
        labels=labels,
        metric="logit difference",
        site="resid_pre",
        method="exact",
        direction="denoising",
        corruption="given",
        clean_baseline=2.0,
        corrupt_baseline=-2.0,
        clean_per_example=torch.full((3,), 2.0),
        corrupt_per_example=torch.full((3,), -2.0),
        normalised=normalised,
        ci_low=values - 0.1,
        ci_high=values + 0.1,
        p_values=torch.where(sig, 0.001, 0.5),
        p_corrected=torch.where(sig, 0.004, 0.9),
        significant=sig,
    )


@pytest.mark.parametrize(("vmax", "limit"), LIMITS)
def test_round_limits_match_the_front_end(vmax, limit):
    assert nice_limit(vmax) == pytest.approx(limit)


@pytest.mark.parametrize(("span", "ticks"), TICKS)
def test_legend_ticks_are_round_and_label_both_ends_when_they_can(span, ticks):
    assert legend_ticks(*span) == ticks  # exactly: a zero tick is 0, not -5.6e-17
    assert "0" in [tick_label(t, 1.0) for t in legend_ticks(*span)]


@pytest.mark.parametrize(("value", "limit", "text"), CELLS)
def test_cell_numbers_are_written_to_the_scale_precision(value, limit, text):
    assert cell_text(value, limit) == text


def test_thinned_labels_keep_the_last_position():
    assert thinned(32, 3)[-1] == 31 and thinned(32, 3)[:3] == [0, 3, 6]
    gaps = np.diff(thinned(32, 3))
    assert gaps.min() >= 3  # the last replaces its neighbour: never tighter than the step
    assert thinned(5, 1) == [0, 1, 2, 3, 4]


def test_one_scale_for_every_head_fixed_for_normalised_values():
    g = torch.Generator().manual_seed(0)
    values = torch.randn(2, 4, 6, generator=g) * torch.tensor([0.05, 0.1, 0.4, 0.2])[:, None]
    r = result(values, ("layer", "head", "pos"))
    assert scale_limits(r) == [1.0] * 4  # shared: +-1, whatever each head's largest value
    per_plot = scale_limits(r, "per-plot")
    assert per_plot == [nice_limit(float(values[:, h].abs().max())) for h in range(4)]
    assert len(set(per_plot)) > 1
    assert scale_limits(r, 0.5) == [0.5] * 4
    raw = result(values * 3, ("layer", "head", "pos"), normalised=False)
    assert scale_limits(raw) == [nice_limit(float((values * 3).abs().max()))] * 4
    view = PatchingHeatmap(r, slice_index=2)
    assert view.meta["scale"]["limits"] == [1.0] * 4 and view.meta["scale"]["mode"] == "shared"
    assert view.meta["scale"]["raw_factor"] == pytest.approx(4.0)  # |clean - corrupted|
    assert "all heads" in view.meta["scale"]["note"]
    assert view.meta["axis_titles"] == {"layer": "layer", "head": "head", "pos": "position"}
    assert view.meta["units"].startswith("normalised logit difference (0 = corrupted run")
    assert PatchingHeatmap(r, scale="per-plot").meta["scale"]["limits"] == per_plot


@pytest.mark.parametrize("bad", ["global", 0, -1.0, float("nan"), True])
def test_a_bad_scale_is_refused_with_the_choices(bad):
    with pytest.raises(ValueError, match="'shared', 'per-plot' or a positive number"):
        check_scale(bad)


def test_dark_theme_map_has_a_dark_centre():
    r = result(torch.linspace(-1, 1, 12).reshape(2, 6), ("layer", "pos"))
    view = PatchingHeatmap(r)
    light = np.frombuffer(view.lut, dtype=np.uint8).reshape(256, 3)
    dark = np.frombuffer(view.lut_dark, dtype=np.uint8).reshape(256, 3)
    assert light[128].min() > 230  # white at zero on a light page
    assert dark[128].max() < 40  # near black at zero: no glaring block on a dark page
    # the same polarity: negative blue, positive red, in both maps
    for lut in (light, dark):
        assert lut[0, 2] > lut[0, 0] and lut[255, 0] > lut[255, 2]


def test_png_uses_the_live_scale_rule_and_has_axis_and_legend_titles():
    values = torch.zeros(2, 3, 32)
    values[1, 0, 31] = 0.3  # head 0 is faint, head 1 strong: the scale stays +-1
    values[0, 1, 16] = 0.9
    r = result(values, ("layer", "head", "pos"))
    for head in (0, 1):
        fig = PatchingHeatmap(r, slice_index=head).figure()
        ax, bar = fig.axes[0], fig.axes[1]
        assert ax.images[0].get_clim() == (-1.0, 1.0)
        assert ax.get_xlabel() == "position" and ax.get_ylabel() == "layer"
        assert list(bar.get_yticks()) == pytest.approx([-1, -0.5, 0, 0.5, 1])
        assert "normalised logit difference" in bar.get_ylabel()
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks[-1] == "t31"  # the last position keeps its label
        words = " ".join(t.get_text() for t in fig.texts)
        assert "colour scale ±1, fixed for normalised values" in words
        assert "hatched: not significant" in words
    per_plot = PatchingHeatmap(r, slice_index=0, scale="per-plot").figure()
    assert per_plot.axes[0].images[0].get_clim() == (-0.3, 0.3)
    small = PatchingHeatmap(result(torch.tensor([[0.1, -0.2], [0.3, 0.0]]), ("layer", "head")))
    ax = small.figure().axes[0]
    assert [t.get_rotation() for t in ax.get_xticklabels()] == [0.0, 0.0]  # "0", "1": flat
    assert {t.get_text() for t in ax.texts} == {"0.10", "\u22120.20", "0.30", "0"}


def test_png_marks_values_beyond_a_fixed_scale():
    r = result(torch.tensor([[0.2, 1.6], [0.0, -0.4]]), ("layer", "pos"))
    fig = PatchingHeatmap(r).figure()
    assert fig.axes[0].images[0].get_clim() == (-1.0, 1.0)
    colorbar = fig.axes[0].images[0].colorbar
    assert colorbar.extend == "max"  # 1.6 is beyond +-1: the bar says so
