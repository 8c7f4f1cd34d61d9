"""The Rigor and Activations sidebar panels in a real JupyterLab and Notebook 7, in Chromium.

The lab runs the installed package: the prebuilt extension from share/jupyter/labextensions and
the server extension enabled by the config the wheel ships. Besides what the panels do, this
checks how they read at JupyterLab's default sidebar width in the light and dark themes (no
horizontal overflow, lines that break only between words or after a dot or underscore, text
contrast from pixels), and that a kernel without the extension gets no comm that fails.
(Past 400 lines: one JupyterLab session per test is the slow part, so related checks share it.)
"""

import io
import itertools
import json
import re
from pathlib import Path

import pytest
from support.visual import DARK, LIGHT, overflow_px, pixel_contrast, set_theme

from interp_magics import rigor

pytestmark = pytest.mark.browser

FLAWED = Path(__file__).parent.parent / "tutorials" / "examples" / "flawed_analysis.ipynb"
AA = 4.5  # WCAG AA contrast for text

EVIL = "<img src=x onerror=\"top['__xss']=1\">"  # no '.': torch module names cannot have one

CELLS = [
    (
        "markdown",
        "claim-cell",
        f"# Copying\n\nHead 3.1 implements the copy circuit {EVIL} in this model.",
    ),
    (
        "code",
        "load-cell",
        "%load_ext interp_magics\nimport torch\nfrom interp_magics.testing import gpt2\n"
        "model = gpt2()\nids = torch.randint(1, 90, (2, 8))",
    ),
    ("code", "capture-cell", '%%activations model -m "transformer.h.*" -o acts\nmodel(ids)'),
    (
        "code",
        "evil-cell",
        "from interp_magics import capture\n"
        "evil_model = torch.nn.Sequential()\n"
        f"evil_model.add_module({EVIL!r}, torch.nn.Linear(4, 4))\n"
        "with capture(evil_model, ['*']) as evil:\n"
        "    evil_model(torch.ones(2, 4))",
    ),
    ("code", "bytes-cell", "print('BYTES', acts.nbytes, evil.nbytes, len(acts))"),
    (
        "code",
        "probe-cell",
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.model_selection import cross_val_score\n"
        "X = torch.randn(100, 8).numpy(); y = (X[:, 0] > 0).astype(int)\n"
        "scores = cross_val_score(LogisticRegression(), X, y, cv=5)",
    ),
]


DISPATCH = """import tempfile
import nnsight
from accelerate import dispatch_model
from interp_magics.core.placement import placement
where = {"transformer.wte": "disk", "transformer.wpe": "cpu", "transformer.drop": "cpu",
         "transformer.h.0": "cpu", "transformer.h.1": "disk", "transformer.h.2": "cpu",
         "transformer.ln_f": "cpu", "lm_head": "disk"}
big = dispatch_model(gpt2(), device_map=where, offload_dir=tempfile.mkdtemp())
wrapped = nnsight.NNsight(gpt2())
from interp_magics.store import harvest
store = harvest(gpt2(), [torch.randint(1, 90, (4, 6))], "resid_post", tempfile.mkdtemp() + "/a.zarr",
                progress=False)
print("OFFLOADED", placement(big).offloaded["disk"])
print("STORED", store.nbytes)
"""


def _format_bytes(n: int) -> str:
    """The panel's byte format (KiB with one decimal for these sizes)."""
    from interp_magics.core.units import format_bytes

    return format_bytes(n)


def _notebook() -> dict:
    cells = []
    for kind, cell_id, source in CELLS:
        cell = {"cell_type": kind, "id": cell_id, "metadata": {}, "source": source}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _current(page, expr: str):
    """Evaluate ``expr`` with ``nb`` bound to the notebook panel in focus."""
    return page.evaluate(
        f"() => {{ const nb = window.jupyterapp.shell.currentWidget; return {expr}; }}"
    )


