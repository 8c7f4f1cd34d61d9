"""Notebooks built to be slow to check: the adversarial inputs of the rigor speed tests.

Each generator returns an nbformat-4 notebook dict of about ``size`` characters of cell text,
shaped after one way a regular expression or a pass over the notebook can cost more than
linear time: long runs of spaces, digits and brackets, ``# rigor: ignore[`` fragments, unclosed
``<!--`` comments, many newlines, many ``!`` lines, 10,000 cells, deep nesting, many claims
against many outputs. :data:`ADVERSARIAL` names them all; :func:`realistic` is an ordinary
study scaled up. The tests and ``benchmarks/bench_rigor.py`` share them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Notebook = dict[str, Any]


def cell(kind: str, source: str, i: int, output: str = "") -> dict[str, Any]:
    """Return one nbformat-4 cell (a code cell has one stdout output when ``output``)."""
    out: dict[str, Any] = {"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": source}
    if kind == "code":
        out["execution_count"] = None
        out["outputs"] = (
            [{"output_type": "stream", "name": "stdout", "text": output}] if output else []
        )
    return out


def notebook(cells: list[dict[str, Any]]) -> Notebook:
    """Return an nbformat-4 notebook dict holding ``cells``."""
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}


def one_cell(kind: str, source: str) -> Notebook:
    """Return a notebook of a single cell."""
    return notebook([cell(kind, source, 0)])


def repeat(unit: str, size: int) -> str:
    """Return ``unit`` repeated to about ``size`` characters."""
    return unit * max(1, size // len(unit))


# -- one generator a super-linear pattern ---------------------------------------------------------


def suppression_spaces(size: int) -> Notebook:
    """A suppression comment whose reason is followed by a long run of spaces."""
    return one_cell("code", "x = 1  # rigor: ignore[PRB001] -- a" + " " * size + "b")


def suppression_fragments(size: int) -> Notebook:
    """Many unfinished ``# rigor: ignore[`` fragments on one line and on many lines."""
    line = repeat("# rigor: ignore[PRB001, STA001 ", 2000) + "\n"
    return one_cell("code", repeat(line, size // 2) + repeat("rigor:ignore[", size // 2))


def blank_lines(size: int) -> Notebook:
    """A code cell of newlines and spaces (a MULTILINE ``^\\s*`` pattern crosses them)."""
    return notebook(
        [
            cell("code", repeat("\n", size // 2) + "x = 1", 0),
            cell("code", repeat("  \n", size // 2) + "y = 2 ?", 1),
        ]
    )


def unclosed_comments(size: int) -> Notebook:
    """Markdown lines of unclosed ``<!--`` comments."""
    line = repeat("<!-- ", 5000) + "\n"
    return one_cell("markdown", "The accuracy was 0.9.\n" + repeat(line, size))


def digit_runs(size: int) -> Notebook:
    """Claims followed by a bracket and a long run of digits (the spread pattern)."""
    line = "Accuracy was 0.91 [" + repeat("1", 5000) + "\n"
    return one_cell("markdown", repeat(line, size))


def bracket_runs(size: int) -> Notebook:
    """Long runs of opening brackets in code and in markdown."""
    return notebook(
        [
            cell("code", repeat(repeat("[", 1000) + "\n", size // 2), 0),
            cell("markdown", "accuracy 0.5 " + repeat("[ ", size // 2), 1),
        ]
    )


def space_runs(size: int) -> Notebook:
    """Long runs of spaces inside code, an assignment and claims."""
    return notebook(
        [
            cell("code", "x =" + " " * (size // 3) + "1\nclf = " + " " * 10 + "f(", 0),
            cell("markdown", "The accuracy" + " " * (size // 3) + "was high.", 1),
            cell("markdown", "Accuracy 0.9." + " " * (size // 3) + "x", 2),
        ]
    )


def many_claims(size: int) -> Notebook:
    """One markdown cell of many stated metrics and a spread stated once at its end."""
    line = repeat("The accuracy was 0.91 here. ", 5000) + "\n"
    return one_cell("markdown", repeat(line, size) + "(± 0.01)")


def claims_and_outputs(size: int) -> Notebook:
    """Many stated metrics after many outputs that print the same metric."""
    n = max(1, size // 53)
    cells = [cell("code", "print(acc)", i, f"accuracy {i / n:.6f}\n") for i in range(n)]
    cells += [cell("markdown", f"The accuracy was {i / n:.6f}.", n + i) for i in range(n)]
    return notebook(cells)


def many_calls(size: int) -> Notebook:
    """One code cell of many calls with arguments (source segments per node)."""
    return one_cell("code", repeat("clf.fit(X_train, y_train, sample_weight=w)\n", size))


def call_chain(size: int) -> Notebook:
    """Method chains with long arguments: each receiver repeats the chain before it."""
    arg = repeat("a", 200)
    line = "x" + f".f({arg})" * 400 + "\n"
    return one_cell("code", repeat(line, size))


def shell_lines(size: int) -> Notebook:
    """A code cell of many ``!`` and ``%`` lines (IPython's transformer)."""
    return one_cell("code", repeat("!echo hi\n%time x = 1\nfiles = !ls\n", size))


def nested_magics(size: int) -> Notebook:
    """Magics nested in magics: a line of ``%time %time ...`` and a cell of ``%%time`` lines."""
    return notebook(
        [
            cell("code", repeat("%time ", size // 3) + "x = 1", 0),
            cell("code", repeat("%time ", 100) + "y = 2\n" + repeat("%%time\n", size // 3), 1),
            cell("code", repeat(repeat("%time ", 50) + "z = f(3)\n", size // 3), 2),
        ]
    )


def broken_cell(size: int) -> Notebook:
    """A large cell of valid lines that does not parse as a whole (read line by line)."""
    return one_cell("code", repeat("x = f(1, y=2)\n", size) + "def broken(:\n")


def many_cells(size: int) -> Notebook:
    """10,000 small cells or more (about ``size`` characters), alternating code and markdown."""
    n = max(10_000, size // 10)
    return notebook(
        [
            cell("code", f"x{i} = {i}", i) if i % 2 else cell("markdown", f"Step {i}.", i)
            for i in range(n)
        ]
    )


def deep_nesting(size: int) -> Notebook:
    """Deeply nested brackets and calls, in code that parses and code that does not."""
    nested = "x = " + "f(" * 150 + "1" + ")" * 150 + "\n"
    return notebook(
        [
            cell("code", repeat(nested, size // 2), 0),
            cell("code", repeat("(" * 500 + "\n", size // 2), 1),
        ]
    )


def patch_metrics(size: int) -> Notebook:
    """Many patching calls, each naming its own metric (the metric lookup)."""
    n = max(1, size // 45)
    return notebook(
        [cell("code", f"r{i} = activation_patch(m, a, b, metric_{i})", i) for i in range(n)]
    )


def looped_probes(size: int) -> Notebook:
    """One cell of many loops over layers, each fitting a probe and its control."""
    body = "for layer in layers:\n    clf.fit(X, y)\n    permutation_test_score(clf, X, y)\n"
    return one_cell("code", "clf = LogisticRegression()\n" + repeat(body, size))


def huge_cell(size: int) -> Notebook:
    """A single ordinary code cell of ``size`` characters."""
    return one_cell("code", repeat("acts = model(x)[0]\nscore = acts.mean()\n", size))


ADVERSARIAL: dict[str, Callable[[int], Notebook]] = {
    "suppression spaces": suppression_spaces,
    "suppression fragments": suppression_fragments,
    "blank lines": blank_lines,
    "unclosed comments": unclosed_comments,
    "digit runs": digit_runs,
    "bracket runs": bracket_runs,
    "space runs": space_runs,
    "many claims": many_claims,
    "claims and outputs": claims_and_outputs,
    "many calls": many_calls,
    "call chain": call_chain,
    "shell lines": shell_lines,
    "nested magics": nested_magics,
    "broken cell": broken_cell,
    "many cells": many_cells,
    "deep nesting": deep_nesting,
    "patch metrics": patch_metrics,
    "looped probes": looped_probes,
    "huge cell": huge_cell,
}


# -- an ordinary study, scaled ------------------------------------------------------------------

CODE = [
    "import numpy as np\nfrom sklearn.linear_model import LogisticRegression\n"
    "from scipy.stats import pearsonr",
    "X = np.random.rand(100, 8)\ny = (X[:, 0] > 0.5).astype(int)\n"
    "clf = LogisticRegression().fit(X, y)",
    "for layer in range(6):\n    r, p = pearsonr(X[:, layer], y)\n    print(layer, r, p)",
    "%time z = np.random.randn(10)\n!echo done",
    "def metric(logits):\n    return logits[:, -1].softmax(-1)[:, 3]\n"
    "results = [metric(x) for x in batches]",
]
MARKDOWN = [
    "## Results\nThe probe reaches an accuracy of 0.91 and layer 6 outperforms layer 2.",
    "Head 3.2 attends to the previous token and is responsible for copying.",
]


def realistic(size: int) -> Notebook:
    """A study of imports, probes, statistics, magics and claims, about ``size`` characters."""
    cells: list[dict[str, Any]] = []
    total, i = 0, 0
    while total < size or i < 5:
        if i % 5 == 4:
            cells.append(cell("markdown", MARKDOWN[i % 2], i))
        else:
            c = cell("code", CODE[i % len(CODE)], i, f"accuracy {0.5 + i / 40000:.3f}\n")
            c["execution_count"] = i + 1
            cells.append(c)
        total += text_size(notebook(cells[-1:]))
        i += 1
    return notebook(cells)


def text_size(nb: Notebook) -> int:
    """Return the characters of cell text (sources and outputs) in ``nb``."""
    total = 0
    for c in nb["cells"]:
        total += len(c["source"])
        total += sum(len(o.get("text", "")) for o in c.get("outputs", []))
    return total


def write(nb: Notebook, path: Path) -> Path:
    """Write ``nb`` to ``path`` as .ipynb JSON (one line per cell key, like Jupyter) and return it."""
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return path
