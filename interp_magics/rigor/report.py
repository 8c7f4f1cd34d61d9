"""Findings and their formats: text with notebook locations, HTML, JSON, and SARIF 2.1.0.

Everything in a finding that comes from a notebook (its file name, cell ids, messages quoting
markdown, suppression reasons) is untrusted: the text form escapes control characters, so a
crafted cell id cannot start a new line (forging a CI annotation such as ``::error``) or send
terminal escape codes, and the HTML form escapes every value and links to cells only by a
``#cell-id=`` fragment.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

# C0 and C1 control characters, line and paragraph separators, and the bidirectional
# formatting characters that make text display in another order than it reads.
_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_BIDI_AND_SEPARATORS = [0x061C, 0x200E, 0x200F, *range(0x2028, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES.update({c: f"\\u{c:04x}" for c in _BIDI_AND_SEPARATORS})
CELL_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
"""A cell id as nbformat 4.5 defines it."""


def printable(text: str) -> str:
    """Return ``text`` on one line with control and bidi characters written as escapes."""
    return text.translate(_ESCAPES)


def shown_id(cell_id: str) -> str:
    """Return a cell id for display: as it is when valid, else quoted, escaped and shortened."""
    if CELL_ID.fullmatch(cell_id):
        return cell_id
    short = cell_id if len(cell_id) <= 64 else cell_id[:63] + "…"
    return f'"{printable(short)}" (not a valid cell id)'


def plural(n: int, word: str) -> str:
    """Return ``"1 error"``, ``"2 errors"``, ``"0 errors"``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass
class Finding:
    """One methodological gap, where it is and how to fix it."""

    rule: str
    severity: str  # "error" or "warning"
    cell_id: str
    cell_index: int  # 1-based
    line: int  # 1-based, within the cell
    message: str
    fix: str
    reference: str
    execution_count: int | None = None
    notebook: str = "notebook"
    source: str = "static"  # "static" (read from the notebook) or "ledger" (what the kernel ran)
    suppressed: bool = False
    reason: str = ""
    json_line: int = 1

    def location(self) -> str:
        """Return ``notebook.ipynb:cell 7 [id a1b2c3, In[12]]:3``, escaped for a terminal."""
        run = f", In[{self.execution_count}]" if self.execution_count is not None else ""
        where = f"cell {self.cell_index} [id {shown_id(self.cell_id)}{run}]:{self.line}"
        return f"{printable(self.notebook)}:{where}"

    def text(self) -> str:
        """Return the form the CLI prints: the finding on one line, then its fix and citation.

        Values from the notebook are escaped (:func:`printable`), so each finding is exactly
        three lines whatever the notebook holds.
        """
        tag = f" (suppressed: {printable(self.reason)})" if self.suppressed else ""
        return (
            f"{self.location()}: {self.rule} {self.severity}: {printable(self.message)}{tag}\n"
            f"    fix: {printable(self.fix)}\n    see: {printable(self.reference)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Findings(list["Finding"]):
    """A list of findings that displays as a table in a notebook."""

    note: str = ""

    def active(self) -> list[Finding]:
        return [f for f in self if not f.suppressed]

    def summary(self) -> str:
        active = self.active()
        counts = Counter(f.severity for f in active)
        suppressed = len(self) - len(active)
        parts = [plural(counts["error"], "error"), plural(counts["warning"], "warning")]
        if suppressed:
            parts.append(f"{suppressed} suppressed")
        return ", ".join(parts)

    def __repr__(self) -> str:
        tail = [printable(self.note)] if self.note else []
        if not self:
            return "\n".join(["rigor: no findings", *tail])
        return "\n".join([*(f.text() for f in self), f"rigor: {self.summary()}", *tail])

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = []
        for f in self:
            # Only a fragment: JupyterLab scrolls the notebook showing the table to the cell.
            # The file name never goes into href (a file may be named "javascript:x.ipynb").
            link = esc("#cell-id=" + quote(f.cell_id, safe=""))
            style = ' style="opacity:0.55"' if f.suppressed else ""
            suppressed = f" (suppressed: {esc(f.reason)})" if f.suppressed else ""
            rows.append(
                f'<tr{style} data-rule="{esc(f.rule)}" data-cell-id="{esc(f.cell_id)}">'
                f'<td><a href="{link}">cell {f.cell_index}</a>:{f.line}</td>'
                f"<td><b>{esc(f.rule)}</b></td><td>{esc(f.severity)}</td>"
                f"<td>{esc(f.message)}{suppressed}"
                f"<br/><small>fix: {esc(f.fix)}<br/>see: {esc(f.reference)}</small></td></tr>"
            )
        return (
            '<div class="interp-magics-rigor"><table><thead><tr><th>where</th><th>rule</th>'
            f"<th>severity</th><th>finding</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<p><b>rigor:</b> {esc(self.summary())}</p>"
            + (f"<p><small>{esc(self.note)}</small></p>" if self.note else "")
            + "</div>"
        )


def to_json(findings: list[Finding]) -> str:
    """Return the findings as a JSON document with a summary."""
    f = Findings(findings)
    return json.dumps(
        {"summary": f.summary(), "findings": [x.to_dict() for x in findings]}, indent=2
    )


def to_sarif(findings: list[Finding], rules: dict[str, Any], version: str) -> str:
    """Return the findings as a SARIF 2.1.0 log (for code-scanning interfaces)."""
    used = sorted({f.rule for f in findings})
    driver = {
        "name": "interp-rigor",
        "informationUri": "https://github.com/interp-magics/interp-magics",
        "version": version,
        "rules": [
            {
                "id": rid,
                "name": rules[rid].title.title().replace(" ", ""),
                "shortDescription": {"text": rules[rid].title},
                "fullDescription": {
                    "text": f"{rules[rid].title}. Accepted: {rules[rid].alternatives}."
                },
                "help": {"text": f"Fix: {rules[rid].fix}. See: {rules[rid].reference}"},
                "defaultConfiguration": {"level": rules[rid].severity},
            }
            for rid in used
        ],
    }
    results = []
    for f in findings:
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "level": f.severity,
            "message": {"text": f"{f.message}. Fix: {f.fix}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.notebook},
                        "region": {"startLine": f.json_line},
                    },
                    "logicalLocations": [
                        {
                            "name": f"cell {f.cell_index}",
                            "fullyQualifiedName": f"{f.notebook}:cell {f.cell_index}:{f.line}",
                            "kind": "cell",
                        }
                    ],
                }
            ],
            "properties": {
                "cellId": f.cell_id,
                "cellIndex": f.cell_index,
                "line": f.line,
                "source": f.source,
            },
        }
        if f.suppressed:
            result["suppressions"] = [{"kind": "inSource", "justification": f.reason}]
        results.append(result)
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": driver}, "results": results}],
    }
    return json.dumps(log, indent=2)
