"""What the browser tests check about how a widget looks: themes, width, overflow, contrast, tooltips.

``set_theme`` switches JupyterLab's theme through its own command; ``open_right_sidebar`` narrows
the notebook the way a user does; ``overflow_px`` measures horizontal overflow inside an element;
``pixel_contrast`` reads the WCAG contrast of the text (or marks) drawn in an element from its
screenshot's pixels, so it measures what a reader sees, canvas text included; ``tooltip_text``
hovers a point and returns the floating tooltip's text.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

DARK = "JupyterLab Dark"
LIGHT = "JupyterLab Light"


def set_theme(page: Any, theme: str) -> None:
    """Switch JupyterLab to ``theme`` and wait until its stylesheet applies."""
    page.evaluate(
        "t => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", theme
    )
    light = "true" if theme == LIGHT else "false"
    page.wait_for_function(
        "light => document.body.dataset.jpThemeLight === light && "
        "getComputedStyle(document.body).getPropertyValue('--jp-layout-color1').trim() !== ''",
        arg=light,
    )
    page.wait_for_timeout(800)  # the widgets redraw on the next frames and once more after 250 ms


def open_right_sidebar(page: Any) -> None:
    """Open JupyterLab's right sidebar (the notebook gets narrower by its width)."""
    page.evaluate(
        """() => { const shell = window.jupyterapp.shell;
                   const ids = Array.from(shell.widgets('right')).map(w => w.id);
                   if (ids.length) shell.activateById(ids[0]); shell.expandRight(); }"""
    )
    page.wait_for_timeout(500)


def overflow_px(locator: Any) -> int:
    """Return how many CSS pixels the widest content inside ``locator`` sticks out horizontally.

    Counts the element itself and every descendant that scrolls or clips horizontally, and any
    descendant whose box ends right of the element's box.
    """
    return int(
        locator.evaluate(
            """root => {
              const box = root.getBoundingClientRect();
              let worst = Math.max(0, root.scrollWidth - root.clientWidth);
              for (const el of root.querySelectorAll('*')) {
                if (el.getAttribute('role') === 'tooltip') continue;
                const s = getComputedStyle(el);
                if (s.display === 'none' || s.visibility === 'hidden') continue;
                if (['auto', 'scroll', 'hidden'].includes(s.overflowX))
                  worst = Math.max(worst, el.scrollWidth - el.clientWidth);
                const r = el.getBoundingClientRect();
                if (r.width > 0) worst = Math.max(worst, Math.round(r.right - box.right));
              }
              return worst;
            }"""
        )
    )


def _luminance(rgb: np.ndarray) -> np.ndarray:
    v = rgb.astype(np.float64) / 255
    lin = np.where(v <= 0.03928, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return lin @ np.array([0.2126, 0.7152, 0.0722])


def pixel_contrast(locator: Any, *, quantile: float = 0.98) -> float:
    """Return the WCAG contrast between the background and the ink drawn in ``locator``.

    From a screenshot: the background is the most common colour; the ink is the pixel at the
    ``quantile`` of contrast with it (anti-aliased edges have less, the stroke's core has the
    ink's own colour; the quantile ignores a few stray pixels of other marks).
    """
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"))
    pixels = image.reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    lb = _luminance(background[None])[0]
    lum = _luminance(pixels)
    ratio = (np.maximum(lum, lb) + 0.05) / (np.minimum(lum, lb) + 0.05)
    ink = ratio[ratio > 1.05]
    return float(np.quantile(ink, quantile)) if ink.size else 1.0


def tooltip_text(page: Any, locator: Any, x: float, y: float, *, timeout: float = 5000) -> str:
    """Hover ``locator`` at (x, y) CSS pixels from its corner; return the visible tooltip's text."""
    locator.hover(position={"x": x, "y": y})
    tip = page.locator("[role=tooltip]:visible")
    tip.first.wait_for(timeout=timeout)
    return str(tip.first.inner_text())
