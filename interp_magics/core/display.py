"""The one seam between results and their widgets.

A result class names its widget (``WIDGET = "PatchingHeatmap"``) and inherits
:class:`WidgetDisplay`; the widget class is looked up in :mod:`interp_magics.widgets` by name
when it is first needed. So no analysis module imports a widget module (widgets import the
results they draw, never the other way round), plain-Python use never imports anywidget, and
the import graph has no cycles.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

WIDGETS_MODULE = "interp_magics.widgets"


class WidgetDisplay:
    """Mixin: a result that shows as its widget in notebooks and as text in a console.

    Subclasses set ``WIDGET`` to a class name exported by :mod:`interp_magics.widgets` (whose
    ``for_result(result, **kwargs)`` builds the view) and define ``describe()``.
    """

    WIDGET: ClassVar[str] = ""

    def widget(self, **kwargs: Any) -> Any:
        """Return an interactive widget of this result (``WIDGET`` from interp_magics.widgets)."""
        cls = getattr(importlib.import_module(WIDGETS_MODULE), self.WIDGET)
        return cls.for_result(self, **kwargs)

    def describe(self) -> str:
        """Return a short text summary (subclasses say what matters)."""
        return type(self).__name__

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # The widget's bundle carries the live view plus PNG/HTML/text fallbacks.
        return self.widget()._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return self.describe()
