"""nnsight models: recognise them, reach the torch module they wrap, capture through a trace.

An nnsight ``NNsight(module)`` or ``LanguageModel`` wraps a torch module in envoys. Sites resolve
on the wrapped module through the same adapters as any HuggingFace model; the capture then runs
inside nnsight's tracer: each target's output (or input) is requested in the order the model
produces it and ``.save()``d, so the same plan runs locally or, with ``remote=True``, on NDIF,
where only the saved tensors come back. The saved values go through the capture engine's own
storing step (heads, positions, dtype, storage device, memory guard), so a traced capture
builds the very cache a hooked one does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from .errors import CaptureError
from .options import resolve_positions
from .outputs import describe, select_tensor

if TYPE_CHECKING:
    from .adapters import Target
    from .cache import ActivationCache
    from .capturing import Capture


def is_nnsight(model: Any) -> bool:
    """Return whether ``model`` is an nnsight model (``NNsight``, ``LanguageModel``, ...)."""
    return any(cls.__module__.startswith("nnsight.") for cls in type(model).__mro__)


def unwrap(model: Any) -> Any:
    """Return the torch module an nnsight model wraps (``model`` itself for anything else).

    A ``LanguageModel`` made from a repository id holds meta weights until dispatched; locally
    it is dispatched here, as its first trace would.
    """
    if not is_nnsight(model):
        return model
    module = getattr(model, "_module", None)
    if not isinstance(module, nn.Module):
        raise CaptureError(f"{type(model).__name__} wraps no torch module that can be reached")
    dispatch = getattr(model, "dispatch", None)
    if getattr(model, "dispatched", True) is False and callable(dispatch):
        dispatch()
        module = model._module
    return module


def skeleton(model: Any, remote: bool) -> nn.Module:
    """Return the module whose structure a trace of ``model`` follows: for a remote model its
    local copy with weights left on meta (the weights live on the server), else :func:`unwrap`."""
    if not remote:
        return unwrap(model)  # type: ignore[no-any-return]
    module = getattr(model, "_module", None)
    if not isinstance(module, nn.Module):
        raise CaptureError(f"{type(model).__name__} wraps no torch module that can be reached")
    return module


def envoy(model: Any, path: str) -> Any:
    """Return the envoy of ``model`` at the module path ``path`` (``transformer.h.1.attn``)."""
    node = model
    for part in path.split("."):
        try:
            node = node[int(part)] if part.isdigit() else getattr(node, part)
        except (AttributeError, IndexError, KeyError, TypeError):
            raise CaptureError(f"{type(model).__name__} has no module at {path!r}") from None
    return node


def execution_order(module: nn.Module, targets: list[Target]) -> list[Target]:
    """Return ``targets`` in the order a forward produces them (nnsight requires it).

    Inputs come when a module starts and outputs when it ends; modules run in the order they
    are defined, children inside their parent, which holds for the blocks and sites of every
    family the adapters know.
    """
    rank: dict[tuple[str, str], int] = {}
    for i, (name, io) in enumerate(_events(module, "")):
        rank[(name, io)] = i
    missing = [t for t in targets if (t.path, t.io) not in rank]
    if missing:
        raise CaptureError(f"no module at {missing[0].path!r} to capture")
    return sorted(targets, key=lambda t: rank[(t.path, t.io)])


def _events(module: nn.Module, name: str) -> Iterator[tuple[str, str]]:
    yield name, "input"
    for child, sub in module.named_children():
        yield from _events(sub, f"{name}.{child}" if name else child)
    yield name, "output"


class Derived(Protocol):
    """Targets a trace cannot save as they are, computed here from other saved values."""

    targets: list[Target]  # what is computed (e.g. attention patterns)
    inputs: list[Target]  # what the trace saves for it, whole (no position selection)

    def compute(self, saved: list[Any], batch: Mapping[str, Any]) -> list[torch.Tensor]:
        """Return each of ``targets``' tensors from the saved ``inputs`` values, in order."""
        ...


