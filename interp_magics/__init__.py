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

from .version import __version__

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
    "capture": ("core.capturing", "capture"),
    "Capture": ("core.capturing", "Capture"),
    "ActivationCache": ("core.cache", "ActivationCache"),
    "owned_hooks": ("core.hooks", "owned_hooks"),
    "CaptureError": ("core.errors", "CaptureError"),
    "CaptureBudgetError": ("core.errors", "CaptureBudgetError"),
    "NothingCapturedWarning": ("core.errors", "NothingCapturedWarning"),
}

if TYPE_CHECKING:
    from .core.cache import ActivationCache
    from .core.capturing import Capture, capture
    from .core.errors import CaptureBudgetError, CaptureError, NothingCapturedWarning
    from .core.hooks import owned_hooks


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
    from .jupyter.extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove everything ``load_ipython_extension`` installed (``%unload_ext``)."""
    from .jupyter.extension import unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Return where jupyter-server finds the server extension (its module)."""
    return [{"module": "interp_magics.jupyter.server"}]
