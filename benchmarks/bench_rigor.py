"""Rigor checker speed: a 1,000-cell notebook, linear growth on adversarial inputs, the ledger.

- Static: ``rigor.check`` on a 1,000-cell notebook (800 code cells with imports, loops, probes,
  statistics and magics; 200 markdown cells with claims), median of 7 runs, with the time to
  parse the file included.
- Scaling: ``rigor.check`` on a realistic study and on every notebook built to be slow
  (``tests/support/rigor_inputs.py``: long runs of spaces, digits and brackets, suppression
  fragments, unclosed comments, many newlines, many ``!`` lines, 10,000+ cells, deep nesting...)
  at 1x, 2x and 4x the size (256 KB, 512 KB, 1 MB of cell text), median of 3 runs: linear
  cost doubles with the size, so the ratios read about 2 and 4.
- Ledger: a real IPython shell runs 2,000 small cells with the extension loaded and 2,000 without
  (interleaved in blocks); the difference per cell is what the ledger's pre/post_run_cell events
  and its bookkeeping cost.

    .venv/bin/python benchmarks/bench_rigor.py            # everything
    .venv/bin/python benchmarks/bench_rigor.py --scaling  # only the scaling table
    # the same inputs against another copy of the package (say, an older checkout), each
    # check in its own process and stopped after --timeout seconds:
    .venv/bin/python benchmarks/bench_rigor.py --scaling --against /path/to/old/checkout \
        --sizes 2048 8192 32768 --timeout 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from interp_magics import rigor

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from support import rigor_inputs

RESULTS = Path(__file__).parent / "results"
SIZES = (256 * 1024, 512 * 1024, 1024 * 1024)  # 1x, 2x, 4x

CODE = [
    "import numpy as np\nfrom sklearn.linear_model import LogisticRegression\nfrom scipy.stats import pearsonr",
    "X = np.random.rand(100, 8)\ny = (X[:, 0] > 0.5).astype(int)\nclf = LogisticRegression().fit(X, y)",
    "for layer in range(6):\n    r, p = pearsonr(X[:, layer], y)\n    print(layer, r, p)",
    "%time z = np.random.randn(10)\n!echo done",
    "def metric(logits):\n    return logits[:, -1].softmax(-1)[:, 3]\nresults = [metric(x) for x in batches]",
]
MARKDOWN = [
    "## Results\nThe probe reaches an accuracy of 0.91 and layer 6 outperforms layer 2.",
    "Head 3.2 attends to the previous token and is responsible for copying.",
]


def big_notebook(n: int = 1000) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    for i in range(n):
        if i % 5 == 4:
            cell = nbformat.v4.new_markdown_cell(MARKDOWN[i % 2])
        else:
            cell = nbformat.v4.new_code_cell(CODE[i % len(CODE)], execution_count=i + 1)
            cell.outputs = [
                nbformat.v4.new_output(
                    "stream", name="stdout", text=f"accuracy {0.5 + i / 4000:.3f}\n"
                )
            ]
        cell["id"] = f"cell{i}"
        nb.cells.append(cell)
    return nb


def static_time() -> tuple[float, int]:
    path = Path(tempfile.mkdtemp()) / "big.ipynb"
    nbformat.write(big_notebook(), path)
    rigor.check(path)  # warm-up (imports)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        findings = rigor.check(path)
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(findings)


def ledger_cost(cells: int = 2000) -> tuple[float, float]:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    cfg = Config()
    cfg.HistoryAccessor.enabled = False
    shell = InteractiveShell.instance(config=cfg)
    shell.run_cell("x = 0")
    with_ext, without = [], []
    for block in range(10):
        for loaded, sink in ((True, with_ext), (False, without)):
            if loaded:
                shell.run_line_magic("load_ext", "interp_magics")
            start = time.perf_counter()
            for i in range(cells // 10):
                shell.run_cell(f"x = x + {i}", cell_id=f"b{block}c{i}")
            sink.append((time.perf_counter() - start) / (cells // 10))
            if loaded:
                shell.run_line_magic("unload_ext", "interp_magics")
    return statistics.median(without), statistics.median(with_ext)


def inputs() -> dict[str, object]:
    """Return the notebook makers of the scaling table, by name."""
    return {"realistic": rigor_inputs.realistic, **rigor_inputs.ADVERSARIAL}


def check_time(name: str, size: int, repeats: int) -> float:
    """Return the median seconds of ``rigor.check`` on input ``name`` of ``size`` characters."""
    make = inputs()[name]
    path = Path(tempfile.mkdtemp()) / f"{name.replace(' ', '_')}.ipynb"
    rigor_inputs.write(make(size), path)  # type: ignore[operator]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        rigor.check(path)
        times.append(time.perf_counter() - start)
    path.unlink()
    return statistics.median(times)


def check_time_elsewhere(name: str, size: int, against: str, timeout: float) -> float | None:
    """Return the seconds of one check by the package in ``against`` (None: over ``timeout``)."""
    env = {**os.environ, "PYTHONPATH": against}
    command = [sys.executable, __file__, "--one", name, str(size)]
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, check=True
        )
    except subprocess.TimeoutExpired:
        return None
    return float(done.stdout.split()[-1])


def scaling(sizes: list[int], repeats: int, against: str | None, timeout: float) -> dict:
    """Print and return the seconds per input and size, and the ratios to the first size."""
    rigor.check(rigor_inputs.notebook([rigor_inputs.cell("code", "x = 1", 0)]))  # imports
    where = f" (package from {against}, one run, stopped after {timeout:g} s)" if against else ""
    print(f"rigor.check seconds at {', '.join(f'{s / 1024:g} KB' for s in sizes)}{where}")
    table = {}
    for name in inputs():
        row: list[float | None] = []
        for size in sizes:
            if against:
                row.append(check_time_elsewhere(name, size, against, timeout))
            else:
                row.append(check_time(name, size, repeats))
        table[name] = row
        cells = "  ".join(f"{t:7.3f}" if t is not None else f">{timeout:6g}" for t in row)
        base = row[0]
        ratios = "  ".join(
            f"x{t / base:5.2f}" if t is not None and base else "   -  " for t in row[1:]
        )
        print(f"  {name:<22} {cells}   ratios {ratios}")
    return {"sizes": sizes, "seconds": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scaling", action="store_true", help="only the scaling table")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", help="time the package found on this PYTHONPATH instead")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--one", nargs=2, metavar=("NAME", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # one timed check, for --against
        rigor.check(rigor_inputs.notebook([rigor_inputs.cell("code", "x = 1", 0)]))
        print(rigor.__file__, check_time(args.one[0], int(args.one[1]), 1))
        return
    RESULTS.mkdir(exist_ok=True)
    table = scaling(args.sizes, args.repeats, args.against, args.timeout)
    suffix = "_against" if args.against else ""
    (RESULTS / f"rigor_scaling{suffix}.json").write_text(json.dumps(table, indent=2))
    if args.scaling or args.against:
        return
    static, n_findings = static_time()
    plain, loaded = ledger_cost()
    result = {
        "static_1000_cells_s": static,
        "findings": n_findings,
        "cell_run_without_extension_ms": plain * 1000,
        "cell_run_with_extension_ms": loaded * 1000,
        "ledger_overhead_ms_per_cell": (loaded - plain) * 1000,
    }
    (RESULTS / "rigor.json").write_text(json.dumps(result, indent=2))
    print(
        f"static check of a 1,000-cell notebook: {static * 1000:.0f} ms (median of 7; {n_findings} findings)"
    )
    print(
        f"cell execution: {plain * 1000:.3f} ms without the extension, {loaded * 1000:.3f} ms with it: "
        f"ledger overhead {(loaded - plain) * 1000:.3f} ms per cell"
    )


if __name__ == "__main__":
    main()
