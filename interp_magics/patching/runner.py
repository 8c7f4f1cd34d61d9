"""Running a model from a given layer, with activations patched in, scored by a metric.

This is what makes patching sweeps fast without changing the model's own code path:

- blocks before the start layer are skipped (their ``forward`` temporarily returns its input)
  and the start block's input is replaced by a cached residual stream, so a cell patched at
  layer ``L`` never recomputes layers ``0..L-1``;
- many patched copies are stacked along the batch dimension and run at once;
- the unembedding is computed only at the position each example is scored at, and only for
  the vocabulary rows the metric reads, and so is most of the last block (:mod:`.last_block`);
- on a CPU, stacks are kept small enough to stay in the cache (:meth:`Runner.stack_tokens`) and
  GPT-2's GELU runs with fewer allocations, with the same bits (:mod:`..core.activations`).

Everything installed (hooks, the temporary ``forward`` overrides) is owned by a
:class:`~interp_magics.core.hooks.HookSet` and removed in ``finally``, also on KeyboardInterrupt.
The module is a little over 400 lines because every one of these shares the one run's hook set,
its rows and its positions; the parts with their own logic live in the modules named above.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core.activations import lean_activations, lean_modules
from ..core.adapters import Adapter, adapter_for
from ..core.anatomy import Anatomy, anatomy
from ..core.errors import CaptureError
from ..core.hooks import ForwardOverride, HookSet
from ..core.modules import find_module
from ..core.outputs import select_tensor
from ..core.placement import input_device, placement
from .last_block import restrict_last_block
from .metrics import Metric

Batch = dict[str, torch.Tensor]
#: A hook to install for one run: ``(module, "forward" | "forward_pre", fn)``.
Hook = tuple[nn.Module, str, Any]

#: Sites a patching sweep can patch.
PATCH_SITES = ("resid_pre", "resid_post", "attn_out", "mlp_out", "head_out")

#: On a CPU, the most bytes a stacked forward's widest activation (the MLP's hidden layer) may
#: take. Past a few MiB, each element-wise pass over an activation misses the cache, and
#: buffers that large come back from the system as fresh pages each time they are allocated:
#: on the 6-layer GPT-2 of the benchmarks, stacked path patching took 1.25x as long with
#: 8,192 tokens per forward, and 1.04x / 1.05x / 1.11x as long at 4 / 16 / 32 MiB, as at this
#: cap. Accelerators keep the caller's whole budget.
CPU_STACK_BYTES = 8 << 20


@dataclass
class Patch:
    """Replacement values for some rows of a stacked batch at one site of one layer.

    Row ``rows[i]`` gets ``values[i]`` at position ``positions[i]`` (every position when
    ``positions`` is None) and, for ``head_out``, in head ``heads[i]``.
    """

    site: str
    layer: int
    rows: torch.Tensor
    values: torch.Tensor
    positions: torch.Tensor | None = None
    heads: torch.Tensor | None = None

    def apply(self, x: torch.Tensor, n_heads: int | None = None) -> torch.Tensor:
        """Return a copy of ``x`` ``[rows, pos, ...]`` with the patch written in.

        Indices and values move to ``x``'s device: on a dispatched model each block runs on
        its own device, which need not be where the sweep keeps its tensors.
        """
        out = x.clone()
        target = out
        device = x.device
        rows = self.rows.to(device)
        values = self.values.to(device=device, dtype=target.dtype)
        positions = None if self.positions is None else self.positions.to(device)
        if self.heads is not None:
            heads = self.heads.to(device)
            if target.ndim == 3:  # [N, T, H*dh] -> a view [N, T, H, dh]
                assert n_heads is not None
                target = target.view(target.shape[0], target.shape[1], n_heads, -1)
            if positions is None:
                target[rows, :, heads] = values
            else:
                target[rows, positions, heads] = values
        elif positions is None:
            target[rows] = values
        else:
            target[rows, positions] = values
        return out


class Runner:
    """Runs ``model`` (a HuggingFace-style model with an adapter) for patching and ablation."""

    def __init__(self, model: nn.Module, metric: Metric, *, weights_here: bool = True) -> None:
        adapter = adapter_for(model)
        if adapter is None or not hasattr(adapter, "spec"):
            raise CaptureError(
                f"patching needs a model whose blocks interp-magics knows (GPT-2, GPT-NeoX/Pythia, "
                f"Llama-family, BERT-family HuggingFace models); {type(model).__name__} is not one"
            )
        if weights_here:
            placement(model)  # weights left on the meta device: say so before any forward
        self.model = model
        self.adapter: Adapter = adapter
        self.metric = metric
        self.device = input_device(model)
        get_out = getattr(model, "get_output_embeddings", None)
        self.unembed: nn.Module | None = get_out() if callable(get_out) else None
        self.block_output_len: int | None = None  # learned from a real run: tensor or tuple
        self.clean_logprobs: torch.Tensor | None = None
        self.cache_kwarg = self.cache_keyword()
        self.last_cache: Any = None
        self._on_cpu: bool | None = None
        self._lean: list[tuple[nn.Module, Any]] | None = None
        self._prefix_memo: tuple[Any, int, torch.Tensor, dict[int, Any]] | None = None
        self._anatomy: Anatomy | bool | None = False  # False: not looked up yet
        #: the last block's query projection split into query and other columns, per module
        self.split_cache: dict[int, Any] = {}

    def cache_keyword(self) -> str | None:
        """Return the keyword that passes a KV cache to the model, if prefix reuse is safe."""
        spec = getattr(self.adapter, "spec", None)
        if not getattr(spec, "causal", False) or self.metric.reads_all_logits:
            return None  # a function of all logits must see every position
        config = getattr(self.model, "config", None)
        if getattr(config, "sliding_window", None) or getattr(config, "layer_types", None):
            return None  # windowed or mixed attention layers need their own cache layouts
        params = inspect.signature(self.model.forward).parameters
        for name in ("cache", "past_key_values"):
            if name in params:
                return name
        return None

    # -- structure ------------------------------------------------------------------------
    def stack_tokens(self, budget: int) -> int:
        """Return how many tokens one stacked forward should hold: ``budget``, or fewer on a
        CPU, where a forward whose widest activation outgrows the cache runs slower per token
        (:data:`CPU_STACK_BYTES`)."""
        if self._on_cpu is None:
            self._on_cpu = all(d.type == "cpu" for d in placement(self.model).devices)
        if not self._on_cpu:
            return budget
        block = self.adapter.blocks[0]
        width = max((max(p.shape) for p in block.parameters() if p.ndim == 2), default=1)
        dtype = next(block.parameters()).dtype
        itemsize = torch.empty((), dtype=dtype).element_size()
        return max(1, min(budget, CPU_STACK_BYTES // (width * itemsize)))

    @property
    def anatomy(self) -> Anatomy | None:
        """Return the model's anatomy (norms, projections), or None for a family without one."""
        if self._anatomy is False:
            try:
                self._anatomy = anatomy(self.model)
            except CaptureError:
                self._anatomy = None
        return self._anatomy if isinstance(self._anatomy, Anatomy) else None

    @property
    def n_layers(self) -> int:
        return self.adapter.n_layers

    @property
    def n_heads(self) -> int:
        return self.adapter.n_heads

    def module(self, site: str, layer: int) -> tuple[nn.Module, str, Any]:
        """Return ``(module, io, select)`` where ``site`` lives at ``layer``."""
        target = self.adapter.target(site, layer)
        return find_module(self.model, target.path), target.io, target.select

    def embedding(self) -> nn.Module:
        """Return the token embedding module (where Gaussian-noise corruption is added)."""
        get_in = getattr(self.model, "get_input_embeddings", None)
        module = get_in() if callable(get_in) else None
        if not isinstance(module, nn.Module):
            raise CaptureError(f"{type(self.model).__name__} has no input embedding module")
        return module

    # -- running ----------------------------------------------------------------------------
    def run(
        self,
        batch: Batch,
        examples: torch.Tensor,
        *,
        start: int = 0,
        resid: torch.Tensor | None = None,
        patch: Patch | None = None,
        extra_hooks: list[Hook] | None = None,
        prefix: int = 0,
        cache: Any = None,
        keep_cache: bool = False,
        scored_only: bool = True,
    ) -> torch.Tensor:
        """Return the metric inputs for each row: logits at the scored position (``[N, V']``).

        Rows are copies of the examples ``examples`` of ``batch``. With ``resid`` the run starts
        at block ``start`` from that residual stream (``[N, T, d]``); ``patch`` is written in
        at its site; ``extra_hooks`` are ``(module, "forward"|"forward_pre", fn)`` to install.
        With ``prefix`` > 0 (causal models), the first ``prefix`` positions are taken from
        ``cache`` (the unpatched run's keys and values) and only the rest is computed: ``resid``
        and the patch's positions then cover positions ``prefix..T-1``. ``keep_cache`` keeps
        this run's cache in ``last_cache``. ``scored_only`` computes the last block's MLP,
        output projection and queries at the scored positions only (its output elsewhere reads
        0, see :mod:`.last_block`): runs whose activations are recorded pass False.
        """
        rows = {k: v[examples] for k, v in batch.items()}
        if prefix:
            rows = {k: v if k == "attention_mask" else v[:, prefix:] for k, v in rows.items()}
            assert self.cache_kwarg is not None
            rows[self.cache_kwarg] = self._prefix_cache(cache, examples, prefix, start)
        if keep_cache and self.cache_kwarg is not None:
            rows["use_cache"] = True  # type: ignore[assignment]
        hooks = HookSet("patching")
        try:
            if resid is not None:
                self._skip_to(hooks, start, resid)
            if patch is not None:
                self._install_patch(hooks, patch)
            for module, kind, fn in extra_hooks or []:
                if kind == "forward_pre":
                    hooks.add(module.register_forward_pre_hook(fn, with_kwargs=True), "", kind)
                else:
                    hooks.add(module.register_forward_hook(fn), "", kind)
            self._restrict_unembed(hooks, examples, prefix)
            self._lean_activations(hooks)
            if scored_only:
                self._restrict_last_block(hooks, examples, prefix)
            out = self.adapter.call(rows)
        finally:
            hooks.remove_all()
        if keep_cache:
            # Newer transformers name the field `cache` and warn on reading `past_key_values`.
            fields = list(out.keys()) if hasattr(out, "keys") else []
            name = "cache" if "cache" in fields else "past_key_values"
            self.last_cache = getattr(out, name, None)
        return self._logits(out)

    def _prefix_cache(self, cache: Any, examples: torch.Tensor, prefix: int, start: int) -> Any:
        """Return a KV cache holding positions ``0..prefix-1`` of ``examples`` of the base run.

        The rows gathered for one ``(cache, examples, prefix)`` are kept for the next call: a
        sweep's stacked runs mostly repeat them, and a forward only appends to its own cache
        (a new tensor per layer), never writing into these.
        """
        from transformers import DynamicCache

        memo = self._prefix_memo
        if (
            memo is None
            or memo[0] is not cache
            or memo[1] != prefix
            or not torch.equal(memo[2], examples)
        ):
            memo = (cache, prefix, examples.clone(), {})
            self._prefix_memo = memo
        gathered: dict[int, tuple[torch.Tensor, torch.Tensor]] = memo[3]
        ex = examples.to(self.device)
        out = DynamicCache()
        first: tuple[torch.Tensor, torch.Tensor] | None = None
        for i, layer in enumerate(cache.layers):
            if first is not None and i < start:
                # Layers before the start are skipped and never read their cache entry.
                out.update(*first, i)
                continue
            kv = gathered.get(i)
            if kv is None:
                at = ex.to(layer.keys.device)  # each layer's cache lives on its block's device
                kv = (layer.keys[:, :, :prefix][at], layer.values[:, :, :prefix][at])
                gathered[i] = kv
            first = first or kv
            out.update(*kv, i)
        return out

    def _skip_to(self, hooks: HookSet, start: int, resid: torch.Tensor) -> None:
        blocks = self.adapter.blocks

        def identity(*args: Any, **kwargs: Any) -> Any:
            hidden = args[0] if args else kwargs["hidden_states"]
            if self.block_output_len is None:
                return hidden
            return (hidden,) + (None,) * (self.block_output_len - 1)

        for block in list(blocks)[:start]:
            hooks.add(ForwardOverride(block, identity), "", "forward_override")

        def inject(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if args:
                return (resid, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": resid}

        hooks.add(
            blocks[start].register_forward_pre_hook(inject, with_kwargs=True), "", "forward_pre"
        )

    def _install_patch(self, hooks: HookSet, patch: Patch) -> None:
        if patch.site == "resid_pre":
            return  # written into the injected residual stream by the caller
        if patch.site == "resid_post":
            module, io, select = self.adapter.blocks[patch.layer], "output", None
        else:
            module, io, select = self.module(patch.site, patch.layer)
        n_heads = self.n_heads if patch.heads is not None else None
        if io == "input":

            def pre(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                if args:
                    return (patch.apply(args[0], n_heads), *args[1:]), kwargs
                return args, {
                    **kwargs,
                    "hidden_states": patch.apply(kwargs["hidden_states"], n_heads),
                }

            hooks.add(module.register_forward_pre_hook(pre, with_kwargs=True), "", "forward_pre")
            return

        index = select if isinstance(select, int) else 0

        def post(mod: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            if isinstance(output, torch.Tensor):
                return patch.apply(output, n_heads)
            if isinstance(output, tuple):
                return (*output[:index], patch.apply(output[index], n_heads), *output[index + 1 :])
            raise CaptureError(f"cannot patch the {type(output).__name__} output of {patch.site}")

        hooks.add(module.register_forward_hook(post), "", "forward")

    def _restrict_unembed(self, hooks: HookSet, examples: torch.Tensor, prefix: int = 0) -> None:
        metric = self.metric
        if metric.reads_all_logits or self.unembed is None:
            return
        if metric.positions_ is None:
            raise CaptureError("the metric's positions are not resolved")
        weight = getattr(self.unembed, "weight", None)
        if not isinstance(weight, torch.Tensor):
            return
        rows = metric.rows()
        positions = metric.positions_.to(self.device)[examples.to(self.device)] - prefix
        index = torch.arange(len(examples), device=self.device)
        module = self.unembed
        offloaded = weight.device.type == "meta"  # accelerate loads it for each forward

        def slice_weights() -> tuple[torch.Tensor, torch.Tensor | None]:
            w = module.weight
            bias = getattr(module, "bias", None)
            assert isinstance(w, torch.Tensor)
            if rows is not None:
                w = w[rows.to(w.device)]
                bias = None if bias is None else bias[rows.to(bias.device)]
            return w, bias

        sliced = None if offloaded else slice_weights()

        def unembed(hidden: torch.Tensor) -> torch.Tensor:
            # Only the scored position of each row, only the vocabulary rows the metric reads.
            picked = hidden[index.to(hidden.device), positions.to(hidden.device)]
            if sliced is None:
                from accelerate.utils import align_module_device

                with align_module_device(module):  # loads the offloaded weights, then drops them
                    w, b = slice_weights()
                    logits = picked.to(w.device) @ w.T
                    return (logits if b is None else logits + b).unsqueeze(1)
            w, b = sliced
            logits = picked.to(w.device) @ w.T
            if b is not None:
                logits = logits + b
            return logits.unsqueeze(1)

        hooks.add(ForwardOverride(self.unembed, unembed), "", "forward_override")

    def _restrict_last_block(self, hooks: HookSet, examples: torch.Tensor, prefix: int) -> None:
        restrict_last_block(self, hooks, examples, prefix)

    def _lean_activations(self, hooks: HookSet) -> None:
        # the same activation values with fewer allocations (see core.activations)
        if self._lean is None:
            self._lean = lean_modules(self.model)
        lean_activations(hooks, self._lean)

    def _logits(self, out: Any) -> torch.Tensor:
        logits = getattr(out, "logits", None)
        if logits is None:
            logits = select_tensor(out, None, where=type(self.model).__name__)
        if logits is None:
            raise CaptureError(f"{type(self.model).__name__} returned no tensor to score")
        if self.metric.reads_all_logits or self.unembed is None:
            return logits
        return logits[:, 0]

    def score(self, logits: torch.Tensor, examples: torch.Tensor) -> torch.Tensor:
        """Return the metric per row for metric inputs from :meth:`run`."""
        return (
            self.metric.score(logits, examples.to(logits.device), self.clean_logprobs).float().cpu()
        )

    # -- learning the block convention ------------------------------------------------------
    @contextlib.contextmanager
    def probe_blocks(self) -> Iterator[None]:
        """While active, learn whether blocks return a tensor or a tuple (for skipping)."""
        hooks = HookSet("patching")

        def probe(mod: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            self.block_output_len = len(output) if isinstance(output, tuple) else None

        hooks.add(self.adapter.blocks[0].register_forward_hook(probe), "", "forward")
        try:
            yield
        finally:
            hooks.remove_all()


def to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> Batch:
    """Return ``batch`` with every tensor on ``device``."""
    return {k: v.to(device) for k, v in batch.items()}
