"""The one exact engine: the residual stream as each receiver sees it, edited edge by edge.

Every circuit method asks one question: what does the model do when receiver ``v`` reads its
run's own residual stream plus some senders' *deltas*? Path patching adds a sender's
corrupt-minus-clean output to chosen receivers; an exact edge patch adds it to one receiver;
attribution differentiates with respect to a zero delta; faithfulness adds ``ablated - actual``
for every edge outside a circuit. So one set of hooks serves them all:

- a query/key/value receiver: a forward hook on its projection replaces that head's columns by
  the columns computed from ``norm(residual + delta)`` (the block's attention norm, called on
  the edited stream; only that head's columns are projected). Its sibling heads, which share the
  projection, keep their own input;
- an MLP receiver: a pre-hook on the MLP replaces its input by ``mlp_norm(residual + delta)``,
  where ``residual`` is what the MLP norm was given in this forward (the block's input plus its
  attention output, or the block's input in parallel blocks);
- the logits: a pre-hook on the final norm adds the delta to its input.

Many interventions run as copies along the batch dimension: an :class:`Edit` names the rows of
the stacked batch it applies to. Each receiver's residual is the one *this* forward computed,
so edits upstream of a receiver reach it through the model, as in an unedited run.

:class:`LiveAblation` covers edits whose delta depends on the forward itself: ``ablated_u -
actual_u`` where ``actual_u`` is sender ``u``'s output in this very forward (which earlier
edits may have changed). The engine then also records every sender's output as it is computed.

Hooks are owned by a :class:`~interp_magics.core.hooks.HookSet` and removed in ``finally``,
also when installing them fails halfway or the forward raises.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.hooks import HookSet
from .parts import Parts


@dataclass(frozen=True)
class Edit:
    """Rows ``rows`` of a stacked forward read ``delta`` ``[len(rows), T, d]`` on top of
    ``receiver``'s own input (``receiver`` indexes ``graph.receivers``)."""

    receiver: int
    rows: torch.Tensor
    delta: torch.Tensor


@dataclass(frozen=True)
class LiveAblation:
    """Edges ablated against this forward's own sender outputs.

    ``masks[n, r, s]`` is 1 where row ``n``'s receiver ``r`` reads sender ``s``'s ablated value
    ``values[s, n]`` instead of ``s``'s actual output in this forward (``values`` is
    ``[senders, rows, T, d]``). Forwards with live ablation start at layer 0.
    """

    masks: torch.Tensor
    values: torch.Tensor


@dataclass
class Recording:
    """What one forward computed: each block's input, the final norm's input, sender outputs.

    ``resid[l]`` is the residual stream block ``l`` reads (``resid[n_layers]``: the final
    norm's input); ``senders`` is ``[senders, N, T, d]`` in ``graph.senders`` order.
    """

    resid: dict[int, torch.Tensor] = field(default_factory=dict)
    heads: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> [N, T, H, d]
    mlps: dict[int, torch.Tensor] = field(default_factory=dict)
    # (layer, projection name) -> the query/key/value projection's output [N, T, cols]
    projections: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)

    def senders(self, parts: Parts) -> torch.Tensor:
        """Return every sender's output, stacked in graph order."""
        out = [self.resid[0]]
        for layer in range(parts.graph.anatomy.n_layers):
            out += list(self.heads[layer].unbind(2))
            out.append(self.mlps[layer])
        return torch.stack(out)


