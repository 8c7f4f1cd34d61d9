"""The model's own readout: its final norm and unembedding, applied to any residual stream.

The modules are found by path through :func:`~interp_magics.core.anatomy.anatomy`, so every
family the adapters know is read the same way. They are called through their class's
``forward`` on weights made present by accelerate's ``align_module_device``: a dispatched
model's offloaded weights are loaded for the call and dropped after it, and wrappers installed
on the instance (accelerate's device hooks, nnsight's envoys) are neither run nor touched, so
the numbers are the model's arithmetic alone.

:class:`FrozenNorm` is the final norm with its scale held fixed from one run, which makes it
linear: what direct logit attribution needs so that components add up to the logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..core.anatomy import Anatomy
from ..core.placement import execution_device, input_device, weights_present
from .inputs import LensError


def call_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Return ``module``'s class ``forward`` on ``x`` moved to its weights' device and dtype
    (no hooks run)."""
    with weights_present(module):
        param = next(module.parameters(recurse=False), None)
        if param is not None:
            x = x.to(param.device, param.dtype if param.is_floating_point() else x.dtype)
        out: torch.Tensor = type(module).forward(module, x)
    return out


class Readout:
    """The final norm and unembedding of a model, read as ``unembed(final_norm(resid))``."""

    def __init__(self, module: nn.Module, anat: Anatomy) -> None:
        assert anat.unembed is not None
        self.norm = module.get_submodule(anat.final_norm)
        self.unembed = module.get_submodule(anat.unembed)
        self.device = execution_device(self.norm) or input_device(module)

    def normed(self, resid: torch.Tensor) -> torch.Tensor:
        """Return the final norm of ``resid`` (``[..., d_model]``)."""
        return call_forward(self.norm, resid)

    def logits(self, resid: torch.Tensor) -> torch.Tensor:
        """Return the logits the model would give if ``resid`` were its last residual stream."""
        return call_forward(self.unembed, self.normed(resid))

    def rows(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the unembedding rows of ``ids`` and their biases (float64, on the CPU)."""
        with weights_present(self.unembed):
            weight = getattr(self.unembed, "weight", None)
            if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
                raise LensError(
                    f"the unembedding {type(self.unembed).__name__} has no 2-D weight; direct "
                    "logit attribution needs a linear unembedding"
                )
            w = weight.detach()[ids.to(weight.device)].to("cpu", torch.float64)
            bias = getattr(self.unembed, "bias", None)
            b = (
                bias.detach()[ids.to(bias.device)].to("cpu", torch.float64)
                if isinstance(bias, torch.Tensor)
                else None
            )
        return w, b

    def frozen_norm(self) -> FrozenNorm:
        """Return the final norm's parameters, to apply it with a scale frozen from a run."""
        norm = self.norm
        kind: Literal["layer", "rms"]
        if isinstance(norm, nn.LayerNorm):
            kind, eps = "layer", float(norm.eps)
        elif type(norm).__name__.endswith("RMSNorm"):
            kind = "rms"
            eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 0.0)) or 0.0)
        else:
            raise LensError(
                f"the final norm is a {type(norm).__name__}; direct logit attribution knows "
                "LayerNorm and RMSNorm (whose scale it can freeze)"
            )
        with weights_present(norm):
            weight = _cpu(getattr(norm, "weight", None))
            bias = _cpu(getattr(norm, "bias", None))
        return FrozenNorm(kind, weight, bias, eps)


def _cpu(t: Any) -> torch.Tensor | None:
    return t.detach().to("cpu", torch.float64) if isinstance(t, torch.Tensor) else None


@dataclass(frozen=True)
class FrozenNorm:
    """LayerNorm or RMSNorm as a linear map once its scale is fixed.

    LayerNorm: ``(x - mean(x)) / s * weight + bias`` with ``s = sqrt(var(x) + eps)``; centring
    is linear, so each component is centred on its own. RMSNorm: ``x / s * weight`` with
    ``s = sqrt(mean(x^2) + eps)``. Freezing ``s`` from the run makes the sum of the normed
    components plus the bias exactly the norm of their sum.
    """

    kind: Literal["layer", "rms"]
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    eps: float

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Return the norm's scale ``s`` of each vector in ``x`` (``[..., d]`` -> ``[...]``)."""
        x = x.to(torch.float64)
        if self.kind == "layer":
            return (x.var(-1, unbiased=False) + self.eps).sqrt()
        return (x.pow(2).mean(-1) + self.eps).sqrt()

    def apply(self, parts: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Return each part ``[..., d]`` through the norm at the frozen ``scale`` (no bias).

        ``scale`` broadcasts against ``parts`` without its last dimension.
        """
        parts = parts.to(torch.float64)
        if self.kind == "layer":
            parts = parts - parts.mean(-1, keepdim=True)
        out = parts / scale.unsqueeze(-1)
        return out if self.weight is None else out * self.weight
