"""The package itself: light import, public names, a wheel that pip can install."""

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import interp_magics

ROOT = Path(__file__).parent.parent


def test_import_does_not_load_torch_or_ipython():
    code = "import sys, interp_magics; print('torch' in sys.modules, 'IPython' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_public_names_resolve():
    for name in interp_magics.__all__:
        assert getattr(interp_magics, name) is not None
    assert callable(interp_magics.capture)


def test_capture_stays_the_function_after_the_engine_module_loads():
    code = (
        "import interp_magics, interp_magics.jupyter.magics, interp_magics.core.capturing;"
        "print(interp_magics.capture is interp_magics.core.capturing.Capture)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    assert interp_magics.__version__ == "0.1.0"


@pytest.mark.slow
def test_wheel_builds_and_contains_the_package(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("interp_magics-0.1.0-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for module in (
        "__init__",
        "version",
        "core/capturing",
        "core/records",
        "core/sites",
        "core/adapters",
        "patching/__init__",
        "probes/__init__",
        "rigor/__init__",
        "jupyter/magics",
        "jupyter/ledger",
        "jupyter/server",
        "attention",
        "toy",
    ):
        assert f"interp_magics/{module}.py" in names
    # the browser test harness stays with the tests: the shipped testing.py only builds models
    testing = zipfile.ZipFile(wheel).read("interp_magics/testing.py").decode()
    assert "def gpt2(" in testing
    assert "LabServer" not in testing and "playwright" not in testing.lower()
    # the trained toy model ships, small
    weights = zipfile.ZipFile(wheel).getinfo("interp_magics/data/toy_induction.safetensors")
    assert 10_000 < weights.file_size < 1_000_000
    # the built widget front end ships inside the wheel (it is git-ignored, so listed as artifacts)
    for built in (
        "attention.js",
        "attention.css",
        "patching.js",
        "patching.css",
        "probes.js",
        "probes.css",
        "lens.js",
        "lens.css",
        "circuit.js",
        "circuit.css",
        "features.js",
        "features.css",
    ):
        assert f"interp_magics/widgets/static/{built}" in names
    # the rule pages `interp-rigor --explain` prints and the server serves, one per rule
    from interp_magics.rigor import RULES

    for rule_id in RULES:
        assert f"interp_magics/rigor/pages/{rule_id}.md" in names, rule_id
    page = zipfile.ZipFile(wheel).read("interp_magics/rigor/pages/PRB001.md").decode()
    assert "## References" in page and "Hewitt" in page
    bundle = zipfile.ZipFile(wheel).read("interp_magics/widgets/static/attention.js")
    assert b"http://" not in bundle and b"https://" not in bundle  # nothing fetched at display time
    assert len(bundle) < 300 * 1024
    assert not any(n.startswith("tests/") for n in names)
    # the prebuilt JupyterLab extension and the server extension's config, where Jupyter looks
    data = "interp_magics-0.1.0.data/data"
    ext = f"{data}/share/jupyter/labextensions/interp-magics"
    assert f"{ext}/package.json" in names and f"{ext}/install.json" in names
    assert f"{ext}/static/style.js" in names
    assert any(re.fullmatch(rf"{ext}/static/remoteEntry\.[0-9a-f]+\.js", n) for n in names)
    config = zipfile.ZipFile(wheel).read(
        f"{data}/etc/jupyter/jupyter_server_config.d/interp_magics.json"
    )
    assert json.loads(config) == {"ServerApp": {"jpserver_extensions": {"interp_magics": True}}}
    assert not any(n.startswith("interp_magics/labextension/") for n in names)  # not twice
    shipped = json.loads(zipfile.ZipFile(wheel).read(f"{ext}/package.json"))
    assert shipped["name"] == "interp-magics" and shipped["jupyterlab"]["_build"]["load"]


@pytest.mark.slow
def test_jupyter_lists_both_extensions_enabled_and_ok():
    bin_dir = Path(sys.executable).parent
    labext = subprocess.run(
        [str(bin_dir / "jupyter"), "labextension", "list"], capture_output=True, text=True
    )
    listing = re.sub(r"\x1b\[[0-9;]*m", "", labext.stdout + labext.stderr)
    assert re.search(r"interp-magics v0\.1\.0 enabled OK \(python, interp-magics\)", listing)
    server = subprocess.run(
        [str(bin_dir / "jupyter"), "server", "extension", "list"], capture_output=True, text=True
    )
    listing = re.sub(r"\x1b\[[0-9;]*m", "", server.stdout + server.stderr)
    assert re.search(
        r"interp_magics enabled\s+- Validating interp_magics\.\.\.\s+interp_magics 0\.1\.0 OK",
        listing,
    ), listing
