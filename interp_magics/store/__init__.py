"""Activation stores larger than memory: harvest captures into zarr, read them back lazily.

``harvest(model, data, sites, "acts.zarr")`` streams batches through the capture engine into a
zarr v3 store (one array per captured tensor, chunked along examples, compressed), resumably;
``open_store(path)`` returns a :class:`StoredCache` whose tensors are dask arrays, loaded only
when computed. Paths are local folders or fsspec URLs (``s3://``, ``gs://``, ``memory://``).
Needs ``zarr`` and ``dask`` (``pip install "interp-magics[store]"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["StoreError", "StoredCache", "harvest", "open_store"]

if TYPE_CHECKING:
    from .harvesting import harvest
    from .layout import StoreError
    from .lazy import StoredCache, open_store

_LAZY = {
    "harvest": ("harvesting", "harvest"),
    "StoreError": ("layout", "StoreError"),
    "StoredCache": ("lazy", "StoredCache"),
    "open_store": ("lazy", "open_store"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
