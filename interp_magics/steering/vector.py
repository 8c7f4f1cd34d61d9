"""Steering vectors: the direction between two sets of prompts at one site.

:func:`vector` reads a site's activations at one token of each prompt (the last real token by
default) and returns the difference of the positive and negative prompts' means
(``method="mean_diff"``), or the normal of a logistic-regression probe separating them, scaled
to the mean difference's norm (``method="probe"``). Activations are read through an
intervention whose only edit is the identity, so every site of the site grammar, dispatched
and nnsight-wrapped models work as they do for :func:`~interp_magics.intervene.intervene`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core.errors import CaptureError
from ..core.targets import resolve_targets
from ..core.traced import unwrap
from ..intervene import edit as edits
from ..intervene.edits import Edit
from ..intervene.engine import intervene
from .inputs import Prompts, SteeringError, as_prompts, real_positions

METHODS = ("mean_diff", "probe")


@dataclass(frozen=True, eq=False)
class SteeringVector:
    """A direction to add at a site.

    Attributes:
        direction: ``[d]``; coefficient 1 adds it once (for ``mean_diff``, the whole mean
            difference).
        site: the site pattern it was read at (one layer), e.g. ``resid_post.1``.
        method: ``"mean_diff"``, ``"probe"`` or ``"given"``.
        position: the token it was read at (negative: from each prompt's last real token).
        n_positive, n_negative: how many prompts each side had.
        probe_accuracy: the probe's accuracy on its own training prompts (``probe`` only; an
            in-sample number, not a held-out estimate).
    """

    direction: torch.Tensor
    site: str
    method: str = "given"
    position: int = -1
    n_positive: int = 0
    n_negative: int = 0
    probe_accuracy: float | None = None

    def __post_init__(self) -> None:
        d = self.direction
        if not isinstance(d, torch.Tensor) or d.ndim != 1 or not d.is_floating_point():
            got = tuple(d.shape) if isinstance(d, torch.Tensor) else type(d).__name__
            raise SteeringError(f"a steering direction is a floating tensor [d], got {got}")
        if not bool(torch.isfinite(d).all()) or float(d.norm()) == 0.0:
            raise SteeringError("a steering direction must be finite and nonzero")
        if not isinstance(self.site, str) or not self.site:
            raise SteeringError(
                f"a steering vector needs a site such as 'resid_post.3', got {self.site!r}"
            )

    @property
    def norm(self) -> float:
        """The direction's Euclidean norm."""
        return float(self.direction.double().norm())

    @property
    def unit(self) -> torch.Tensor:
        """The direction scaled to norm 1."""
        unit: torch.Tensor = self.direction / self.direction.norm()
        return unit

    def edit(self, coef: float = 1.0, *, positions: Any = None, during: str | None = None) -> Edit:
        """Return the edit that adds ``coef * direction`` at the vector's site."""
        return edits.add(self.site, self.direction, coef, positions=positions, during=during)

    def __mul__(self, coef: float) -> torch.Tensor:
        return self.direction * coef

    def __rmul__(self, coef: float) -> torch.Tensor:
        return self.direction * coef

    def __neg__(self) -> torch.Tensor:
        return -self.direction

    def __repr__(self) -> str:
        counts = (
            f" from {self.n_positive} positive / {self.n_negative} negative prompts at position "
            f"{self.position}"
            if self.n_positive
            else ""
        )
        probe = (
            f", probe training accuracy {self.probe_accuracy:.2f}"
            if self.probe_accuracy is not None
            else ""
        )
        return (
            f"SteeringVector({self.method} at {self.site}, d={self.direction.numel()}, "
            f"norm {self.norm:.4g}{counts}{probe})"
        )


