"""Execute the tutorial notebooks in place from fresh kernels, saving their outputs.

    .venv/bin/python scripts/run_tutorials.py                 # every tutorials/*.ipynb
    .venv/bin/python scripts/run_tutorials.py tutorials/02_attention_and_induction_heads.ipynb

The saved copies then read well on GitHub and nbviewer (widgets carry their static images).
Widget state is not stored, so a static viewer shows those images rather than an empty widget.
Each is saved with the kernelspec JupyterLab writes for the ``python3`` kernel (its name, display
name and language, read from the kernelspec itself), so opening a tutorial in JupyterLab leaves
it unmodified.
Prints each notebook's run time and saved size, and fails when a cell errors or a saved copy
is over 2 MB.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 2 * 2**20


KERNEL = "python3"


def lab_kernelspec(name: str = KERNEL) -> dict[str, str]:
    """Return the ``kernelspec`` metadata JupyterLab writes when it starts kernel ``name``.

    JupyterLab 4 sets ``{name, display_name, language}`` from the server's kernelspec on every
    kernel start (``NotebookPanel._updateSpec``) and marks the notebook modified when the saved
    value differs, so a tutorial saved with anything else opens already modified.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(name)
    return {"display_name": spec.display_name, "language": spec.language, "name": name}


def run(path: Path) -> tuple[float, int]:
    """Return the run time and saved size of ``path`` after executing it in place."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata["kernelspec"] = lab_kernelspec()
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=900,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=False,
    ).execute()
    seconds = time.perf_counter() - start
    nbformat.write(nb, path)
    return seconds, path.stat().st_size


def main() -> int:
    paths = [Path(p) for p in sys.argv[1:]] or sorted((ROOT / "tutorials").glob("*.ipynb"))
    failed = False
    total = 0.0
    for path in paths:
        seconds, size = run(path)
        total += seconds
        too_big = size > MAX_BYTES
        failed |= too_big
        print(
            f"{path.name}: ran in {seconds:.1f} s, saved {size / 1024:.0f} KiB"
            + ("  (over the 2 MB limit)" if too_big else "")
        )
    print(f"all: {total:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
