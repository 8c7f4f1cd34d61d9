"""Interventions in a forward: every edit kind equals a hand-written torch hook, on random GPT-2
and Llama (grouped-query) models; dispatched and nnsight-wrapped models give the plain values;
no hook survives an error, an interrupt or a failed install; one ledger record per intervention.

The references never go through interp-magics: each installs ``register_forward_hook`` /
``register_forward_pre_hook`` on the module the site names, written out per family below.
"""

from __future__ import annotations

import copy
import random

import accelerate
import nnsight
import pytest
import torch

from interp_magics import owned_hooks
from interp_magics.core import events
from interp_magics.core.errors import CaptureError
from interp_magics.core.modules import attach, detach
from interp_magics.core.targets import resolve_targets
from interp_magics.intervene import (
    Edit,
    InterventionError,
    NothingEditedWarning,
    edit,
    intervene,
)
from interp_magics.testing import bpe_tokenizer, gpt2, llama

ATOL = 1e-6

# Where each canonical site lives, written out by hand (the reference does not use adapters).
FAMILIES = {
    "gpt2": dict(build=gpt2, blocks="transformer.h", attn="attn", mlp="mlp", o="attn.c_proj"),
    "llama": dict(
        build=llama, blocks="model.layers", attn="self_attn", mlp="mlp", o="self_attn.o_proj"
    ),
}
D, H = 64, 4  # both builders: d_model 64, 4 query heads (Llama: 2 key/value heads)
DH = D // H


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def fam(request):
    spec = dict(FAMILIES[request.param])
    spec["model"] = spec["build"]()
    spec["name"] = request.param
    return spec


@pytest.fixture(scope="module")
def ids():
    g = torch.Generator().manual_seed(3)
    return torch.randint(1, 90, (3, 9), generator=g)


def _hook_ids(model):
    return {
        (name, attr): tuple(getattr(m, attr).keys())
        for name, m in model.named_modules()
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs")
    }


# -- hand-written references ----------------------------------------------------------------------


def out_hook(model, path, fn):
    """A forward hook replacing the module's output (first element of a tuple) by fn(output)."""

    def hook(module, args, output):
        if isinstance(output, tuple):
            return (fn(output[0]), *output[1:])
        return fn(output)

    return model.get_submodule(path).register_forward_hook(hook)


def in_hook(model, path, fn):
    """A forward pre-hook replacing the module's input tensor by fn(input)."""

    def pre(module, args, kwargs):
        if args:
            return (fn(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": fn(kwargs["hidden_states"])}

    return model.get_submodule(path).register_forward_pre_hook(pre, with_kwargs=True)


def with_hooks(model, installers, ids):
    handles = [install(model) for install in installers]
    try:
        with torch.no_grad():
            return model(ids).logits
    finally:
        for h in handles:
            h.remove()


def at(positions, fn):
    """fn applied to x[:, positions] only (a copy of x written by plain indexing)."""

    def f(x):
        y = x.clone()
        y[:, positions] = fn(x[:, positions])
        return y

    return f


def heads_fn(heads, fn, positions=None):
    """fn(slice [batch, d_head], position, head) applied to each chosen head at each position."""

    def f(x):
        y = x.clone().view(*x.shape[:-1], H, DH)
        for p in range(x.shape[1]) if positions is None else positions:
            for h in heads:
                y[:, p, h] = fn(y[:, p, h], p, h)
        return y.view(x.shape)

    return f


def zeros(s, p, h):
    return torch.zeros_like(s)


def gram_schmidt(rows):
    basis = []
    for r in rows.double():
        for b in basis:
            r = r - (r @ b) * b
        basis.append(r / r.norm())
    return torch.stack(basis, 1).float()  # [d, k]


def _vec(seed, n=D):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed))


V = _vec(1)
W = _vec(2, DH)
DIRS = torch.stack([_vec(3), _vec(4)])
Q = gram_schmidt(DIRS)
U = V / V.norm()
SOURCE = torch.randn(4, 9, D, generator=torch.Generator().manual_seed(5))
MASK = torch.ones(4, 9, dtype=torch.long)
MASK[0, 6:] = 0
MASK[1, 7:] = 0