def _kernel_print(page, code: str) -> str:
    """Run ``code`` silently in the notebook's kernel and return what it printed."""
    return page.evaluate(
        """async code => {
             const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
             let out = '';
             const future = kernel.requestExecute({code, silent: false, store_history: false});
             future.onIOPub = msg => { if (msg.header.msg_type === 'stream') out += msg.content.text; };
             await future.done;
             return out;
           }""",
        code,
    )


def _open_tab(page, panel_id: str) -> None:
    tab = page.locator(f'li.lm-TabBar-tab[data-id="{panel_id}"]')
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()
    page.locator(f"#{panel_id}").wait_for(state="visible")


def test_panels_in_jupyterlab(lab, browser, artifacts):
    from support.lab import run_cells

    path = lab.root / "panels.ipynb"
    path.write_text(json.dumps(_notebook()))
    expected = sorted({f.rule for f in rigor.check(path)})
    assert {"PRB001", "CAU001"} <= set(expected)
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    console = _console(page)
    try:
        page.goto(lab.url("lab/workspaces/t-panels/tree/panels.ipynb?reset"))
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
        page.wait_for_selector(
            '.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000
        )

        # -- Rigor: the same findings as rigor.check on the file ------------------------------
        _open_tab(page, "interp-magics-rigor")
        panel = page.locator("#interp-magics-rigor")
        panel.locator('.im-finding[data-rule="PRB001"]').wait_for(timeout=30_000)
        rules = sorted(
            set(panel.locator(".im-finding").evaluate_all("rs => rs.map(r => r.dataset.rule)"))
        )
        assert rules == expected
        open_count = panel.locator(".im-finding[data-suppressed=false]").count()
        assert panel.locator(".im-count").inner_text() == str(open_count)
        tab = page.locator('li.lm-TabBar-tab[data-id="interp-magics-rigor"]')
        assert tab.get_attribute("data-im-count") == str(open_count)
        badge = tab.evaluate("t => getComputedStyle(t, '::after').content")
        assert badge == f'"{open_count}"'
        # errors are listed before warnings, grouped by rule
        severities = panel.locator(".im-severity").all_inner_texts()
        assert severities[0].startswith("Errors")

        # the claim and its HTML appear as text and run nothing
        claim = panel.locator('.im-finding[data-rule="CAU001"]')
        assert claim.get_attribute("data-cell-id") == "claim-cell"
        assert EVIL in claim.inner_text()
        assert panel.locator("img").count() == 0

        # -- jump to the cell, cursor on the finding's line ------------------------------------
        finding = panel.locator('.im-finding[data-rule="PRB001"]').first
        finding.locator(".im-message").click()
        page.wait_for_function(
            "() => window.jupyterapp.shell.currentWidget.content.activeCell.model.id === 'probe-cell'"
        )
        line = int(re.search(r"line (\d+)", finding.locator(".im-where").inner_text()).group(1))
        assert _current(page, "nb.content.activeCell.editor.getCursorPosition().line") == line - 1

        # -- ignore with a reason (a reason is required), then un-ignore -----------------------
        claim.locator(".im-ignore").click()
        claim.locator(".im-reason-input").press("Enter")
        assert claim.locator(".im-reason-error").inner_text() == "A reason is required."
        claim.locator(".im-cancel").click()
        finding.locator(".im-ignore").click()
        finding.locator(".im-reason-input").fill("exploratory pilot, control in notebook 02")
        finding.locator(".im-reason-input").press("Enter")
        ignored = panel.locator('.im-finding[data-rule="PRB001"][data-suppressed=true]')
        ignored.wait_for(timeout=15_000)
        assert "exploratory pilot" in ignored.inner_text()
        # marked by its dashed edge, not by fading its text
        assert ignored.evaluate("r => getComputedStyle(r).borderLeftStyle") == "dashed"
        assert float(ignored.evaluate("r => getComputedStyle(r).opacity")) == 1
        meta = _current(
            page,
            "nb.content.model.cells.get(nb.content.widgets.findIndex(c => c.model.id === 'probe-cell'))"
            ".getMetadata('interp_magics')",
        )
        assert meta == {
            "ignore": [{"rule": "PRB001", "reason": "exploratory pilot, control in notebook 02"}]
        }
        assert _current(page, "nb.context.model.dirty") is True
        assert panel.locator(".im-count").inner_text() == str(open_count - 1)
        panel.screenshot(path=str(artifacts / "panel-rigor.png"))
        ignored.locator(".im-unignore").click()
        panel.locator('.im-finding[data-rule="PRB001"][data-suppressed=false]').wait_for(
            timeout=15_000
        )
        assert (
            _current(
                page,
                "nb.content.model.cells.get(nb.content.widgets.findIndex(c => c.model.id === 'probe-cell'))"
                ".getMetadata('interp_magics') ?? null",
            )
            is None
        )

        # -- Activations: not loaded, then the caches with their bytes -------------------------
        _open_tab(page, "interp-magics-activations")
        acts_panel = page.locator("#interp-magics-activations")
        acts_panel.locator('.im-state[data-state="not-loaded"]').wait_for(timeout=30_000)
        assert acts_panel.locator(".im-load").count() == 1
        run_cells(page, 4)
        printed = (
            page.locator(".jp-OutputArea-output", has_text=re.compile(r"^BYTES \d"))
            .first.inner_text()
            .split()
        )
        acts_bytes, evil_bytes, acts_len = (int(x) for x in printed[1:4])
        cache = acts_panel.locator('.im-cache[data-name="acts"]')
        cache.wait_for(timeout=30_000)
        assert int(cache.get_attribute("data-bytes")) == acts_bytes
        total = acts_panel.locator(".im-grand-total")
        assert int(total.get_attribute("data-bytes")) == acts_bytes + evil_bytes
        assert "2 caches" in total.inner_text()
        evil_cache = acts_panel.locator('.im-cache[data-name="evil"]')
        evil_cache.locator("summary .im-name").click()
        assert EVIL in evil_cache.locator(".im-key").first.inner_text()
        assert page.locator("#interp-magics-activations img").count() == 0
        assert page.evaluate("() => window.__xss") is None  # the handler never ran
        cache.locator("summary .im-name").click()
        assert cache.locator(".im-key").count() == acts_len
        acts_panel.screenshot(path=str(artifacts / "panel-activations.png"))

        # -- free a cache: gone in the panel and in the kernel ---------------------------------
        cache.locator(".im-free").click()
        acts_panel.locator('.im-freed[data-name="acts"]').wait_for(timeout=15_000)
        assert "freed" in acts_panel.locator(".im-freed").inner_text()
        page.wait_for_function(
            "() => !document.querySelector('#interp-magics-activations .im-cache[data-name=\"acts\"]')"
        )
        assert _kernel_print(page, "print('acts' in globals())").strip() == "False"

        # -- a dispatched model says where its weights live; an nnsight model what it wraps ------
        printed = _kernel_print(page, DISPATCH)
        offloaded = int(re.search(r"OFFLOADED (\d+)", printed).group(1))
        placed = acts_panel.locator('.im-model[data-name="big"] .im-placement')
        placed.wait_for(timeout=30_000)
        text = placed.inner_text().replace("\u200b", "").replace("\n", " ")
        assert "runs on cpu" in text and "offloaded to disk (not resident)" in text, text
        assert _format_bytes(offloaded) in text
        wrapped = acts_panel.locator('.im-model[data-name="wrapped"]')
        assert "NNsight(GPT2LMHeadModel)" in wrapped.inner_text().replace("\u200b", "")
        assert wrapped.locator(".im-placement").count() == 0  # not dispatched: no line
        stored = int(re.search(r"STORED (\d+)", printed).group(1))
        shown = acts_panel.locator('.im-store[data-name="store"]')
        assert int(shown.get_attribute("data-bytes")) == stored
        assert "3 tensors · 4 examples" in shown.inner_text().replace("\u200b", "")
        assert f"{_format_bytes(stored)} on disk" in shown.inner_text()

        # -- restart: the panel says so, and loading again is one click ------------------------
        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.restartKernel()")
        acts_panel.locator('.im-state[data-state="not-loaded"]', has_text="restarted").wait_for(
            timeout=60_000
        )
        acts_panel.locator(".im-load").click()
        acts_panel.locator(".im-empty").wait_for(timeout=30_000)
        assert acts_panel.locator(".im-cache").count() == 0
        assert errors == []
        # neither the first probe, the load, nor the restart opened a comm that failed
        assert [m for m in console if "comm" in m.lower()] == []
    finally:
        page.close()


