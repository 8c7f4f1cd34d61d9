"""Activation stores: harvest into zarr (local and fsspec), resume after a kill, refuse mismatches,
read back lazily with dask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from interp_magics import capture
from interp_magics.store import StoreError, harvest, open_store
from interp_magics.testing import gpt2

SITES = ["resid_post", "attn_out.1"]


def batches(n_batches: int = 6, batch: int = 4, tokens: int = 8, seed: int = 0):
    """A list of token-id batches with labels (what a DataLoader would give)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        ids = torch.randint(1, 90, (batch, tokens), generator=g)
        out.append({"input_ids": ids, "labels": (ids[:, -1] % 2).numpy()})
    return out


def reference(model, data, positions=None):
    """The in-memory capture of every batch, concatenated, in float16."""
    parts: dict[str, list[torch.Tensor]] = {}
    for b in data:
        with torch.no_grad(), capture(model, SITES, positions=positions) as acts:
            model(b["input_ids"])
        for k in acts:
            parts.setdefault(k, []).append(acts[k].half())
    return {k: torch.cat(v).numpy() for k, v in parts.items()}


def test_harvest_writes_what_capture_gives_and_reads_back_lazily(tmp_path):
    from interp_magics.store.lazy import open_group

    model, data = gpt2(), batches()
    store = harvest(model, data, SITES, str(tmp_path / "a.zarr"), batch_size=4, progress=False)
    ref = reference(model, data)
    assert store.keys() == ["attn_out.1", "resid_post.0", "resid_post.1", "resid_post.2"]
    assert set(store.keys()) == set(ref) and store.examples == 24
    for key, value in ref.items():
        lazy = store[key]
        assert type(lazy).__module__.startswith("dask")  # nothing loaded yet
        np.testing.assert_array_equal(lazy.compute(), value)
    np.testing.assert_array_equal(store.input_ids, np.concatenate([b["input_ids"] for b in data]))
    np.testing.assert_array_equal(store.labels, np.concatenate([b["labels"] for b in data]))
    assert store.attention_mask.shape == (24, 8) and store.attention_mask.min() == 1
    assert store.stack("resid_post").shape == (3, 24, 8, 64)
    assert 0 < store.nbytes < store.nbytes_uncompressed * 2
    raw = open_group(str(tmp_path / "a.zarr"), mode="r")
    assert {raw[k].shape[0] for k in raw.array_keys()} == {24}  # grown by doubling, then trimmed
    assert type(raw["resid_post.0"].compressors[0]).__name__ == "BloscCodec"
    assert "StoredCache of GPT2LMHeadModel" in repr(store) and "24 examples" in repr(store)
    again = harvest(model, data, SITES, str(tmp_path / "a.zarr"), batch_size=4, progress=False)
    assert "complete already" in " ".join(again.notes) and again.examples == 24


def test_texts_and_datasets_with_labels(tmp_path):
    from datasets import Dataset

    from interp_magics.testing import bpe_tokenizer

    tok, model = bpe_tokenizer(), gpt2(vocab_size=400)
    with pytest.raises(StoreError, match="no padding token"):
        harvest(model, ["a text"], "resid_post", str(tmp_path / "x.zarr"), tokenizer=tok)
    tok.pad_token = tok.eos_token
    texts = [f"the cat number {i} sat on the mat" for i in range(10)]
    ds = Dataset.from_dict({"text": texts, "label": [i % 3 for i in range(10)]})
    store = harvest(
        model,
        ds,
        "resid_post.2",
        str(tmp_path / "d.zarr"),
        tokenizer=tok,
        batch_size=4,
        max_length=12,
        positions=-1,
        progress=False,
    )
    assert store["resid_post.2"].shape == (10, 1, 64) and store.labels.tolist() == [
        i % 3 for i in range(10)
    ]
    enc = tok(texts, padding="max_length", max_length=12, truncation=True, return_tensors="pt")
    with torch.no_grad(), capture(model, "resid_post.2", positions=-1) as acts:
        model(**enc)
    np.testing.assert_array_equal(
        store["resid_post.2"].compute(), acts["resid_post.2"].half().numpy()
    )
    plain = harvest(
        model,
        texts,
        "resid_post.2",
        "memory://texts.zarr",
        tokenizer=tok,
        batch_size=4,
        max_length=12,
        positions=-1,
        progress=False,
    )
    np.testing.assert_array_equal(plain["resid_post.2"].compute(), store["resid_post.2"].compute())
    assert plain.labels is None