def _masked_mean(t, m):
    m = m.double()[..., None]
    return ((t.double() * m).sum(0) / m.sum(0)).float()


def fn_swish(x):
    return x * torch.sigmoid(x)


def b(f, i, name):
    """Path of ``name`` (attn, mlp, o, or "" for the block) in block i of family f."""
    block = f"{f['blocks']}.{i}"
    return f"{block}.{f[name]}" if name else block


# Each case: (edits, reference hooks) from the family spec.
CASES = {
    "add everywhere": lambda f: (
        [edit.add("resid_post.1", V, coef=4.0)],
        [lambda m: out_hook(m, b(f, 1, ""), lambda x: x + 4.0 * V)],
    ),
    "add at positions -1 and 2": lambda f: (
        [edit.add("resid_post.1", V, coef=-3.0, positions=[-1, 2])],
        [lambda m: out_hook(m, b(f, 1, ""), at([8, 2], lambda x: x + -3.0 * V))],
    ),
    "set attn_out at one position": lambda f: (
        [edit.set("attn_out.1", V, positions=3)],
        [lambda m: out_hook(m, b(f, 1, "attn"), at([3], lambda x: V.expand_as(x)))],
    ),
    "scale mlp_out on a slice": lambda f: (
        [edit.scale("mlp_out.0", 0.5, positions=slice(3, 7))],
        [lambda m: out_hook(m, b(f, 0, "mlp"), at(list(range(3, 7)), lambda x: x * 0.5))],
    ),
    "zero two heads": lambda f: (
        [edit.zero("head_out.1", heads=[2, 3])],
        [lambda m: in_hook(m, b(f, 1, "o"), heads_fn([2, 3], zeros))],
    ),
    "add to one head": lambda f: (
        [edit.add("head_out.0", W, coef=2.0, heads=1)],
        [lambda m: in_hook(m, b(f, 0, "o"), heads_fn([1], lambda s, p, h: s + 2.0 * W))],
    ),
    "zero heads at positions": lambda f: (
        [edit.zero("head_out.2", heads=[0, 2], positions=[1, 4])],
        [lambda m: in_hook(m, b(f, 2, "o"), heads_fn([0, 2], zeros, [1, 4]))],
    ),
    "mean over real tokens": lambda f: (
        [edit.mean("resid_post.0", SOURCE, mask=MASK)],
        [lambda m: out_hook(m, b(f, 0, ""), lambda x: _masked_mean(SOURCE, MASK).expand_as(x))],
    ),
    "project out a subspace": lambda f: (
        [edit.project_out("resid_post.2", DIRS)],
        [lambda m: out_hook(m, b(f, 2, ""), lambda x: x - (x @ Q) @ Q.T)],
    ),
    "project onto a vector": lambda f: (
        [edit.project_onto("resid_pre.1", V)],
        [lambda m: in_hook(m, b(f, 1, ""), lambda x: (x @ U)[..., None] * U)],
    ),
    "apply a function at the last position": lambda f: (
        [edit.apply("resid_post.1", fn_swish, positions=-1)],
        [lambda m: out_hook(m, b(f, 1, ""), at([8], fn_swish))],
    ),
    "scale units": lambda f: (
        [edit.scale("mlp_out.1", 3.0, units=[0, 5, 7])],
        [lambda m: out_hook(m, b(f, 1, "mlp"), lambda x: _units(x, [0, 5, 7], 3.0))],
    ),
    "several layers and edits in order": lambda f: (
        [edit.zero("attn_out.{0-1}", positions=0), edit.add("resid_post.1", V)],
        [
            lambda m: out_hook(m, b(f, 0, "attn"), at([0], torch.zeros_like)),
            lambda m: out_hook(m, b(f, 1, "attn"), at([0], torch.zeros_like)),
            lambda m: out_hook(m, b(f, 1, ""), lambda x: x + V),
        ],
    ),
}


