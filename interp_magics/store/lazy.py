"""Reading a store back: a cache whose tensors are dask arrays, loaded only when computed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..core.units import format_bytes
from .layout import INPUT_ARRAYS, StoreError, read_meta


def open_group(path: str, mode: str) -> Any:
    """Return the zarr group at ``path`` (a folder or an fsspec URL), with a clear error."""
    try:
        import zarr
    except ImportError:
        raise StoreError(
            'activation stores need zarr and dask: pip install "interp-magics[store]"'
        ) from None
    try:
        return zarr.open_group(path, mode=mode)  # type: ignore[arg-type]
    except FileNotFoundError:
        raise StoreError(f"no activation store at {path!r}") from None
    except Exception as exc:  # zarr raises several kinds for a folder that is not a store
        raise StoreError(f"{path!r} is not a readable zarr store: {exc}") from None


class StoredCache:
    """An activation store opened lazily: like an ``ActivationCache``, tensors stay on disk.

    ``store["resid_post.3"]`` is a dask array ``[examples, ...]``; ``.stack(prefix)`` stacks
    every tensor whose name starts with ``prefix`` along a new first axis; ``input_ids``,
    ``attention_mask`` and ``labels`` are numpy arrays (small); ``positions`` are the kept
    positions; ``nbytes`` is the size on disk and ``nbytes_uncompressed`` in memory.
    """

    def __init__(self, group: Any, path: str, notes: list[str] | None = None) -> None:
        meta = read_meta(group)
        if meta is None:
            raise StoreError(f"{path!r} holds no activation store (no harvest metadata)")
        self.recipe, self.progress = meta
        self.path = path
        self._group = group
        self.notes = list(notes or [])
        self.examples = self.progress.examples_done
        if not self.progress.complete:
            self.notes.append(
                f"incomplete: {self.examples} examples committed; call harvest again to resume"
            )

    def keys(self) -> list[str]:
        """Return the names of the stored tensors, in layer order."""
        names = [k for k in self._group.array_keys() if k not in INPUT_ARRAYS]
        return sorted(names, key=_natural)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __getitem__(self, key: str) -> Any:
        """Return the dask array of tensor ``key``, cut to the committed examples."""
        import dask.array as da

        if key not in self.keys():
            raise KeyError(f"{key!r} is not in the store; it holds {', '.join(self.keys())}")
        return da.from_zarr(self._group[key])[: self.examples]  # type: ignore[no-untyped-call]

    def stack(self, prefix: str) -> Any:
        """Return the tensors whose names start with ``prefix``, stacked: ``[n, examples, ...]``."""
        import dask.array as da

        keys = [k for k in self.keys() if k.startswith(prefix)]
        if not keys:
            raise KeyError(
                f"no stored tensor starts with {prefix!r}; it holds {', '.join(self.keys())}"
            )
        return da.stack([self[k] for k in keys])  # type: ignore[no-untyped-call]

    def _small(self, key: str) -> np.ndarray | None:
        if key not in self._group:
            return None
        return np.asarray(self._group[key][: self.examples])

    @property
    def input_ids(self) -> np.ndarray | None:
        """Return the token ids ``[examples, tokens]``."""
        return self._small("input_ids")

    @property
    def attention_mask(self) -> np.ndarray | None:
        """Return the attention mask ``[examples, tokens]``."""
        return self._small("attention_mask")

    @property
    def labels(self) -> np.ndarray | None:
        """Return the labels stored with the examples, or None."""
        return self._small("labels")

    @property
    def positions(self) -> str | None:
        """Return the positions kept, as given to the harvest (None: every position)."""
        return self.recipe.positions

    @property
    def nbytes(self) -> int:
        """Return the bytes the store takes on disk (compressed)."""
        return int(sum(self._group[k].nbytes_stored() for k in self._group.array_keys()))

    @property
    def nbytes_uncompressed(self) -> int:
        """Return the bytes the stored tensors would take in memory."""
        return int(sum(self[k].nbytes for k in self.keys()))

    def __repr__(self) -> str:
        rows = [f"{k:<22} {tuple(self[k].shape)!s:<20} {self[k].dtype}" for k in self.keys()]
        head = (
            f"StoredCache of {self.recipe.model} at {self.path}: {len(rows)} tensors, "
            f"{self.examples} examples, {format_bytes(self.nbytes)} on disk "
            f"({format_bytes(self.nbytes_uncompressed)} uncompressed)"
        )
        return "\n".join([head, *rows, *self.notes])


def open_store(path: str, *, notes: list[str] | None = None) -> StoredCache:
    """Return the activation store at ``path`` opened lazily (nothing is loaded until used)."""
    return StoredCache(open_group(path, mode="r+"), path, notes)


def _natural(key: str) -> tuple[Any, ...]:
    """Sort ``resid_post.10`` after ``resid_post.9``."""
    return tuple(int(p) if p.isdigit() else p for p in key.replace(":", ".").split("."))