def run_traced(
    cap: Capture, inputs: Any, *, remote: bool = False, derived: Derived | None = None
) -> ActivationCache:
    """Return the cache of ``cap``'s targets from one nnsight trace of ``inputs``.

    The memory guard projects what the trace sends back from the input's shape and refuses
    before the trace starts (before a remote job is queued). ``derived`` computes targets the
    trace cannot save directly (attention patterns) from values it saves.
    """
    model = cap.traced
    batch = _as_batch(inputs)
    ids = batch.get("input_ids")
    cap._reset()
    if isinstance(ids, torch.Tensor) and ids.ndim == 2:
        cap._project(int(ids.shape[0]), int(ids.shape[1]))
        cap.cache.input_ids = ids.detach().to("cpu", copy=True)
    mask = batch.get("attention_mask")
    if isinstance(mask, torch.Tensor):
        cap.cache.attention_mask = mask.detach().to("cpu", copy=True)
    later = [] if derived is None else derived.targets
    direct = [t for t in cap.targets if t not in later]
    if any(t.site == "pattern" for t in direct):
        raise CaptureError(
            "attention patterns of this model are not captured through a trace: capture the "
            "attention module's output with select=1 from a model loaded with "
            "attn_implementation='eager', or run the model locally with capture()"
        )
    extra = [] if derived is None else derived.inputs
    ordered = execution_order(cap.model, [*direct, *extra])
    kept = None
    if cap.positions is not None and isinstance(ids, torch.Tensor):
        # Positions are selected inside the trace: a remote server sends back only those.
        kept = list(resolve_positions(cap.positions, int(ids.shape[-1])))
    plan = [
        Step(
            envoy(model, t.path),
            t.io,
            t.select if isinstance(t.select, int) else None,
            t.seq_dim,
            None if t in extra else kept,
            whole=t in extra,
            keyword=t.select if t in extra and isinstance(t.select, str) else None,
        )
        for t in ordered
    ]
    saved = _trace(model, batch, plan, remote)
    values = dict(zip([(t.key, t in extra) for t in ordered], saved, strict=True))
    pairs: list[tuple[Target, Any]] = [(t, values[(t.key, False)]) for t in direct]
    if derived is not None:
        computed = derived.compute([values[(t.key, True)] for t in extra], batch)
        for target, tensor in zip(later, computed, strict=True):
            if kept is not None:  # query positions, as a hooked capture keeps them
                dim = target.seq_dim if target.seq_dim is not None else 1
                tensor = tensor.index_select(dim, torch.tensor(kept, device=tensor.device))
            pairs.append((target, tensor))
    _store_saved(cap, pairs, kept)
    return cap.cache


def _store_saved(cap: Capture, pairs: list[tuple[Target, Any]], kept: list[int] | None) -> None:
    """Store each target's saved value through the capture engine (positions already kept)."""
    positions, cap.positions = cap.positions, None  # already selected
    cap._active = True
    try:
        if kept is not None:
            cap.cache.positions = tuple(kept)
        for target, value in pairs:
            tensor = value if isinstance(value, torch.Tensor) else None
            if tensor is None:
                tensor = select_tensor(value, target.select, where=target.path)
            if tensor is None:
                raise CaptureError(f"{target.path} gave {describe(value)}, which holds no tensor")
            if kept is not None and target.seq_dim is None and tensor.ndim < 3:
                raise CaptureError(
                    f"positions need a sequence dimension, but {target.path} gave a tensor of "
                    f"shape {tuple(tensor.shape)}; capture it without positions"
                )
            cap._store(target, tensor.detach())
    except BaseException:
        cap.cache._clear()
        raise
    finally:
        cap._active = False
        cap.positions = positions
    cap._finish()


@dataclass(frozen=True)
class Step:
    """One value a trace saves: the ``io`` of ``node``, element ``index`` of a tuple output,
    and (when ``positions``) only those positions along ``seq_dim``."""

    node: Any
    io: str
    index: int | None
    seq_dim: int | None  # None: dim 1 of a tensor with 3 or more dims, as the hooked path
    positions: list[int] | None
    whole: bool = False  # save the output as it is (a tuple stays a tuple)
    keyword: str | None = None  # with io "input": save this keyword argument of the call


def _trace(model: Any, batch: dict[str, Any], plan: list[Step], remote: bool) -> list[Any]:
    """Return the value each step of ``plan`` saves, from one trace of ``batch``."""
    kwargs = {"remote": True} if remote else {}
    saved: list[Any] = []
    with model.trace(**batch, **kwargs):
        # Plain Python and torch over envoys: runs in-process, or as it is on a remote server.
        for step in plan:
            if step.keyword is not None:
                saved.append(step.node.inputs[1][step.keyword].save())
                continue
            value = step.node.output if step.io == "output" else step.node.input
            if step.whole:
                saved.append(value.save())
                continue
            if step.index is not None:
                value = value[step.index]
            elif isinstance(value, tuple):
                value = value[0]
            dim = step.seq_dim if step.seq_dim is not None else (1 if value.ndim >= 3 else None)
            if step.positions is not None and dim is not None and dim < value.ndim:
                where = torch.tensor(step.positions, device=value.device)
                value = value.index_select(dim, where)
            saved.append(value.save())
    return [getattr(v, "value", v) for v in saved]


def _as_batch(inputs: Any) -> dict[str, Any]:
    """Return model inputs as a dict of tensors (token ids alone become ``input_ids``)."""
    if isinstance(inputs, torch.Tensor):
        return {"input_ids": inputs}
    if isinstance(inputs, Mapping):
        return dict(inputs)
    raise CaptureError(
        f"trace inputs must be token ids or a tokenizer's output, got {type(inputs).__name__}"
    )
