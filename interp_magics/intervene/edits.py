"""The edit types: what an intervention does to the selected part of one site's tensor.

An :class:`Edit` names an operation, a site pattern and its argument, plus which part of the
site's tensor it touches (``positions``, ``heads``, ``units``) and in which forwards of a
``generate`` (``during``). The constructors in :mod:`interp_magics.intervene.edit` build them
and check everything that does not need the model; :mod:`.engine` binds them to a model.

Each operation is a function of the selected part ``x`` (a copy: the model's own tensor is never
changed in place) and returns the new values of that part:

==================  ==========================================================================
``set``             ``value`` broadcast to ``x``; a cache or mapping gives the site's tensor at
                    the same absolute positions (and heads, units)
``add``             ``x + coef * vector``
``scale``           ``x * factor``
``zero``            zeros
``mean``            the mean over examples of a source at each absolute position
``project_out``     ``x - (x Q) Q^T``, ``Q`` an orthonormal basis of the directions
``project_onto``    ``(x Q) Q^T``
``apply``           ``fn(x)``, which must keep the shape
==================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.errors import CaptureError
from ..core.options import parse_positions
from .errors import InterventionError

OPERATIONS = ("set", "add", "scale", "zero", "mean", "project_out", "project_onto", "apply")
DURING = ("all", "prompt", "new")
#: Operations that move activations along (or onto, or off) a direction the user gives.
DIRECTIONAL = ("add", "project_out", "project_onto")

Positions = int | slice | tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Edit:
    """One edit of one site pattern; build it with the constructors in ``intervene.edit``.

    Attributes:
        op: the operation (one of :data:`OPERATIONS`).
        site: a site pattern (``resid_post.1``, ``head_out.{0-2}``, a glob over module paths).
        value: the operation's argument: a tensor (set, add, scale, mean), a mapping or
            ``ActivationCache`` (set, mean), an orthonormal basis ``[d, k]`` (project_*), a
            function (apply), or None (zero).
        coef: the multiplier of ``add``.
        positions: absolute token positions (int, slice or tuple; negative ones count from the
            end of the sequence as it stands at each forward), or None for every position.
        heads: head indices (head_out-style sites), or None.
        units: indices along the last dimension (SAE feature sites, neurons), or None.
        during: ``"all"``, ``"prompt"``, ``"new"``, or None to follow the intervention's.
        mask: for ``mean``: which source tokens are real ``[batch, pos]``, or None.
    """

    op: str
    site: str
    value: Any = None
    coef: float = 1.0
    positions: Positions | None = None
    heads: tuple[int, ...] | None = None
    units: tuple[int, ...] | None = None
    during: str | None = None
    mask: torch.Tensor | None = field(default=None, repr=False)

    @property
    def directional(self) -> bool:
        """Whether the edit moves activations along a direction the user gave."""
        return self.op in DIRECTIONAL

    def describe(self) -> str:
        """Return the edit in one line, as the ``%%intervene`` grammar would write it."""
        parts = [self.op, self.site]
        if self.op == "add" and self.coef != 1.0:
            parts.append(f"coef={self.coef:g}")
        if self.op == "scale" and isinstance(self.value, torch.Tensor) and self.value.numel() == 1:
            parts.append(f"{float(self.value):g}")
        if self.positions is not None:
            parts.append(f"@ {_positions_text(self.positions)}")
        if self.heads is not None:
            parts.append("heads=" + ",".join(map(str, self.heads)))
        if self.units is not None:
            parts.append("units=" + ",".join(map(str, self.units)))
        if self.during is not None:
            parts.append(f"during={self.during}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"Edit({self.describe()})"

    def transform(self, x: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor:
        """Return the new values of the selected part ``x``.

        ``source`` is what a ``set`` from a mapping or a ``mean`` reads, already selected at
        the same positions, heads and units as ``x`` (the engine prepares it).
        """
        if self.op == "zero":
            return torch.zeros_like(x)
        if self.op in ("set", "mean"):
            value = source if source is not None else self.value
            return _broadcast(_like(value, x), x, self)
        if self.op == "add":
            return x + _broadcast(_like(self.coef * self.value, x), x, self)
        if self.op == "scale":
            return x * _broadcast(_like(self.value, x), x, self)
        if self.op in ("project_out", "project_onto"):
            basis = _like(self.value, x)  # [d, k], orthonormal columns
            if x.shape[-1] != basis.shape[0]:
                raise InterventionError(
                    f"{self.describe()}: the directions have {basis.shape[0]} dimensions but "
                    f"the selected activations have {x.shape[-1]}"
                )
            along = (x @ basis) @ basis.T
            return x - along if self.op == "project_out" else along
        if self.op == "apply":
            out = self.value(x)
            if not isinstance(out, torch.Tensor) or out.shape != x.shape:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise InterventionError(
                    f"{self.describe()}: the function returned {got} for activations of shape "
                    f"{tuple(x.shape)}; it must return a tensor of the same shape"
                )
            return out.to(x.dtype)
        raise InterventionError(f"unknown operation {self.op!r}; use one of {OPERATIONS}")


def _like(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # On a dispatched model each block runs on its own device: values follow the activations.
    return value.to(device=x.device, dtype=x.dtype)


def _broadcast(value: torch.Tensor, x: torch.Tensor, edit: Edit) -> torch.Tensor:
    try:
        return value.expand_as(x) if value.shape != x.shape else value
    except RuntimeError:
        raise InterventionError(
            f"{edit.describe()}: a value of shape {tuple(value.shape)} does not broadcast to the "
            f"selected activations of shape {tuple(x.shape)} ([batch, positions, ...]); give "
            "one vector for the last dimension, or a tensor of the selection's shape"
        ) from None


def _positions_text(positions: Positions) -> str:
    if isinstance(positions, slice):
        start = "" if positions.start is None else str(positions.start)
        stop = "" if positions.stop is None else str(positions.stop)
        step = "" if positions.step is None else f":{positions.step}"
        return f"{start}:{stop}{step}"
    if isinstance(positions, int):
        return str(positions)
    return ",".join(map(str, positions))


# -- checks the constructors share ------------------------------------------------------------


def check_site(site: Any) -> str:
    """Return ``site`` stripped, or raise unless it is a non-empty string."""
    if not isinstance(site, str) or not site.strip():
        raise InterventionError(
            f"an edit needs a site pattern such as 'resid_post.1' or 'head_out.0', got {site!r}"
        )
    return site.strip()


def check_positions(positions: Any) -> Positions | None:
    """Return positions as an int, a slice or a tuple (``"3:7"`` and ``"0,2"`` work too)."""
    try:
        return parse_positions(positions)
    except CaptureError as exc:
        raise InterventionError(str(exc)) from None


def check_indices(values: Any, name: str) -> tuple[int, ...] | None:
    """Return head or unit indices as a tuple of distinct ints (None stays None)."""
    if values is None:
        return None
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    items = [values] if isinstance(values, int) else values
    try:
        items = list(items)
    except TypeError:
        raise InterventionError(
            f"{name} must be an int or a list of ints, not {type(values).__name__}"
        ) from None
    if not items or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise InterventionError(f"{name} must be one or more integers, got {values!r}")
    if len(set(items)) != len(items):
        raise InterventionError(f"{name} lists an index twice: {items}")
    return tuple(items)


def check_during(during: Any, *, allow_none: bool = True) -> str | None:
    """Return ``during`` unless it is not one of ``all``, ``prompt``, ``new`` (or None)."""
    if during is None and allow_none:
        return None
    if during not in DURING:
        raise InterventionError(
            f"during must be 'all', 'prompt' (the first forward of a generate) or 'new' (each "
            f"new token's forward), not {during!r}"
        )
    return str(during)


def as_values(value: Any, what: str) -> torch.Tensor:
    """Return ``value`` (a tensor, number, array or ``.direction`` holder) as a real tensor."""
    direction = getattr(value, "direction", None)
    if isinstance(direction, torch.Tensor):  # a steering vector
        value = direction
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise InterventionError(
            f"{what} must be a tensor or a number, not {type(value).__name__}"
        ) from None
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise InterventionError(
            f"{what} has dtype {tensor.dtype}; give real numbers (it is cast to the "
            "activations' dtype when applied)"
        )
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float32)
    if not bool(torch.isfinite(tensor).all()):
        raise InterventionError(f"{what} holds NaN or infinite values")
    return tensor.detach()


def is_mapping(value: Any) -> bool:
    """Whether ``value`` is a mapping of site keys to tensors (e.g. an ActivationCache)."""
    return isinstance(value, Mapping)


def orthonormal_basis(directions: Any, what: str) -> torch.Tensor:
    """Return an orthonormal basis ``[d, k]`` of the span of ``directions`` (``[d]`` or ``[k, d]``).

    QR of the directions (in float64) orthonormalises them; directions that are (nearly)
    linear combinations of the others are refused, since the span would be ill-defined.
    """
    d = as_values(directions, what).to(torch.float64)
    if d.ndim == 1:
        d = d.unsqueeze(0)
    if d.ndim != 2 or d.shape[0] == 0 or d.shape[1] == 0:
        raise InterventionError(
            f"{what} must be one vector [d] or a subspace [k, d], got shape {tuple(d.shape)}"
        )
    if d.shape[0] > d.shape[1]:
        raise InterventionError(
            f"{what}: {d.shape[0]} directions in {d.shape[1]} dimensions cannot be independent"
        )
    q, r = torch.linalg.qr(d.T)
    diag = r.diagonal().abs()
    if bool((diag <= 1e-8 * max(float(d.norm(dim=1).max()), 1e-300)).any()):
        raise InterventionError(
            f"{what}: the directions are linearly dependent (or one is zero); give independent "
            "directions"
        )
    basis: torch.Tensor = q.to(torch.float32)
    return basis


def check_function(fn: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return ``fn`` if it is callable."""
    if not callable(fn):
        raise InterventionError(
            f"apply needs a function tensor -> tensor of the same shape, not {type(fn).__name__}"
        )
    checked: Callable[[torch.Tensor], torch.Tensor] = fn
    return checked
