"""The modules and weight slices the circuit engine touches, found from a model's anatomy.

A receiver head needs its own input: its columns of the query/key/value projection computed
from a residual stream of its own. Where those columns sit depends on the family:

- GPT-2 ``c_attn`` (a ``Conv1D``, ``y = x W + b``) is ``[q | k | v]``, each ``heads * d_head``
  wide, head-major inside each part;
- GPT-NeoX ``query_key_value`` (``nn.Linear``) is laid out ``[head, (q, k, v), d_head]``;
- Llama ``q_proj``, ``k_proj``, ``v_proj`` are separate, keys and values with ``n_kv_heads``
  heads (grouped-query attention).

A sender head's output is its ``d_head`` slice of the attention output projection's input
times that slice's rows of the projection weight (the bias is shared, see :mod:`.graph`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..core.adapters import adapter_for
from ..core.anatomy import linear_weights
from ..core.errors import CaptureError
from ..core.placement import weights_present
from .graph import CircuitError, Graph, Receiver


@dataclass(frozen=True)
class Parts:
    """One model's modules, per layer, that circuits hook or call."""

    graph: Graph
    attn_norms: tuple[nn.Module, ...]
    mlp_norms: tuple[nn.Module, ...]
    mlps: tuple[nn.Module, ...]
    out_projs: tuple[nn.Module, ...]
    qkv: tuple[dict[str, nn.Module], ...]  # per layer: "q", "k", "v" -> projection module
    final_norm: nn.Module

    def module_of(self, receiver: Receiver) -> nn.Module:
        """Return the projection module whose output holds a q/k/v receiver's columns."""
        assert receiver.kind in ("q", "k", "v")
        return self.qkv[receiver.layer][receiver.kind]

    def columns(self, receiver: Receiver) -> slice:
        """Return the output columns of a q/k/v receiver in its projection's output."""
        return self.graph.anatomy.columns(receiver.kind, int(receiver.head or 0))

    def project(self, module: nn.Module, x: torch.Tensor, cols: slice) -> torch.Tensor:
        """Return columns ``cols`` of ``module(x)``, computing only those columns."""
        # a hook runs outside the module's forward: offloaded weights are loaded for the read
        with weights_present(module):
            weight, bias = _linear_weights(module)
            b = None if bias is None else bias[cols].to(x.device)
            return F.linear(x, weight[cols].to(x.device), b)

    def head_outputs(self, layer: int, z: torch.Tensor) -> torch.Tensor:
        """Return each head's write to the residual stream ``[N, T, heads, d_model]``.

        ``z`` is the output projection's input ``[N, T, heads * d_head]``; the bias is left out.
        """
        a = self.graph.anatomy
        with weights_present(self.out_projs[layer]):  # a pre-hook: before accelerate loads them
            weight, _ = _linear_weights(self.out_projs[layer])  # [d_model, heads * d_head]
            w = weight.T.reshape(a.n_heads, a.d_head, -1).to(z.device, z.dtype)
        zh = z.reshape(*z.shape[:2], a.n_heads, a.d_head)
        return torch.einsum("nthk,hkd->nthd", zh, w)


def _linear_weights(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return ``(weight [out, in], bias)`` of a linear layer, whatever its convention."""
    try:
        return linear_weights(module)
    except CaptureError as err:
        raise CircuitError(str(err)) from None


def parts_of(model: nn.Module, graph: Graph) -> Parts:
    """Return the modules of ``model`` that circuits use (``graph`` is ``graph_of(model)``)."""
    a = graph.anatomy
    adapter = adapter_for(model)
    assert adapter is not None
    modules: dict[str, nn.Module] = dict(model.named_modules())

    def get(path: str) -> nn.Module:
        if path not in modules:
            raise CircuitError(f"{type(model).__name__} has no module {path!r}")
        return modules[path]

    qkv = []
    for layer in range(a.n_layers):
        mods = [get(a.in_block(layer, p)) for p in a.qkv_paths]
        qkv.append(dict(zip("qkv", mods * 3 if len(mods) == 1 else mods, strict=False)))
    assert a.mlp_norm is not None
    layers = range(a.n_layers)
    parts = Parts(
        graph=graph,
        attn_norms=tuple(get(a.in_block(layer, a.attn_norm)) for layer in layers),
        mlp_norms=tuple(get(a.in_block(layer, a.mlp_norm)) for layer in layers),
        mlps=tuple(get(adapter.target("mlp_out", layer).path) for layer in layers),
        out_projs=tuple(get(adapter.target("head_out", layer).path) for layer in layers),
        qkv=tuple(qkv),
        final_norm=get(a.final_norm),
    )
    for layer in layers:  # fail on an unknown projection type before any run
        _linear_weights(parts.out_projs[layer])
        for module in parts.qkv[layer].values():
            _linear_weights(module)
    return parts
