"""The base of every interp-magics widget: a bundled front end and a static fallback.

Each widget's front end is one ES module built from the top-level ``widgets/`` folder into
``static/`` (no CDN, nothing fetched at display time). Its ``_repr_mimebundle_`` carries, beside
the live widget view, a PNG rendered in Python, script-free HTML and a plain-text summary, so
GitHub, nbviewer, ``nbconvert --to html`` and a notebook reopened without its kernel still show
the result and its numbers.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, ClassVar

import anywidget

STATIC = Path(__file__).parent / "static"


class FrontEndNotBuilt(RuntimeError):
    """The widget bundles are missing from this installation."""


class FallbackWidget(anywidget.AnyWidget):
    """An anywidget whose display also carries PNG, HTML and text fallbacks."""

    #: Name of the bundle in ``static/`` (``<bundle>.js`` and ``<bundle>.css``).
    _bundle: ClassVar[str] = ""

    def __init__(self, **kwargs: Any) -> None:
        _attach_bundle(type(self))
        super().__init__(**kwargs)

    @classmethod
    def for_result(cls, result: Any, **kwargs: Any) -> FallbackWidget:
        """Return a view of ``result`` (the seam results use, see ``core/display.py``)."""
        return cls(result, **kwargs)  # type: ignore[call-arg]  # subclasses take a result

    # Subclasses describe themselves three ways for front ends without a live widget.
    def fallback_text(self) -> str:
        """Return a short plain-text summary that carries the key numbers."""
        raise NotImplementedError

    def fallback_png(self) -> bytes:
        """Return a PNG picture of the current view."""
        raise NotImplementedError

    def fallback_html(self, png: bytes | None = None) -> str:
        """Return script-free HTML: the picture (``png``, rendered if not given) and the text."""
        data = base64.b64encode(png if png is not None else self.fallback_png()).decode("ascii")
        summary = html.escape(self.fallback_text())
        return (
            '<div class="interp-magics-fallback">'
            f'<img alt="{summary}" src="data:image/png;base64,{data}"/>'
            f'<pre style="white-space:pre-wrap">{summary}</pre></div>'
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle or {}, {})
        data = dict(data)
        png = self.fallback_png()
        data["text/plain"] = self.fallback_text()
        data["image/png"] = png
        data["text/html"] = self.fallback_html(png)
        return data, dict(metadata)

    def __repr__(self) -> str:
        return self.fallback_text()


def _attach_bundle(cls: type[FallbackWidget]) -> None:
    """Give ``cls`` its ``_esm``/``_css`` source, read once from ``static/``."""
    if "_esm" in cls.__dict__:
        return
    js, css = STATIC / f"{cls._bundle}.js", STATIC / f"{cls._bundle}.css"
    if not js.is_file():
        raise FrontEndNotBuilt(
            f"the widget front end is not built ({js} is missing); from a source checkout run "
            "`make setup` (or `npm --prefix widgets ci && npm --prefix widgets run build`), or "
            "install interp-magics from a wheel"
        )
    cls._esm = js.read_text(encoding="utf-8")
    if css.is_file():
        cls._css = css.read_text(encoding="utf-8")
