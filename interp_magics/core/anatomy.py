"""Where a model family keeps the parts that lenses and circuits read: norms, projections, readout.

Capture needs only hook targets (:mod:`.adapters`); lenses and circuit analyses also need the
final norm and the unembedding (to read the residual stream as logits), each block's norms (a
receiver reads its input through them) and the query/key/value projections (to give one head's
query, key or value its own input). The adapter layer owns that knowledge too, so an analysis
never asks which family it runs on:

==========  ======================  =========================  ==========================
family      final norm              block norms (attn, mlp)    query/key/value projections
==========  ======================  =========================  ==========================
gpt2        ``<base>.ln_f``         ``ln_1``, ``ln_2``         ``attn.c_attn``: ``[q|k|v]``
gpt-neox    ``<base>.final_layer_   ``input_layernorm``,       ``attention.query_key_value``:
            norm``                  ``post_attention_          ``[head, (q, k, v), d_head]``
                                    layernorm``
llama       ``<base>.norm``         ``input_layernorm``,       ``self_attn.{q,k,v}_proj``
                                    ``post_attention_          (grouped-query aware)
                                    layernorm``
==========  ======================  =========================  ==========================

``<base>`` is the module that holds the blocks (``transformer``, ``gpt_neox``, ``model``); the
unembedding is whatever ``get_output_embeddings()`` returns. BERT-family models (post-norm, no
final norm before a readout) and TransformerLens bridges have no anatomy here yet: asking for
one raises :class:`~.errors.CaptureError` saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .adapters import BlockAdapter, adapter_for
from .errors import CaptureError
from .traced import unwrap

QKV = Literal["fused", "fused-per-head", "separate"]


@dataclass(frozen=True)
class Anatomy:
    """The parts of one model that lenses and circuits use, as ``named_modules()`` paths."""

    family: str
    n_layers: int
    n_heads: int
    n_kv_heads: int  # key/value heads (fewer than n_heads with grouped-query attention)
    d_model: int
    d_head: int
    blocks: str  # path of the blocks' ModuleList, e.g. "transformer.h"
    final_norm: str  # path of the norm applied before the unembedding
    unembed: str | None  # path of the unembedding (None for a model without an LM head)
    attn_norm: str  # block-relative path of the norm the attention reads through
    mlp_norm: str | None  # block-relative path of the norm the MLP reads through
    qkv: QKV  # how queries, keys and values come out of their projection(s)
    qkv_paths: tuple[str, ...]  # block-relative: one fused projection, or q, k and v
    parallel: bool  # attention and MLP both read the block's input (GPT-NeoX's default)

    def block(self, layer: int) -> str:
        """Return the path of block ``layer``."""
        if not 0 <= layer < self.n_layers:
            raise CaptureError(f"layer {layer} is out of range: the model has {self.n_layers}")
        return f"{self.blocks}.{layer}"

    def in_block(self, layer: int, relative: str) -> str:
        """Return the path of ``relative`` (e.g. ``ln_1``) inside block ``layer``."""
        return f"{self.block(layer)}.{relative}"

    def columns(self, kind: str, head: int) -> slice:
        """Return the output columns of head ``head``'s ``kind`` (``"q"``, ``"k"``, ``"v"``)
        in the projection that computes it (``qkv_paths``: fused, or one per kind)."""
        dh = self.d_head
        if self.qkv == "fused":  # [q | k | v]
            offset = {"q": 0, "k": self.n_heads * dh, "v": (self.n_heads + self.n_kv_heads) * dh}
            start = offset[kind] + head * dh
        elif self.qkv == "fused-per-head":  # [head, (q, k, v), d_head]
            start = head * 3 * dh + "qkv".index(kind) * dh
        else:
            start = head * dh
        return slice(start, start + dh)

    def query_columns(self) -> torch.Tensor:
        """Return every query column of the query projection's output, in order."""
        spans = [self.columns("q", head) for head in range(self.n_heads)]
        return torch.cat([torch.arange(c.start, c.stop) for c in spans])


