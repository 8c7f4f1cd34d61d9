"""Every notebook in tutorials/ runs end to end in a fresh kernel, and shows what it promises."""

import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from interp_magics import rigor, toy

pytestmark = pytest.mark.slow

TUTORIALS = sorted((Path(__file__).parent.parent / "tutorials").glob("*.ipynb"))


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
        parts.append(out.get("data", {}).get("text/html", ""))
    return "\n".join(parts)


TRACK = [p.name for p in TUTORIALS if not p.name.startswith("00_")]
MAX_SAVED_BYTES = 2 * 2**20


@pytest.fixture(scope="module")
def executed(tutorial_times):
    """Every tutorial, executed from a fresh kernel (run times are printed at the end)."""
    done = {}
    for path in TUTORIALS:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(
            nb,
            timeout=600,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        tutorial_times[path.name] = time.perf_counter() - start
        done[path.name] = nb
    return done


def test_there_are_tutorials():
    names = [p.name for p in TUTORIALS]
    assert names[:1] == ["00_quickstart.ipynb"]
    assert names[1:] == [
        "01_capturing_activations.ipynb",
        "02_attention_and_induction_heads.ipynb",
        "03_activation_patching.ipynb",
        "04_probing_with_controls.ipynb",
        "05_rigor_in_practice.ipynb",
        "06_big_models.ipynb",
        "07_activation_stores.ipynb",
        "08_circuits.ipynb",
        "09_interventions_and_features.ipynb",
    ]


@pytest.mark.parametrize("name", [p.name for p in TUTORIALS])
def test_tutorial_runs_without_errors(executed, name):
    nb = executed[name]
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert errors == []
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_quickstart_shows_tables_equalities_and_the_guard(executed):
    cells = [c for c in executed["00_quickstart.ipynb"].cells if c.cell_type == "code"]
    text = [_text(c) for c in cells]
    magic = next(
        t
        for c, t in zip(cells, text, strict=True)
        if c.source.startswith('%%activations model -m "transformer')
    )
    assert "ActivationCache of GPT2LMHeadModel: 8 tensors" in magic and "<table>" in magic
    assert "(4, 16, 128)" in magic and "2 pad positions" not in magic
    assert any("torch.Size([4, 4, 16, 128])" in t for t in text)  # stacked MLP outputs
    assert any("equal output_hidden_states exactly" in t for t in text)
    assert any("CaptureBudgetError - this capture needs about" in t for t in text)
    assert any("'eager' implementation" in t for t in text)
    assert text[-1].strip() == "[]"  # owned_hooks() after everything


@pytest.mark.parametrize("name", [p.name for p in TUTORIALS])
def test_tutorials_pass_the_rigor_checker(executed, name):
    findings = rigor.check(executed[name], name=name)
    assert [f for f in findings if f.severity == "error"] == []


@pytest.mark.parametrize("name", [p.name for p in TUTORIALS])
def test_saved_copies_carry_their_outputs_and_are_small(name):
    path = Path(__file__).parent.parent / "tutorials" / name
    assert path.stat().st_size < MAX_SAVED_BYTES
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    # saved from one run, top to bottom (`make tutorials`)
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert all(c.outputs for c in code if c.source.lstrip().startswith(("%attention", "%patch")))
    for cell in code:
        for out in cell.outputs:
            if "application/vnd.jupyter.widget-view+json" in out.get("data", {}):
                assert "image/png" in out["data"] or "text/plain" in out["data"]


@pytest.mark.parametrize("name", TRACK)
def test_track_notebooks_teach_with_checked_exercises(executed, name):
    cells = executed[name].cells
    first = cells[0].source
    assert "Learning goals" in first and "Prerequisites" in first
    assert "What could go wrong" in "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert "seed" in next(c.source for c in cells if c.cell_type == "code")
    solutions = [c for c in cells if "solution" in c.metadata.get("tags", [])]
    assert 2 <= len(solutions) <= 3
    assert all(c.metadata["jupyter"]["source_hidden"] is True for c in solutions)
    text = "\n".join(_text(c) for c in cells if c.cell_type == "code")
    assert text.count("Right: ") == len(solutions)
    assert "Not yet: " not in text


def test_attention_notebook_finds_the_known_circuit(executed):
    cells = [c for c in executed["02_attention_and_induction_heads.ipynb"].cells]
    text = "\n".join(_text(c) for c in cells if c.cell_type == "code")
    assert (
        "accuracy on the repeated half: 1.000" in text
        or "accuracy on the repeated half: 0.99" in text
    )
    assert f"head {toy.PREVIOUS_TOKEN_HEAD} puts most of its weight" in text
    assert "AttentionView: LlamaForCausalLM, 2 layers x 4 heads x 33 tokens" in text
    assert "mean-ablation of head_out by layer x head" in text


def test_patching_notebook_recovers_the_circuit_by_intervention(executed):
    text = "\n".join(
        _text(c) for c in executed["03_activation_patching.ipynb"].cells if c.cell_type == "code"
    )
    assert "clean run predicts the run's last token: 1.0" in text
    assert f"head {toy.PREVIOUS_TOKEN_HEAD} restores most" in text
    assert "MLP output per layer:       [0. 0.]" in text  # the toy has no MLPs
    assert "attribution checked by exact patching; top 5 cells: signs agree on 100%" in text
    assert "5 random cells: signs agree on" in text


def test_probing_notebook_exposes_the_bad_probe(executed):
    cells = executed["04_probing_with_controls.ipynb"].cells
    text = "\n".join(_text(c) for c in cells if c.cell_type == "code")
    assert (
        "LayerProbeReport: 6 layers, ridge probes, p-values corrected across layers with fdr_bh"
        in text
    )
    assert "random-init model" in text and "control task" in text
    assert "careless.ipynb" in text and "PRB001" in text


def test_flawed_example_has_its_planted_mistakes_and_the_rigor_notebook_fixes_them(executed):
    flawed = Path(__file__).parent.parent / "tutorials" / "examples" / "flawed_analysis.ipynb"
    found = rigor.check(flawed)
    assert sorted({f.rule for f in found}) == [
        "ATT001",
        "CAU001",
        "EXM001",
        "PRB001",
        "REP001",
        "STA001",
        "STA002",
    ]
    text = "\n".join(
        _text(c) for c in executed["05_rigor_in_practice.ipynb"].cells if c.cell_type == "code"
    )
    assert "fixed_analysis.ipynb: exit status 0, active rules []" in text
    assert "flawed_analysis.ipynb: exit status 1" in text
    assert "cells that raised: 0" in text


def test_big_models_notebook_gets_the_plain_values_on_a_dispatched_model(executed):
    text = "\n".join(
        _text(c) for c in executed["06_big_models.ipynb"].cells if c.cell_type == "code"
    )
    assert "offloaded to disk (not resident)" in text
    assert "largest difference from the plain model: 0\n" in text
    assert "largest difference: 0.0" in text
    assert "dispatched model still matches: True" in text
    assert "hooks of ours still installed: []" in text
    assert "CaptureError - 5 weights of LlamaForCausalLM are on the meta device" in text
    assert "same as the hooked capture: True" in text
    assert "largest difference from the hooked sweep: 0.0" in text


def test_stores_notebook_resumes_refuses_and_probes_from_disk(executed):
    text = "\n".join(
        _text(c) for c in executed["07_activation_stores.ipynb"].cells if c.cell_type == "code"
    )
    assert "StoredCache of BertModel" in text and "3072 examples" in text
    assert "interrupted after 1024 examples" in text and "resumed after 1024 examples" in text
    assert "same as the uninterrupted store: True" in text
    assert 'dtype: store has "float16", this call "float32"' in text
    assert "LayerProbeReport: 6 layers" in text
    assert "same p-values as the serial run: True" in text


def test_circuits_notebook_finds_checks_and_measures_the_induction_circuit(executed):
    text = "\n".join(_text(c) for c in executed["08_circuits.ipynb"].cells if c.cell_type == "code")
    # plain EAP at the saturated clean run misranks; EAP-IG's top edges all have the exact sign
    assert "top (10 edges): signs agree on 70%" in text
    assert "top (10 edges): signs agree on 100%" in text
    # the previous-token head -> induction head key edges are among EAP-IG's top 10 of 110
    found = re.search(r"Right: L0H2 -> ([\w., ]+): .* \(ranks \[([\d, ]+)\] of 110 edges\)", text)
    assert found is not None
    assert set(found.group(1).split(", ")) >= {"L1H1.k", "L1H2.k"}
    assert all(int(r) <= 10 for r in found.group(2).split(", "))
    # path patching confirms it: the one significant path of 16, most of the behaviour gone
    path = re.search(r"L0H2 -> L1H\*\.k: ([\d.]+) \[([\d.]+), ([\d.]+)\] p_corr ([\d.]+);", text)
    assert path is not None and float(path.group(3)) < 0.2 and float(path.group(4)) < 0.05
    assert "16 changed cells" in text and "1 significant at alpha 0.05" in text
    # faithfulness with its CI: the found circuit (corrupt ablation), then the written one (mean)
    faith = [
        (float(a), float(lo), float(hi))
        for a, lo, hi in re.findall(
            r"the circuit alone recovers (-?[\d.]+) of the full model's metric "
            r"\(95% CI \[(-?[\d.]+), (-?[\d.]+)\]",
            text,
        )
    ]
    corrupt_found, mean_found, mean_completed, mean_known = faith[:4]
    assert 0.7 < corrupt_found[0] < 1.05 and corrupt_found[1] < corrupt_found[0] < corrupt_found[2]
    # the counterfactual's circuit misses the induction heads' queries under mean ablation
    assert mean_found[0] < mean_found[2] < 0
    assert mean_completed[1] < 1 < mean_completed[2] and mean_known[1] < 1 < mean_known[2]
    assert "Right: 19 of 110 edges recover" in text
    # the lens: the answer is unreadable after layer 0, on top after layer 1
    assert "mean rank of the answer at the last position (0 = top):" in text
    assert "'L1': 0.0}" in text
    # the magics give the functions' results
    for line in (
        "same scores as eap(method='eap-ig'): True",
        "same as path_patch: True",
        "same ranks as logit_lens: True",
    ):
        assert line in text


def test_interventions_notebook_steers_with_controls_and_ablates_a_feature(executed):
    cells = executed["09_interventions_and_features.ipynb"].cells
    text = "\n".join(_text(c) for c in cells if c.cell_type == "code")
    num = r"([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)"
    ci = rf"{num} \[{num}, {num}\]"

    # by hand: the previous-token head is needed under zero and mean ablation; L0H0 only under zero
    clean = re.search(rf"clean run: log p\(answer\) = {num}", text)
    assert clean is not None and -0.5 < float(clean.group(1)) < 0
    heads = {
        int(m[0]): [float(x) for x in m[1:]]
        for m in re.findall(rf"L0H(\d): zero ablation {ci}; mean ablation {ci}", text)
    }
    assert sorted(heads) == [0, 1, 2, 3]
    zero, _, zero_high, mean, _, mean_high = heads[2]
    assert zero < -2 and zero_high < -1 and mean < -2 and mean_high < -1
    zero, _, zero_high, mean, mean_low, mean_high = heads[0]
    assert zero_high < -1 and abs(mean) < 0.3 and mean_low < 0 < mean_high
    # while generating: an edit during the prompt reaches the new tokens through the KV cache
    assert "unedited: 100% of the 12 new tokens continue the copy" in text
    copy = dict(re.findall(r"L0H2 zeroed, during='(\w+)': (\d+)%", text))
    assert int(copy["prompt"]) < 30 and int(copy["all"]) < 30 and int(copy["new"]) >= 90
    assert "same tokens as intervene(during='prompt'): True" in text
    first = re.search(
        rf"on the first copy changes log p\(answer\) by {ci}.*on the second copy by {ci}", text
    )
    assert first is not None  # the first copy: the whole effect; the second: none of it
    assert float(first.group(3)) < -2 and abs(float(first.group(4))) < 0.3

    # steering: beyond the random directions' band at the positive coefficients only
    assert "SteeringVector(mean_diff at attn_out.1" in text
    rows = re.findall(
        rf"^\s*{num}\s+{ci}\s+{ci}\s+([\d.e-]+|-)\s+(\*?)\s*$", text, flags=re.MULTILINE
    )
    sweep = {float(r[0]): r for r in rows}
    assert sorted(sweep) == [-0.1, -0.05, 0.0, 0.05, 0.1]
    for coef in (0.05, 0.1):
        _, mean, low, _, _, _, band_high, _, star = sweep[coef]
        assert star == "*" and float(mean) > float(band_high) and float(low) > 0
    assert sweep[-0.1][-1] == "" and sweep[-0.05][-1] == ""
    assert "the same continuation at every coefficient: True" in text
    side = dict(
        (name, (int(pct), int(ended)))
        for name, pct, ended in re.findall(
            r"(unsteered|steered|random direction): (\d+)% copied, (\d+) of 16 ended early", text
        )
    )
    # at a large dose the vector ends every continuation; a random direction of its norm does not
    assert side["unsteered"] == (100, 0) and side["steered"][0] <= 10 and side["steered"][1] == 16
    assert side["random direction"][0] > side["steered"][0] + 20 and side["random direction"][1] < 8
    assert "tokens the vector promotes most: {'<bos>':" in text
    other = re.search(rf"largest effect on any other token, up or down: {num}", text)
    bos = re.search(rf"promotes most: {{'<bos>': {num}", text)
    assert (
        other is not None and bos is not None and float(bos.group(1)) > 10 * float(other.group(1))
    )
    kept = re.search(r"without its <bos> component the vector .* leaves (\d+)% of the copy", text)
    assert kept is not None and int(kept.group(1)) >= 90

    # the SAE: reconstruction, an unchanged spliced model, and the error term's share of the task
    fve = re.search(r"topk SAE on resid_post.0 explains ([\d.]+)% of the variance", text)
    assert fve is not None and float(fve.group(1)) > 80 and "L0 3.0 of 128 features" in text
    diff = re.search(rf"sae:resid_post.0 spliced in; largest difference of the logits: {num}", text)
    assert diff is not None and float(diff.group(1)) < 1e-4
    assert "features (16, 32, 128), active per token: 3.0" in text
    error = re.search(
        rf"reconstruction alone \(error term zeroed\): change in log p\(answer\) {ci}", text
    )
    assert error is not None and float(error.group(1)) < -0.3 and float(error.group(3)) < 0
    # browsing: current-token and previous-token features; the dashboard shown once, with a PNG
    counts = dict(re.findall(r"^(dead|previous token|token)\s+(\d+)$", text, flags=re.MULTILINE))
    assert int(counts["token"]) >= 40 and int(counts["previous token"]) >= 30
    chosen = re.search(
        r"feature (\d+) fires on the token after '(.)' in all its top 20 examples", text
    )
    assert chosen is not None
    prev_feature = chosen.group(1)
    dashboards = [
        out
        for c in cells
        for out in c.get("outputs", [])
        if "application/vnd.jupyter.widget-view+json" in out.get("data", {})
    ]
    assert len(dashboards) == 1 and "image/png" in dashboards[0]["data"]
    assert f"FeatureDashboard of sae:resid_post.0: 128 features\nfeature {prev_feature} " in text

    # ablation: both features of the letter matter where it repeats, not at the control position
    where = re.search(
        rf"the repeated letter:\n2 of 2 features change .*\nlargest .*?: feature (\d+) {ci} \*; "
        rf"feature (\d+) {ci} \*",
        text,
    )
    assert where is not None
    assert prev_feature in (where.group(1), where.group(5))
    assert float(where.group(4)) < -2 and float(where.group(8)) < -2
    control = re.search(
        rf"position 27:\n0 of 2 features change .*\nlargest .*?: feature \d+ {ci}; feature \d+ {ci}",
        text,
    )
    assert control is not None
    assert abs(float(control.group(1))) < 0.3 and abs(float(control.group(4))) < 0.3
    at = re.search(rf"at the key position {ci}, at the query {num}, everywhere {num}", text)
    assert at is not None and float(at.group(3)) < -2 and abs(float(at.group(4))) < 0.05
    # attribution fails at the saturated prediction, and verify_top says so
    verified = re.search(r"top 5 features: signs agree on (\d+)%", text)
    assert verified is not None and int(verified.group(1)) < 100
    misses = re.findall(rf"feature \d+: exact effect {num}, attribution {num} \(rank", text)
    assert len(misses) == 2
    assert all(float(e) < -2 and abs(float(a)) < 0.5 for e, a in misses)
