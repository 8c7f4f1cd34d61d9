"""Attention viewer at scale: 12 layers x 12 heads x 512 tokens, in a real JupyterLab + Chromium.

Measures, in one run:
- the bytes our view sends (first view, each further head, focus rows) against the JSON that
  CircuitsVis and bertviz embed for the same weights (``json.dumps(tensor.tolist())``, which both
  use), computed exactly head by head;
- Python time to build the view and its static fallback;
- in headless Chromium: first paint of the view (from the widget's render() and from running the
  cell), time for a newly clicked head to arrive and paint, and hover latency (pointer event to
  the value shown) over the detail head and over the overview.

    .venv/bin/python benchmarks/bench_attention.py          # about 2 minutes
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from interp_magics.widgets import AttentionView

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from support.lab import LabServer, launch_chromium, run_cells, write_notebook

RESULTS = Path(__file__).parent / "results"
L, H, T = 12, 12, 512
MAKE = f"""
import torch
from interp_magics.widgets import AttentionView
g = torch.Generator().manual_seed(0)
scores = torch.randn(1, {L}, {H}, {T}, {T}, generator=g) * 3
causal = torch.triu(torch.ones({T}, {T}, dtype=torch.bool), 1)
pattern = scores.masked_fill(causal, float("-inf")).softmax(-1)
tokens = [f"tok{{i}}" for i in range({T})]
"""


def pattern(causal: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(1, L, H, T, T, generator=g) * 3
    if causal:
        scores = scores.masked_fill(
            torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")
        )
    return scores.softmax(-1)


def json_bytes(p: torch.Tensor) -> int:
    """Return the size of json.dumps(tolist()) of every head, as CircuitsVis and bertviz send."""
    total = 2 + (L * H - 1)  # brackets and separators of the outer lists, roughly
    for layer in range(L):
        for head in range(H):
            total += len(json.dumps(p[0, layer, head].tolist()))
    return total


def python_side() -> dict:
    out: dict = {}
    for causal in (True, False):
        p = pattern(causal)
        key = "causal" if causal else "bidirectional"
        start = time.perf_counter()
        view = AttentionView(p, [f"tok{i}" for i in range(T)])
        build = time.perf_counter() - start
        start = time.perf_counter()
        bundle, _ = view._repr_mimebundle_()
        fallback = time.perf_counter() - start
        sizes = view.payload_bytes()
        view.focus = 100
        focus = len(view.focus_rows)
        start = time.perf_counter()
        js = json_bytes(p)
        json_time = time.perf_counter() - start
        weights = L * H * T * T
        out[key] = {
            "weights": weights,
            "first_view_bytes": sizes["total"],
            "first_view_bytes_per_weight": sizes["total"] / weights,
            "per_head_bytes": T * T,
            "all_heads_bytes_per_weight": (L * H * T * T + sizes["total"] - sizes["detail"])
            / weights,
            "focus_rows_bytes": focus,
            "circuitsvis_bertviz_json_bytes": js,
            "json_bytes_per_weight": js / weights,
            "json_seconds": json_time,
            "build_view_s": build,
            "fallback_png_html_text_s": fallback,
            "fallback_png_bytes": len(bundle["image/png"]),
        }
        view.close()
    return out


HOVER_JS = """async ([selector, n]) => {
  const root = document.querySelector('.im-attn');
  const canvas = root.querySelector(selector);
  const live = root.querySelector('[data-role=live]');
  const r = canvas.getBoundingClientRect();
  const handler = [], frame = [];
  for (let i = 0; i < n; i++) {
    const x = r.left + 1 + Math.random() * (r.width - 2), y = r.top + 1 + Math.random() * (r.height - 2);
    const before = live.textContent;
    const t0 = performance.now();
    canvas.dispatchEvent(new MouseEvent('mousemove', {clientX: x, clientY: y, bubbles: true}));
    const t1 = performance.now();
    await new Promise(res => requestAnimationFrame(() => res()));
    const t2 = performance.now();
    if (live.textContent !== before) { handler.push(t1 - t0); frame.push(t2 - t0); }
  }
  return {handler, frame};
}"""


def browser_side() -> dict:
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="bench-attention-"))
    write_notebook(root / "bench.ipynb", [MAKE, "view = AttentionView(pattern, tokens)\nview"])
    with LabServer(root) as lab, sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(lab.url("lab/workspaces/bench/tree/bench.ipynb?reset"))
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=90_000)
        run_cells(page, 1)  # build the weights (not timed)
        page.locator(".jp-CodeCell").nth(1).locator(".jp-InputPrompt").click()
        page.keyboard.press("Escape")
        start = time.perf_counter()
        page.keyboard.press("Control+Enter")  # display the view
        page.wait_for_selector(
            ".im-attn[data-first-paint-ms][data-detail-paint-ms]", timeout=120_000
        )
        cell_to_paint = time.perf_counter() - start
        view = page.locator(".im-attn").first
        first_paint = float(view.get_attribute("data-first-paint-ms"))
        detail_paint = float(view.get_attribute("data-detail-paint-ms"))
        grid = view.locator("canvas[data-role=grid]")
        clicks = []
        for layer, head in [(3, 4), (7, 9), (11, 11), (5, 2), (9, 0)]:
            t0 = time.perf_counter()
            grid.click(position={"x": head * 43 + 20, "y": layer * 43 + 20})
            view.locator(
                f'canvas[data-role=detail][data-layer="{layer}"][data-head="{head}"][data-state=ready]'
            ).wait_for(timeout=30_000)
            clicks.append(time.perf_counter() - t0)
        detail_hover = page.evaluate(HOVER_JS, ["canvas[data-role=detail]", 300])
        grid_hover = page.evaluate(HOVER_JS, ["canvas[data-role=grid]", 300])
        t0 = time.perf_counter()
        view.locator(".im-attn-token").nth(200).click()
        page.wait_for_function(
            "() => document.querySelector('.im-attn-token[data-index=\"200\"]').style.background !== ''",
            timeout=30_000,
        )
        focus_s = time.perf_counter() - t0
        RESULTS.mkdir(exist_ok=True)
        view.screenshot(path=str(RESULTS / "attention-12x12x512.png"))
        browser.close()

    def summary(values: list[float]) -> dict:
        values = sorted(values)
        return {
            "n": len(values),
            "median_ms": statistics.median(values),
            "p95_ms": values[int(0.95 * (len(values) - 1))],
            "max_ms": values[-1],
        }

    return {
        "first_paint_ms_from_render": first_paint,
        "detail_paint_ms_from_render": detail_paint,
        "cell_run_to_paint_s": cell_to_paint,
        "click_head_to_detail_s": {"median": statistics.median(clicks), "max": max(clicks)},
        "hover_detail": {
            "handler": summary(detail_hover["handler"]),
            "to_next_frame": summary(detail_hover["frame"]),
        },
        "hover_grid": {
            "handler": summary(grid_hover["handler"]),
            "to_next_frame": summary(grid_hover["frame"]),
        },
        "focus_token_click_to_paint_s": focus_s,
    }


def main() -> None:
    result = {"shape": [L, H, T, T], "python": python_side(), "browser": browser_side()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "attention.json").write_text(json.dumps(result, indent=2))
    mib = 2**20
    for key, r in result["python"].items():
        print(
            f"{key:14s} first view {r['first_view_bytes'] / mib:6.2f} MiB "
            f"({r['first_view_bytes_per_weight']:.4f} B/weight); every head fetched "
            f"{r['all_heads_bytes_per_weight']:.4f} B/weight; CircuitsVis/bertviz JSON "
            f"{r['circuitsvis_bertviz_json_bytes'] / mib:7.1f} MiB ({r['json_bytes_per_weight']:.1f} B/weight, "
            f"json.dumps {r['json_seconds']:.1f} s); build {r['build_view_s']:.2f} s, "
            f"fallback {r['fallback_png_html_text_s']:.2f} s"
        )
    b = result["browser"]
    print(
        f"browser: first paint {b['first_paint_ms_from_render']:.0f} ms after render() "
        f"(cell run to paint {b['cell_run_to_paint_s']:.2f} s); new head in "
        f"{b['click_head_to_detail_s']['median'] * 1000:.0f} ms (median)"
    )
    for name in ("hover_detail", "hover_grid"):
        h = b[name]
        print(
            f"{name}: handler median {h['handler']['median_ms']:.2f} ms, p95 {h['handler']['p95_ms']:.2f} ms; "
            f"to next frame median {h['to_next_frame']['median_ms']:.1f} ms, p95 {h['to_next_frame']['p95_ms']:.1f} ms"
        )
    print(
        f"focus token: {b['focus_token_click_to_paint_s'] * 1000:.0f} ms from click to coloured text"
    )
    print(f"written to {RESULTS / 'attention.json'}")


if __name__ == "__main__":
    main()
