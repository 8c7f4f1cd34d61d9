"""Parsing and validation of capture options (dtype, device, positions, byte budgets).

Shared by the Python API and the magics, so both accept the same spellings and give the
same errors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import CaptureError

Positions = int | slice | Sequence[int] | range

_DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float64": torch.float64,
    "fp64": torch.float64,
    "double": torch.float64,
}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """Return the floating torch dtype named by ``dtype`` (None keeps each tensor's own)."""
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif isinstance(dtype, str):
        key = dtype.strip().lower().removeprefix("torch.")
        if key not in _DTYPES:
            raise CaptureError(
                f"unknown dtype {dtype!r}; use one of float16, bfloat16, float32, float64"
            )
        resolved = _DTYPES[key]
    else:
        raise CaptureError(f"dtype must be a string or torch.dtype, not {type(dtype).__name__}")
    if not resolved.is_floating_point:
        raise CaptureError(
            f"dtype {resolved} is not a floating type; activations can be stored as "
            "float16, bfloat16, float32 or float64"
        )
    return resolved


def parse_device(device: str | torch.device | None) -> torch.device:
    """Return the torch device where captured tensors are stored, checking it exists."""
    if device is None:
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise CaptureError(
            f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise CaptureError(
                f"device {device!r} requested but CUDA is not available here; use device='cpu'"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise CaptureError(
                f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s)"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise CaptureError(f"device {device!r} requested but MPS is not available; use 'cpu'")
    elif resolved.type not in ("cpu", "cuda", "mps", "xpu"):
        raise CaptureError(f"unsupported device {device!r}; use 'cpu', 'cuda' or 'mps'")
    return resolved


def parse_positions(spec: Positions | str | None) -> int | slice | tuple[int, ...] | None:
    """Return a validated position selector: an int, a slice, or a tuple of ints.

    Strings use Python's index syntax: ``"-1"``, ``"0:10"``, ``"::2"``, ``"3,5,-1"``.
    Range checks against the sequence length happen when the first activation arrives.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        return _parse_position_string(spec)
    if isinstance(spec, bool):
        raise CaptureError("positions must be an int, a slice or a list of ints, not a bool")
    if isinstance(spec, int):
        return spec
    if isinstance(spec, slice):
        for part in (spec.start, spec.stop, spec.step):
            if part is not None and not isinstance(part, int):
                raise CaptureError(f"positions slice {spec} must have integer bounds")
        if spec.step is not None and spec.step <= 0:
            raise CaptureError(f"positions slice {spec} needs a positive step")
        return spec
    if isinstance(spec, torch.Tensor):
        if spec.dtype.is_floating_point or spec.ndim > 1:
            raise CaptureError("positions tensor must be a 1-D integer tensor")
        spec = spec.tolist()
    try:
        items = tuple(spec)
    except TypeError:
        raise CaptureError(
            f"positions must be an int, a slice or a list of ints, not {type(spec).__name__}"
        ) from None
    if not items:
        raise CaptureError("positions is empty; give at least one position, or None for all")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise CaptureError(f"positions must be integers, got {list(items)!r}")
    return items


def _parse_position_string(text: str) -> int | slice | tuple[int, ...]:
    text = text.strip()
    try:
        if ":" in text:
            parts = [p.strip() for p in text.split(":")]
            if len(parts) > 3:
                raise ValueError
            nums = [int(p) if p else None for p in parts]
            return parse_positions(slice(*nums))  # type: ignore[return-value]
        if "," in text:
            return tuple(int(p) for p in text.split(",") if p.strip())
        return int(text)
    except ValueError:
        raise CaptureError(
            f"cannot read positions {text!r}; write e.g. -1, 0:10, ::2 or 3,5,-1"
        ) from None


def resolve_positions(spec: int | slice | tuple[int, ...], length: int) -> tuple[int, ...]:
    """Return absolute, in-range indices that ``spec`` selects from a sequence of ``length``."""
    if isinstance(spec, slice):
        indices = tuple(range(length)[spec])
        if not indices:
            raise CaptureError(
                f"positions {spec.start}:{spec.stop}:{spec.step} select nothing from a "
                f"sequence of length {length}"
            )
        return indices
    items = (spec,) if isinstance(spec, int) else spec
    bad = [i for i in items if not -length <= i < length]
    if bad:
        raise CaptureError(
            f"positions {bad} are out of range for sequence length {length} "
            f"(valid: {-length}..{length - 1})"
        )
    return tuple(i % length for i in items)
