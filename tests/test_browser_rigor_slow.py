"""A notebook that is slow to check never stalls JupyterLab, and the panel says it timed out.

The lab here runs with ``RigorChecks.stall_marker`` set, a test-only server setting: a notebook
with the marker in a cell keeps its check's worker process inside a regular expression that
backtracks, holding that process's interpreter lock, until the time limit kills it. That is
what a crafted notebook does to a checker with a super-linear pattern; the setting stands in
for such an input because the checker's slow patterns are being made linear, and the test must
not depend on which inputs are still slow. Run in one of the server's threads, such a check
would hold the server's lock too and freeze every request for as long as it ran.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from support.lab import LabServer

pytestmark = pytest.mark.browser

MARK = "STALL-THE-RIGOR-WORKER"
LIMIT = 8.0  # seconds: RigorChecks.timeout of this lab, which runs one check at a time
CLAIM = "Head 2.1 is responsible for the answer."


@pytest.fixture(scope="module")
def slow_lab(tmp_path_factory):
    """A ``jupyter lab`` whose rigor checks stall on MARK and time out after LIMIT seconds."""
    config = tmp_path_factory.mktemp("slow-config")
    settings = {"RigorChecks": {"stall_marker": MARK, "timeout": LIMIT, "max_checks": 1}}
    (config / "jupyter_server_config.json").write_text(json.dumps(settings))
    before = os.environ.get("JUPYTER_CONFIG_PATH")
    # The server reads its configuration from this folder too (it inherits the environment).
    os.environ["JUPYTER_CONFIG_PATH"] = os.pathsep.join(filter(None, [str(config), before]))
    try:
        server = LabServer(tmp_path_factory.mktemp("slow-lab")).__enter__()
    finally:
        if before is None:
            del os.environ["JUPYTER_CONFIG_PATH"]
        else:
            os.environ["JUPYTER_CONFIG_PATH"] = before
    try:
        yield server
    finally:
        server.__exit__(None, None, None)


def _notebook(mark: str = MARK) -> dict[str, Any]:
    return {
        "cells": [
            {"cell_type": "markdown", "id": "claim", "metadata": {}, "source": f"{CLAIM} {mark}"},
            {
                "cell_type": "code",
                "id": "code",
                "metadata": {},
                "source": "x = 1",
                "outputs": [],
                "execution_count": None,
            },
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _post(lab: LabServer, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{lab.base}/interp-magics/rigor",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_slow_check_never_stalls_the_server(slow_lab):
    """Other requests answer within 1 s while a check spins in its worker."""
    answer: dict[str, Any] = {}

    def post() -> None:
        answer["code"], answer["reply"] = _post(slow_lab, {"notebook": _notebook()})

    check = threading.Thread(target=post)
    started = time.monotonic()
    check.start()
    times = []
    while time.monotonic() - started < LIMIT / 2:
        t0 = time.monotonic()
        listing = slow_lab.get("api/contents")
        times.append(time.monotonic() - t0)
        assert listing["type"] == "directory"
        time.sleep(0.2)
    assert check.is_alive()  # every request above was answered while the check ran
    assert len(times) >= 5 and max(times) < 1.0, times
    check.join(timeout=120)
    assert answer["code"] == 504, answer
    assert answer["reply"]["status"] == "timed-out"
    assert answer["reply"]["message"].startswith("check timed out")
    assert "findings" not in answer["reply"]


def _open(page: Any, lab: LabServer, name: str) -> Any:
    """Open notebook ``name`` in JupyterLab with the Rigor panel shown; return the panel."""
    workspace = name.removesuffix(".ipynb")
    page.goto(lab.url(f"lab/workspaces/t-{workspace}/tree/{name}?reset"))
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
    tab = page.locator('li.lm-TabBar-tab[data-id="interp-magics-rigor"]')
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()
    panel = page.locator("#interp-magics-rigor")
    panel.wait_for(state="visible")
    return panel


def test_the_panel_shows_that_the_check_timed_out(slow_lab, browser, artifacts):
    (slow_lab.root / "slow.ipynb").write_text(json.dumps(_notebook()))
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        panel = _open(page, slow_lab, "slow.ipynb")
        panel.locator('.im-state[data-state="checking"]').wait_for(timeout=30_000)
        # JupyterLab itself keeps working while the panel's check runs
        elapsed = page.evaluate(
            """async () => {
                 const t0 = performance.now();
                 await window.jupyterapp.serviceManager.contents.get('');
                 return performance.now() - t0;
               }"""
        )
        assert elapsed < 1000, elapsed
        assert panel.locator(".im-state").get_attribute("data-state") == "checking"

        state = panel.locator('.im-state[data-state="timed-out"]')
        state.wait_for(timeout=LIMIT * 1000 + 60_000)
        assert state.inner_text().startswith("check timed out: checking slow.ipynb took longer")
        assert panel.locator(".im-finding").count() == 0  # no findings for an unchecked notebook
        # no number: a green zero would read as a clean notebook
        assert panel.locator(".im-count").get_attribute("data-count") == "unknown"
        assert panel.locator(".im-count").inner_text() == "–"
        assert panel.locator(".im-count-label").inner_text() == "not checked"
        tab = page.locator('li.lm-TabBar-tab[data-id="interp-magics-rigor"]')
        assert tab.get_attribute("data-im-count") == "0"  # the badge is drawn only above 0
        panel.screenshot(path=str(artifacts / "panel-rigor-timed-out.png"))
        assert errors == []
    finally:
        page.close()
        slow_lab.stop_kernels()


def test_the_panel_asks_again_when_the_server_is_busy(slow_lab, browser, artifacts):
    """The lab runs one check at a time: the panel's check meets a 503 and is retried."""
    (slow_lab.root / "clean.ipynb").write_text(json.dumps(_notebook(mark="")))
    answer: dict[str, Any] = {}

    def block() -> None:  # the one check this lab runs, stalled, on another notebook
        answer["code"], answer["reply"] = _post(
            slow_lab, {"notebook": _notebook(), "path": "b.ipynb"}
        )

    blocker = threading.Thread(target=block)
    blocker.start()
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    try:
        panel = _open(page, slow_lab, "clean.ipynb")
        busy = panel.locator('.im-state[data-state="busy"]')
        busy.wait_for(timeout=60_000)
        assert blocker.is_alive()
        assert re.fullmatch(  # 1 s, then 2, 4, ... as the panel asks again
            r"the server is busy with as many rigor checks as it allows; trying again in \d+ s",
            busy.inner_text(),
        )
        panel.screenshot(path=str(artifacts / "panel-rigor-busy.png"))
        # once the blocking check is replaced by a newer one of its notebook, then done, the
        # panel's next try goes through
        assert _post(slow_lab, {"notebook": _notebook(mark=""), "path": "b.ipynb"})[0] == 200
        blocker.join(timeout=60)
        assert answer["code"] == 409 and answer["reply"]["status"] == "superseded"
        panel.locator('.im-finding[data-rule="CAU001"]').wait_for(timeout=60_000)
        # findings can show while a check of the same notebook's later save is still running
        panel.locator('.im-state[data-state="ready"]').wait_for(timeout=60_000)
        assert panel.locator(".im-state").get_attribute("data-state") == "ready"
    finally:
        page.close()
        slow_lab.stop_kernels()
