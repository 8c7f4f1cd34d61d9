"""Error and warning types raised by interp-magics.

Every error carries a message that says what went wrong and what to do about it. In IPython
they render as that message alone (no traceback through torch internals), because the
shell calls ``_render_traceback_`` when an exception defines it.
"""

from __future__ import annotations


class ShortTraceback:
    """Mixin: show only ``Type: message`` in IPython instead of a full traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class CaptureError(ShortTraceback, ValueError):
    """Bad input to a capture: unknown module pattern, dtype, device, positions, or model."""


class CaptureBudgetError(ShortTraceback, MemoryError):
    """A capture would exceed its memory budget; raised before the memory is allocated.

    Attributes:
        estimate: bytes the capture was estimated to need.
        budget: the byte budget it was refused against.
        allocated: bytes already copied when it was refused.
    """

    def __init__(self, message: str, *, estimate: int, budget: int, allocated: int) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.budget = budget
        self.allocated = allocated


class NothingCapturedWarning(UserWarning):
    """A capture ended without any hooked module having run."""
