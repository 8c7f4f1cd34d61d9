// The patching heatmap: one cell per (layer, position) or (layer, head), diverging colours centred
// on 0, token labels, hover values, click for the per-example values, raw / normalised toggle.

import { bytes, floats, type Binary } from "./lib/buffers";
import { cssColor, divergingIndex, inkFor } from "./lib/colors";
import { fmt, h, showToken } from "./lib/dom";
import { cellAt, moveCursor, type Grid } from "./lib/geometry";

/* eslint-disable @typescript-eslint/no-explicit-any */
interface Model {
  get(name: string): any;
  set(name: string, value: unknown): void;
  save_changes(): void;
  on(event: string, cb: (...args: any[]) => void): void;
  off(event: string, cb?: (...args: any[]) => void): void;
}

interface Meta {
  axes: string[];
  shape: number[];
  labels: Record<string, string[]>;
  title: string;
  metric: string;
  normalised: boolean;
  value_name: string;
  clean: number;
  corrupt: number | null;
  batch: number;
  notes: string[];
}

const WIDTH = 640;

function render({ model, el }: { model: Model; el: HTMLElement }): () => void {
  const started = performance.now();
  const root = h("div", "im-patch");
  el.appendChild(root);
  let showRaw = false;
  let cursor: [number, number] = [0, 0];
  let showTable = false;

  const meta = (): Meta => model.get("meta") as Meta;
  const lut = (): Uint8Array => bytes(model.get("lut") as Binary);

  const header = h("div", "im-patch-header");
  const title = h("div", "im-patch-title");
  const controls = h("div", "im-patch-controls");
  const sliceSelect = h("select", "im-patch-slice", { "aria-label": "Head to show" });
  const rawButton = h("button", "im-patch-button", { type: "button", "aria-pressed": "false" }, "Raw metric");
  const tableButton = h("button", "im-patch-button", { type: "button", "aria-pressed": "false" }, "As table");
  controls.append(sliceSelect, rawButton, tableButton);
  header.append(title, controls);
  const baselines = h("div", "im-patch-baselines");
  const wrap = h("div", "im-patch-wrap");
  const colLabels = h("div", "im-patch-cols");
  const rowLabels = h("div", "im-patch-rows");
  const canvas = h("canvas", "im-patch-canvas", {
    tabindex: "0",
    role: "application",
    "data-role": "heatmap",
    "data-lm-suppress-shortcuts": "true",
  });
  wrap.append(colLabels, rowLabels, canvas);
  const legend = h("div", "im-patch-legend");
  const live = h("div", "im-patch-live", { "aria-live": "polite", "data-role": "live" });
  const detail = h("div", "im-patch-detail", { "data-role": "cell" });
  const table = h("div", "im-patch-table");
  const notes = h("div", "im-patch-notes");
  root.append(header, baselines, wrap, legend, live, detail, table, notes);

  // The 2-D plane on show: rows = first axis (layer), columns = last axis; a 3-axis result
  // (layer, head, pos) is shown one head at a time.
  function plane(): { rows: number; cols: number; rowAxis: string; colAxis: string; values: Float32Array } {
    const m = meta();
    const all = floats(model.get(showRaw ? "raw" : "values") as Binary);
    const rowAxis = m.axes[0];
    const colAxis = m.axes[m.axes.length - 1];
    const rows = m.shape[0];
    if (m.axes.length === 1) return { rows, cols: 1, rowAxis, colAxis: "", values: all };
    const cols = m.shape[m.shape.length - 1];
    if (m.axes.length === 2) return { rows, cols, rowAxis, colAxis, values: all };
    const mid = m.shape[1];
    const s = model.get("slice_index") as number;
    const out = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) out.set(all.subarray((r * mid + s) * cols, (r * mid + s + 1) * cols), r * cols);
    return { rows, cols, rowAxis, colAxis, values: out };
  }

  function vmax(values: Float32Array): number {
    let m = 0;
    for (const v of values) if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
    return m || 1;
  }

  function cellPx(rows: number, cols: number): number {
    return Math.max(6, Math.min(40, Math.floor(WIDTH / Math.max(cols, 1)), Math.floor(480 / Math.max(rows, 1))));
  }

  function label(axis: string, i: number): string {
    const labels = meta().labels[axis];
    if (!labels) return String(i);
    return axis === "pos" ? `${i} ${showToken(labels[i] ?? "", 16)}` : labels[i] ?? String(i);
  }

  // Raw metric values are coloured by their distance from the unpatched run (the corrupted
  // baseline, or the clean one for ablations), so the scale stays centred on "no effect".
  function centre(): number {
    const m = meta();
    return showRaw ? m.corrupt ?? m.clean : 0;
  }

  function draw(): void {
    const m = meta();
    const p = plane();
    const cell = cellPx(p.rows, p.cols);
    const width = p.cols * cell;
    const height = p.rows * cell;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    canvas.setAttribute(
      "aria-label",
      `${m.title}: ${p.rows} ${p.rowAxis}s by ${p.cols} ${p.colAxis || "cell"}s. Arrow keys move, Enter shows the examples.`,
    );
    const ctx = canvas.getContext("2d");
    const c0 = centre();
    const shifted = p.values.map((v) => v - c0);
    const top = vmax(shifted);
    const table = lut();
    if (ctx) {
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, width, height);
      for (let r = 0; r < p.rows; r++) {
        for (let c = 0; c < p.cols; c++) {
          const v = p.values[r * p.cols + c];
          const idx = divergingIndex(v - c0, top);
          ctx.fillStyle = cssColor(table, idx);
          ctx.fillRect(c * cell, r * cell, cell, cell);
          if (cell >= 34 && Number.isFinite(v)) {
            ctx.fillStyle = inkFor(table, idx);
            ctx.font = "10px sans-serif";
            ctx.textAlign = "center";
            ctx.textBaseline = "middle";
            ctx.fillText(fmt(v, 2), c * cell + cell / 2, r * cell + cell / 2);
          }
        }
      }
      const sel = model.get("selected") as number[];
      if (sel && sel.length === 2) {
        ctx.strokeStyle = getComputedStyle(root).getPropertyValue("--im-accent").trim() || "#111";
        ctx.lineWidth = 2;
        ctx.strokeRect(sel[1] * cell + 1, sel[0] * cell + 1, cell - 2, cell - 2);
      }
      if (document.activeElement === canvas) {
        ctx.strokeStyle = getComputedStyle(root).getPropertyValue("--im-cursor").trim() || "#1976d2";
        ctx.lineWidth = 1;
        ctx.strokeRect(cursor[1] * cell + 0.5, cursor[0] * cell + 0.5, cell - 1, cell - 1);
      }
    }
    drawLabels(p, cell);
    drawLegend(top, c0);
    title.textContent = m.title;
    const value = showRaw ? `raw ${m.metric}` : m.value_name;
    baselines.textContent =
      `${value} · clean baseline ${fmt(m.clean)}` + (m.corrupt === null ? "" : ` · corrupted baseline ${fmt(m.corrupt)}`);
    if (showTable) drawTable(p);
    if (!root.dataset.firstPaintMs) root.dataset.firstPaintMs = (performance.now() - started).toFixed(1);
  }

  function drawLabels(p: ReturnType<typeof plane>, cell: number): void {
    colLabels.replaceChildren();
    rowLabels.replaceChildren();
    for (let r = 0; r < p.rows; r++) {
      const span = h("span", "im-patch-label", undefined, label(p.rowAxis, r));
      span.style.top = `${r * cell}px`;
      span.style.height = `${cell}px`;
      span.style.lineHeight = `${cell}px`;
      rowLabels.appendChild(span);
    }
    if (!p.colAxis) return;
    const every = Math.max(1, Math.ceil(12 / cell)); // thin out labels on narrow cells
    for (let c = 0; c < p.cols; c += every) {
      const text = label(p.colAxis, c);
      const span = h("span", "im-patch-label", { title: text }, text);
      span.style.left = `${c * cell + cell / 2}px`;
      colLabels.appendChild(span);
    }
  }

  function drawLegend(top: number, c0: number): void {
    legend.replaceChildren();
    const bar = h("canvas", "im-patch-legend-bar", { "aria-hidden": "true" });
    bar.width = 256;
    bar.height = 1;
    const ctx = bar.getContext("2d");
    if (ctx) {
      const px = new Uint8ClampedArray(256 * 4);
      const t = lut();
      for (let i = 0; i < 256; i++) px.set([t[i * 3], t[i * 3 + 1], t[i * 3 + 2], 255], i * 4);
      ctx.putImageData(new ImageData(px, 256, 1), 0, 0);
    }
    const ticks = h("div", "im-patch-ticks");
    for (const f of [-1, -0.5, 0, 0.5, 1]) ticks.appendChild(h("span", undefined, undefined, fmt(c0 + f * top, 3)));
    legend.append(bar, ticks);
  }

  function drawTable(p: ReturnType<typeof plane>): void {
    table.replaceChildren();
    if (!showTable) return;
    const t = h("table", "im-patch-grid");
    const head = h("tr");
    head.appendChild(h("th", undefined, undefined, p.rowAxis));
    for (let c = 0; c < p.cols; c++) head.appendChild(h("th", undefined, undefined, p.colAxis ? label(p.colAxis, c) : "value"));
    t.appendChild(head);
    for (let r = 0; r < p.rows; r++) {
      const tr = h("tr");
      tr.appendChild(h("th", undefined, undefined, label(p.rowAxis, r)));
      for (let c = 0; c < p.cols; c++) tr.appendChild(h("td", undefined, undefined, fmt(p.values[r * p.cols + c], 3)));
      t.appendChild(tr);
    }
    table.appendChild(t);
  }

  function drawDetail(): void {
    detail.replaceChildren();
    const sel = model.get("selected") as number[];
    const vals = floats(model.get("cell_values") as Binary);
    const m = meta();
    if (!sel || sel.length !== 2 || vals.length === 0) return;
    const p = plane();
    const where = `${p.rowAxis} ${label(p.rowAxis, sel[0])}` + (p.colAxis ? ` · ${p.colAxis} ${label(p.colAxis, sel[1])}` : "");
    detail.appendChild(h("div", "im-patch-detail-title", undefined, `Per-example ${m.metric}, ${where}`));
    const t = h("table", "im-patch-examples");
    const head = h("tr");
    for (const c of ["example", "patched", "clean", ...(m.corrupt === null ? [] : ["corrupted"])]) head.appendChild(h("th", undefined, undefined, c));
    t.appendChild(head);
    const clean = floats(model.get("clean_values") as Binary);
    const corrupt = floats(model.get("corrupt_values") as Binary);
    vals.forEach((v, i) => {
      const tr = h("tr");
      tr.appendChild(h("td", undefined, undefined, String(i)));
      tr.appendChild(h("td", undefined, undefined, fmt(v, 4)));
      tr.appendChild(h("td", undefined, undefined, fmt(clean[i], 4)));
      if (m.corrupt !== null) tr.appendChild(h("td", undefined, undefined, fmt(corrupt[i], 4)));
      t.appendChild(tr);
    });
    detail.appendChild(t);
  }

  function describe(r: number, c: number): void {
    const m = meta();
    const p = plane();
    const v = p.values[r * p.cols + c];
    const where = `${p.rowAxis} ${label(p.rowAxis, r)}` + (p.colAxis ? ` · ${p.colAxis} ${label(p.colAxis, c)}` : "");
    const name = showRaw ? m.metric : m.value_name;
    live.textContent = `${where}: ${name} ${fmt(v, 5)}`;
    live.dataset.value = String(v);
    live.dataset.cell = `${r}/${c}`;
  }

  function geom(): Grid {
    const p = plane();
    return { rows: p.rows, cols: p.cols, cell: cellPx(p.rows, p.cols), gap: 0 };
  }

  function local(ev: MouseEvent): [number, number] {
    const rect = canvas.getBoundingClientRect();
    return [ev.clientX - rect.left, ev.clientY - rect.top];
  }

  function select(r: number, c: number): void {
    cursor = [r, c];
    model.set("selected", [r, c]);
    model.save_changes();
    draw();
  }

  canvas.addEventListener("mousemove", (ev) => {
    const hit = cellAt(geom(), ...local(ev));
    if (hit) describe(hit[0], hit[1]);
  });
  canvas.addEventListener("click", (ev) => {
    const hit = cellAt(geom(), ...local(ev));
    if (hit) select(hit[0], hit[1]);
  });
  canvas.addEventListener("keydown", (ev) => {
    const g = geom();
    if (ev.key === "Enter" || ev.key === " ") {
      select(cursor[0], cursor[1]);
      ev.preventDefault();
      return;
    }
    const next = moveCursor(cursor, ev.key, g.rows, g.cols);
    if (!next) return;
    ev.preventDefault();
    cursor = next;
    describe(next[0], next[1]);
    draw();
  });
  canvas.addEventListener("focus", draw);
  canvas.addEventListener("blur", draw);
  rawButton.addEventListener("click", () => {
    showRaw = !showRaw;
    rawButton.setAttribute("aria-pressed", String(showRaw));
    draw();
  });
  tableButton.addEventListener("click", () => {
    showTable = !showTable;
    tableButton.setAttribute("aria-pressed", String(showTable));
    draw();
    if (!showTable) table.replaceChildren();
  });
  sliceSelect.addEventListener("change", () => {
    model.set("slice_index", Number(sliceSelect.value));
    model.save_changes();
  });

  function fillControls(): void {
    const m = meta();
    sliceSelect.replaceChildren();
    const three = m.axes.length === 3;
    sliceSelect.hidden = !three;
    if (three) {
      const axis = m.axes[1];
      for (let i = 0; i < m.shape[1]; i++) sliceSelect.appendChild(h("option", undefined, { value: String(i) }, `${axis} ${label(axis, i)}`));
      sliceSelect.value = String(model.get("slice_index"));
    }
    rawButton.hidden = !m.normalised;
    notes.replaceChildren(...m.notes.map((n) => h("div", undefined, undefined, n)));
  }

  const onChange = () => {
    fillControls();
    draw();
    drawDetail();
  };
  const events = ["change:values", "change:meta", "change:slice_index", "change:selected", "change:cell_values"];
  for (const e of events) model.on(e, onChange);
  onChange();

  return () => {
    for (const e of events) model.off(e, onChange);
    root.remove();
  };
}

export default { render };