def test_panels_in_notebook7(lab, browser, artifacts):
    path = lab.root / "panels7.ipynb"
    path.write_text(json.dumps(_notebook()))
    expected = sorted({f.rule for f in rigor.check(path)})
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(lab.url("notebooks/panels7.ipynb"))
        page.wait_for_selector(".jp-Notebook", timeout=90_000)
        page.wait_for_selector(
            '.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000
        )
        page.get_by_role("menuitem", name="View").click()
        page.locator(".lm-Menu-item", has_text="Right Sidebar").hover()
        page.get_by_role("menuitem", name=re.compile("^Show Rigor findings")).click()
        panel = page.locator("#interp-magics-rigor")
        panel.locator('.im-finding[data-rule="PRB001"]').wait_for(timeout=30_000)
        rules = sorted(
            set(panel.locator(".im-finding").evaluate_all("rs => rs.map(r => r.dataset.rule)"))
        )
        assert rules == expected
        assert panel.locator(".im-count").inner_text() == str(
            len(panel.locator(".im-finding").all())
        )
        page.get_by_role("menuitem", name="View").click()
        page.locator(".lm-Menu-item", has_text="Right Sidebar").hover()
        page.get_by_role("menuitem", name=re.compile("^Show Activations")).click()
        acts_panel = page.locator("#interp-magics-activations")
        acts_panel.locator('.im-state[data-state="not-loaded"]').wait_for(timeout=30_000)
        page.screenshot(path=str(artifacts / "panels-notebook7.png"))
    finally:
        page.close()


