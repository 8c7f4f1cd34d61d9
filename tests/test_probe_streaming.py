"""Probes over activations kept elsewhere (dask arrays, activation stores): the streaming ridge
probe equals the in-memory one, serially and on a 2-worker dask cluster."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch

from interp_magics import probes
from interp_magics.probes import ProbeError, streaming


def data(n=600, d=12, k=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    score = x[:, :3].sum(1) + rng.standard_normal(n)
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, k + 1)[1:-1]))
    return x, y


@pytest.mark.parametrize("k", [2, 3])
def test_the_streaming_ridge_probe_equals_the_in_memory_one(monkeypatch, k):
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 97)  # many chunks, none aligned with folds
    x, y = data(k=k)
    kw = dict(n_permutations=99, progress=False, control_task=np.arange(len(y)) % 40)
    ref = probes.probe(x, y, **kw)
    got = probes.probe(da.from_array(x, chunks=(128, 12)), y, **kw)
    assert got.accuracy == ref.accuracy and np.array_equal(got.predictions, ref.predictions)
    assert got.permutation["p_value"] == ref.permutation["p_value"]
    np.testing.assert_allclose(got.permutation["null"], ref.permutation["null"], atol=1e-12)
    assert got.accuracy_ci == pytest.approx(ref.accuracy_ci, abs=1e-12)
    for name in ref.controls:
        assert got.controls[name].accuracy == pytest.approx(ref.controls[name].accuracy, abs=1e-12)
    assert got.selectivity == pytest.approx(ref.selectivity, abs=1e-12)


@pytest.mark.parametrize("k", [2, 3])
def test_the_streaming_logistic_probe_equals_the_in_memory_one(monkeypatch, k):
    # The same solver and stopping rule read the rows chunk by chunk: the same fits, to the
    # solver's tolerance, so the same predictions, permutation null and p-value.
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 97)
    x, y = data(n=300, k=k)
    kw = dict(n_permutations=49, progress=False, estimator="logistic", cv=4)
    ref = probes.probe(x, y, **kw)
    got = probes.probe(da.from_array(x, chunks=(128, 12)), y, **kw)
    assert np.array_equal(got.predictions, ref.predictions)
    assert got.accuracy == ref.accuracy
    np.testing.assert_array_equal(got.permutation["null"], ref.permutation["null"])
    assert got.permutation["p_value"] == ref.permutation["p_value"]
    assert got.controls["random features"].accuracy == ref.controls["random features"].accuracy


def test_a_streaming_logistic_fold_solves_the_in_memory_problem(monkeypatch):
    from interp_magics.probes.fits import _decide, _LogisticFold, _targets

    monkeypatch.setattr(streaming, "CHUNK_ROWS", 50)
    x, y = data(n=240)
    rng = np.random.default_rng(1)
    tr, te = np.split(rng.permutation(len(y)), [180])  # unsorted, as folds are
    labels = np.stack([y[tr], rng.permutation(y[tr])])
    memory = _LogisticFold(
        torch.from_numpy(x[tr]).double(), torch.from_numpy(x[te]).double(), 0.5, 300, 1e-8, 2
    )
    chunked = streaming._StreamingLogisticFold(
        streaming.Rows(da.from_array(x)), tr, te, 0.5, 300, 1e-8, 2, (_targets, _decide)
    )
    want_pred, want = memory(labels, with_scores=True)
    got_pred, got = chunked(labels, with_scores=True)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.array_equal(got_pred, want_pred)


def test_streaming_refuses_what_it_cannot_do():
    x, y = data()
    lazy = da.from_array(x, chunks=(128, 12))
    with pytest.raises(ProbeError, match="ridge and logistic probes"):
        probes.probe(lazy, y, estimator="mlp", progress=False, n_permutations=9)
    bad = x.copy()
    bad[300, 2] = np.nan
    with pytest.raises(ProbeError, match="NaN or infinite values \\(e.g. row 300\\)"):
        probes.probe(da.from_array(bad, chunks=(128, 12)), y, progress=False)
    with pytest.raises(ProbeError, match="same vector in every example"):
        probes.probe(da.zeros((600, 12), chunks=(128, 12)), y, progress=False)
    with pytest.raises(ProbeError, match="a probe needs \\[examples, features\\]"):
        probes.probe(da.from_array(x[:, None]), y, progress=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from interp_magics.store import harvest
    from interp_magics.testing import gpt2

    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(10):
        ids = torch.randint(1, 90, (20, 6), generator=g)
        batches.append({"input_ids": ids, "labels": (ids[:, -1] % 2).numpy()})
    path = str(tmp_path_factory.mktemp("probe") / "acts.zarr")
    return harvest(
        gpt2(),
        batches,
        "resid_post",
        path,
        positions=-1,
        dtype="float32",
        batch_size=20,
        progress=False,
    )


@pytest.mark.parametrize("estimator", ["ridge", "logistic"])
def test_probe_layers_over_a_store_equals_probing_the_loaded_layers(store, estimator):
    kw = dict(n_permutations=49, cv=4, progress=False, estimator=estimator)
    got = probes.probe_layers(store, store.labels, **kw)
    assert got.layers == ["resid_post.0", "resid_post.1", "resid_post.2"]
    for key, report in zip(got.layers, got.reports, strict=True):
        ref = probes.probe(store[key][:, 0].compute(), store.labels, **kw)
        assert report.accuracy == ref.accuracy
        assert report.permutation["p_value"] == ref.permutation["p_value"]
        assert report.estimator == estimator
    with pytest.raises(ProbeError, match="random-init control"):
        probes.probe_layers(store, store.labels, model=object(), inputs=object(), progress=False)


def test_a_two_worker_cluster_gives_the_serial_values(store):
    from distributed import Client, LocalCluster, get_task_stream

    kw = dict(n_permutations=49, cv=4, progress=False)
    serial = probes.probe_layers(store, store.labels, **kw)
    layer = store["resid_post.1"][:, 0]
    one = probes.probe(layer, store.labels, estimator="logistic", **kw)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        with get_task_stream(client) as layers_stream:
            parallel = probes.probe_layers(store, store.labels, **kw)
        # one layer: its folds (of the probe and of each control) run on the workers
        with get_task_stream(client) as folds_stream:
            one_parallel = probes.probe(layer, store.labels, estimator="logistic", **kw)
        ran_on = client.run(lambda: 1)
    assert len(ran_on) == 2
    np.testing.assert_array_equal(parallel.p_raw, serial.p_raw)
    assert [r.accuracy for r in parallel.reports] == [r.accuracy for r in serial.reports]
    assert sum("_probe_layer" in t["key"] for t in layers_stream.data) == 3
    folds = [t for t in folds_stream.data if "_fold_on_worker" in t["key"]]
    assert len(folds) == 4 * 2  # 4 folds of the probe and of its random-features control
    assert len({t["worker"] for t in folds}) == 2
    assert one_parallel.accuracy == one.accuracy
    np.testing.assert_array_equal(one_parallel.permutation["null"], one.permutation["null"])
    assert one_parallel.permutation["p_value"] == one.permutation["p_value"]
    assert one_parallel.controls["random features"].accuracy == pytest.approx(
        one.controls["random features"].accuracy, abs=0
    )
