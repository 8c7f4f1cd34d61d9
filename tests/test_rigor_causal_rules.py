"""Causal, attention, reproducibility and example rules read evidence by what the code does.

Each notebook here is built as a researcher would write it without this package: hooks
registered by hand, TransformerLens / nnsight / baukit / pyvene idioms, sweeps defined as
notebook functions. The checks assert which rules fire, and on which claim.
"""

import pytest
from support.notebooks import notebook

from interp_magics import rigor
from interp_magics.rigor.rules.interventions import Component, components


def rules(*cells):
    return {f.rule for f in rigor.check(notebook(*cells))}


def findings(*cells):
    return {f.rule: f for f in rigor.check(notebook(*cells))}


SETUP = ("code", "import torch\ntorch.manual_seed(0)\nmodel = load()")

# -- 1. interventions by behaviour -----------------------------------------------------------------

IN_PLACE_HOOK = """
def knock_out(module, inputs, output):
    output[0][:, -1] = mean_act

handle = model.layers[3].register_forward_hook(knock_out)
logits = model(tokens).logits
handle.remove()
"""

READ_ONLY_HOOK = """
store = []
def save(module, inputs, output):
    store.append(output[0].detach().clone())

handle = model.layers[3].register_forward_hook(save)
logits = model(tokens).logits
"""


def test_a_hook_that_edits_in_place_is_an_intervention():
    claim = ("md", "Layer 3 is responsible for the answer.")
    assert "CAU001" not in rules(claim, SETUP, ("code", IN_PLACE_HOOK))


@pytest.mark.parametrize(
    "edit",
    ["output.add_(steer)", "output += steer", "output[0].copy_(clean[0])", "return output * 0.5"],
)
def test_every_kind_of_in_place_edit_or_return_counts(edit):
    hook = f"def h(module, inputs, output):\n    {edit}\nmodel.layers[3].register_forward_hook(h)"
    assert "CAU001" not in rules(("md", "Layer 3 drives the answer."), SETUP, ("code", hook))


def test_a_hook_that_only_reads_is_no_intervention():
    found = findings(
        ("md", "Layer 3 is responsible for the answer."), SETUP, ("code", READ_ONLY_HOOK)
    )
    assert "only correlational evidence" in found["CAU001"].message


def test_a_notebook_function_that_registers_an_editing_hook_is_followed():
    """The hook, the function registering it and the sweep calling it are in different cells."""
    hook = "def restore(module, inputs, output, clean=None):\n    output[0].copy_(clean)"
    sweep = (
        "from functools import partial\n"
        "def patch_layer(model, layer, clean, tokens):\n"
        "    handle = model.layers[layer].register_forward_hook(partial(restore, clean=clean))\n"
        "    try:\n        return model(tokens).logits\n    finally:\n        handle.remove()"
    )
    run = "effects = [patch_layer(model, layer, cache[layer], corrupt) for layer in range(6)]"
    claim = ("md", "Layer 3 drives the answer.")
    assert "CAU001" not in rules(claim, SETUP, ("code", hook), ("code", sweep), ("code", run))
    # the same sweep with a hook that only stores is no intervention
    reading = "def restore(module, inputs, output, clean=None):\n    saved.append(output)"
    assert "CAU001" in rules(claim, SETUP, ("code", reading), ("code", sweep), ("code", run))


@pytest.mark.parametrize(
    "code",
    [
        # TransformerLens: a lambda that returns the edited activation
        "logits = model.run_with_hooks(tokens, fwd_hooks=[('blocks.3.hook_resid_post', "
        "lambda act, hook: act * 0)])",
        # nnsight: assigning to a module's output inside a trace
        "with model.trace(tokens):\n    model.transformer.h[3].output[0][:] = 0\n"
        "    out = model.output.save()",
        # baukit: TraceDict with edit_output
        "def edit(output, layer):\n    return output * 0\n"
        "with TraceDict(model, ['transformer.h.3'], edit_output=edit):\n    out = model(**inp)",
        # pyvene
        "import pyvene as pv\nintervenable = pv.IntervenableModel(config, model)",
    ],
)
def test_interventions_from_every_library(code):
    assert "CAU001" not in rules(("md", "Layer 3 drives the answer."), SETUP, ("code", code))


