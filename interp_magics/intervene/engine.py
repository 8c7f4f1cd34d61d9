"""Installing edits as hooks: :func:`intervene` and its context manager :class:`Intervention`.

Binding happens when the intervention is made: every edit's site resolves to hook targets
(:func:`~interp_magics.core.targets.resolve_targets`), and every check the model allows (sites,
heads, units, the width of vectors, cache keys) runs then, so a bad edit raises
:class:`~.errors.InterventionError` before any hook exists. On ``__enter__`` one forward
pre-hook on the model counts forwards and reads how many tokens each continues from its KV
cache (:mod:`.generation`), and one hook per hooked module applies that module's edits in
order: output targets rebuild the module's output with the edited element, input targets
(``head_out``: the input of the attention output projection) rebuild the call's arguments.
Hooks are owned by a :class:`~interp_magics.core.hooks.HookSet` and removed in ``finally``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch
from torch import nn

from ..core import events
from ..core.adapters import Target, call_model
from ..core.errors import CaptureError
from ..core.hooks import HookSet
from ..core.memory import model_dims
from ..core.modules import find_module
from ..core.outputs import select_tensor
from ..core.records import InterventionRecord
from ..core.targets import resolve_targets
from ..core.traced import is_nnsight, unwrap
from .edits import Edit, check_during
from .errors import InterventionError, NothingEditedWarning
from .generation import applies, past_length, phase
from .outputs import find_input, replace_input, replace_output
from .selection import edit_tensor, forward_positions, selection, source_part
from .sources import Source, prepare_source


@dataclass
class Bound:
    """One edit bound to one hook target of the model."""

    edit: Edit
    number: int  # the edit's index in the list (messages, counts)
    target: Target
    split: int | None  # split the last dimension into this many heads before selecting
    source: Source | None  # what a set-from-mapping or mean reads
    where: str  # "edit N (add resid_post.1 ...) at resid_post.1", for messages


class Intervention:
    """A context manager that runs the model with ``edits`` applied; see :func:`intervene`.

    Attributes:
        forwards: forwards of the model run inside the latest ``with`` block (each step of a
            ``generate`` is one).
        applied: per edit, how many hooked calls it edited.
    """

    def __init__(
        self,
        model: Any,
        edits: Sequence[Edit] | Edit,
        *,
        during: str = "all",
        record: bool = True,
    ) -> None:
        self.wrapped = model if is_nnsight(model) else None
        self.model: nn.Module = unwrap(model)
        if not isinstance(self.model, nn.Module):
            raise InterventionError(
                f"intervene needs a torch.nn.Module (or an nnsight model), not "
                f"{type(model).__name__}"
            )
        self.edits = _check_edits(edits)
        self.during = check_during(during, allow_none=False) or "all"
        self.record = bool(record)
        self.bound = _bind(self.model, self.edits)
        self.forwards = 0
        self.applied = [0] * len(self.edits)
        self._offset = 0
        self._active = False
        self._hooks: HookSet | None = None

    # -- context manager ------------------------------------------------------------------------
    def __enter__(self) -> Intervention:
        if self._active:
            raise InterventionError("this intervention is already active; make a new one")
        self.forwards = 0
        self.applied = [0] * len(self.edits)
        self._offset = 0
        hooks = HookSet("intervene")
        self._hooks = hooks
        self._active = True
        try:
            self._install(hooks)
        except BaseException:
            hooks.remove_all()
            self._active = False
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._hooks is not None:
                self._hooks.remove_all()
        finally:
            self._active = False
        if exc_type is None:
            self._warn_unused()
        if self.record and self.forwards:
            events.emit(intervention_record(self.edits))

    def run(self, inputs: Any, *, grad: bool = False) -> Any:
        """Return the model's output on ``inputs`` (token ids or a tokenizer's output) with the
        edits applied (without gradients unless ``grad``)."""
        batch = _as_batch(inputs)
        with torch.set_grad_enabled(grad), self:
            return call_model(self.model, batch)

    def __repr__(self) -> str:
        edits = "; ".join(e.describe() for e in self.edits) or "no edits"
        return f"Intervention on {type(self.model).__name__}: {edits} (during={self.during})"

    # -- hooks ----------------------------------------------------------------------------------
    def _install(self, hooks: HookSet) -> None:
        root = self.model.register_forward_pre_hook(self._on_root, with_kwargs=True)
        hooks.add(root, "", "forward_pre")
        groups: dict[tuple[str, str], list[Bound]] = {}
        for bound in self.bound:
            groups.setdefault((bound.target.path, bound.target.io), []).append(bound)
        for (path, io), group in groups.items():
            module = find_module(self.model, path)
            if io == "input":
                handle = module.register_forward_pre_hook(self._input_hook(group), with_kwargs=True)
                hooks.add(handle, path, "forward_pre")
            else:
                handle = module.register_forward_hook(self._output_hook(group))
                hooks.add(handle, path, "forward")

    def _on_root(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.forwards += 1
        self._offset = past_length(module, args, kwargs)

    def _output_hook(self, group: list[Bound]) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            first = group[0].target
            tensor = select_tensor(output, first.select, where=first.path)
            if tensor is None:
                raise InterventionError(f"{first.path} returned no tensor to edit")
            edited = self._apply(group, tensor)
            if edited is tensor:
                return None
            return replace_output(output, first.select, edited, where=first.path)

        return hook

    def _input_hook(self, group: list[Bound]) -> Any:
        def hook(
            module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
            where = find_input(args, kwargs)
            if where is None:
                raise InterventionError(f"{group[0].target.path} was called without a tensor input")
            tensor = args[where] if isinstance(where, int) else kwargs[where]
            edited = self._apply(group, tensor)
            if edited is tensor:
                return None
            return replace_input(args, kwargs, where, edited)

        return hook

    def _apply(self, group: list[Bound], tensor: torch.Tensor) -> torch.Tensor:
        current = phase(self._offset)
        for bound in group:
            edit, target = bound.edit, bound.target
            if not applies(edit.during or self.during, current):
                continue
            seq_dim = (
                target.seq_dim if target.seq_dim is not None else (1 if tensor.ndim >= 3 else None)
            )
            where = bound.where
            if seq_dim is None and edit.positions is not None:
                raise InterventionError(
                    f"{where}: positions need a sequence dimension, but the tensor has shape "
                    f"{tuple(tensor.shape)}; edit it without positions"
                )
            length = int(tensor.shape[seq_dim]) if seq_dim is not None else 0
            wanted = forward_positions(edit.positions, self._offset, length)
            if wanted == ():
                continue  # its positions are in another forward
            sel = selection(
                tensor, seq_dim, wanted, self._offset, edit.heads, edit.units, bound.split, where
            )
            read = None
            if bound.source is not None:
                columns = bound.source.columns(sel.absolute, where)
                read = source_part(bound.source.values, columns, sel)
            tensor = edit_tensor(tensor, sel, functools.partial(edit.transform, source=read))
            self.applied[bound.number] += 1
        return tensor

    def _warn_unused(self) -> None:
        if not self.forwards:
            return
        unused = [e.describe() for e, n in zip(self.edits, self.applied, strict=True) if not n]
        if unused:
            warnings.warn(
                f"the model ran {self.forwards} forward(s) inside the intervention, but these "
                f"edits changed nothing: {'; '.join(unused)} (their positions never occurred, "
                "or during= excluded every forward that ran)",
                NothingEditedWarning,
                stacklevel=3,
            )


def intervene(
    model: Any, edits: Sequence[Edit] | Edit, *, during: str = "all", record: bool = True
) -> Intervention:
    """Return a context manager that runs ``model`` with ``edits`` applied to its activations.

    ``with intervene(model, [edit.add("resid_post.1", v, coef=4.0)]) as iv: model(ids)`` (or
    ``model.generate(...)``); ``intervene(model, edits).run(inputs)`` returns the output of one
    forward. Edits come from :mod:`interp_magics.intervene.edit`; they apply in list order.

    Args:
        model: a ``torch.nn.Module`` (HuggingFace models, accelerate-dispatched ones with CPU or
            disk offload), or an nnsight model (its wrapped module is hooked, so local traces and
            plain forwards are edited).
        edits: the edits; an empty list runs the model unchanged (still counting forwards).
        during: which forwards of a ``generate`` edits without their own ``during`` apply to:
            ``"all"``, ``"prompt"`` (the first, whole-prompt forward) or ``"new"`` (each new
            token's forward).
        record: emit one ledger record on exit when a forward ran (False for internal use by
            analyses that record themselves, such as a steering sweep).

    Raises:
        InterventionError: a site that matches nothing, a ``pattern`` site (attention weights
            are not an input of anything downstream), heads on a site without heads, a head or
            unit out of range, a vector whose width is not the site's, a cache without the
            site's key; all before any hook is installed.
    """
    return Intervention(model, edits, during=during, record=record)


def intervention_record(edits: Sequence[Edit], baseline: str | None = None) -> InterventionRecord:
    """Return the ledger record of ``edits`` (``direction`` when one is along a given vector)."""
    return InterventionRecord(
        edits=len(edits),
        sites=[e.site for e in edits],
        operations=[e.op for e in edits],
        direction=any(e.directional for e in edits),
        baseline=baseline,
    )


# -- binding ------------------------------------------------------------------------------------


def _check_edits(edits: Sequence[Edit] | Edit) -> list[Edit]:
    if isinstance(edits, Edit):
        return [edits]
    if isinstance(edits, (str, bytes)) or not isinstance(edits, Iterable):
        raise InterventionError(
            "edits must be a list of edits, e.g. [edit.add('resid_post.1', v, coef=4.0)]"
        )
    out = list(edits)
    bad = [type(e).__name__ for e in out if not isinstance(e, Edit)]
    if bad:
        raise InterventionError(
            f"every edit must come from interp_magics.intervene.edit (add, set, zero, ...); "
            f"got {bad[0]}"
        )
    return out


def _bind(model: nn.Module, edits: list[Edit]) -> list[Bound]:
    """Return every edit bound to its targets, checked against the model (nothing installed)."""
    bound: list[Bound] = []
    for number, edit in enumerate(edits):
        try:
            targets, _ = resolve_targets(model, edit.site)
        except CaptureError as exc:
            raise InterventionError(f"edit {number} ({edit.describe()}): {exc}") from None
        for target in targets:
            bound.append(_bind_one(model, edit, number, target))
    return bound


def _bind_one(model: nn.Module, edit: Edit, number: int, target: Target) -> Bound:
    where = f"edit {number} ({edit.describe()}) at {target.key}"
    if target.site == "pattern" or callable(target.select):
        raise InterventionError(
            f"{where}: attention patterns are read out of the attention module, not passed on, "
            "so editing them changes nothing downstream; edit head_out (each head's output) "
            "or attn_out instead"
        )
    try:
        module = find_module(model, target.path)
    except AttributeError:
        raise InterventionError(f"{where}: the model has no module {target.path!r}") from None
    heads = target.heads
    if heads is None and target.site == "head_out":
        heads = model_dims(model).n_heads  # a bridge's head_out: [.., heads * d_head] or per head
    if edit.heads is not None and heads is None:
        raise InterventionError(
            f"{where}: heads= selects heads of a per-head site (head_out.N); {target.key} has "
            "no head dimension"
        )
    if edit.heads is not None:
        _check_range(edit.heads, heads, "head", where)
    split = heads if edit.heads is not None else None
    width = site_width(model, target, module)
    selected = width
    if width is not None and split is not None:
        selected = width // split
    if edit.units is not None and selected is not None:
        _check_range(edit.units, selected, "unit", where)
        selected = len(edit.units)
    _check_value(edit, selected, where)
    source = prepare_source(edit, target, width, where)
    return Bound(edit, number, target, split, source, where)


def _check_range(indices: tuple[int, ...], n: int | None, name: str, where: str) -> None:
    if n is None:
        return
    bad = [i for i in indices if not -n <= i < n]
    if bad:
        raise InterventionError(
            f"{where}: {name} {bad[0]} is out of range: the site has {n} {name}s (0..{n - 1})"
        )


def _check_value(edit: Edit, selected: int | None, where: str) -> None:
    """Refuse a value whose last dimension cannot match the selection's (when it is known)."""
    value = edit.value
    if selected is None or not isinstance(value, torch.Tensor):
        return
    if edit.op in ("project_out", "project_onto"):
        if value.shape[0] != selected:
            raise InterventionError(
                f"{where}: the directions have {value.shape[0]} dimensions but the selected "
                f"activations have {selected}"
            )
        return
    if edit.op in ("set", "add", "scale") and value.ndim and value.shape[-1] not in (1, selected):
        raise InterventionError(
            f"{where}: the {edit.op} value has shape {tuple(value.shape)}, but the selected "
            f"activations have {selected} values in their last dimension; give a vector of "
            f"{selected} (or a tensor broadcastable to [batch, positions, {selected}])"
        )


def site_width(model: nn.Module, target: Target, module: nn.Module) -> int | None:
    """Return the size of the last dimension of ``target``'s tensor, when the model tells it
    (canonical residual-width sites, linear layers, embeddings, norms), else None."""
    if target.site in ("resid_pre", "resid_post", "attn_out", "mlp_out"):
        return model_dims(model).d_model
    inside = target.io == "input"
    if isinstance(module, nn.Linear):
        return module.in_features if inside else module.out_features
    weight = getattr(module, "weight", None)
    nf = getattr(module, "nf", None)
    if isinstance(weight, torch.Tensor) and weight.ndim == 2 and isinstance(nf, int):
        return int(weight.shape[0]) if inside else nf  # transformers' Conv1D: weight [in, out]
    if not inside and isinstance(module, nn.Embedding):
        return module.embedding_dim
    if isinstance(module, nn.LayerNorm) and module.normalized_shape:
        return int(module.normalized_shape[-1])
    if target.site == "head_out":
        dims = model_dims(model)
        return dims.d_heads
    return None


def _as_batch(inputs: Any) -> dict[str, Any]:
    if isinstance(inputs, torch.Tensor):
        return {"input_ids": inputs if inputs.ndim == 2 else inputs.unsqueeze(0)}
    if isinstance(inputs, Mapping):
        return dict(inputs)
    raise InterventionError(
        f"run() takes token ids or a tokenizer's output, not {type(inputs).__name__}"
    )
