"""Activation patching and ablation: the causal tests.

:func:`activation_patch` swaps activations between a clean and a corrupted run and scores each
patched run with a metric, over layers, positions and heads. ``direction="denoising"`` (the
default) runs the corrupted input and patches in clean activations: a cell near 1 restores the
clean behaviour, so that component is *sufficient* to carry the information.
``direction="noising"`` runs the clean input and patches in corrupted activations: a cell near 0
destroys the behaviour, so the component is *necessary*. ``method="attribution"`` gives the
first-order approximation of the whole sweep from two forwards and one backward;
``verify_top=k`` checks its k largest cells by exact patching.

:func:`ablate` replaces activations by zeros, their batch mean or another example's values
(resampling) and reports the change in the metric: a necessity test without a counterfactual.

Both return a :class:`PatchResult`. Metrics live in :mod:`interp_magics.metrics`
(``logit_diff``, ``logprob``, ``kl_to_clean``, or any function of the logits).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import events
from .capturing import capture
from .errors import CaptureError
from .metrics import (
    KLToClean,
    Metric,
    MetricError,
    as_metric,
    kl_to_clean,
    logit_diff,
    logprob,
)
from .runner import PATCH_SITES, Batch, Patch, Runner, to_device

if TYPE_CHECKING:
    import pandas as pd

    from .widgets.patching import PatchingHeatmap

__all__ = [
    "MetricError",
    "PatchResult",
    "PatchingError",
    "ablate",
    "activation_patch",
    "kl_to_clean",
    "logit_diff",
    "logprob",
]

#: Token budget of one stacked forward: rows x sequence length (a memory knob, not a speed one).
BATCH_TOKENS = 8192


class PatchingError(CaptureError):
    """Inputs a patching run cannot use; the message says what to fix."""


@dataclass
class PatchResult:
    """The outcome of a patching or ablation sweep.

    Attributes:
        values: the headline numbers, shape ``[len(labels[a]) for a in axes]``. For patching
            with ``normalised=True``: the batch-mean metric rescaled so the corrupted run scores 0
            and the clean run 1. For ablation: the change of the batch-mean metric from the
            clean run.
        raw: the batch-mean metric of each patched run, same shape.
        per_example: the metric of every example in every cell, ``[..., batch]``.
        axes: names of the axes, e.g. ``("layer", "pos")``.
        labels: tick labels per axis (token strings on the position axis).
        clean_baseline, corrupt_baseline: batch-mean metric of the unpatched runs (the
            corrupted baseline is None for ablation); per-example versions alongside.
        metric, site, method, direction, corruption: what was done, in words.
        verification: for attribution with ``verify_top``, the checked cells (attribution vs
            exact) and a summary of how well the ranking held.
    """

    values: torch.Tensor
    raw: torch.Tensor
    per_example: torch.Tensor
    axes: tuple[str, ...]
    labels: dict[str, list[str]]
    metric: str
    site: str
    method: str
    direction: str | None
    corruption: str
    clean_baseline: float
    corrupt_baseline: float | None
    clean_per_example: torch.Tensor
    corrupt_per_example: torch.Tensor | None
    normalised: bool
    verification: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dataframe(self) -> pd.DataFrame:
        """Return one row per cell: its axis indices and labels, value, raw metric."""
        import pandas as pd

        grids = torch.meshgrid(*[torch.arange(n) for n in self.values.shape], indexing="ij")
        data: dict[str, Any] = {}
        for axis, grid in zip(self.axes, grids, strict=True):
            idx = grid.reshape(-1).tolist()
            data[axis] = idx
            if axis == "pos":
                data["token"] = [self.labels[axis][i] for i in idx]
        data["value"] = self.values.reshape(-1).tolist()
        data["raw"] = self.raw.reshape(-1).tolist()
        return pd.DataFrame(data)

    def top(self, k: int = 10) -> pd.DataFrame:
        """Return the ``k`` cells with the largest absolute value, largest first."""
        df = self.to_dataframe()
        return (
            df.reindex(df["value"].abs().sort_values(ascending=False).index)
            .head(k)
            .reset_index(drop=True)
        )

    def describe(self) -> str:
        """Return a short text summary with the baselines and the strongest cells."""
        what = f"{self.method} {self.direction + ' ' if self.direction else ''}patching"
        if self.method.endswith("ablation"):
            what = self.method
        lines = [
            f"PatchResult: {what} of {self.site} by {' x '.join(self.axes)} "
            f"({' x '.join(str(n) for n in self.values.shape)} cells); metric: {self.metric}",
            f"clean baseline {self.clean_baseline:.4g}"
            + (
                f", corrupted baseline {self.corrupt_baseline:.4g}"
                if self.corrupt_baseline is not None
                else ""
            )
            + f"; corruption: {self.corruption}",
        ]
        if self.normalised:
            lines.append("values are normalised: 0 = corrupted run, 1 = clean run")
        elif self.method.endswith("ablation"):
            lines.append("values are the change in the metric from the clean run")
        top = self.top(5)
        cells = []
        for _, row in top.iterrows():
            where = ", ".join(
                f"{a} {int(row[a])}" + (f" ({row['token']})" if a == "pos" else "")
                for a in self.axes
            )
            cells.append(f"{where}: {row['value']:.3f}")
        lines.append("largest cells: " + "; ".join(cells))
        if self.verification:
            lines.append(self.verification["summary"])
        lines.extend(self.notes)
        return "\n".join(lines)

    def widget(self, **kwargs: Any) -> PatchingHeatmap:
        """Return an interactive heatmap of this result."""
        from .widgets.patching import PatchingHeatmap

        return PatchingHeatmap(self, **kwargs)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget()._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return self.describe()


# -- inputs -------------------------------------------------------------------------------------


def _as_batch(inputs: Any, name: str) -> Batch:
    if isinstance(inputs, torch.Tensor):
        ids = inputs if inputs.ndim == 2 else inputs.unsqueeze(0)
        if ids.dtype.is_floating_point:
            raise PatchingError(f"{name} must hold token ids (integers), not {ids.dtype}")
        return {"input_ids": ids.long(), "attention_mask": torch.ones_like(ids, dtype=torch.long)}
    if isinstance(inputs, Mapping):
        if "input_ids" not in inputs:
            raise PatchingError(
                f"{name} has no input_ids (keys: {sorted(inputs)}); pass a tokenizer output"
            )
        ids = torch.as_tensor(inputs["input_ids"])
        if ids.ndim == 1:
            ids = ids.unsqueeze(0)
        out: Batch = {"input_ids": ids.long()}
        mask = inputs.get("attention_mask")
        out["attention_mask"] = (
            torch.ones_like(ids, dtype=torch.long)
            if mask is None
            else torch.as_tensor(mask).reshape(ids.shape).long()
        )
        for key, value in inputs.items():
            if key not in out and isinstance(value, torch.Tensor) and value.shape[:2] == ids.shape:
                out[key] = value
        return out
    raise PatchingError(
        f"{name} must be a tokenizer output (with input_ids) or a tensor of token ids, "
        f"not {type(inputs).__name__}"
    )


def _check_pair(clean: Batch, corrupt: Batch) -> None:
    c, k = clean["input_ids"].shape, corrupt["input_ids"].shape
    if c[0] != k[0]:
        raise PatchingError(
            f"clean has {c[0]} examples but corrupt has {k[0]}; pair each prompt with its "
            "counterfactual"
        )
    if c[1] != k[1]:
        raise PatchingError(
            f"clean prompts have {c[1]} tokens but corrupted ones have {k[1]}: patching compares "
            "the same positions, so each counterfactual must tokenise to the same length (replace "
            "a token with one of the same length, or pad both to one length yourself)"
        )
    if not torch.equal(clean["attention_mask"], corrupt["attention_mask"]):
        raise PatchingError(
            "clean and corrupted prompts are padded differently (their attention masks differ); "
            "pad them the same way so that positions line up"
        )


def _runner(
    model: nn.Module, metric: Metric, batch: Batch, layers: Sequence[int] | None
) -> tuple[Runner, list[int]]:
    """Return a runner for ``model`` and the layers to sweep, after every input check."""
    runner = Runner(model, metric)
    vocab = _vocab_size(model, runner)
    if vocab is not None:
        metric.check_vocab(vocab)
    layer_list = _layers(runner, layers)
    metric.resolve_positions(batch["attention_mask"])
    return runner, layer_list


def _vocab_size(model: nn.Module, runner: Runner) -> int | None:
    weight = getattr(runner.unembed, "weight", None)
    if isinstance(weight, torch.Tensor):
        return int(weight.shape[0])
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    return int(size) if size is not None else None


def _normalise_by(site: str, by: Sequence[str] | str) -> tuple[str, tuple[str, ...]]:
    axes = (by,) if isinstance(by, str) else tuple(by)
    allowed = {("layer",), ("layer", "pos"), ("layer", "head"), ("layer", "head", "pos")}
    if axes not in allowed:
        raise PatchingError(
            f"by={axes!r} is not supported; use ('layer',), ('layer', 'pos'), ('layer', 'head') or "
            "('layer', 'head', 'pos')"
        )
    if "head" in axes:
        if site not in ("attn_out", "head_out"):
            raise PatchingError(f"per-head patching is done at site='head_out', not {site!r}")
        site = "head_out"
    elif site == "head_out":
        raise PatchingError(
            "site='head_out' patches heads: use by=('layer', 'head') or ('layer', 'head', 'pos')"
        )
    if site not in PATCH_SITES:
        raise PatchingError(f"unknown site {site!r}; patching supports {', '.join(PATCH_SITES)}")
    return site, axes


def _layers(runner: Runner, layers: Sequence[int] | None) -> list[int]:
    n = runner.n_layers
    if layers is None:
        return list(range(n))
    out = []
    for layer in layers:
        if not -n <= int(layer) < n:
            raise PatchingError(f"layer {layer} is out of range: the model has {n} layers")
        out.append(int(layer) % n)
    return sorted(set(out))


def _tokenizer(model: nn.Module, tokenizer: Any) -> Any:
    """Return ``tokenizer``, else the one the model carries (``model.tokenizer``), else None."""
    return tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)


def _token_labels(batch: Batch, other: Batch | None, tokenizer: Any) -> list[str]:
    ids = batch["input_ids"][0].tolist()
    alt = other["input_ids"][0].tolist() if other is not None else ids

    def show(i: int) -> str:
        if tokenizer is None:
            return str(i)
        token = tokenizer.convert_ids_to_tokens([i])[0]
        return str(token if token is not None else i)

    return [show(a) if a == b else f"{show(a)}→{show(b)}" for a, b in zip(ids, alt, strict=True)]


# -- the runs -------------------------------------------------------------------------------------


@dataclass
class _Run:
    """One unpatched run: its metric per example, residual stream and site activations."""

    batch: Batch
    values: torch.Tensor  # [B]
    resid: dict[int, torch.Tensor]  # layer -> resid_pre [B, T, d]
    site: dict[int, torch.Tensor]  # layer -> activation at the site
    cache: Any = None  # its keys and values (causal models), to reuse unchanged prefixes


def _reference_run(
    runner: Runner,
    batch: Batch,
    site: str,
    layers: list[int],
    *,
    hooks: list[tuple[nn.Module, str, Any]] | None = None,
    keep_logprobs: bool = False,
) -> _Run:
    patterns = [f"resid_pre.{layer}" for layer in layers]
    if site != "resid_pre":
        patterns += [f"{site}.{layer}" for layer in layers]
    examples = torch.arange(batch["input_ids"].shape[0])
    with (
        torch.inference_mode(),
        runner.probe_blocks(),
        capture(runner.model, patterns, device=runner.device) as acts,
    ):
        logits = runner.run(batch, examples, extra_hooks=hooks, keep_cache=True)
    if keep_logprobs:
        runner.clean_logprobs = logits.float().log_softmax(-1)
    values = runner.score(logits, examples)
    if values.shape != (len(examples),):
        raise MetricError(
            f"the metric gave shape {tuple(values.shape)}; it must give one value per example"
        )
    if not torch.isfinite(values).all():
        raise MetricError(
            "the metric is not finite on an unpatched run; check the answer tokens and positions"
        )
    resid = {layer: acts[f"resid_pre.{layer}"] for layer in layers}
    site_acts = (
        resid if site == "resid_pre" else {layer: acts[f"{site}.{layer}"] for layer in layers}
    )
    return _Run(batch, values, resid, site_acts, runner.last_cache if runner.cache_kwarg else None)


def _noise_hook(
    runner: Runner, batch: Batch, scale: float, positions: Sequence[int] | None, seed: int
) -> Any:
    """Return a forward hook adding Gaussian noise to the token embeddings (a corruption)."""
    mask = batch["attention_mask"].bool().to(runner.device)
    where = torch.zeros_like(mask)
    if positions is None:
        where = mask
    else:
        where[:, list(positions)] = True
        where &= mask
    state: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        if "noise" not in state:
            gen = torch.Generator(device="cpu").manual_seed(seed)
            std = float(output[mask].float().std())
            noise = torch.randn(output.shape, generator=gen).to(output.device, output.dtype)
            state["noise"] = noise * scale * std * where[..., None]
        return output + state["noise"]

    return hook


def _cells(axes: tuple[str, ...], n_heads: int, length: int) -> list[tuple[int | None, int | None]]:
    """Return the (head, pos) of every cell of one layer, in row-major order of the axes."""
    heads: list[int | None] = list(range(n_heads)) if "head" in axes else [None]
    positions: list[int | None] = list(range(length)) if "pos" in axes else [None]
    return [(h, p) for h in heads for p in positions]


def _cell_slice(t: torch.Tensor, head: int | None, pos: int | None) -> torch.Tensor:
    x = t if pos is None else t[:, pos]
    if head is not None:
        x = x[:, head] if pos is not None else x[:, :, head]
    return x


def _exact(
    runner: Runner,
    base: _Run,
    source: dict[int, torch.Tensor],
    site: str,
    axes: tuple[str, ...],
    layers: list[int],
    *,
    only: set[tuple[int, int | None, int | None]] | None = None,
    batch_tokens: int = BATCH_TOKENS,
    progress: bool = True,
    desc: str = "patching",
) -> torch.Tensor:
    """Return per-example metrics ``[layer, (head), (pos), batch]`` of every patched cell."""
    from tqdm.auto import tqdm

    b, t = base.batch["input_ids"].shape
    n_heads = runner.n_heads if "head" in axes else 0
    cells = _cells(axes, n_heads, t)
    out = base.values.repeat(len(layers), len(cells), 1)  # cells equal to the base keep its values
    work: list[tuple[int, list[int]]] = []
    for li, layer in enumerate(layers):
        todo = []
        for ci, (head, pos) in enumerate(cells):
            if only is not None and (layer, head, pos) not in only:
                continue
            # A cell whose source and base activations are equal is exactly the base run.
            if torch.equal(
                _cell_slice(source[layer], head, pos), _cell_slice(base.site[layer], head, pos)
            ):
                continue
            todo.append(ci)
        work.append((li, todo))
    reuse = base.cache is not None and "pos" in axes
    total = sum(len(todo) for _, todo in work) * b
    bar = tqdm(total=total, desc=desc, unit="run", disable=not progress or total == 0, leave=False)
    try:
        with torch.inference_mode():
            for li, todo in work:
                for chunk in _chunks(todo, cells, b, t, batch_tokens, reuse):
                    vals = _run_cells(
                        runner, base, source, site, layers[li], [cells[c] for c in chunk]
                    )
                    out[li, chunk] = vals.reshape(len(chunk), b)
                    bar.update(len(chunk) * b)
    finally:
        bar.close()
    shape = (
        [len(layers)] + ([n_heads] if "head" in axes else []) + ([t] if "pos" in axes else []) + [b]
    )
    return out.reshape(shape)


def _chunks(
    todo: list[int],
    cells: list[tuple[int | None, int | None]],
    b: int,
    t: int,
    batch_tokens: int,
    reuse: bool,
) -> list[list[int]]:
    """Group cells into stacked runs of at most ``batch_tokens`` tokens.

    With prefix reuse, cells are taken in position order and a run's positions stay within a
    narrow span, because every row of a run computes from the run's earliest position on.
    """
    if not reuse:
        per = max(1, batch_tokens // max(1, b * t))
        return [todo[i : i + per] for i in range(0, len(todo), per)]
    span = max(1, t // 8)
    ordered = sorted(todo, key=lambda c: cells[c][1] or 0)
    chunks: list[list[int]] = []
    for c in ordered:
        pos = cells[c][1] or 0
        if chunks:
            first = cells[chunks[-1][0]][1] or 0
            fits = (len(chunks[-1]) + 1) * b * (t - first) <= batch_tokens
            if fits and pos - first < span:
                chunks[-1].append(c)
                continue
        chunks.append([c])
    return chunks


def _run_cells(
    runner: Runner,
    base: _Run,
    source: dict[int, torch.Tensor],
    site: str,
    layer: int,
    cells: list[tuple[int | None, int | None]],
) -> torch.Tensor:
    """Return the metric of ``len(cells) x batch`` patched copies run together from ``layer``."""
    b = base.batch["input_ids"].shape[0]
    examples = torch.arange(b).repeat(len(cells))
    rows = torch.arange(len(examples))
    heads = [h for h, _ in cells]
    positions = [p for _, p in cells]
    head_idx = None if heads[0] is None else torch.tensor(heads).repeat_interleave(b)
    pos_idx = None if positions[0] is None else torch.tensor(positions).repeat_interleave(b)
    src = source[layer].to(runner.device)
    ex = examples.to(runner.device)
    if pos_idx is None and head_idx is None:
        values = src[ex]
    elif pos_idx is None:
        values = src[ex, :, head_idx]
    elif head_idx is None:
        values = src[ex, pos_idx]
    else:
        values = src[ex, pos_idx, head_idx]
    # Causal models: positions before the earliest patched one are unchanged in every layer
    # from the patched one on, so they come from the unpatched run's KV cache.
    prefix = 0
    if base.cache is not None and pos_idx is not None and runner.metric.positions_ is not None:
        earliest = min(p for p in positions if p is not None)
        prefix = min(earliest, int(runner.metric.positions_.min()))
    local = None if pos_idx is None else (pos_idx - prefix).to(runner.device)
    patch = Patch(site, layer, rows.to(runner.device), values, local, head_idx)
    resid = base.resid[layer].to(runner.device)[ex][:, prefix:]
    kwargs: dict[str, Any] = {"prefix": prefix, "cache": base.cache} if prefix else {}
    if site == "resid_pre":
        resid = patch.apply(resid)
        logits = runner.run(base.batch, examples, start=layer, resid=resid, **kwargs)
    else:
        logits = runner.run(base.batch, examples, start=layer, resid=resid, patch=patch, **kwargs)
    return runner.score(logits, examples)


def _attribution(
    runner: Runner,
    base_batch: Batch,
    source: dict[int, torch.Tensor],
    site: str,
    axes: tuple[str, ...],
    layers: list[int],
    hooks: list[tuple[nn.Module, str, Any]],
) -> torch.Tensor:
    """Return per-example first-order estimates ``[layer, (head), (pos), batch]`` of patching."""
    live: dict[int, torch.Tensor] = {}

    def keep(layer: int, io: str, select: Any) -> Any:
        if io == "input":

            def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                live[layer] = args[0] if args else kwargs["hidden_states"]

            return "forward_pre", pre

        def post(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            live[layer] = (
                output
                if isinstance(output, torch.Tensor)
                else output[select if isinstance(select, int) else 0]
            )

        return "forward", post

    def requires_grad(
        module: nn.Module, args: tuple[Any, ...], output: torch.Tensor
    ) -> torch.Tensor:
        # Gradients must reach the activations even when the model's weights are frozen.
        return output if output.requires_grad else output.detach().requires_grad_(True)

    extra = [*hooks, (runner.embedding(), "forward", requires_grad)]
    for layer in layers:
        if site == "resid_pre":
            module, io, select = runner.adapter.blocks[layer], "input", None
        elif site == "resid_post":
            module, io, select = runner.adapter.blocks[layer], "output", None
        else:
            module, io, select = runner.module(site, layer)
        kind, fn = keep(layer, io, select)
        extra.append((module, kind, fn))
    examples = torch.arange(base_batch["input_ids"].shape[0])
    with torch.enable_grad():
        logits = runner.run(base_batch, examples, extra_hooks=extra)
        values = runner.metric.score(logits, examples.to(logits.device), runner.clean_logprobs)
        # Each example's metric depends only on its own activations: the gradient of the sum
        # gives every example the gradient of its own metric.
        grads = torch.autograd.grad(values.sum(), [live[layer] for layer in layers])
    out = []
    for layer, grad in zip(layers, grads, strict=True):
        act = live[layer].detach()
        src = source[layer].to(act.device)
        if site == "head_out":
            shape = (*act.shape[:2], runner.n_heads, -1)
            act, grad, src = act.reshape(shape), grad.reshape(shape), src.reshape(shape)
        contrib = ((src - act) * grad).sum(-1).float()  # [B, T] or [B, T, H]
        if site == "head_out":
            contrib = contrib.permute(0, 2, 1)  # [B, H, T]
        if "pos" not in axes:
            contrib = contrib.sum(-1)
        out.append(contrib.movedim(0, -1).cpu())  # batch last
    return torch.stack(out)


# -- public functions ---------------------------------------------------------------------------


def activation_patch(
    model: nn.Module,
    clean: Any,
    corrupt: Any = None,
    metric: Any = None,
    *,
    site: str = "resid_pre",
    by: Sequence[str] | str = ("layer", "pos"),
    method: str = "exact",
    direction: str = "denoising",
    layers: Sequence[int] | None = None,
    noise: float | None = None,
    noise_positions: Sequence[int] | None = None,
    seed: int = 0,
    verify_top: int = 0,
    tokenizer: Any = None,
    batch_tokens: int = BATCH_TOKENS,
    progress: bool = True,
) -> PatchResult:
    """Return the effect on ``metric`` of patching ``site`` cell by cell between two runs.

    Args:
        model: a HuggingFace GPT-2, GPT-NeoX/Pythia, Llama-family or BERT-family model.
        clean, corrupt: tokenizer outputs or token-id tensors of equal shape (symmetric token
            replacement: each corrupted prompt tokenises to the same length as its clean one).
            With ``noise`` instead of ``corrupt``, the corrupted run is the clean input with
            Gaussian noise on the token embeddings.
        metric: ``logit_diff(correct, wrong)``, ``logprob(answer)``, ``kl_to_clean()`` or a
            function ``logits [batch, pos, vocab] -> [batch]``.
        site: ``resid_pre``, ``resid_post``, ``attn_out``, ``mlp_out``, or ``head_out``.
        by: the axes of the sweep: ``("layer", "pos")``, ``("layer",)``, ``("layer", "head")``
            or ``("layer", "head", "pos")`` (heads patch ``head_out``).
        method: ``"exact"`` (every cell patched and run) or ``"attribution"`` (gradient
            approximation from two forwards and one backward).
        direction: ``"denoising"`` (run corrupted, patch clean in) or ``"noising"`` (run
            clean, patch corrupted in).
        layers: restrict the sweep to these layers.
        noise: standard deviation of the embedding noise, in units of the embeddings' own
            standard deviation (3 is the usual choice); ``noise_positions`` limits it to those
            token positions (default: every real token). ``seed`` fixes the noise.
        verify_top: with ``method="attribution"``, exactly patch the k cells of largest
            magnitude and report how well the approximation ranked them.
        tokenizer: for token labels on the position axis (default: ``model.tokenizer`` when
            the model carries one, as TransformerLens models and ``toy.load()`` do).
        batch_tokens: how many tokens one stacked forward may hold (memory knob).
        progress: show a progress bar with ETA.

    Values are normalised so the corrupted run scores 0 and the clean run 1 (batch means first,
    then rescaled); raw and per-example values are kept too.
    """
    if metric is None:
        raise PatchingError("give a metric, e.g. patching.logit_diff(correct_ids, wrong_ids)")
    metric_obj = as_metric(metric)
    if method not in ("exact", "attribution"):
        raise PatchingError(f"method must be 'exact' or 'attribution', not {method!r}")
    if direction not in ("denoising", "noising"):
        raise PatchingError(f"direction must be 'denoising' or 'noising', not {direction!r}")
    if verify_top and method != "attribution":
        raise PatchingError(
            "verify_top checks attribution patching; use it with method='attribution'"
        )
    if isinstance(metric_obj, KLToClean) and method == "attribution":
        raise PatchingError(
            "kl_to_clean has zero gradient at the clean run, so attribution cannot use it; use "
            "logit_diff or logprob, or method='exact'"
        )
    site, axes = _normalise_by(site, by)
    clean_b = _as_batch(clean, "clean")
    if corrupt is None and noise is None:
        raise PatchingError(
            "give corrupt (counterfactual prompts) or noise=... (Gaussian noise on embeddings)"
        )
    if corrupt is not None and noise is not None:
        raise PatchingError("give either corrupt or noise, not both")
    corrupt_b = clean_b if corrupt is None else _as_batch(corrupt, "corrupt")
    _check_pair(clean_b, corrupt_b)
    runner, layer_list = _runner(model, metric_obj, clean_b, layers)
    clean_b, corrupt_b = to_device(clean_b, runner.device), to_device(corrupt_b, runner.device)
    noise_hooks: list[tuple[nn.Module, str, Any]] = []
    if noise is not None:
        if not math.isfinite(noise) or noise <= 0:
            raise PatchingError(
                f"noise must be a positive number (a multiple of the embeddings' std), got {noise}"
            )
        noise_hooks = [
            (
                runner.embedding(),
                "forward",
                _noise_hook(runner, clean_b, noise, noise_positions, seed),
            )
        ]
        corruption = f"Gaussian noise on embeddings, std = {noise:g} x embedding std, seed {seed}"
    else:
        corruption = "counterfactual prompts"
    # Every check has passed: now the runs (clean first, so kl_to_clean has its reference).
    clean_run = _reference_run(
        runner, clean_b, site, layer_list, keep_logprobs=metric_obj.needs_clean_distribution()
    )
    corrupt_run = _reference_run(runner, corrupt_b, site, layer_list, hooks=noise_hooks)
    clean_mean, corrupt_mean = float(clean_run.values.mean()), float(corrupt_run.values.mean())
    base, source = (
        (corrupt_run, clean_run) if direction == "denoising" else (clean_run, corrupt_run)
    )
    base_hooks = noise_hooks if direction == "denoising" else []
    verification = None
    if method == "exact":
        per_example = _exact(
            runner,
            base,
            source.site,
            site,
            axes,
            layer_list,
            batch_tokens=batch_tokens,
            progress=progress,
        )
    else:
        contrib = _attribution(runner, base.batch, source.site, site, axes, layer_list, base_hooks)
        per_example = base.values + contrib
        if verify_top:
            verification = _verify(
                runner,
                base,
                source.site,
                site,
                axes,
                layer_list,
                per_example,
                verify_top,
                batch_tokens,
                progress,
            )
    raw = per_example.mean(-1)
    span = clean_mean - corrupt_mean
    notes = []
    normalised = abs(span) > 1e-12
    values = (raw - corrupt_mean) / span if normalised else raw - corrupt_mean
    if not normalised:
        notes.append(
            "clean and corrupted baselines are equal, so values are raw differences from the "
            "corrupted run"
        )
    if verification is not None:
        verification["summary"] = _verification_summary(verification, span if normalised else 1.0)
    labels = {
        "layer": [str(layer) for layer in layer_list],
        "head": [str(h) for h in range(runner.n_heads)] if "head" in axes else [],
        "pos": _token_labels(
            clean_b, corrupt_b if corrupt is not None else None, _tokenizer(model, tokenizer)
        )
        if "pos" in axes
        else [],
    }
    result = PatchResult(
        values=values,
        raw=raw,
        per_example=per_example,
        axes=axes,
        labels={a: labels[a] for a in axes},
        metric=metric_obj.name,
        site=site,
        method=method,
        direction=direction,
        corruption=corruption,
        clean_baseline=clean_mean,
        corrupt_baseline=corrupt_mean,
        clean_per_example=clean_run.values,
        corrupt_per_example=corrupt_run.values,
        normalised=normalised,
        verification=verification,
        notes=notes,
    )
    events.emit(
        "patch",
        method=method,
        direction=direction,
        site=site,
        by=list(axes),
        metric=metric_obj.name,
        corruption=corruption,
        cells=int(values.numel()),
        verified=int(verify_top),
        normalised=normalised,
    )
    return result


def _verify(
    runner: Runner,
    base: _Run,
    source: dict[int, torch.Tensor],
    site: str,
    axes: tuple[str, ...],
    layers: list[int],
    approx: torch.Tensor,
    k: int,
    batch_tokens: int,
    progress: bool,
) -> dict[str, Any]:
    """Return exact values of the ``k`` largest attribution cells and how well they agree."""
    from scipy.stats import spearmanr

    effect = approx.mean(-1) - base.values.mean()
    flat = effect.reshape(-1)
    k = min(k, flat.numel())
    top = torch.topk(flat.abs(), k).indices
    shape = effect.shape
    cells = []
    for i in top.tolist():
        idx = list(torch.unravel_index(torch.tensor(i), shape))
        layer = layers[int(idx[0])]
        rest = [int(x) for x in idx[1:]]
        head = rest.pop(0) if "head" in axes else None
        pos = rest.pop(0) if "pos" in axes else None
        cells.append((layer, head, pos, i))
    exact = _exact(
        runner,
        base,
        source,
        site,
        axes,
        layers,
        only={(c[0], c[1], c[2]) for c in cells},
        batch_tokens=batch_tokens,
        progress=progress,
        desc="verifying",
    )
    exact_effect = (exact.mean(-1) - base.values.mean()).reshape(-1)
    a = flat[[c[3] for c in cells]]
    e = exact_effect[[c[3] for c in cells]]
    rho = float(spearmanr(a.numpy(), e.numpy()).statistic) if k > 2 else float("nan")
    return {
        "cells": [
            {"layer": c[0], "head": c[1], "pos": c[2], "attribution": float(x), "exact": float(y)}
            for c, x, y in zip(cells, a.tolist(), e.tolist(), strict=True)
        ],
        "spearman": rho,
        "sign_agreement": float(((a > 0) == (e > 0)).float().mean()),
        "max_abs_error": float((a - e).abs().max()),
        "k": k,
    }


def _verification_summary(v: dict[str, Any], span: float) -> str:
    return (
        f"attribution checked on its top {v['k']} cells by exact patching: Spearman rank "
        f"correlation {v['spearman']:.2f}, sign agreement {v['sign_agreement']:.0%}, largest error "
        f"{v['max_abs_error'] / abs(span):.3f} (normalised)"
    )


def ablate(
    model: nn.Module,
    inputs: Any,
    sites: str = "attn_out",
    kind: str = "zero",
    *,
    metric: Any = None,
    by: Sequence[str] | str = ("layer",),
    layers: Sequence[int] | None = None,
    seed: int = 0,
    tokenizer: Any = None,
    batch_tokens: int = BATCH_TOKENS,
    progress: bool = True,
) -> PatchResult:
    """Return the change in ``metric`` when each cell of ``sites`` is ablated.

    ``kind``: ``"zero"`` (replace by zeros), ``"mean"`` (by the batch mean at each position,
    over real tokens), or ``"resample"`` (by the activation of another example of the batch,
    a fixed derangement from ``seed``). Values are ``metric(ablated) - metric(clean)``: negative
    where the component is necessary for what the metric measures.
    """
    if metric is None:
        raise PatchingError(
            "give a metric, e.g. metric=patching.logit_diff(correct_ids, wrong_ids)"
        )
    if kind not in ("zero", "mean", "resample"):
        raise PatchingError(f"kind must be 'zero', 'mean' or 'resample', not {kind!r}")
    metric_obj = as_metric(metric)
    site, axes = _normalise_by(sites, by)
    batch = _as_batch(inputs, "inputs")
    b = batch["input_ids"].shape[0]
    if kind == "resample" and b < 2:
        raise PatchingError(
            "resample ablation takes activations from other examples: give at least 2"
        )
    runner, layer_list = _runner(model, metric_obj, batch, layers)
    batch = to_device(batch, runner.device)
    run = _reference_run(
        runner, batch, site, layer_list, keep_logprobs=metric_obj.needs_clean_distribution()
    )
    mask = batch["attention_mask"].bool()
    source = {}
    for layer in layer_list:
        act = run.site[layer]
        if kind == "zero":
            source[layer] = torch.zeros_like(act)
        elif kind == "mean":
            m = mask.reshape(*mask.shape, *([1] * (act.ndim - 2))).to(act.dtype)
            mean = (act * m).sum(0, keepdim=True) / m.sum(0, keepdim=True).clamp_min(1)
            source[layer] = mean.expand_as(act).clone()
        else:
            gen = torch.Generator().manual_seed(seed)
            perm = torch.randperm(b, generator=gen)
            while bool((perm == torch.arange(b)).any()):  # every example takes another's values
                perm = torch.randperm(b, generator=gen)
            source[layer] = act[perm.to(act.device)]
    per_example = _exact(
        runner,
        run,
        source,
        site,
        axes,
        layer_list,
        batch_tokens=batch_tokens,
        progress=progress,
        desc=f"{kind} ablation",
    )
    raw = per_example.mean(-1)
    clean_mean = float(run.values.mean())
    result = PatchResult(
        values=raw - clean_mean,
        raw=raw,
        per_example=per_example,
        axes=axes,
        labels={
            "layer": [str(layer) for layer in layer_list],
            **({"head": [str(h) for h in range(runner.n_heads)]} if "head" in axes else {}),
            **(
                {"pos": _token_labels(batch, None, _tokenizer(model, tokenizer))}
                if "pos" in axes
                else {}
            ),
        },
        metric=metric_obj.name,
        site=site,
        method=f"{kind}-ablation",
        direction=None,
        corruption=f"{kind} ablation" + (f" (seed {seed})" if kind == "resample" else ""),
        clean_baseline=clean_mean,
        corrupt_baseline=None,
        clean_per_example=run.values,
        corrupt_per_example=None,
        normalised=False,
    )
    events.emit(
        "ablation",
        ablation=kind,
        site=site,
        by=list(axes),
        metric=metric_obj.name,
        cells=int(result.values.numel()),
    )
    return result
