"""The main job: scripts/lab.sh starts a JupyterLab that serves the tutorials and a Python kernel."""

import contextlib
import json
import secrets
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


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
