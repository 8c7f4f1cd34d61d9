"""The feature dashboard's Python side: what it sends (the list as 12 bytes a feature plus the
labels, one feature's detail packed, round trips to the data within the uint8 step), what a
selection asks of the kernel, how the list is searched and sorted, and its static fallbacks
(text with the strongest token bracketed, a PNG with the highlight colour, a script-free table).

The front end's reading of the same bytes is tested in widgets/test/features-*.test.ts, its
drawing in the browser (tests/test_browser_features.py).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass

import numpy as np
import pytest
import traitlets

from interp_magics.widgets import FeatureDashboard
from interp_magics.widgets.encoding import max_error
from interp_magics.widgets.features import (
    HIGHLIGHT,
    FeatureExamples,
    FeatureSet,
    example_text,
    fmt_density,
    highlight_rgb,
    ink_on,
    joined_utf8,
    pack_detail,
    split_utf8,
    token_table,
    unpack_detail,
)
from interp_magics.widgets.lens import wire_bytes

WORDS = [" the", " cat", " sat", " on", " mat", "<b>", "$x$", "\n", " é", "ing", ",", " 12"]


@dataclass
class Examples:
    """One feature's detail, as the SAE analyses give it (the FeatureExamples contract)."""

    feature: int
    tokens: list[list[str]]
    activations: np.ndarray
    histogram: tuple[np.ndarray, np.ndarray]
    promoted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]
    density: float


