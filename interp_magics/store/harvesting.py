"""Harvest: stream batches through the capture engine into a zarr store, resumably.

Batches are captured on the calling thread and written by a writer thread through a bounded
queue, so the model's next batch runs while the last one is compressed and written. A batch is
committed when its rows are written and the store's metadata records it; rows past the commit
point (a write cut short by Ctrl-C, a killed kernel or a full disk) are dropped when the harvest
is called again, and the batches already committed are checked against the data (one
fingerprint each) and skipped, so nothing is duplicated or missing.

Arrays grow geometrically (doubling, in whole chunks) rather than by one batch at a time:
resizing rewrites each array's metadata, which cost as much as an eighth of the writer's time
when done per batch. The metadata's ``examples_done``, not an array's length, says how many rows
hold data while a harvest runs (readers cut there); a finished harvest trims every array to it.
Chunks are compressed with Blosc (LZ4, bit-shuffled), which releases the interpreter lock while
it works, so compression overlaps the model's next forward.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..core.capturing import Capture
from ..version import __version__
from .layout import (
    Progress,
    Recipe,
    StoreError,
    batch_fingerprint,
    check_same,
    config_hash,
    read_meta,
    write_meta,
)
from .lazy import StoredCache, open_group, open_store

#: Batches captured but not yet written, at most (bounds the memory a slow disk can hold up).
QUEUE = 2


def _codec() -> Any:
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")


def harvest(
    model: Any,
    data: Any,
    sites: str | Sequence[str],
    store: str = "acts.zarr",
    *,
    positions: int | str | Sequence[int] | None = None,
    dtype: str = "float16",
    batch_size: int = 32,
    tokenizer: Any = None,
    max_length: int = 128,
    max_bytes: int | str | None = None,
    progress: bool = True,
) -> StoredCache:
    """Return the store at ``store`` after capturing ``sites`` of ``model`` over ``data``.

    Args:
        data: a list of texts (with ``tokenizer``; each padded to ``max_length`` tokens), a
            HuggingFace ``datasets.Dataset`` (a ``text`` column, or ``input_ids``; labels from a
            ``label`` or ``labels`` column), or any iterable of batches (token-id tensors or
            tokenizer outputs, with ``labels`` optional), all of one sequence length.
        sites: canonical sites or module globs, as for :func:`~interp_magics.capture`.
        store: a local folder or an fsspec URL (``s3://bucket/acts.zarr``, ``memory://x``).
        positions, dtype, max_bytes: as for ``capture``, applied to every batch.
        batch_size: examples per batch for texts and datasets; also the chunk length.

    Calling again with the same arguments resumes an interrupted harvest (and returns at once
    when it is complete); a store harvested differently is refused, naming the differences.
    """
    batches = _batches(data, tokenizer, batch_size, max_length)
    first = next(batches, None)
    if first is None:
        raise StoreError("the data is empty: give at least one example")
    group = open_group(store, mode="a")
    recipe = Recipe(
        model=type(model).__name__,
        config_hash=config_hash(model),
        sites=[sites] if isinstance(sites, str) else list(sites),
        positions=None if positions is None else str(positions),
        dtype=dtype,
        tokenizer=_name(tokenizer),
        batch_size=batch_size,
        tokens=int(first["input_ids"].shape[1]),
        version=__version__,
    )
    found = read_meta(group)
    done = Progress()
    if found is not None:
        check_same(found[0], recipe, store)
        done = found[1]
    notes = []
    if done.complete:
        return open_store(store, notes=["complete already: nothing to harvest"])
    if done.examples_done:
        notes.append(f"resumed after {done.examples_done} examples ({len(done.batches)} batches)")
    _truncate(group, done.examples_done)
    cap = Capture(model, recipe.sites, dtype=dtype, positions=positions, max_bytes=max_bytes)
    write_meta(group, recipe, done)
    total = _count(data, batch_size)
    _run(cap, group, recipe, done, _chain(first, batches), total, progress, notes)
    return open_store(store, notes=notes)


def store_cache(
    model: Any,
    cache: Any,
    store: str,
    sites: Sequence[str],
    *,
    positions: Any = None,
    dtype: str | None = None,
    tokenizer: Any = None,
) -> str:
    """Append one capture (one call of ``model``) to ``store``; return what was done, in words.

    What ``%%activations --store`` does with a cell's capture: the same layout and checks as
    :func:`harvest`, each cell one committed batch; a cell run again with the same tokens is
    not stored twice.
    """
    ids = getattr(cache, "input_ids", None)
    if ids is None:
        raise StoreError(
            "the capture recorded no token ids (the model was not called with input_ids)"
        )
    if any("#" in key for key in cache):
        raise StoreError(
            "the cell called the model more than once; a store holds one row per example: call "
            "it once per cell (or use harvest() for many batches)"
        )
    mask = cache.attention_mask if cache.attention_mask is not None else torch.ones_like(ids)
    batch = {
        "input_ids": ids.numpy().astype(np.int64),
        "attention_mask": mask.numpy().astype(np.int8),
    }
    tensors = {key: cache[key].numpy() for key in cache}
    group = open_group(store, mode="a")
    found = read_meta(group)
    recipe = Recipe(
        model=type(model).__name__,
        config_hash=config_hash(model),
        sites=list(sites),
        positions=None if positions is None else str(positions),
        dtype=str(dtype or next(iter(tensors.values())).dtype),
        tokenizer=_name(tokenizer),
        batch_size=found[0].batch_size if found else len(ids),
        tokens=int(ids.shape[1]),
        version=__version__,
    )
    done = Progress()
    if found is not None:
        check_same(found[0], recipe, store)
        done = found[1]
    fingerprint = batch_fingerprint(batch["input_ids"], None)
    if fingerprint in done.batches:
        return f"already in {store} (batch {done.batches.index(fingerprint)}): not stored again"
    _truncate(group, done.examples_done)
    pending: queue.Queue[Any] = queue.Queue()
    pending.put((batch, tensors, fingerprint))
    pending.put(None)
    failed: list[BaseException] = []
    _write(group, recipe, done, pending, failed)
    if failed:
        raise StoreError(f"writing the store failed: {failed[0]}") from failed[0]
    _truncate(group, done.examples_done)
    done.complete = True
    write_meta(group, recipe, done)
    return f"stored {len(ids)} examples in {store} (now {done.examples_done})"


def _name(tokenizer: Any) -> str | None:
    if tokenizer is None:
        return None
    return str(getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__)


def _run(
    cap: Capture,
    group: Any,
    recipe: Recipe,
    done: Progress,
    batches: Iterator[dict[str, np.ndarray]],
    total: int | None,
    progress: bool,
    notes: list[str],
) -> None:
    """Capture each batch here and write it on a writer thread; commit batch by batch."""
    from tqdm.auto import tqdm

    pending: queue.Queue[Any] = queue.Queue(maxsize=QUEUE)
    failed: list[BaseException] = []
    writer = threading.Thread(
        target=_write, args=(group, recipe, done, pending, failed), daemon=True
    )
    writer.start()
    bar = tqdm(total=total, desc="harvest", unit="batch", disable=not progress)
    try:
        for i, batch in enumerate(batches):
            fingerprint = batch_fingerprint(batch["input_ids"], batch.get("labels"))
            if i < len(done.batches):
                if done.batches[i] != fingerprint:
                    raise StoreError(
                        f"batch {i} of the data differs from the one the store holds; resume "
                        "with the same data in the same order, or harvest into a new path"
                    )
                bar.update(1)
                continue
            if failed:
                break
            inputs = {k: torch.as_tensor(v).long() for k, v in batch.items() if k != "labels"}
            with torch.no_grad():
                cache = cap.run(inputs)
            tensors = {key: cache[key].numpy() for key in cache}
            pending.put((batch, tensors, fingerprint))
            bar.update(1)
    finally:
        pending.put(None)
        writer.join()
        bar.close()
    if failed:
        raise StoreError(f"writing the store failed: {failed[0]}") from failed[0]
    _truncate(group, done.examples_done)
    done.complete = True
    write_meta(group, recipe, done)


def _write(
    group: Any,
    recipe: Recipe,
    done: Progress,
    pending: queue.Queue[Any],
    failed: list[BaseException],
) -> None:
    """Append each queued batch to its arrays, then commit it in the metadata."""
    arrays_of: dict[str, Any] = {}  # opened once: each lookup reads the array's metadata
    while True:
        item = pending.get()
        if item is None:
            return
        if failed:
            continue
        batch, tensors, fingerprint = item
        try:
            n = int(batch["input_ids"].shape[0])
            start = done.examples_done
            arrays = {
                **tensors,
                "input_ids": batch["input_ids"],
                "attention_mask": batch["attention_mask"],
            }
            if batch.get("labels") is not None:
                arrays["labels"] = batch["labels"]
            for key, value in arrays.items():
                _append(group, arrays_of, key, value, start, recipe.batch_size)
            done.examples_done = start + n
            done.batches.append(fingerprint)
            write_meta(group, recipe, done)  # the commit point
        except BaseException as exc:  # reported on the harvesting thread
            failed.append(exc)


def _append(
    group: Any, arrays_of: dict[str, Any], key: str, value: np.ndarray, start: int, chunk: int
) -> None:
    array = arrays_of.get(key)
    if array is None:
        if key not in group:
            group.create_array(
                key,
                shape=(0, *value.shape[1:]),
                chunks=(chunk, *value.shape[1:]),
                dtype=value.dtype,
                compressors=_codec(),
            )
        array = arrays_of[key] = group[key]
    if tuple(array.shape[1:]) != tuple(value.shape[1:]):
        raise StoreError(
            f"{key} has shape {tuple(value.shape[1:])} per example here but "
            f"{tuple(array.shape[1:])} in the store: every batch needs the same sequence length"
        )
    end = start + value.shape[0]
    if array.shape[0] < end:
        grown = max(end, 2 * array.shape[0])
        array.resize((-(-grown // chunk) * chunk, *value.shape[1:]))
    array[start:end] = value


def _truncate(group: Any, rows: int) -> None:
    """Drop rows past the commit point: a write the last harvest did not finish."""
    for key in list(group.array_keys()):
        array = group[key]
        if array.shape[0] > rows:
            array.resize((rows, *array.shape[1:]))


def _chain(
    first: dict[str, np.ndarray], rest: Iterator[dict[str, np.ndarray]]
) -> Iterator[dict[str, np.ndarray]]:
    yield first
    yield from rest


def _count(data: Any, batch_size: int) -> int | None:
    """Return how many batches ``data`` gives, when that is known."""
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], str):
        return -(-len(data) // batch_size)
    if _is_dataset(data):
        return -(-len(data) // batch_size)
    return len(data) if hasattr(data, "__len__") else None


def _is_dataset(data: Any) -> bool:
    return type(data).__module__.startswith("datasets.") and hasattr(data, "column_names")


def _batches(
    data: Any, tokenizer: Any, batch_size: int, max_length: int
) -> Iterator[dict[str, np.ndarray]]:
    """Yield batches of ``input_ids``, ``attention_mask`` and (when given) ``labels`` as arrays."""
    if batch_size < 1:
        raise StoreError(f"batch_size must be a positive number of examples, got {batch_size}")
    if isinstance(data, str):
        raise StoreError("data is one string: give a list of texts")
    if isinstance(data, (list, tuple)) and data and all(isinstance(x, str) for x in data):
        for i in range(0, len(data), batch_size):
            yield _tokenized(list(data[i : i + batch_size]), None, tokenizer, max_length)
        return
    if _is_dataset(data):
        columns = data.column_names
        label = next((c for c in ("label", "labels") if c in columns), None)
        for i in range(0, len(data), batch_size):
            rows = data[i : i + batch_size]
            labels = np.asarray(rows[label]) if label else None
            if "input_ids" in columns:
                yield _arrays(
                    {"input_ids": rows["input_ids"], "attention_mask": rows.get("attention_mask")},
                    labels,
                )
            elif "text" in columns:
                yield _tokenized(list(rows["text"]), labels, tokenizer, max_length)
            else:
                raise StoreError(
                    f"the dataset has columns {columns}; give a 'text' or 'input_ids' column"
                )
        return
    if not isinstance(data, Iterable):
        raise StoreError(
            f"cannot harvest a {type(data).__name__}: give texts, a Dataset or batches"
        )
    for item in data:
        if isinstance(item, torch.Tensor):
            item = {"input_ids": item}
        if not hasattr(item, "keys") or "input_ids" not in item:
            raise StoreError(
                f"each batch must be token ids or a tokenizer output, got {type(item).__name__}"
            )
        labels = item.get("labels")
        yield _arrays(item, None if labels is None else np.asarray(labels))


def _tokenized(
    texts: list[str], labels: np.ndarray | None, tokenizer: Any, max_length: int
) -> dict[str, np.ndarray]:
    if tokenizer is None:
        raise StoreError("texts need a tokenizer: pass tokenizer=...")
    if getattr(tokenizer, "pad_token", "") is None:
        raise StoreError(
            "the tokenizer has no padding token, and a store needs every text padded to "
            "max_length: set tokenizer.pad_token = tokenizer.eos_token"
        )
    enc = tokenizer(
        texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="np"
    )
    return _arrays(dict(enc), labels)


def _arrays(item: Any, labels: np.ndarray | None) -> dict[str, np.ndarray]:
    ids = np.asarray(item["input_ids"])
    if ids.ndim == 1:
        ids = ids[None]
    mask = item.get("attention_mask") if hasattr(item, "get") else None
    mask_arr = np.ones_like(ids) if mask is None else np.asarray(mask)
    out: dict[str, np.ndarray] = {
        "input_ids": ids.astype(np.int64),
        "attention_mask": mask_arr.astype(np.int8),
    }
    if labels is not None:
        if len(labels) != len(ids):
            raise StoreError(f"{len(labels)} labels for a batch of {len(ids)} examples")
        out["labels"] = labels
    return out
