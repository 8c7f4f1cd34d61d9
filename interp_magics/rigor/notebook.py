"""Reading a notebook for the checker: cells, their code facts, outputs and suppressions.

Never executes anything and never writes to the file. Accepts a path, an ``nbformat``
notebook node or a plain dict; nbformat v3 notebooks are converted in memory.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .facts import CodeFacts, code_facts


class NotebookError(ValueError):
    """The notebook cannot be read; the message says why and what to do."""


@dataclass
class Suppression:
    """A request not to report a rule in one cell (or the whole notebook), with its reason."""

    rule: str
    reason: str
    where: str  # "comment", "tag", "cell metadata", "notebook metadata"
    cell_id: str | None = None


@dataclass
class Cell:
    """One cell as the checker sees it."""

    index: int  # 1-based, as the notebook UI shows it
    id: str
    kind: str  # "code", "markdown" or "raw"
    source: str
    execution_count: int | None
    outputs_text: str
    tags: list[str]
    metadata: dict[str, Any]
    facts: CodeFacts | None = None
    suppressions: list[Suppression] = field(default_factory=list)
    json_line: int = 1  # where the cell starts in the .ipynb file (for SARIF)

    @property
    def source_sha1(self) -> str:
        return hashlib.sha1(self.source.encode("utf-8")).hexdigest()

    @property
    def lines(self) -> list[str]:
        return self.source.splitlines()


@dataclass
class Notebook:
    """A parsed notebook: its cells, notebook-level suppressions and a display name."""

    name: str
    cells: list[Cell]
    suppressions: list[Suppression]
    path: Path | None = None

    def code(self) -> list[Cell]:
        return [c for c in self.cells if c.kind == "code"]

    def markdown(self) -> list[Cell]:
        return [c for c in self.cells if c.kind == "markdown"]


_COMMENT = re.compile(
    r"rigor:\s*ignore\[(?P<rules>[A-Z]{3}\d{3}(?:\s*,\s*[A-Z]{3}\d{3})*)\](?:\s*--\s*(?P<reason>.+?))?\s*(?:-->)?\s*$"
)


def _suppressions_in(text: str, cell_id: str) -> list[Suppression]:
    out = []
    for line in text.splitlines():
        m = _COMMENT.search(line)
        if m:
            for rule in re.split(r"\s*,\s*", m.group("rules")):
                out.append(Suppression(rule, (m.group("reason") or "").strip(), "comment", cell_id))
    return out


def _source(value: Any) -> str:
    # Hand-edited or generated notebooks can hold anything here: read the text, skip the rest.
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def _outputs_text(outputs: Any) -> str:
    parts = []
    for out in outputs if isinstance(outputs, list) else []:
        if not isinstance(out, dict):
            continue
        if "text" in out:
            parts.append(_source(out["text"]))
        data = out.get("data") or {}
        if isinstance(data, dict) and "text/plain" in data:
            parts.append(_source(data["text/plain"]))
        if out.get("output_type") == "error":
            parts.append(f"{out.get('ename', '')}: {out.get('evalue', '')}")
    return "\n".join(parts)


def load(notebook: Any, *, name: str | None = None) -> Notebook:
    """Return the parsed notebook from a path, an nbformat node or a dict.

    Raises :class:`NotebookError` for unreadable files, malformed JSON or a structure that is
    not a notebook.
    """
    data, raw_text, path = _read(notebook)
    if not isinstance(data, dict) or not isinstance(
        data.get("cells", data.get("worksheets")), list
    ):
        raise NotebookError(f"{path or 'input'} is JSON but not a notebook (no cells)")
    if int(data.get("nbformat", 4)) < 4:
        data = upgrade_v3(data)
    lines = _cell_lines(raw_text, len(data["cells"])) if raw_text else None
    cells = [
        _cell(raw, i, lines[i] if lines else 1)
        for i, raw in enumerate(data["cells"])
        if isinstance(raw, dict)
    ]
    nb_meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    own = nb_meta.get("interp_magics")
    rigor_meta = (own or {}).get("rigor", {}) if isinstance(own, dict) else {}
    nb_ignore = rigor_meta.get("ignore") if isinstance(rigor_meta, dict) else None
    display = name or (path.name if path else "notebook")
    return Notebook(display, cells, _metadata_suppressions(nb_ignore, "notebook metadata"), path)


def _read(notebook: Any) -> tuple[Any, str | None, Path | None]:
    """Return the notebook's JSON data, its text when read from a file, and the file's path."""
    if isinstance(notebook, dict):
        return notebook, None, None
    if not isinstance(notebook, (str, Path)):
        raise NotebookError(f"expected a notebook path or dict, not {type(notebook).__name__}")
    path = Path(notebook)
    try:
        raw_text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotebookError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise NotebookError(f"{path} is not UTF-8 text; is it a notebook?") from None
    try:
        return json.loads(raw_text), raw_text, path
    except json.JSONDecodeError as exc:
        raise NotebookError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "open it in Jupyter to repair it, or restore it from version control"
        ) from None


def _cell(raw: dict[str, Any], i: int, json_line: int) -> Cell:
    """Return the ``i``-th (0-based) cell of the notebook JSON, with its facts and suppressions."""
    kind = str(raw.get("cell_type", "code"))
    cell_id = str(raw.get("id") or f"cell-{i + 1}")
    raw_meta = raw.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    raw_tags = meta.get("tags")
    tags = [t for t in raw_tags if isinstance(t, str)] if isinstance(raw_tags, list) else []
    source = _source(raw.get("source"))
    count = raw.get("execution_count")
    cell = Cell(
        index=i + 1,
        id=cell_id,
        kind=kind,
        source=source,
        execution_count=count if isinstance(count, int) else None,
        outputs_text=_outputs_text(raw.get("outputs")) if kind == "code" else "",
        tags=tags,
        metadata=meta,
        json_line=json_line,
        facts=code_facts(source) if kind == "code" else None,
    )
    cell.suppressions = _suppressions_in(source, cell_id)
    for tag in tags:
        if tag.startswith("rigor-ignore:"):
            for rule in tag.split(":", 1)[1].split(","):
                cell.suppressions.append(Suppression(rule.strip(), "cell tag", "tag", cell_id))
    own = meta.get("interp_magics")
    ignore = own.get("ignore") if isinstance(own, dict) else None
    cell.suppressions += _metadata_suppressions(ignore, "cell metadata", cell_id)
    return cell


def _metadata_suppressions(
    ignore: Any, where: str, cell_id: str | None = None
) -> list[Suppression]:
    """Return the suppressions of an ``ignore`` list in metadata (items ``{"rule", "reason"}``).

    Items in notebook metadata name their cell with ``"cell_id"`` (or apply to every cell).
    """
    return [
        Suppression(
            str(item["rule"]), str(item.get("reason", "")), where, cell_id or item.get("cell_id")
        )
        for item in (ignore if isinstance(ignore, list) else [])
        if isinstance(item, dict) and "rule" in item
    ]


def upgrade_v3(data: dict[str, Any]) -> dict[str, Any]:
    """Return a v4 notebook dict from a v3 one (nbformat's own conversion, in memory).

    Raises NotebookError, saying what is wrong, when ``data`` is no readable v3 notebook.
    """
    import nbformat

    worksheets = data.get("worksheets")
    if not isinstance(worksheets, list) or not all(
        isinstance(w, dict) and isinstance(w.get("cells", []), list) for w in worksheets
    ):
        raise NotebookError("this nbformat 3 notebook has no 'worksheets' list of cell lists")
    try:
        node = nbformat.from_dict(data)
        return dict(nbformat.convert(node, 4))
    except Exception as exc:
        raise NotebookError(
            f"cannot convert this nbformat {data.get('nbformat')} notebook: {exc}"
        ) from None


def _cell_lines(text: str, n: int) -> list[int]:
    """Return, for each cell, the 1-based line of the .ipynb file where it starts (best effort)."""
    lines = []
    pos = text.find('"cells"')
    for _ in range(n):
        found = text.find('"cell_type"', pos + 1)
        if found < 0:
            break
        lines.append(text.count("\n", 0, found) + 1)
        pos = found
    return lines + [1] * (n - len(lines))
