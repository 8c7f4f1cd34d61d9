"""Resolve user patterns to hook targets, before anything is installed on the model."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .adapters import Adapter, Target, adapter_for
from .errors import CaptureError
from .modules import exposed_modules
from .outputs import Selector
from .sites import (
    CANONICAL_SITES,
    PatternError,
    closest_names,
    generalise,
    match_names,
    parse_canonical,
)


def resolve_targets(
    model: nn.Module,
    patterns: str | Sequence[str],
    *,
    select: Selector | None = None,
    inputs: bool = False,
) -> tuple[list[Target], Adapter | None]:
    """Return the targets ``patterns`` name in ``model`` and the adapter used, if any.

    Raises :class:`CaptureError` naming the closest real modules when a pattern matches
    nothing, and explaining the fix when a canonical site is asked of an unknown architecture.
    """
    if not isinstance(model, nn.Module):
        raise CaptureError(
            f"expected a torch.nn.Module, got {type(model).__name__}; pass the model object "
            "(for a pipeline use pipe.model)"
        )
    if isinstance(patterns, str):
        patterns = [patterns]
    patterns = [p.strip() for p in patterns if isinstance(p, str)]
    if not patterns or any(not p for p in patterns):
        raise CaptureError(
            "give at least one non-empty module pattern, e.g. 'transformer.h.*.mlp' or 'resid_post'"
        )
    names = [name for name, _ in model.named_modules() if name]
    names += list(exposed_modules(model))  # parts attached from outside (SAE features)
    adapter = adapter_for(model)
    aliases = adapter.aliases() if adapter is not None else {}
    targets: dict[str, Target] = {}
    for pattern in patterns:
        for target in _resolve_one(model, pattern, names, adapter, aliases, select, inputs):
            targets.setdefault(target.key, target)
    return list(targets.values()), adapter


def _resolve_one(
    model: nn.Module,
    pattern: str,
    names: list[str],
    adapter: Adapter | None,
    aliases: dict[str, str],
    select: Selector | None,
    inputs: bool,
) -> list[Target]:
    canonical = parse_canonical(pattern)
    if canonical is not None:
        if adapter is None:
            raise CaptureError(
                f"{pattern!r} is a canonical site, but {type(model).__name__} is not an "
                "architecture interp-magics knows (GPT-2, GPT-NeoX/Pythia, Llama-family, "
                "BERT-family, TransformerLens TransformerBridge); capture it with a glob over "
                f"module names instead, e.g. {_example(names)}"
            )
        n = adapter.n_layers
        found = []
        for site in canonical:
            layers = range(n) if site.layer is None else [site.layer]
            for layer in layers:
                if not -n <= layer < n:
                    raise CaptureError(
                        f"layer {layer} in {pattern!r} is out of range: the model has {n} "
                        f"layers (0..{n - 1}, or -1 for the last)"
                    )
                found.append(adapter.target(site.site, layer % n))
        return found
    try:
        matched = match_names(pattern, names)
        matched_aliases = [a for a in match_names(pattern, aliases) if a not in matched]
    except PatternError as exc:
        raise CaptureError(str(exc)) from None
    if not matched and not matched_aliases:
        near = closest_names(pattern, [*names, *aliases])
        hint = f" Closest module names: {', '.join(near)}." if near else ""
        sites = f" Canonical sites: {', '.join(CANONICAL_SITES)}." if adapter is not None else ""
        raise CaptureError(
            f"pattern {pattern!r} matches no module of {type(model).__name__}.{hint}{sites}"
        )
    found = []
    for key in [*matched, *matched_aliases]:
        path = aliases.get(key, key)
        found.append(Target(key=key, path=path, select=select, group=pattern))
        if inputs:
            found.append(
                Target(key=f"{key}:input", path=path, io="input", group=f"{pattern}:input")
            )
    return found


def _example(names: list[str]) -> str:
    """Return a glob over this model's repeated blocks (the shortest one with a ``*``)."""
    repeated = sorted({generalise(n) for n in names if "*" in generalise(n)}, key=len)
    return repr(repeated[0] if repeated else (names[0] if names else "*"))
