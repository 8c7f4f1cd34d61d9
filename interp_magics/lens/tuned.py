"""The tuned lens (Belrose et al. 2023) through the ``tuned-lens`` package's ``TunedLens``.

A tuned lens gives each layer an affine translator, ``h + A_l h + b_l``, trained so that the
model's final norm and unembedding read the translated stream as the final layer's
distribution. Its translators are the package's (``TunedLens.layer_translators``), saved and
loaded in its published layout (``config.json`` + ``params.pt``).

``TunedLens.from_model`` and ``Unembed(model)`` find the final norm through
``tuned_lens.model_surgery.get_final_norm``, which touches TransformerLens's removed
``HookedTransformer`` and raises ImportError under TransformerLens 4; they also deep-copy the
unembedding (the whole vocabulary matrix). :class:`AnatomyUnembed` replaces both: a
``tuned_lens.nn.Unembed`` built from :func:`~interp_magics.core.anatomy.anatomy` that reads
the model's own final norm and unembedding in place (not registered as submodules, so the lens's
state, ``.to()`` and ``save`` cover the translators only), through :class:`~.readout.Readout`,
which also handles offloaded weights. Any ``TunedLens``, ours or the package's, is applied the
same way: its translators, then our readout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.options import Positions
from ..core.placement import weights_present
from .inputs import LensError, LensModel, lens_model
from .logit import run_lens
from .readout import Readout
from .result import LensResult


def _unembed_class() -> type:
    """Return :class:`AnatomyUnembed`, defined on first use (importing the package is slow)."""
    global _UNEMBED
    if _UNEMBED is not None:
        return _UNEMBED
    from tuned_lens.nn import Unembed
    from tuned_lens.utils import tensor_hash

    class AnatomyUnembed(Unembed):  # type: ignore[misc]
        """``tuned_lens`` Unembed over a model's own final norm and unembedding, in place."""

        def __init__(self, readout: Readout) -> None:
            nn.Module.__init__(self)  # not Unembed.__init__: it calls get_final_norm
            object.__setattr__(self, "_readout", readout)  # plain attribute, not a submodule

        @property
        def final_norm(self) -> nn.Module:
            return self._readout.norm  # type: ignore[no-any-return]

        @property
        def unembedding(self) -> nn.Module:
            return self._readout.unembed  # type: ignore[no-any-return]

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            return self._readout.logits(h)  # type: ignore[no-any-return]

        def unembedding_hash(self) -> str:
            module = self.unembedding
            with weights_present(module):
                weight = getattr(module, "weight", None)
                assert isinstance(weight, torch.Tensor)
                values = weight.detach().cpu().float().numpy()
            return tensor_hash(values)  # type: ignore[no-any-return]

    _UNEMBED = AnatomyUnembed
    return AnatomyUnembed


_UNEMBED: type | None = None


def _config(lm: LensModel, name: str) -> Any:
    from tuned_lens.nn import TunedLensConfig

    return TunedLensConfig(
        base_model_name_or_path=name,
        d_model=lm.anatomy.d_model,
        num_hidden_layers=lm.n_layers,
        bias=True,
    )


def _model_name(lm: LensModel) -> str:
    return str(getattr(getattr(lm.module, "config", None), "name_or_path", "") or lm.name)


def new_tuned_lens(model: Any) -> Any:
    """Return a fresh ``tuned_lens.nn.TunedLens`` for ``model``: identity translators (it
    decodes exactly as the logit lens until trained), on the final norm's device."""
    from tuned_lens.nn import TunedLens

    lm = lens_model(model)
    readout = Readout(lm.module, lm.anatomy)
    lens = TunedLens(_unembed_class()(readout), _config(lm, _model_name(lm)))
    return lens.to(readout.device)