def distinct_modules(named: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """Return one name per module of a layer's ``q``/``k``/``v`` table (fused ones share)."""
    out: dict[str, nn.Module] = {}
    for name, module in named.items():
        if all(module is not m for m in out.values()):
            out[name] = module
    return out


def _first(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    """Return a module call's main input: its first positional tensor or ``hidden_states``."""
    value = args[0] if args else kwargs.get("hidden_states", next(iter(kwargs.values())))
    assert isinstance(value, torch.Tensor)
    return value


def _replace_first(args: tuple[Any, ...], kwargs: dict[str, Any], new: torch.Tensor) -> Any:
    if args:
        return (new, *args[1:]), kwargs
    key = "hidden_states" if "hidden_states" in kwargs else next(iter(kwargs))
    return args, {**kwargs, key: new}


class _Engine:
    """The hooks of one stacked forward (see the module docstring)."""

    def __init__(
        self,
        parts: Parts,
        edits: Sequence[Edit],
        live: LiveAblation | None,
        record: Recording | None,
    ) -> None:
        self.parts = parts
        self.graph = parts.graph
        self.live = live
        self.record = record
        self.fixed = _merge(edits)
        self.fixed_index = {r: _as_index(rows) for r, (rows, _) in self.fixed.items()}
        self.attn_in: dict[int, torch.Tensor] = {}
        self.mlp_in: dict[int, torch.Tensor] = {}
        self.diff: torch.Tensor | None = None  # live: [senders, N, T, d] ablated - actual
        self.live_receivers: set[int] = set()
        if live is not None:
            self.live_receivers = set(
                torch.nonzero(live.masks.any(0).any(-1)).flatten().tolist()  # [R]
            )

    # -- which receivers have work -------------------------------------------------------
    def active(self, receiver: int) -> bool:
        return receiver in self.fixed or receiver in self.live_receivers

    def delta(self, receiver: int, like: torch.Tensor) -> tuple[Index, torch.Tensor] | None:
        """Return ``(rows, delta)`` for ``receiver`` in this forward, or None; ``rows`` is a
        slice when the rows are a contiguous run (plain slicing is cheaper, with autograd too)."""
        fixed = self.fixed.get(receiver)
        live = self._live_delta(receiver) if receiver in self.live_receivers else None
        if live is None:
            return None if fixed is None else (self.fixed_index[receiver], fixed[1])
        if fixed is None:
            return _as_index(live[0]), live[1]
        full = torch.zeros_like(like)
        full = full.index_add(0, fixed[0], fixed[1].to(like.dtype))
        full = full.index_add(0, live[0], live[1].to(like.dtype))
        rows = torch.unique(torch.cat([fixed[0], live[0]]))
        return _as_index(rows), full[rows]

    def _live_delta(self, receiver: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        assert self.live is not None and self.diff is not None
        mask = self.live.masks[:, receiver].to(self.diff.device)  # [N, S]
        rows = torch.nonzero(mask.any(-1)).flatten()
        if rows.numel() == 0:
            return None
        m = mask[rows].to(self.diff.dtype)
        delta = torch.einsum("ns,sntd->ntd", m, self.diff[:, rows])
        return rows, delta

    # -- live recording ------------------------------------------------------------------
    def _note(self, senders: slice, actual: torch.Tensor) -> None:
        """Store ``ablated - actual`` of senders ``senders`` (``actual``: ``[S', N, T, d]``)."""
        if self.live is None:
            return
        if self.diff is None:
            n_s = len(self.graph.senders)
            self.diff = torch.zeros(
                (n_s, *actual.shape[1:]), dtype=actual.dtype, device=actual.device
            )
        values = self.live.values[senders].to(device=actual.device, dtype=actual.dtype)
        self.diff[senders] = values - actual

    def sender_slice(self, kind: str, layer: int) -> slice:
        h = self.graph.anatomy.n_heads
        first = 1 + layer * (h + 1)
        if kind == "embed":
            return slice(0, 1)
        if kind == "heads":
            return slice(first, first + h)
        return slice(first + h, first + h + 1)

    # -- hooks ---------------------------------------------------------------------------
    def install(self, hooks: HookSet) -> None:
        parts, graph = self.parts, self.graph
        n_layers = graph.anatomy.n_layers
        watching = self.live is not None or self.record is not None
        by_module: dict[int, list[int]] = defaultdict(list)
        modules: dict[int, nn.Module] = {}
        for r, rec in enumerate(graph.receivers):
            if rec.kind in ("q", "k", "v") and self.active(r):
                module = parts.module_of(rec)
                by_module[id(module)].append(r)
                modules[id(module)] = module
        attn_layers = {graph.receivers[r].layer for rs in by_module.values() for r in rs}
        mlp_layers = {
            rec.layer
            for r, rec in enumerate(graph.receivers)
            if rec.kind == "mlp" and self.active(r)
        }
        for layer in range(n_layers):
            if layer in attn_layers or watching:
                self._add_pre(hooks, parts.attn_norms[layer], self._keep_attn_in(layer))
            if layer in mlp_layers:
                self._add_pre(hooks, parts.mlp_norms[layer], self._keep_mlp_in(layer))
                self._add_pre(hooks, parts.mlps[layer], self._mlp_input(layer))
            if watching:
                self._add_pre(hooks, parts.out_projs[layer], self._heads_out(layer))
                hooks.add(
                    parts.mlps[layer].register_forward_hook(self._mlp_out(layer)), "", "forward"
                )
        for key, receivers in by_module.items():
            fn = self._qkv(receivers)
            hooks.add(modules[key].register_forward_hook(fn), "", "forward")
        if self.record is not None:
            for layer, named in enumerate(parts.qkv):
                for name, module in distinct_modules(named).items():
                    hook = module.register_forward_hook(self._keep_projection(layer, name))
                    hooks.add(hook, "", "forward")
        logits = len(graph.receivers) - 1
        if self.active(logits) or self.record is not None:
            self._add_pre(hooks, parts.final_norm, self._final(logits, n_layers))

    @staticmethod
    def _add_pre(hooks: HookSet, module: nn.Module, fn: Any) -> None:
        hooks.add(module.register_forward_pre_hook(fn, with_kwargs=True), "", "forward_pre")

    def _keep_attn_in(self, layer: int) -> Any:
        def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            x = _first(args, kwargs)
            self.attn_in[layer] = x
            if self.record is not None:
                self.record.resid[layer] = x
            if layer == 0:
                self._note(self.sender_slice("embed", 0), x.unsqueeze(0))

        return pre

    def _keep_projection(self, layer: int, name: str) -> Any:
        def post(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
            assert self.record is not None
            self.record.projections[(layer, name)] = output

        return post

    def _keep_mlp_in(self, layer: int) -> Any:
        def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            self.mlp_in[layer] = _first(args, kwargs)

        return pre

    def _mlp_input(self, layer: int) -> Any:
        receiver = self.graph.receiver_index(f"MLP{layer}")
        norm = self.parts.mlp_norms[layer]

        def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            x = _first(args, kwargs)
            got = self.delta(receiver, x)
            if got is None:
                return None
            rows, delta = got
            new = x.clone()
            new[rows] = norm.forward(self.mlp_in[layer][rows] + delta).to(new.dtype)
            return _replace_first(args, kwargs, new)

        return pre

    def _qkv(self, receivers: list[int]) -> Any:
        graph, parts = self.graph, self.parts

        def post(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> Any:
            # Each edited head's columns are computed on their own. Without gradients they are
            # written into the output (a tensor this forward just made); with gradients the
            # output is put back together by one concatenation: writing them into a clone,
            # receiver by receiver, would make the backward copy the whole output once per
            # receiver.
            blocks: list[tuple[int, int, torch.Tensor]] = []
            everyone = slice(0, output.shape[0])
            in_place = not torch.is_grad_enabled()
            for r in receivers:
                rec = graph.receivers[r]
                got = self.delta(r, self.attn_in[rec.layer])
                if got is None:
                    continue
                rows, delta = got
                normed = parts.attn_norms[rec.layer].forward(self.attn_in[rec.layer][rows] + delta)
                cols = parts.columns(rec)
                values = parts.project(module, normed, cols).to(output.dtype)
                if in_place:
                    output[rows, :, cols] = values
                    continue
                if not (isinstance(rows, slice) and rows == everyone):
                    block = output[:, :, cols].clone()
                    block[rows] = values
                    values = block
                blocks.append((cols.start, cols.stop, values))
            if in_place or not blocks:
                return None  # written in place, or nothing to write
            pieces, at = [], 0
            for start, stop, values in sorted(blocks, key=lambda b: b[0]):
                if start > at:
                    pieces.append(output[:, :, at:start])
                pieces.append(values)
                at = stop
            if at < output.shape[-1]:
                pieces.append(output[:, :, at:])
            return torch.cat(pieces, dim=-1)

        return post

    def _heads_out(self, layer: int) -> Any:
        def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            heads = self.parts.head_outputs(layer, _first(args, kwargs))
            if self.record is not None:
                self.record.heads[layer] = heads
            self._note(self.sender_slice("heads", layer), heads.permute(2, 0, 1, 3))

        return pre

    def _mlp_out(self, layer: int) -> Any:
        def post(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            out = output if isinstance(output, torch.Tensor) else output[0]
            if self.record is not None:
                self.record.mlps[layer] = out
            self._note(self.sender_slice("mlp", layer), out.unsqueeze(0))

        return post

    def _final(self, receiver: int, n_layers: int) -> Any:
        def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            x = _first(args, kwargs)
            if self.record is not None:
                self.record.resid[n_layers] = x
            got = self.delta(receiver, x)
            if got is None:
                return None
            rows, delta = got
            new = x.clone()
            new[rows] = new[rows] + delta.to(new.dtype)
            return _replace_first(args, kwargs, new)

        return pre


Index = slice | torch.Tensor


def _as_index(rows: torch.Tensor) -> Index:
    """Return ``rows`` (sorted row numbers) as a slice when they are a contiguous run."""
    n = rows.numel()
    if n and int(rows[-1]) - int(rows[0]) + 1 == n and bool((rows.diff() == 1).all()):
        return slice(int(rows[0]), int(rows[0]) + n)
    return rows


def _merge(edits: Sequence[Edit]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Return ``receiver -> (rows, delta)``, deltas of one receiver's repeated rows summed."""
    grouped: dict[int, list[Edit]] = defaultdict(list)
    for e in edits:
        grouped[e.receiver].append(e)
    out = {}
    for r, group in grouped.items():
        if len(group) == 1:
            out[r] = (group[0].rows, group[0].delta)
            continue
        rows = torch.cat([e.rows for e in group])
        deltas = torch.cat([e.delta for e in group])
        unique, inverse = torch.unique(rows, return_inverse=True)
        if len(unique) == len(rows):
            out[r] = (rows, deltas)
        else:
            summed = torch.zeros((len(unique), *deltas.shape[1:]), dtype=deltas.dtype)
            out[r] = (unique, summed.to(deltas.device).index_add(0, inverse, deltas))
    return out


@contextlib.contextmanager
def edited(
    parts: Parts,
    edits: Sequence[Edit] = (),
    *,
    live: LiveAblation | None = None,
    record: Recording | None = None,
) -> Iterator[None]:
    """While active, forwards of ``parts``' model read ``edits`` (and ``live`` ablations), and
    ``record`` (when given) receives what each forward computed.

    Every hook is removed on exit, also when installing fails halfway or the forward raises.
    """
    hooks = HookSet("circuits")
    try:
        _Engine(parts, edits, live, record).install(hooks)
        yield
    finally:
        hooks.remove_all()
