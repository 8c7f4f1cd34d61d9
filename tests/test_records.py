"""The typed ledger records: what the core emits, what the server keeps, what the rules read,
and the TypeScript protocol checked against the JSON schema generated from them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from interp_magics.core import events, records
from interp_magics.core.records import (
    CONTROLS,
    CaptureRecord,
    PatchRecord,
    ProbeRecord,
    clean_entry,
    control_name,
    json_schema,
    parse_entry,
)

PROTOCOL_TS = Path(__file__).resolve().parent.parent / "labextension" / "src" / "protocol.ts"


def _probe(**kw):
    values = dict(
        estimator="ridge",
        controls=["random_features", "shuffled"],
        n_permutations=1000,
        p_values=1,
        corrected=False,
        seed=0,
        accuracy=0.75,
    )
    return ProbeRecord(**{**values, **kw})


def test_emit_sends_the_record_as_plain_json_data():
    got = []
    unsubscribe = events.subscribe(got.append)
    try:
        events.emit(_probe())
    finally:
        unsubscribe()
    assert got == [
        {
            "kind": "probe",
            "estimator": "ridge",
            "controls": ["random_features", "shuffled"],
            "n_permutations": 1000,
            "p_values": 1,
            "corrected": False,
            "seed": 0,
            "correction": None,
            "accuracy": 0.75,
            "layers": 0,
        }
    ]
    assert json.loads(json.dumps(got[0])) == got[0]


def test_every_record_round_trips_through_clean_and_parse():
    samples = [
        CaptureRecord(model="GPT2", patterns=["resid_post"], tensors=3, bytes=10, positions=[0]),
        PatchRecord(
            method="attribution",
            direction="denoising",
            site="resid_pre",
            by=["layer", "pos"],
            metric="logit_diff",
            corruption="counterfactual",
            cells=12,
            verified=3,
        ),
        records.AblationRecord(ablation="mean", site="head_out", by=["layer"], metric="m", cells=4),
        _probe(layers=6, corrected=True, correction="fdr_bh", p_values=6),
        records.StatTestRecord(test="binomial", p_values=2, corrected=False),
        records.InterventionRecord(edits=1, sites=["resid_post.3"], operations=["add"]),
        records.PathPatchRecord(
            senders=8, receivers=12, metric="logit_diff", direction="noising", p_values=96
        ),
        records.EdgeAttributionRecord(method="eap-ig", edges=300, metric="logit_diff", verified=20),
        records.FaithfulnessRecord(
            edges=12, ablation="mean", metric="logit_diff", faithfulness=0.83, completeness=True
        ),
        records.LensRecord(lens="dla", layers=6, metric="logit_diff"),
    ]
    assert {type(s).kind for s in samples} == set(records.RECORD_TYPES)
    for sample in samples:
        entry = {**sample.to_dict(), "cell_id": "c1", "execution_count": 4, "time": 1.5}
        assert clean_entry(entry) == entry
        parsed = parse_entry(entry)
        assert parsed.record == sample
        assert (parsed.kind, parsed.cell_id, parsed.execution_count) == (sample.kind, "c1", 4)


def test_clean_entry_drops_wrongly_typed_fields_and_keeps_display_scalars():
    entry = {
        **_probe().to_dict(),
        "p_values": True,  # a bool is not a count
        "corrected": "yes",
        "controls": ["random features", 3, "random-init model"],
        "cell_id": 7,
        "note": "x" * 5000,
        "nested": {"a": 1},
        "score": float("nan"),
        5: "not a key",
    }
    clean = clean_entry(entry)
    assert "p_values" not in clean and "corrected" not in clean and "cell_id" not in clean
    assert clean["controls"] == ["control_representation", "random_features"]
    assert len(clean["note"]) == records.MAX_TEXT
    assert "nested" not in clean and "score" not in clean and 5 not in clean
    assert parse_entry(entry).record is None  # required fields were dropped: unknown content


def test_p_value_counts_out_of_range_are_dropped():
    assert "p_values" not in clean_entry({**_probe().to_dict(), "p_values": -1})
    assert "p_values" not in clean_entry({**_probe().to_dict(), "p_values": 10**7})
    # also in entries of a kind this version does not know: the rules add every count up
    assert clean_entry({"kind": "test", "p_values": 10**7}) == {"kind": "test"}
    assert clean_entry({"kind": "test", "p_values": 3}) == {"kind": "test", "p_values": 3}


def test_unknown_kinds_keep_context_and_scalars():
    parsed = parse_entry({"kind": "future", "cell_id": "a", "x": 1, "y": [1]})
    assert parsed.record is None and parsed.kind == "future" and parsed.cell_id == "a"
    assert parsed.extra == {"x": 1}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("shuffled", "shuffled"),
        ("random features", "random_features"),
        ("Random_Features", "random_features"),
        ("control task", "control_task"),
        ("random-init model", "control_representation"),
        ("my baseline model", "control_representation"),
        ("majority", "majority"),
    ],
)
def test_control_names_map_onto_one_vocabulary(name, expected):
    assert control_name(name) == expected
    assert control_name(name) in CONTROLS


# -- the TypeScript protocol against the generated schema -------------------------------------


def _ts_interfaces(text: str) -> dict[str, tuple[str | None, dict[str, str]]]:
    """Return ``{name: (extends, {field: type})}`` of the exported interfaces in ``text``."""
    found = {}
    pattern = r"export interface (\w+)(?: extends (\w+))? \{(.*?)\n\}"
    for name, parent, body in re.findall(pattern, text, flags=re.S):
        fields = dict(re.findall(r"^\s+(\w+)\??: ([^;]+);", body, flags=re.M))
        found[name] = (parent or None, fields)
    return found


def _ts_type_schema(ts: str, aliases: dict[str, str]) -> dict:
    parts = [p.strip() for p in ts.split("|")]
    if len(parts) > 1:
        return {"anyOf": [_ts_type_schema(p, aliases) for p in parts]}
    if ts.endswith("[]"):
        return {"type": "array", "items": _ts_type_schema(ts[:-2], aliases)}
    if ts.startswith("'"):
        return {"const": ts.strip("'")}
    if ts in aliases:
        return _ts_type_schema(aliases[ts], aliases)
    names = {"string": "string", "number": "number", "boolean": "boolean", "null": "null"}
    return {"type": names[ts]}


def _compatible(ts: dict, py: dict) -> bool:
    """Whether a schema read from TypeScript accepts exactly what the Python schema does."""
    if "anyOf" in ts or "anyOf" in py:
        a = ts.get("anyOf", [ts])
        b = py.get("anyOf", [py])
        return len(a) == len(b) and all(any(_compatible(x, y) for y in b) for x in a)
    if "const" in ts or "const" in py:
        return ts == py
    if ts.get("type") == "array" or py.get("type") == "array":
        return ts.get("type") == py.get("type") and _compatible(ts["items"], py["items"])
    if ts.get("type") == "number":  # TypeScript has one number type
        return py.get("type") in ("number", "integer")
    if ts.get("type") == "string" and "enum" in ts:
        return py.get("type") == "string"
    return ts == py


def test_protocol_ts_matches_the_records_schema():
    text = PROTOCOL_TS.read_text(encoding="utf-8")
    interfaces = _ts_interfaces(text)
    union = re.search(r"export type ControlName =([^;]+);", text).group(1)
    controls = [c.strip().strip("'") for c in union.split("|") if c.strip()]
    assert controls == list(CONTROLS)
    schema = json_schema()
    assert schema["controls"] == list(CONTROLS)
    aliases = {"ControlName": "string"}
    context = interfaces["ILedgerContext"][1]
    by_kind = {}
    for parent, fields in interfaces.values():
        if parent == "ILedgerContext":
            by_kind[fields["kind"].strip("'")] = {**context, **fields}
    assert set(by_kind) == set(schema["$defs"])
    for kind, fields in by_kind.items():
        props = schema["$defs"][kind]["properties"]
        assert set(fields) == set(props), kind
        for field, ts in fields.items():
            assert _compatible(_ts_type_schema(ts, aliases), props[field]), (kind, field, ts)
    union = re.search(r"export type ILedgerEntry =([^;]+);", text).group(1)
    members = {m.strip() for m in union.split("|") if m.strip()}
    assert members == {n for n, (p, _) in interfaces.items() if p == "ILedgerContext"}


def test_schema_lists_required_fields_without_defaults():
    probe = json_schema()["$defs"]["probe"]
    assert probe["required"] == [
        "kind",
        "estimator",
        "controls",
        "n_permutations",
        "p_values",
        "corrected",
    ]
    assert probe["properties"]["seed"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
