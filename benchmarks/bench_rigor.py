"""Rigor checker speed: a 1,000-cell notebook read statically, and the ledger's cost per cell run.

- Static: ``rigor.check`` on a 1,000-cell notebook (800 code cells with imports, loops, probes,
  statistics and magics; 200 markdown cells with claims), median of 7 runs, with the time to
  parse the file included.
- Ledger: a real IPython shell runs 2,000 small cells with the extension loaded and 2,000 without
  (interleaved in blocks); the difference per cell is what the ledger's pre/post_run_cell events
  and its bookkeeping cost.

    .venv/bin/python benchmarks/bench_rigor.py
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

from interp_magics import rigor

RESULTS = Path(__file__).parent / "results"

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


def main() -> None:
    static, n_findings = static_time()
    plain, loaded = ledger_cost()
    result = {
        "static_1000_cells_s": static,
        "findings": n_findings,
        "cell_run_without_extension_ms": plain * 1000,
        "cell_run_with_extension_ms": loaded * 1000,
        "ledger_overhead_ms_per_cell": (loaded - plain) * 1000,
    }
    RESULTS.mkdir(exist_ok=True)
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
