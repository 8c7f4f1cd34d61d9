"""The attention viewer's static picture keeps its axes at any length: thinned token labels."""

import pytest
import torch

from interp_magics.widgets import AttentionView
from interp_magics.widgets.attention import STATIC_LABELS, token_ticks


@pytest.mark.parametrize("length", [1, 13, 40, 41, 100, 512, 2000])
def test_token_ticks_thin_to_fit_and_never_drop_all(length):
    ticks = token_ticks(length)
    assert ticks[0] == 0 and 1 <= len(ticks) <= STATIC_LABELS
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1
    assert ticks == list(range(0, length, step))
    # the smallest step that fits: one less would need more labels than there is room for
    assert step == 1 or len(range(0, length, step - 1)) > STATIC_LABELS


def _causal(n, layers=2, heads=3):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(1, layers, heads, n, n, generator=g)
    s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return s.softmax(-1)


def test_static_picture_of_100_tokens_labels_every_third_token_and_its_axes():
    tokens = [f"tok{i}" for i in range(100)]
    view = AttentionView(_causal(100), [tokens])
    fig = view.fallback_figure()
    overview, detail = fig.axes[:2]
    keys = [t.get_text() for t in detail.get_xticklabels()]
    queries = [t.get_text() for t in detail.get_yticklabels()]
    assert keys == queries == tokens[::3]
    assert (detail.get_xlabel(), detail.get_ylabel()) == ("key", "query")
    assert (overview.get_xlabel(), overview.get_ylabel()) == ("head", "layer")
    assert view.fallback_png().startswith(b"\x89PNG")


def test_static_picture_of_a_short_input_labels_every_token():
    tokens = ["a", "b$", "$c$", "d"]
    fig = AttentionView(_causal(4), [tokens]).fallback_figure()
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == tokens
