// The attention viewer: a layers x heads overview of thumbnails, one head in detail (query x key
// with token labels and hover values), and a focus-token mode that shows where every head sends
// the attention of one query, over the text. Weights arrive as uint8 codes in binary traits.

import { bytes, decode, maxError, type Binary } from "./lib/buffers";
import { cssColor, indexTable, inkFor, lutIndex, type Contrast } from "./lib/colors";
import { h, fmt, showToken } from "./lib/dom";
import { cellAt, matrixCell, moveCursor, type Grid } from "./lib/geometry";
import { paintMatrix, paintStrip, poolMax, poolPad } from "./lib/paint";

/* eslint-disable @typescript-eslint/no-explicit-any */
interface Model {
  get(name: string): any;
  set(name: string, value: unknown): void;
  save_changes(): void;
  on(event: string, cb: (...args: any[]) => void): void;
  off(event: string, cb?: (...args: any[]) => void): void;
  send(content: unknown): void;
}

interface Meta {
  layers: number;
  heads: number;
  seq: number;
  batch: number;
  thumb: number;
  vmax: number;
  causal: boolean;
  layer_labels: number[];
  batch_labels: string[];
  title: string;
  notes: string[];
}

interface Detail {
  codes: Uint8Array;
  scale: number;
}

const THUMB_PX = 40; // CSS pixels per head in the overview (Python pools thumbnails to this)
const GAP = 3;
const DETAIL_PX = 480; // about this wide, whatever the sequence length
const LABEL_LIMIT = 64; // axis token labels are drawn up to this many tokens

