"""The %rigor report in a real JupyterLab: each finding links to its cell."""

import json

import pytest
from support.lab import run_cells

pytestmark = pytest.mark.browser

TARGET = "target-cell"


def _notebook() -> dict:
    code = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": []}
    filler = "\n\n".join(f"Paragraph {i} of the write-up." for i in range(40))
    cells = [
        {
            **code,
            "id": TARGET,
            "source": "import numpy as np\n"
            "from sklearn.linear_model import LogisticRegression\n"
            "from sklearn.model_selection import cross_val_score\n"
            "rng = np.random.default_rng(0)\n"
            "X = rng.standard_normal((200, 16)); y = (X[:, 0] > 0).astype(int)\n"
            "scores = cross_val_score(LogisticRegression(), X, y, cv=5)",
        },
        *(
            {"cell_type": "markdown", "id": f"md-{i}", "metadata": {}, "source": filler}
            for i in range(3)
        ),
        {**code, "id": "check", "source": "%load_ext interp_magics\n%rigor"},
    ]
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_rigor_links_jump_to_their_cell(lab, browser, artifacts):
    (lab.root / "rigor.ipynb").write_text(json.dumps(_notebook()))
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    try:
        page.goto(lab.url("lab/workspaces/t-rigor/tree/rigor.ipynb?reset"))
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
        run_cells(page, 2)
        report = page.locator(".jp-OutputArea-output", has_text="PRB001")
        report.wait_for(timeout=60_000)
        # the kernel found the notebook it runs without being told its path
        assert "rigor.ipynb" in report.inner_text()
        row = report.locator(f'tr[data-rule="PRB001"][data-cell-id="{TARGET}"]')
        assert row.count() == 1
        target = page.locator(".jp-Notebook .jp-Cell").first
        scroller = page.locator(".jp-WindowedPanel-outer").first

        def visible() -> bool:
            box, view = target.bounding_box(), scroller.bounding_box()
            return bool(
                box
                and view
                and box["y"] < view["y"] + view["height"]
                and box["y"] + box["height"] > view["y"]
            )

        row.locator("a").scroll_into_view_if_needed()
        assert not visible()
        row.locator("a").click()
        page.wait_for_function(
            """([cell, view]) => { const b = cell.getBoundingClientRect(), v = view.getBoundingClientRect();
                                    return b.top < v.bottom && b.bottom > v.top; }""",
            arg=[target.element_handle(), scroller.element_handle()],
            timeout=15_000,
        )
        assert visible()
        # the link opened no second copy of the notebook
        assert (
            page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="rigor.ipynb").count() == 1
        )
        page.screenshot(path=str(artifacts / "rigor-jump.png"))
    finally:
        page.close()