def _units(x, units, factor):
    y = x.clone()
    y[..., units] = y[..., units] * factor
    return y


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_edit_equals_a_hand_written_hook(fam, ids, case):
    model = fam["model"]
    edits, refs = CASES[case](fam)
    plain = with_hooks(model, [], ids)
    ref = with_hooks(model, refs, ids)
    assert (ref - plain).abs().max() > 1e-3, "the reference edit changes the output"
    with torch.no_grad(), intervene(model, edits) as iv:
        assert {h.owner for h in owned_hooks()} == {"intervene"}
        got = model(ids).logits
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)
    assert iv.forwards == 1 and all(iv.applied)
    assert owned_hooks() == []
    # .run() is the same forward
    torch.testing.assert_close(intervene(model, edits).run(ids).logits, ref, atol=ATOL, rtol=0)


def test_set_from_a_cache_patches_the_cached_run(fam, ids):
    """set from an ActivationCache (resid and per-head sites) equals copying the other run's
    tensors in with plain hooks; the cache's head_out is [batch, pos, head, d_head]."""
    from interp_magics import capture

    model = fam["model"]
    other = torch.randint(1, 90, ids.shape, generator=torch.Generator().manual_seed(9))
    saved = {}
    grab = [
        model.get_submodule(b(fam, 1, "")).register_forward_hook(
            lambda m, a, o: saved.__setitem__("resid", o.detach().clone())
        ),
        model.get_submodule(b(fam, 2, "o")).register_forward_pre_hook(
            lambda m, a: saved.__setitem__("z", a[0].detach().clone())
        ),
    ]
    with torch.no_grad():
        model(other)
    for h in grab:
        h.remove()
    with capture(model, ["resid_post.1", "head_out.2"]) as cache, torch.no_grad():
        model(other)
    assert cache["head_out.2"].shape == (3, 9, H, DH)
    z = saved["z"].view(3, 9, H, DH)
    refs = [
        lambda m: out_hook(m, b(fam, 1, ""), at([2, 5], lambda x: saved["resid"][:, [2, 5]])),
        lambda m: in_hook(m, b(fam, 2, "o"), heads_fn([1], lambda s, p, h: z[:, p, h])),
    ]
    ref = with_hooks(model, refs, ids)
    edits = [
        edit.set("resid_post.1", cache, positions=[2, 5]),
        edit.set("head_out.2", cache, heads=1),
    ]
    got = intervene(model, edits).run(ids).logits
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)
    # a whole-site patch from the cache reproduces the other run from that layer on
    full = intervene(model, [edit.set("resid_post.1", cache)]).run(ids).logits
    torch.testing.assert_close(full, with_hooks(model, [], other), atol=1e-5, rtol=0)


def test_mean_from_a_cache_uses_its_attention_mask(fam, ids):
    from interp_magics import capture

    model = fam["model"]
    src = torch.randint(1, 90, (4, 9), generator=torch.Generator().manual_seed(11))
    with capture(model, "mlp_out.1") as cache, torch.no_grad():
        model(input_ids=src, attention_mask=MASK)
    mean = _masked_mean(cache["mlp_out.1"], MASK)
    ref = with_hooks(model, [lambda m: out_hook(m, b(fam, 1, "mlp"), lambda x: mean)], ids)
    got = intervene(model, [edit.mean("mlp_out.1", cache)]).run(ids).logits
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)


def test_an_empty_edit_list_is_bit_identical(fam, ids):
    model = fam["model"]
    plain = with_hooks(model, [], ids)
    with torch.no_grad(), intervene(model, []) as iv:
        got = model(ids).logits
    assert torch.equal(got, plain)
    assert iv.forwards == 1


def test_gradients_flow_through_an_edit(fam, ids):
    """The edit is out of place, so autograd differentiates through it as through the hook."""
    model = fam["model"]
    coef = torch.tensor(2.0, requires_grad=True)
    with intervene(model, [edit.apply("resid_post.1", lambda x: x + coef * V)]):
        model(ids).logits.sum().backward()
    ref_coef = torch.tensor(2.0, requires_grad=True)
    h = out_hook(model, b(fam, 1, ""), lambda x: x + ref_coef * V)
    try:
        model(ids).logits.sum().backward()
    finally:
        h.remove()
    model.zero_grad()
    torch.testing.assert_close(coef.grad, ref_coef.grad, atol=1e-4, rtol=1e-5)