# -- how the panels read at the default sidebar width ------------------------------------------

LOAD_CELL = (
    "%load_ext interp_magics\n"
    "import torch\n"
    "from interp_magics import capture\n"
    "from interp_magics.testing import gpt2\n"
    "model = gpt2()\n"
    "with capture(model, ['resid_post', 'transformer.h.*.attn']) as residual_stream_activations:\n"
    "    model(torch.randint(1, 90, (2, 8)))"
)

# The rendered lines of an element's text, from the position of each character.
LINES_JS = """el => {
  const lines = [];
  let line = '', bottom = null;
  const range = document.createRange();
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.data.length; i++) {
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const rects = range.getClientRects();
      if (!rects.length) { line += node.data[i]; continue; }  // collapsed white space
      const r = rects[rects.length - 1];
      if (bottom !== null && r.top >= bottom - r.height / 3) { lines.push(line); line = ''; }
      bottom = r.bottom;
      line += node.data[i];
    }
  }
  lines.push(line);
  return lines;
}"""

# A line may end after white space, a hyphen or dash, or where dom.ts wrappable() puts a <wbr>.
CLEAN_BREAK_AFTER = set(" \t\n-\u2013\u2014._/,(=")


def _bad_breaks(locator) -> list[str]:
    """Return each line break inside ``locator``'s elements that splits a word (``po|st``)."""
    bad = []
    for handle in locator.element_handles():
        lines = handle.evaluate(LINES_JS)
        for before, after in itertools.pairwise(lines):
            if before and after and before[-1] not in CLEAN_BREAK_AFTER and not after[0].isspace():
                bad.append(f"{before[-16:]}|{after[:16]}")
    return bad


def _console(page) -> list[str]:
    """Return a list that fills with the page's console errors and warnings as they come."""
    messages: list[str] = []
    page.on(
        "console",
        lambda m: (
            messages.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
        ),
    )
    return messages


