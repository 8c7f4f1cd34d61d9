"""The ``%%intervene`` edit grammar: each line gives the edit its constructor call gives (the same
fields, and bit-identical outputs when run), and every error names the line and what is
expected."""

from __future__ import annotations

import pytest
import torch

from interp_magics import capture
from interp_magics.intervene import InterventionError, edit, intervene, parse_edits
from interp_magics.testing import gpt2

STEER = torch.randn(64, generator=torch.Generator().manual_seed(0))
PROBE = torch.randn(2, 64, generator=torch.Generator().manual_seed(1))


def my_fn(x):
    return x * 2.0


@pytest.fixture(scope="module")
def setup():
    model = gpt2()
    ids = torch.randint(1, 90, (2, 9), generator=torch.Generator().manual_seed(2))
    with capture(model, ["attn_out.1", "resid_post.0"]) as cache, torch.no_grad():
        model(torch.randint(1, 90, (2, 9), generator=torch.Generator().manual_seed(3)))
    namespace = {
        "steer": STEER,
        "probe_dir": PROBE,
        "cache": cache,
        "clean_cache": cache,
        "my_fn": my_fn,
        "k": 3,
    }
    return model, ids, namespace


def _same(a, b):
    for name in ("op", "site", "coef", "positions", "heads", "units", "during"):
        assert getattr(a, name) == getattr(b, name), name
    if isinstance(a.value, torch.Tensor):
        assert torch.equal(a.value, b.value)
    else:
        assert a.value is b.value


LINES = [
    ("add resid_post.1 steer*4 @ -1", lambda: edit.add("resid_post.1", STEER * 4, positions=-1)),
    ("add resid_post.1 steer coef=-2.5", lambda: edit.add("resid_post.1", STEER, coef=-2.5)),
    ("zero head_out.1 heads=2,3", lambda: edit.zero("head_out.1", heads=[2, 3])),
    ("scale mlp_out.0 0.5 @ 3:7", lambda: edit.scale("mlp_out.0", 0.5, positions=slice(3, 7))),
    ("scale mlp_out.0 0.5 @3,5", lambda: edit.scale("mlp_out.0", 0.5, positions=(3, 5))),
    ("project_out resid_post.2 probe_dir", lambda: edit.project_out("resid_post.2", PROBE)),
    ("project_onto resid_post.2 probe_dir[0]", lambda: edit.project_onto("resid_post.2", PROBE[0])),
    (
        "apply resid_post.1 my_fn during=new",
        lambda: edit.apply("resid_post.1", my_fn, during="new"),
    ),
    (
        "zero mlp_out.1 units=1,4 positions=::2",
        lambda: edit.zero("mlp_out.1", units=[1, 4], positions=slice(None, None, 2)),
    ),
    (
        "scale resid_post.{0-1} steer / steer.norm()",
        lambda: edit.scale("resid_post.{0-1}", STEER / STEER.norm()),
    ),
]


@pytest.mark.parametrize(("line", "build"), LINES)
def test_a_line_gives_the_constructors_edit(setup, line, build):
    _, _, namespace = setup
    [got] = parse_edits([line], namespace)
    _same(got, build())


def test_set_and_mean_take_the_cache_from_the_namespace(setup):
    model, ids, namespace = setup
    got = parse_edits(
        ["set attn_out.1 cache", "", "# nothing", "mean resid_post.0 clean_cache"], namespace
    )
    assert [e.op for e in got] == ["set", "mean"]
    assert got[0].value is namespace["cache"] and got[1].value is namespace["clean_cache"]
    ref = (
        intervene(
            model,
            [
                edit.set("attn_out.1", namespace["cache"]),
                edit.mean("resid_post.0", namespace["cache"]),
            ],
        )
        .run(ids)
        .logits
    )
    out = intervene(model, got).run(ids).logits
    assert torch.equal(out, ref)


def test_a_cell_runs_as_the_constructor_calls_run(setup):
    model, ids, namespace = setup
    cell = """
    add resid_post.1 steer*4 @ -1
    zero head_out.1 heads=2,3
    scale mlp_out.0 0.5 @ 3:7
    project_out resid_post.2 probe_dir
    apply resid_pre.1 lambda x: x + steer  # a lambda sees the notebook's names
    """
    edits = parse_edits(cell, namespace)
    ref_edits = [
        edit.add("resid_post.1", STEER * 4, positions=-1),
        edit.zero("head_out.1", heads=[2, 3]),
        edit.scale("mlp_out.0", 0.5, positions=slice(3, 7)),
        edit.project_out("resid_post.2", PROBE),
        edit.apply("resid_pre.1", lambda x: x + STEER),
    ]
    out = intervene(model, edits).run(ids).logits
    ref = intervene(model, ref_edits).run(ids).logits
    assert torch.equal(out, ref)
    assert not torch.equal(out, model(ids).logits)


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (["adx resid_post.1 steer"], r"line 1 .*unknown operation 'adx'; expected one of set, add"),
        (["zero"], r"line 1 .*zero needs a site"),
        (["", "add resid_post.1"], r"line 2 .*add needs a value after the site"),
        (["zero resid_post.1 steer"], r"line 1 .*zero takes no value"),
        (["add resid_post.1 nope*2"], r"line 1 .*name 'nope' is not defined.*define it"),
        (["add resid_post.1 steer @ 3;4"], r"line 1 .*cannot read the value 'steer @ 3;4'"),
        (["zero head_out.1 heads=a"], r"line 1 .*cannot read heads='a'; write heads=2"),
        (["zero mlp_out.1 units=1,k"], r"line 1 .*cannot read units='1,k'"),
        (["scale mlp_out.0 0.5 coef=2"], r"line 1 .*coef= is an option of add, not of scale"),
        (["add resid_post.1 steer +"], r"line 1 .*cannot read the value 'steer \+'"),
        (["add resid_post.1 steer.__class__"], r"line 1 .*'__class__' is not allowed"),
        (["add resid_post.1 steer during=later"], r"line 1 .*during must be"),
        (["add resid_post.1 steer @ -1 positions=2"], r"line 1 .*give positions once"),
        (["add resid_post.1 steer coef=steer"], r"line 1 .*coef must be a number"),
        (["add resid_post.1 my_fn"], r"line 1 .*tensor or a number"),
        (["add resid_post.1 steer heads=1 heads=2"], r"line 1 .*heads= is given twice"),
        (["add resid_post.1 steer[99]"], r"line 1 .*raised IndexError"),
    ],
)
def test_errors_name_the_line_and_what_is_expected(setup, lines, match):
    _, _, namespace = setup
    with pytest.raises(InterventionError, match=match):
        parse_edits(lines, namespace)


def test_positions_spelt_with_at_or_keyword_are_the_same(setup):
    _, _, namespace = setup
    a, b = parse_edits(["zero resid_post.0 @ -2", "zero resid_post.0 positions=-2"], namespace)
    assert a.positions == b.positions == -2
    [c] = parse_edits(["add resid_post.0 steer @ steer"], {"steer": torch.eye(64)})
    assert c.positions is None  # '@' followed by a name is matrix multiplication
