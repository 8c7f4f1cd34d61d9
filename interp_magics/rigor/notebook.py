"""Reading a notebook for the checker: cells, their code facts, outputs and suppressions.

Never executes anything and never writes to the file. Accepts a path, an ``nbformat``
notebook node or a plain dict. Versions 1 to 3 (and worksheet-only notebooks with no version)
go through nbformat's own conversion, in memory, so every notebook Jupyter opens is checked;
what Jupyter cannot open either (a version that is no number, JSON nested past Python's limit,
a file that is no notebook) raises :class:`NotebookError` with a message, never another error.

Reading is linear in the notebook's size: each cell is split into lines once
(:attr:`Cell.lines`), its facts are read once, and patterns follow the rule in
:mod:`interp_magics.rigor.rules` (linear time).
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .facts import CodeFacts, code_facts

#: Lines longer than this are left out of the pattern-based reading (suppression comments,
#: claims, stated numbers, assignments read by text); the ``ast`` reading of code still sees
#: them. Text this long on one line is embedded data (a base64 image, a minified table, a
#: pasted array) rather than a sentence or comment someone wrote, and leaving it out keeps
#: its letters and digits from being read as claims.
MAX_LINE = 10_000


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
    _lines: list[str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def source_sha1(self) -> str:
        return hashlib.sha1(self.source.encode("utf-8")).hexdigest()

    @property
    def lines(self) -> list[str]:
        """Return the source's lines, split once; a line over MAX_LINE characters reads as ""."""
        if self._lines is None:
            self._lines = [
                line if len(line) <= MAX_LINE else "" for line in self.source.splitlines()
            ]
        return self._lines


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


#: ``rigor: ignore[RULE, RULE]``: the rule list is short, so it is bounded (a line of many
#: unclosed ``ignore[`` costs a constant each), and checked item by item after the match.
_IGNORE = re.compile(r"rigor:\s*ignore\[([^\]]{0,200})\]")
_RULE_ID = re.compile(r"[A-Z]{3}\d{3}")
#: What may follow the ``]``: nothing, an HTML comment's end, or ``--`` and the reason.
_TAIL = re.compile(r"\s*(?:$|-->\s*$|--(.*))")


def _suppressions_in(lines: list[str], cell_id: str) -> list[Suppression]:
    """Return the ``rigor: ignore[RULE] -- reason`` comments in ``lines`` (the first of a line)."""
    out = []
    for line in lines:
        for m in _IGNORE.finditer(line) if "rigor:" in line else ():
            listed = m.group(1)
            rules = [r.strip() for r in listed.split(",")]
            tail = _TAIL.match(line, m.end())
            if tail is None or listed != listed.strip() or not all(map(_RULE_ID.fullmatch, rules)):
                continue
            reason = (tail.group(1) or "").rstrip()
            reason = (reason[:-3] if reason.endswith("-->") else reason).strip()
            out += [Suppression(rule, reason, "comment", cell_id) for rule in rules]
            break
    return out


