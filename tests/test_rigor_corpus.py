"""The labelled corpus of real notebooks: its manifest and labels are complete and pinned, the
held-out part is the one fixed before labelling, and the scoring script counts what it says.

The notebooks themselves are not in the repository (see benchmarks/rigor_corpus.py); the
figures on them are measured with that script, and ``--check`` fails on a drop.
"""

import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from interp_magics.rigor import RULES

ROOT = Path(__file__).parent.parent
CORPUS = ROOT / "benchmarks" / "rigor_corpus"
FIXTURES = Path(__file__).parent / "fixtures" / "rigor"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())["notebooks"]


def scorer():
    spec = importlib.util.spec_from_file_location(
        "rigor_corpus", ROOT / "benchmarks" / "rigor_corpus.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["rigor_corpus"] = module
    spec.loader.exec_module(module)
    return module


def test_the_corpus_has_at_least_30_pinned_notebooks_with_licences():
    ids = [e["id"] for e in MANIFEST]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)
    for e in MANIFEST:
        assert len(e["commit"]) == 40 and e["commit"] in e["url"] and e["path"] in e["url"]
        assert e["licence"] in {"MIT", "Apache-2.0", "BSD-3-Clause"}
        assert len(e["sha256"]) == 64


def test_the_held_out_third_is_the_one_fixed_before_labelling():
    for e in MANIFEST:
        assert e["held_out"] == (int(hashlib.sha256(e["id"].encode()).hexdigest(), 16) % 3 == 0)
    held = sum(e["held_out"] for e in MANIFEST)
    assert len(MANIFEST) / 4 <= held <= len(MANIFEST) / 2


@pytest.mark.parametrize("entry", MANIFEST, ids=lambda e: e["id"])
def test_every_notebook_is_labelled_for_every_rule_with_a_reason(entry):
    data = json.loads((CORPUS / "labels" / f"{entry['id']}.json").read_text())
    assert data["id"] == entry["id"]
    assert set(data["labels"]) == set(RULES)
    for rule_id, label in data["labels"].items():
        assert label["label"] in ("expect", "must_not_fire", "unclear"), rule_id
        assert 5 <= len(label["why"]) <= 300, rule_id
        if label["label"] == "expect":
            assert label["cells"] and all(isinstance(c, int) and c >= 0 for c in label["cells"])


def test_the_recorded_figures_cover_both_parts():
    recorded = json.loads((CORPUS / "recorded.json").read_text())
    for part in ("tuning", "held-out"):
        figures = recorded[part]
        assert figures["found"] <= figures["expected"]
        assert figures["recall"] == pytest.approx(figures["found"] / figures["expected"])
        assert figures["false_alarms"] <= figures["must_not_fire"]


def _fake_corpus(tmp_path, labels):
    """Write a corpus of fixture notebooks with the given labels: {id: (fixture, held, {rule: label})}."""
    folder, corpus = tmp_path / "notebooks", tmp_path / "corpus"
    (corpus / "labels").mkdir(parents=True)
    folder.mkdir()
    entries = []
    for nid, (fixture, held, rule_labels) in labels.items():
        path = folder / f"{nid}.ipynb"
        shutil.copy(FIXTURES / f"{fixture}.ipynb", path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        entries.append({"id": nid, "url": "u", "sha256": digest, "held_out": held})
        body = {r: {"label": lab, "why": "a reason"} for r, lab in rule_labels.items()}
        (corpus / "labels" / f"{nid}.json").write_text(json.dumps({"id": nid, "labels": body}))
    (corpus / "manifest.json").write_text(json.dumps({"notebooks": entries}))
    return folder, corpus


def test_the_scorer_counts_found_missed_and_false_alarms(tmp_path, monkeypatch):
    module = scorer()
    folder, corpus = _fake_corpus(
        tmp_path,
        {
            # PRB001_bad fires PRB001: found; its CAU001 label is a must-not-fire that holds
            "a": ("PRB001_bad", False, {"PRB001": "expect", "CAU001": "must_not_fire"}),
            # PRB001_good does not fire PRB001: a miss; a label saying PRB001 must not fire on
            # PRB001_bad is a false alarm
            "b": ("PRB001_good", False, {"PRB001": "expect"}),
            "c": ("PRB001_bad", True, {"PRB001": "must_not_fire", "STA001": "unclear"}),
        },
    )
    monkeypatch.setattr(module, "HERE", corpus)
    result = module.measure(module.load_corpus(folder), module.PARTS)
    tuning, held = (module.summary(result[p]) for p in module.PARTS)
    assert (tuning["found"], tuning["expected"], tuning["false_alarms"]) == (1, 2, 0)
    assert tuning["must_not_fire"] == 1 and result["tuning"]["rules"]["PRB001"].missed == ["b"]
    assert (held["false_alarms"], held["must_not_fire"], held["expected"]) == (1, 1, 0)
    # rules left unlabelled (c labels 2 of them) count as unclear, like "unclear" itself
    assert held["unclear"] == len(RULES) - 1


def test_the_scorer_refuses_a_notebook_that_is_not_the_pinned_revision(tmp_path, monkeypatch):
    module = scorer()
    folder, corpus = _fake_corpus(tmp_path, {"a": ("PRB001_bad", False, {"PRB001": "expect"})})
    (folder / "a.ipynb").write_text((FIXTURES / "PRB001_good.ipynb").read_text())
    monkeypatch.setattr(module, "HERE", corpus)
    with pytest.raises(SystemExit, match="not the pinned revision"):
        module.load_corpus(folder)


def test_check_fails_when_a_figure_drops(tmp_path, monkeypatch, capsys):
    module = scorer()
    folder, corpus = _fake_corpus(tmp_path, {"a": ("PRB001_good", False, {"PRB001": "expect"})})
    recorded = {"tuning": {"recall": 1.0, "false_alarm_rate": 0.0}}
    (corpus / "recorded.json").write_text(json.dumps(recorded))
    monkeypatch.setattr(module, "HERE", corpus)
    monkeypatch.setattr(sys, "argv", ["rigor_corpus.py", "--notebooks", str(folder), "--check"])
    assert module.main() == 1
    assert "recall 0.000 < 1.000" in capsys.readouterr().err
