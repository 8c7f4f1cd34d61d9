"""Training a small sparse autoencoder offline on one site's activations.

:func:`train_sae` captures the site over the data (:func:`~interp_magics.core.capturing.capture`,
real tokens only), builds a sae-lens ``StandardSAE`` (or ``TopKSAE``) from its config and fits
it with a plain torch loop: Adam on the squared reconstruction error plus ``l1`` times the
features' activations weighted by their decoder norms (Bricken et al. 2023), decoder rows
renormalised to unit norm after each step. Activations are scaled during training so their
mean norm is ``sqrt(d_in)`` (so one ``l1`` suits any model's scale); the scale is folded into the
weights afterwards, so the returned SAE reads the model's own activations.

The report gives reconstruction MSE, the fraction of variance explained, L0 (features active
per token) and dead features, on held-out sequences (``holdout``) when there are enough.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..core.capturing import capture
from ..core.placement import input_device
from ..core.traced import is_nnsight, unwrap
from ..patching.inputs import model_tokenizer
from .inputs import FeatureError, data_batches, positive_int
from .load import sae_lens
from .sites import _one_target

if TYPE_CHECKING:
    import pandas as pd


@dataclass(repr=False)
class TrainingReport:
    """How well a trained SAE reconstructs its site, and how it was trained.

    ``mse`` is the mean squared error per activation element, ``fve`` the fraction of variance
    explained (1 - residual sum of squares / total about the mean), ``l0`` the mean number of
    features active per token and ``dead`` the features never active on any captured token; the
    first three on ``evaluated_on`` ("held-out" sequences, or "training" ones when too few).
    """

    site: str
    architecture: str
    d_in: int
    d_sae: int
    steps: int
    l1: float
    k: int | None
    lr: float
    batch_size: int
    n_tokens: int
    n_eval_tokens: int
    evaluated_on: str
    mse: float
    fve: float
    l0: float
    dead: int
    losses: np.ndarray
    seconds: float
    scale: float

    def describe(self) -> str:
        """Return a short text summary: the verdict first, then the settings."""
        sparsity = f"L1 {self.l1:g}" if self.k is None else f"top-{self.k}"
        return "\n".join(
            [
                f"TrainingReport: {self.architecture} SAE on {self.site} explains "
                f"{self.fve:.1%} of the variance ({self.evaluated_on} tokens: "
                f"{self.n_eval_tokens}), L0 {self.l0:.1f} of {self.d_sae} features, "
                f"{self.dead} dead, MSE {self.mse:.3g} per element",
                f"trained {self.steps} steps ({self.seconds:.1f} s) on {self.n_tokens} tokens, "
                f"{sparsity}, lr {self.lr:g}, batch {self.batch_size}; activations scaled by "
                f"{self.scale:.3g} while training (folded into the weights)",
            ]
        )

    def __repr__(self) -> str:
        return self.describe()

    def to_dataframe(self) -> pd.DataFrame:
        """Return the training loss per step (columns step, loss)."""
        import pandas as pd

        return pd.DataFrame({"step": np.arange(len(self.losses)), "loss": self.losses})

    def _repr_png_(self) -> bytes:
        from .plots import loss_figure, png

        return png(loss_figure(self))


def train_sae(
    model: nn.Module,
    data: Any,
    site: str,
    *,
    d_sae: int | None = None,
    l1: float = 1.0,
    steps: int = 2000,
    lr: float = 1e-3,
    batch_size: int = 512,
    seed: int = 0,
    progress: bool = True,
    tokenizer: Any = None,
    architecture: str = "standard",
    k: int | None = None,
    holdout: float = 0.1,
    data_batch_size: int = 32,
) -> tuple[Any, TrainingReport]:
    """Return a sae-lens SAE trained on ``site``'s activations over ``data``, and its report.

    Args:
        model: a model whose sites the grammar resolves (``resid_post.0``, a module path).
        data: token ids ``[examples, tokens]``, a tokenizer's output, texts (with
            ``tokenizer``, default ``model.tokenizer``) or a list of batches; padding is
            left out.
        site: one site, e.g. ``"resid_post.0"`` (the SAE's metadata names it, so
            ``attach_sae(model, sae)`` finds it).
        d_sae: number of features (default 4 x the site's width).
        l1: sparsity coefficient (standard SAEs), on activations scaled to norm sqrt(d_in).
        steps, lr, batch_size: Adam steps, learning rate, tokens per step.
        seed: fixes the initialisation, the held-out split and the batches.
        architecture: ``"standard"`` (ReLU, L1) or ``"topk"`` (``k`` features per token).
        holdout: fraction of sequences kept out of training to evaluate on (at least 5
            sequences; with fewer the report is on the training tokens and says so).
        data_batch_size: sequences per forward when capturing.
    """
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size")
    _check_options(architecture, k, l1, lr, holdout)
    module = unwrap(model) if is_nnsight(model) else model
    target = _one_target(module, site, "site")
    batches = data_batches(data, model_tokenizer(module, tokenizer), data_batch_size)
    sequences = _captured(module, site, target.key, batches)
    d_in = int(sequences[0].shape[-1])
    d_sae = positive_int(d_sae if d_sae is not None else 4 * d_in, "d_sae")
    if k is not None and not 1 <= positive_int(k, "k") <= d_sae:
        raise FeatureError(f"k must be between 1 and d_sae ({d_sae}), got {k}")
    train, evaluate, held_out = _split(sequences, holdout, seed)
    device = input_device(module)
    x_train = train.to(device)
    scale = math.sqrt(d_in) / float(x_train.norm(dim=-1).mean().clamp_min(1e-12))
    torch.manual_seed(seed)  # the SAE's initial weights
    sae = _new_sae(architecture, d_in, d_sae, k, target.key, type(module).__name__, device)
    start = time.perf_counter()
    sparsity = l1 if k is None else 0.0
    losses = _fit(sae, x_train * scale, steps, lr, batch_size, sparsity, seed, progress)
    _fold_scale(sae, scale)
    seconds = time.perf_counter() - start
    mse, fve, l0 = _evaluate(sae, evaluate.to(device))
    dead = _dead(sae, torch.cat(sequences).to(device))
    report = TrainingReport(
        site=target.key,
        architecture=architecture,
        d_in=d_in,
        d_sae=d_sae,
        steps=steps,
        l1=float(l1),
        k=k,
        lr=float(lr),
        batch_size=batch_size,
        n_tokens=int(train.shape[0]),
        n_eval_tokens=int(evaluate.shape[0]),
        evaluated_on="held-out" if held_out else "training",
        mse=mse,
        fve=fve,
        l0=l0,
        dead=dead,
        losses=np.asarray(losses, dtype=np.float64),
        seconds=seconds,
        scale=scale,
    )
    return sae.eval(), report


def _check_options(architecture: str, k: int | None, l1: float, lr: float, holdout: float) -> None:
    if architecture not in ("standard", "topk"):
        raise FeatureError(f"architecture must be 'standard' or 'topk', not {architecture!r}")
    if architecture == "topk" and k is None:
        raise FeatureError("a TopK SAE needs k, the number of features active per token")
    if not (math.isfinite(l1) and l1 >= 0) or not (math.isfinite(lr) and lr > 0):
        raise FeatureError(f"l1 must be >= 0 and lr > 0, got l1={l1}, lr={lr}")
    if not 0 <= holdout < 1:
        raise FeatureError(f"holdout must be a fraction in [0, 1), got {holdout}")


def _captured(
    model: nn.Module, site: str, key: str, batches: list[dict[str, torch.Tensor]]
) -> list[torch.Tensor]:
    """Return each sequence's real-token activations at the site, ``[tokens, d]`` each."""
    inputs = site.endswith(":input")
    pattern = site.removesuffix(":input")
    out: list[torch.Tensor] = []
    device = input_device(model)
    for batch in batches:
        run = capture(model, pattern, inputs=inputs, device="cpu")
        cache = run.run({k: v.to(device) for k, v in batch.items()})
        acts = cache[key]
        if acts.ndim != 3 or acts.shape[:2] != batch["input_ids"].shape:
            raise FeatureError(
                f"{key} gave a tensor of shape {tuple(acts.shape)}; an SAE trains on "
                "[batch, pos, d] activations (heads flattened)"
            )
        mask = batch["attention_mask"].bool()
        out.extend(acts[i][mask[i]].float() for i in range(acts.shape[0]))
    return [s for s in out if s.shape[0]]


def _split(
    sequences: list[torch.Tensor], holdout: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Return training tokens, evaluation tokens, and whether the latter are held out.

    Whole sequences are held out: tokens of one sequence are not independent.
    """
    n_out = round(holdout * len(sequences))
    if n_out < 5 or len(sequences) - n_out < 1:
        every = torch.cat(sequences)
        return every, every, False
    order = torch.randperm(len(sequences), generator=torch.Generator().manual_seed(seed))
    held = set(order[:n_out].tolist())
    train = torch.cat([s for i, s in enumerate(sequences) if i not in held])
    evaluate = torch.cat([s for i, s in enumerate(sequences) if i in held])
    return train, evaluate, True


def _new_sae(
    architecture: str,
    d_in: int,
    d_sae: int,
    k: int | None,
    site: str,
    model_name: str,
    device: torch.device,
) -> Any:
    lib = sae_lens()
    from sae_lens.saes.sae import SAEMetadata

    metadata = SAEMetadata(hook_name=site, model_name=model_name)
    common: dict[str, Any] = {
        "d_in": d_in,
        "d_sae": d_sae,
        "dtype": "float32",
        "device": str(device),
        "metadata": metadata,
    }
    if architecture == "topk":
        return lib.TopKSAE(lib.TopKSAEConfig(k=int(k or 1), **common))
    return lib.StandardSAE(lib.StandardSAEConfig(**common))


def _fit(
    sae: Any,
    x: torch.Tensor,
    steps: int,
    lr: float,
    batch_size: int,
    l1: float,
    seed: int,
    progress: bool,
) -> list[float]:
    """Return the loss per step of fitting ``sae`` to the rows of ``x`` (scaled activations)."""
    from tqdm.auto import tqdm

    with torch.no_grad():
        sae.b_dec.copy_(x.mean(0))  # start the decoder bias at the data's centre
        sae.W_dec.div_(sae.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8))
        sae.W_enc.copy_(sae.W_dec.T)
    optimiser = torch.optim.Adam(sae.parameters(), lr=lr)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    losses: list[float] = []
    sae.train()
    work = min(batch_size, x.shape[0]) * x.shape[1] * int(sae.cfg.d_sae)
    with _few_threads(x.device, work):
        for _ in tqdm(range(steps), desc="training SAE", unit="step", disable=not progress):
            losses.append(_step(sae, optimiser, x, batch_size, l1, generator))
    sae.eval()
    return losses


def _step(
    sae: Any,
    optimiser: torch.optim.Optimizer,
    x: torch.Tensor,
    batch_size: int,
    l1: float,
    generator: torch.Generator,
) -> float:
    """Return the loss of one Adam step on a random batch of rows of ``x``."""
    size = (min(batch_size, x.shape[0]),)
    rows = torch.randint(0, x.shape[0], size, generator=generator, device=x.device)
    batch = x[rows]
    feats = sae.encode(batch)
    recon = sae.decode(feats)
    loss = (recon - batch).pow(2).sum(-1).mean()
    if l1:
        loss = loss + l1 * (feats * sae.W_dec.norm(dim=-1)).sum(-1).mean()
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    with torch.no_grad():
        sae.W_dec.div_(sae.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8))
    return float(loss.detach())


@contextlib.contextmanager
def _few_threads(device: torch.device, work: int) -> Iterator[None]:
    """Run small CPU steps on one thread, restoring the setting after.

    A step of a small SAE is a few million multiply-adds: splitting it over threads costs more
    than it saves, and on a shared machine it is much slower (measured: 28 ms a step with 2
    threads, 3.8 ms with 1, for 256 x 64 -> 256 features on 2 busy cores).
    """
    if device.type != "cpu" or work > (1 << 24):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def _fold_scale(sae: Any, scale: float) -> None:
    """Make the SAE read unscaled activations: features shrink by ``scale``, decoders stay unit.

    Trained on ``c x``: ``f = relu((c x - b) W_e + b_e)``; then ``f / c = relu((x - b / c) W_e
    + b_e / c)`` and ``x = (f / c) W_d + b / c``.
    """
    sae.b_enc.div_(scale)
    sae.b_dec.div_(scale)


@torch.no_grad()
def _evaluate(sae: Any, x: torch.Tensor, chunk: int = 4096) -> tuple[float, float, float]:
    """Return (MSE per element, fraction of variance explained, L0) of ``sae`` on rows ``x``."""
    sse = 0.0
    active = 0.0
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk]
        feats = sae.encode(part)
        sse += float((sae.decode(feats) - part).double().pow(2).sum())
        active += float((feats > 0).sum())
    sst = float((x.double() - x.double().mean(0)).pow(2).sum())
    n = x.shape[0]
    return sse / (n * x.shape[1]), 1.0 - sse / max(sst, 1e-300), active / n


@torch.no_grad()
def _dead(sae: Any, x: torch.Tensor, chunk: int = 4096) -> int:
    """Return how many features are active on none of the rows of ``x``."""
    fired = torch.zeros(int(sae.cfg.d_sae), dtype=torch.bool, device=x.device)
    for start in range(0, x.shape[0], chunk):
        fired |= (sae.encode(x[start : start + chunk]) > 0).any(0)
    return int((~fired).sum())