def test_an_fsspec_memory_store_round_trips():
    model, data = gpt2(), batches(2)
    store = harvest(model, data, SITES, "memory://acts.zarr", batch_size=4, progress=False)
    reopened = open_store("memory://acts.zarr")
    np.testing.assert_array_equal(
        reopened["resid_post.2"].compute(), store["resid_post.2"].compute()
    )
    assert reopened.examples == 8


CHILD = """
import sys, time, torch
from interp_magics.store import harvest
from interp_magics.testing import gpt2
sys.path.insert(0, {tests!r})
from test_store import batches, SITES
def slow():
    for i, b in enumerate(batches(12)):
        if i >= 3:
            time.sleep(0.4)  # time for the parent to kill us mid-harvest
        yield b
harvest(gpt2(), slow(), SITES, {path!r}, batch_size=4, progress=False)
"""


def test_a_killed_harvest_resumes_without_duplicate_or_missing_rows(tmp_path):
    from interp_magics.store.lazy import open_group

    path = str(tmp_path / "k.zarr")
    code = CHILD.format(tests=str(Path(__file__).parent), path=path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    child = subprocess.Popen([sys.executable, "-c", code], env=env)
    rng = np.random.default_rng(int(time.time()))
    kill_after = int(rng.integers(3, 8))  # committed batches before the kill, at random
    deadline = time.time() + 120
    while time.time() < deadline and child.poll() is None:
        try:
            done = open_store(path).progress.examples_done
        except Exception:  # not created yet, or metadata being written
            done = 0
        if done >= 4 * kill_after:
            break
        time.sleep(0.05)
    assert child.poll() is None, "the harvest ended before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    partial = open_store(path)
    assert not partial.progress.complete and 0 < partial.examples < 48
    # arrays grow ahead of the data; readers cut at the commit point
    assert all(partial[k].shape[0] == partial.examples for k in partial)
    assert partial.input_ids.shape[0] == partial.examples
    # a write cut short: rows past the commit point, which the resume must drop
    group = open_group(path, mode="r+")
    junk = group["resid_post.0"]
    junk.resize((partial.examples + 3, *junk.shape[1:]))
    junk[partial.examples :] = 7.0
    model, data = gpt2(), batches(12)
    store = harvest(model, data, SITES, path, batch_size=4, progress=False)
    assert any("resumed after" in n for n in store.notes)
    assert store.examples == 48 and store.progress.complete
    ref = reference(model, data)
    for key, value in ref.items():
        np.testing.assert_array_equal(store[key].compute(), value)
    np.testing.assert_array_equal(store.input_ids, np.concatenate([b["input_ids"] for b in data]))
    raw = open_group(path, mode="r")
    assert {raw[k].shape[0] for k in raw.array_keys()} == {48}  # trimmed when complete


def test_a_store_harvested_differently_is_refused_and_left_alone(tmp_path):
    path = str(tmp_path / "m.zarr")
    model, data = gpt2(), batches(2)
    harvest(model, data, SITES, path, batch_size=4, progress=False)
    before = open_store(path).nbytes
    with pytest.raises(StoreError, match=r"dtype: store has \"float16\", this call \"float32\""):
        harvest(model, data, SITES, path, batch_size=4, dtype="float32", progress=False)
    with pytest.raises(StoreError, match="positions: store has null"):
        harvest(model, data, SITES, path, batch_size=4, positions=-1, progress=False)
    with pytest.raises(StoreError, match="config_hash"):
        harvest(gpt2(n_layer=2), data, SITES, path, batch_size=4, progress=False)
    # resuming with other data: caught at the first batch that differs
    partial = str(tmp_path / "p.zarr")
    harvest(model, batches(1), SITES, partial, batch_size=4, progress=False)
    from interp_magics.store.layout import read_meta, write_meta
    from interp_magics.store.lazy import open_group

    group = open_group(partial, mode="r+")
    recipe, progress = read_meta(group)
    progress.complete = False
    write_meta(group, recipe, progress)
    with pytest.raises(StoreError, match="batch 0 of the data differs"):
        harvest(model, batches(2, seed=5), SITES, partial, batch_size=4, progress=False)
    assert open_store(path).nbytes == before


def test_bad_stores_and_data_get_clear_errors(tmp_path):
    from interp_magics.store.lazy import open_group

    with pytest.raises(StoreError, match="no activation store"):
        open_store(str(tmp_path / "nothing.zarr"))
    empty = str(tmp_path / "empty.zarr")
    open_group(empty, mode="a")
    with pytest.raises(StoreError, match="holds no activation store"):
        open_store(empty)
    damaged = str(tmp_path / "damaged.zarr")
    harvest(gpt2(), batches(1), SITES, damaged, batch_size=4, progress=False)
    group = open_group(damaged, mode="r+")
    group.attrs["interp_magics"] = {"recipe": {"model": "x"}}
    with pytest.raises(StoreError, match="metadata is damaged"):
        open_store(damaged)
    model = gpt2()
    with pytest.raises(StoreError, match="texts need a tokenizer"):
        harvest(model, ["a text"], SITES, str(tmp_path / "t.zarr"), progress=False)
    with pytest.raises(StoreError, match="the data is empty"):
        harvest(model, [], SITES, str(tmp_path / "e.zarr"), progress=False)
    uneven = [batches(1)[0], batches(1, tokens=9)[0]]
    with pytest.raises(StoreError, match="same sequence length"):
        harvest(model, uneven, SITES, str(tmp_path / "u.zarr"), batch_size=4, progress=False)


def test_the_activations_magic_appends_each_cell_to_a_store(shell, tmp_path):
    from IPython.core.error import UsageError

    path = str(tmp_path / "cells.zarr")
    shell.run_cell(
        "import torch\nfrom interp_magics.testing import gpt2\nmodel = gpt2()\n"
        "ids = torch.randint(1, 90, (3, 6), generator=torch.Generator().manual_seed(0))\n"
        "more = torch.randint(1, 90, (2, 6), generator=torch.Generator().manual_seed(1))\n"
    )
    magic = f"%%activations model -m resid_post --positions=-1 --store {path} -o acts -q\n"
    first = shell.run_cell(magic + "model(ids)\n")
    assert first.success
    kept = {k: v.clone() for k, v in shell.user_ns["acts"].items()}
    assert "stored 3 examples" in shell.user_ns["acts"].notes[-1]
    assert shell.run_cell(magic + "model(more)\n").success
    assert "now 5" in shell.user_ns["acts"].notes[-1]
    again = shell.run_cell(magic + "model(ids)\n")
    assert again.success and "not stored again" in shell.user_ns["acts"].notes[-1]
    store = open_store(path)
    assert store.examples == 5 and store.keys() == ["resid_post.0", "resid_post.1", "resid_post.2"]
    np.testing.assert_array_equal(store["resid_post.1"][:3].compute(), kept["resid_post.1"].numpy())
    np.testing.assert_array_equal(store.input_ids[3:], shell.user_ns["more"].numpy())
    bad = shell.run_cell(
        f"%%activations model -m resid_post --positions=-1 --dtype float16 --store {path}\n"
        "model(ids)\n"
    )
    assert isinstance(bad.error_in_exec, UsageError)
    assert 'dtype: store has "float32", this call "float16"' in str(bad.error_in_exec)
    twice = shell.run_cell(
        f"%%activations model -m resid_post --store {tmp_path / 'two.zarr'}\nmodel(ids)\nmodel(ids)\n"
    )
    assert isinstance(twice.error_in_exec, UsageError)
    assert "more than once" in str(twice.error_in_exec)
