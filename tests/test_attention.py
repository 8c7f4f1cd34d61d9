"""The attention viewer, Python side: payloads, quantisation, fallbacks, bad input, the magic."""

import base64
import io
import json

import numpy as np
import pytest
import torch

from interp_magics.attention import (
    AttentionInputError,
    AttentionPatterns,
    attention_patterns,
    patterns_from_cache,
)
from interp_magics.widgets import AttentionView
from interp_magics.widgets.encoding import dequantize, max_error, quantize, thumbnails

HOSTILE = "<img src=x onerror=alert(1)>"


def softmax_pattern(*shape, causal=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(*shape, generator=g) * 3
    if causal:
        t = shape[-1]
        scores = scores.masked_fill(
            torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf")
        )
    return scores.softmax(-1)


@pytest.fixture(scope="module")
def big_view():
    """12 layers x 12 heads x 512 tokens: the scale the viewer must handle."""
    p = softmax_pattern(1, 12, 12, 512, 512, causal=True)
    return AttentionView(p, [f"t{i}" for i in range(512)])


def test_payload_is_at_most_one_byte_per_weight(big_view):
    sizes = big_view.payload_bytes()
    weights = 12 * 12 * 512 * 512
    assert sizes["thumbs"] == 12 * 12 * 40 * 40  # one byte per thumbnail pixel, at display size
    assert sizes["detail"] == 512 * 512  # one byte per weight of the selected head
    assert sizes["total"] < 0.02 * weights  # the first view sends 1.3% of a byte per weight
    # every binary trait goes out as a buffer, never as a JSON list of numbers
    state = big_view.get_state()
    for name in ("thumbs", "detail", "pad", "lut"):
        assert isinstance(state[name], (bytes, memoryview))
    json_part = {
        k: v
        for k, v in state.items()
        if not isinstance(v, (bytes, memoryview)) and k not in ("_esm", "_css")
    }
    assert len(json.dumps(json_part, default=str)) < 8_000  # tokens and metadata only
    assert len(state["_esm"]) < 300 * 1024  # the bundle is copied into every saved view


def test_other_heads_cost_one_byte_per_weight_each(big_view):
    big_view.selected = (11, 7)
    assert big_view.detail_key == [0, 11, 7]
    assert len(big_view.detail) == 512 * 512
    got = dequantize(big_view.detail, big_view.detail_scale, (512, 512))
    ref = big_view.data.pattern[0, 11, 7]
    assert (got - ref).abs().max() <= max_error(big_view.detail_scale) + 1e-7
    big_view.selected = (0, 0)


@pytest.mark.parametrize("scale", [None, 1.0, 0.25])
def test_quantisation_error_bound(scale):
    values = softmax_pattern(4, 64, 64, seed=3) * (0.25 if scale == 0.25 else 1)
    data, s = quantize(values, scale=scale)
    assert len(data) == values.numel()
    back = dequantize(data, s, tuple(values.shape))
    assert (back - values).abs().max() <= max_error(s) + 1e-7
    assert max_error(1.0) == pytest.approx(1 / 510)


def test_thumbnails_keep_maxima():
    p = torch.zeros(1, 1, 128, 128)
    p[0, 0, 5, 100] = 0.9  # a single sharp weight survives pooling
    t = thumbnails(p, 40)
    assert t.shape == (1, 1, 40, 40)
    assert float(t.max()) == pytest.approx(0.9)
    assert thumbnails(p[..., :32, :32], 32).data_ptr() == p[..., :32, :32].data_ptr()


def test_focus_rows_and_exact_values(big_view):
    big_view.focus = 300
    assert big_view.focus_key == [0, 300] and len(big_view.focus_rows) == 12 * 12 * 512
    rows = dequantize(big_view.focus_rows, 1.0, (12, 12, 512))
    assert (rows - big_view.data.pattern[0, :, :, 300, :]).abs().max() <= 1 / 510 + 1e-7
    assert big_view.weight(0, 3, 4, 300, 17) == float(big_view.data.pattern[0, 3, 4, 300, 17])
    replies = []
    big_view.send = replies.append  # capture what the kernel would send back
    big_view._on_message(
        big_view, {"type": "value", "id": 7, "b": 0, "l": 3, "h": 4, "q": 300, "k": 17}, []
    )
    big_view._on_message(
        big_view, {"type": "value", "id": 8, "b": 0, "l": 99, "h": 4, "q": 1, "k": 1}, []
    )
    del big_view.send
    assert replies[0]["id"] == 7 and replies[0]["value"] == big_view.weight(0, 3, 4, 300, 17)
    assert "error" in replies[1] and "0..11" in replies[1]["error"]
    big_view.focus = -1


def _png_pixels(png: bytes) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")


def test_fallback_bundle_has_png_html_and_text(minilm):
    model, tok = minilm
    enc = tok(["The cat sat on the mat.", "Attention!"], padding=True, return_tensors="pt")
    patterns = attention_patterns(model, enc, tokenizer=tok)
    tokens = [list(t) for t in patterns.tokens]
    tokens[0][2] = HOSTILE
    view = AttentionView(
        patterns.pattern, tokens, attention_mask=patterns.attention_mask, selected=(5, 3)
    )
    data, _ = view._repr_mimebundle_()
    assert set(data) == {
        "text/plain",
        "text/html",
        "image/png",
        "application/vnd.jupyter.widget-view+json",
    }
    text = data["text/plain"]
    assert "6 layers x 12 heads x 9 tokens" in text and "layer 5 head 3" in text
    assert "sequence 1 of 2" in text and "causal" not in text  # BERT is bidirectional
    # the strongest weights in the text are the real ones
    p = (
        patterns.pattern[0, 5, 3]
        * enc["attention_mask"][0][:, None]
        * enc["attention_mask"][0][None, :]
    )
    assert f"{float(p.max()):.3f}" in text
    png = data["image/png"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = _png_pixels(png)
    assert pixels.shape[0] > 200 and pixels[..., :3].std() > 0.05  # a picture, not a blank
    html = data["text/html"]
    assert "<script" not in html.lower()
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert base64.b64decode(html.split("base64,")[1].split('"')[0]) == png


@pytest.mark.slow
def test_nbconvert_html_shows_the_static_fallback(tmp_path):
    """A notebook exported without widget state shows the PNG and the numbers, and no script.

    That is how JupyterLab saves notebooks by default ("Save Widget State Automatically" is
    off), so it is what GitHub, nbviewer and ``jupyter nbconvert --to html`` receive.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter
    from support.lab import write_notebook

    path = write_notebook(
        tmp_path / "fallback.ipynb",
        [
            "import torch\nfrom interp_magics.widgets import AttentionView\n"
            "p = torch.tensor([[[0.6, 0.4], [0.25, 0.75]]])\n"
            f"AttentionView(p, ['tok_a', {HOSTILE!r}])",
        ],
    )
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=False).execute()
    body, _ = HTMLExporter().from_notebook_node(nb)
    output = body.split("jp-OutputArea-executeResult", 1)[1]
    assert "data:image/png;base64," in output
    assert "strongest query-&gt;key weights" in output and "0.750" in output
    assert "&lt;img src=x onerror=alert(1)&gt;" in output and "<img src=x" not in output


def test_minilm_patterns_are_real_attention(minilm):
    model, tok = minilm
    enc = tok(
        ["a short one", "and a somewhat longer sentence here"], padding=True, return_tensors="pt"
    )
    patterns = attention_patterns(model, enc, tokenizer=tok)
    assert patterns.shape == (2, 6, 12, enc["input_ids"].shape[1], enc["input_ids"].shape[1])
    torch.testing.assert_close(patterns.pattern.sum(-1), torch.ones(patterns.shape[:4]))
    assert patterns.tokens[0][0] == "[CLS]" and "[PAD]" in patterns.tokens[0]
    assert not patterns.is_causal()
    assert torch.equal(patterns.attention_mask, enc["attention_mask"])
    view = patterns.widget()
    assert view.pad[: len(view.tokens)] == bytes(
        (enc["attention_mask"][0] == 0).to(torch.uint8).tolist()
    )
    view.batch_index = 1
    assert view.tokens == patterns.tokens[1] and view.detail_key == [1, 0, 0]
    df = AttentionPatterns(patterns.pattern[:1, :1], patterns.tokens[:1]).to_dataframe()
    assert len(df) == 12 * patterns.shape[3] ** 2 and df["weight"].sum() == pytest.approx(
        12 * patterns.shape[3], rel=1e-5
    )


def test_bridge_patterns_equal_the_hf_model(bridge):
    br, hf = bridge
    ids = torch.randint(0, 300, (2, 7), generator=torch.Generator().manual_seed(0))
    from_bridge = attention_patterns(br, ids, tokenizer=br.tokenizer)
    assert torch.equal(from_bridge.pattern, attention_patterns(hf, ids).pattern)
    assert all(isinstance(t, str) and t != "None" for t in from_bridge.tokens[0])


def test_from_cache_and_layers(gpt2, ids):
    from interp_magics import capture

    with capture(gpt2, "pattern.{1-2}") as acts:
        gpt2(ids)
    patterns = patterns_from_cache(acts)
    assert patterns.layers == [1, 2] and patterns.is_causal()
    assert patterns.tokens[0] == [str(int(i)) for i in ids[0]]
    view = patterns.widget(selected=(1, 3))
    assert view.meta["layer_labels"] == [1, 2] and view.meta["causal"] is True
    assert "layer 2 head 3" in view.fallback_text()


@pytest.mark.parametrize(
    ("pattern", "tokens", "match"),
    [
        (torch.rand(2, 2, 2, 2, 3, 3), None, "rank 6"),
        (torch.rand(5), None, "rank 1"),
        (torch.rand(1, 2, 0, 0), None, "empty"),
        (torch.rand(2, 3, 4), None, "query and key lengths differ"),
        (softmax_pattern(2, 3, 3), ["a", "b"], "has 2 tokens but the pattern covers 3"),
        (torch.full((2, 3, 3), float("nan")), None, "NaN"),
        (-softmax_pattern(2, 3, 3), None, "negative"),
        (torch.ones(2, 3, 3, dtype=torch.long), None, "floating point"),
        (softmax_pattern(2, 3, 3), "abc", "not one string"),
        (softmax_pattern(2, 3, 3), [], "tokens is empty"),
        ((), None, "attn_implementation='eager'"),
    ],
)
def test_bad_input_is_a_clear_error(pattern, tokens, match):
    with pytest.raises(AttentionInputError, match=match):
        AttentionView(pattern, tokens)


def test_rows_not_summing_to_one_warn():
    with pytest.warns(UserWarning, match="do not sum to 1"):
        view = AttentionView(torch.rand(2, 4, 4) * 3, None)
    assert view.meta["vmax"] > 1  # colours scale to the largest weight


def test_mask_and_index_errors():
    p = softmax_pattern(2, 1, 2, 4, 4)
    with pytest.raises(AttentionInputError, match="attention_mask has shape"):
        AttentionView(p, None, attention_mask=torch.ones(2, 5))
    with pytest.raises(AttentionInputError, match="selected head must be an integer in 0..1"):
        AttentionView(p, None, selected=(0, 2))
    view = AttentionView(p, None)
    with pytest.raises(Exception, match="batch_index must be an integer in 0..1"):
        view.batch_index = 2
    with pytest.raises(Exception, match="focus must be"):
        view.focus = 4
    assert view.batch_index == 0


def test_attention_magic(shell, minilm):
    model, tok = minilm
    shell.user_ns.update(
        minilm=model, tok=tok, enc=tok(["one two three"], return_tensors="pt"), text="hello world"
    )
    result = shell.run_cell("%attention minilm enc --tokenizer tok --head 2,5 -o view")
    assert result.success, result.error_in_exec
    view = shell.user_ns["view"]
    assert isinstance(view, AttentionView) and result.result is view
    assert view.selected == (2, 5) and view.tokens[0] == "[CLS]"
    result = shell.run_cell("%attention minilm text --tokenizer tok --layers {4-5}")
    assert result.success and result.result.meta["layer_labels"] == [4, 5]
    shell.run_cell("%%activations minilm -m pattern.0 -o acts -q\nminilm(**enc)")
    result = shell.run_cell("%attention acts --tokenizer tok")
    assert result.success and result.result.meta["layers"] == 1
    for line, message in [
        ("%attention minilm", "needs INPUT"),
        ("%attention minilm text", "text input needs a tokenizer"),
        ("%attention minilm enc --head 9", "write LAYER,HEAD"),
        ("%attention minilm enc --head 0,12", "selected head must be an integer in 0..11"),
        ("%attention acts2", "name 'acts2' is not defined"),
    ]:
        result = shell.run_cell(line)
        assert message in str(result.error_in_exec), line


MATH_TOKENS = ["$$", "${{x}}$", r"$\frac{1}{2}$", r"a\$b", "$", "50$ and 3$", "${" * 30 + "}$" * 30]


@pytest.fixture
def drawn_text(monkeypatch):
    """Every string the Agg renderer draws, with whether it was drawn as math."""
    from matplotlib.backends.backend_agg import RendererAgg

    calls: list[tuple[str, bool]] = []
    draw = RendererAgg.draw_text

    def spy(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        calls.append((s, ismath))
        return draw(self, gc, x, y, s, prop, angle, ismath, mtext)

    monkeypatch.setattr(RendererAgg, "draw_text", spy)
    return calls


@pytest.mark.parametrize("how", ["literal", "LITERAL_TEXT"])
def test_labels_are_drawn_verbatim_never_as_math(drawn_text, how):
    from matplotlib.figure import Figure

    from interp_magics.widgets.labels import LITERAL_TEXT, literal_labels

    fig = Figure()
    ax = fig.add_subplot()
    if how == "literal":
        ax.set_xticks(range(len(MATH_TOKENS)), literal_labels(MATH_TOKENS))
    else:
        ax.set_xticks(range(len(MATH_TOKENS)), MATH_TOKENS, **LITERAL_TEXT)
    fig.savefig(io.BytesIO(), format="png")
    assert drawn_text[: len(MATH_TOKENS)] == [(t, False) for t in MATH_TOKENS]


def test_unescaped_labels_are_parsed_as_math(drawn_text):
    """The reference failure the label helpers exist for (matplotlib's own behaviour)."""
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    ax.set_xticks([0], ["$$"])
    with pytest.raises(ValueError, match="Expected end of text"):
        fig.savefig(io.BytesIO(), format="png")


def test_static_fallback_draws_math_like_tokens_as_written(drawn_text):
    tokens = ["[CLS]", "$$", "${{x}}$", r"$\frac12$", "costs", "5$", "[SEP]"]
    view = AttentionView(softmax_pattern(2, 3, 7, 7), tokens)
    data, _ = view._repr_mimebundle_()
    png = data["image/png"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and _png_pixels(png)[..., :3].std() > 0.05
    labels = [(s, m) for s, m in drawn_text if s in tokens]
    assert labels == [(t, False) for t in tokens] * 2  # key axis, then query axis
    assert not any(m for _, m in drawn_text)


def test_patching_heatmap_fallback_draws_tokens_as_written(drawn_text):
    """The same rule in the patching heatmap's PNG: position labels are tokens."""
    from interp_magics.patching import PatchResult
    from interp_magics.widgets import PatchingHeatmap

    tokens = ["$$", "${{x}}$", r"$\frac12$", "5$"]
    values = torch.linspace(-1, 1, 8).reshape(2, 4)
    result = PatchResult(
        values=values,
        raw=values,
        per_example=values[..., None].repeat(1, 1, 3),
        axes=("layer", "pos"),
        labels={"layer": ["0", "1"], "pos": tokens},
        metric="logit difference",
        site="resid_pre",
        method="exact",
        direction="denoising",
        corruption="given",
        clean_baseline=1.0,
        corrupt_baseline=0.0,
        clean_per_example=torch.ones(3),
        corrupt_per_example=torch.zeros(3),
        normalised=True,
    )
    png = PatchingHeatmap(result).fallback_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert [(s, m) for s, m in drawn_text if s in tokens] == [(t, False) for t in tokens]
