// The probe panel: a probe's accuracy next to every control with CI whiskers and chance lines
// (one report), or per-layer curves of probe vs controls with significant layers marked (a layer
// sweep). Every number is also in the table, as text.

import { fmt, h } from "./lib/dom";

/* eslint-disable @typescript-eslint/no-explicit-any */
interface Model {
  get(name: string): any;
  on(event: string, cb: (...args: any[]) => void): void;
  off(event: string, cb?: (...args: any[]) => void): void;
}

interface Bar {
  name: string;
  value: number;
  lo: number | null;
  hi: number | null;
}

interface Series {
  name: string;
  values: number[];
  lo?: number[];
  hi?: number[];
}

interface Data {
  mode: "single" | "layers";
  title: string;
  colors: string[];
  majority: number;
  frequency: number;
  bars?: Bar[];
  layers?: string[];
  series?: Series[];
  significant?: boolean[];
  columns: string[];
  rows: (string | number | null)[][];
  notes: string[];
}

const W = 560;

/** Return the labels without their common dotted prefix ("resid_post.3" -> "3"), and the prefix. */
export function shorten(labels: string[]): { prefix: string; short: string[] } {
  if (labels.length < 2) return { prefix: "", short: labels };
  let prefix = labels[0];
  for (const l of labels) while (!l.startsWith(prefix)) prefix = prefix.slice(0, -1);
  prefix = prefix.slice(0, prefix.lastIndexOf(".") + 1);
  return { prefix, short: labels.map((l) => l.slice(prefix.length) || l) };
}

