"""Colour scales, from one place: matplotlib colormaps turned into lookup tables.

The same table colours the browser view (sent as 256 x RGB bytes) and the static PNG, so a
saved notebook shows the colours the live widget showed.
"""

from __future__ import annotations

import functools

import numpy as np

#: Sequential, colour-blind-safe map for non-negative quantities (attention weights).
SEQUENTIAL = "Blues"
#: Diverging map centred on 0 for signed effects (patching).
DIVERGING = "RdBu_r"


@functools.lru_cache(maxsize=32)
def lut(name: str = SEQUENTIAL) -> bytes:
    """Return a 256-entry RGB lookup table (768 bytes) sampled from matplotlib's ``name``."""
    rgba = _cmap(name)(np.linspace(0.0, 1.0, 256))
    return bytes((rgba[:, :3] * 255).round().astype(np.uint8).tobytes())


def _cmap(name: str):  # type: ignore[no-untyped-def]
    import matplotlib

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(
            f"unknown colormap {name!r}; use a matplotlib name such as 'Blues', 'viridis', 'magma'"
        ) from None


def colorize(values: np.ndarray, name: str = SEQUENTIAL, vmax: float = 1.0) -> np.ndarray:
    """Return ``values`` (scaled to ``[0, vmax]``) as RGB uint8 through the same lookup table."""
    table = np.frombuffer(lut(name), dtype=np.uint8).reshape(256, 3)
    idx = np.clip(np.round(values / max(vmax, 1e-12) * 255), 0, 255).astype(np.int64)
    return table[idx]


#: Categorical colours for series (Okabe & Ito), distinguishable with colour-vision deficiencies.
CATEGORICAL = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)
