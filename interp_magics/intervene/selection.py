"""Which part of a site's tensor an edit touches: positions, heads, units; and how it is written.

A site's tensor is ``[batch, seq, ..., d]``. Positions index the sequence dimension by absolute
token position (a forward that continues a KV cache covers positions ``offset ..
offset + seq - 1``); heads split the last dimension into ``[heads, d / heads]`` (as the adapter's
``Target.heads`` says) and index the heads; units index the last dimension. The selected part is
gathered (a copy), transformed, and written into a copy of the tensor with ``index_copy`` /
``index_put``, so the model's own tensor is never changed in place and autograd sees the edit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .edits import Positions
from .errors import InterventionError


@dataclass(frozen=True)
class Selection:
    """The part of one forward's site tensor an edit touches.

    ``positions`` are local indices along ``seq_dim`` (None: all), ``absolute`` the absolute
    token position of every selected sequence entry, ``heads`` and ``units`` indices of the head
    and last dimension (None: all), ``split`` the number of heads the last dimension is split
    into before indexing (None: no split).
    """

    seq_dim: int | None
    positions: torch.Tensor | None
    absolute: tuple[int, ...]
    heads: torch.Tensor | None = None
    units: torch.Tensor | None = None
    split: int | None = None


def forward_positions(spec: Positions | None, offset: int, length: int) -> tuple[int, ...] | None:
    """Return the absolute positions ``spec`` selects among ``offset .. offset + length - 1``.

    Negative positions count from the end of the sequence so far (``offset + length``);
    non-negative ones outside this forward are left for the forward that reaches them. None
    (every position) stays None.
    """
    if spec is None:
        return None
    total = offset + length
    wanted: list[int]
    if isinstance(spec, slice):
        wanted = list(range(total)[spec])
    else:
        wanted = []
        for i in (spec,) if isinstance(spec, int) else spec:
            if i < -total:
                raise InterventionError(
                    f"position {i} is before the start of a sequence of {total} tokens "
                    f"(valid negative positions: -{total}..-1)"
                )
            wanted.append(i + total if i < 0 else i)
    return tuple(dict.fromkeys(a for a in wanted if offset <= a < total))


def selection(
    x: torch.Tensor,
    seq_dim: int | None,
    absolute: tuple[int, ...] | None,
    offset: int,
    heads: tuple[int, ...] | None,
    units: tuple[int, ...] | None,
    split: int | None,
    where: str,
) -> Selection:
    """Return the :class:`Selection` of ``x`` (one forward's tensor at a site), checked."""
    device = x.device
    if seq_dim is None and absolute is not None:
        raise InterventionError(
            f"{where}: positions need a sequence dimension, but the tensor has shape "
            f"{tuple(x.shape)}; edit it without positions"
        )
    length = int(x.shape[seq_dim]) if seq_dim is not None else 0
    local = None
    if absolute is None:
        absolute = tuple(range(offset, offset + length))
    else:
        local = torch.tensor([a - offset for a in absolute], dtype=torch.long, device=device)
    if split is not None and x.ndim >= 4 and int(x.shape[-2]) == split:
        split = None  # already [..., head, d_head]
    width = int(x.shape[-1])
    if split is not None and width % split:
        raise InterventionError(
            f"{where}: the last dimension ({width}) does not split into {split} heads"
        )
    head_t = None
    if heads is not None:
        n = split if split is not None else (int(x.shape[-2]) if x.ndim >= 4 else None)
        if n is None:
            raise InterventionError(f"{where}: heads= needs a per-head site such as head_out")
        head_t = torch.tensor(_in_range(heads, n, "head", where), device=device)
    unit_t = None
    if units is not None:
        last = width // split if split is not None else width
        unit_t = torch.tensor(_in_range(units, last, "unit", where), device=device)
    return Selection(seq_dim, local, absolute, head_t, unit_t, split)


def _in_range(indices: tuple[int, ...], n: int, name: str, where: str) -> list[int]:
    bad = [i for i in indices if not -n <= i < n]
    if bad:
        raise InterventionError(
            f"{where}: {name} {bad[0]} is out of range: there are {n} ({name}s 0..{n - 1})"
        )
    return [i % n for i in indices]


def _index(
    view: torch.Tensor, sel: Selection, seq_dim: int | None
) -> list[tuple[int, torch.Tensor]]:
    out = []
    if sel.positions is not None and seq_dim is not None:
        out.append((seq_dim, sel.positions))
    if sel.heads is not None:
        out.append((view.ndim - 2, sel.heads))
    if sel.units is not None:
        out.append((view.ndim - 1, sel.units))
    return out


def _split(x: torch.Tensor, heads: int | None) -> torch.Tensor:
    """Return ``x`` with its last dimension split into ``heads`` (a view when possible)."""
    return x if heads is None else x.reshape(*x.shape[:-1], heads, x.shape[-1] // heads)


def _gather(view: torch.Tensor, index: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
    part = view
    for dim, idx in index:
        part = part.index_select(dim, idx.to(part.device))
    return part


def edit_tensor(
    x: torch.Tensor, sel: Selection, fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Return a copy of ``x`` whose selected part is ``fn(selected part)``."""
    view = _split(x, sel.split)
    index = _index(view, sel, sel.seq_dim)
    if not index:
        out = fn(view)
    else:
        new = fn(_gather(view, index)).to(view.dtype)
        if len(index) == 1:
            dim, idx = index[0]
            out = view.index_copy(dim, idx.to(view.device), new)
        else:
            # Several indexed dimensions: one index per dimension, shaped to broadcast, so the
            # written block keeps the gathered part's layout.
            grids: list[torch.Tensor] = []
            chosen = dict(index)
            for dim in range(view.ndim):
                picked = chosen.get(dim)
                full = picked if picked is not None else torch.arange(view.shape[dim])
                shape = [1] * view.ndim
                shape[dim] = -1
                grids.append(full.to(view.device).view(shape))
            out = view.index_put(tuple(grids), new)
    return out.flatten(-2) if sel.split else out


def source_part(
    source: torch.Tensor,
    columns: torch.Tensor,
    sel: Selection,
) -> torch.Tensor:
    """Return the part of ``source`` (``[batch or 1, pos, ...]``, the site's layout) at the
    sequence ``columns`` and the selection's heads and units."""
    view = _split(source, sel.split)
    index = [(1, columns)]
    if sel.heads is not None:
        index.append((view.ndim - 2, sel.heads))
    if sel.units is not None:
        index.append((view.ndim - 1, sel.units))
    return _gather(view, index)
