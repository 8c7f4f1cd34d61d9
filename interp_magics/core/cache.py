"""ActivationCache: the read-only result of a capture."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .sites import match_names
from .units import format_bytes

if TYPE_CHECKING:
    import pandas as pd

_HTML_ROWS = 200  # beyond this the table summarises; the mapping itself is always complete


@dataclass(frozen=True)
class EntryInfo:
    """Where a cached tensor came from."""

    module: str  # named_modules() path of the hooked module
    kind: str  # "output", "input" or "grad"
    site: str | None = None  # canonical site name, when captured through an adapter
    layer: int | None = None
    call: int = 0  # 0 for a module's first call in the capture, 1 for its second, ...


class ActivationCache(Mapping[str, torch.Tensor]):
    """A read-only mapping from names to captured tensors (detached copies).

    Keys are the module path (``transformer.h.0.mlp``) or the canonical site
    (``resid_pre.0``) that was matched. A module's input is stored under ``name:input`` and the
    gradient of its output under ``name:grad``. When a module runs more than once inside one
    capture, later calls are stored as ``name#1``, ``name#2``, ...

    Besides the tensors it records ``attention_mask`` and ``input_ids`` of the model call (when
    the model received them, so later analyses can skip pad positions), the ``positions`` kept
    (absolute indices along the sequence dimension, or None for all), and ``notes`` about
    anything the capture did that a reader of the results should know.
    """

    def __init__(self, *, model_name: str = "", adapter: str | None = None) -> None:
        self._data: dict[str, torch.Tensor] = {}
        self._info: dict[str, EntryInfo] = {}
        self.model_name = model_name
        self.adapter = adapter
        self.attention_mask: torch.Tensor | None = None
        self.input_ids: torch.Tensor | None = None
        self.positions: tuple[int, ...] | None = None
        self.notes: list[str] = []

    # -- filled by capture ------------------------------------------------------------------
    def _put(self, key: str, tensor: torch.Tensor, info: EntryInfo) -> None:
        self._data[key] = tensor
        self._info[key] = info

    def _clear(self) -> None:
        self._data.clear()
        self._info.clear()
        self.attention_mask = None
        self.input_ids = None

    # -- Mapping ----------------------------------------------------------------------------
    def __getitem__(self, key: str) -> torch.Tensor:
        try:
            return self._data[key]
        except KeyError:
            from .sites import closest_names

            near = closest_names(key, list(self._data))
            hint = f"; close names: {', '.join(near)}" if near else ""
            raise KeyError(
                f"{key!r} is not in this cache ({len(self._data)} entries){hint}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    # -- queries ----------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Return the total bytes held by the cached tensors."""
        return sum(t.element_size() * t.nelement() for t in self._data.values())

    def info(self, key: str) -> EntryInfo:
        """Return where the tensor under ``key`` came from."""
        return self._info[key]

    def match(self, pattern: str) -> list[str]:
        """Return the keys matching a glob (``*`` stays within one ``.``/``:`` component)."""
        return sorted(match_names(pattern, self._data, stop=".:#"), key=_natural_key)

    def stack(self, pattern: str, dim: int = 0) -> torch.Tensor:
        """Return the tensors whose keys match ``pattern`` stacked along a new ``dim``.

        Keys are ordered naturally (``resid_pre.2`` before ``resid_pre.10``), so
        ``acts.stack("resid_post")`` or ``acts.stack("transformer.h.*.mlp")`` gives a
        ``[layer, batch, pos, d_model]`` tensor.
        """
        canonical = pattern if "." in pattern or "*" in pattern else f"{pattern}.*"
        keys = self.match(canonical) or self.match(pattern)
        if not keys:
            raise KeyError(
                f"no cached tensor matches {pattern!r}; keys are e.g. {list(self._data)[:4]}"
            )
        shapes = {tuple(self._data[k].shape) for k in keys}
        if len(shapes) > 1:
            raise ValueError(
                f"cannot stack {pattern!r}: shapes differ ({sorted(shapes)}); select fewer keys"
            )
        return torch.stack([self._data[k] for k in keys], dim=dim)

    def rows(self) -> list[dict[str, Any]]:
        """Return one dict per tensor: name, shape, dtype, device, bytes."""
        return [
            {
                "name": key,
                "shape": tuple(t.shape),
                "dtype": str(t.dtype).removeprefix("torch."),
                "device": str(t.device),
                "bytes": t.element_size() * t.nelement(),
            }
            for key, t in self._data.items()
        ]

    def to_dataframe(self) -> pd.DataFrame:
        """Return the table of cached tensors as a pandas DataFrame (one row per tensor)."""
        import pandas as pd

        return pd.DataFrame(self.rows(), columns=["name", "shape", "dtype", "device", "bytes"])

    def summary(self) -> dict[str, Any]:
        """Return a small JSON-serialisable description (for the ledger and the sidebar)."""
        return {
            "model": self.model_name,
            "tensors": len(self),
            "bytes": self.nbytes,
            "dtypes": sorted({r["dtype"] for r in self.rows()}),
            "devices": sorted({r["device"] for r in self.rows()}),
        }

    # -- display ----------------------------------------------------------------------------
    def _title(self) -> str:
        what = f" of {self.model_name}" if self.model_name else ""
        return f"ActivationCache{what}: {len(self)} tensors, {format_bytes(self.nbytes)}"

    def _extras(self) -> list[str]:
        lines = []
        if self.positions is not None:
            lines.append(f"positions kept: {_short_list(self.positions)}")
        if self.attention_mask is not None:
            pads = int((self.attention_mask == 0).sum())
            lines.append(
                f"attention mask recorded {tuple(self.attention_mask.shape)}: {pads} pad positions"
            )
        lines.extend(self.notes)
        return lines

    def __repr__(self) -> str:
        rows = self.rows()
        if not rows:
            return self._title()
        header = ("name", "shape", "dtype", "device", "bytes")
        body = [
            (r["name"], str(r["shape"]), r["dtype"], r["device"], format_bytes(r["bytes"]))
            for r in rows
        ]
        if len(body) > _HTML_ROWS:
            body = [
                *body[: _HTML_ROWS - 1],
                ("...", f"{len(rows) - _HTML_ROWS + 1} more", "", "", ""),
            ]
        body.append(("total", "", "", "", format_bytes(self.nbytes)))
        widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(5)]
        lines = [self._title()]
        for row in [header, *body]:
            lines.append(
                "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )
        lines.extend(self._extras())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = self.rows()
        parts = [
            '<div class="interp-magics-cache">',
            f"<strong>{esc(self._title())}</strong>",
            '<table><thead><tr><th style="text-align:left">name</th><th>shape</th>'
            "<th>dtype</th><th>device</th><th>bytes</th></tr></thead><tbody>",
        ]
        shown = rows if len(rows) <= _HTML_ROWS else rows[: _HTML_ROWS - 1]
        for r in shown:
            parts.append(
                f'<tr><td style="text-align:left"><code>{esc(r["name"])}</code></td>'
                f"<td>{esc(str(r['shape']))}</td><td>{esc(r['dtype'])}</td>"
                f"<td>{esc(r['device'])}</td><td>{esc(format_bytes(r['bytes']))}</td></tr>"
            )
        if len(shown) < len(rows):
            parts.append(
                f'<tr><td colspan="5">... {len(rows) - len(shown)} more '
                "(see <code>.to_dataframe()</code>)</td></tr>"
            )
        parts.append(
            '</tbody><tfoot><tr><th style="text-align:left">total</th><td></td><td></td><td></td>'
            f"<th>{esc(format_bytes(self.nbytes))}</th></tr></tfoot></table>"
        )
        parts.extend(f"<p><small>{esc(line)}</small></p>" for line in self._extras())
        parts.append("</div>")
        return "".join(parts)


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _short_list(items: tuple[int, ...]) -> str:
    if len(items) > 2 and items == tuple(range(items[0], items[-1] + 1)):
        return f"{items[0]}..{items[-1]} ({len(items)})"
    text = ", ".join(map(str, items[:12]))
    return text + (f", ... ({len(items)})" if len(items) > 12 else "")
