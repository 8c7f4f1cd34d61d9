"""Models dispatched by accelerate: blocks on several devices, on the CPU and offloaded to disk.

Every analysis must give the plain model's values on the dispatched one, leave accelerate's own
hooks in place, and refuse a model whose weights sit on the meta device with nothing loading them.
Devices: every visible GPU when there is one (blocks spread over them), else the CPU; some
blocks, the embedding and the unembedding are always offloaded to disk, so offload is tested on
any machine.
"""

from __future__ import annotations

import copy

import accelerate
import pytest
import torch

from interp_magics import CaptureError, capture, owned_hooks
from interp_magics.attention import attention_patterns
from interp_magics.core.placement import execution_device, input_device, placement
from interp_magics.patching import ablate, activation_patch
from interp_magics.patching.metrics import logit_diff
from interp_magics.testing import gpt2, llama


def _devices() -> list[str]:
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu"]


def _device_map(model: torch.nn.Module, blocks: str, *, offload_ends: bool = True) -> dict:
    """Return a map: blocks spread over the devices, every third block and the ends on disk."""
    devices = _devices()
    base = "transformer" if blocks.startswith("transformer") else "model"
    n = len(dict(model.named_modules())[blocks])
    dm: dict[str, str] = {}
    for name, _ in model.named_children():
        if name != base:
            dm[name] = "disk" if offload_ends else devices[0]
    for name, _ in dict(model.named_modules())[base].named_children():
        if f"{base}.{name}" != blocks:
            dm[f"{base}.{name}"] = devices[0]
    for i in range(n):
        dm[f"{blocks}.{i}"] = "disk" if i % 3 == 1 else devices[i % len(devices)]
    if offload_ends:
        embed = "transformer.wte" if base == "transformer" else "model.embed_tokens"
        dm[embed] = "disk"
    return dm


