"""Rules on the idioms of the field's public notebooks: steering and subspace interventions
(CAU005), circuit claims (CAU006), representation reading as a probe, TransformerLens hook
pairs, pyvene noise, sampling pipelines, percentages, and wording that claims nothing.

Each notebook here is written the way the libraries' own tutorials write it (RepE, repeng,
pyvene, TransformerLens, SAELens), so a rule that misses an idiom, or fires on prose that
claims nothing, fails here.
"""

import pytest
from support.notebooks import notebook

from interp_magics import rigor


def rules(*cells, select=None):
    return {f.rule for f in rigor.check(notebook(*cells), select=select)}


SEED = ("code", "import torch, numpy as np\nfrom transformers import set_seed\nset_seed(0)")

# -- CAU005: learned directions need a baseline ----------------------------------------------------

TL_STEERING = """
def steering_hook(resid_pre, hook):
    resid_pre[:, :-1, :] += coeff * steering_vector

editing_hooks = [(f"blocks.{layer}.hook_resid_post", steering_hook)]
with model.hooks(fwd_hooks=editing_hooks):
    out = model.generate(prompt, max_new_tokens=20)
"""

REPE_CONTROL = """
rep_control_pipeline = pipeline("rep-control", model=model, tokenizer=tokenizer,
                                layers=layer_id, control_method="reading_vec")
activations = {layer: coeff * honesty_rep_reader.directions[layer] for layer in layer_id}
out = rep_control_pipeline(inputs, activations=activations, max_new_tokens=64)
"""

REPENG = """
model = ControlModel(model, list(range(-5, -18, -1)))
vector = ControlVector.train(model, tokenizer, dataset)
model.set_control(vector, 1.5)
"""

PYVENE_DAS = """
config = IntervenableConfig(
    representations=[RepresentationConfig(layer, "block_output", "pos", 1)],
    intervention_types=BoundlessRotatedSpaceIntervention,
)
intervenable = IntervenableModel(config, model)
"""


@pytest.mark.parametrize("code", [TL_STEERING, REPE_CONTROL, REPENG, PYVENE_DAS])
def test_a_learned_direction_without_a_baseline_is_flagged(code):
    assert "CAU005" in rules(SEED, ("code", code), select=["CAU005"])


@pytest.mark.parametrize(
    "baseline",
    [
        "random_vector = torch.randn_like(steering_vector)\n"
        "random_vector *= steering_vector.norm() / random_vector.norm()",
        "rand_dir = torch.randn(d_model)",
        "baseline = random_direction(d_model, norm=steering_vector.norm())",
    ],
)
def test_a_random_direction_of_the_same_norm_is_a_baseline(baseline):
    assert not rules(SEED, ("code", TL_STEERING), ("code", baseline), select=["CAU005"])


def test_a_whole_component_patch_is_a_baseline():
    patch = (
        "def patch_hook(resid, hook):\n    resid[:] = clean_cache[hook.name]\n    return resid\n"
        "logits = model.run_with_hooks(corrupt, fwd_hooks=[('blocks.6.hook_resid_post', "
        "patch_hook)])"
    )
    assert not rules(SEED, ("code", TL_STEERING), ("code", patch), select=["CAU005"])


def test_noise_drawn_for_causal_tracing_is_no_direction_baseline():
    noise = "noise = torch.randn(1, 4, d_model) * 0.13"
    assert "CAU005" in rules(SEED, ("code", TL_STEERING), ("code", noise), select=["CAU005"])


def test_a_hook_adding_a_token_embedding_is_no_learned_direction():
    code = (
        "def add_hook(resid, hook):\n    resid[:, -1] += model.W_E[token_id]\n"
        "logits = model.run_with_hooks(tokens, fwd_hooks=[('blocks.3.hook_resid_pre', add_hook)])"
    )
    assert not rules(SEED, ("code", code), select=["CAU005"])


# -- CAU006: circuits need a faithfulness check ----------------------------------------------------

PATCHING = (
    "code",
    "from interp_magics import patching\n"
    "heads = patching.activation_patch(model, clean, corrupt, metric, site='head_out', "
    "by=('layer', 'head'))",
)


@pytest.mark.parametrize(
    "claim",
    [
        "The circuit consists of heads 9.6, 9.9 and 10.0.",
        "Heads L9H6 and L9H9 form the circuit that copies the name.",
        "These heads implement the mechanism: 9.6 moves the name and 10.7 suppresses it.",
    ],
)
def test_a_circuit_claimed_without_faithfulness_is_flagged(claim):
    assert "CAU006" in rules(PATCHING, ("md", claim), select=["CAU006"])


@pytest.mark.parametrize(
    "text",
    [
        "The OV circuit of head 1.4 is a linear map from source to destination.",
        "Name movers 9.6 and 9.9 are part of the IOI circuit found by Wang et al. (2022).",
        "Can we find the circuit that these heads form?",
        "We will find the circuit that heads in layer 9 implement.",
        "Circuit discovery tools include heads and MLPs in their graphs.",
    ],
)
def test_mentions_of_circuits_that_claim_nothing_pass(text):
    assert not rules(PATCHING, ("md", text), select=["CAU006"])