def linear_weights(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return ``(weight [out, in], bias)`` of a linear layer, ``nn.Linear`` or GPT-2's ``Conv1D``.

    Raises:
        CaptureError: for any other kind of module.
    """
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    if not isinstance(weight, torch.Tensor):
        raise CaptureError(f"{type(module).__name__} has no weight to project with")
    if isinstance(module, nn.Linear):
        return weight, bias if isinstance(bias, torch.Tensor) else None
    if type(module).__name__ == "Conv1D":  # GPT-2's transposed linear: y = x W + b
        return weight.T, bias if isinstance(bias, torch.Tensor) else None
    raise CaptureError(
        f"{type(module).__name__} is neither nn.Linear nor GPT-2's Conv1D; its columns cannot "
        "be computed one by one"
    )


_PARTS: dict[str, tuple[str, str, str | None, QKV, tuple[str, ...]]] = {
    # family: (final norm under base, attn norm, mlp norm, qkv layout, qkv paths)
    "gpt2": ("ln_f", "ln_1", "ln_2", "fused", ("attn.c_attn",)),
    "gpt-neox": (
        "final_layer_norm",
        "input_layernorm",
        "post_attention_layernorm",
        "fused-per-head",
        ("attention.query_key_value",),
    ),
    "llama": (
        "norm",
        "input_layernorm",
        "post_attention_layernorm",
        "separate",
        ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    ),
}


def anatomy(model: nn.Module) -> Anatomy:
    """Return where ``model`` (or the module an nnsight model wraps) keeps its norms,
    projections and readout.

    Raises:
        CaptureError: for a family this layer does not describe (BERT, TransformerLens bridges,
            unknown modules), or a model missing one of its family's parts.
    """
    model = unwrap(model)  # an nnsight model: the module it wraps
    adapter = adapter_for(model)
    if not isinstance(adapter, BlockAdapter) or adapter.family not in _PARTS:
        kind = "an unknown architecture" if adapter is None else f"the {adapter.family} family"
        raise CaptureError(
            f"{type(model).__name__} is {kind}; lenses and circuits know GPT-2, GPT-NeoX/Pythia "
            "and Llama-family decoders (final norm, block norms, query/key/value projections)"
        )
    final, attn_norm, mlp_norm, qkv, qkv_paths = _PARTS[adapter.family]
    layers_path = adapter.layers_path
    base = layers_path[: -len(adapter.spec.layers)].rstrip(".")
    final_norm = f"{base}.{final}" if base else final
    modules = dict(model.named_modules())
    missing = [p for p in (final_norm,) if p not in modules]
    first = adapter.blocks[0]
    inner = dict(first.named_modules())
    missing += [f"{layers_path}.0.{p}" for p in (attn_norm, *qkv_paths) if p not in inner]
    if missing:
        raise CaptureError(
            f"{type(model).__name__} looks like {adapter.family} but has no {', '.join(missing)}"
        )
    config = getattr(model, "config", None)
    n_heads = adapter.n_heads
    d_model = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0))
    d_head = int(getattr(config, "head_dim", 0) or d_model // n_heads)
    kv = int(getattr(config, "num_key_value_heads", 0) or n_heads)
    return Anatomy(
        family=adapter.family,
        n_layers=adapter.n_layers,
        n_heads=n_heads,
        n_kv_heads=kv,
        d_model=d_model,
        d_head=d_head,
        blocks=layers_path,
        final_norm=final_norm,
        unembed=_unembed_path(model, modules),
        attn_norm=attn_norm,
        mlp_norm=mlp_norm if mlp_norm is not None and mlp_norm in inner else None,
        qkv=qkv,
        qkv_paths=qkv_paths,
        parallel=bool(getattr(config, "use_parallel_residual", False)),
    )


def _unembed_path(model: nn.Module, modules: dict[str, nn.Module]) -> str | None:
    get_out = getattr(model, "get_output_embeddings", None)
    out = get_out() if callable(get_out) else None
    if out is None:
        return None
    return next((path for path, m in modules.items() if m is out), None)
