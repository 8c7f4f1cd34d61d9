"""Probing every layer of an activation store: streamed, serially or on a dask cluster.

Each layer's tensor stays in the store and is probed by the streaming ridge probe
(:mod:`.streaming`). With a ``dask.distributed`` client active and a store the workers can
reach (a folder or an object-store URL, not ``memory://``), layers run in parallel: each worker
opens the store itself and reads only its layer.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .inputs import ProbeError
from .streaming import active_client


def is_store(cache: Any) -> bool:
    """Return whether ``cache`` is an opened activation store (a ``StoredCache``)."""
    return type(cache).__name__ == "StoredCache" and hasattr(cache, "recipe")


def store_layer_reports(
    fit: Callable[..., Any],
    store: Any,
    y: Any,
    layers: str | Sequence[str] | None,
    position: int | str,
    progress: bool,
    kwargs: dict[str, Any],
) -> tuple[list[Any], list[str]]:
    """Return one report of ``fit`` (:func:`.api.probe`) per selected layer of ``store``, and
    the layers' keys."""
    keys = _keys(store, layers)
    index = _position(store[keys[0]].shape, position)
    y_arr = np.asarray(y)
    if y_arr.ndim != 1:
        raise ProbeError(
            f"labels for a store are one per example ([{store.examples}]); got shape {y_arr.shape}"
        )
    client = active_client() if not str(store.path).startswith("memory://") else None
    if client is not None:
        futures = client.map(
            _probe_layer,
            [store.path] * len(keys),
            keys,
            fit=fit,
            index=index,
            y=y_arr,
            kwargs=kwargs,
        )
        return client.gather(futures), keys
    from tqdm.auto import tqdm

    reports = [
        _probe(fit, store, key, index, y_arr, kwargs)
        for key in tqdm(keys, desc="probing layers", disable=not progress, leave=False)
    ]
    return reports, keys


def _probe(
    fit: Callable[..., Any],
    store: Any,
    key: str,
    index: int | None,
    y: np.ndarray,
    kwargs: dict[str, Any],
) -> Any:
    x = store[key]
    x = x[:, index] if index is not None else x
    return fit(x, y, name=key, progress=False, _emit=False, **kwargs)


def _probe_layer(
    path: str,
    key: str,
    *,
    fit: Callable[..., Any],
    index: int | None,
    y: np.ndarray,
    kwargs: dict[str, Any],
) -> Any:
    """Probe one layer of the store at ``path`` on a worker (its chunks read where it runs)."""
    import dask

    from ..store.lazy import open_store

    with dask.config.set(scheduler="synchronous"):  # no tasks from within a task
        return _probe(fit, open_store(path), key, index, y, kwargs)


def _keys(store: Any, layers: str | Sequence[str] | None) -> list[str]:
    names = store.keys()
    if layers is None:
        keys = [k for k in names if k.startswith("resid_post.")] or names
    elif isinstance(layers, str):
        keys = [k for k in names if fnmatch.fnmatchcase(k, layers)]
    else:
        keys = [k for k in layers if k in names]
    if not keys:
        raise ProbeError(f"no stored tensor matches {layers!r}; the store holds {', '.join(names)}")
    return keys


def _position(shape: tuple[int, ...], position: int | str) -> int | None:
    """Return the index of the kept position to probe (None for a 2-D tensor)."""
    if len(shape) == 2:
        return None
    kept = int(shape[1])
    if kept == 1:
        return 0
    if isinstance(position, int) and -kept <= position < kept:
        return position % kept
    raise ProbeError(
        f"the store keeps {kept} positions per example; pick one with position=INDEX "
        f"(0..{kept - 1}), or harvest with positions=-1"
    )
