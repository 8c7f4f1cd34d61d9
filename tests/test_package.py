"""The package itself: light import, public names, a wheel that pip can install."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

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
        "import interp_magics, interp_magics.magics, interp_magics.capturing;"
        "print(interp_magics.capture is interp_magics.capturing.Capture)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    assert interp_magics.__version__ == "0.1.0"


def test_core_never_imports_ipython():
    core = [
        "adapters",
        "attention",
        "cache",
        "capturing",
        "errors",
        "events",
        "hooks",
        "memory",
        "options",
        "outputs",
        "sites",
        "targets",
    ]
    for name in core:
        source = (ROOT / "interp_magics" / f"{name}.py").read_text()
        imports = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", source, flags=re.M)
        assert not {i.split(".")[0] for i in imports} & {
            "IPython",
            "ipywidgets",
            "anywidget",
            "comm",
        }, name


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
    for module in ("__init__", "capturing", "magics", "ledger", "sites", "adapters", "attention"):
        assert f"interp_magics/{module}.py" in names
    # the built widget front end ships inside the wheel (it is git-ignored, so listed as artifacts)
    for built in (
        "attention.js",
        "attention.css",
        "patching.js",
        "patching.css",
        "probes.js",
        "probes.css",
    ):
        assert f"interp_magics/widgets/static/{built}" in names
    bundle = zipfile.ZipFile(wheel).read("interp_magics/widgets/static/attention.js")
    assert b"http://" not in bundle and b"https://" not in bundle  # nothing fetched at display time
    assert len(bundle) < 300 * 1024
    assert not any(n.startswith("tests/") for n in names)
