"""The memory guard: budgets and the estimate a capture is checked against."""

from __future__ import annotations

from collections.abc import Sequence

import psutil
import torch

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
) -> CaptureBudgetError:
    """Return the error that refuses a capture, saying how to bring it under budget."""
    fixes = [f"capture fewer modules (this matched {n_tensors}: {_few(keys)})"]
    if seq_len and seq_len > 1 and not positions_given:
        fixes.append(f"keep fewer positions (positions=-1 keeps 1 of {seq_len})")
    if dtype.is_floating_point and dtype.itemsize > 2:
        fixes.append(f"store dtype='float16' ({dtype.itemsize // 2}x smaller)")
    fixes.append("run a smaller batch, or raise max_bytes")
    message = (
        f"this capture needs about {format_bytes(estimate)} for {n_tensors} tensors, over its "
        f"budget of {format_bytes(budget)} ({budget_reason}); nothing more was stored. "
        "To fit: " + "; ".join(fixes) + "."
    )
    return CaptureBudgetError(message, estimate=estimate, budget=budget, allocated=allocated)


def _few(keys: Sequence[str]) -> str:
    keys = list(keys)
    return ", ".join(keys[:3]) + (f", ... {keys[-1]}" if len(keys) > 3 else "")