def _contrasts(panel, selectors: list[str]) -> dict[str, float]:
    """Return the lowest pixel contrast of the elements each selector finds inside ``panel``."""
    worst = {}
    for selector in selectors:
        items = panel.locator(selector)
        assert items.count(), f"nothing matches {selector}"
        worst[selector] = round(min(pixel_contrast(items.nth(i)) for i in range(items.count())), 2)
    return worst


def _side_by_side(shots: list[bytes], path: Path) -> None:
    """Save the screenshots ``shots`` next to each other as one PNG at ``path``."""
    from PIL import Image

    images = [Image.open(io.BytesIO(s)).convert("RGB") for s in shots]
    out = Image.new(
        "RGB",
        (sum(i.width for i in images) + 8 * (len(images) - 1), max(i.height for i in images)),
        "#888",
    )
    x = 0
    for image in images:
        out.paste(image, (x, 0))
        x += image.width + 8
    out.save(path)


def test_panels_fit_the_default_sidebar_and_read_in_both_themes(lab, browser, artifacts):
    nb = json.loads(FLAWED.read_text())
    nb["cells"].insert(
        1,
        {
            "cell_type": "code",
            "id": "load",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": LOAD_CELL,
        },
    )
    conclusions = next(c for c in nb["cells"] if c.get("id") == "conclusions")
    conclusions["metadata"]["interp_magics"] = {
        "ignore": [
            {"rule": "EXM001", "reason": "the examples are random draws, see sample_sequences"}
        ]
    }
    path = lab.root / "look.ipynb"
    path.write_text(json.dumps(nb))
    expected = {f.rule for f in rigor.check(path)}
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console = _console(page)
    measured: dict[str, dict[str, float]] = {}
    try:
        page.goto(lab.url("lab/workspaces/t-look/tree/look.ipynb?reset"))
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
        from support.lab import run_cells

        run_cells(page, 1)
        _open_tab(page, "interp-magics-activations")
        acts = page.locator("#interp-magics-activations")
        cache = acts.locator('.im-cache[data-name="residual_stream_activations"]')
        cache.wait_for(timeout=60_000)
        cache.locator("summary .im-name").click()
        assert cache.locator(".im-key").count() == 6  # 3 blocks x (resid_post, attn)
        _open_tab(page, "interp-magics-rigor")
        panel = page.locator("#interp-magics-rigor")
        panel.locator('.im-state[data-state="ready"]').wait_for(timeout=60_000)
        assert {
            r
            for r in panel.locator(".im-finding").evaluate_all("rs => rs.map(r => r.dataset.rule)")
        } == expected
        width = panel.evaluate("p => p.getBoundingClientRect().width")
        assert width <= 260, f"the sidebar is {width} px wide, not JupyterLab's default"

        for theme in (LIGHT, DARK):
            name = "light" if theme == LIGHT else "dark"
            set_theme(page, theme)
            # -- Rigor: select a finding (as a click does), then measure every card ------------
            _open_tab(page, "interp-magics-rigor")
            panel.evaluate("p => { p.scrollTop = 0; }")
            chosen = panel.locator('.im-finding[data-rule="CAU001"]')
            chosen.locator(".im-where").click()
            selected = panel.locator('.im-finding.im-selected[aria-current="true"]')
            assert selected.count() == 1 and selected.get_attribute("data-rule") == "CAU001"
            assert overflow_px(panel) == 0
            cards = panel.locator(".im-finding")
            assert [overflow_px(cards.nth(i)) for i in range(cards.count())] == [0] * cards.count()
            texts = ".im-message, .im-fix, .im-reference, .im-reason, .im-rule-title, .im-notebook"
            assert _bad_breaks(panel.locator(texts)) == []
            measured[f"rigor-{name}"] = _contrasts(
                panel,
                [
                    ".im-panel-title",
                    ".im-count",
                    ".im-notebook",
                    ".im-state",
                    ".im-severity",
                    ".im-rule",
                    ".im-finding .im-where",
                    ".im-finding .im-message",
                    ".im-finding .im-fix",
                    ".im-finding .im-reference",
                    ".im-suppressed .im-reason",
                    ".im-ignore",
                ],
            )
            measured[f"rigor-{name}"]["selected .im-fix"] = round(
                pixel_contrast(selected.locator(".im-fix")), 2
            )
            # the reason form's placeholder, on the input's own background
            form_card = panel.locator('.im-finding[data-rule="STA002"]')
            form_card.locator(".im-ignore").click()
            form_card.locator(".im-reason-input").evaluate("i => i.blur()")  # no focus ring
            measured[f"rigor-{name}"][".im-reason-input placeholder"] = round(
                pixel_contrast(form_card.locator(".im-reason-input")), 2
            )
            form_card.locator(".im-cancel").click()
            panel.evaluate("p => { p.scrollTop = 0; }")
            chosen.scroll_into_view_if_needed()
            rigor_shot = panel.screenshot()
            # -- Activations: the cache, its tensors and the model ------------------------------
            _open_tab(page, "interp-magics-activations")
            assert overflow_px(acts) == 0
            boxes = acts.locator(".im-cache, .im-model")
            assert [overflow_px(boxes.nth(i)) for i in range(boxes.count())] == [0] * boxes.count()
            assert _bad_breaks(acts.locator(".im-name, .im-key, .im-meta, .im-notebook")) == []
            measured[f"activations-{name}"] = _contrasts(
                acts,
                [
                    ".im-panel-title",
                    ".im-total",
                    ".im-section",
                    ".im-name",
                    ".im-meta",
                    ".im-bytes",
                    ".im-entries th",
                    ".im-key",
                    ".im-grand-total",
                    ".im-free",
                ],
            )
            _side_by_side([rigor_shot, acts.screenshot()], artifacts / f"panels-{name}.png")

        (artifacts / "panels-contrast.json").write_text(json.dumps(measured, indent=1))
        low = {
            f"{panel_}: {sel}": ratio
            for panel_, ratios in measured.items()
            for sel, ratio in ratios.items()
            if ratio < AA
        }
        assert low == {}, f"text below {AA}:1 (all: {measured})"
        assert [m for m in console if "comm" in m.lower()] == []
    finally:
        set_theme(page, LIGHT)
        page.close()


