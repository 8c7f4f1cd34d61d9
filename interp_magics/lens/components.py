"""The last residual stream split into the parts that wrote it, at one position per example.

In every family the adapters know, the last block's output is the sum of the token embedding
(plus learned position embeddings, GPT-2), each attention layer's output and each MLP's output;
with GPT-NeoX's parallel residual both sub-layers read the block's input but still add to it.
An attention layer's output is its output projection applied to the heads' concatenated
outputs (site ``head_out``), so it splits exactly into one term per head plus the projection's
bias: head ``h`` contributes ``z_h @ W_O[h]``, the head's slice of the projection's input times
the matching rows of its weight. One capture (hooks owned and removed by it) reads every part;
:func:`split_residual` checks that the parts add up to the stream before anything is
attributed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..core.adapters import adapter_for, call_model
from ..core.capturing import capture
from ..core.placement import input_device, weights_present
from .inputs import Batch, LensError, LensModel

#: Learned position embeddings, as the token embedding's sibling module, per family.
POSITION_EMBEDDING = {"gpt2": "wpe"}


@dataclass(frozen=True)
class Component:
    """One part of the residual stream: what it is, and its layer and head where it has one."""

    name: str  # "embed", "pos_embed", "L3H2", "L3 attn bias", "L3 mlp", ...
    kind: str  # embed, pos_embed, head, attn_bias, mlp, norm_bias, unembed_bias
    layer: int | None = None
    head: int | None = None


@dataclass(frozen=True)
class Split:
    """The parts of the last residual stream at each example's scored position.

    ``vectors`` is ``[component, example, d_model]`` (float64); ``final`` the stream itself
    ``[example, d_model]``; ``logits`` the model's own logits there ``[example, vocab]``;
    ``error`` the largest ``|sum(vectors) - final|`` and ``attn_error`` the largest difference
    between a layer's heads plus bias and its captured attention output.
    """

    components: list[Component]
    vectors: torch.Tensor
    final: torch.Tensor
    logits: torch.Tensor
    error: float
    attn_error: float
    dtype: torch.dtype  # the residual stream's own dtype in the model


def head_vectors(out_proj: nn.Module, z: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Return each head's contribution ``[..., heads, d_model]`` from its slice ``z``
    (``[..., heads, d_head]``) of the input of the attention output projection ``out_proj``.

    ``out_proj`` is an ``nn.Linear`` (weight ``[d_model, heads * d_head]``) or GPT-2's
    ``Conv1D`` (weight ``[heads * d_head, d_model]``); its bias is not included.
    """
    with weights_present(out_proj):
        weight = getattr(out_proj, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise LensError(
                f"the attention output projection {type(out_proj).__name__} has no weight"
            )
        w = weight.detach().to("cpu", torch.float64)
    if isinstance(out_proj, nn.Linear):
        w = w.T  # [in, out]
    elif type(out_proj).__name__ != "Conv1D":
        raise LensError(
            f"the attention output projection is a {type(out_proj).__name__}; per-head "
            "attribution knows nn.Linear and GPT-2's Conv1D"
        )
    per_head = w.reshape(n_heads, -1, w.shape[-1])  # [heads, d_head, d_model]
    return torch.einsum("...he,hed->...hd", z.to(torch.float64), per_head)


def projection_bias(out_proj: nn.Module) -> torch.Tensor | None:
    """Return the output projection's bias (float64, CPU), or None when it has none."""
    with weights_present(out_proj):
        bias = getattr(out_proj, "bias", None)
        return bias.detach().to("cpu", torch.float64) if isinstance(bias, torch.Tensor) else None


def _module_path(model: nn.Module, module: nn.Module | None) -> str | None:
    return next((path for path, m in model.named_modules() if m is module), None)


def embedding_paths(lm: LensModel) -> list[tuple[Component, str]]:
    """Return the embedding components and the module path each is read from."""
    model = lm.module
    get_in = getattr(model, "get_input_embeddings", None)
    tok = _module_path(model, get_in() if callable(get_in) else None)
    if tok is None:
        raise LensError(f"{lm.name} has no input embedding module to attribute to")
    out = [(Component("embed", "embed"), tok)]
    sibling = POSITION_EMBEDDING.get(lm.anatomy.family)
    if sibling is not None:
        parent = tok.rpartition(".")[0]
        path = f"{parent}.{sibling}" if parent else sibling
        if path in dict(model.named_modules()):
            out.append((Component("pos_embed", "pos_embed"), path))
    return out


def split_residual(lm: LensModel, batch: Batch, positions: torch.Tensor) -> Split:
    """Return the parts of the last residual stream at ``positions`` (one per example), read
    in one forward pass."""
    model, n = lm.module, lm.n_layers
    adapter = adapter_for(model)
    assert adapter is not None
    n_heads = lm.anatomy.n_heads
    keep = sorted({int(p) for p in positions.tolist()})
    col = torch.tensor([keep.index(int(p)) for p in positions.tolist()])
    rows = torch.arange(len(positions))
    embeds = embedding_paths(lm)
    sites = [f"{s}.{layer}" for layer in range(n) for s in ("head_out", "attn_out", "mlp_out")]
    patterns = [path for _, path in embeds] + sites + [f"resid_post.{n - 1}"]
    device = input_device(model)
    with torch.no_grad(), capture(model, patterns, positions=keep) as acts:
        out = call_model(model, {k: v.to(device) for k, v in batch.items()})
    logits = getattr(out, "logits", None)
    if not isinstance(logits, torch.Tensor):
        raise LensError(f"{lm.name} returned no logits")
    at = positions.to(logits.device)
    picked = logits[rows.to(logits.device), at].detach().to("cpu", torch.float64)

    def read(key: str) -> torch.Tensor:
        t = acts[key]
        if t.shape[0] == 1:  # position embeddings are computed once for the whole batch
            t = t.expand(len(rows), *t.shape[1:])
        return t[rows, col].to(torch.float64)

    components: list[Component] = []
    vectors: list[torch.Tensor] = []
    for comp, path in embeds:
        components.append(comp)
        vectors.append(read(path))
    attn_error = 0.0
    for layer in range(n):
        out_proj = model.get_submodule(adapter.target("head_out", layer).path)
        heads = head_vectors(out_proj, read(f"head_out.{layer}"), n_heads)  # [B, H, d]
        bias = projection_bias(out_proj)
        for h in range(n_heads):
            components.append(Component(f"L{layer}H{h}", "head", layer, h))
            vectors.append(heads[:, h])
        attn = heads.sum(1)
        if bias is not None:
            components.append(Component(f"L{layer} attn bias", "attn_bias", layer))
            vectors.append(bias.expand_as(attn))
            attn = attn + bias
        attn_error = max(attn_error, float((attn - read(f"attn_out.{layer}")).abs().max()))
        components.append(Component(f"L{layer} mlp", "mlp", layer))
        vectors.append(read(f"mlp_out.{layer}"))
    stacked = torch.stack(vectors)
    final = read(f"resid_post.{n - 1}")
    error = float((stacked.sum(0) - final).abs().max())
    dtype = acts[f"resid_post.{n - 1}"].dtype
    return Split(components, stacked, final, picked, error, attn_error, dtype)
