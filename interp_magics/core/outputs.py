"""Which tensor of a module's output (or input) a capture stores.

The rule, applied when no ``select`` is given:

1. a tensor is stored as it is;
2. a tuple or list: its first tensor element (HuggingFace attention modules return
   ``(hidden, weights)``, older blocks ``(hidden, present, attentions)``);
3. a mapping or ``ModelOutput``: ``last_hidden_state``, else ``hidden_states``, else
   ``logits`` when one is a tensor, else its first tensor value;
4. any other dataclass: its first tensor field.

``select`` overrides the rule: an ``int`` indexes a tuple or list, a ``str`` names a key or
attribute, and a callable receives the whole output and returns the tensor.

For inputs the rule is: the first positional tensor argument, else the ``hidden_states``
keyword, else the first tensor keyword argument.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .errors import CaptureError

Selector = int | str | Callable[[Any], torch.Tensor]

_PREFERRED_KEYS = ("last_hidden_state", "hidden_states", "logits")


def select_tensor(output: Any, select: Selector | None, *, where: str) -> torch.Tensor | None:
    """Return the tensor ``select`` (or the default rule) picks from ``output``, or None."""
    if select is None:
        return _default(output)
    if callable(select):
        picked = select(output)
    elif isinstance(select, int):
        if not isinstance(output, (tuple, list)):
            raise CaptureError(
                f"select={select} indexes a tuple, but {where} returned {type(output).__name__}; "
                "use a key name or a callable instead"
            )
        if not -len(output) <= select < len(output):
            raise CaptureError(
                f"select={select} is out of range: {where} returned {len(output)} elements"
            )
        picked = output[select]
    else:
        if isinstance(output, Mapping) and select in output:
            picked = output[select]
        elif hasattr(output, select):
            picked = getattr(output, select)
        else:
            raise CaptureError(
                f"select={select!r}: {where} returned {type(output).__name__} without that "
                f"key or attribute; it has {describe(output)}"
            )
    if picked is not None and not isinstance(picked, torch.Tensor):
        raise CaptureError(
            f"select={select!r} picked a {type(picked).__name__} from {where}, not a tensor"
        )
    return picked


def _default(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return next((o for o in output if isinstance(o, torch.Tensor)), None)
    if isinstance(output, Mapping):
        for key in _PREFERRED_KEYS:
            value = output.get(key)
            if isinstance(value, torch.Tensor):
                return value
        return next((v for v in output.values() if isinstance(v, torch.Tensor)), None)
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        for field in dataclasses.fields(output):
            value = getattr(output, field.name)
            if isinstance(value, torch.Tensor):
                return value
    return None


def select_input(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> torch.Tensor | None:
    """Return a call's input tensor: first tensor arg, ``hidden_states``, first tensor kwarg."""
    for arg in args:
        if isinstance(arg, torch.Tensor):
            return arg
    hidden = kwargs.get("hidden_states")
    if isinstance(hidden, torch.Tensor):
        return hidden
    return next((v for v in kwargs.values() if isinstance(v, torch.Tensor)), None)


def describe(output: Any) -> str:
    """Return a short description of an output's structure, for error messages."""
    if isinstance(output, torch.Tensor):
        return f"a tensor of shape {tuple(output.shape)}"
    if isinstance(output, (tuple, list)):
        inner = ", ".join(_brief(o) for o in output[:6])
        return f"{type(output).__name__} ({inner}{', ...' if len(output) > 6 else ''})"
    if isinstance(output, Mapping):
        return "keys " + ", ".join(f"{k}: {_brief(v)}" for k, v in list(output.items())[:8])
    return type(output).__name__


def _brief(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return "tensor" + str(tuple(value.shape))
    return type(value).__name__