def test_a_kernel_without_the_extension_gets_no_failing_comm(lab, browser):
    """The panels ask the kernel whether the extension is loaded before opening a comm."""
    path = lab.root / "plain.ipynb"
    nb = _notebook()
    nb["cells"] = [
        {
            "cell_type": "code",
            "id": "plain",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": "x = 1",
        },
        {
            "cell_type": "code",
            "id": "load",
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": "%load_ext interp_magics",
        },
    ]
    path.write_text(json.dumps(nb))
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console = _console(page)
    try:
        page.goto(lab.url("lab/workspaces/t-plain/tree/plain.ipynb?reset"))
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
        page.wait_for_selector(
            '.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000
        )
        _open_tab(page, "interp-magics-activations")
        acts = page.locator("#interp-magics-activations")
        acts.locator('.im-state[data-state="not-loaded"]').wait_for(timeout=30_000)
        page.wait_for_timeout(2000)  # the close of a failed comm would have come back by now
        assert [m for m in console if "comm" in m.lower()] == []
        # the probe ran no cell and imported nothing of interp-magics into the kernel
        assert page.locator(".jp-InputPrompt").first.inner_text().strip() == "[ ]:"
        printed = _kernel_print(
            page,
            "import sys; print(sorted(m for m in sys.modules if m.startswith('interp_magics')))",
        )
        assert printed.strip() == "[]"
        from support.lab import run_cells

        run_cells(page, 1)  # a cell without the extension: the panel still does not open a comm
        page.wait_for_timeout(1000)
        assert acts.locator(".im-state").get_attribute("data-state") == "not-loaded"
        # the same kernel, once it loads the extension, is connected to
        page.locator(".jp-CodeCell").nth(1).locator(".jp-InputPrompt").click()
        page.keyboard.press("Escape")
        page.keyboard.press("Control+Enter")
        acts.locator(".im-empty").wait_for(timeout=60_000)
        assert [m for m in console if "comm" in m.lower()] == []
    finally:
        page.close()
