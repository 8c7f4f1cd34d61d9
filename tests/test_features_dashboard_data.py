"""The data behind the feature dashboard, against a brute-force pass over every activation.

The reference keeps every feature activation of every token (captured here, padding and all)
and computes top examples, densities, maxima, windows and histograms directly.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

from interp_magics import capture, testing, toy
from interp_magics.features import FeatureError, FeatureExamples, dashboard_data, spliced


def _sae(d_sae: int, seed: int = 0) -> StandardSAE:
    torch.manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=64, d_sae=d_sae))
    with torch.no_grad():
        sae.b_enc.fill_(-0.3)  # sparse: most features fire on a minority of tokens
    return sae


def _padded_batches():
    """Two batches of different lengths, left- and right-padded."""
    g = torch.Generator().manual_seed(11)
    a = torch.randint(1, 97, (3, 9), generator=g)
    mask_a = torch.ones_like(a)
    mask_a[0, :3] = 0  # left padding
    b = torch.randint(1, 97, (4, 6), generator=g)
    mask_b = torch.ones_like(b)
    mask_b[2, 4:] = 0  # right padding
    return [{"input_ids": a, "attention_mask": mask_a}, {"input_ids": b, "attention_mask": mask_b}]


def test_top_examples_densities_windows_and_histograms_equal_brute_force():
    model = testing.gpt2()
    tok = testing.bpe_tokenizer(97)
    sae = _sae(40)
    batches = _padded_batches()
    k, before, after, bins = 5, 3, 2, 7
    # Thresholds from the data: most features fire on ~30% of the tokens, features 30-37 on a
    # few (fewer than k), features 38-39 never.
    x = torch.cat(
        [capture(model, "resid_post.1").run(b)["resid_post.1"].flatten(0, 1) for b in batches]
    )
    with torch.no_grad():
        pre = (x - sae.b_dec) @ sae.W_enc
        sae.b_enc.copy_(-pre.quantile(0.7, dim=0))
        sae.b_enc[30:38] = -pre[:, 30:38].quantile(0.96, dim=0)
        sae.b_enc[38:] = -1e3
    with spliced(model, sae, "resid_post.1") as fs:
        result = dashboard_data(
            model,
            fs.key,
            batches,
            tokenizer=tok,
            k=k,
            window=(before, after),
            bins=bins,
            top_logits=4,
            batch_size=2,
            progress=False,
        )
        acts = [capture(model, fs.key).run(batch)[fs.key] for batch in batches]
    # Brute force over every real token: (activation, batch, example, position).
    rows = []
    for bi, (batch, a) in enumerate(zip(batches, acts, strict=True)):
        for e in range(a.shape[0]):
            for p in range(a.shape[1]):
                if batch["attention_mask"][e, p]:
                    rows.append((a[e, p], bi, e, p))
    n_real = len(rows)
    every = torch.stack([r[0] for r in rows])  # [real tokens, features]
    assert result.n_tokens == n_real == 3 * 9 - 3 + 4 * 6 - 2
    assert np.allclose(result.density, (every > 0).double().mean(0).numpy(), atol=1e-7)
    assert np.allclose(result.max_activation, every.max(0).values.clamp_min(0).numpy())
    assert result.site == "sae:resid_post.1" and result.n_features == 40 == len(result.labels)
    example_base = [0, 3]
    W_U = model.lm_head.weight
    for f in range(40):
        detail = result.detail(f)
        assert isinstance(detail, FeatureExamples) and detail.feature == f
        order = torch.argsort(every[:, f], descending=True, stable=True)
        firing = [int(i) for i in order if every[i, f] > 0][:k]
        assert detail.activations.dtype == np.float32
        assert detail.activations.shape == (len(firing), before + after + 1)
        # each window is centred on its example's max token, highest first
        assert np.allclose(detail.activations[:, before], every[firing, f].numpy())
        for row, i in enumerate(firing):
            _, bi, e, p = rows[i]
            assert detail.sources[row] == (example_base[bi] + e, p)
            ids, mask = batches[bi]["input_ids"][e], batches[bi]["attention_mask"][e]
            for j, q in enumerate(range(p - before, p + after + 1)):
                real = 0 <= q < len(ids) and bool(mask[q])
                value = float(acts[bi][e, q, f]) if real else 0.0
                token = tok.convert_ids_to_tokens([int(ids[q])])[0] if real else ""
                assert detail.activations[row, j] == pytest.approx(value, abs=1e-6)
                assert detail.tokens[row][j] == token
        nonzero = every[:, f][every[:, f] > 0].numpy()
        counts, edges = detail.histogram
        assert len(counts) == bins and len(edges) == bins + 1
        top = max(float(nonzero.max()) if nonzero.size else 0.0, 0.0)
        assert np.allclose(edges, np.linspace(0, top if top > 0 else 1.0, bins + 1), atol=1e-6)
        expected, _ = np.histogram(nonzero, bins=edges.astype(np.float64))
        assert counts.tolist() == expected.tolist()
        logits = (sae.W_dec[f] @ W_U.T).detach()
        up = torch.topk(logits, 4)
        assert [t for t, _ in detail.promoted] == tok.convert_ids_to_tokens(up.indices.tolist())
        assert np.allclose([v for _, v in detail.promoted], up.values.numpy(), atol=1e-5)
        down = torch.topk(-logits, 4)
        assert np.allclose([v for _, v in detail.suppressed], (-down.values).numpy(), atol=1e-5)
        assert result.labels[f] == detail.promoted[0][0]
        assert detail.density == pytest.approx(float(result.density[f]))
    fired = (every > 0).sum(0)
    assert (fired[:30] >= k).all() and (fired[30:38] < k).all() and (fired[30:38] > 0).all()
    assert (fired[38:] == 0).all() and result.detail(39).tokens == []
    windows = [w for f in range(40) for w in result.detail(f).tokens]
    assert any("" in w for w in windows)  # padding and sequence ends inside windows
    df = result.to_dataframe()
    assert list(df.columns) == ["feature", "label", "density", "max_activation"]
    assert "final norm ignored" in str(result)
    # in a notebook the set shows as the feature dashboard, with its fallbacks
    bundle = result._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert {"application/vnd.jupyter.widget-view+json", "image/png", "text/plain"} <= set(data)
    view = result.widget(selected=1)
    assert type(view).__name__ == "FeatureDashboard" and view.selected == 1
    assert result.density_plot().axes[0].get_ylabel() == "features"


def test_sixteen_thousand_features_on_a_tiny_model_build_in_seconds():
    model = toy.load()
    data = toy.repeated_sequences(64, seed=4)
    sae = _sae(16_000)
    with spliced(model, sae, "resid_post.0") as fs:
        start = time.perf_counter()
        result = dashboard_data(model, fs.key, data, batch_size=16, progress=False)
        seconds = time.perf_counter() - start
        detail_start = time.perf_counter()
        detail = result.detail(int(np.argmax(result.max_activation)))
        detail_seconds = time.perf_counter() - detail_start
    kept = sum(
        a.nbytes for a in (result._top_values, result._top_tokens, result._windows, result._hist)
    )
    print(
        f"dashboard_data: 16,000 features x {result.n_tokens} tokens in {seconds:.2f} s; "
        f"detail in {detail_seconds * 1e3:.1f} ms; {kept / 2**20:.1f} MiB kept"
    )
    assert result.n_features == 16_000 and result.density.shape == (16_000,)
    assert result.density.dtype == np.float32 and result.max_activation.dtype == np.float32
    assert len(detail.tokens) == 20 and detail.tokens[0][8] != ""
    # Memory is bounded by features x k (never features x tokens): 64 x 33 tokens here.
    assert result._windows.shape == (20, 16_000, 13)
    assert kept < 16_000 * 20 * (4 + 8 + 13 * 4) + 16_000 * 30 * 8 + 1


def test_bad_dashboard_input_is_refused():
    model = toy.load()
    data = toy.repeated_sequences(2)
    with spliced(model, _sae(8), "resid_post.0") as fs:
        for kwargs, message in [
            ({"k": 0}, "k must be a positive integer"),
            ({"window": (3,)}, "window must be"),
            ({"window": (-1, 2)}, "window must be"),
            ({"bins": 0}, "bins must be"),
            ({"labels": ["a"]}, "labels must be 8 strings"),
        ]:
            with pytest.raises(FeatureError, match=message):
                dashboard_data(model, fs.key, data, progress=False, **kwargs)
        result = dashboard_data(model, fs.key, ["ABCD", "EFGH"], progress=False)  # texts
        assert result.n_tokens == 10
        with pytest.raises(FeatureError, match="out of range"):
            result.detail(8)
    with pytest.raises(FeatureError, match="no SAE is attached"):
        dashboard_data(model, "sae:resid_post.0", data, progress=False)