FAMILIES = {
    "gpt2": (lambda: gpt2(n_layer=4), "transformer.h"),
    "llama": (lambda: llama(n_layer=4), "model.layers"),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def pair(request, tmp_path_factory):
    """(plain model, the same weights dispatched with disk offload, the device map)."""
    build, blocks = FAMILIES[request.param]
    plain = build()
    dispatched = copy.deepcopy(plain)
    dm = _device_map(dispatched, blocks)
    folder = tmp_path_factory.mktemp(f"offload-{request.param}")
    dispatched = accelerate.dispatch_model(dispatched, device_map=dm, offload_dir=str(folder))
    return plain, dispatched, dm


@pytest.fixture(scope="module")
def tokens():
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(1, 90, (6, 8), generator=g)
    corrupt = clean.clone()
    corrupt[:, 3] = torch.randint(1, 90, (6,), generator=g)
    answers = torch.randint(1, 90, (6, 2), generator=g)
    return clean, corrupt, logit_diff(answers[:, 0], answers[:, 1])


def _accelerate_forwards(model):
    return {
        name: module.__dict__.get("forward")
        for name, module in model.named_modules()
        if hasattr(module, "_hf_hook")
    }


def test_capture_matches_the_plain_model_and_keeps_accelerates_hooks(pair, tokens):
    plain, dispatched, _ = pair
    clean, _, _ = tokens
    before = _accelerate_forwards(dispatched)
    assert before, "accelerate installed no hooks"
    sites = ["resid_pre", "resid_post", "attn_out", "mlp_out", "pattern"]
    with capture(plain, sites) as a:
        ref = plain(clean).logits
    with capture(dispatched, sites) as b:
        assert owned_hooks(), "our hooks are listed while the capture runs"
        assert all(h.owner == "capture" for h in owned_hooks())
        out = dispatched(clean).logits
    assert sorted(a.keys()) == sorted(b.keys()) and len(a.keys()) == 5 * 4
    for key in a:
        assert b[key].device.type == "cpu"  # stored where asked, whatever device ran the block
        torch.testing.assert_close(b[key], a[key], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.cpu(), ref, atol=1e-5, rtol=0)
    assert owned_hooks() == []
    assert _accelerate_forwards(dispatched) == before  # the very same wrappers, none removed


@pytest.mark.filterwarnings("ignore:the clean-corrupted gap")
@pytest.mark.parametrize("method", ["exact", "attribution"])
@pytest.mark.parametrize(
    ("site", "by"), [("resid_pre", ("layer", "pos")), ("head_out", ("layer", "head"))]
)
def test_patching_matches_the_plain_model(pair, tokens, method, site, by):
    plain, dispatched, _ = pair
    clean, corrupt, metric = tokens
    before = _accelerate_forwards(dispatched)
    kw = dict(method=method, site=site, by=by, progress=False, flips=999)
    ref = activation_patch(plain, clean, corrupt, metric, **kw)
    got = activation_patch(dispatched, clean, corrupt, metric, **kw)
    assert got.raw.shape == ref.raw.shape
    # raw metric changes: normalised values divide by this random model's small clean gap
    torch.testing.assert_close(got.raw, ref.raw, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.per_example, ref.per_example, atol=1e-5, rtol=0)
    assert abs(got.clean_baseline - ref.clean_baseline) < 1e-5
    assert owned_hooks() == []
    assert _accelerate_forwards(dispatched) == before


@pytest.mark.parametrize("kind", ["mean", "resample"])
def test_ablation_matches_the_plain_model(pair, tokens, kind):
    plain, dispatched, _ = pair
    clean, _, metric = tokens
    ref = ablate(plain, clean, "attn_out", kind, metric=metric, progress=False, flips=999)
    got = ablate(dispatched, clean, "attn_out", kind, metric=metric, progress=False, flips=999)
    torch.testing.assert_close(got.values, ref.values, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.per_example, ref.per_example, atol=1e-5, rtol=0)


def test_attention_patterns_match_the_plain_model(pair, tokens):
    plain, dispatched, _ = pair
    clean, _, _ = tokens
    ref, got = attention_patterns(plain, clean), attention_patterns(dispatched, clean)
    assert got.pattern.shape == ref.pattern.shape and ref.pattern.shape[:2] == (6, 4)
    torch.testing.assert_close(got.pattern, ref.pattern, atol=1e-5, rtol=0)
    assert got.layers == ref.layers == [0, 1, 2, 3]


def test_placement_reports_devices_and_offloaded_bytes(pair):
    plain, dispatched, dm = pair
    where = placement(dispatched)
    assert where.dispatched and where.device_map == dm
    sizes = {n: p.numel() * p.element_size() for n, p in plain.named_parameters()}
    on_disk = sum(
        size
        for name, size in sizes.items()
        if any(name.startswith(k + ".") and v == "disk" for k, v in dm.items())
    )
    assert where.offloaded == {"disk": on_disk} and on_disk > 0
    assert sum(where.resident.values()) == sum(sizes.values()) - on_disk
    assert {str(d) for d in where.devices} == set(_devices())
    assert "offloaded to disk (not resident)" in where.describe()
    assert input_device(dispatched) == torch.device(_devices()[0])
    assert placement(plain).offloaded == {} and not placement(plain).dispatched
    # an offloaded block runs on its hook's device, though its weights are on meta
    block = dict(dispatched.named_modules())[next(k for k, v in dm.items() if v == "disk")]
    assert execution_device(block) == torch.device(_devices()[0])


def test_weights_left_on_meta_are_refused_before_any_work(tokens):
    model = gpt2(n_layer=2)
    model.transformer.h[1].to("meta")  # a partial load: no hook will ever fill these
    clean, corrupt, metric = tokens
    calls = []
    handle = model.transformer.h[0].register_forward_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(CaptureError, match=r"meta device .* transformer\.h\.1\."):
            capture(model, "resid_post")
        with pytest.raises(CaptureError, match="meta device"):
            activation_patch(model, clean, corrupt, metric, progress=False)
    finally:
        handle.remove()
    assert calls == [] and owned_hooks() == []


def test_the_budget_holds_back_room_for_offloaded_weights(pair, tokens):
    _, dispatched, _ = pair
    clean, _, _ = tokens
    where = placement(dispatched)
    with capture(dispatched, "resid_post") as acts:
        dispatched(clean)
    assert len(acts.keys()) == 4
    from interp_magics.core.capturing import Capture

    cap = Capture(dispatched, "resid_post", device=_devices()[0])
    _, reason = cap._default_budget()
    assert "largest offloaded block" in reason and where.largest_load > 0
