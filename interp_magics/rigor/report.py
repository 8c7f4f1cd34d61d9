"""Findings and their formats: text with notebook locations, JSON, and SARIF 2.1.0."""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any


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
        """Return ``notebook.ipynb:cell 7 [id a1b2c3, In[12]]:3``."""
        run = f", In[{self.execution_count}]" if self.execution_count is not None else ""
        return f"{self.notebook}:cell {self.cell_index} [id {self.cell_id}{run}]:{self.line}"

    def text(self) -> str:
        """Return the one-line form printed by the CLI."""
        tag = f" (suppressed: {self.reason})" if self.suppressed else ""
        return (
            f"{self.location()}: {self.rule} {self.severity}: {self.message}{tag}\n"
            f"    fix: {self.fix}\n    see: {self.reference}"
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
        parts = [f"{counts.get('error', 0)} errors", f"{counts.get('warning', 0)} warnings"]
        if suppressed:
            parts.append(f"{suppressed} suppressed")
        return ", ".join(parts)

    def __repr__(self) -> str:
        tail = [self.note] if self.note else []
        if not self:
            return "\n".join(["rigor: no findings", *tail])
        return "\n".join([*(f.text() for f in self), f"rigor: {self.summary()}", *tail])

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = []
        for f in self:
            link = f"{esc(f.notebook)}#cell-id={esc(f.cell_id)}"
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
