"""What the logit lens and the tuned lens share: read every residual stream, decode each one.

One forward pass under :func:`~interp_magics.core.capturing.capture` keeps the residual streams
(``resid_pre`` of each block and the last block's ``resid_post``; only the asked-for positions),
with hooks owned and removed by the capture. Each stream is then decoded on its own, optionally
through a translator (the tuned lens), by the model's final norm and unembedding: only one
layer's ``[batch, positions, vocab]`` logits exist at a time besides the final layer's
distribution, which every layer is compared with (KL divergence).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..core.adapters import call_model
from ..core.capturing import capture
from ..core.errors import CaptureError
from ..core.options import parse_positions, resolve_positions
from ..core.placement import input_device
from .inputs import Batch, LensError, LensModel
from .readout import Readout

#: A translator: the residual stream of layer ``idx`` -> what the final norm should read.
Transform = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass(frozen=True)
class Decoded:
    """Per layer, example and kept position: the top-k tokens and how the lens compares."""

    top_ids: torch.Tensor  # [layer, batch, pos, k]
    top_probs: torch.Tensor  # [layer, batch, pos, k]
    entropy: torch.Tensor  # [layer, batch, pos], nats
    kl_to_final: torch.Tensor  # [layer, batch, pos], KL(final || layer), nats
    answer_logprob: torch.Tensor | None  # [layer, batch, pos]
    answer_rank: torch.Tensor | None  # [layer, batch, pos], 0 = the top token


def kept_positions(positions: object, length: int) -> tuple[int, ...] | None:
    """Return the absolute positions ``positions`` selects (None: all), checked."""
    if positions is None:
        return None
    try:
        spec = parse_positions(positions)  # type: ignore[arg-type]
        assert spec is not None
        return resolve_positions(spec, length)
    except CaptureError as exc:
        raise LensError(str(exc)) from None


def read_residuals(
    lm: LensModel, batch: Batch, layers: Sequence[int], positions: tuple[int, ...] | None
) -> dict[int, torch.Tensor]:
    """Return residual stream ``l`` (``[batch, pos, d]``, on the CPU) for each ``l`` in
    ``layers`` and for the last one (``n_layers``), from one forward pass."""
    n = lm.n_layers
    sites = [f"resid_pre.{layer}" for layer in layers if layer < n] + [f"resid_post.{n - 1}"]
    device = input_device(lm.module)
    with (
        torch.no_grad(),
        capture(lm.module, sites, positions=list(positions) if positions else None) as acts,
    ):
        call_model(lm.module, {k: v.to(device) for k, v in batch.items()})
    out = {layer: acts[f"resid_pre.{layer}"] for layer in layers if layer < n}
    out[n] = acts[f"resid_post.{n - 1}"]
    return out


def decode(
    readout: Readout,
    resid: dict[int, torch.Tensor],
    layers: Sequence[int],
    n_layers: int,
    k: int,
    answer: torch.Tensor | None,
    transform: Transform | None = None,
) -> Decoded:
    """Return what each layer's stream decodes to, one layer's logits at a time.

    ``transform`` (a tuned lens's translators) is applied to every stream but the last, which
    the model itself reads through its final norm.
    """
    final = readout.logits(resid[n_layers]).float().log_softmax(-1)
    final_p = final.exp()
    rows: dict[str, list[torch.Tensor]] = {
        name: [] for name in ("ids", "probs", "entropy", "kl", "alp", "rank")
    }
    for layer in layers:
        if layer == n_layers:
            logp = final
        else:
            h = resid[layer]
            if transform is not None:
                h = transform(h, layer)
            logp = readout.logits(h).float().log_softmax(-1)
        values, ids = logp.topk(k, dim=-1)
        rows["ids"].append(ids.cpu())
        rows["probs"].append(values.exp().cpu())
        p = logp.exp()
        rows["entropy"].append(-(p * logp).nan_to_num().sum(-1).cpu())
        # 0 * log 0 is 0: a token the final layer rules out contributes nothing.
        gap = torch.where(final_p > 0, final - logp, torch.zeros_like(final))
        rows["kl"].append((final_p * gap).sum(-1).cpu())
        if answer is not None:
            index = answer.to(logp.device)[:, None, None].expand(*logp.shape[:2], 1)
            alp = logp.gather(-1, index)
            rows["alp"].append(alp.squeeze(-1).cpu())
            rows["rank"].append((logp > alp).sum(-1).cpu())
        del logp
    return Decoded(
        top_ids=torch.stack(rows["ids"]),
        top_probs=torch.stack(rows["probs"]),
        entropy=torch.stack(rows["entropy"]),
        kl_to_final=torch.stack(rows["kl"]),
        answer_logprob=torch.stack(rows["alp"]) if answer is not None else None,
        answer_rank=torch.stack(rows["rank"]) if answer is not None else None,
    )
