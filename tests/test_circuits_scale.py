"""Circuit tools on the engines big models run on: a model dispatched by accelerate (blocks on
the CPU and offloaded to disk) and an nnsight-wrapped model give the plain model's values."""

from __future__ import annotations

import copy

import accelerate
import pytest
import torch
from nnsight import NNsight
from test_dispatched import _device_map

from interp_magics import circuits, owned_hooks
from interp_magics.patching import logit_diff
from interp_magics.testing import gpt2, llama

FAMILIES = {"gpt2": (gpt2, "transformer.h"), "llama": (llama, "model.layers")}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def models(request, tmp_path_factory):
    """(plain, dispatched with blocks on disk, nnsight-wrapped copy)."""
    build, blocks = FAMILIES[request.param]
    plain = build(n_layer=4)
    dispatched = copy.deepcopy(plain)
    folder = tmp_path_factory.mktemp(f"circuits-{request.param}")
    dispatched = accelerate.dispatch_model(
        dispatched, device_map=_device_map(dispatched, blocks), offload_dir=str(folder)
    )
    return plain, dispatched, NNsight(copy.deepcopy(plain))


@pytest.fixture(scope="module")
def task():
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(1, 90, (6, 8), generator=g)
    corrupt = clean.clone()
    corrupt[:, 3] = torch.randint(1, 90, (6,), generator=g)
    answers = torch.randint(1, 90, (6, 2), generator=g)
    return clean, corrupt, logit_diff(answers[:, 0], answers[:, 1])


@pytest.mark.filterwarnings("ignore")
def test_circuit_tools_give_the_plain_values_on_dispatched_and_nnsight_models(models, task):
    plain, dispatched, wrapped = models
    clean, corrupt, metric = task
    kw = dict(senders="L0H*", receivers=["L1*.k", "L3H*.q", "logits"], progress=False)
    ref = circuits.path_patch(plain, clean, corrupt, metric, **kw)
    ref_eap = circuits.eap(plain, clean, corrupt, metric, progress=False)
    circuit = ref_eap.circuit(top_k=12)
    ref_faith = circuits.faithfulness(plain, circuit, clean, corrupt, metric, ablation="corrupt")
    for other in (dispatched, wrapped):
        got = circuits.path_patch(other, clean, corrupt, metric, **kw)
        torch.testing.assert_close(got.per_example, ref.per_example, atol=1e-5, rtol=0)
        scores = circuits.eap(other, clean, corrupt, metric, progress=False)
        torch.testing.assert_close(scores.scores, ref_eap.scores, atol=1e-5, rtol=0)
        same = circuits.Circuit.from_edges(other, circuit.edges)
        faith = circuits.faithfulness(other, same, clean, corrupt, metric, ablation="corrupt")
        assert faith.faithfulness == pytest.approx(ref_faith.faithfulness, abs=1e-5)
    assert float(ref.per_example.std()) > 0 and float(ref_eap.scores.abs().max()) > 0
    assert owned_hooks() == []
