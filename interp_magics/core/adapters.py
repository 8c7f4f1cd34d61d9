"""Architecture adapters: where each canonical site lives in a model family.

An adapter maps a canonical site (``resid_pre``, ``resid_post``, ``attn_out``, ``mlp_out``,
``pattern``) at a layer to one hook target: a module path, whether its input or output is
read, and which element of that output. Families:

==============  =====================  ==================================================
family          blocks                 attn_out / mlp_out / pattern
==============  =====================  ==================================================
gpt2            ``*.h.N``              ``attn`` output[0] / ``mlp`` / ``attn`` output[1]
gpt-neox        ``*.layers.N``         ``attention`` output[0] / ``mlp`` / output[1]
llama           ``*.layers.N``         ``self_attn`` output[0] / ``mlp`` / output[1]
bert            ``*.layer.N``          ``attention.output.dense`` / ``output.dense`` /
                                       ``attention.self`` output[1]
transformer-lens  ``blocks.N``         the bridge's own hook points
==============  =====================  ==================================================

``resid_pre`` is a block's input and ``resid_post`` its output in every family. For BERT
(post-LayerNorm) ``attn_out`` and ``mlp_out`` are the sub-layer contributions before the
residual add and LayerNorm. Llama-family adapters work for grouped-query attention: the
attention module returns weights per query head, so ``pattern`` has ``num_attention_heads``
heads. Families are recognised by structure, not class name, so wrapped models (PEFT,
``*ForSequenceClassification``) and relatives with the same layout (Mistral, Qwen, Pythia)
are covered. Any other module works through globs alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import nn

from .errors import CaptureError
from .outputs import Selector

IO = Literal["input", "output"]


@dataclass(frozen=True)
class Target:
    """One thing to capture: the ``io`` of module ``path``, stored under ``key``."""

    key: str
    path: str
    io: IO = "output"
    select: Selector | None = None
    seq_dim: int | None = None  # None: dim 1 when the tensor has 3 or more dims
    site: str | None = None
    layer: int | None = None
    group: str = ""  # targets of one group are assumed to have one size (memory estimate)
    heads: int | None = (
        None  # split the last dim into this many heads: [..., d] -> [..., heads, d/heads]
    )


@dataclass(frozen=True)
class SiteSpec:
    """Where a canonical site lives relative to a block."""

    path: str  # relative to the block; "" is the block itself
    io: IO = "output"
    select: Selector | None = None
    seq_dim: int = 1
    heads: bool = False  # the tensor concatenates per-head vectors along its last dim


class Adapter(Protocol):
    """What capture needs from an architecture adapter."""

    family: str

    @property
    def n_layers(self) -> int: ...

    @property
    def n_heads(self) -> int: ...

    @property
    def blocks(self) -> nn.ModuleList: ...

    def target(self, site: str, layer: int) -> Target: ...

    def aliases(self) -> dict[str, str]: ...

    def attention_weights(self) -> contextlib.AbstractContextManager[str | None]: ...

    def call(self, batch: Mapping[str, Any]) -> Any: ...


def _attention_weights(output: Any) -> torch.Tensor:
    """Select the attention weights from an HF attention module's ``(out, weights)`` output."""
    weights = output[1] if isinstance(output, (tuple, list)) and len(output) > 1 else None
    if weights is None or (isinstance(weights, torch.Tensor) and weights.numel() == 0):
        raise CaptureError(
            "this attention module returned no attention weights (the 'sdpa' and flash "
            "kernels never compute them); load the model with attn_implementation='eager' "
            "or call model.set_attn_implementation('eager')"
        )
    return weights  # type: ignore[no-any-return]


@dataclass(frozen=True)
class BlockFamily:
    """A family of models whose blocks sit in one ``nn.ModuleList``."""

    family: str
    layers: str  # last component(s) of the ModuleList path
    requires: tuple[str, ...]  # sub-paths every block of the family has
    sites: dict[str, SiteSpec] = field(default_factory=dict)
    causal: bool = True  # each position attends only to earlier ones (decoders)

    def find_layers(
        self, lists: list[tuple[str, nn.ModuleList]]
    ) -> tuple[str, nn.ModuleList] | None:
        """Return the path and ModuleList of this family's blocks among ``lists``, if present."""
        for path, module in lists:
            if path != self.layers and not path.endswith("." + self.layers):
                continue
            if all(_has_submodule(module[0], req) for req in self.requires):
                return path, module
        return None


