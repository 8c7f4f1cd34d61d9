"""Activation capture: the ``capture`` context manager and its engine.

``with capture(model, ["transformer.h.*.mlp"]) as acts: model(**batch)`` hooks only the
matched modules, stores detached copies of what they produce, and removes every hook it added
when the block ends, whether it ends normally, by an exception, or by a KeyboardInterrupt.

The module is past 400 lines because hooking, storing and the memory guard share one lock and
one set of counters (bytes stored, tensors seen, the projection made at the first call).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import threading
import warnings
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import torch
from torch import nn

from . import events
from .adapters import Target
from .cache import ActivationCache, EntryInfo
from .errors import CaptureError, NothingCapturedWarning
from .hooks import HookSet
from .memory import (
    available_bytes,
    budget_error,
    default_budget,
    eager_attention_bytes,
    model_dims,
    site_bytes,
)
from .modules import find_module
from .options import (
    Positions,
    parse_device,
    parse_dtype,
    parse_positions,
    resolve_positions,
)
from .outputs import Selector, describe, select_input, select_tensor
from .placement import input_device, placement
from .records import CaptureRecord
from .targets import resolve_targets
from .traced import is_nnsight, unwrap
from .units import format_bytes, parse_bytes


class Capture:
    """A context manager that records activations of ``model`` into an ActivationCache.

    All arguments are validated and all patterns resolved when it is created, so bad input
    fails before any hook is installed or any forward pass starts.

    Args:
        model: any ``torch.nn.Module``, a model dispatched by accelerate, or an nnsight model
            (``NNsight``, ``LanguageModel``: as a context manager its wrapped module is hooked
            locally; :meth:`run` captures through a trace, also with ``remote=True``).
        modules: one pattern or a list: globs over ``named_modules()`` paths
            (``"transformer.h.*.mlp"``, ``"encoder.layer.{0-3}.output"``) or canonical sites
            (``"resid_post"``, ``"pattern.3"``); see :mod:`interp_magics.core.sites`.
        dtype: store floating tensors in this dtype (``"float16"`` halves memory).
        device: where stored tensors live (default CPU; copies from a GPU are non-blocking and
            synchronised when the block ends).
        positions: keep only these sequence positions (dim 1; query positions for
            ``pattern``), selected before any copy: an int, a slice, a list, or ``"0:10"``.
        max_bytes: refuse (before allocating) a capture estimated to exceed this many bytes
            (int or ``"2GiB"``); default half of the free memory of ``device``. Canonical
            sites are projected from their shapes when the model is called, before its
            forward pass runs; the estimate includes the working memory of the 'eager'
            attention kernel when capturing ``pattern`` switches the model to it.
        inputs: also store each glob-matched module's input, under ``name:input``.
        grad: also store the gradient of each captured tensor under ``name:grad``; call
            ``.backward()`` inside the block.
        select: which element of a tuple/dict/dataclass output to store (int, key, or
            callable); see :mod:`interp_magics.core.outputs` for the default rule.

    Example::

        with capture(model, ["encoder.layer.*.output"]) as acts:
            model(**batch)
        acts.stack("encoder.layer.*.output").shape  # [layers, batch, pos, d_model]
    """

    def __init__(
        self,
        model: nn.Module,
        modules: str | Sequence[str],
        *,
        dtype: str | torch.dtype | None = None,
        device: str | torch.device | None = "cpu",
        positions: Positions | str | None = None,
        max_bytes: int | str | None = None,
        inputs: bool = False,
        grad: bool = False,
        select: Selector | None = None,
    ) -> None:
        self.traced = model if is_nnsight(model) else None
        model = unwrap(model)
        self.dtype = parse_dtype(dtype)
        self.device = parse_device(device)
        self.positions = parse_positions(positions)
        budget = parse_bytes(max_bytes)
        self.targets, self.adapter = resolve_targets(model, modules, select=select, inputs=inputs)
        self._placement = placement(model)  # refuses weights left on the meta device
        self.model = model
        self._dims = model_dims(model)
        self.patterns = [modules] if isinstance(modules, str) else list(modules)
        self.grad = bool(grad)
        self._budget_arg = budget
        self._lock = threading.Lock()
        self._active = False
        self.cache = self._new_cache()

    def _new_cache(self) -> ActivationCache:
        family = self.adapter.family if self.adapter is not None else None
        return ActivationCache(model_name=type(self.model).__name__, adapter=family)

    # -- context manager --------------------------------------------------------------------
    def __enter__(self) -> ActivationCache:
        if self._active:
            raise CaptureError("this capture is already active; create a new one with capture()")
        self._reset()
        self._active = True
        self._attn_context = self._attention_context()
        try:
            note = self._attn_context.__enter__()
            if note:
                self.cache.notes.append(note)
                self._eager_switched = True
            self._install()
        except BaseException:
            self._teardown(*sys.exc_info())
            raise
        return self.cache

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._teardown(exc_type, exc, tb)
        if exc_type is None:
            self._finish()

    def run(self, inputs: Any, *, remote: bool = False) -> ActivationCache:
        """Return the cache of one forward over ``inputs`` (token ids or a tokenizer's output).

        For an nnsight model the forward is one trace, run on NDIF when ``remote`` (with the
        user's NDIF key configured in nnsight); otherwise the model is called inside this
        capture, without gradients unless ``grad``.
        """
        if self.traced is not None:
            from .traced import run_traced

            derived = None
            if any(t.site == "pattern" for t in self.targets):
                from .traced_patterns import pattern_route

                derived = pattern_route(self.model, self.targets)
            return run_traced(self, inputs, remote=remote, derived=derived)
        if remote:
            raise CaptureError(
                "remote=True needs an nnsight model (nnsight.LanguageModel or NNsight(module)); "
                f"{type(self.model).__name__} runs here"
            )
        from .traced import _as_batch

        batch = _as_batch(inputs)
        with torch.set_grad_enabled(self.grad), self as cache:
            self.model(**batch)
        return cache

    # -- setup and teardown -----------------------------------------------------------------
    def _reset(self) -> None:
        # Each use gets its own cache, so results of an earlier use stay intact.
        self.cache = self._new_cache()
        self._hooks = HookSet("capture")
        self._allocated = 0
        self._calls: dict[str, int] = {}
        self._group_bytes: dict[str, int] = {}
        self._fired: set[str] = set()
        self._resolved: dict[int, tuple[int, ...]] = {}
        self._grads_expected = 0
        self._grads_seen = 0
        self._no_grad_keys: list[str] = []
        self._root_calls = 0
        self._cuda_sources: set[torch.device] = set()
        self._budget: int | None = self._budget_arg
        self._budget_reason = f"max_bytes={format_bytes(self._budget_arg or 0)}"
        self._projection: dict[str, int] = {}  # bytes per target key, from the first call
        self._seq_len: int | None = None
        self._eager_switched = False

    def _attention_context(self) -> Any:
        wants_pattern = any(t.site == "pattern" for t in self.targets)
        if wants_pattern and self.adapter is not None:
            return self.adapter.attention_weights()
        return contextlib.nullcontext(None)

    def _install(self) -> None:
        by_module: dict[tuple[str, str], list[Target]] = {}
        for target in self.targets:
            by_module.setdefault((target.path, target.io), []).append(target)
        root = self.model.register_forward_pre_hook(self._on_root_call, with_kwargs=True)
        self._hooks.add(root, "", "forward_pre")
        for (path, io), group in by_module.items():
            module = find_module(self.model, path)
            if io == "input":
                handle = module.register_forward_pre_hook(self._input_hook(group), with_kwargs=True)
                self._hooks.add(handle, path, "forward_pre")
            else:
                handle = module.register_forward_hook(self._output_hook(group))
                self._hooks.add(handle, path, "forward")

    def _teardown(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._hooks.remove_all()
        finally:
            self._active = False
            try:
                self._attn_context.__exit__(exc_type, exc, tb)
            finally:
                for device in self._cuda_sources:
                    torch.cuda.synchronize(device)
                if exc_type is not None:
                    # A failed capture holds no partial results: they would be misleading,
                    # and freeing them is what keeps a refused capture from costing memory.
                    self.cache._clear()

    def _finish(self) -> None:
        if not self._fired:
            ran = self._root_calls > 0
            message = (
                f"nothing captured: {type(self.model).__name__} ran, but none of the "
                f"{len(self.targets)} matched modules did"
                if ran
                else "nothing captured: the model was never called inside the capture; "
                "call it in the block (or the cell body) to record activations"
            )
            warnings.warn_explicit(message, NothingCapturedWarning, "interp_magics", 0)
        if self.grad and self._grads_expected and not self._grads_seen:
            warnings.warn_explicit(
                "grad=True but no gradient arrived before the capture ended; call "
                ".backward() inside the capture block (or the cell body)",
                NothingCapturedWarning,
                "interp_magics",
                0,
            )
        if self._no_grad_keys:
            self.cache.notes.append(
                f"no gradients for {len(self._no_grad_keys)} tensors: they did not require "
                "grad (the forward ran under torch.no_grad() or inference_mode)"
            )
        events.emit(
            CaptureRecord(
                model=type(self.model).__name__,
                patterns=[str(p) for p in self.patterns],
                tensors=len(self.cache),
                bytes=self.cache.nbytes,
                dtype=str(self.dtype).removeprefix("torch.") if self.dtype else None,
                positions=list(self.cache.positions) if self.cache.positions is not None else None,
                grad=self.grad,
            )
        )

    # -- hooks ------------------------------------------------------------------------------
    def _on_root_call(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._root_calls += 1
        if self._root_calls > 1:
            return
        bound: dict[str, Any] = dict(kwargs)
        if len(args) > 1 and "attention_mask" not in kwargs:
            # Only a positional mask needs the (slow) signature to name the arguments.
            with contextlib.suppress(TypeError, ValueError):
                bound = inspect.signature(module.forward).bind_partial(*args, **kwargs).arguments
        elif args and "input_ids" not in kwargs:
            bound["input_ids"] = args[0]
        mask, ids = bound.get("attention_mask"), bound.get("input_ids")
        if isinstance(mask, torch.Tensor) and mask.ndim == 2:
            self.cache.attention_mask = mask.detach().to("cpu", copy=True)
        if isinstance(ids, torch.Tensor):
            self.cache.input_ids = ids.detach().to("cpu", copy=True)
        shaped = [t for t in (ids, mask, bound.get("inputs_embeds")) if isinstance(t, torch.Tensor)]
        if shaped and shaped[0].ndim >= 2:
            self._project(int(shaped[0].shape[0]), int(shaped[0].shape[1]))

    # -- the memory guard -------------------------------------------------------------------
    def _project(self, batch: int, seq: int) -> None:
        """Project every canonical site from its shape and refuse before the forward runs."""
        self._seq_len = seq
        if not any(t.site is not None for t in self.targets):
            return
        kept = len(resolve_positions(self.positions, seq)) if self.positions is not None else seq
        model_dtype = _model_dtype(self.model)
        itemsize = (self.dtype or model_dtype).itemsize
        for target in self.targets:
            size = site_bytes(
                target.site, batch=batch, seq=seq, kept=kept, dims=self._dims, itemsize=itemsize
            )
            if size is not None:
                self._projection[target.key] = size
        eager = 0
        if self._eager_switched and self._dims.n_heads:
            eager = eager_attention_bytes(
                batch=batch, seq=seq, heads=self._dims.n_heads, itemsize=model_dtype.itemsize
            )
        if self._budget is None:
            self._budget, self._budget_reason = self._default_budget()
        run_on = self._placement.devices or (input_device(self.model),)
        if eager and not any(_same_memory(d, self.device) for d in run_on):
            # The kernel's scores live beside each block, not where the capture stores tensors.
            for device in run_on:
                free = available_bytes(device)
                if eager > free:
                    raise self._refusal(
                        eager, free, f"free memory on {device}", eager, batch, seq, model_dtype
                    )
            eager = 0
        stored = sum(self._projection.values()) * (2 if self.grad else 1)
        if stored + eager > self._budget:
            raise self._refusal(
                stored + eager, self._budget, self._budget_reason, eager, batch, seq, model_dtype
            )

    def _refusal(
        self,
        estimate: int,
        budget: int,
        reason: str,
        eager: int,
        batch: int,
        seq: int,
        dtype: torch.dtype,
    ) -> BaseException:
        heads = self._dims.n_heads or 0
        return budget_error(
            estimate=estimate,
            budget=budget,
            budget_reason=reason,
            allocated=self._allocated,
            n_tensors=len(self.targets) * (2 if self.grad else 1),
            keys=[t.key for t in self.targets],
            seq_len=seq,
            dtype=self.dtype or dtype,
            positions_given=self.positions is not None,
            eager_bytes=eager,
            eager_shape=f"batch {batch} x {heads} heads x {seq} x {seq} tokens",
            before_run=True,
        )

    def _output_hook(self, group: list[Target]) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            for target in group:
                tensor = select_tensor(output, target.select, where=target.path)
                if tensor is None:
                    raise CaptureError(
                        f"{target.path} returned {describe(output)}, which holds no tensor; "
                        "pass select= (an index, a key, or a function) to say which to store"
                    )
                self._store(target, tensor)
                if self.grad:
                    self._watch_grad(target, tensor)

        return hook

    def _input_hook(self, group: list[Target]) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            tensor = select_input(args, kwargs)
            if tensor is None:
                raise CaptureError(f"{group[0].path} was called without a tensor input")
            for target in group:
                self._store(target, tensor)
                if self.grad:
                    self._watch_grad(target, tensor)

        return hook

    def _watch_grad(self, target: Target, tensor: torch.Tensor) -> None:
        if not tensor.requires_grad:
            self._no_grad_keys.append(target.key)
            return
        self._grads_expected += 1

        def on_grad(grad: torch.Tensor) -> None:
            self._grads_seen += 1
            self._store(target, grad, grad=True)

        handle = tensor.register_hook(on_grad)  # type: ignore[no-untyped-call]
        self._hooks.add(handle, target.path, "tensor_grad")

    # -- storing ----------------------------------------------------------------------------
    def _store(self, target: Target, tensor: torch.Tensor, *, grad: bool = False) -> None:
        split = tensor.ndim >= 4 and tensor.shape[-2] == target.heads  # already per head
        if target.heads is not None and tensor.ndim >= 1 and not split:
            tensor = tensor.unflatten(-1, (target.heads, -1))  # type: ignore[no-untyped-call]
        with self._lock:
            seq_dim, index = self._index_for(target, tensor)
            out_dtype = (
                self.dtype
                if self.dtype is not None and tensor.is_floating_point()
                else tensor.dtype
            )
            numel = tensor.numel()
            if index is not None and seq_dim is not None:
                numel = numel // tensor.shape[seq_dim] * len(index)
            nbytes = numel * out_dtype.itemsize
            self._check_budget(target, nbytes, tensor, seq_dim)
            copy = _materialize(tensor, seq_dim, index, self.device, out_dtype)
            if tensor.is_cuda and self.device.type == "cpu":
                self._cuda_sources.add(tensor.device)
            base = f"{target.key}:grad" if grad else target.key
            call = self._calls.get(base, 0)
            self._calls[base] = call + 1
            key = base if call == 0 else f"{base}#{call}"
            info = EntryInfo(
                target.path, "grad" if grad else target.io, target.site, target.layer, call
            )
            self.cache._put(key, copy, info)
            self._allocated += nbytes
            self._fired.add(target.key)

    def _index_for(
        self, target: Target, tensor: torch.Tensor
    ) -> tuple[int | None, tuple[int, ...] | None]:
        if self.positions is None:
            return None, None
        seq_dim = (
            target.seq_dim if target.seq_dim is not None else (1 if tensor.ndim >= 3 else None)
        )
        if seq_dim is None or seq_dim >= tensor.ndim:
            raise CaptureError(
                f"positions need a sequence dimension, but {target.path} gave a tensor of "
                f"shape {tuple(tensor.shape)}; capture it without positions"
            )
        length = int(tensor.shape[seq_dim])
        if length not in self._resolved:
            self._resolved[length] = resolve_positions(self.positions, length)
            if self.cache.positions is None:
                self.cache.positions = self._resolved[length]
        return seq_dim, self._resolved[length]

    def _default_budget(self) -> tuple[int, str]:
        """Return the default budget on the storage device, leaving room for offloaded weights.

        accelerate brings an offloaded block's weights onto its execution device for each
        forward; when that is where the capture stores, the largest such block is held back.
        """
        budget, reason = default_budget(self.device)
        load = self._placement.largest_load
        if load and any(_same_memory(d, self.device) for d in self._placement.devices):
            budget = max(0, budget - load)
            reason += f", less {format_bytes(load)} for the largest offloaded block's weights"
        return budget, reason

    def _check_budget(
        self, target: Target, nbytes: int, tensor: torch.Tensor, seq_dim: int | None
    ) -> None:
        if self._budget is None:
            # Read free memory when the first activation arrives, as close to use as possible.
            self._budget, self._budget_reason = self._default_budget()
        estimate = self._allocated + nbytes
        if target.group not in self._group_bytes:
            # First tensor of its kind: project the whole capture from what has been seen, so
            # an oversized capture is refused at its first layer, not its last.
            self._group_bytes[target.group] = nbytes
            largest = max(self._group_bytes.values())
            pending = [t for t in self.targets if t.key not in self._fired and t.key != target.key]
            per_grad = 2 if self.grad else 1
            # Each kind from its own size: seen, else projected from its shape, else the
            # largest seen (a glob over modules of unknown shape).
            estimate += (
                sum(
                    self._group_bytes.get(t.group, self._projection.get(t.key, largest))
                    for t in pending
                )
                * per_grad
            )
            if self.grad:
                estimate += nbytes
        if estimate > self._budget:
            dim = seq_dim if seq_dim is not None else (target.seq_dim or 1)
            seq_len = self._seq_len or (int(tensor.shape[dim]) if tensor.ndim > dim else None)
            raise budget_error(
                estimate=estimate,
                budget=self._budget,
                budget_reason=self._budget_reason,
                allocated=self._allocated,
                n_tensors=len(self.targets) * (2 if self.grad else 1),
                keys=[t.key for t in self.targets],
                seq_len=seq_len,
                dtype=self.dtype or tensor.dtype,
                positions_given=self.positions is not None,
            )


def _model_dtype(model: nn.Module) -> torch.dtype:
    """Return the dtype of ``model``'s first floating parameter (float32 if it has none)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _same_memory(a: torch.device, b: torch.device) -> bool:
    """Return True when tensors on ``a`` and ``b`` draw on the same memory."""
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device() if torch.cuda.is_available() else 0
    return (a.index if a.index is not None else current) == (
        b.index if b.index is not None else current
    )


def _materialize(
    tensor: torch.Tensor,
    seq_dim: int | None,
    index: tuple[int, ...] | None,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Return a detached copy of ``tensor`` (positions selected first) on ``device``/``dtype``."""
    t = tensor.detach()
    fresh = False
    if index is not None and seq_dim is not None:
        start = index[0]
        if index == tuple(range(start, start + len(index))):
            t = t.narrow(seq_dim, start, len(index))
        else:
            t = t.index_select(seq_dim, torch.tensor(index, device=t.device))
            fresh = True
    # A fresh index_select result can be moved without a second copy; anything else must be
    # copied so later in-place changes to the model's tensors never reach the cache.
    non_blocking = t.is_cuda and device.type == "cpu"
    return t.to(device=device, dtype=dtype, non_blocking=non_blocking, copy=not fresh)


#: ``capture(model, modules, ...)``: the public spelling, used like ``torch.no_grad()``.
capture = Capture
