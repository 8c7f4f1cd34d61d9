"""The site grammar: brace expansion, globs, canonical names, closest-name suggestions."""

import pytest

from interp_magics.core.sites import (
    CanonicalSite,
    PatternError,
    closest_names,
    expand_braces,
    match_names,
    parse_canonical,
)

NAMES = [
    "transformer",
    "transformer.h",
    *[
        f"transformer.h.{i}{s}"
        for i in range(12)
        for s in ("", ".attn", ".attn.c_proj", ".mlp", ".mlp.c_fc")
    ],
    "transformer.ln_f",
    "lm_head",
]


def test_brace_ranges_lists_and_products():
    assert expand_braces("h.{0-3}.attn") == ["h.0.attn", "h.1.attn", "h.2.attn", "h.3.attn"]
    assert expand_braces("h.{0..2}") == ["h.0", "h.1", "h.2"]
    assert expand_braces("h.{1,5}.{attn,mlp}") == ["h.1.attn", "h.1.mlp", "h.5.attn", "h.5.mlp"]
    assert expand_braces("plain.name") == ["plain.name"]


@pytest.mark.parametrize("bad", ["h.{0-3", "h.{3-1}", "h.{}", "h.{a,,b}", "h.{{0-1}}"])
def test_malformed_braces_raise(bad):
    with pytest.raises(PatternError):
        expand_braces(bad)


def test_star_stays_within_one_component():
    got = match_names("transformer.h.*.mlp", NAMES)
    assert got == [f"transformer.h.{i}.mlp" for i in range(12)]
    # a BERT-like ambiguity: '*.output' must not reach 'attention.output'
    bert = ["encoder.layer.0.output", "encoder.layer.0.attention.output"]
    assert match_names("encoder.layer.*.output", bert) == ["encoder.layer.0.output"]


def test_double_star_crosses_components_and_question_mark():
    assert match_names("**.c_fc", NAMES) == [f"transformer.h.{i}.mlp.c_fc" for i in range(12)]
    assert match_names("transformer.h.?", NAMES) == [f"transformer.h.{i}" for i in range(10)]


def test_braces_in_globs_keep_model_order():
    assert match_names("transformer.h.{10,2}.attn", NAMES) == [
        "transformer.h.2.attn",
        "transformer.h.10.attn",
    ]


def test_canonical_names():
    assert parse_canonical("resid_pre") == [CanonicalSite("resid_pre", None)]
    assert parse_canonical("pattern.3") == [CanonicalSite("pattern", 3)]
    assert parse_canonical("resid_post.-1") == [CanonicalSite("resid_post", -1)]
    assert parse_canonical("mlp_out.{0-1}") == [
        CanonicalSite("mlp_out", 0),
        CanonicalSite("mlp_out", 1),
    ]
    assert parse_canonical("attn_out.*") == [CanonicalSite("attn_out", None)]
    assert parse_canonical("transformer.h.0") is None
    assert parse_canonical("resid") is None


def test_closest_names_generalise_layer_numbers():
    near = closest_names("transformer.h.*.mlpp", NAMES)
    assert near[0] == "transformer.h.*.mlp"
    assert closest_names("mlp", NAMES)[0].endswith("mlp")