# -- SAE-style feature sites (a module attached through core.modules) -----------------------------


class ToySplice(torch.nn.Module):
    """An 'SAE' spliced in at a site: encode, an identity child exposing the features, decode."""

    def __init__(self, d, n):
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.enc = torch.nn.Parameter(torch.randn(d, n, generator=g) / d**0.5)
        self.dec = torch.nn.Parameter(torch.randn(n, d, generator=g) / n**0.5)
        self.features = torch.nn.Identity()

    def forward(self, x):
        return self.features(torch.relu(x @ self.enc)) @ self.dec


def test_units_of_an_attached_feature_site(fam, ids):
    model = fam["model"]
    splice = ToySplice(D, 32)
    [target], _ = resolve_targets(model, "resid_post.1")
    attach(model, "toy", target, splice, exposed={"sae:resid_post.1": splice.features})
    try:
        units = [3, 10, 31]
        handle = splice.features.register_forward_hook(lambda m, a, o: _units(o, units, 0.0))
        try:
            with torch.no_grad():
                ref = model(ids).logits
        finally:
            handle.remove()
        got = intervene(model, [edit.zero("sae:resid_post.1", units=units)]).run(ids).logits
        torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)
        with pytest.raises(InterventionError, match="unit 32 is out of range"):
            intervene(model, [edit.zero("sae:resid_post.1", units=[32])]).run(ids)
    finally:
        detach(model, "toy")
    assert owned_hooks() == []


# -- ledger ---------------------------------------------------------------------------------------


def test_one_record_per_intervention_that_ran(fam, ids):
    model = fam["model"]
    seen = []
    unsubscribe = events.subscribe(seen.append)
    try:
        with intervene(model, [edit.add("resid_post.0", V), edit.zero("head_out.1", heads=0)]):
            model(ids)
            model(ids)
        with intervene(model, [edit.zero("mlp_out.0")]):
            pass  # no forward: no record
        intervene(model, [edit.scale("mlp_out.0", 2.0)], record=False).run(ids)
        intervene(model, [edit.scale("mlp_out.0", 2.0)]).run(ids)
    finally:
        unsubscribe()
    records = [r for r in seen if r["kind"] == "intervention"]
    assert records == [
        {
            "kind": "intervention",
            "edits": 2,
            "sites": ["resid_post.0", "head_out.1"],
            "operations": ["add", "zero"],
            "direction": True,
            "baseline": None,
        },
        {
            "kind": "intervention",
            "edits": 1,
            "sites": ["mlp_out.0"],
            "operations": ["scale"],
            "direction": False,
            "baseline": None,
        },
    ]


def test_an_edit_that_never_applies_warns(fam, ids):
    model = fam["model"]
    with pytest.warns(NothingEditedWarning, match="during= excluded"):
        intervene(model, [edit.add("resid_post.0", V, during="new")]).run(ids)
    with pytest.warns(NothingEditedWarning, match="positions never occurred"):
        intervene(model, [edit.zero("resid_post.0", positions=40)]).run(ids)


# -- errors before any hook -----------------------------------------------------------------------

BAD = [
    (lambda: [edit.add("resid_post.9", V)], "out of range"),
    (lambda: [edit.add("transformer.nope.*", V)], "matches no module"),
    (lambda: [edit.add("resid_post.1", torch.ones(5))], "shape \\(5,\\)"),
    (lambda: [edit.add("head_out.1", V, heads=0)], "16 values"),
    (lambda: [edit.zero("head_out.1", heads=4)], "head 4 is out of range"),
    (lambda: [edit.zero("resid_post.1", heads=0)], "no head dimension"),
    (lambda: [edit.zero("mlp_out.1", units=[64])], "unit 64 is out of range"),
    (lambda: [edit.zero("pattern.1")], "edit head_out"),
    (lambda: [edit.project_out("resid_post.0", torch.ones(3))], "3 dimensions"),
    (lambda: [edit.set("resid_post.0", {"resid_post.1": SOURCE})], "no 'resid_post.0'"),
    (lambda: [edit.mean("resid_post.0", torch.ones(2, 9, 8))], "last dimension is 8"),
]