@pytest.mark.parametrize(
    "check",
    [
        ("code", "faithfulness = circuit_metric / full_metric"),
        ("md", "With everything else mean-ablated, the circuit recovers 87% of the logit diff."),
    ],
)
def test_a_faithfulness_check_clears_a_circuit_claim(check):
    claim = ("md", "The circuit consists of heads 9.6, 9.9 and 10.0.")
    assert not rules(PATCHING, check, claim, select=["CAU006"])


# -- probes written with other libraries -----------------------------------------------------------

REPE_READING = """
rep_reader = rep_reading_pipeline.get_directions(
    train_data, rep_token=-1, hidden_layers=hidden_layers, train_labels=train_labels,
    direction_method="pca")
results = {}
for layer in hidden_layers:
    scores = [h[layer] for h in test_scores]
    results[layer] = np.mean([max(pair) == pair[0] for pair in scores])
"""


def test_a_reading_vector_scored_by_accuracy_is_a_probe_compared_across_layers():
    assert {"PRB001", "PRB003"} <= rules(SEED, ("code", REPE_READING), select=["PRB"])


def test_a_reading_vector_that_is_never_scored_is_no_probe():
    code = REPE_READING.split("results = {}")[0]
    assert not rules(SEED, ("code", code), select=["PRB"])


def test_probe_results_loaded_per_model_are_probes_compared_without_control():
    code = (
        "for model in models:\n"
        "    probe_result = load_probe_results(experiment, model, entity, feature)\n"
        "    scores[model] = probe_result['scores']"
    )
    assert {"PRB001", "PRB003"} <= rules(SEED, ("code", code), select=["PRB"])


# -- causal tracing and patching written with pyvene and TransformerLens ---------------------------


def test_pyvene_noise_intervention_is_gaussian_noise_corruption():
    code = (
        "class NoiseIntervention(ConstantSourceIntervention):\n"
        "    def forward(self, base, source=None, subspaces=None):\n"
        "        base[..., :self.dim] += self.noise * self.noise_level\n"
        "        return base\n"
        "config = IntervenableConfig(representations=[RepresentationConfig(0, 'block_input')],\n"
        "                            intervention_types=NoiseIntervention)\n"
        "intervenable = IntervenableModel(config, gpt)"
    )
    assert "CAU003" in rules(SEED, ("code", code), select=["CAU003"])


def test_decoding_the_top_token_after_a_patch_is_no_probability_metric():
    code = (
        "with llm.trace() as tracer:\n"
        "    with tracer.invoke(prompt):\n"
        "        llm.transformer.wte.output = clean_embeddings\n"
        "        out = llm.lm_head.output[:, -1].save()\n"
        "print(llm.tokenizer.decode(out.argmax()))"
    )
    assert not rules(SEED, ("code", code), select=["CAU002"])


# -- randomness, tests and numbers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "out = control_pipeline(inputs, activations=acts, top_p=0.95, do_sample=True)",
        "prompts = distribution.sample_das(tokenizer, n=100)",
        "raw = factual_sampler(tokenizer, 5000, game='pricing_tag')",
    ],
)
def test_sampling_before_any_seed_is_flagged(code):
    assert "REP001" in rules(("code", code), select=["REP001"])


def test_a_notebook_sampler_after_a_seed_passes():
    assert not rules(SEED, ("code", "raw = factual_sampler(tokenizer, 5000)"), select=["REP001"])


def test_a_correlation_whose_p_value_is_dropped_is_no_test():
    code = "\n".join(f"r{i} = spearmanr(a{i}, b{i}).correlation" for i in range(4))
    code += "\nr9 = pearsonr(x, y)[0]"
    assert not rules(SEED, ("code", code), select=["STA001"])
    kept = "\n".join(f"r{i}, p{i} = spearmanr(a{i}, b{i})" for i in range(4))
    assert "STA001" in rules(SEED, ("code", kept), select=["STA001"])


def test_a_percentage_before_its_metric_is_checked_against_the_output():
    nb = notebook(("code", "print(acc)"), ("md", "The probe reaches 97% accuracy."))
    nb.cells[0].outputs = [
        {"output_type": "stream", "name": "stdout", "text": "test accuracy: 0.863\n"}
    ]
    found = rigor.check(nb, select=["STA004"])
    assert [f.rule for f in found] == ["STA004"] and "97%" in found[0].message
    nb.cells[0].outputs[0]["text"] = "test accuracy: 0.97\n"
    assert not rigor.check(nb, select=["STA004"])
    nb.cells[0].outputs[0]["text"] = "test accuracy: 97.0%\n"
    assert not rigor.check(nb, select=["STA004"])


def test_a_percentage_before_its_metric_needs_uncertainty():
    assert "STA002" in rules(("md", "The probe reaches 97% accuracy."), select=["STA002"])
    assert not rules(("md", "The probe reaches 97% accuracy (95% CI 94-99%)."), select=["STA002"])


