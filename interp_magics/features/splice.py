"""The module spliced into a model's forward: a sparse autoencoder with its error kept.

``FeatureSplice(sae)(x)`` encodes the site's tensor ``x`` into features ``f``, passes them
through an identity child ``features`` (what hooks, captures and interventions see as
``sae:<site>``: ``[batch, pos, n_features]``), and returns

    ``sae.decode(f2) + error``, with ``error = x - sae.decode(f)`` detached,

where ``f2`` is whatever ``features`` returned. Unedited, ``f2`` is ``f`` and the output is
``x`` up to float rounding: splicing an SAE in changes nothing the model computes. An edit of
the features (a hook returning new features, or editing them in place) changes the output by
exactly the decoder's change, and gradients reach ``f2`` through the decoder (attribution to
features); the error term carries no gradient, as in sae-lens' own ``use_error_term``. The
error is exposed too (child ``error``, ``sae:<site>.error``). With no hook on ``features``
nothing can edit them, and the splice decodes once.

A transcoder reads one site and writes another (an MLP's input and its output): its splice
sits at the output site and encodes the input site's tensor, which :meth:`read_source` keeps
when the input site runs earlier in the same forward. The error is then the output site's
tensor minus the transcoder's reconstruction (skip connection included), so the same
identities hold.

The SAE moves to the tensor's device and dtype at call time (each block of a dispatched model
runs on its own device); this moves the SAE object itself, as ``sae.to`` does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .inputs import FeatureError


class FeatureSplice(nn.Module):
    """An SAE (or transcoder) run inside a model's forward, its features exposed as a child."""

    def __init__(self, sae: nn.Module, *, transcoder: bool = False) -> None:
        super().__init__()
        self.sae: Any = sae  # a sae-lens SAE: typed loosely (sae-lens ships no types)
        self.features = nn.Identity()
        self.error = nn.Identity()
        self.transcoder = transcoder
        cfg: Any = getattr(sae, "cfg", None)
        self.n_features = int(cfg.d_sae)
        self.d_in = int(cfg.d_in)
        self.d_out = int(getattr(cfg, "d_out", cfg.d_in))
        self._source: torch.Tensor | None = None
        self.site_info: Any = None  # the FeatureSite that attached it (set by attach_sae)

    def read_source(self, x: torch.Tensor) -> None:
        """Keep a transcoder's input for the output site that runs next in this forward."""
        self._source = x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the site's tensor rebuilt from (possibly edited) features plus the error."""
        if x.shape[-1] != self.d_out:
            raise FeatureError(
                f"the SAE's output width is {self.d_out} but the site's tensor is "
                f"{tuple(x.shape)}; attach an SAE trained on this site"
            )
        source = self._take_source(x) if self.transcoder else x
        self._place(x)
        f = self.sae.encode(source.to(x.device))
        if f.is_sparse:  # a TopK SAE with sparse activations: hooks expect a dense tensor
            f = f.to_dense()
        if not _observed(self.features):  # nothing can read or edit the features
            recon = self.sae.decode(f)
            error = (x - recon.detach().to(x.dtype)).detach()
            out: torch.Tensor = recon.to(x.dtype) + self.error(error)
            return out
        # A hook may edit the features in place and return None: keep the unedited ones.
        original = f.detach().clone()
        edited = self.features(f)
        if not isinstance(edited, torch.Tensor) or edited.shape != f.shape:
            raise FeatureError(
                f"an edit of the features must keep their shape {tuple(f.shape)}, got "
                f"{getattr(edited, 'shape', type(edited).__name__)}"
            )
        # One decode of both: SAEs that normalise their input keep the statistics of the last
        # encode for one decode only (sae-lens' layer_norm and norm rescaling).
        both = self.sae.decode(torch.stack((edited.to(f.dtype), original)))
        recon, clean = both[0], both[1].detach()
        error = (x - clean.to(x.dtype)).detach()
        out = recon.to(x.dtype) + self.error(error)
        return out

    def _take_source(self, x: torch.Tensor) -> torch.Tensor:
        """Return (and forget) the transcoder input kept for this forward, checked against ``x``."""
        source, self._source = self._source, None
        if source is None:
            raise FeatureError(
                "the transcoder's input site did not run before its output site in this "
                "forward; give an input_site that runs earlier in the same block (e.g. the "
                "MLP's input for an MLP transcoder)"
            )
        if source.shape[:-1] != x.shape[:-1] or source.shape[-1] != self.d_in:
            raise FeatureError(
                f"the transcoder reads {tuple(source.shape)} at its input site for "
                f"{tuple(x.shape)} at its output site; it needs [..., {self.d_in}] with the "
                "same leading dimensions"
            )
        return source

    def _place(self, x: torch.Tensor) -> None:
        param = next(self.sae.parameters(), None)
        if param is None:
            return
        dtype = x.dtype if x.is_floating_point() else param.dtype
        if param.device != x.device or param.dtype != dtype:
            self.sae.to(device=x.device, dtype=dtype)


def _observed(module: nn.Module) -> bool:
    """Return whether any hook (the module's own or a global one) can see its output."""
    from torch.nn.modules import module as torch_module

    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or torch_module._global_forward_hooks
        or torch_module._global_forward_pre_hooks
    )