@pytest.mark.parametrize(("make", "match"), BAD)
def test_bad_edits_fail_before_any_hook(fam, ids, make, match):
    model = fam["model"]
    before = _hook_ids(model)
    calls = []
    spy = model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(InterventionError, match=match):
            with intervene(model, make()):
                model(ids)
    finally:
        spy.remove()
    assert calls == [] and owned_hooks() == [] and _hook_ids(model) == before


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: edit.add("resid_post.0", torch.ones(64, dtype=torch.bool)), "dtype torch.bool"),
        (lambda: edit.add("resid_post.0", torch.ones(64, dtype=torch.complex64)), "complex"),
        (lambda: edit.add("resid_post.0", "up"), "tensor or a number"),
        (lambda: edit.add("", V), "site pattern"),
        (lambda: edit.add("resid_post.0", V, coef="4"), "coef must be a number"),
        (lambda: edit.zero("resid_post.0", heads=[1, 1]), "twice"),
        (lambda: edit.zero("resid_post.0", during="later"), "during must be"),
        (lambda: edit.zero("resid_post.0", positions="a:b"), "cannot read positions"),
        (lambda: edit.project_out("resid_post.0", torch.stack([V, 2 * V])), "dependent"),
        (lambda: edit.apply("resid_post.0", 3), "function"),
        (lambda: edit.add("resid_post.0", torch.full((64,), float("nan"))), "NaN"),
    ],
)
def test_bad_edit_arguments_fail_at_construction(make, match):
    with pytest.raises(InterventionError, match=match):
        make()
    assert issubclass(InterventionError, CaptureError)


def test_apply_time_errors_leave_no_hook(fam, ids):
    model = fam["model"]
    before = _hook_ids(model)
    with pytest.raises(InterventionError, match="same shape"):
        intervene(model, [edit.apply("resid_post.0", lambda x: x[:, :1])]).run(ids)
    with pytest.raises(InterventionError, match="does not broadcast"):
        intervene(model, [edit.set("resid_post.0", torch.ones(5, 64))]).run(ids)
    with pytest.raises(InterventionError, match="source holds positions 0..8"):
        long = torch.randint(1, 90, (3, 12))
        intervene(model, [edit.mean("resid_post.0", SOURCE)]).run(long)
    with pytest.raises(InterventionError, match="before the start"):
        intervene(model, [edit.zero("resid_post.0", positions=-20)]).run(ids)
    assert owned_hooks() == [] and _hook_ids(model) == before


def test_glob_sites_of_any_module():
    """Globs over a plain module's paths: widths come from the module (a Linear's features);
    a tensor without a sequence dimension refuses positions."""
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    handle = net[0].register_forward_hook(lambda m, a, o: _units(o, [1, 4], 0.0))
    ref = net(x)
    handle.remove()
    with intervene(net, [edit.zero("0", units=[1, 4])]):
        got = net(x)
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)
    with pytest.raises(InterventionError, match="unit 6 is out of range"):
        intervene(net, [edit.zero("0", units=[6])])
    with pytest.raises(InterventionError, match="6 values"):
        intervene(net, [edit.add("0", torch.ones(4))])
    with pytest.raises(InterventionError, match="positions need a sequence dimension"):
        with intervene(net, [edit.zero("2", positions=0)]):
            net(x)
    assert owned_hooks() == []


def test_install_failing_partway_leaves_no_hook(fam, ids, monkeypatch):
    model = fam["model"]
    before = _hook_ids(model)
    block = model.get_submodule(b(fam, 2, ""))

    def broken(*a, **k):
        raise RuntimeError("cannot hook this module")

    monkeypatch.setattr(block, "register_forward_hook", broken)
    with pytest.raises(RuntimeError, match="cannot hook"):
        with intervene(model, [edit.add("resid_post.0", V), edit.add("resid_post.2", V)]):
            pytest.fail("the block must not run")
    monkeypatch.undo()
    assert owned_hooks() == [] and _hook_ids(model) == before