def load_tuned_lens(model: Any, path: str | Path, **kwargs: Any) -> Any:
    """Return the ``TunedLens`` saved at ``path`` for ``model``, loaded by the package's
    loader (``TunedLens.from_unembed_and_pretrained``).

    ``path`` is a folder in the published layout (``config.json`` + ``params.pt``, as
    ``TunedLens.save`` writes it) or a lens id the package finds on the Hugging Face Hub
    (needs network access). ``kwargs`` go to the package's loader (``subfolder``,
    ``revision``, ...).
    """
    from tuned_lens.nn import TunedLens

    lm = lens_model(model)
    folder = Path(path)
    if folder.is_dir():
        missing = [f for f in ("config.json", "params.pt") if not (folder / f).is_file()]
        if missing:
            raise LensError(
                f"{folder} is not a tuned-lens folder: it lacks {', '.join(missing)} (a lens "
                "saved by TunedLens.save has config.json and params.pt)"
            )
        _check_config(json.loads((folder / "config.json").read_text()), lm, folder)
    readout = Readout(lm.module, lm.anatomy)
    try:
        lens = TunedLens.from_unembed_and_pretrained(_unembed_class()(readout), str(path), **kwargs)
    except (OSError, ValueError) as exc:  # the Hub unreachable, or no such lens there
        raise LensError(
            f"could not load a tuned lens from {str(path)!r}: {exc}. Give a local folder "
            "with config.json and params.pt, or a lens id on the Hub with network access"
        ) from None
    check_lens(lens, lm)
    return lens.to(readout.device)


def _check_config(config: dict[str, Any], lm: LensModel, where: Path) -> None:
    d, n = config.get("d_model"), config.get("num_hidden_layers")
    if (d, n) != (lm.anatomy.d_model, lm.n_layers):
        raise LensError(
            f"the tuned lens in {where} is for a model with d_model {d} and {n} layers; "
            f"{lm.name} has d_model {lm.anatomy.d_model} and {lm.n_layers} layers"
        )


def check_lens(lens: Any, lm: LensModel) -> None:
    """Raise LensError unless ``lens`` is a ``TunedLens`` whose translators fit ``lm``."""
    translators = getattr(lens, "layer_translators", None)
    if not isinstance(translators, nn.ModuleList) or not callable(
        getattr(lens, "transform_hidden", None)
    ):
        raise LensError(
            f"lens must be a tuned_lens.nn.TunedLens (or a folder holding one), not "
            f"{type(lens).__name__}"
        )
    d = getattr(getattr(translators[0], "weight", None), "shape", (None, None))[-1]
    if len(translators) != lm.n_layers or d != lm.anatomy.d_model:
        raise LensError(
            f"this tuned lens has {len(translators)} translators of width {d}; {lm.name} "
            f"needs {lm.n_layers} of width {lm.anatomy.d_model}"
        )


def tuned_lens(
    model: Any,
    inputs: Any,
    *,
    lens: Any,
    layers: int | Sequence[int] | None = None,
    positions: Positions | str | None = None,
    k: int = 5,
    answer: Any = None,
    tokenizer: Any = None,
    remote: bool = False,
) -> LensResult:
    """Return each residual stream decoded through a tuned lens's translator for its layer.

    ``lens`` is a ``tuned_lens.nn.TunedLens`` (from :func:`train_tuned_lens`,
    :func:`new_tuned_lens`, :func:`load_tuned_lens` or the package itself) or a path that
    :func:`load_tuned_lens` reads. The last stream has no translator: it decodes to the
    model's own output. Every other argument is as for
    :func:`~interp_magics.lens.logit.logit_lens`.
    """
    lm = lens_model(model, tokenizer, remote=remote)
    if isinstance(lens, (str, Path)):
        lens = load_tuned_lens(lm.module, lens)
    check_lens(lens, lm)
    param = next(lens.parameters())

    def translate(h: torch.Tensor, layer: int) -> torch.Tensor:
        with torch.no_grad():
            out: torch.Tensor = lens.transform_hidden(h.to(param.device, param.dtype), layer)
        return out

    return run_lens(lm, inputs, layers, positions, k, answer, translate, "tuned lens")