class Synthetic:
    """A feature set of ``n`` features with ``k`` examples of ``window`` tokens each.

    Deterministic: feature ``i``'s detail is drawn from a generator seeded with ``i``; its first
    example holds the feature's max activation; its last example is shorter (padding).
    """

    def __init__(self, n: int = 300, k: int = 20, window: int = 24, never: int | None = None):
        g = np.random.default_rng(0)
        self.site = "sae:resid_post.1"
        self.n_features = n
        self.k, self.window, self.never = k, window, never
        self.density = (10 ** g.uniform(-5, -1, n)).astype(np.float32)
        self.max_activation = (g.gamma(2.0, 2.0, n) + 0.5).astype(np.float32)
        self.labels = [f"{WORDS[i % len(WORDS)].strip()}{(i * 7919) % 1000}" for i in range(n)]
        self.calls: list[int] = []
        if never is not None:
            self.density[never] = 0.0
            self.max_activation[never] = 0.0

    def detail(self, feature: int) -> Examples:
        self.calls.append(feature)
        if feature == self.never:
            empty = np.zeros((0, 0), dtype=np.float32)
            return Examples(feature, [], empty, (np.zeros(0), np.zeros(0)), [], [], 0.0)
        g = np.random.default_rng(feature + 1)
        top = float(self.max_activation[feature])
        lengths = [self.window] * (self.k - 1) + [self.window // 2]
        tokens = [[WORDS[j] for j in g.integers(0, len(WORDS), n)] for n in lengths]
        acts = np.zeros((self.k, self.window), dtype=np.float32)
        for e, n in enumerate(lengths):
            peak = top * (1 - e / (2 * self.k))
            row = g.uniform(0, 1, n) * (g.uniform(0, 1, n) < 0.4) * peak
            row[g.integers(0, n)] = peak
            acts[e, :n] = row
        edges = np.linspace(0, top, 31)
        counts = np.round(g.gamma(1.5, 400, 30)).astype(np.int64)
        promoted = [
            (WORDS[j], float(v))
            for j, v in zip(range(8), np.sort(g.uniform(0, 1, 8))[::-1], strict=True)
        ]
        suppressed = [
            (WORDS[-1 - j], -float(v))
            for j, v in zip(range(8), np.sort(g.uniform(0, 1, 8))[::-1], strict=True)
        ]
        return Examples(
            feature,
            tokens,
            acts,
            (counts, edges),
            promoted,
            suppressed,
            float(self.density[feature]),
        )


@pytest.fixture(scope="module")
def big():
    return Synthetic(n=16_000)


# -- the encodings ------------------------------------------------------------------------------


def test_labels_travel_as_joined_utf8_with_uint32_offsets():
    labels = ["cat", "", "é<b>", "日本", "x" * 300]
    data, offsets = joined_utf8(labels)
    ends = np.frombuffer(offsets, dtype="<u4")
    assert ends.tolist() == [0, 3, 3, 8, 14, 314]  # é is 2 bytes, each of 日本 3
    assert data == "".join(labels).encode("utf-8")
    assert split_utf8(data, offsets) == labels


def test_token_table_is_the_distinct_tokens_with_an_index_per_slot():
    vocab, index = token_table([["a", "b", "a"], ["b"]], 3)
    assert vocab == ["a", "b"] and index.dtype == np.dtype("<u2")
    assert index.tolist() == [[0, 1, 0], [1, 0, 0]]
    many = [[str(i) for i in range(70_000)]]
    vocab, index = token_table(many, 70_000)
    assert len(vocab) == 70_000 and index.dtype == np.dtype("<u4")
    assert index[0, -1] == 69_999


def test_a_packed_detail_round_trips_within_the_uint8_step():
    fs = Synthetic()
    d = fs.detail(7)
    top = float(fs.max_activation[7])
    blob = pack_detail(d, max_activation=top, label=fs.labels[7])
    out = unpack_detail(blob)
    assert out["feature"] == 7 and out["label"] == fs.labels[7] and out["scale"] == top
    assert out["tokens"] == d.tokens  # exactly, padding left out
    assert out["lengths"] == [24] * 19 + [12]
    error = np.abs(out["activations"] - d.activations)
    assert error.max() <= max_error(top) + 1e-6, (error.max(), max_error(top))
    assert out["codes"][0].max() == 255  # the feature's max is the top code
    assert np.all(out["codes"][-1, 12:] == 0)  # padding
    counts, edges = d.histogram
    assert out["counts"].tolist() == counts.tolist() and out["edges"].tolist() == edges.tolist()
    assert out["promoted"] == [[t, v] for t, v in d.promoted]
    assert out["suppressed"] == [[t, v] for t, v in d.suppressed]
    assert sorted(out["vocab"]) == sorted({t for row in d.tokens for t in row})
    # the sections: 8 + header, codes and index, histogram; each padded to 8 bytes
    cells = 20 * 24
    assert len(blob) <= 8 + len(json.dumps(out["vocab"])) + 2000 + cells * 3 + 8 * 61 + 40


def test_the_scale_is_the_examples_max_when_it_exceeds_the_features():
    fs = Synthetic()
    d = fs.detail(3)
    out = unpack_detail(pack_detail(d, max_activation=float(fs.max_activation[3]) / 2))
    assert out["scale"] == pytest.approx(float(d.activations.max()))
    assert out["codes"].max() == 255  # nothing clipped


# -- the widget ---------------------------------------------------------------------------------


def test_a_synthetic_set_meets_the_contract():
    fs = Synthetic()
    assert isinstance(fs, FeatureSet) and isinstance(fs.detail(0), FeatureExamples)


def test_first_view_of_16000_features_costs_12_bytes_a_feature_plus_labels_and_one_detail(big):
    view = FeatureDashboard(big)
    n = big.n_features
    labels = sum(len(s.encode("utf-8")) for s in big.labels)
    size = view.payload_bytes()
    assert size["list"] == 12 * n + 4 + labels  # float32 x 2, uint32 offsets (n + 1), text
    assert size["detail"] == len(view.packed(view.selected))
    state = {k: v for k, v in view.get_state().items() if k not in ("_esm", "_css")}
    assert size["total"] == wire_bytes(state)
    bound = 12 * n + labels + size["detail"] + 1024  # + the JSON traits (meta, sort, ...)
    assert size["total"] <= bound, (size, bound)
    # nothing else was asked of the feature set: one detail, the selected one
    assert big.calls == [view.selected]
    as_json = len(json.dumps(big.density.tolist())) + len(json.dumps(big.max_activation.tolist()))
    print(f"16000 features x 20 examples: {size}, bound {bound}; JSON numbers alone {as_json}")
    assert as_json > 2.5 * 8 * n
    big.calls.clear()


def test_the_list_bytes_round_trip(big):
    view = FeatureDashboard(big, selected=5)
    assert np.frombuffer(view.density, dtype="<f4").tolist() == big.density.tolist()
    assert np.frombuffer(view.max_activation, dtype="<f4").tolist() == big.max_activation.tolist()
    assert split_utf8(view.labels, view.label_offsets) == big.labels
    assert unpack_detail(view.detail)["feature"] == 5 == view.selected
    big.calls.clear()


def test_default_selection_is_the_strongest_feature_and_bad_ones_say_what_to_choose():
    fs = Synthetic()
    view = FeatureDashboard(fs)
    assert view.selected == int(np.argmax(fs.max_activation))
    assert view.meta["title"] == "Features of sae:resid_post.1"
    with pytest.raises(traitlets.TraitError, match=r"out of range: choose 0\.\.299"):
        view.selected = 300
    with pytest.raises(ValueError, match=r"feature -1 is out of range"):
        FeatureDashboard(fs, selected=-1)
    with pytest.raises(traitlets.TraitError, match="sort must be one of"):
        view.sort = "label"
    with pytest.raises(TypeError, match="lacks density, max_activation, labels, detail"):
        FeatureDashboard(type("NotASet", (), {"site": "x", "n_features": 1})())  # type: ignore[arg-type]
    fs.labels = fs.labels[:-1]
    with pytest.raises(ValueError, match="labels has 299 entries for 300 features"):
        FeatureDashboard(fs)


def test_a_selection_asks_the_kernel_once_and_gets_the_packed_bytes(monkeypatch):
    fs = Synthetic()
    view = FeatureDashboard(fs, selected=0)
    sent: list[tuple[dict, list]] = []
    monkeypatch.setattr(view, "send", lambda c, buffers=None: sent.append((c, buffers or [])))
    for msg_id in (1, 2):
        view._on_message(view, {"type": "detail", "id": msg_id, "feature": 42}, [])
    (first, [blob]), (second, [again]) = sent
    assert first == {"type": "detail", "id": 1, "feature": 42} and second["id"] == 2
    assert (
        blob
        == again
        == pack_detail(
            fs.detail(42), max_activation=float(fs.max_activation[42]), label=fs.labels[42]
        )
    )
    assert fs.calls.count(42) == 2  # one for the view (kept), one just now for the comparison
    view._on_message(view, {"type": "detail", "id": 3, "feature": 300}, [])
    assert sent[-1][0]["error"] == "feature 300 is out of range: choose 0..299"
    view._on_message(view, {"type": "column"}, [])  # another widget's message: ignored
    assert len(sent) == 3

    def broken(i: int) -> Examples:
        raise KeyError(f"no activations stored for feature {i}")

    fs.detail = broken  # type: ignore[method-assign]
    view._on_message(view, {"type": "detail", "id": 4, "feature": 99}, [])
    assert sent[-1] == (
        {
            "type": "detail",
            "id": 4,
            "feature": 99,
            "error": "KeyError: 'no activations stored for feature 99'",
        },
        [],
    )


def test_a_detail_that_does_not_add_up_is_refused():
    fs = Synthetic()
    bad = fs.detail(1)
    bad.activations = bad.activations[:, :10]
    fs.detail = lambda i: bad  # type: ignore[method-assign]
    with pytest.raises(
        ValueError, match="example 0 has 24 tokens but the activations have a window of 10"
    ):
        FeatureDashboard(fs, selected=1)


def test_search_and_sort_as_the_front_end_does():
    fs = Synthetic()
    view = FeatureDashboard(fs)
    view.query = "12"
    shown = view.visible()
    want = [i for i in range(300) if "12" in str(i) or "12" in fs.labels[i].lower()]
    assert sorted(shown) == want and len(want) > 3
    assert any("12" not in str(i) for i in shown)  # some match by their label alone
    tops = [fs.max_activation[i] for i in shown]
    assert tops == sorted(tops, reverse=True)
    view.sort = "density"
    dens = [fs.density[i] for i in view.visible()]
    assert dens == sorted(dens, reverse=True)
    view.sort, view.query = "index", " CAT "
    assert view.visible() == [i for i in range(300) if "cat" in fs.labels[i]]


# -- static fallbacks -----------------------------------------------------------------------------


def test_text_fallback_brackets_each_examples_strongest_token():
    fs = Synthetic()
    view = FeatureDashboard(fs, selected=11)
    d = fs.detail(11)
    text = view.fallback_text()
    lines = text.splitlines()
    assert lines[0] == "FeatureDashboard of sae:resid_post.1: 300 features"
    assert lines[1] == (
        f"feature 11 “{fs.labels[11]}”: density {fmt_density(float(fs.density[11]))} of tokens, "
        f"max activation {float(fs.max_activation[11]):.4g}"
    )
    peak = int(d.activations[0].argmax())
    strongest = d.tokens[0][peak].replace("\n", "⏎")
    assert f"[{strongest}]" in lines[3] and lines[3].lstrip().startswith("1.")
    assert f"{float(d.activations[0].max()):.4g}" in lines[3]
    assert sum(bool(re.match(r"\s+\d+\. ", line)) for line in lines) == 20
    assert lines[-2].startswith("promoted: ' the' +") and lines[-1].startswith(
        "suppressed: ' 12' -"
    )
    assert repr(view) == text


def test_example_text_cuts_around_the_strongest_token():
    tokens = [f" w{i}" for i in range(100)]
    acts = np.zeros(100)
    acts[60] = 2.0
    text = example_text(tokens, acts, chars=30)
    assert text.startswith("…") and text.endswith("…") and "[ w60]" in text
    assert len(text) <= 32


def test_png_fallback_draws_the_highlight_colour_and_the_charts():
    from PIL import Image

    fs = Synthetic()
    view = FeatureDashboard(fs, selected=4)
    data, _ = view._repr_mimebundle_()
    assert data["image/png"] == view.fallback_png()
    image = np.asarray(Image.open(io.BytesIO(data["image/png"])).convert("RGB"))
    h, w, _ = image.shape
    assert w >= 900 and h >= 400
    full = np.array(highlight_rgb(1.0))
    assert full.tolist() == [int(HIGHLIGHT[i : i + 2], 16) for i in (1, 3, 5)]
    # the first example's strongest token is at the feature's max: a box in the full colour
    assert np.all(image == full, axis=-1).sum() > 200, "no token at the feature's max"
    # paler highlights for the weaker tokens, the histogram's blue, and not a blank picture
    half = np.array(highlight_rgb(0.5))
    assert (np.abs(image.astype(int) - half).sum(-1) < 40).sum() > 50
    assert (np.abs(image.astype(int) - [0x56, 0xB4, 0xE9]).sum(-1) < 6).sum() > 500
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 100
    assert ink_on(full) == "#000000" and ink_on((40, 40, 40)) == "#ffffff"


def test_html_fallback_is_a_script_free_table_with_tokens_escaped():
    fs = Synthetic()
    view = FeatureDashboard(fs, selected=9)
    data, _ = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    page = data["text/html"]
    assert "<script" not in page and "data:image/png;base64," in page
    d = fs.detail(9)
    assert page.count("<tr><td>") >= 20 + 16  # every example, every logit
    assert "&lt;b&gt;" in page and "<td><b></td>" not in page
    assert f"<td>promoted</td><td>{d.promoted[0][0]}</td>" in page


def test_a_feature_that_never_fired_still_shows():
    fs = Synthetic(never=2)
    view = FeatureDashboard(fs, selected=2)
    out = unpack_detail(view.detail)
    assert out["k"] == 0 and out["tokens"] == [] and out["scale"] == 1.0
    assert "no examples: the feature never fired" in view.fallback_text()
    assert "density 0% of tokens" in view.fallback_text()
    assert view.fallback_png().startswith(b"\x89PNG")


def test_empty_tokens_are_padding_as_windows_around_an_early_token_have():
    fs = Synthetic(n=3)
    acts = np.array([[0.0, 0.0, 2.0, 1.0], [0.0, 1.5, 0.5, 0.0]], dtype=np.float32)
    windows = Examples(
        1,
        [["", "", " a", " b"], ["", " c", " d", ""]],
        acts,
        (np.array([1, 1]), np.array([0.0, 1.0, 2.0])),
        [],
        [],
        0.5,
    )
    fs.detail = lambda i: windows  # type: ignore[method-assign]
    view = FeatureDashboard(fs, selected=1)
    assert unpack_detail(view.detail)["tokens"] == windows.tokens  # kept, slot for slot
    lines = view.fallback_text().splitlines()
    assert lines[3].endswith("  [ a] b") and lines[4].endswith("  [ c] d")
    assert view.fallback_png().startswith(b"\x89PNG")
