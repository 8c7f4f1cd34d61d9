"""The probe panel in a real JupyterLab, driven in Debian's Chromium."""

import pytest
from support.lab import run_cells, write_notebook

pytestmark = pytest.mark.browser

CELLS = [
    """import numpy as np
from interp_magics import probes
rng = np.random.default_rng(0)
X = rng.standard_normal((200, 12)); w = rng.standard_normal(12)
y = (X @ w + 0.5 * rng.standard_normal(200) > 0).astype(int)
report = probes.probe(X, y, n_permutations=100, progress=False)
print('ACCURACY', round(report.accuracy, 4))
report""",
    """from interp_magics import capture
import torch
from interp_magics.testing import gpt2
model = gpt2()
ids = torch.randint(1, 90, (40, 6), generator=torch.Generator().manual_seed(0))
labels = (ids[:, -1] % 2).numpy()
with capture(model, 'resid_post') as acts:
    model(ids)
probes.probe_layers(acts, labels, n_permutations=50, cv=4, progress=False)""",
]


def test_probe_panel_in_the_browser(lab, browser, artifacts):
    write_notebook(lab.root / "probes.ipynb", CELLS)
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    errors = []
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack}"))
    try:
        page.goto(lab.url("lab/workspaces/t-probe/tree/probes.ipynb?reset"))
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
        run_cells(page, len(CELLS))
        panels = page.locator(".im-probe")
        panels.nth(1).wait_for(timeout=60_000)
        single, layers = panels.nth(0), panels.nth(1)
        accuracy = float(
            page.locator(".jp-OutputArea-output", has_text="ACCURACY")
            .first.inner_text()
            .split()[-1]
        )
        for panel in (single, layers):
            ink = panel.locator("canvas[data-role=chart]").evaluate(
                """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
                          for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
            )
            assert ink > 1000
        # the numbers are in the table as text, and hovering the probe bar reads it out
        assert f"{accuracy:.4g}" in single.locator("table").inner_text()
        single.locator("canvas").hover(position={"x": 300, "y": 30 + 13})  # the first bar
        assert float(
            single.locator("[data-role=live]").get_attribute("data-value")
        ) == pytest.approx(accuracy, abs=1e-6)
        assert "p_corrected" in layers.locator("table").inner_text()
        assert "significant after correction" in layers.inner_text()
        single.screenshot(path=str(artifacts / "probe-panel.png"))
        layers.screenshot(path=str(artifacts / "probe-layers.png"))
        assert [e for e in errors if "blob:" in e or "anywidget" in e] == []
    finally:
        page.close()