def test_exception_inside_the_block_removes_every_hook(fam, ids):
    model = fam["model"]
    before = _hook_ids(model)
    plain = with_hooks(model, [], ids)
    with pytest.raises(ValueError, match="user error"):
        with intervene(model, [edit.add("resid_post.1", V), edit.zero("head_out.0", heads=1)]):
            model(ids)
            raise ValueError("user error")
    assert owned_hooks() == [] and _hook_ids(model) == before
    assert torch.equal(with_hooks(model, [], ids), plain)


def test_fuzz_bad_edits_and_interrupts_leave_the_model_as_it_was(fam, ids):
    """Random edit lists (some invalid) and random interrupt points (a test hook raising
    KeyboardInterrupt at a random module call, or an exception): afterwards no hook of ours
    remains, the model's hook dicts are as before and its output is bit-identical."""
    model = fam["model"]
    before = _hook_ids(model)
    plain = with_hooks(model, [], ids)
    rng = random.Random(0)
    good = [
        lambda: edit.add(f"resid_post.{rng.randrange(3)}", V, coef=rng.uniform(-4, 4)),
        lambda: edit.zero(f"head_out.{rng.randrange(3)}", heads=rng.randrange(H)),
        lambda: edit.scale("mlp_out.*", rng.uniform(0, 2), positions=rng.randrange(9)),
        lambda: edit.project_out("resid_pre.{0-2}", DIRS),
    ]
    bad = [
        lambda: edit.add(f"resid_post.{rng.choice([3, 7, -9])}", V),
        lambda: edit.zero("head_out.0", heads=rng.choice([4, -5])),
        lambda: edit.add("resid_post.0", torch.ones(rng.choice([3, 63, 65]))),
        lambda: edit.zero("pattern.0"),
        lambda: edit.zero("mlp_out.0", units=[rng.choice([64, 100])]),
    ]
    modules = [b(fam, i, part) for i in range(3) for part in ("", "attn", "mlp")]
    outcomes = set()
    for _ in range(40):
        edits = [rng.choice(good)() for _ in range(rng.randrange(0, 4))]
        if rng.random() < 0.3:
            edits.insert(rng.randrange(len(edits) + 1), rng.choice(bad)())
        raise_at = rng.choice([None, *modules])
        error = rng.choice([KeyboardInterrupt, RuntimeError])
        handle = None
        if raise_at is not None:

            def boom(m, a, o, error=error):
                raise error("stop")

            handle = model.get_submodule(raise_at).register_forward_hook(boom)
        try:
            with intervene(model, edits):
                model(ids)
            outcomes.add("ran")
        except InterventionError:
            outcomes.add("refused")
        except (KeyboardInterrupt, RuntimeError):
            outcomes.add("interrupted")
        finally:
            if handle is not None:
                handle.remove()
        assert owned_hooks() == []
        assert _hook_ids(model) == before
    assert outcomes == {"ran", "refused", "interrupted"}
    assert torch.equal(with_hooks(model, [], ids), plain)


def test_a_second_entry_of_an_active_intervention_is_refused(fam, ids):
    model = fam["model"]
    iv = intervene(model, [edit.zero("resid_post.0")])
    with iv, pytest.raises(InterventionError, match="already active"):
        with iv:
            pass
    assert owned_hooks() == []


def test_not_a_model_and_not_edits():
    with pytest.raises(CaptureError, match="torch.nn.Module"):
        intervene(object(), [])
    with pytest.raises(InterventionError, match="from interp_magics.intervene.edit"):
        intervene(torch.nn.Linear(2, 2), ["add resid_post.0 v"])
    assert isinstance(edit.zero("x"), Edit)


# -- dispatched and nnsight-wrapped models --------------------------------------------------------


def _dispatch(model, blocks, folder):
    """Dispatch ``model`` on the CPU (or GPUs) with block 1, the embeddings and head on disk."""
    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu"]
    base = blocks.split(".")[0]
    dm = {name: "disk" for name, _ in model.named_children() if name != base}
    for name, _ in model.get_submodule(base).named_children():
        if f"{base}.{name}" != blocks:
            dm[f"{base}.{name}"] = devices[0]
    for i in range(len(model.get_submodule(blocks))):
        dm[f"{blocks}.{i}"] = "disk" if i == 1 else devices[i % len(devices)]
    dm["transformer.wte" if base == "transformer" else "model.embed_tokens"] = "disk"
    return accelerate.dispatch_model(model, device_map=dm, offload_dir=str(folder))


