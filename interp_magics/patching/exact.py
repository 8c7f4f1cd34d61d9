"""The exact sweep: every cell patched and run, many cells stacked into one forward.

Three things keep it fast without changing a single value:

- a cell whose source and base activations are equal is exactly the base run, so it is not run;
- the cells of one layer are stacked along the batch dimension, ``batch_tokens`` at a time;
- on causal models, positions before the earliest patched one are unchanged, so a stacked run
  takes them from the base run's KV cache and computes only the rest (the cells are grouped by
  position so that each run's prefix stays long).
"""

from __future__ import annotations

from typing import Any

import torch

from .runner import Patch
from .sweep import Run, Sweep

#: A cell of one layer: its head (None without a head axis) and position (None without one).
Cell = tuple[int | None, int | None]


def exact_sweep(
    sweep: Sweep,
    base: Run,
    source: dict[int, torch.Tensor],
    *,
    only: set[tuple[int, int | None, int | None]] | None = None,
    desc: str = "patching",
) -> torch.Tensor:
    """Return per-example metrics ``[layer, (head), (pos), batch]`` of every patched cell.

    Each cell runs ``base`` with its activations at the sweep's site replaced by ``source``'s.
    ``only`` limits the runs to those ``(layer, head, pos)`` cells; every other cell keeps the
    base run's values.
    """
    from tqdm.auto import tqdm

    axes, layers = sweep.axes, sweep.layers
    b, t = base.batch["input_ids"].shape
    n_heads = sweep.runner.n_heads if "head" in axes else 0
    cells = _cells(axes, n_heads, t)
    out = base.values.repeat(len(layers), len(cells), 1)  # cells equal to the base keep its values
    work = _changed_cells(sweep, base, source, cells, only)
    reuse = base.cache is not None and "pos" in axes
    total = sum(len(todo) for _, todo in work) * b
    disable = not sweep.progress or total == 0
    bar = tqdm(total=total, desc=desc, unit="run", disable=disable, leave=False)
    try:
        with torch.inference_mode():
            for li, todo in work:
                for chunk in _chunks(todo, cells, b, t, sweep.stack_tokens, reuse):
                    vals = _run_cells(sweep, base, source, layers[li], [cells[c] for c in chunk])
                    out[li, chunk] = vals.reshape(len(chunk), b)
                    bar.update(len(chunk) * b)
    finally:
        bar.close()
    shape = (
        [len(layers)] + ([n_heads] if "head" in axes else []) + ([t] if "pos" in axes else []) + [b]
    )
    return out.reshape(shape)


def _cells(axes: tuple[str, ...], n_heads: int, length: int) -> list[Cell]:
    """Return the (head, pos) of every cell of one layer, in row-major order of the axes."""
    heads: list[int | None] = list(range(n_heads)) if "head" in axes else [None]
    positions: list[int | None] = list(range(length)) if "pos" in axes else [None]
    return [(h, p) for h in heads for p in positions]


def _cell_slice(t: torch.Tensor, head: int | None, pos: int | None) -> torch.Tensor:
    x = t if pos is None else t[:, pos]
    if head is not None:
        x = x[:, head] if pos is not None else x[:, :, head]
    return x


def _changed_cells(
    sweep: Sweep,
    base: Run,
    source: dict[int, torch.Tensor],
    cells: list[Cell],
    only: set[tuple[int, int | None, int | None]] | None,
) -> list[tuple[int, list[int]]]:
    """Return, per layer index, the indices of the cells that must be run."""
    work: list[tuple[int, list[int]]] = []
    for li, layer in enumerate(sweep.layers):
        todo = []
        for ci, (head, pos) in enumerate(cells):
            if only is not None and (layer, head, pos) not in only:
                continue
            # A cell whose source and base activations are equal is exactly the base run.
            if torch.equal(
                _cell_slice(source[layer], head, pos), _cell_slice(base.site[layer], head, pos)
            ):
                continue
            todo.append(ci)
        work.append((li, todo))
    return work


def _chunks(
    todo: list[int],
    cells: list[Cell],
    b: int,
    t: int,
    batch_tokens: int,
    reuse: bool,
) -> list[list[int]]:
    """Group cells into stacked runs of at most ``batch_tokens`` tokens.

    With prefix reuse, cells are taken in position order and a run's positions stay within a
    narrow span, because every row of a run computes from the run's earliest position on.
    """
    if not reuse:
        per = max(1, batch_tokens // max(1, b * t))
        return [todo[i : i + per] for i in range(0, len(todo), per)]
    span = max(1, t // 8)
    ordered = sorted(todo, key=lambda c: cells[c][1] or 0)
    chunks: list[list[int]] = []
    for c in ordered:
        pos = cells[c][1] or 0
        if chunks:
            first = cells[chunks[-1][0]][1] or 0
            fits = (len(chunks[-1]) + 1) * b * (t - first) <= batch_tokens
            if fits and pos - first < span:
                chunks[-1].append(c)
                continue
        chunks.append([c])
    return chunks


def _run_cells(
    sweep: Sweep,
    base: Run,
    source: dict[int, torch.Tensor],
    layer: int,
    cells: list[Cell],
) -> torch.Tensor:
    """Return the metric of ``len(cells) x batch`` patched copies run together from ``layer``."""
    runner, site = sweep.runner, sweep.site
    b = base.batch["input_ids"].shape[0]
    examples = torch.arange(b).repeat(len(cells))
    rows = torch.arange(len(examples))
    heads = [h for h, _ in cells]
    positions = [p for _, p in cells]
    head_idx = None if heads[0] is None else torch.tensor(heads).repeat_interleave(b)
    pos_idx = None if positions[0] is None else torch.tensor(positions).repeat_interleave(b)
    src = source[layer].to(runner.device)
    ex = examples.to(runner.device)
    if pos_idx is None and head_idx is None:
        values = src[ex]
    elif pos_idx is None:
        values = src[ex, :, head_idx]
    elif head_idx is None:
        values = src[ex, pos_idx]
    else:
        values = src[ex, pos_idx, head_idx]
    # Causal models: positions before the earliest patched one are unchanged in every layer
    # from the patched one on, so they come from the unpatched run's KV cache.
    prefix = 0
    if base.cache is not None and pos_idx is not None and runner.metric.positions_ is not None:
        earliest = min(p for p in positions if p is not None)
        prefix = min(earliest, int(runner.metric.positions_.min()))
    local = None if pos_idx is None else (pos_idx - prefix).to(runner.device)
    patch = Patch(site, layer, rows.to(runner.device), values, local, head_idx)
    resid = base.resid[layer].to(runner.device)[ex][:, prefix:]
    kwargs: dict[str, Any] = {"prefix": prefix, "cache": base.cache} if prefix else {}
    if site == "resid_pre":
        resid = patch.apply(resid)
        logits = runner.run(base.batch, examples, start=layer, resid=resid, **kwargs)
    else:
        logits = runner.run(base.batch, examples, start=layer, resid=resid, patch=patch, **kwargs)
    return runner.score(logits, examples)