# -- 2. evidence tied to the claim -----------------------------------------------------------------

ATTENTION_ONLY = "%attention model batch --tokenizer tok"
CAUSAL_TRACING = """
def noise_embeddings(module, inputs, output):
    return output + 3 * torch.randn_like(output)

def restore(module, inputs, output):
    h = output[0]
    h[:, subject] = clean_states[layer][:, subject].clone()
    return output

model.transformer.wte.register_forward_hook(noise_embeddings)
for layer in range(12):
    handle = model.transformer.h[layer].register_forward_hook(restore)
    probs = model(**inp).logits.softmax(-1)
    handle.remove()
"""
HEAD_ABLATION = """
def kill_head(z, hook):
    z[:, :, 2] = mean_z[:, :, 2]
    return z

logits = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_z", kill_head)])
"""


def test_an_unrelated_intervention_does_not_support_a_claim_about_a_head():
    claim = ("md", "Head 1.2 implements induction.")
    found = findings(claim, SETUP, ("code", ATTENTION_ONLY), ("code", CAUSAL_TRACING))
    assert "head 1.2" in found["CAU001"].message
    assert found["CAU001"].cell_id == "c1"
    assert "CAU001" not in rules(claim, SETUP, ("code", ATTENTION_ONLY), ("code", HEAD_ABLATION))


def test_an_unrelated_intervention_does_not_support_an_attention_claim():
    claim = ("md", "Head 1.2 attends to the previous token.")
    assert "ATT001" in rules(claim, SETUP, ("code", ATTENTION_ONLY), ("code", CAUSAL_TRACING))
    assert "ATT001" not in rules(claim, SETUP, ("code", ATTENTION_ONLY), ("code", HEAD_ABLATION))


def test_a_layer_claim_is_covered_by_a_sweep_over_layers_and_a_general_claim_by_any():
    tracing = ("code", CAUSAL_TRACING)
    assert "CAU001" not in rules(("md", "Layer 7 drives the recall."), SETUP, tracing)
    assert "CAU001" not in rules(("md", "The MLP layers are responsible for it."), SETUP, tracing)
    # a hook on layer 3 only says nothing about layer 5
    assert "CAU001" in rules(("md", "Layer 5 drives the answer."), SETUP, ("code", IN_PLACE_HOOK))


def test_the_first_unsupported_claim_is_reported():
    found = findings(
        ("md", "Head 1.2 implements induction. Head 0.1 is responsible for the previous token."),
        SETUP,
        ("code", HEAD_ABLATION),
    )
    assert "head 0.1" in found["CAU001"].message


@pytest.mark.parametrize(
    ("sentence", "parts"),
    [
        ("Head 1.2 implements induction", [Component(1, 2)]),
        ("L1H2 and L0H3 copy", [Component(1, 2), Component(0, 3)]),
        ("head 2 of layer 1 does it", [Component(1, 2)]),
        ("layer 3, head 4 does it", [Component(3, 4)]),
        ("the layer-3 MLP and layer 5", [Component(3, None), Component(5, None)]),
        ("the induction heads", []),
    ],
)
def test_components_named_in_claims(sentence, parts):
    assert components(sentence) == parts


# -- 3. corruption and metric by behaviour ---------------------------------------------------------

TRACE_WITH_PATCH = """
def trace_with_patch(model, inp, states_to_patch, answer, noise=0.1):
    def patch_rep(x, layer):
        if layer == "transformer.wte":
            x[1:, :6] += noise * torch.randn(x.shape[0] - 1, 6, x.shape[2])
            return x
        h = x[0]
        for t in states_to_patch[layer]:
            h[1:, t] = h[0, t]
        return x
    with TraceDict(model, ["transformer.wte", *states_to_patch], edit_output=patch_rep):
        outputs = model(**inp)
    probs = torch.softmax(outputs.logits[1:, -1, :], dim=1).mean(dim=0)[answer]
    return probs
"""
SWEEP = """
scores = []
for layer in range(12):
    scores.append(trace_with_patch(model, inp, {f"transformer.h.{layer}": [5]}, answer))
"""


def test_hand_written_causal_tracing_is_noise_corruption_scored_by_probability():
    found = findings(("md", "# Causal tracing"), SETUP, ("code", TRACE_WITH_PATCH), ("code", SWEEP))
    assert {"CAU002", "CAU003"} <= set(found)
    assert found["CAU002"].cell_id == "c3" and found["CAU003"].cell_id == "c3"


