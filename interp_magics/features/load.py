"""Loading SAEs through sae-lens: a local folder, or a published release when online.

sae-lens (``pip install "interp-magics[features]"``) is imported only here and in
:mod:`.train`, when first needed: it imports TransformerLens, which takes seconds.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from .inputs import FeatureError


def sae_lens() -> Any:
    """Return the ``sae_lens`` module, or raise :class:`FeatureError` saying how to install it."""
    try:
        import sae_lens as module
    except ImportError as exc:
        raise FeatureError(
            f'sparse autoencoders need sae-lens ({exc}); pip install "interp-magics[features]"'
        ) from None
    return module


def load_sae(
    path_or_release: str | Path,
    sae_id: str | None = None,
    *,
    device: str = "cpu",
    dtype: str | None = None,
) -> Any:
    """Return the sae-lens SAE saved in a folder, or published as ``release``/``sae_id``.

    A folder is what ``sae.save_model(path)`` writes (``cfg.json`` and the weights); it loads
    offline. A release name (e.g. ``"gpt2-small-res-jb"`` with ``sae_id="blocks.8.hook_resid_pre"``)
    is downloaded from the Hugging Face Hub by sae-lens; without a network (or with
    ``HF_HUB_OFFLINE=1`` and nothing cached) the error says how to load it offline.
    """
    folder = Path(path_or_release).expanduser()
    if folder.is_dir():
        if sae_id is not None:
            raise FeatureError(f"{folder} is a folder; sae_id is only for published releases")
        if not (folder / "cfg.json").is_file():
            raise FeatureError(
                f"{folder} holds no sae-lens SAE (no cfg.json); point at the folder "
                "sae.save_model(path) wrote"
            )
        return sae_lens().SAE.load_from_disk(str(folder), device=device, dtype=dtype)
    release = str(path_or_release)
    if sae_id is None:
        raise FeatureError(
            f"{release!r} is not a folder; to load a published SAE give its release and "
            "sae_id, e.g. load_sae('gpt2-small-res-jb', 'blocks.8.hook_resid_pre')"
        )
    module = sae_lens()
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release not in directory and "/" not in release:
        near = difflib.get_close_matches(release, list(directory), n=5)
        hint = f" Closest releases: {', '.join(near)}." if near else ""
        raise FeatureError(f"no published SAE release {release!r}.{hint}")
    if release in directory and sae_id not in directory[release].saes_map:
        ids = list(directory[release].saes_map)
        near = difflib.get_close_matches(sae_id, ids, n=5) or ids[:5]
        raise FeatureError(f"release {release!r} has no SAE {sae_id!r}; it has {', '.join(near)}")
    try:
        return module.SAE.from_pretrained(release, sae_id, device=device, dtype=dtype or "float32")
    except Exception as exc:  # sae-lens and huggingface_hub raise many kinds when offline
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        why = "HF_HUB_OFFLINE is set and it is not cached" if offline else str(exc)
        raise FeatureError(
            f"could not download SAE {release}/{sae_id} ({why}). Offline, load it from a folder: "
            "on a machine with a network run SAE.from_pretrained(release, sae_id)"
            ".save_model(folder), copy the folder here and call load_sae(folder)"
        ) from exc
