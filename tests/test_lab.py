"""The main job: scripts/lab.sh starts a JupyterLab that serves the tutorials and a Python kernel,
and the tutorials open there as saved: unmodified, tutorial 05 with its flawed example beside it."""

import contextlib
import importlib.util
import json
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from interp_magics import rigor

ROOT = Path(__file__).parent.parent
TUTORIALS = sorted((ROOT / "tutorials").glob("*.ipynb"))
EXAMPLES = sorted((ROOT / "tutorials" / "examples").glob("*.ipynb"))
TUTORIAL_05 = "05_rigor_in_practice.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_lab_serves_the_tutorials(tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    (tmp_path / "settings/@jupyterlab/apputils-extension").mkdir(parents=True)
    proc = subprocess.Popen(
        [
            "bash",
            str(ROOT / "scripts/lab.sh"),
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--LabApp.workspaces_dir={tmp_path / 'ws'}",
            f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                _get(f"{base}/api/status", token)
                break
            except OSError:
                assert proc.poll() is None, "jupyter lab exited"
                assert time.time() < deadline, "jupyter lab did not start within 60 s"
                time.sleep(0.5)
        listing = _get(f"{base}/api/contents", token)
        assert "00_quickstart.ipynb" in {item["name"] for item in listing["content"]}
        assert "python3" in _get(f"{base}/api/kernelspecs", token)["kernelspecs"]
        with urllib.request.urlopen(f"{base}/lab?token={token}", timeout=5) as resp:
            assert resp.status == 200 and b"JupyterLab" in resp.read()
    finally:
        req = urllib.request.Request(
            f"{base}/api/shutdown", method="POST", headers={"Authorization": f"token {token}"}
        )
        with contextlib.suppress(OSError):
            urllib.request.urlopen(req, timeout=5)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _lab_kernelspec() -> dict[str, str]:
    """Return scripts/run_tutorials.py's kernelspec: what JupyterLab writes for python3."""
    spec = importlib.util.spec_from_file_location(
        "run_tutorials", ROOT / "scripts/run_tutorials.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.lab_kernelspec())


def test_tutorials_are_saved_with_the_kernelspec_jupyterlab_writes():
    expected = _lab_kernelspec()
    # JupyterLab's NotebookPanel writes {name, display_name, language} of the server's spec
    assert set(expected) == {"name", "display_name", "language"}
    assert expected["name"] == "python3" and expected["language"] == "python"
    assert len(TUTORIALS) >= 6 and EXAMPLES
    for path in TUTORIALS + EXAMPLES:
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata.kernelspec == expected, path.name
        # and the kernel's language_info, which JupyterLab writes on start as well
        assert nb.metadata.language_info["name"] == "python", path.name
        assert nb.metadata.language_info["mimetype"] == "text/x-python", path.name
    beside = nbformat.read(ROOT / "tutorials" / TUTORIAL_05, as_version=4).metadata["interp_magics"]
    assert (ROOT / "tutorials" / beside["open_beside"]).is_file()


_SETTLED_JS = """async path => {
  const panel = Array.from(window.jupyterapp.shell.widgets('main'))
    .find(w => w.context && w.context.path === path);
  await panel.sessionContext.ready;
  const kernel = panel.sessionContext.session.kernel;
  await kernel.info;   // JupyterLab writes language_info from it...
  await kernel.spec;   // ...and kernelspec from this
  await new Promise(resolve => setTimeout(resolve, 500));
  return {dirty: panel.context.model.dirty,
          kernelspec: panel.context.model.getMetadata('kernelspec')};
}"""


_OPEN_JS = "p => window.jupyterapp.commands.execute('docmanager:open', {path: p})"
_CLOSE_JS = """p => Array.from(window.jupyterapp.shell.widgets('main'))
  .find(w => w.context && w.context.path === p).close()"""


@pytest.mark.browser
def test_tutorials_open_unmodified_and_05_opens_its_example_beside(lab, browser, artifacts):
    shutil.copytree(ROOT / "tutorials", lab.root / "tutorials", dirs_exist_ok=True)
    tutorial = f"tutorials/{TUTORIAL_05}"
    example = "tutorials/examples/flawed_analysis.ipynb"
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(lab.url(f"lab/workspaces/t-tutorials/tree/{tutorial}?reset"))
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
        # -- tutorial 05 opens the flawed example in a split to its right, in focus -------------
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-NotebookPanel').length === 2", timeout=60_000
        )
        boxes = page.evaluate(
            """() => Object.fromEntries(Array.from(window.jupyterapp.shell.widgets('main'))
                 .filter(w => w.context).map(w => {
                   const r = w.node.getBoundingClientRect();
                   return [w.context.path, {x: r.x, y: r.y, width: r.width, height: r.height}];
                 }))"""
        )
        assert set(boxes) == {tutorial, example}
        left, right = boxes[tutorial], boxes[example]
        assert right["x"] >= left["x"] + left["width"] - 1  # beside, not behind a tab
        assert abs(right["y"] - left["y"]) < 2 and min(left["width"], right["width"]) > 300
        assert page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path") == example
        # the Rigor panel is open and shows the example's findings
        panel = page.locator("#interp-magics-rigor")
        panel.wait_for(state="visible", timeout=30_000)
        panel.locator('.im-state[data-state="ready"]').wait_for(timeout=60_000)
        assert panel.locator(".im-notebook").inner_text() == example
        rules = set(panel.locator(".im-finding").evaluate_all("rs => rs.map(r => r.dataset.rule)"))
        assert rules == {f.rule for f in rigor.check(ROOT / example)}
        page.screenshot(path=str(artifacts / "tutorial-05-beside.png"))
        # -- every tutorial, and the example, stays unmodified once its kernel has started ------
        states = {path: page.evaluate(_SETTLED_JS, path) for path in (tutorial, example)}
        # closed and opened again while its example is still open: no second copy
        page.evaluate(_CLOSE_JS, tutorial)
        page.evaluate(_OPEN_JS, tutorial)
        page.evaluate(_SETTLED_JS, tutorial)
        paths = page.evaluate(
            "() => Array.from(window.jupyterapp.shell.widgets('main'))"
            ".filter(w => w.context).map(w => w.context.path)"
        )
        assert sorted(paths) == sorted([tutorial, example])
        # ...and the example is left where it is: the tutorial keeps the focus
        assert page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path") == tutorial
        for path in TUTORIALS:
            rel = f"tutorials/{path.name}"
            if rel not in states:
                page.evaluate(_OPEN_JS, rel)
                states[rel] = page.evaluate(_SETTLED_JS, rel)
                page.evaluate(_CLOSE_JS, rel)  # a page with every tutorial open gets slow
        expected = _lab_kernelspec()
        assert {p: s["kernelspec"] for p, s in states.items()} == dict.fromkeys(states, expected)
        assert {p: s["dirty"] for p, s in states.items()} == dict.fromkeys(states, False)
    finally:
        page.close()
