"""The probe panel's words and data: its verdict, checked against reports of real probes.

Reports come from real fits: a label linearly encoded in features, labels independent of the
features, a representation that memorises word types (the control task solves as well as the
probe), imbalanced classes, and layer sweeps of the pretrained MiniLM (question vs statement,
animal vs object nouns) with and without a randomly initialised copy of the model as control.
"""

import warnings

import numpy as np
import pytest
import torch

from interp_magics import capture, probes
from interp_magics.widgets.probe_verdict import fmt_p, layer_axis, verdict
from interp_magics.widgets.probes import DECISIVE, OTHERS, PALETTE, ProbePanel


def encoded(n=200, d=12, seed=0, noise=0.5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return x, (x @ rng.standard_normal(d) + noise * rng.standard_normal(n) > 0).astype(int)


def test_a_significant_probe_above_its_controls_says_so_with_its_p_value():
    x, y = encoded()
    r = probes.probe(x, y, n_permutations=100, progress=False)
    v = verdict(r)
    p = r.permutation["p_value"]
    assert p < 0.05 and r.accuracy_ci[0] > r.controls["random features"].ci[1]
    assert (
        v.headline
        == f"Above chance and above controls, p = {p:.2g}"
        == ("Above chance and above controls, p = 0.0099")
    )
    assert v.level == "above"
    assert f"{r.accuracy:.3f}" in v.detail and f"{r.chance.majority:.3f}" in v.detail


def test_a_probe_at_chance_is_not_above_the_majority_baseline():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((200, 12)), rng.integers(0, 2, 200)
    r = probes.probe(x, y, n_permutations=100, progress=False)
    v = verdict(r)
    assert r.p_value >= 0.05 and r.accuracy <= r.chance.majority
    assert v.headline == f"Not above the majority baseline, p = {r.p_value:.2g}"
    assert v.level == "chance"


def test_a_probe_the_control_task_matches_is_above_chance_but_not_above_controls():
    # the representation encodes word identity and the label is an arbitrary property of the
    # word: the probe can only memorise identities, which solves the control task (a random
    # label per word type) as well (Hewitt & Liang's point)
    rng = np.random.default_rng(0)
    types = rng.integers(0, 20, 400)
    word_label = np.array([0, 1] * 10)
    rng.shuffle(word_label)
    x = rng.standard_normal((20, 16))[types] + 0.1 * rng.standard_normal((400, 16))
    r = probes.probe(x, word_label[types], control_task=types, n_permutations=100, progress=False)
    v = verdict(r)
    assert r.p_value < 0.05 and r.selectivity_ci is not None and r.selectivity_ci[0] <= 0
    assert v.headline == "Above chance but not above the control task, p = 0.0099"
    assert v.level == "partial"


def test_imbalanced_classes_are_judged_against_the_majority_rate():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 8))
    y = np.array([1] * 40 + [0] * 360)
    rng.shuffle(y)
    r = probes.probe(x, y, n_permutations=100, progress=False)
    assert r.accuracy <= r.chance.majority == pytest.approx(0.9)
    assert verdict(r).headline == f"Not above the majority baseline, p = {r.p_value:.2g}"


@pytest.fixture(scope="module")
def nouns(minilm):
    """MiniLM's residual stream over 48 sentences: animal vs object nouns, question vs not."""
    model, tok = minilm
    animals = ["cat", "dog", "bird", "fish", "horse", "cow", "mouse", "sheep"]
    things = ["car", "book", "lamp", "cup", "door", "key", "pen", "chair"]
    frames = ["the {} is here.", "i saw a {} today.", "where is the {}?"]
    text = [f.format(w) for f in frames for w in animals + things]
    animal = np.array([int(w in animals) for _ in frames for w in animals + things])
    question = np.array([int(f.endswith("?")) for f in frames for _ in animals + things])
    enc = tok(text, padding=True, return_tensors="pt")
    with torch.no_grad(), capture(model, "resid_post") as acts:
        model(**enc)
    return model, enc, acts, animal, question


def _sweep(nouns, labels, **kwargs):
    _, _, acts, *_ = nouns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "last" reads [SEP] in every sentence: known here
        return probes.probe_layers(acts, labels, n_permutations=200, cv=4, progress=False, **kwargs)


def test_a_sweep_names_the_layers_above_chance_and_above_controls(nouns):
    model, enc, _, animal, question = nouns
    plain = _sweep(nouns, question, position="mean")
    assert plain.significant.all()
    assert verdict(plain).headline == (
        "Above chance and above controls at layers 0-5, corrected p < 0.01"
    )
    # a random-init model reads the same "?": every layer's probe is matched by it
    ctrl = _sweep(nouns, question, position="mean", model=model, inputs=enc)
    v = verdict(ctrl)
    assert v.headline == (
        "Above chance but not above the random-init model control at layers 0-5, corrected p < 0.01"
    )
    assert v.level == "partial"
    # the [CLS] vector: at layers 0-4 the probe only reaches the majority rate (2/3, questions
    # are a third); its permutation p is small (ties in accuracy broken by the margin), which
    # is not "above chance" for imbalanced classes
    first = _sweep(nouns, question, position="first", model=model, inputs=enc)
    v = verdict(first)
    assert v.headline == (
        "Above shuffled labels but not above the majority baseline at layers 0-4, "
        "corrected p < 0.05"
    )
    assert v.detail.startswith(
        "Above chance but not above the random-init model control at layer 5;"
    )
    # animacy: the layers named are those significant and above the random-init model's CI
    mixed = _sweep(nouns, animal, position="last", model=model, inputs=enc)
    clean = [
        str(i)
        for i, (r, s) in enumerate(zip(mixed.reports, mixed.significant, strict=True))
        if s
        and r.accuracy > r.controls["random-init model"].ci[1]
        and r.accuracy > r.controls["random features"].ci[1]
    ]
    dirty = [str(i) for i, s in enumerate(mixed.significant) if s and str(i) not in clean]
    assert (clean, dirty) == (["0", "1", "2", "3", "5"], ["4"])
    v = verdict(mixed)
    assert v.headline == "Above chance and above controls at layers 0-3, 5, corrected p < 0.01"
    assert v.detail.startswith(
        "Above chance but not above the random-init model control at layer 4; best layer"
    )