function render({ model, el }: { model: Model; el: HTMLElement }): () => void {
  const started = performance.now();
  const root = h("div", "im-attn");
  el.appendChild(root);

  // ---- state ----------------------------------------------------------------------------
  let contrast: Contrast = "linear";
  let index = indexTable(contrast);
  let mode: "grid" | "focus" = "grid";
  let gridCursor: [number, number] = [0, 0];
  let hoverHead: [number, number] | null = null;
  let detailCursor: [number, number] = [0, 0];
  let showTable = false;
  let requestId = 0;
  let inFlight: number | null = null;
  let pending: Record<string, number> | null = null;
  const details = new Map<string, Detail>(); // browser cache of heads: "b/l/h"
  const focusCache = new Map<string, Uint8Array>(); // "b/q" -> L*H*T codes

  const meta = (): Meta => model.get("meta") as Meta;
  const lut = (): Uint8Array => bytes(model.get("lut") as Binary);
  const pad = (): Uint8Array => bytes(model.get("pad") as Binary);
  const tokens = (): string[] => model.get("tokens") as string[];
  const batchIndex = (): number => model.get("batch_index") as number;
  const selected = (): [number, number] => model.get("selected") as [number, number];
  const focusQuery = (): number => model.get("focus") as number;
  const key = (b: number, l: number, hd: number) => `${b}/${l}/${hd}`;

  // ---- layout ---------------------------------------------------------------------------
  const header = h("div", "im-attn-header");
  const title = h("div", "im-attn-title");
  const controls = h("div", "im-attn-controls");
  const batchSelect = h("select", "im-attn-batch", { "aria-label": "Sequence in the batch" });
  const modeButton = h("button", "im-attn-button", { type: "button", "aria-pressed": "false" }, "Focus token");
  const contrastButton = h("button", "im-attn-button", { type: "button", "aria-pressed": "false" }, "√ contrast");
  const tableButton = h("button", "im-attn-button", { type: "button", "aria-pressed": "false" }, "As table");
  controls.append(batchSelect, modeButton, contrastButton, tableButton);
  header.append(title, controls);

  const body = h("div", "im-attn-body");
  const gridPanel = h("div", "im-attn-panel");
  const gridCaption = h("div", "im-attn-caption");
  // data-lm-suppress-shortcuts: while a canvas has focus, arrow keys and Enter drive the viewer,
  // not the notebook's command-mode shortcuts (moving between cells).
  const keys = { tabindex: "0", role: "application", "data-lm-suppress-shortcuts": "true" };
  const gridCanvas = h("canvas", "im-attn-grid", { ...keys, "data-role": "grid" });
  gridPanel.append(gridCaption, gridCanvas);

  const detailPanel = h("div", "im-attn-panel im-attn-detail-panel");
  const detailCaption = h("div", "im-attn-caption");
  const detailWrap = h("div", "im-attn-detail-wrap");
  const keyLabels = h("div", "im-attn-keys");
  const queryLabels = h("div", "im-attn-queries");
  const detailCanvas = h("canvas", "im-attn-detail", { ...keys, "data-role": "detail" });
  detailWrap.append(keyLabels, queryLabels, detailCanvas);
  const legend = h("div", "im-attn-legend");
  const table = h("div", "im-attn-table");
  detailPanel.append(detailCaption, detailWrap, legend, table);
  body.append(gridPanel, detailPanel);

  const text = h("div", "im-attn-text", { "data-role": "tokens" });
  const live = h("div", "im-attn-live", { "aria-live": "polite", "data-role": "live" });
  const notes = h("div", "im-attn-notes");
  root.append(header, body, text, live, notes);

  // ---- overview grid --------------------------------------------------------------------
  const gridGeom = (): Grid => ({ rows: meta().layers, cols: meta().heads, cell: THUMB_PX + GAP, gap: GAP });

  function headImage(l: number, hd: number): { data: Uint8ClampedArray<ArrayBuffer>; w: number; hgt: number } | null {
    const m = meta();
    if (mode === "focus") {
      const rows = focusCache.get(`${batchIndex()}/${focusQuery()}`);
      if (!rows) return null;
      const off = (l * m.heads + hd) * m.seq;
      const strip = poolMax(rows.subarray(off, off + m.seq), THUMB_PX);
      const stripPad = poolPad(pad(), THUMB_PX);
      return { data: paintStrip(strip, { lut: lut(), index, pad: stripPad }), w: strip.length, hgt: 1 };
    }
    const t = m.thumb;
    const all = bytes(model.get("thumbs") as Binary);
    const off = (l * m.heads + hd) * t * t;
    const thumbPad = bytes(model.get("thumb_pad") as Binary);
    return {
      data: paintMatrix(all.subarray(off, off + t * t), t, { lut: lut(), index, pad: thumbPad, causal: m.causal }),
      w: t,
      hgt: t,
    };
  }

  function drawGrid(): void {
    const m = meta();
    const dpr = window.devicePixelRatio || 1;
    const width = m.heads * (THUMB_PX + GAP) - GAP;
    const height = m.layers * (THUMB_PX + GAP) - GAP;
    gridCanvas.width = Math.round(width * dpr);
    gridCanvas.height = Math.round(height * dpr);
    gridCanvas.style.width = `${width}px`;
    gridCanvas.style.height = `${height}px`;
    gridCanvas.setAttribute(
      "aria-label",
      `Attention heads, ${m.layers} layers by ${m.heads} heads` +
        (mode === "focus" ? `, showing where query ${focusQuery()} attends` : "") +
        ". Arrow keys move between heads, Enter opens one.",
    );
    const ctx = gridCanvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.imageSmoothingEnabled = false;
    const scratch = document.createElement("canvas");
    const sctx = scratch.getContext("2d");
    if (!sctx) return;
    for (let l = 0; l < m.layers; l++) {
      for (let hd = 0; hd < m.heads; hd++) {
        const img = headImage(l, hd);
        const x = hd * (THUMB_PX + GAP);
        const y = l * (THUMB_PX + GAP);
        if (!img) {
          ctx.fillStyle = "rgba(128,128,128,0.15)";
          ctx.fillRect(x, y, THUMB_PX, THUMB_PX);
          continue;
        }
        scratch.width = img.w;
        scratch.height = img.hgt;
        sctx.putImageData(new ImageData(img.data, img.w, img.hgt), 0, 0);
        ctx.drawImage(scratch, 0, 0, img.w, img.hgt, x, y, THUMB_PX, THUMB_PX);
      }
    }
    const [sl, sh] = selected();
    outline(ctx, sh, sl, "--im-accent", 2);
    if (document.activeElement === gridCanvas) outline(ctx, gridCursor[1], gridCursor[0], "--im-cursor", 1);
    gridCaption.textContent =
      mode === "focus"
        ? `Where each head sends query ${focusQuery()} (${showToken(tokens()[focusQuery()] ?? "")})`
        : `${m.layers} layers × ${m.heads} heads (rows: layers ${m.layer_labels[0]}–${m.layer_labels[m.layer_labels.length - 1]})`;
  }

  function outline(ctx: CanvasRenderingContext2D, col: number, row: number, property: string, width: number): void {
    // Canvas cannot read CSS variables itself: resolve the theme colour from the stylesheet.
    ctx.strokeStyle = getComputedStyle(root).getPropertyValue(property).trim() || "#e65100";
    ctx.lineWidth = width;
    ctx.strokeRect(col * (THUMB_PX + GAP) - 1, row * (THUMB_PX + GAP) - 1, THUMB_PX + 2, THUMB_PX + 2);
  }

  // ---- detail -----------------------------------------------------------------------------
  function currentDetail(): Detail | undefined {
    const [l, hd] = selected();
    return details.get(key(batchIndex(), l, hd));
  }

  function drawDetail(): void {
    const m = meta();
    const [l, hd] = selected();
    const n = m.seq;
    const cell = matrixCell(n, DETAIL_PX);
    const size = n * cell;
    detailCanvas.width = n;
    detailCanvas.height = n;
    detailCanvas.style.width = `${size}px`;
    detailCanvas.style.height = `${size}px`;
    detailCanvas.dataset.layer = String(m.layer_labels[l]);
    detailCanvas.dataset.head = String(hd);
    detailCanvas.setAttribute(
      "aria-label",
      `Layer ${m.layer_labels[l]} head ${hd}: ${n} query tokens by ${n} key tokens. Arrow keys move, Escape returns to the overview.`,
    );
    detailCaption.textContent = `Layer ${m.layer_labels[l]} · Head ${hd} — rows: query, columns: key`;
    const ctx = detailCanvas.getContext("2d");
    const d = currentDetail();
    if (!ctx) return;
    ctx.clearRect(0, 0, n, n);
    if (!d) {
      detailCanvas.dataset.state = "loading";
      return;
    }
    // Codes are relative to the head's own maximum; the colour range is shared by all heads.
    const codeScale = d.scale / m.vmax;
    const px = paintMatrix(d.codes, n, { lut: lut(), index, pad: pad(), causal: m.causal, codeScale });
    ctx.putImageData(new ImageData(px, n, n), 0, 0);
    detailCanvas.dataset.state = "ready";
    if (!root.dataset.detailPaintMs) root.dataset.detailPaintMs = (performance.now() - started).toFixed(1);
    drawLabels(cell);
    if (showTable) drawTable();
  }

  function drawLabels(cell: number): void {
    keyLabels.replaceChildren();
    queryLabels.replaceChildren();
    const toks = tokens();
    const padMask = pad();
    const show = toks.length <= LABEL_LIMIT;
    detailWrap.classList.toggle("im-attn-labelled", show);
    if (!show) return;
    const font = Math.max(9, Math.min(13, cell - 2));
    toks.forEach((t, i) => {
      const cls = padMask[i] === 1 ? "im-attn-label im-attn-pad" : "im-attn-label";
      const k = h("span", cls, { title: t }, showToken(t, 14));
      k.style.left = `${i * cell + cell / 2}px`;
      k.style.fontSize = `${font}px`;
      keyLabels.appendChild(k);
      const q = h("span", cls, { title: t }, showToken(t, 14));
      q.style.top = `${i * cell}px`;
      q.style.height = `${cell}px`;
      q.style.lineHeight = `${cell}px`;
      q.style.fontSize = `${font}px`;
      queryLabels.appendChild(q);
    });
  }

  function drawTable(): void {
    table.replaceChildren();
    const d = currentDetail();
    if (!showTable || !d) return;
    const m = meta();
    const toks = tokens();
    const t = h("table", "im-attn-rows");
    const head = h("tr");
    for (const label of ["query", "top keys (weight)"]) head.appendChild(h("th", undefined, undefined, label));
    t.appendChild(head);
    for (let q = 0; q < m.seq; q++) {
      const row = Array.from(d.codes.subarray(q * m.seq, (q + 1) * m.seq));
      const top = row
        .map((c, k) => [c, k] as [number, number])
        .sort((a, b) => b[0] - a[0])
        .slice(0, 3)
        .filter(([c]) => c > 0);
      const tr = h("tr");
      tr.appendChild(h("td", undefined, undefined, `${q} ${showToken(toks[q])}`));
      tr.appendChild(
        h("td", undefined, undefined, top.map(([c, k]) => `${showToken(toks[k])} ${fmt(decode(c, d.scale), 3)}`).join(", ")),
      );
      t.appendChild(tr);
    }
    table.appendChild(t);
  }

  function drawLegend(): void {
    legend.replaceChildren();
    const m = meta();
    const bar = h("canvas", "im-attn-legend-bar", { "aria-hidden": "true" });
    bar.width = 256;
    bar.height = 1;
    const ctx = bar.getContext("2d");
    if (ctx) {
      const px = new Uint8ClampedArray(256 * 4);
      const table = lut();
      for (let i = 0; i < 256; i++) {
        // Position i along the bar is the weight i/255 * vmax, coloured as the views colour it.
        const li = lutIndex(i, contrast) * 3;
        px.set([table[li], table[li + 1], table[li + 2], 255], i * 4);
      }
      ctx.putImageData(new ImageData(px, 256, 1), 0, 0);
    }
    const ticks = h("div", "im-attn-ticks");
    for (const f of [0, 0.25, 0.5, 0.75, 1]) ticks.appendChild(h("span", undefined, undefined, fmt(f * m.vmax, 2)));
    legend.append(h("span", "im-attn-legend-title", undefined, "attention weight"), bar, ticks);
  }

  // ---- text and focus ------------------------------------------------------------------
  function activeHead(): [number, number] {
    return hoverHead ?? selected();
  }

  function drawText(): void {
    text.replaceChildren();
    const toks = tokens();
    const padMask = pad();
    const m = meta();
    const q = focusQuery();
    const rows = mode === "focus" ? focusCache.get(`${batchIndex()}/${q}`) : undefined;
    const [l, hd] = activeHead();
    const table = lut();
    toks.forEach((t, i) => {
      const span = h("span", "im-attn-token", { "data-index": String(i), title: `${i}: ${t}` }, showToken(t, 40));
      if (padMask[i] === 1) span.classList.add("im-attn-pad");
      if (mode === "focus" && i === q) span.classList.add("im-attn-focus");
      if (rows && padMask[i] !== 1) {
        const code = rows[(l * m.heads + hd) * m.seq + i];
        const li = lutIndex(code, contrast);
        span.style.background = cssColor(table, li);
        span.style.color = inkFor(table, li);
      }
      text.appendChild(span);
    });
  }

  function setFocus(q: number): void {
    mode = "focus";
    modeButton.setAttribute("aria-pressed", "true");
    model.set("focus", q);
    model.save_changes();
    redraw();
  }

  // ---- hover values ----------------------------------------------------------------------
  function describeCell(q: number, k: number): void {
    const m = meta();
    const [l, hd] = selected();
    const toks = tokens();
    const d = currentDetail();
    const where = `L${m.layer_labels[l]} H${hd} · query ${q} “${showToken(toks[q])}” → key ${k} “${showToken(toks[k])}”`;
    if (!d) {
      live.textContent = `${where} · loading`;
      return;
    }
    if (m.causal && k > q) {
      live.textContent = `${where} · not attended (causal mask)`;
      live.dataset.value = "0";
      return;
    }
    const approx = decode(d.codes[q * m.seq + k], d.scale);
    live.textContent = `${where} · weight ≈ ${fmt(approx)} (±${fmt(maxError(d.scale), 2)})`;
    live.dataset.value = String(approx);
    live.dataset.exact = "false";
    live.dataset.cell = `${batchIndex()}/${l}/${hd}/${q}/${k}`;
    requestExact({ b: batchIndex(), l, h: hd, q, k });
  }

  function requestExact(cell: Record<string, number>): void {
    if (inFlight !== null) {
      pending = cell; // only the latest cell matters; ask for it when the current reply lands
      return;
    }
    inFlight = ++requestId;
    model.send({ type: "value", id: inFlight, ...cell });
  }

  function onMessage(msg: any): void {
    if (!msg || msg.type !== "value") return;
    if (msg.id === inFlight) inFlight = null;
    const cell = `${msg.b}/${msg.l}/${msg.h}/${msg.q}/${msg.k}`;
    if (live.dataset.cell === cell && typeof msg.value === "number") {
      const m = meta();
      const toks = tokens();
      live.textContent =
        `L${m.layer_labels[msg.l]} H${msg.h} · query ${msg.q} “${showToken(toks[msg.q])}” → ` +
        `key ${msg.k} “${showToken(toks[msg.k])}” · weight ${fmt(msg.value, 6)}`;
      live.dataset.value = String(msg.value);
      live.dataset.exact = "true";
    }
    if (pending) {
      const next = pending;
      pending = null;
      requestExact(next);
    }
  }

  // ---- events ----------------------------------------------------------------------------
  function local(ev: MouseEvent, node: HTMLElement): [number, number] {
    const r = node.getBoundingClientRect();
    return [ev.clientX - r.left, ev.clientY - r.top];
  }

  function onGridMove(ev: MouseEvent): void {
    const [x, y] = local(ev, gridCanvas);
    const hit = cellAt(gridGeom(), x, y);
    const before = hoverHead;
    hoverHead = hit;
    if (hit) {
      const m = meta();
      live.textContent = `Layer ${m.layer_labels[hit[0]]} · Head ${hit[1]} — click to open`;
    }
    if (mode === "focus" && (before?.[0] !== hit?.[0] || before?.[1] !== hit?.[1])) drawText();
  }

  function onGridLeave(): void {
    hoverHead = null;
    if (mode === "focus") drawText();
  }

  function select(l: number, hd: number): void {
    gridCursor = [l, hd];
    model.set("selected", [l, hd]);
    model.save_changes();
    redraw();
  }

  function onGridClick(ev: MouseEvent): void {
    const [x, y] = local(ev, gridCanvas);
    const hit = cellAt(gridGeom(), x, y);
    if (hit) select(hit[0], hit[1]);
  }

  function onGridKey(ev: KeyboardEvent): void {
    const m = meta();
    if (ev.key === "Enter" || ev.key === " ") {
      select(gridCursor[0], gridCursor[1]);
      detailCanvas.focus();
      ev.preventDefault();
      return;
    }
    const next = moveCursor(gridCursor, ev.key, m.layers, m.heads);
    if (!next) return;
    ev.preventDefault();
    gridCursor = next;
    live.textContent = `Layer ${m.layer_labels[next[0]]} · Head ${next[1]} — Enter to open`;
    drawGrid();
  }

  function onDetailMove(ev: MouseEvent): void {
    const m = meta();
    const [x, y] = local(ev, detailCanvas);
    const cell = matrixCell(m.seq, DETAIL_PX);
    const hit = cellAt({ rows: m.seq, cols: m.seq, cell, gap: 0 }, x, y);
    if (!hit) return;
    if (hit[0] === detailCursor[0] && hit[1] === detailCursor[1] && live.dataset.cell) return;
    detailCursor = hit;
    describeCell(hit[0], hit[1]);
  }

  function onDetailKey(ev: KeyboardEvent): void {
    const m = meta();
    if (ev.key === "Escape") {
      gridCanvas.focus();
      ev.preventDefault();
      return;
    }
    if (ev.key === "f") {
      setFocus(detailCursor[0]);
      ev.preventDefault();
      return;
    }
    const next = moveCursor(detailCursor, ev.key, m.seq, m.seq);
    if (!next) return;
    ev.preventDefault();
    detailCursor = next;
    describeCell(next[0], next[1]);
  }

  function onTextClick(ev: MouseEvent): void {
    const target = (ev.target as HTMLElement).closest(".im-attn-token") as HTMLElement | null;
    if (target?.dataset.index) setFocus(Number(target.dataset.index));
  }

  modeButton.addEventListener("click", () => {
    if (mode === "focus") {
      mode = "grid";
      modeButton.setAttribute("aria-pressed", "false");
      redraw();
      return;
    }
    const q = focusQuery() >= 0 ? focusQuery() : lastRealToken();
    setFocus(q);
  });
  contrastButton.addEventListener("click", () => {
    contrast = contrast === "linear" ? "sqrt" : "linear";
    contrastButton.setAttribute("aria-pressed", String(contrast === "sqrt"));
    index = indexTable(contrast);
    redraw();
  });
  tableButton.addEventListener("click", () => {
    showTable = !showTable;
    tableButton.setAttribute("aria-pressed", String(showTable));
    drawTable();
  });
  batchSelect.addEventListener("change", () => {
    model.set("batch_index", Number(batchSelect.value));
    model.save_changes();
  });

  function lastRealToken(): number {
    const padMask = pad();
    for (let i = padMask.length - 1; i >= 0; i--) if (padMask[i] !== 1) return i;
    return Math.max(0, tokens().length - 1);
  }

  gridCanvas.addEventListener("mousemove", onGridMove);
  gridCanvas.addEventListener("mouseleave", onGridLeave);
  gridCanvas.addEventListener("click", onGridClick);
  gridCanvas.addEventListener("keydown", onGridKey);
  gridCanvas.addEventListener("focus", drawGrid);
  gridCanvas.addEventListener("blur", drawGrid);
  detailCanvas.addEventListener("mousemove", onDetailMove);
  detailCanvas.addEventListener("keydown", onDetailKey);
  text.addEventListener("click", onTextClick);

  // ---- model changes -------------------------------------------------------------------
  function storeDetail(): void {
    const k = model.get("detail_key") as number[];
    const data = bytes(model.get("detail") as Binary);
    if (!k || k.length !== 3 || data.length === 0) return;
    details.set(key(k[0], k[1], k[2]), { codes: data.slice(), scale: model.get("detail_scale") as number });
  }

  function storeFocus(): void {
    const k = model.get("focus_key") as number[];
    const data = bytes(model.get("focus_rows") as Binary);
    if (!k || k.length !== 2 || data.length === 0) return;
    focusCache.set(`${k[0]}/${k[1]}`, data.slice());
  }

  function fillHeader(): void {
    const m = meta();
    title.textContent = m.title;
    batchSelect.replaceChildren();
    m.batch_labels.forEach((label, i) => {
      batchSelect.appendChild(h("option", undefined, { value: String(i) }, `${i}: ${label}`));
    });
    batchSelect.value = String(batchIndex());
    batchSelect.hidden = m.batch < 2;
    notes.replaceChildren(...m.notes.map((n) => h("div", undefined, undefined, n)));
  }

  function redraw(): void {
    fillHeader();
    drawGrid();
    drawDetail();
    drawText();
    drawLegend();
    if (!root.dataset.firstPaintMs) root.dataset.firstPaintMs = (performance.now() - started).toFixed(1);
  }

  const onDetail = () => {
    storeDetail();
    drawDetail();
  };
  const onFocusRows = () => {
    storeFocus();
    drawGrid();
    drawText();
  };
  const onBatch = () => {
    details.clear();
    storeDetail();
    redraw();
  };
  const onAny = () => redraw();
  const handlers: [string, () => void][] = [
    ["change:detail", onDetail],
    ["change:detail_key", onDetail],
    ["change:focus_rows", onFocusRows],
    ["change:thumbs", onBatch],
    ["change:selected", onAny],
    ["change:meta", onAny],
  ];
  for (const [event, cb] of handlers) model.on(event, cb);
  model.on("msg:custom", onMessage);

  storeDetail();
  storeFocus();
  if (focusQuery() >= 0) {
    mode = "focus";
    modeButton.setAttribute("aria-pressed", "true");
  }
  redraw();

  return () => {
    for (const [event, cb] of handlers) model.off(event, cb);
    model.off("msg:custom", onMessage);
    root.remove();
  };
}

export default { render };
