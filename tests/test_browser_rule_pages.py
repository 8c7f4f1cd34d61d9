"""Rule pages from the Rigor panel, in a real JupyterLab: each finding links to its rule's page,
which opens in a new tab from the Jupyter server, escaped and script-free."""

import json

import pytest

from interp_magics.rigor import pages

pytestmark = pytest.mark.browser


def _notebook() -> dict:
    probe = (
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.model_selection import cross_val_score\n"
        "scores = cross_val_score(LogisticRegression(), X, y, cv=5)"
    )
    return {
        "cells": [
            {"cell_type": "markdown", "id": "title", "metadata": {}, "source": "# A probe"},
            {
                "cell_type": "code",
                "id": "probe-cell",
                "metadata": {},
                "source": probe,
                "execution_count": None,
                "outputs": [],
            },
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_panel_links_each_finding_to_its_rule_page(lab, browser, artifacts):
    (lab.root / "pages.ipynb").write_text(json.dumps(_notebook()))
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(lab.url("lab/workspaces/t-pages/tree/pages.ipynb?reset"))
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
        tab = page.locator('li.lm-TabBar-tab[data-id="interp-magics-rigor"]')
        if "lm-mod-current" not in (tab.get_attribute("class") or ""):
            tab.click()
        finding = page.locator('#interp-magics-rigor .im-finding[data-rule="PRB001"]')
        finding.wait_for(timeout=60_000)
        link = finding.locator("a.im-rule-page")
        assert link.count() == 1
        assert link.get_attribute("href") == f"{lab.base}/interp-magics/rules/PRB001"
        assert link.get_attribute("target") == "_blank"
        assert "noopener" in (link.get_attribute("rel") or "").split()
        assert link.inner_text() == "PRB001 rule page"
        active = "window.jupyterapp.shell.currentWidget.content.activeCellIndex"
        before = page.evaluate(f"() => {active}")
        assert before == 0  # the finding's cell is the second one
        with context.expect_page(timeout=30_000) as opened:
            link.click()
        rule_page = opened.value
        rule_page.wait_for_load_state()
        assert rule_page.url == f"{lab.base}/interp-magics/rules/PRB001"
        heading = rule_page.locator("h1").inner_text()
        assert heading == "PRB001: probe without a control"
        sections = rule_page.locator("h2").all_inner_texts()
        assert sections == list(pages.SECTIONS)
        assert rule_page.locator("script").count() == 0
        assert rule_page.evaluate("() => window.opener") is None  # rel=noopener
        rule_page.screenshot(path=str(artifacts / "rule-page.png"), full_page=True)
        rule_page.close()
        # following the link is not a click on the row: the notebook did not jump
        assert page.evaluate(f"() => {active}") == before
        assert errors == []
    finally:
        context.close()