def vector(
    model: Any,
    positive: Any,
    negative: Any,
    site: str,
    *,
    method: str = "mean_diff",
    position: int = -1,
    tokenizer: Any = None,
    batch_size: int = 32,
) -> SteeringVector:
    """Return the steering vector from ``negative`` to ``positive`` prompts at ``site``.

    Args:
        model: a HuggingFace-style model (dispatched and nnsight-wrapped ones too).
        positive, negative: texts (with ``tokenizer``, or the model's ``.tokenizer``), token
            ids ``[n, T]``, lists of ids, or tokenizer outputs (padding respected).
        site: one site at one layer (``resid_post.3``, ``attn_out.-1``, ``head_out.2``).
        method: ``"mean_diff"`` (difference of means) or ``"probe"`` (the unit normal of an L2
            logistic regression, scikit-learn's default C=1, positive class up, scaled to the
            mean difference's norm).
        position: which real token of each prompt: ``-1`` the last, ``-2`` the one before,
            ``0`` the first; counted over real tokens, so padding on either side is skipped.
        tokenizer: for text prompts.
        batch_size: prompts per forward.
    """
    if method not in METHODS:
        raise SteeringError(f"method must be 'mean_diff' or 'probe', not {method!r}")
    if isinstance(position, bool) or not isinstance(position, int):
        raise SteeringError(f"position must be an int (e.g. -1), not {position!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise SteeringError(f"batch_size must be a positive int, not {batch_size!r}")
    tok = tokenizer if tokenizer is not None else getattr(unwrap(model), "tokenizer", None)
    pos = as_prompts(positive, tok, "positive prompts")
    neg = as_prompts(negative, tok, "negative prompts")
    one_site(model, site)
    a = read_site(model, site, pos, position, batch_size, "positive prompt")
    b = read_site(model, site, neg, position, batch_size, "negative prompt")
    if a.shape[1] != b.shape[1]:
        raise SteeringError(f"the two sides gave widths {a.shape[1]} and {b.shape[1]} at {site}")
    diff = a.double().mean(0) - b.double().mean(0)
    accuracy = None
    direction = diff
    if method == "probe":
        direction, accuracy = _probe_direction(a, b, float(diff.norm()))
    return SteeringVector(
        direction=direction.to(torch.float32),
        site=site,
        method=method,
        position=position,
        n_positive=len(pos),
        n_negative=len(neg),
        probe_accuracy=accuracy,
    )


def one_site(model: Any, site: str) -> None:
    """Raise unless ``site`` names exactly one hook target of ``model``."""
    try:
        targets, _ = resolve_targets(unwrap(model), site)
    except CaptureError as exc:
        raise SteeringError(str(exc)) from None
    if len(targets) != 1:
        keys = ", ".join(t.key for t in targets[:4])
        raise SteeringError(
            f"a steering vector lives at one site of one layer; {site!r} names {len(targets)} "
            f"({keys}{', ...' if len(targets) > 4 else ''}); give e.g. 'resid_post.3'"
        )


def read_site(
    model: Any, site: str, prompts: Prompts, position: int, batch_size: int, name: str
) -> torch.Tensor:
    """Return ``site``'s activations ``[n, d]`` at each prompt's ``position``-th real token."""
    columns = real_positions(prompts.mask, position, name)
    rows: list[torch.Tensor] = []
    for start in range(0, len(prompts), batch_size):
        reader = intervene(
            model,
            [edits.apply(site, _keeper(columns[start : start + batch_size], rows))],
            record=False,
        )
        before = len(rows)
        reader.run(prompts.batch(start, start + batch_size))
        if len(rows) != before + 1:
            raise SteeringError(f"{site} ran {len(rows) - before} times in one forward")
    return torch.cat(rows)


def _keeper(columns: torch.Tensor, rows: list[torch.Tensor]) -> Any:
    """Return an identity edit function that keeps each row's activation at ``columns``."""

    def keep(x: torch.Tensor) -> torch.Tensor:
        picked = x[torch.arange(x.shape[0], device=x.device), columns.to(x.device)]
        rows.append(picked.detach().to("cpu", torch.float32).reshape(x.shape[0], -1))
        return x

    return keep


def _probe_direction(a: torch.Tensor, b: torch.Tensor, norm: float) -> tuple[torch.Tensor, float]:
    from sklearn.linear_model import LogisticRegression

    x = torch.cat([a, b]).double().numpy()
    y = np.r_[np.ones(len(a)), np.zeros(len(b))]
    fit = LogisticRegression(max_iter=5000).fit(x, y)
    w = torch.as_tensor(fit.coef_[0], dtype=torch.float64)
    if float(w.norm()) == 0.0:
        raise SteeringError("the probe found no direction (all weights are 0)")
    accuracy = float(fit.score(x, y))
    return w / w.norm() * norm, accuracy
