"""SAE features as sites: splice an SAE into a model so ``sae:<site>`` names its features.

``attach_sae(model, sae, "resid_post.1")`` splices a :class:`~.splice.FeatureSplice` in at
that site through :func:`interp_magics.core.modules.attach`: the model is not changed (no new
module, parameter or state-dict entry), and ``capture(model, "sae:resid_post.1")``,
interventions and hooks see the features ``[batch, pos, n_features]`` as a module; the error
term is ``sae:resid_post.1.error``. Everything is checked before anything is attached: the
site exists and is one tensor of the model, its width is the SAE's ``d_in`` (read from the
config, nothing is run), and the SAE is one this splice runs faithfully.

Supported: any sae-lens SAE class (standard, TopK, JumpReLU, gated...) and transcoders
(``Transcoder``, ``SkipTranscoder``...: ``site`` is the output site, ``input_site`` the site
it reads, e.g. ``site="mlp_out.1", input_site="model.layers.1.mlp:input"``; ``:input`` reads
a module's input). Refused, with the fix: SAEs that reshape ``hook_z`` themselves (turn the
reshaping off and attach at ``head_out.L``, whose tensor is the heads' outputs flattened),
SAEs that expect inputs normalised by a factor they do not apply themselves, and SAEs of a
single attention head.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..core.adapters import Target, adapter_for
from ..core.errors import CaptureError
from ..core.memory import RESIDUAL_SITES, model_dims
from ..core.modules import Attachment, attach, attachments, detach, find_module
from ..core.outputs import select_input, select_tensor
from ..core.targets import resolve_targets
from ..core.traced import is_nnsight, unwrap
from .inputs import FeatureError
from .splice import FeatureSplice

#: Where sae-lens (TransformerLens) hook names put the canonical sites.
_TL_HOOK = re.compile(
    r"^blocks\.(?P<layer>\d+)\.(?:attn\.hook_(?P<z>z)|hook_(?P<site>resid_pre|resid_post|"
    r"attn_out|mlp_out))$"
)
#: Input normalisations an SAE config may name but does not apply at run time.
_EXTERNAL_NORMS = ("expected_average_only_in", "covariance_whitening")


@dataclass
class FeatureSite:
    """An SAE spliced into a model: its features are the module named ``key``.

    ``site`` is the model's site it reads and writes (``resid_post.1``), ``input_site`` a
    transcoder's input site. ``residual`` says whether decoder directions live in the residual
    stream (``resid_*``, ``attn_out``, ``mlp_out``), where the unembedding reads them.
    """

    key: str
    site: str
    path: str
    sae: Any
    splice: FeatureSplice
    target: Target
    source: Target | None = None
    residual: bool = False
    layer: int | None = None
    _model: Any = field(default=None, repr=False)

    @property
    def input_site(self) -> str | None:
        """Return a transcoder's input site (None for an SAE)."""
        return self.source.key if self.source is not None else None

    @property
    def n_features(self) -> int:
        """Return how many features the SAE has."""
        return self.splice.n_features

    @property
    def error_key(self) -> str:
        """Return the name of the error term's site."""
        return f"{self.key}.error"

    @property
    def model(self) -> nn.Module:
        """Return the model the SAE is spliced into."""
        model = self._model() if self._model is not None else None
        if model is None:
            raise FeatureError(f"the model {self.key} was attached to no longer exists")
        return model  # type: ignore[no-any-return]

    @property
    def attached(self) -> bool:
        """Return whether this splice is still attached to its model."""
        model = self._model() if self._model is not None else None
        item = attachments(model).get(self.key) if model is not None else None
        return item is not None and item.module is self.splice

    def detach(self) -> None:
        """Remove the splice from the model (the model is as it was before attaching)."""
        model = self._model() if self._model is not None else None
        if model is not None and self.attached:
            detach(model, self.key)

    def __enter__(self) -> FeatureSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()


