"""Attention patterns through an nnsight trace: queries and keys saved, the softmax done here.

The kernels a server runs (sdpa, flash attention) never form the attention weights, so a trace
cannot save them. What it can save is each layer's query/key projection output and the rotary
position embedding; from those the weights are recomputed exactly as the eager kernel forms them:
the projection split into heads (the family's layout from :mod:`.anatomy`), rotary applied to
its rotated dimensions, grouped key heads repeated, scores scaled by the attention module's own
scale, causal and padding masks added, softmax in float32. For long prompts this also sends back
less than the patterns would (``2 x T x d`` per layer instead of ``heads x T x T``).

Attention variants whose weights depend on more than this (per-head query/key norms, sliding
windows, logit soft-capping, ALiBi) are refused with a message rather than approximated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .adapters import Target
from .anatomy import Anatomy, anatomy
from .errors import CaptureError

#: Attention-module attributes and config fields that change the weights beyond q.k scaled.
_UNSUPPORTED_MODULES = ("q_norm", "k_norm")
_UNSUPPORTED_CONFIG = ("sliding_window", "attn_logit_softcapping", "alibi")


@dataclass
class PatternRoute:
    """What a trace saves for the pattern targets, and how the patterns are computed from it."""

    model: nn.Module
    anat: Anatomy
    targets: list[Target]
    inputs: list[Target] = field(default_factory=list)
    rotary: bool = False
    scales: dict[int, float] = field(default_factory=dict)

    def compute(self, saved: list[Any], batch: Mapping[str, Any]) -> list[torch.Tensor]:
        """Return each pattern target's weights ``[batch, heads, T, T]`` from the saved values."""
        values = dict(zip([t.key for t in self.inputs], saved, strict=True))
        rotary = values.get("_rotary") if self.rotary else None
        mask = batch.get("attention_mask")
        out = []
        for target in self.targets:
            assert target.layer is not None
            q, k = self._qk(target.layer, values)
            if rotary is not None:
                cos, sin = (torch.as_tensor(x).to(q.device, torch.float32) for x in rotary[:2])
                q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
            out.append(_softmax(q, k, self.scales[target.layer], mask))
        return out

    def _qk(self, layer: int, values: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return queries ``[B, H, T, dh]`` and keys repeated to ``H`` heads, in float32."""
        a = self.anat
        h, kv, dh = a.n_heads, a.n_kv_heads, a.d_head
        if a.qkv == "fused":  # [q | k | v], each H x dh wide
            fused = _tensor(values[f"_qkv.{layer}.0"]).float()
            b, t = fused.shape[:2]
            q = fused[..., : h * dh].reshape(b, t, h, dh)
            k = fused[..., h * dh : 2 * h * dh].reshape(b, t, h, dh)
        elif a.qkv == "fused-per-head":  # per head [q, k, v]
            fused = _tensor(values[f"_qkv.{layer}.0"]).float()
            b, t = fused.shape[:2]
            per = fused.reshape(b, t, h, 3 * dh)
            q, k = per[..., :dh], per[..., dh : 2 * dh]
        else:
            qp = _tensor(values[f"_qkv.{layer}.0"]).float()
            kp = _tensor(values[f"_qkv.{layer}.1"]).float()
            b, t = qp.shape[:2]
            q = qp.reshape(b, t, h, dh)
            k = kp.reshape(b, t, kv, dh).repeat_interleave(h // kv, dim=2)
        return q.transpose(1, 2), k.transpose(1, 2)


def pattern_route(model: nn.Module, targets: list[Target]) -> PatternRoute:
    """Return the route computing the ``pattern`` targets of ``model`` (the wrapped module).

    Raises :class:`CaptureError` for families without an anatomy and for attention variants
    the recomputation would get wrong.
    """
    anat = anatomy(model)
    config = getattr(model, "config", None)
    for name in _UNSUPPORTED_CONFIG:
        if getattr(config, name, None):
            raise CaptureError(
                f"attention patterns through a trace are computed from queries and keys; this "
                f"model's {name} changes them in a way that is not reproduced here: capture "
                "patterns locally with capture() on an eagerly loaded model"
            )
    route = PatternRoute(model, anat, [t for t in targets if t.site == "pattern"])
    for target in route.targets:
        assert target.layer is not None
        layer = target.layer
        attn = model.get_submodule(anat.in_block(layer, anat.qkv_paths[0].rsplit(".", 1)[0]))
        for name in _UNSUPPORTED_MODULES:
            if isinstance(getattr(attn, name, None), nn.Module):
                raise CaptureError(
                    f"layer {layer}'s attention normalises queries and keys per head ({name}); "
                    "its patterns are not recomputed from a trace: capture them locally"
                )
        route.scales[layer] = _scale(attn, config, anat, layer)
        for i, rel in enumerate(anat.qkv_paths[:2] if anat.qkv == "separate" else anat.qkv_paths):
            path = anat.in_block(layer, rel)
            route.inputs.append(Target(key=f"_qkv.{layer}.{i}", path=path))
    first = min((t.layer for t in route.targets if t.layer is not None), default=None)
    rotary = None if first is None else _rotary_path(model, anat, first)
    if rotary is not None:
        route.rotary = True
        route.inputs.insert(0, rotary)
    return route


def _scale(attn: nn.Module, config: Any, anat: Anatomy, layer: int) -> float:
    """Return the factor the family multiplies query-key products by."""
    scaling = getattr(attn, "scaling", None)
    if isinstance(scaling, (int, float)):
        return float(scaling)
    scale = 1.0 / math.sqrt(anat.d_head)
    if anat.family == "gpt2":
        scale = scale if getattr(config, "scale_attn_weights", True) else 1.0
        if getattr(config, "scale_attn_by_inverse_layer_idx", False):
            scale /= layer + 1
    return scale


def _rotary_path(model: nn.Module, anat: Anatomy, layer: int) -> Target | None:
    """Return where the trace reads the rotary ``(cos, sin)``: the ``position_embeddings``
    argument of layer ``layer``'s attention (the same for every layer), or None without rotary.
    """
    if anat.family == "gpt2":
        return None
    path = anat.in_block(layer, anat.qkv_paths[0].rsplit(".", 1)[0])
    return Target(key="_rotary", path=path, io="input", select="position_embeddings")


def _tensor(value: Any) -> torch.Tensor:
    if isinstance(value, tuple):
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise CaptureError(f"a saved projection is a {type(value).__name__}, not a tensor")
    return value


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Return ``x`` ``[B, H, T, dh]`` with rotary applied to its first ``cos.shape[-1]`` dims."""
    rot = cos.shape[-1]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    turned, kept = x[..., :rot], x[..., rot:]
    half = rot // 2
    rotated = torch.cat((-turned[..., half:], turned[..., :half]), dim=-1)
    return torch.cat((turned * cos + rotated * sin, kept), dim=-1)


def _softmax(q: torch.Tensor, k: torch.Tensor, scale: float, mask: Any) -> torch.Tensor:
    """Return causal softmax weights of ``q`` against ``k`` with padded keys masked out."""
    t = q.shape[-2]
    scores = (q @ k.transpose(-1, -2)) * scale
    low = torch.finfo(scores.dtype).min
    future = torch.ones(t, t, dtype=torch.bool, device=q.device).triu(1)
    scores = scores.masked_fill(future, low)
    if isinstance(mask, torch.Tensor):
        padded = mask.to(q.device)[:, None, None, :].eq(0)
        scores = scores.masked_fill(padded, low)
    return scores.softmax(-1)