def test_a_sweep_at_chance_everywhere_gives_its_smallest_corrected_p(gpt2):
    ids = torch.randint(1, 90, (40, 6), generator=torch.Generator().manual_seed(0))
    labels = (ids[:, -1] % 2).numpy()
    with capture(gpt2, "resid_post") as acts:
        gpt2(ids)
    r = probes.probe_layers(acts, labels, n_permutations=50, cv=4, progress=False)
    assert not r.significant.any()
    v = verdict(r)
    low = float(r.p_corrected.min())
    assert v.headline.endswith(f"at any layer, smallest corrected p {fmt_p(low)}")
    assert v.headline.startswith("Not above")
    assert v.level == "chance"


@pytest.mark.parametrize(
    ("names", "ticks", "title"),
    [
        (
            ["resid_post.0", "resid_post.1", "resid_post.10"],
            ["0", "1", "10"],
            "layer (resid_post.*)",
        ),
        (
            ["encoder.layer.3.output", "encoder.layer.4.output"],
            ["3", "4"],
            "layer (encoder.layer.*.output)",
        ),
        (["transformer.h.0.mlp", "transformer.h.0.attn"], ["mlp", "attn"], "layer"),
        (["embeddings"], ["embeddings"], "layer"),
    ],
)
def test_layer_names_become_numbers_and_an_axis_title(names, ticks, title):
    assert layer_axis(names) == (ticks, title)


def test_p_values_in_prose():
    assert fmt_p(0.756) == "= 0.76"
    assert fmt_p(0.0099) == "= 0.0099"
    assert fmt_p(2e-5) == "< 0.001"
    assert fmt_p(float("nan")) == "n/a"


def _contrast(a: str, b: str) -> float:
    def lum(h: str) -> float:
        v = np.array([int(h[i : i + 2], 16) for i in (1, 3, 5)]) / 255
        lin = np.where(v <= 0.03928, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
        return float(lin @ [0.2126, 0.7152, 0.0722])

    hi, lo = sorted([lum(a), lum(b)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_series_colours_read_in_both_themes_and_only_the_probe_is_blue():
    colours = [*PALETTE.values(), *OTHERS]
    for light, dark in colours:
        assert _contrast(light, "#ffffff") >= 3, light
        assert _contrast(dark, "#111111") >= 3, dark
    # the control task is no longer a second blue beside the probe
    assert PALETTE["task"][0] not in ("#56B4E9", "#0072B2")


def test_panel_data_of_a_sweep_puts_the_decisive_columns_first(nouns):
    model, enc, _, animal, _ = nouns
    r = _sweep(nouns, animal, position="last", model=model, inputs=enc)
    d = ProbePanel(r).data
    keys = [c["key"] for c in d["columns"]]
    assert tuple(keys[: len(DECISIVE)]) == DECISIVE and keys[-1] == "p_raw"
    assert d["key_columns"] == len(DECISIVE)
    assert d["x_title"] == "layer (resid_post.*)" and d["value_title"] == "held-out accuracy"
    assert d["ticks"] == [str(i) for i in range(6)]
    for row, rep, pc, s in zip(d["rows"], r.reports, r.p_corrected, r.significant, strict=True):
        assert len(row) == len(keys)
        assert row[1] == f"{rep.accuracy:.3f}"
        assert row[2] == f"{rep.accuracy_ci[0]:.3f}–{rep.accuracy_ci[1]:.3f}"
        assert float(row[3]) == pytest.approx(pc, rel=5e-3)
        assert row[4] == ("yes" if s else "no")
    for tip, rep in zip(d["tips"], r.reports, strict=True):
        assert tip[1] == (
            f"probe {rep.accuracy:.3f} [95% CI {rep.accuracy_ci[0]:.3f}, {rep.accuracy_ci[1]:.3f}]"
        )
    assert d["verdict"]["headline"] == verdict(r).headline
    assert ProbePanel(r).fallback_text().splitlines()[0] == verdict(r).headline


def test_panel_data_of_one_probe_maps_each_bar_to_its_table_row():
    x, y = encoded()
    r = probes.probe(x, y, n_permutations=100, control_task=np.arange(200) % 17, progress=False)
    panel = ProbePanel(r)
    d = panel.data
    measures = [row[0] for row in d["rows"]]
    for b in d["bars"]:
        assert measures[b["row"]] == b["name"]
    probe = d["bars"][0]
    lo, hi = r.accuracy_ci
    assert probe["tip"][1] == f"held-out accuracy {r.accuracy:.3f} [95% CI {lo:.3f}, {hi:.3f}]"
    assert any("permutation p = 0.0099" in line for line in probe["tip"])
    assert [b["role"] for b in d["bars"]] == ["probe", "balanced", "shuffled", "random", "task"]
    assert d["bars"][0]["color"] != d["bars"][-1]["color"]
    data, _ = r._repr_mimebundle_()
    assert data["text/plain"].splitlines()[0] == verdict(r).headline
    assert data["image/png"][:4] == b"\x89PNG"