def attach_sae(
    model: nn.Module,
    sae: nn.Module,
    site: str | None = None,
    *,
    key: str | None = None,
    input_site: str | None = None,
) -> FeatureSite:
    """Return the :class:`FeatureSite` of ``sae`` spliced into ``model`` at ``site``.

    Args:
        model: a HuggingFace model (GPT-2, GPT-NeoX, Llama-family, BERT), a TransformerLens
            bridge, an nnsight model (its module), or any module (sites as globs).
        sae: a sae-lens SAE or transcoder (``cfg.d_in``, ``cfg.d_sae``, ``encode``, ``decode``).
        site: where it reads and writes, e.g. ``"resid_post.1"``, ``"mlp_out.0"`` or a module
            path; default: the site named by the SAE's ``cfg.metadata.hook_name``
            (TransformerLens names like ``blocks.1.hook_resid_post`` are translated).
        key: the features' site name (default ``"sae:<site>"``, e.g. ``sae:resid_post.1``).
        input_site: a transcoder's input site (``"<module path>:input"`` reads a module's input).

    Attaching again under the same key replaces the earlier SAE.

    Raises:
        FeatureError: for a site that is not one tensor of the model, a width that is not the
            SAE's, an SAE this splice cannot run faithfully; nothing is attached then.
    """
    module = unwrap(model) if is_nnsight(model) else model
    if not isinstance(module, nn.Module):
        raise FeatureError(f"attach_sae needs a torch model, not {type(model).__name__}")
    cfg = _checked_sae(sae)
    transcoder = hasattr(cfg, "d_out")
    if site is None:
        site = _site_from_metadata(cfg, "hook_name_out" if transcoder else "hook_name")
    target = _one_target(module, site, "site")
    if target.site == "pattern":
        raise FeatureError("attention patterns are not activations an SAE reads; pick another site")
    width = site_width(module, target)
    d_out = int(getattr(cfg, "d_out", cfg.d_in))
    if width is not None and width != d_out:
        raise FeatureError(
            f"the SAE {'writes' if transcoder else 'reads'} vectors of width {d_out}, but "
            f"{target.key!r} has width {width}; attach it at a site of width {d_out} (an SAE "
            "trained on another layer's or model's activations does not fit here)"
        )
    source = _source_target(module, cfg, input_site) if transcoder else None
    if input_site is not None and not transcoder:
        raise FeatureError("input_site is for transcoders; an SAE reads and writes one site")
    key = key if key is not None else f"sae:{target.key}"
    if not isinstance(key, str) or not key.strip():
        raise FeatureError(f"key must be a non-empty name, got {key!r}")
    splice = FeatureSplice(sae, transcoder=transcoder)
    exposed = {key: splice.features, f"{key}.error": splice.error}
    item = attach(module, key, target, splice, exposed=exposed)
    if source is not None:
        try:
            _read_source(module, item, source, splice)
        except BaseException:
            detach(module, key)
            raise
    info = FeatureSite(
        key=key,
        site=target.key,
        path=target.path,
        sae=sae,
        splice=splice,
        target=target,
        source=source,
        residual=target.site in RESIDUAL_SITES,
        layer=target.layer,
        _model=weakref.ref(module),
    )
    splice.site_info = info
    return info


def _source_target(model: nn.Module, cfg: Any, input_site: str | None) -> Target:
    """Return a transcoder's input site (given, or named by its metadata), width checked."""
    if input_site is None:
        input_site = _site_from_metadata(cfg, "hook_name", missing_ok=True)
    if input_site is None:
        raise FeatureError(
            "a transcoder reads one site and writes another: give input_site=..., e.g. "
            "'transformer.h.1.mlp:input' (the MLP's input) for site='mlp_out.1'"
        )
    source = _one_target(model, input_site, "input_site")
    width = site_width(model, source)
    if width is not None and width != int(cfg.d_in):
        raise FeatureError(
            f"the transcoder reads vectors of width {int(cfg.d_in)}, but input_site "
            f"{source.key!r} has width {width}"
        )
    return source


def detach_sae(model: nn.Module, key: str | None = None) -> int:
    """Return how many SAEs were removed from ``model`` (``key`` or its site; None: all SAEs).

    Other attachments (not SAEs) are left alone.
    """
    module = unwrap(model) if is_nnsight(model) else model
    found = {k: a for k, a in attachments(module).items() if isinstance(a.module, FeatureSplice)}
    if key is not None:
        found = {k: a for k, a in found.items() if key in (k, a.site)}
    return sum(detach(module, k) for k in found)


@contextlib.contextmanager
def spliced(
    model: nn.Module,
    sae: nn.Module,
    site: str | None = None,
    *,
    key: str | None = None,
    input_site: str | None = None,
) -> Iterator[FeatureSite]:
    """Yield the :class:`FeatureSite` of ``sae`` spliced in for the block; removed after it."""
    info = attach_sae(model, sae, site, key=key, input_site=input_site)
    try:
        yield info
    finally:
        info.detach()


def feature_site(model: nn.Module, site: Any) -> FeatureSite:
    """Return the attached :class:`FeatureSite` named by ``site``: a FeatureSite, its key
    (``"sae:resid_post.1"``) or the model site it sits at (``"resid_post.1"``)."""
    module = unwrap(model) if is_nnsight(model) else model
    if isinstance(site, FeatureSite):
        if not site.attached or site.model is not module:
            raise FeatureError(
                f"{site.key} is not attached to this model; attach it with features.attach_sae"
            )
        return site
    found = {
        k: a.module.site_info
        for k, a in attachments(module).items()
        if isinstance(a.module, FeatureSplice)
    }
    if isinstance(site, str):
        for k, info in found.items():
            if site in (k, info.site):
                return info  # type: ignore[no-any-return]
    have = ", ".join(found) or "none"
    raise FeatureError(
        f"no SAE is attached at {site!r} (attached: {have}); attach one with "
        "features.attach_sae(model, sae, site) or use `with features.spliced(model, sae, site):`"
    )


def site_width(model: nn.Module, target: Target) -> int | None:
    """Return the width of ``target``'s tensor read from the config or the module (None when
    only a run would tell)."""
    dims = model_dims(model)
    if target.site in RESIDUAL_SITES:
        return dims.d_model
    if target.site == "head_out":
        return dims.d_heads
    try:
        module = find_module(model, target.path)
    except AttributeError:
        return None
    adapter = adapter_for(model)
    if adapter is not None and any(module is b for b in adapter.blocks):
        return dims.d_model
    return _module_width(module, target.io)