def _source(value: Any) -> str:
    # Hand-edited or generated notebooks can hold anything here: read the text, skip the rest.
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def _scalar(value: Any) -> str | None:
    """Return a string, number or id as text; None for anything else (a list, an object...)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


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
            parts.append(f"{_source(out.get('ename'))}: {_source(out.get('evalue'))}")
    return "\n".join(parts)


def load(notebook: Any, *, name: str | None = None) -> Notebook:
    """Return the parsed notebook from a path, an nbformat node or a dict.

    Raises :class:`NotebookError` for unreadable files, malformed JSON or a structure that is
    not a notebook Jupyter could open.
    """
    raw, raw_text, path = _read(notebook)
    data = as_v4(raw, str(path or "input"))
    lines = _cell_lines(raw_text, len(data["cells"])) if raw_text else None
    cells = [
        _cell(raw, i, lines[i] if lines else 1)
        for i, raw in enumerate(data["cells"])
        if isinstance(raw, dict)
    ]
    raw_meta = data.get("metadata")
    nb_meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
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
        if not stat.S_ISREG(path.stat().st_mode):  # a folder, a pipe, a device: never read
            raise NotebookError(f"cannot read {path}: it is not a file")
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
    except (ValueError, RecursionError, MemoryError) as exc:
        raise NotebookError(
            f"{path} cannot be read as JSON ({type(exc).__name__}: nested too deeply or too "
            "large); Jupyter cannot open it either"
        ) from None


def as_v4(data: Any, where: str = "input") -> dict[str, Any]:
    """Return notebook JSON ``data`` as an nbformat-4 dict with a ``cells`` list.

    Versions 1 to 3, and worksheet-only notebooks that state no version, are converted by
    nbformat in memory. Raises :class:`NotebookError`, saying why, for anything else.
    """
    if not isinstance(data, dict):
        raise NotebookError(f"{where} is JSON but not a notebook (no cells)")
    notebook: dict[str, Any] = data
    version = notebook.get("nbformat")
    if version is None and not isinstance(notebook.get("cells"), list):
        version = 3 if isinstance(notebook.get("worksheets"), list) else None
    if version is not None and not isinstance(version, int):  # true is 1, as nbformat reads it
        raise NotebookError(
            f'{where} states "nbformat": {_short(version)}, which is not a version number; '
            'Jupyter cannot open it either (set "nbformat": 4)'
        )
    if isinstance(version, int) and not 1 <= version <= 4:
        raise NotebookError(
            f"{where} is nbformat {version}; Jupyter and this checker read versions 1 to 4"
        )
    if isinstance(version, int) and version < 4:
        try:
            notebook = upgrade_v3({**notebook, "nbformat": version})
        except NotebookError as exc:  # say which file: the CLI may check many
            raise NotebookError(f"{where}: {exc}") from None
    if not isinstance(notebook.get("cells"), list):
        raise NotebookError(f"{where} is JSON but not a notebook (no cells)")
    return notebook


def _short(value: Any) -> str:
    """Return a short description of a JSON value for a message."""
    text = _scalar(value)
    if text is not None:
        return json.dumps(value) if len(text) <= 40 else f"a {len(text):,}-character string"
    return f"a JSON {'array' if isinstance(value, list) else type(value).__name__}"


def _cell(raw: dict[str, Any], i: int, json_line: int) -> Cell:
    """Return the ``i``-th (0-based) cell of the notebook JSON, with its facts and suppressions."""
    kind = raw.get("cell_type", "code")
    kind = kind if isinstance(kind, str) else "unknown"
    cell_id = _scalar(raw.get("id")) or f"cell-{i + 1}"
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
        execution_count=count if isinstance(count, int) and not isinstance(count, bool) else None,
        outputs_text=_outputs_text(raw.get("outputs")) if kind == "code" else "",
        tags=tags,
        metadata=meta,
        json_line=json_line,
        facts=code_facts(source) if kind == "code" else None,
    )
    cell.suppressions = _suppressions_in(cell.lines, cell_id)
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
    Items whose fields are not text are skipped.
    """
    out = []
    for item in ignore if isinstance(ignore, list) else []:
        if not isinstance(item, dict) or (rule := _scalar(item.get("rule"))) is None:
            continue
        reason = _scalar(item.get("reason", "")) or ""
        out.append(Suppression(rule, reason, where, cell_id or _scalar(item.get("cell_id"))))
    return out


def upgrade_v3(data: dict[str, Any]) -> dict[str, Any]:
    """Return a v4 notebook dict from an older one (nbformat's own conversion, in memory).

    Reads versions 1 to 3, and a worksheet-only notebook with no ``nbformat`` as version 3.
    Raises NotebookError, saying what is wrong, when ``data`` is no notebook nbformat reads.
    """
    import nbformat

    if data.get("nbformat") is None:
        data = {**data, "nbformat": 3, "nbformat_minor": data.get("nbformat_minor", 0)}
    if data["nbformat"] in (2, 3) and "metadata" not in data:
        data = {**data, "metadata": {}}  # nbformat needs one; a notebook without any is plain
    worksheets = data.get("worksheets")
    if data["nbformat"] in (2, 3) and (
        not isinstance(worksheets, list)
        or not all(isinstance(w, dict) and isinstance(w.get("cells", []), list) for w in worksheets)
    ):
        raise NotebookError(
            f"this nbformat {data['nbformat']} notebook has no 'worksheets' list of cell lists"
        )
    try:
        node = nbformat.from_dict(data)
        return dict(nbformat.convert(node, 4))
    except Exception as exc:  # nbformat raises many kinds; RecursionError on deep nesting
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise NotebookError(
            f"cannot convert this nbformat {data.get('nbformat')} notebook ({detail}); "
            "Jupyter cannot open it either"
        ) from None


def _cell_lines(text: str, n: int) -> list[int]:
    """Return, for each cell, the 1-based line of the .ipynb file where it starts (best effort).

    Counts newlines from one cell to the next, so the whole file is scanned once.
    """
    lines = []
    pos = text.find('"cells"')
    line, counted = 1, 0
    for _ in range(n):
        found = text.find('"cell_type"', pos + 1)
        if found < 0:
            break
        line += text.count("\n", counted, found)
        lines.append(line)
        pos = counted = found
    return lines + [1] * (n - len(lines))
