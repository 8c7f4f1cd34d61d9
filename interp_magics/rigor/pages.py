"""Rule pages: what each rule flags, why it matters, what it accepts, examples and references.

Each rule has a markdown file in ``pages/`` named by its id (``pages/PRB001.md``) with the
sections of :data:`FILE_SECTIONS`: the prose, a flawed and a fixed example, and the published
work behind the rule. The registry supplies the title, severity, fix and accepted alternatives,
so each of those is written once. Documenting a new rule is one file next to its registry
entry. ``interp-rigor --explain RULE`` prints a page; the Jupyter server serves it as HTML.

Examples are written as notebook cells: a fence ```` ```python ```` is a code cell (```` ```python
In[3] ```` gives its execution count), ```` ```markdown ```` a markdown cell and ```` ```output ````
the printed output of the code cell above it. :func:`example_notebook` builds the notebook, so
a test can check that the rule fires on the flawed example and not on the fixed one.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from . import markup
from .registry import RULES

FILE_SECTIONS = ("What it flags", "Why it matters", "Flawed example", "Fixed example", "References")
"""The sections a page file holds, in this order."""

SECTIONS = (
    "What it flags",
    "Why it matters",
    "Accepted alternatives",
    "How to fix",
    "Flawed example",
    "Fixed example",
    "References",
    "Suppressing a finding",
)
"""The sections of a rendered page, in order (the file's and the registry's)."""

FORMATS = ("text", "markdown", "html")
_RULE_ID = re.compile(r"[A-Z]{3}\d{3}")
_FAMILY_NAMES = {
    "PRB": "probes",
    "STA": "statistics",
    "REP": "reproducibility",
    "CAU": "causal claims",
    "ATT": "attention",
    "EXM": "examples",
}


@dataclass(frozen=True)
class ExampleCell:
    """One cell of a page's example."""

    kind: str  # "code" or "markdown"
    source: str
    execution_count: int | None = None
    output: str = ""


def page_ids() -> list[str]:
    """Return the ids of the registered rules that have a page, in registry order."""
    return [rule_id for rule_id in RULES if _page_file(rule_id) is not None]


def render_page(rule_id: str, fmt: str = "text") -> str:
    """Return the page of ``rule_id`` as ``fmt``: "text" (terminal), "markdown" or "html".

    The HTML is a whole document, every character of the page escaped, with no script.
    Raises KeyError for an id with no registered rule or no page, ValueError for another format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown page format {fmt!r}; use one of {', '.join(FORMATS)}")
    text = page_markdown(rule_id)
    if fmt == "markdown":
        return text
    blocks = markup.parse(text)
    if fmt == "text":
        return markup.to_text(blocks)
    rule = RULES[_normalise(rule_id)]
    return _HTML_PAGE.format(
        title=html.escape(f"{rule.id}: {rule.title}"), body=markup.to_html(blocks)
    )


def page_markdown(rule_id: str) -> str:
    """Return the whole page of ``rule_id`` as markdown: the file's sections and the registry's.

    Raises KeyError for an id with no registered rule or no page.
    """
    rule_id = _normalise(rule_id)
    rule = RULES[rule_id]
    sections = file_sections(rule_id)
    family = _FAMILY_NAMES.get(rule_id[:3], rule_id[:3])
    parts = [
        f"# {rule.id}: {rule.title}",
        f"Severity: **{rule.severity}**. Family: {family}. Checked by `interp-rigor`, `%rigor` "
        "and the JupyterLab Rigor panel.",
        "## What it flags",
        sections.get("What it flags", ""),
        "## Why it matters",
        sections.get("Why it matters", ""),
        "## Accepted alternatives",
        f"Accepted, and never flagged: {_sentence(rule.alternatives)}",
        "## How to fix",
        _sentence(rule.fix[:1].upper() + rule.fix[1:]),
        "## Flawed example",
        sections.get("Flawed example", ""),
        "## Fixed example",
        sections.get("Fixed example", ""),
        "## References",
        sections.get("References", ""),
        "## Suppressing a finding",
        "Where the rule does not apply, say why on the line it points at (a suppression "
        "without a reason does not count, and `--no-suppress` reports suppressed findings):",
        f"```py\n... # rigor: ignore[{rule.id}] -- why this does not apply here\n```",
        f"or tag the cell `rigor-ignore:{rule.id}`, or use **Ignore with reason** in the "
        "JupyterLab Rigor panel.",
    ]
    return "\n\n".join(p.strip() for p in parts) + "\n"


def file_sections(rule_id: str) -> dict[str, str]:
    """Return the sections of the page file of ``rule_id`` by title (KeyError: no page)."""
    rule_id = _normalise(rule_id)
    found = _page_file(rule_id)
    if found is None:
        raise KeyError(rule_id)
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in found.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    return {title: "\n".join(lines).strip() for title, lines in sections.items()}


def example(rule_id: str, which: Literal["flawed", "fixed"]) -> list[ExampleCell]:
    """Return the cells of a page's flawed or fixed example (KeyError: no page)."""
    text = file_sections(rule_id).get(f"{which.capitalize()} example", "")
    cells: list[ExampleCell] = []
    for block in markup.parse(text):
        if block.kind != "code":
            continue
        kind, _, count = block.info.partition(" ")
        if kind == "output" and cells and cells[-1].kind == "code":
            last = cells.pop()
            cells.append(ExampleCell("code", last.source, last.execution_count, block.text + "\n"))
        elif kind in ("python", "markdown"):
            number = re.fullmatch(r"In\[(\d+)\]", count.strip())
            execution_count = int(number.group(1)) if number else None
            cells.append(
                ExampleCell("code" if kind == "python" else "markdown", block.text, execution_count)
            )
    return cells


def example_notebook(rule_id: str, which: Literal["flawed", "fixed"]) -> dict[str, Any]:
    """Return a page's flawed or fixed example as an nbformat 4.5 notebook dict."""
    cells: list[dict[str, Any]] = []
    for i, cell in enumerate(example(rule_id, which), 1):
        raw: dict[str, Any] = {
            "cell_type": cell.kind,
            "id": f"{which}-{i}",
            "metadata": {},
            "source": cell.source,
        }
        if cell.kind == "code":
            outputs = [{"output_type": "stream", "name": "stdout", "text": cell.output}]
            raw.update(execution_count=cell.execution_count, outputs=outputs if cell.output else [])
        cells.append(raw)
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}


def _normalise(rule_id: str) -> str:
    """Return ``rule_id`` upper-cased; KeyError unless it is a registered rule's id."""
    key = rule_id.strip().upper() if isinstance(rule_id, str) else ""
    if not _RULE_ID.fullmatch(key) or key not in RULES:
        raise KeyError(rule_id)
    return key


@cache
def _page_file(rule_id: str) -> str | None:
    """Return the text of the page file of a rule id, None when there is none."""
    if not _RULE_ID.fullmatch(rule_id):
        return None  # never a path built from anything but a rule id
    page = resources.files(__package__).joinpath("pages").joinpath(f"{rule_id}.md")
    try:
        return page.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None


def _sentence(text: str) -> str:
    """Return ``text`` ending with a full stop."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


_HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 50em; margin: 2em auto; padding: 0 1em; }}
pre {{ background: #f5f5f5; padding: .6em .8em; overflow-x: auto; }}
code {{ font-family: ui-monospace, monospace; font-size: .92em; }}
figure {{ margin: .6em 0; }}
figcaption {{ font-size: .8em; color: #555; }}
figure.markdown pre {{ background: #fbfaf3; }}
figure.output pre {{ background: #fff; border-left: 3px solid #ccc; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
