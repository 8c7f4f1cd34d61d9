"""Edit constructors: ``from interp_magics.intervene import edit``; ``edit.add("resid_post.1", v)``.

Every constructor takes a site pattern (any pattern of the site grammar: ``resid_pre.3``,
``attn_out.-1``, ``head_out.1``, ``resid_post.{0-2}``, globs over module paths, SAE feature sites
``sae:resid_post.1``) and these keywords, which choose the part of the site's tensor it edits:

- ``positions``: absolute token positions (an int, a list, a slice or ``"3:7"``). A negative
  position counts from the end of the sequence as it stands at each forward: ``-1`` is the last
  prompt token in the prompt's forward and then each new token while generating. With a KV
  cache, a later forward sees only its new token; the intervention tracks how many tokens
  earlier forwards saw, so position 7 is edited in whichever forward processes token 7.
- ``heads``: head indices, for sites whose last dimension concatenates heads (``head_out``;
  the adapter says how many).
- ``units``: indices along the last dimension (features of an SAE site, MLP neurons).
- ``during``: ``"prompt"`` (the first forward of a ``generate``: the whole prompt, and any
  plain forward), ``"new"`` (each later forward: one new token each), ``"all"``; None follows
  the intervention's ``during``.

The constructors check what they can without the model; :func:`~.engine.intervene` checks the
rest (sites, shapes, head and unit ranges) before any hook is installed.
"""

from __future__ import annotations

from typing import Any

import torch

from .edits import (
    Edit,
    as_values,
    check_during,
    check_function,
    check_indices,
    check_positions,
    check_site,
    is_mapping,
    orthonormal_basis,
)
from .errors import InterventionError

__all__ = [
    "add",
    "apply",
    "mean",
    "project_onto",
    "project_out",
    "scale",
    "set",
    "zero",
]


def _edit(op: str, site: Any, value: Any, where: dict[str, Any], **extra: Any) -> Edit:
    return Edit(
        op=op,
        site=check_site(site),
        value=value,
        positions=check_positions(where.get("positions")),
        heads=check_indices(where.get("heads"), "heads"),
        units=check_indices(where.get("units"), "units"),
        during=check_during(where.get("during")),
        **extra,
    )


def set(
    site: str,
    value: Any,
    *,
    positions: Any = None,
    heads: Any = None,
    units: Any = None,
    during: str | None = None,
) -> Edit:
    """Return an edit that sets the selection to ``value``.

    ``value`` is a tensor broadcastable to the selection (``[d]`` sets every selected position
    to one vector; ``[batch, positions, d]`` gives each its own), or an ``ActivationCache`` /
    mapping of site keys to tensors ``[batch, pos, ...]``: the site's tensor is taken from it at
    the same absolute positions (activation patching from a cached run).
    """
    where = dict(positions=positions, heads=heads, units=units, during=during)
    if is_mapping(value):
        return _edit("set", site, value, where)
    return _edit("set", site, as_values(value, "the value of set"), where)


def add(
    site: str,
    vector: Any,
    coef: float = 1.0,
    *,
    positions: Any = None,
    heads: Any = None,
    units: Any = None,
    during: str | None = None,
) -> Edit:
    """Return an edit that adds ``coef * vector`` to the selection (activation steering).

    ``vector`` is ``[d]`` (or anything broadcastable to the selection), or a steering vector
    (its ``.direction`` is used).
    """
    if isinstance(coef, bool) or not isinstance(coef, (int, float)):
        raise InterventionError(f"coef must be a number, not {type(coef).__name__}")
    where = dict(positions=positions, heads=heads, units=units, during=during)
    return _edit("add", site, as_values(vector, "the vector of add"), where, coef=float(coef))


def scale(
    site: str,
    factor: Any,
    *,
    positions: Any = None,
    heads: Any = None,
    units: Any = None,
    during: str | None = None,
) -> Edit:
    """Return an edit that multiplies the selection by ``factor`` (a number or a tensor)."""
    where = dict(positions=positions, heads=heads, units=units, during=during)
    return _edit("scale", site, as_values(factor, "the factor of scale"), where)