def _module_width(module: nn.Module, io: str) -> int | None:
    if isinstance(module, nn.Linear):
        return module.out_features if io == "output" else module.in_features
    if isinstance(module, nn.Embedding) and io == "output":
        return module.embedding_dim
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Conv1D" and isinstance(weight, torch.Tensor):
        return int(weight.shape[1] if io == "output" else weight.shape[0])  # [in, out]
    if "norm" in type(module).__name__.lower() and isinstance(weight, torch.Tensor):
        return int(weight.shape[-1])
    return None


def _checked_sae(sae: Any) -> Any:
    """Return ``sae.cfg`` once ``sae`` is an SAE this splice runs faithfully."""
    cfg: Any = getattr(sae, "cfg", None)
    ok = (
        isinstance(sae, nn.Module)
        and callable(getattr(sae, "encode", None))
        and callable(getattr(sae, "decode", None))
        and isinstance(getattr(cfg, "d_in", None), int)
        and isinstance(getattr(cfg, "d_sae", None), int)
    )
    if not ok:
        raise FeatureError(
            f"expected a sae-lens SAE or transcoder (an nn.Module with encode, decode and "
            f"cfg.d_in / cfg.d_sae), got {type(sae).__name__}; load one with "
            "features.load_sae(path) or train one with features.train_sae(...)"
        )
    if getattr(sae, "hook_z_reshaping_mode", False):
        raise FeatureError(
            "this SAE reshapes hook_z ([..., heads, d_head]) itself; interp-magics gives the "
            "heads' outputs flattened at head_out.L ([batch, pos, heads * d_head]): call "
            "sae.turn_off_forward_pass_hook_z_reshaping() and attach it at 'head_out.<layer>'"
        )
    if getattr(cfg, "normalize_activations", "none") in _EXTERNAL_NORMS:
        raise FeatureError(
            f"this SAE expects inputs normalised by a factor it does not apply itself "
            f"(normalize_activations={cfg.normalize_activations!r}); fold it into the weights "
            "first (sae.fold_activation_norm_scaling_factor(factor) or "
            "sae.fold_activation_whitening(...)), as SAE.from_pretrained does"
        )
    metadata = getattr(cfg, "metadata", None)
    if getattr(metadata, "hook_head_index", None) is not None:
        raise FeatureError(
            "this SAE reads one attention head (metadata.hook_head_index); SAE sites read "
            "whole tensors: train or load an SAE of the whole site"
        )
    return cfg


def _site_from_metadata(cfg: Any, field_name: str, *, missing_ok: bool = False) -> Any:
    """Return the site the SAE's metadata names (TransformerLens names translated)."""
    metadata: Any = getattr(cfg, "metadata", None)
    name = metadata.get(field_name) if hasattr(metadata, "get") else None
    if not isinstance(name, str) or not name:
        if missing_ok:
            return None
        raise FeatureError(
            "give the site the SAE reads, e.g. attach_sae(model, sae, 'resid_post.1'): its "
            f"config names none (metadata.{field_name} is empty)"
        )
    match = _TL_HOOK.match(name)
    if match is None:
        return name
    site = "head_out" if match.group("z") else match.group("site")
    return f"{site}.{match.group('layer')}"


def _one_target(model: nn.Module, pattern: Any, what: str) -> Target:
    """Return the one target ``pattern`` names (``:input`` selects a module's input)."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise FeatureError(f"{what} must be a site name such as 'resid_post.1', got {pattern!r}")
    inputs = pattern.endswith(":input")
    name = pattern.removesuffix(":input") if inputs else pattern
    try:
        targets, _ = resolve_targets(model, name, inputs=inputs)
    except CaptureError as exc:
        raise FeatureError(str(exc)) from None
    if inputs:
        targets = [t for t in targets if t.io == "input"]
    if len(targets) != 1:
        names = ", ".join(t.key for t in targets[:6])
        raise FeatureError(
            f"{what} {pattern!r} names {len(targets)} tensors ({names}); an SAE sits at one site: "
            "give one layer, e.g. 'resid_post.1'"
        )
    return targets[0]


def _read_source(model: nn.Module, item: Attachment, source: Target, splice: FeatureSplice) -> None:
    """Install the hook that hands a transcoder its input site's tensor (owned by the splice's
    attachment, so detaching removes it)."""
    module = find_module(model, source.path)
    if source.io == "input":

        def pre(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            tensor = select_input(args, kwargs)
            if tensor is None:
                raise FeatureError(f"{source.path} was called without a tensor input")
            splice.read_source(tensor)

        handle = module.register_forward_pre_hook(pre, with_kwargs=True)
        item.hooks.add(handle, source.path, "forward_pre")
        return

    def post(mod: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        tensor = select_tensor(output, source.select, where=source.path)
        if tensor is None:
            raise FeatureError(f"{source.path} returned no tensor for the transcoder to read")
        splice.read_source(tensor)

    item.hooks.add(module.register_forward_hook(post), source.path, "forward")
