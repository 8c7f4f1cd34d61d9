"""interp-magics: notebook-native interpretability for PyTorch models.

Load in a notebook with ``%load_ext interp_magics``; from Python use :func:`capture`::

    import interp_magics
    with interp_magics.capture(model, ["encoder.layer.*.output"]) as acts:
        model(**batch)

Importing this package is light: torch and the engine load on first use, so Jupyter can
import it to discover extensions without paying for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ActivationCache",
    "Capture",
    "CaptureBudgetError",
    "CaptureError",
    "NothingCapturedWarning",
    "__version__",
    "capture",
    "owned_hooks",
]

_LAZY = {
    "capture": ("capturing", "capture"),
    "Capture": ("capturing", "Capture"),
    "ActivationCache": ("cache", "ActivationCache"),
    "owned_hooks": ("hooks", "owned_hooks"),
    "CaptureError": ("errors", "CaptureError"),
    "CaptureBudgetError": ("errors", "CaptureBudgetError"),
    "NothingCapturedWarning": ("errors", "NothingCapturedWarning"),
}

if TYPE_CHECKING:
    from .cache import ActivationCache
    from .capturing import Capture, capture
    from .errors import CaptureBudgetError, CaptureError, NothingCapturedWarning
    from .hooks import owned_hooks


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'interp_magics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and the analysis ledger in ``ipython`` (``%load_ext``)."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove everything ``load_ipython_extension`` installed (``%unload_ext``)."""
    from .magics import unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Return where jupyter-server finds the server extension (``interp_magics.server``)."""
    return [{"module": "interp_magics.server"}]
