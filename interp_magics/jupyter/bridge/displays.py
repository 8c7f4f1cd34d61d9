"""The snapshot for front ends without the panel's comm: a table and a JSON fallback.

``%activations`` alone shows :func:`cache_listing` (VS Code and consoles have no sidebar);
front ends that cannot open comms evaluate :func:`snapshot_display` as a user expression.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from ...core.units import format_bytes
from ..state import get_bridge
from .protocol import PROTOCOL
from .snapshots import Snapshots, listed_names


@dataclass
class CacheListing:
    """The kernel's activation caches as a table (``%activations`` with no cell body)."""

    caches: list[dict[str, Any]] = field(default_factory=list)
    total_bytes: int = 0

    def _rows(self) -> list[tuple[str, str, str, str, str]]:
        return [
            (
                c["name"],
                str(c["tensors"]),
                format_bytes(c["bytes"]),
                ", ".join(c["dtypes"]),
                ", ".join(c["devices"]),
            )
            for c in self.caches
        ]

    def _title(self) -> str:
        if not self.caches:
            return (
                "no activation caches in this kernel; "
                "capture one with %%activations MODEL -m PATTERN"
            )
        n = len(self.caches)
        return (
            f"{n} activation cache{'s' if n != 1 else ''}, {format_bytes(self.total_bytes)} in all"
        )

    def __repr__(self) -> str:
        if not self.caches:
            return self._title()
        header = ("name", "tensors", "bytes", "dtypes", "devices")
        body = [*self._rows(), ("total", "", format_bytes(self.total_bytes), "", "")]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(5)]
        lines = [self._title()]
        for row in [header, *body]:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        if not self.caches:
            return f'<div class="interp-magics-caches"><p>{esc(self._title())}</p></div>'
        parts = [
            '<div class="interp-magics-caches">',
            f"<strong>{esc(self._title())}</strong>",
            '<table><thead><tr><th style="text-align:left">name</th><th>tensors</th>'
            "<th>bytes</th><th>dtypes</th><th>devices</th></tr></thead><tbody>",
        ]
        for name, tensors, size, dtypes, devices in self._rows():
            parts.append(
                f'<tr><td style="text-align:left"><code>{esc(name)}</code></td>'
                f"<td>{esc(tensors)}</td><td>{esc(size)}</td><td>{esc(dtypes)}</td>"
                f"<td>{esc(devices)}</td></tr>"
            )
        parts.append(
            '</tbody><tfoot><tr><th style="text-align:left">total</th><td></td>'
            f"<th>{esc(format_bytes(self.total_bytes))}</th><td></td><td></td></tr></tfoot>"
            "</table></div>"
        )
        return "".join(parts)


def cache_listing(shell: Any) -> CacheListing:
    """Return the caches bound in ``shell``'s namespace as a displayable table."""
    bridge = get_bridge(shell)
    if bridge is not None:
        snap = bridge.snapshot()
    else:  # the extension is not loaded in this shell: no ledger, no cell depth to read
        snap = Snapshots().take(listed_names(shell), None, busy=False)
    return CacheListing(caches=snap["caches"], total_bytes=snap["total_bytes"])


def snapshot_display() -> Any:
    """Return the current shell's snapshot as an ``application/json`` display object.

    For front ends that cannot open comms: they evaluate this through ``user_expressions``
    and read the ``application/json`` entry of the reply (``not-loaded`` without the
    extension).
    """
    from IPython import get_ipython
    from IPython.display import JSON

    bridge = get_bridge(get_ipython())
    data = bridge.snapshot() if bridge is not None else {"v": PROTOCOL, "type": "not-loaded"}
    return JSON(data)  # type: ignore[no-untyped-call]
