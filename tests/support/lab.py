"""A real JupyterLab and a real browser, for the end-to-end tests and the benchmarks.

``LabServer`` starts ``jupyter lab`` on 127.0.0.1 with a random token and its own settings and
workspace folders; ``launch_chromium`` starts Debian's Chromium through Playwright (never a
downloaded browser); ``run_cells`` and ``write_notebook`` drive and prepare notebooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium_path() -> str:
    """Return the path of the system Chromium, or raise saying how to install it."""
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError(
            "Chromium is needed for the browser tests: install it with "
            "`apt-get install -y chromium` (scripts/setup.sh does this when run as root)"
        )
    return path


def launch_chromium(playwright: Any) -> Any:
    """Return a headless Chromium browser (the system one) started through Playwright."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS))


class LabServer:
    """A ``jupyter lab`` started for one test session, on 127.0.0.1 with a random token.

    Use as a context manager; ``url(path)`` gives an address with the token. The server runs
    with its own settings and workspace folders (so no earlier layout or news toast appears)
    and exposes ``window.jupyterapp`` to the page for tests.
    """

    def __init__(self, root: str | Path, *, timeout: float = 90.0) -> None:
        import secrets

        self.root = Path(root)
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.timeout = timeout
        self.process: Any = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """Return the address of ``path`` on this server, with the token."""
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def __enter__(self) -> LabServer:
        import json
        import subprocess
        import sys
        import time

        state = self.root / ".lab-state"
        settings = state / "settings" / "@jupyterlab"
        (settings / "apputils-extension").mkdir(parents=True, exist_ok=True)
        (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        (settings / "notebook-extension").mkdir(parents=True, exist_ok=True)
        (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
            json.dumps({"windowingMode": "none"})
        )
        self._log = open(state / "server.log", "w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}",
                f"--LabApp.workspaces_dir={state / 'ws'}",
                f"--LabApp.user_settings_dir={state / 'settings'}",
                "--LabApp.expose_app_in_browser=True",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + self.timeout
        while True:
            try:
                self.get("api/status")
                return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"jupyter lab exited; see {state / 'server.log'}") from None
                if time.time() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError(
                        f"jupyter lab did not start in {self.timeout:.0f} s"
                    ) from None
                time.sleep(0.3)

    def get(self, path: str) -> Any:
        """Return the JSON answer of a GET to the server's REST API."""
        import json
        import urllib.request

        req = urllib.request.Request(
            f"{self.base}/{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def stop_kernels(self) -> int:
        """Shut down every session and kernel on this server; return how many kernels ran.

        Browser tests share one server: each stops its kernels so that later tests do not
        run beside earlier kernels' models (several torch kernels can exhaust a small machine).
        """
        for session in self.get("api/sessions"):
            self._send("DELETE", f"api/sessions/{session['id']}", timeout=30)
        kernels = self.get("api/kernels")
        for kernel in kernels:
            self._send("DELETE", f"api/kernels/{kernel['id']}", timeout=30)
        return len(kernels)

    def _send(self, method: str, path: str, *, timeout: float) -> None:
        """Send a bodiless request to the REST API; a server already gone is not an error."""
        import contextlib
        import urllib.request

        req = urllib.request.Request(
            f"{self.base}/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with contextlib.suppress(OSError):
            urllib.request.urlopen(req, timeout=timeout)

    def __exit__(self, *exc: object) -> None:
        import subprocess

        self._send("POST", "api/shutdown", timeout=5)
        if self.process is not None:
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cells(page: Any, count: int, *, timeout: float = 120.0) -> None:
    """Run the first ``count`` code cells of the open notebook, one by one, from the keyboard.

    Works alike in JupyterLab and Notebook 7. Each cell is run and waited for (its prompt shows
    an execution count); a request sent while the kernel connection was still settling can be
    lost without a trace, so a cell that does not start is run again.
    """
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000)
    for i in range(count):
        cell = page.locator(".jp-CodeCell").nth(i)
        prompt = cell.locator(".jp-InputPrompt")
        for attempt in range(3):
            raise_on_dialog(page)
            prompt.click()
            page.keyboard.press("Escape")
            page.keyboard.press("Control+Enter")
            try:
                page.wait_for_function(
                    "el => /\\[\\d+\\]/.test(el.innerText)",
                    arg=prompt.element_handle(),
                    timeout=timeout * 1000 if attempt else 15_000,
                )
                break
            except Exception:
                if "*" in prompt.inner_text():
                    page.wait_for_function(
                        "el => /\\[\\d+\\]/.test(el.innerText)",
                        arg=prompt.element_handle(),
                        timeout=timeout * 1000,
                    )
                    break
        else:
            raise RuntimeError(f"cell {i} did not run after 3 attempts")


def raise_on_dialog(page: Any) -> None:
    """Raise with its text when JupyterLab shows a modal dialog (e.g. "Kernel Restarting").

    A dialog would otherwise only block clicks until a timeout that does not say why.
    """
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        text = " ".join(dialog.first.inner_text().split())
        raise RuntimeError(f"JupyterLab shows a dialog: {text!r}")


def write_notebook(path: str | Path, cells: list[str]) -> Path:
    """Return the path of a new Python notebook with ``cells`` (``#md\\n`` starts markdown)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for source in cells:
        if source.startswith("#md\n"):
            nb.cells.append(nbformat.v4.new_markdown_cell(source[4:]))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(source))
    path = Path(path)
    nbformat.write(nb, path)
    return path
