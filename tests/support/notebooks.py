"""Notebooks built in tests the way a researcher writes them: ("md" | "code", text) cells."""

from __future__ import annotations

import nbformat


def notebook(*cells: tuple[str, str], ids: bool = True) -> nbformat.NotebookNode:
    """Return an nbformat-4 notebook of markdown ("md") and code cells, with ids c1, c2, ..."""
    nb = nbformat.v4.new_notebook()
    for i, (kind, text) in enumerate(cells):
        cell = (
            nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text)
        )
        if ids:
            cell["id"] = f"c{i + 1}"
        nb.cells.append(cell)
    return nb
