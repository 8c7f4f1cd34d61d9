"""The memory guard: budgets and the estimate a capture is checked against.

A capture is projected from the shapes each canonical site has (a residual-stream site is
``batch x positions x d_model``, an attention pattern ``batch x heads x query rows x keys``),
read from the model's config and the first call's token count, so an oversized capture is
refused before the forward pass starts rather than after its first layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psutil
import torch
from torch import nn

from .errors import CaptureBudgetError
from .units import format_bytes

#: Share of the memory available on the storage device a capture may take by default.
DEFAULT_MEMORY_FRACTION = 0.5


def available_bytes(device: torch.device) -> int:
    """Return the bytes currently free on ``device`` (RAM for the CPU)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        # The kernel's own estimate, read directly: psutil parses the whole file (10x slower).
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(psutil.virtual_memory().available)


def default_budget(device: torch.device) -> tuple[int, str]:
    """Return the default byte budget for ``device`` and a phrase that explains it."""
    free = available_bytes(device)
    where = "GPU memory" if device.type == "cuda" else "RAM"
    budget = int(free * DEFAULT_MEMORY_FRACTION)
    return budget, f"{DEFAULT_MEMORY_FRACTION:.0%} of the {format_bytes(free)} of {where} available"


#: Sites that live on the residual stream: ``[batch, positions, d_model]``.
RESIDUAL_SITES = frozenset({"resid_pre", "resid_post", "attn_out", "mlp_out"})

#: Working memory the eager kernel needs beyond the fused one it replaces, in layer-sized
#: ``[batch, heads, query, key]`` tensors: it holds scores, masked scores and probabilities
#: where a fused kernel holds at most one. Measured as the peak resident memory of a
#: forward pass of all-MiniLM-L6-v2 on CPU, eager minus sdpa: 1.44 tensors at 16 x 512
#: tokens, 1.45 at 32 x 256 (the peak of eager alone was 2.6 and 3.4 above the idle model).
EAGER_EXTRA_SCORES = 1.5


@dataclass(frozen=True)
class ModelDims:
    """The widths a capture's tensors are projected from (None where the model hides one)."""

    d_model: int | None
    n_heads: int | None
    d_heads: int | None  # width of the concatenated per-head vectors (``head_out``)


def model_dims(model: nn.Module) -> ModelDims:
    """Return the residual width, head count and per-head width total of ``model``.

    Reads a HuggingFace ``config`` or a TransformerLens ``cfg``; missing fields give None.
    """
    config: Any = getattr(model, "config", None)
    cfg: Any = getattr(model, "cfg", None)
    if cfg is not None and hasattr(cfg, "d_model"):
        n_heads = _int(getattr(cfg, "n_heads", None))
        d_head = _int(getattr(cfg, "d_head", None))
        d_model = _int(cfg.d_model)
        return ModelDims(d_model, n_heads, n_heads * d_head if n_heads and d_head else d_model)
    if config is None:
        return ModelDims(None, None, None)
    d_model = _first_int(config, ("hidden_size", "n_embd", "d_model"))
    n_heads = _first_int(config, ("num_attention_heads", "n_head", "num_heads"))
    head_dim = _first_int(config, ("head_dim",))
    d_heads = n_heads * head_dim if n_heads and head_dim else d_model
    return ModelDims(d_model, n_heads, d_heads)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _first_int(config: Any, names: Sequence[str]) -> int | None:
    for name in names:
        value = _int(getattr(config, name, None))
        if value:
            return value
    return None


def site_bytes(
    site: str | None, *, batch: int, seq: int, kept: int, dims: ModelDims, itemsize: int
) -> int | None:
    """Return the bytes one tensor of canonical ``site`` takes, or None when unknown.

    ``seq`` is the token count, ``kept`` the positions kept (query rows for ``pattern``).
    """
    if site in RESIDUAL_SITES and dims.d_model:
        return batch * kept * dims.d_model * itemsize
    if site == "pattern" and dims.n_heads:
        return batch * dims.n_heads * kept * seq * itemsize
    if site == "head_out" and dims.d_heads:
        return batch * kept * dims.d_heads * itemsize
    return None


def eager_attention_bytes(*, batch: int, seq: int, heads: int, itemsize: int) -> int:
    """Return the extra bytes eager attention holds while one layer runs, beyond sdpa's."""
    return int(EAGER_EXTRA_SCORES * batch * heads * seq * seq * itemsize)


def budget_error(
    *,
    estimate: int,
    budget: int,
    budget_reason: str,
    allocated: int,
    n_tensors: int,
    keys: Sequence[str],
    seq_len: int | None,
    dtype: torch.dtype,
    positions_given: bool,
    eager_bytes: int = 0,
    eager_shape: str = "",
    before_run: bool = False,
) -> CaptureBudgetError:
    """Return the error that refuses a capture, saying how to bring it under budget.

    ``eager_bytes`` is the working memory of the eager attention kernel this capture switches
    to (included in ``estimate``); ``eager_shape`` names the sizes it grows with.
    ``before_run`` says the refusal came before the model's forward pass started.
    """
    fixes = [f"capture fewer modules (this matched {n_tensors}: {_few(keys)})"]
    if seq_len and seq_len > 1 and not positions_given:
        fixes.append(f"keep fewer positions (positions=-1 keeps 1 of {seq_len} tokens)")
    if dtype.is_floating_point and dtype.itemsize > 2:
        fixes.append(f"store dtype='float16' ({dtype.itemsize // 2}x smaller)")
    if eager_bytes:
        fixes.append(
            "run fewer tokens or a smaller batch (eager attention grows with tokens squared), "
            "or raise max_bytes"
        )
    else:
        fixes.append("run a smaller batch, or raise max_bytes")
    eager = (
        f", of which {format_bytes(eager_bytes)} is working memory of the 'eager' attention "
        f"kernel needed to return patterns ({eager_shape}, while each layer runs)"
        if eager_bytes
        else ""
    )
    stored = "the model was not run" if before_run else "nothing more was stored"
    message = (
        f"this capture needs about {format_bytes(estimate)} for {n_tensors} tensors{eager}, "
        f"over its budget of {format_bytes(budget)} ({budget_reason}); {stored}. "
        "To fit: " + "; ".join(fixes) + "."
    )
    return CaptureBudgetError(message, estimate=estimate, budget=budget, allocated=allocated)


def _few(keys: Sequence[str]) -> str:
    keys = list(keys)
    return ", ".join(keys[:3]) + (f", ... {keys[-1]}" if len(keys) > 3 else "")