def test_a_dispatched_model_gives_the_plain_values(fam, ids, tmp_path):
    model = fam["model"]
    dispatched = _dispatch(copy.deepcopy(model), fam["blocks"], tmp_path)
    accelerate_forwards = {
        n: m.__dict__.get("forward")
        for n, m in dispatched.named_modules()
        if hasattr(m, "_hf_hook")
    }
    assert accelerate_forwards
    edits = [
        edit.add("resid_post.1", V, coef=3.0, positions=[-1, 0]),
        edit.zero("head_out.1", heads=[0, 3]),
        edit.project_out("resid_pre.2", DIRS),
        edit.mean("mlp_out.0", SOURCE, mask=MASK),
        edit.scale("attn_out.2", 0.5, units=[1, 2, 3]),
    ]
    ref = intervene(model, edits).run(ids).logits
    got = intervene(dispatched, edits).run(ids).logits
    assert (ref - with_hooks(model, [], ids)).abs().max() > 1e-3
    torch.testing.assert_close(got.cpu(), ref, atol=1e-5, rtol=0)
    assert owned_hooks() == []
    now = {
        n: m.__dict__.get("forward")
        for n, m in dispatched.named_modules()
        if hasattr(m, "_hf_hook")
    }
    assert now == accelerate_forwards  # accelerate's own wrappers untouched


@pytest.mark.filterwarnings("ignore:LanguageModel is deprecated")
def test_an_nnsight_model_is_edited_in_its_traces_and_plain_forwards(fam, ids):
    model = fam["model"]
    wrapped = (
        nnsight.NNsight(model)
        if fam["name"] == "gpt2"
        else nnsight.LanguageModel(model, tokenizer=bpe_tokenizer())
    )
    edits = [edit.add("resid_post.0", V, coef=2.0), edit.zero("head_out.2", heads=1)]
    ref = intervene(model, edits).run(ids).logits
    with torch.no_grad(), intervene(wrapped, edits) as iv:
        with wrapped.trace(ids):
            logits = wrapped.output.logits.save()
    assert iv.forwards == 1
    torch.testing.assert_close(getattr(logits, "value", logits), ref, atol=1e-5, rtol=0)
    got = intervene(wrapped, edits).run(ids).logits
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)
    assert owned_hooks() == []


def test_a_transformer_lens_bridge_is_edited_at_its_hook_points(bridge):
    """The bridge's own hook points (TransformerLens' hook_dict), hooked by hand, as reference;
    its per-head tensor is [batch, pos, heads * d_head]."""
    model, _ = bridge
    ids = torch.randint(1, 300, (2, 7), generator=torch.Generator().manual_seed(12))
    w = torch.randn(DH, generator=torch.Generator().manual_seed(13))

    def head2(module, args, output):
        y = output.clone().view(*output.shape[:-1], H, DH)
        y[:, :, 2] = y[:, :, 2] + 3.0 * w
        return y.view(output.shape)

    handles = [
        model.hook_dict["blocks.1.attn.hook_z"].register_forward_hook(head2),
        model.hook_dict["blocks.0.hook_resid_post"].register_forward_hook(
            lambda m, a, o: at([-1], lambda x: x + V)(o)
        ),
    ]
    try:
        with torch.no_grad():
            ref = model(ids)
    finally:
        for h in handles:
            h.remove()
    edits = [
        edit.add("head_out.1", w, coef=3.0, heads=2),
        edit.add("resid_post.0", V, positions=-1),
    ]
    with torch.no_grad():
        got = intervene(model, edits).run(ids)
        plain = model(ids)
    assert (ref - plain).abs().max() > 1e-3
    torch.testing.assert_close(got, ref, atol=ATOL, rtol=0)
    assert owned_hooks() == []
