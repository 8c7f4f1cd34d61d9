"""The Rigor and Activations sidebar panels in a real JupyterLab and Notebook 7, in Chromium.

The lab runs the installed package: the prebuilt extension from share/jupyter/labextensions and
the server extension enabled by the config the wheel ships.
"""

import json
import re

import pytest

from interp_magics import rigor

pytestmark = pytest.mark.browser

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
        assert float(ignored.evaluate("r => getComputedStyle(r).opacity")) < 1
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

        # -- restart: the panel says so, and loading again is one click ------------------------
        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.restartKernel()")
        acts_panel.locator('.im-state[data-state="not-loaded"]', has_text="restarted").wait_for(
            timeout=60_000
        )
        acts_panel.locator(".im-load").click()
        acts_panel.locator(".im-empty").wait_for(timeout=30_000)
        assert acts_panel.locator(".im-cache").count() == 0
        assert errors == []
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
