"""Putting an edited tensor back where a module's output (or input) had it.

The tensor an edit reads is picked by :func:`interp_magics.core.outputs.select_tensor` (the
capture rule: a tensor as it is, the first tensor of a tuple, ``last_hidden_state`` of a model
output, or the element ``select`` names); these functions return a new output (or new call
arguments) holding the edited tensor in that same place, leaving the original untouched.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from ..core.outputs import Selector
from .errors import InterventionError

_PREFERRED_KEYS = ("last_hidden_state", "hidden_states", "logits")


def replace_output(output: Any, select: Selector | None, new: torch.Tensor, *, where: str) -> Any:
    """Return ``output`` with the tensor ``select`` picks replaced by ``new``."""
    if isinstance(output, torch.Tensor):
        return new
    if isinstance(output, (tuple, list)):
        index = _tuple_index(output, select, where)
        items = list(output)
        items[index] = new
        if isinstance(output, list):
            return items
        if hasattr(output, "_fields"):  # a namedtuple
            return type(output)(*items)
        return tuple(items)
    key = select if isinstance(select, str) else None
    if isinstance(output, Mapping):
        if key is None:
            key = next(
                (k for k in _PREFERRED_KEYS if isinstance(output.get(k), torch.Tensor)),
                next((k for k, v in output.items() if isinstance(v, torch.Tensor)), None),
            )
        if key is None:
            raise InterventionError(f"{where} returned a mapping without a tensor to edit")
        out = copy.copy(output)
        out[key] = new  # type: ignore[index]
        return out
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        if key is None:
            key = next(
                f.name
                for f in dataclasses.fields(output)
                if isinstance(getattr(output, f.name), torch.Tensor)
            )
        return dataclasses.replace(output, **{key: new})
    if key is not None and hasattr(output, key):
        out = copy.copy(output)
        setattr(out, key, new)
        return out
    raise InterventionError(
        f"{where} returned a {type(output).__name__}; interp-magics cannot put an edited tensor "
        "back into it"
    )


def _tuple_index(output: tuple[Any, ...] | list[Any], select: Selector | None, where: str) -> int:
    if isinstance(select, int):
        if not -len(output) <= select < len(output):
            raise InterventionError(f"select={select} is out of range for the output of {where}")
        return select % len(output)
    index = next((i for i, o in enumerate(output) if isinstance(o, torch.Tensor)), None)
    if index is None:
        raise InterventionError(f"{where} returned a {type(output).__name__} without a tensor")
    return index


def find_input(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int | str | None:
    """Return where a call's input tensor is (the capture rule): the index of the first
    positional tensor, else ``"hidden_states"``, else the first tensor keyword; None if none."""
    for i, arg in enumerate(args):
        if isinstance(arg, torch.Tensor):
            return i
    if isinstance(kwargs.get("hidden_states"), torch.Tensor):
        return "hidden_states"
    return next((k for k, v in kwargs.items() if isinstance(v, torch.Tensor)), None)


def replace_input(
    args: tuple[Any, ...], kwargs: dict[str, Any], where: int | str, new: torch.Tensor
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Return the call's arguments with the input tensor at ``where`` replaced by ``new``."""
    if isinstance(where, int):
        return (*args[:where], new, *args[where + 1 :]), kwargs
    return args, {**kwargs, where: new}