def test_hand_written_tracing_scored_by_log_probability_with_counterfactual_prompts_passes():
    fixed = TRACE_WITH_PATCH.replace("torch.softmax", "torch.log_softmax").replace(
        "x[1:, :6] += noise * torch.randn(x.shape[0] - 1, 6, x.shape[2])",
        "x[1:, :6] = counterfactual[:, :6]",
    )
    found = rules(("md", "# Causal tracing"), SETUP, ("code", fixed), ("code", SWEEP))
    assert not {"CAU002", "CAU003"} & found


def test_hand_written_zero_ablation_alone_is_off_distribution():
    zero = "def kill(z, hook):\n    z[:, :, 2] = 0\n    return z\nmodel.run_with_hooks(t, fwd_hooks=[('blocks.1.attn.hook_z', kill)])"
    mean = zero.replace("= 0\n", "= z[:, :, 2].mean(0)\n")
    assert "CAU003" in rules(SETUP, ("code", zero))
    assert "CAU003" not in rules(SETUP, ("code", mean))


PATCH = "from interp_magics import patching\nmetric = patching.logit_diff(a, b)\n"


def test_exact_patching_verifies_attribution_only_at_the_ranked_site():
    screen = "screen = patching.activation_patch(model, clean, corrupt, metric, method='attribution', site='head_out')\n"
    elsewhere = "exact = patching.activation_patch(model, clean, corrupt, metric, site='resid_pre')"
    same = "exact = patching.activation_patch(model, clean, corrupt, metric, site='head_out')"
    default = "exact = patching.activation_patch(model, clean, corrupt, metric)"
    assert "CAU004" in rules(SETUP, ("code", PATCH + screen + elsewhere))
    assert "CAU004" in rules(SETUP, ("code", PATCH + screen + default))  # resid_pre by default
    assert "CAU004" not in rules(SETUP, ("code", PATCH + screen + same))


# -- 4. claims by meaning --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sentence",
    [
        "Head 1.2 is the model's induction mechanism.",
        "Head 1.2 does induction.",
        "Induction happens in head 1.2.",
        "Head 1.2 mediates the copying.",
    ],
)
def test_paraphrased_causal_claims_are_read(sentence):
    found = findings(("md", sentence), SETUP, ("code", ATTENTION_ONLY))
    assert "CAU001" in found and found["CAU001"].cell_id == "c1"
    assert "CAU001" not in rules(("md", sentence), SETUP, ("code", HEAD_ABLATION))


def test_methodical_wording_is_no_general_claim():
    top = ("code", "scores = torch.randn(1000, generator=g)\ntop = scores.topk(5)")
    said = "We systematically ablated every head and the neuron fires on animal words."
    assert "EXM001" not in rules(("md", said), SETUP, top)
    assert "EXM001" in rules(("md", "The neuron always fires on animal words."), SETUP, top)


# -- 5. randomness before any seed -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "draw"),
    [
        ("", "noise = torch.randn(4, 8)"),
        ("", "idx = np.random.permutation(100)"),
        ("", "random.shuffle(items)"),
        ("", "out = model.generate(ids, do_sample=True, max_new_tokens=20)"),
        ("", "loader = DataLoader(data, batch_size=32, shuffle=True)"),
        ("torch.manual_seed(0)", "X_tr, X_te = train_test_split(X, test_size=0.2)"),
        ("torch.manual_seed(0)", "idx = np.random.permutation(100)"),
        ("np.random.seed(0)", "noise = torch.randn(4, 8)"),
        ("random.seed(0)", "idx = np.random.choice(100, 5)"),
    ],
)
def test_randomness_before_its_own_seed(seed, draw):
    setup = "import random\nimport numpy as np\nimport torch\n" + seed
    found = findings(("code", setup), ("code", draw))
    assert found["REP001"].cell_id == "c2"