def zero(
    site: str,
    *,
    positions: Any = None,
    heads: Any = None,
    units: Any = None,
    during: str | None = None,
) -> Edit:
    """Return an edit that sets the selection to zero (zero ablation)."""
    where = dict(positions=positions, heads=heads, units=units, during=during)
    return _edit("zero", site, None, where)


def mean(
    site: str,
    source: Any,
    *,
    mask: Any = None,
    positions: Any = None,
    heads: Any = None,
    units: Any = None,
    during: str | None = None,
) -> Edit:
    """Return an edit that sets the selection to the mean over examples of ``source``, at each
    absolute position (mean ablation).

    ``source`` is an ``ActivationCache`` / mapping (the site's tensor ``[batch, pos, ...]`` is
    taken from it) or such a tensor. The mean at each position is over the examples whose token
    there is real: ``mask`` ``[batch, pos]`` (1 = real), by default the cache's attention mask;
    without one every example counts.
    """
    where = dict(positions=positions, heads=heads, units=units, during=during)
    real = None
    if mask is not None:
        real = torch.as_tensor(mask)
        if real.ndim != 2:
            raise InterventionError(f"mask must be [batch, pos], got shape {tuple(real.shape)}")
        real = real.detach().to("cpu").bool()
    if is_mapping(source):
        return _edit("mean", site, source, where, mask=real)
    values = as_values(source, "the source of mean")
    if values.ndim < 2:
        raise InterventionError(
            f"the source of mean must be [batch, pos, ...], got shape {tuple(values.shape)}"
        )
    if real is not None and tuple(real.shape) != tuple(values.shape[:2]):
        raise InterventionError(
            f"mask has shape {tuple(real.shape)} but the source is {tuple(values.shape)}; the "
            "mask must be [batch, pos] of the source"
        )
    return _edit("mean", site, values, where, mask=real)


def project_out(
    site: str,
    directions: Any,
    *,
    positions: Any = None,
    heads: Any = None,
    units: Any = None,
    during: str | None = None,
) -> Edit:
    """Return an edit that removes the selection's component along ``directions``.

    ``directions`` is one vector ``[d]`` or a subspace ``[k, d]``; its rows are orthonormalised
    with QR first, so they need not be orthogonal or unit length (only independent). The edit
    is ``x - (x Q) Q^T`` with ``Q`` the orthonormal basis ``[d, k]``.
    """
    where = dict(positions=positions, heads=heads, units=units, during=during)
    basis = orthonormal_basis(directions, "the directions of project_out")
    return _edit("project_out", site, basis, where)


def project_onto(
    site: str,
    directions: Any,
    *,
    positions: Any = None,
    heads: Any = None,
    units: Any = None,
    during: str | None = None,
) -> Edit:
    """Return an edit that keeps only the selection's component along ``directions``.

    ``directions`` is one vector ``[d]`` or a subspace ``[k, d]``; its rows are orthonormalised
    with QR first. The edit is ``(x Q) Q^T`` with ``Q`` the orthonormal basis ``[d, k]``.
    """
    where = dict(positions=positions, heads=heads, units=units, during=during)
    basis = orthonormal_basis(directions, "the directions of project_onto")
    return _edit("project_onto", site, basis, where)


def apply(
    site: str,
    fn: Any,
    *,
    positions: Any = None,
    heads: Any = None,
    units: Any = None,
    during: str | None = None,
) -> Edit:
    """Return an edit that replaces the selection by ``fn(selection)``.

    ``fn`` receives the selected part (``[batch, positions, ...]``; with no selection the
    module's own tensor, so never change it in place) and must return a tensor of that shape.
    """
    where = dict(positions=positions, heads=heads, units=units, during=during)
    return _edit("apply", site, check_function(fn), where)