def _has_submodule(module: nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
    except AttributeError:
        return False
    return True


_RESID = {
    "resid_pre": SiteSpec("", "input"),
    "resid_post": SiteSpec(""),
}


def _family(
    family: str, layers: str, attn: str, mlp: str, pattern: str, out_proj: str, causal: bool = True
) -> BlockFamily:
    return BlockFamily(
        family,
        layers,
        (attn, mlp, pattern, out_proj),
        causal=causal,
        sites={
            **_RESID,
            "attn_out": SiteSpec(attn, select=0 if attn == pattern else None),
            "mlp_out": SiteSpec(mlp),
            "pattern": SiteSpec(pattern, select=_attention_weights, seq_dim=2),
            # Each head's output is its slice of the input of the attention output
            # projection (the per-head "z" vectors): patching a slice replaces exactly that
            # head's contribution. Query heads, so grouped-query attention needs nothing else.
            "head_out": SiteSpec(out_proj, io="input", heads=True),
        },
    )


FAMILIES: tuple[BlockFamily, ...] = (
    _family("gpt2", "h", "attn", "mlp", "attn", "attn.c_proj"),
    _family("gpt-neox", "layers", "attention", "mlp", "attention", "attention.dense"),
    _family("llama", "layers", "self_attn", "mlp", "self_attn", "self_attn.o_proj"),
    _family(
        "bert",
        "layer",
        "attention.output.dense",
        "output.dense",
        "attention.self",
        "attention.output.dense",
        causal=False,
    ),
)


class BlockAdapter:
    """Adapter for a HuggingFace-style model whose blocks form one ModuleList."""

    def __init__(
        self, model: nn.Module, spec: BlockFamily, layers_path: str, layers: nn.ModuleList
    ) -> None:
        self.model = model
        self.spec = spec
        self.family = spec.family
        self.layers_path = layers_path
        self._blocks = layers

    @property
    def n_layers(self) -> int:
        return len(self._blocks)

    @property
    def n_heads(self) -> int:
        config = getattr(self.model, "config", None)
        heads = getattr(config, "num_attention_heads", None)
        if heads is None:
            raise CaptureError(f"{type(self.model).__name__} has no config.num_attention_heads")
        return int(heads)

    @property
    def blocks(self) -> nn.ModuleList:
        return self._blocks

    def target(self, site: str, layer: int) -> Target:
        where = self.spec.sites[site]
        block = f"{self.layers_path}.{layer}"
        path = f"{block}.{where.path}" if where.path else block
        return Target(
            key=f"{site}.{layer}",
            path=path,
            io=where.io,
            select=where.select,
            seq_dim=where.seq_dim,
            site=site,
            layer=layer,
            group=site if site in ("pattern", "head_out") else "resid",
            heads=self.n_heads if where.heads else None,
        )

    def aliases(self) -> dict[str, str]:
        return {}

    def call(self, batch: Mapping[str, Any]) -> Any:
        """Run the model on a tokenizer-style batch (``input_ids``, ``attention_mask``, ...)."""
        return self.model(**batch)

    @contextlib.contextmanager
    def attention_weights(self) -> Iterator[str | None]:
        """Switch to eager attention for the block if the current kernel drops the weights."""
        config = getattr(self.model, "config", None)
        current = getattr(config, "_attn_implementation", None)
        setter = getattr(self.model, "set_attn_implementation", None)
        if current in (None, "eager") or setter is None:
            yield None
            return
        setter("eager")
        try:
            yield (
                f"attention ran with the 'eager' implementation during this capture "
                f"(the model's '{current}' kernel does not return attention weights); "
                f"'{current}' was restored afterwards"
            )
        finally:
            setter(current)


class BridgeAdapter:
    """Adapter for TransformerLens's ``TransformerBridge`` through its own hook points."""

    family = "transformer-lens"
    _HOOKS: ClassVar[dict[str, str]] = {
        "resid_pre": "blocks.{layer}.hook_resid_pre",
        "resid_post": "blocks.{layer}.hook_resid_post",
        "attn_out": "blocks.{layer}.hook_attn_out",
        "mlp_out": "blocks.{layer}.hook_mlp_out",
        "pattern": "blocks.{layer}.attn.hook_pattern",
        # [batch, pos, head, d_head], or flattened [batch, pos, head * d_head] by some
        # TransformerLens versions: capture splits a flat one into heads
        "head_out": "blocks.{layer}.attn.hook_z",
    }

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        paths = {id(m): name for name, m in model.named_modules()}
        hook_dict: dict[str, nn.Module] = dict(model.hook_dict)  # type: ignore[arg-type]
        self._aliases = {name: paths[id(m)] for name, m in hook_dict.items() if id(m) in paths}
        self._n = int(getattr(model.cfg, "n_layers"))  # noqa: B009

    @property
    def n_layers(self) -> int:
        return self._n

    @property
    def n_heads(self) -> int:
        return int(getattr(self.model.cfg, "n_heads"))  # noqa: B009

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.blocks  # type: ignore[return-value]

    def target(self, site: str, layer: int) -> Target:
        alias = self._HOOKS[site].format(layer=layer)
        if alias not in self._aliases:
            raise CaptureError(f"this TransformerBridge has no hook point {alias!r} for {site}")
        return Target(
            key=f"{site}.{layer}",
            path=self._aliases[alias],
            seq_dim=2 if site == "pattern" else 1,
            site=site,
            layer=layer,
            group=site if site in ("pattern", "head_out") else "resid",
            heads=self.n_heads if site == "head_out" else None,
        )

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def call(self, batch: Mapping[str, Any]) -> Any:
        """Run the bridge on a tokenizer-style batch: its forward takes the ids positionally."""
        mask = batch.get("attention_mask")
        return self.model(batch["input_ids"], attention_mask=mask)

    @contextlib.contextmanager
    def attention_weights(self) -> Iterator[str | None]:
        yield None  # the bridge computes patterns at its hook points itself


def _is_bridge(model: nn.Module) -> bool:
    return (
        type(model).__module__.startswith("transformer_lens")
        and hasattr(model, "hook_dict")
        and hasattr(model, "cfg")
    )


def call_model(model: nn.Module, batch: Mapping[str, Any]) -> Any:
    """Return ``model``'s output on a tokenizer-style batch, called the way its family expects."""
    adapter = adapter_for(model)
    return adapter.call(batch) if adapter is not None else model(**batch)


def adapter_for(model: nn.Module) -> Adapter | None:
    """Return the adapter for ``model``'s architecture, or None for an unknown module."""
    if _is_bridge(model):
        return BridgeAdapter(model)
    lists = [
        (path, module)
        for path, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 0
    ]
    for spec in FAMILIES:
        found = spec.find_layers(lists)
        if found is not None:
            path, layers = found
            return BlockAdapter(model, spec, path, layers)
    return None