@pytest.mark.parametrize(
    ("seed", "draw"),
    [
        ("torch.manual_seed(0)", "noise = torch.randn(4, 8)"),
        ("np.random.seed(0)", "X_tr, X_te = train_test_split(X, test_size=0.2)"),
        ("torch.manual_seed(0)", "X_tr, X_te = train_test_split(X, random_state=0)"),
        (
            "set_seed(0)",
            "idx = np.random.permutation(100)\nout = model.generate(ids, do_sample=True)",
        ),
        ("rng = np.random.default_rng(0)", "idx = rng.permutation(100)"),
        ("", "out = model.generate(ids, do_sample=False)"),
        ("", "loader = DataLoader(data, shuffle=True, generator=torch.Generator().manual_seed(0))"),
        ("random.seed(0)", "random.shuffle(items)"),
    ],
)
def test_seeded_randomness_passes(seed, draw):
    setup = "import random\nimport numpy as np\nimport torch\n" + seed
    assert "REP001" not in rules(("code", setup), ("code", draw))


def test_edge_attribution_needs_an_exact_edge_check():
    eap = (
        "from interp_magics import circuits\nscores = circuits.eap(model, clean, corrupt, metric)\n"
    )
    found = findings(SETUP, ("code", eap + "top = scores.top(20)"))
    assert "CAU004" in found and "edge-attribution scores" in found["CAU004"].message
    assert "CAU004" not in rules(SETUP, ("code", eap + "check = scores.verify(top=20)"))
    magic = "%eap model --clean clean --corrupt corrupt --metric metric"
    assert "CAU004" in rules(SETUP, ("code", magic))
    assert "CAU004" not in rules(SETUP, ("code", magic + " --verify 10"))


def test_ledger_records_of_circuit_tools_count_as_evidence():
    from support.notebooks import notebook as nb_of

    nb = nb_of(
        ("md", "Heads L0H2 and L1H0 form the induction circuit of this model."),
        ("code", "x = 1"),
    )
    before = {f.rule for f in rigor.check(nb)}
    assert {"CAU001", "CAU006"} <= before
    unverified = {
        "kind": "edge_attribution",
        "cell_id": "c2",
        "method": "eap",
        "edges": 40,
        "metric": "logit_diff",
        "verified": 0,
    }
    path = {
        "kind": "path_patch",
        "cell_id": "c2",
        "senders": 4,
        "receivers": 12,
        "metric": "logit_diff",
        "direction": "noising",
        "p_values": 48,
        "corrected": True,
        "correction": "max-t",
    }
    faithful = {
        "kind": "faithfulness",
        "cell_id": "c2",
        "edges": 6,
        "ablation": "mean",
        "metric": "logit_diff",
        "faithfulness": 0.9,
        "completeness": True,
    }
    found = {f.rule: f for f in rigor.check(nb, ledger=[unverified, path, faithful])}
    assert found["CAU004"].source == "ledger"  # edge attribution without its exact check
    assert "CAU001" not in found  # path patching and the faithfulness run intervene
    assert "CAU006" not in found  # the circuit was checked against the full model
    verified = {**unverified, "verified": 20}  # what scores.verify() records afterwards
    assert "CAU004" not in {f.rule for f in rigor.check(nb, ledger=[verified, path, faithful])}
    later = [unverified, path, faithful, verified]
    assert "CAU004" not in {f.rule for f in rigor.check(nb, ledger=later)}


def test_ledger_records_of_interventions_and_steering_count_and_need_a_baseline():
    from support.notebooks import notebook as nb_of

    nb = nb_of(
        ("md", "The sentiment direction in layer 3 causes the positive reviews."),
        ("code", "x = 1"),
    )
    assert "CAU001" in {f.rule for f in rigor.check(nb)}
    steer = {
        "kind": "intervention",
        "cell_id": "c2",
        "edits": 1,
        "sites": ["resid_post.3"],
        "operations": ["add"],
        "direction": True,
        "baseline": None,
    }
    found = {f.rule: f for f in rigor.check(nb, ledger=[steer])}
    assert "CAU001" not in found  # the intervention is the causal evidence
    assert "CAU005" in found  # along a direction, with nothing to compare it with
    controlled = {**steer, "baseline": "random"}  # what steering.sweep records
    assert "CAU005" not in {f.rule for f in rigor.check(nb, ledger=[controlled])}
    zeroed = {**steer, "operations": ["zero"], "direction": False}
    assert not {"CAU001", "CAU005"} & {f.rule for f in rigor.check(nb, ledger=[zeroed])}