def test_numbers_quoted_from_a_paper_are_not_this_notebooks_results():
    quoted = "They reported a baseline logit difference of 3.56 in the paper."
    assert not rules(("md", quoted), select=["STA002", "STA004"])


# -- wording that claims nothing -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Is there a representation the probe uses to compute board positions?",
        "This stops the forward pass at layer 1, requiring far less memory and compute.",
        "The output-value circuit of a head maps source tokens to output tokens.",
    ],
)
def test_questions_and_nouns_are_no_causal_claims(text):
    assert not rules(("md", text), select=["CAU001"])


def test_a_head_doing_a_task_is_a_causal_claim():
    text = "As expected, L2H2 is doing a lot of previous token detection."
    assert "CAU001" in rules(("md", text), select=["CAU001"])


def test_a_head_role_read_from_its_attention_pattern_is_flagged():
    view = ("code", "import circuitsvis as cv\ncv.attention.attention_patterns(tokens, pattern)")
    text = ("md", "Head 5 in layer 5 shows the induction stripe at seq_len - 1 tokens back.")
    assert "ATT001" in rules(view, text, select=["ATT001"])


@pytest.mark.parametrize(
    "text",
    [
        "The difference generally gets smaller as the matrices get bigger.",
        "We might want to check that the head consistently does what we want on a dataset.",
    ],
)
def test_general_words_not_about_the_model_or_hypothetical_pass(text):
    picked = ("code", "prompts = ['When Mary and John', 'The cat sat on']")
    assert not rules(picked, ("md", text), select=["EXM001"])
    claim = ("md", "The model always copies the name from the first clause.")
    assert "EXM001" in rules(picked, claim, select=["EXM001"])


def test_a_comparison_in_prose_about_no_result_passes():
    fit = ("code", "clf = LogisticRegression().fit(X, y)")
    prose = ("md", "Compared to normal ML, the feedback loops here are short.")
    assert not rules(fit, prose, select=["STA003"])
    result = ("md", "Layer 6 outperforms layer 2 on the probe.")
    assert "STA003" in rules(fit, result, select=["STA003"])


# -- probes without a classifier class -------------------------------------------------------------

MASS_MEAN = """
direction = acts[labels == 1].mean(0) - acts[labels == 0].mean(0)
scores = test_acts @ direction
accuracy = ((scores > 0).long() == test_labels).float().mean()
"""

PCA_READING = """
pca = PCA(n_components=1).fit(train_diffs)
reading = pca.components_[0]
predicted = (test_acts @ reading > 0)
acc = (predicted == test_labels).mean()
"""

TORCH_HEAD = """
probe = torch.nn.Linear(d_model, 2)
opt = torch.optim.Adam(probe.parameters(), lr=1e-3)
for step in range(200):
    loss = F.cross_entropy(probe(train_acts), train_labels)
    opt.zero_grad(); loss.backward(); opt.step()
test_acc = (probe(test_acts).argmax(-1) == test_labels).float().mean()
"""


@pytest.mark.parametrize(
    "code", [MASS_MEAN, PCA_READING, TORCH_HEAD], ids=["mass-mean", "pca", "torch"]
)
def test_direction_and_torch_probes_need_a_control(code):
    assert "PRB001" in rules(SEED, ("code", code), select=["PRB001"])


def test_a_steering_vector_from_contrast_pairs_is_no_probe():
    code = "steering = acts_pos.mean(0) - acts_neg.mean(0)\nout = generate_with(steering)"
    assert not rules(SEED, ("code", code), select=["PRB001"])


def test_a_mass_mean_probe_with_shuffled_labels_passes():
    control = (
        "y_null = labels[torch.randperm(len(labels))]\n"
        "null_direction = acts[y_null == 1].mean(0) - acts[y_null == 0].mean(0)\n"
        "null_acc = (((test_acts @ null_direction) > 0).long() == test_labels).float().mean()"
    )
    assert "PRB001" not in rules(SEED, ("code", MASS_MEAN), ("code", control), select=["PRB001"])


def test_the_best_layer_by_cross_validated_score_is_selection_biased():
    loop = (
        "scores = [cross_val_score(LogisticRegression(), acts[l], y, cv=5).mean() "
        "for l in range(12)]\nbest = int(np.argmax(scores))\nprint(scores[best])"
    )
    found = rigor.check(notebook(SEED, ("code", loop)), select=["STA005"])
    assert [f.rule for f in found] == ["STA005"] and "nested" in found[0].message
    every = "scores = [cross_val_score(LogisticRegression(), acts[l], y).mean() for l in range(12)]"
    assert not rules(SEED, ("code", every), select=["STA005"])


def test_a_claim_about_all_inputs_on_its_own_line_is_read():
    picked = ("code", "prompts = ['When Mary and John', 'The cat sat on']")
    text = "Head 1.2 explains the model's predictions,\nas the examples show, and this holds for all inputs."
    assert "EXM001" in rules(picked, ("md", text), select=["EXM001"])