function render({ model, el }: { model: Model; el: HTMLElement }): () => void {
  const root = h("div", "im-probe");
  el.appendChild(root);
  const title = h("div", "im-probe-title");
  const canvas = h("canvas", "im-probe-chart", { tabindex: "0", role: "img", "data-role": "chart" });
  const legend = h("div", "im-probe-legend");
  const live = h("div", "im-probe-live", { "aria-live": "polite", "data-role": "live" });
  const table = h("div", "im-probe-table");
  const notes = h("div", "im-probe-notes");
  root.append(title, canvas, legend, live, table, notes);

  const data = (): Data => model.get("data") as Data;
  let layout: { kind: string; x0: number; x1: number; y0: number; y1: number; rows: number } | null = null;

  function color(i: number): string {
    const c = data().colors;
    return c[i % c.length];
  }

  function ink(): { fg: string; muted: string } {
    const s = getComputedStyle(root);
    return {
      fg: s.getPropertyValue("--im-fg").trim() || "#1f1f1f",
      muted: s.getPropertyValue("--im-muted").trim() || "#616161",
    };
  }

  function setup(height: number): CanvasRenderingContext2D | null {
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(W * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = `${W}px`;
    canvas.style.height = `${height}px`;
    const ctx = canvas.getContext("2d");
    if (ctx) {
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, W, height);
      ctx.font = "11px sans-serif";
    }
    return ctx;
  }

  function drawBars(d: Data): void {
    const bars = d.bars ?? [];
    const rowH = 26;
    const x0 = 150;
    const x1 = W - 20;
    const y0 = 30; // room above the bars for the chance-line labels
    const height = y0 + bars.length * rowH + 30;
    const ctx = setup(height);
    layout = { kind: "bars", x0, x1, y0, y1: y0 + bars.length * rowH, rows: bars.length };
    canvas.setAttribute("aria-label", `${d.title}: ${bars.map((b) => `${b.name} ${fmt(b.value, 3)}`).join(", ")}`);
    if (!ctx) return;
    const { fg, muted } = ink();
    const X = (v: number) => x0 + v * (x1 - x0);
    bars.forEach((b, i) => {
      const y = y0 + i * rowH;
      ctx.fillStyle = color(i);
      ctx.fillRect(X(0), y + 5, X(b.value) - X(0), rowH - 10);
      if (b.lo !== null && b.hi !== null) {
        ctx.strokeStyle = fg;
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        ctx.moveTo(X(b.lo), y + rowH / 2);
        ctx.lineTo(X(b.hi), y + rowH / 2);
        ctx.moveTo(X(b.lo), y + 8);
        ctx.lineTo(X(b.lo), y + rowH - 8);
        ctx.moveTo(X(b.hi), y + 8);
        ctx.lineTo(X(b.hi), y + rowH - 8);
        ctx.stroke();
      }
      ctx.fillStyle = fg;
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      ctx.fillText(b.name, x0 - 8, y + rowH / 2);
    });
    chanceLines(ctx, d, (v) => [X(v), y0, X(v), y0 + bars.length * rowH], muted);
    axis(ctx, X, y0 + bars.length * rowH + 4, muted);
  }

  function chanceLines(
    ctx: CanvasRenderingContext2D,
    d: Data,
    line: (v: number) => [number, number, number, number],
    muted: string,
  ): void {
    const marks: [number, number[], string][] = [
      [d.majority, [5, 3], `majority ${fmt(d.majority, 3)}`],
      [d.frequency, [1, 3], `frequency guess ${fmt(d.frequency, 3)}`],
    ];
    marks.forEach(([v, dash, label], i) => {
      const [ax, ay, bx, by] = line(v);
      ctx.strokeStyle = muted;
      ctx.setLineDash(dash);
      ctx.beginPath();
      ctx.moveTo(ax, ay);
      ctx.lineTo(bx, by);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = muted;
      ctx.textBaseline = "bottom";
      if (ax === bx) {
        // a vertical line (bars): label above the plot, the two labels on separate rows
        ctx.textAlign = "center";
        ctx.fillText(label, ax, ay - 2 - i * 12);
      } else {
        // a horizontal line (layers): label to the right, the two labels on separate rows
        ctx.textAlign = "left";
        ctx.fillText(label, bx + 4, by + 4 + i * 12);
      }
    });
  }

  function axis(ctx: CanvasRenderingContext2D, X: (v: number) => number, y: number, muted: string): void {
    ctx.fillStyle = muted;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const v of [0, 0.25, 0.5, 0.75, 1]) ctx.fillText(String(v), X(v), y);
  }

  function drawLayers(d: Data): void {
    const layers = d.layers ?? [];
    const series = d.series ?? [];
    const x0 = 44;
    const x1 = W - 140; // room on the right for the chance-line labels
    const y0 = 12;
    const y1 = 230;
    const ctx = setup(y1 + 34);
    layout = { kind: "layers", x0, x1, y0, y1, rows: layers.length };
    canvas.setAttribute(
      "aria-label",
      `${d.title}: probe accuracy by layer, ${(d.significant ?? []).filter(Boolean).length} of ${layers.length} layers significant after correction`,
    );
    if (!ctx) return;
    const { fg, muted } = ink();
    const n = Math.max(1, layers.length - 1);
    const X = (i: number) => x0 + (layers.length === 1 ? 0.5 : i / n) * (x1 - x0);
    const Y = (v: number) => y1 - v * (y1 - y0);
    ctx.strokeStyle = muted;
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    ctx.fillStyle = muted;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of [0, 0.25, 0.5, 0.75, 1]) ctx.fillText(String(v), x0 - 4, Y(v));
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const { prefix, short } = shorten(layers);
    short.forEach((l, i) => ctx.fillText(l, X(i), y1 + 4));
    if (prefix) ctx.fillText(prefix.replace(/\.$/, ""), (x0 + x1) / 2, y1 + 18);
    series.forEach((s, si) => {
      const c = color(si);
      if (s.lo && s.hi) {
        ctx.fillStyle = c + "33";
        ctx.beginPath();
        s.hi.forEach((v, i) => (i ? ctx.lineTo(X(i), Y(v)) : ctx.moveTo(X(i), Y(v))));
        for (let i = s.lo.length - 1; i >= 0; i--) ctx.lineTo(X(i), Y(s.lo[i]));
        ctx.closePath();
        ctx.fill();
      }
      ctx.strokeStyle = c;
      ctx.lineWidth = si === 0 ? 2 : 1.5;
      ctx.beginPath();
      s.values.forEach((v, i) => (i ? ctx.lineTo(X(i), Y(v)) : ctx.moveTo(X(i), Y(v))));
      ctx.stroke();
    });
    const probe = series[0];
    (d.significant ?? []).forEach((sig, i) => {
      if (!sig || !probe) return;
      ctx.fillStyle = fg;
      ctx.textAlign = "center";
      ctx.textBaseline = "bottom";
      ctx.fillText("*", X(i), Y(probe.values[i]) - 3);
    });
    chanceLines(ctx, d, (v) => [x0, Y(v), x1, Y(v)], muted);
  }

  function fillLegend(d: Data): void {
    legend.replaceChildren();
    const names = d.mode === "single" ? (d.bars ?? []).map((b) => b.name) : (d.series ?? []).map((s) => s.name);
    names.forEach((name, i) => {
      const item = h("span", "im-probe-key");
      const swatch = h("span", "im-probe-swatch");
      swatch.style.background = color(i);
      item.append(swatch, document.createTextNode(name));
      legend.appendChild(item);
    });
    if (d.mode === "layers") legend.appendChild(h("span", "im-probe-key", undefined, "* significant after correction"));
  }

  function fillTable(d: Data): void {
    table.replaceChildren();
    const t = h("table", "im-probe-grid");
    const head = h("tr");
    for (const c of d.columns) head.appendChild(h("th", undefined, undefined, c));
    t.appendChild(head);
    for (const row of d.rows) {
      const tr = h("tr");
      for (const v of row) tr.appendChild(h("td", undefined, undefined, v === null ? "" : typeof v === "number" ? fmt(v, 4) : v));
      t.appendChild(tr);
    }
    table.appendChild(t);
  }

  function onMove(ev: MouseEvent): void {
    const d = data();
    if (!layout) return;
    const r = canvas.getBoundingClientRect();
    const x = ev.clientX - r.left;
    const y = ev.clientY - r.top;
    if (layout.kind === "bars") {
      const i = Math.floor((y - layout.y0) / 26);
      if (y < layout.y0) return;
      const b = (d.bars ?? [])[i];
      if (!b) return;
      const ci = b.lo !== null && b.hi !== null ? ` [95% CI ${fmt(b.lo, 3)}, ${fmt(b.hi, 3)}]` : "";
      live.textContent = `${b.name}: ${fmt(b.value, 4)}${ci}`;
      live.dataset.value = String(b.value);
      return;
    }
    const layers = d.layers ?? [];
    const n = Math.max(1, layers.length - 1);
    const i = Math.round(((x - layout.x0) / (layout.x1 - layout.x0)) * n);
    if (i < 0 || i >= layers.length) return;
    const parts = (d.series ?? []).map((s) => `${s.name} ${fmt(s.values[i], 3)}`);
    live.textContent = `${layers[i]}: ${parts.join(", ")}${d.significant?.[i] ? " (significant)" : ""}`;
    live.dataset.value = String(d.series?.[0]?.values[i] ?? "");
  }

  function draw(): void {
    const d = data();
    title.textContent = d.title;
    if (d.mode === "single") drawBars(d);
    else drawLayers(d);
    fillLegend(d);
    fillTable(d);
    notes.replaceChildren(...d.notes.map((t) => h("div", undefined, undefined, t)));
  }

  canvas.addEventListener("mousemove", onMove);
  model.on("change:data", draw);
  draw();
  return () => {
    model.off("change:data", draw);
    root.remove();
  };
}

export default { render };
