// The viewer: panes in a layout, tools, keyboard shortcuts, marks with undo. The page that
// embeds it saves the marks (an attempt's autosave, the reference read's form) from state().
import { _ } from "../../../static/js/i18n.js";
import { Pane } from "./pane.js";
import { boxMark, pointMark, polygonMark, hits, handles, moved, resized, clampPoint, refusal, STYLES } from "./marks.js";

const KEYS = {
  w: "wl", p: "pan", z: "zoom", d: "measure", s: "select",
  a: "point", e: "ellipse", r: "rectangle", g: "polygon",
};
const MARK_TOOLS = new Set(["point", "ellipse", "rectangle", "polygon"]);

// The focus rule of the shortcuts: the viewer's keys work wherever the focus is, except where
// a key is typed as text (text and number boxes, text areas, drop-down lists, editable
// content). A radio button or checkbox just clicked in the read form keeps the keys for the
// viewer, apart from the few it uses itself (OWN_KEYS).
const NOT_TEXT = new Set(["radio", "checkbox", "button", "submit", "reset", "image", "range", "color", "file"]);
const OWN_KEYS = new Set([" ", "Enter", "ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Home", "End"]);

function isTextEntry(target) {
  if (!(target instanceof Element)) return false;
  if (target.isContentEditable || target.matches("textarea, select")) return true;
  return target.matches("input") && !NOT_TEXT.has(target.type);
}

function isControl(target) {
  return target instanceof Element && target.matches("input, button, a[href], summary, [role=button], [role=radio], [role=checkbox]");
}

export class Viewer {
  constructor(root, data, options = {}) {
    this.root = root;
    this.data = data;
    this.options = options;
    this.labels = data.labels || [];
    this.refusal = null; // the "Mark not added" sentence on the status line, if one is shown
    this.editable = Boolean(data.editable);
    this.marks = (data.marks || []).map((m) => ({ ...m }));
    this.reference = (data.reference_marks || []).map((m) => ({ ...m }));
    this.review = Boolean(options.review);
    this.measurements = [];
    this.undoStack = [];
    this.selected = null;
    this.draft = null;
    this.tool = "wl";
    this.panes = [];
    this.pointers = new Map();
    this.el = (sel) => root.querySelector(sel);

    this.#bindToolbar();
    this.#bindKeyboard();
    this.#legend();
    this.setLayout(this.defaultLayout());
    this.setTool(this.editable && this.labels.length ? "select" : "wl");
    this.#refreshControls();
  }

  // ---- layout --------------------------------------------------------------------------------

  defaultLayout() { return "single"; }

  imagesFor(layout) {
    const images = this.data.images;
    const current = images.filter((i) => !i.prior);
    const priors = images.filter((i) => i.prior);
    if (layout === "side") return images.slice(0, 2);
    if (layout === "linked") return [current[0] || images[0], priors[0] || images[1]].filter(Boolean);
    return [current[0] || images[0]];
  }

  setLayout(layout) {
    this.layout = layout;
    this.el(".vw-layout").value = layout;
    for (const pane of this.panes) pane.destroy();
    const container = this.el(".viewer-panes");
    container.dataset.layout = layout;
    this.panes = this.imagesFor(layout).map((image) => new Pane(container, image, this));
    for (const pane of this.panes) { this.#bindPane(pane); pane.load(); }
    this.active = this.panes[0];
    this.#refreshControls();
  }

  viewChanged(pane) {
    if (this.layout !== "linked") return;
    for (const other of this.panes) if (other !== pane) other.setView(pane.view, { propagate: false });
  }

  changed() {
    this.#refreshControls();
    if (!this.prefetched && this.panes.every((p) => p.fullLoaded || p.loadError)) {
      this.prefetched = true;
      this.#prefetch();
    }
  }

  // Warm the browser cache with the next case's images (exercises pass their URLs) once this
  // case is fully loaded, so moving on costs no wait on a slow link.
  #prefetch() {
    for (const url of this.data.prefetch || []) {
      fetch(url, { credentials: "same-origin", priority: "low" }).catch(() => {});
    }
  }

  // ---- marks -----------------------------------------------------------------------------------

  marksFor(imageId) { return this.marks.filter((m) => m.image_id === imageId); }
  referenceMarksFor(imageId) { return this.review ? this.reference.filter((m) => m.image_id === imageId) : []; }
  measurementsFor(imageId) { return this.measurements.filter((m) => m.imageId === imageId); }
  labelOf(value) { return (this.labels.find((l) => l.value === value) || { label: value }).label; }
  currentLabel() { return this.el(".vw-label").value || (this.labels[0] && this.labels[0].value); }

  #remember() { this.undoStack.push(JSON.stringify(this.marks)); if (this.undoStack.length > 200) this.undoStack.shift(); }

  // Pages that save marks themselves (exercise autosave) listen for this.
  #notify() { this.root.dispatchEvent(new CustomEvent("marks-changed", { detail: this.state().marks })); }

  // The page puts back marks the server has not acknowledged yet (kept on this device).
  setMarks(marks) {
    this.#remember();
    this.marks = marks.map((m) => ({ ...m }));
    this.selected = null;
    this.#redraw();
  }

  undo() {
    if (!this.undoStack.length) return;
    this.marks = JSON.parse(this.undoStack.pop());
    this.selected = null;
    this.dirty = true;
    this.#redraw();
    this.#notify();
  }

  #addMark(mark) {
    if (!mark) return;
    const refused = refusal(this.marks, mark);
    if (refused) {
      this.#refuse(_("Mark not added: %(reason)s.", { reason: refused }));
      return;
    }
    this.#clearRefusal();
    this.#remember();
    this.marks.push(mark);
    this.selected = mark;
    this.dirty = true;
    this.#setStatus(_("not saved"));
    this.#redraw();
    this.#notify();
  }

  // The status line is a polite live region. A refusal repeated word for word would not be
  // announced again, so the line is emptied first and the words come back a frame later.
  #refuse(text) {
    const status = this.el(".vw-status");
    this.refusal = text;
    if (status.textContent !== text) { status.textContent = text; return; }
    status.textContent = "";
    requestAnimationFrame(() => { if (this.refusal === text) status.textContent = text; });
  }

  // A mark that is added ends a refusal still shown (on the attempt page nothing else
  // writes the status line, so "Mark not added" would stay beside the new mark).
  #clearRefusal() {
    if (this.refusal === null) return;
    this.refusal = null;
    this.el(".vw-status").textContent = "";
  }

  #replaceMark(old, updated) {
    const i = this.marks.indexOf(old);
    if (i >= 0) this.marks[i] = updated;
    if (this.selected === old) this.selected = updated;
    this.dirty = true;
    this.#setStatus(_("not saved"));
    this.#notify();
  }

  deleteSelected() {
    if (!this.selected) return;
    this.#remember();
    this.marks = this.marks.filter((m) => m !== this.selected);
    this.selected = null;
    this.dirty = true;
    this.#setStatus(_("not saved"));
    this.#redraw();
    this.#notify();
  }

  // ---- tools and pointer handling ------------------------------------------------------------

  setTool(tool) {
    if (MARK_TOOLS.has(tool) && !this.editable) tool = "wl";
    if (tool === "select" && !this.editable) tool = "wl";
    this.tool = tool;
    for (const b of this.root.querySelectorAll("[data-tool]")) {
      b.setAttribute("aria-pressed", String(b.dataset.tool === tool));
      b.hidden = (MARK_TOOLS.has(b.dataset.tool) || b.dataset.tool === "select") && !this.editable;
    }
    this.root.dataset.tool = tool;
  }

  #bindPane(pane) {
    const c = pane.overlay;
    c.addEventListener("pointerdown", (e) => this.#down(pane, e));
    c.addEventListener("pointermove", (e) => this.#move(pane, e));
    c.addEventListener("pointerup", (e) => this.#up(pane, e));
    c.addEventListener("pointercancel", (e) => this.#up(pane, e));
    c.addEventListener("dblclick", (e) => e.preventDefault());
    c.addEventListener("contextmenu", (e) => e.preventDefault());
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      const [sx, sy] = this.#local(pane, e);
      pane.zoomAt(Math.exp(-e.deltaY * 0.0015), sx, sy);
    }, { passive: false });
  }

  #local(pane, e) {
    const box = pane.overlay.getBoundingClientRect();
    return [e.clientX - box.left, e.clientY - box.top];
  }

  #imagePoint(pane, e) { return clampPoint(pane.toImage(this.#local(pane, e)), pane.columns, pane.rows); }

  #down(pane, e) {
    this.active = pane;
    pane.overlay.focus({ preventScroll: true });
    pane.overlay.setPointerCapture(e.pointerId);
    this.pointers.set(e.pointerId, this.#local(pane, e));
    if (this.pointers.size === 2) { this.gesture = { kind: "pinch", pane, ...this.#pinch() }; return; }
    const tool = e.button === 1 || this.spaceDown ? "pan" : e.button === 2 ? "wl" : this.tool;
    const start = this.#local(pane, e);
    const startImage = this.#imagePoint(pane, e);
    this.gesture = { kind: tool, pane, start, last: start, startImage, window: { ...pane.window },
                     view: { ...pane.view } };
    if (tool === "select") this.#beginSelect(pane, startImage);
    if (tool === "measure") this.draft = this.#measureDraft(pane, startImage);
    if (MARK_TOOLS.has(tool)) this.draft = this.#markDraft(pane, tool, startImage);
  }

  #pinch() {
    const [a, b] = [...this.pointers.values()];
    return { distance: Math.hypot(a[0] - b[0], a[1] - b[1]), centre: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2] };
  }

  #move(pane, e) {
    if (this.loupeOn) this.#showLoupe(pane, e);
    if (!this.pointers.has(e.pointerId)) return;
    this.pointers.set(e.pointerId, this.#local(pane, e));
    const g = this.gesture;
    if (!g) return;
    if (g.kind === "pinch") {
      const now = this.#pinch();
      pane.zoomAt(now.distance / g.distance, ...now.centre);
      pane.panBy(now.centre[0] - g.centre[0], now.centre[1] - g.centre[1]);
      Object.assign(g, now);
      return;
    }
    const p = this.#local(pane, e);
    const [dx, dy] = [p[0] - g.last[0], p[1] - g.last[1]];
    g.last = p;
    const point = this.#imagePoint(pane, e);
    if (g.kind === "pan") pane.panBy(dx, dy);
    else if (g.kind === "zoom") pane.zoomAt(Math.exp(-dy * 0.01), ...g.start);
    else if (g.kind === "wl") this.#dragWindow(pane, p[0] - g.start[0], p[1] - g.start[1], g.window);
    else if (g.kind === "select") this.#dragSelect(pane, point);
    else if (this.draft) { this.draft.update(point); pane.drawOverlay(); }
  }

  #up(pane, e) {
    this.pointers.delete(e.pointerId);
    const g = this.gesture;
    if (this.pointers.size > 0) return;
    this.gesture = null;
    if (!g) return;
    if (this.draft && this.draft.pane === pane) {
      const done = this.draft.finish(this.#imagePoint(pane, e));
      this.draft = null;
      if (done && done.measurement) this.measurements.push(done.measurement);
      else if (done) this.#addMark(done);
      pane.drawOverlay();
    }
    if (g.kind === "select" && this.selectDrag && this.selectDrag.changed) this.#redraw();
    this.selectDrag = null;
  }

  #dragWindow(pane, dx, dy, from) {
    // Horizontal = width, vertical = centre, scaled to the image's value range.
    const p = pane.params;
    const range = Math.max(1, (p.stored_max - p.stored_min) * Math.abs(p.rescale_slope || 1));
    const k = range / 400;
    this.setWindow(from.center + dy * k, Math.max(1, from.width + dx * k));
  }

  setWindow(center, width) {
    for (const pane of this.panes) pane.setWindow(center, width);
    this.#refreshControls();
  }

  #beginSelect(pane, point) {
    const tolerance = 6 / pane.view.scale;
    const sel = this.selected && this.selected.image_id === pane.image.id ? this.selected : null;
    const handle = sel && handles(sel).find((h) => Math.hypot(h.at[0] - point[0], h.at[1] - point[1]) <= tolerance);
    const target = handle ? sel
      : [...this.marksFor(pane.image.id)].reverse().find((m) => hits(m, point, tolerance)) || null;
    this.selected = target;
    if (target) this.#remember();
    this.selectDrag = target ? { mark: target, handle: handle ? handle.id : null, from: point, original: target, changed: false } : null;
    this.#refreshControls();
    pane.drawOverlay();
  }

  #dragSelect(pane, point) {
    const s = this.selectDrag;
    if (!s) return;
    const updated = s.handle !== null
      ? resized(s.original, s.handle, point)
      : moved(s.original, point[0] - s.from[0], point[1] - s.from[1], pane.columns, pane.rows);
    this.#replaceMark(s.mark, updated);
    s.mark = updated;
    s.changed = true;
    pane.drawOverlay();
  }

  #markDraft(pane, tool, start) {
    const finding = this.currentLabel();
    const imageId = pane.image.id;
    const path = [start];
    let end = start;
    return {
      pane,
      update(p) { end = p; if (tool === "polygon") path.push(p); },
      finish(p) {
        end = p;
        if (tool === "point") return pointMark(finding, end, imageId);
        if (tool === "polygon") { path.push(p); return polygonMark(finding, path, imageId, 1 / pane.view.scale); }
        if (Math.abs(end[0] - start[0]) * pane.view.scale < 3 || Math.abs(end[1] - start[1]) * pane.view.scale < 3) return null;
        return boxMark(tool, finding, start, end, imageId);
      },
      draw(ctx, toScreen) {
        ctx.save();
        ctx.strokeStyle = STYLES.own.stroke;
        ctx.setLineDash([4, 3]);
        ctx.beginPath();
        if (tool === "polygon") path.forEach((q, i) => { const [x, y] = toScreen(q); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
        else if (tool !== "point") {
          const [x0, y0] = toScreen(start), [x1, y1] = toScreen(end);
          if (tool === "ellipse") ctx.ellipse((x0 + x1) / 2, (y0 + y1) / 2, Math.abs(x1 - x0) / 2, Math.abs(y1 - y0) / 2, 0, 0, 2 * Math.PI);
          else ctx.rect(x0, y0, x1 - x0, y1 - y0);
        }
        ctx.stroke();
        ctx.restore();
      },
    };
  }

  #measureDraft(pane, start) {
    const imageId = pane.image.id;
    let end = start;
    return {
      pane,
      update(p) { end = p; },
      finish(p) { end = p; return { measurement: { imageId, from: start, to: end } }; },
      draw(ctx, toScreen) {
        const [x0, y0] = toScreen(start), [x1, y1] = toScreen(end);
        ctx.save(); ctx.strokeStyle = "#9dff5a"; ctx.setLineDash([4, 3]);
        ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke(); ctx.restore();
      },
    };
  }

  #showLoupe(pane, e) {
    const loupe = this.loupe;
    const [sx, sy] = this.#local(pane, e);
    const box = pane.el.getBoundingClientRect();
    loupe.style.left = `${box.left + window.scrollX + sx + 20}px`;
    loupe.style.top = `${box.top + window.scrollY + sy + 20}px`;
    pane.drawLoupe(loupe, sx, sy);
  }

  toggleLoupe() {
    this.loupeOn = !this.loupeOn;
    if (!this.loupe) {
      this.loupe = document.createElement("canvas");
      this.loupe.className = "viewer-loupe";
      this.loupe.width = this.loupe.height = 240;
      document.body.append(this.loupe);
    }
    this.loupe.hidden = !this.loupeOn;
    this.root.querySelector('[data-action="loupe"]').setAttribute("aria-pressed", String(this.loupeOn));
  }

  // ---- toolbar, controls, keyboard -----------------------------------------------------------

  #bindToolbar() {
    for (const b of this.root.querySelectorAll("[data-tool]")) b.addEventListener("click", () => this.setTool(b.dataset.tool));
    for (const b of this.root.querySelectorAll("[data-action]")) b.addEventListener("click", () => this.action(b.dataset.action));
    this.el(".vw-layout").addEventListener("change", (e) => this.setLayout(e.target.value));
    this.el(".vw-preset").addEventListener("change", (e) => {
      const w = this.active.params.windows[Number(e.target.value)];
      if (w) this.setWindow(w.center, w.width);
    });
    const numeric = () => {
      const c = Number(this.el(".vw-center").value), w = Number(this.el(".vw-width").value);
      if (Number.isFinite(c) && Number.isFinite(w) && w >= 1) this.setWindow(c, w);
    };
    this.el(".vw-center").addEventListener("change", numeric);
    this.el(".vw-width").addEventListener("change", numeric);
    const labelSelect = this.el(".vw-label");
    labelSelect.replaceChildren(...this.labels.map((l) => new Option(l.label, l.value)));
    labelSelect.addEventListener("change", () => {
      if (this.selected) { this.#remember(); this.#replaceMark(this.selected, { ...this.selected, finding: labelSelect.value }); this.#redraw(); }
    });
    this.el(".vw-confidence").addEventListener("change", (e) => {
      if (!this.selected) return;
      const value = e.target.value === "" ? undefined : Math.min(100, Math.max(0, Number(e.target.value)));
      this.#remember();
      const { confidence, ...rest } = this.selected;
      this.#replaceMark(this.selected, value === undefined ? rest : { ...rest, confidence: value });
      this.#redraw();
    });
    for (const sel of [".vw-label-wrap", ".vw-confidence-wrap"]) this.el(sel).hidden = !this.editable;
  }

  action(name) {
    const pane = this.active || this.panes[0];
    const actions = {
      fit: () => pane.fit(),
      one: () => pane.oneToOne(),
      loupe: () => this.toggleLoupe(),
      invert: () => { const v = !pane.invert; for (const p of this.panes) p.setInvert(v); },
      reset: () => { for (const p of this.panes) { p.setInvert(Boolean(p.params.invert)); p.fit(); }
                     const w = pane.params.default_window; this.setWindow(w.center, w.width); },
      undo: () => this.undo(),
      help: () => { this.el(".viewer-help").hidden = !this.el(".viewer-help").hidden; },
    };
    if (actions[name]) actions[name]();
    this.#refreshControls();
  }

  #bindKeyboard() {
    document.addEventListener("keydown", (e) => {
      // A page's own shortcut (e.g. the attempt page's) already handled this key.
      if (e.defaultPrevented || e.isComposing) return;
      if (isTextEntry(e.target)) return;
      const key = e.key.toLowerCase();
      if ((e.ctrlKey || e.metaKey) && key === "z") { e.preventDefault(); this.undo(); return; }
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      // Keys a focused control needs for itself stay the browser's: arrows move through a
      // radio group, Space ticks a checkbox or presses a button, Enter follows a link.
      if (OWN_KEYS.has(e.key) && isControl(e.target)) return;
      if (key === " ") { this.spaceDown = true; e.preventDefault(); return; }
      if (KEYS[key]) this.setTool(KEYS[key]);
      else if (key === "f") this.action("fit");
      else if (key === "1") this.action("one");
      else if (key === "m") this.action("loupe");
      else if (key === "i") this.action("invert");
      else if (key === "0") this.action("reset");
      else if (key === "?") this.action("help");
      else if (key === "escape") { this.el(".viewer-help").hidden = true; this.selected = null; this.draft = null; this.#redraw(); }
      else if (key === "delete" || key === "backspace") { e.preventDefault(); this.deleteSelected(); }
      else return;
      e.preventDefault();
    });
    document.addEventListener("keyup", (e) => { if (e.key === " ") this.spaceDown = false; });
  }

  #refreshControls() {
    const pane = this.active || this.panes[0];
    if (!pane) return;
    const presets = this.el(".vw-preset");
    const windows = pane.params.windows || [];
    if (presets.options.length !== windows.length) {
      presets.replaceChildren(...windows.map((w, i) => new Option(w.label, String(i))));
    }
    const match = windows.findIndex((w) => w.center === pane.window.center && w.width === pane.window.width);
    presets.value = match >= 0 ? String(match) : "";
    this.el(".vw-center").value = String(Math.round(pane.window.center * 100) / 100);
    this.el(".vw-width").value = String(Math.round(pane.window.width * 100) / 100);
    if (this.selected) {
      this.el(".vw-label").value = this.selected.finding;
      this.el(".vw-confidence").value = this.selected.confidence ?? "";
    }
    this.root.querySelector('[data-action="invert"]').setAttribute("aria-pressed", String(pane.invert !== Boolean(pane.params.invert)));
    // Numbers set on the preview are not on screen yet: the readout says so and points to
    // the pane's notice (which window, and how far the full data has come).
    const pending = pane.windowPending && !pane.fullLoaded;
    for (const input of [this.el(".vw-center"), this.el(".vw-width")]) {
      if (pending) input.setAttribute("aria-describedby", pane.notice.id);
      else input.removeAttribute("aria-describedby");
      input.classList.toggle("pending", pending);
    }
    this.el(".vw-wl-pending").hidden = !pending;
  }

  #legend() {
    const legend = this.el(".viewer-legend");
    if (!this.review) return;
    const kinds = ["own", "reference", "hit", "miss", "false"];
    legend.replaceChildren(...kinds.map((k) => {
      const item = document.createElement("span");
      item.className = `legend-${k}`;
      item.textContent = `— ${STYLES[k].label}`; // a line sample, then the label
      return item;
    }));
    legend.hidden = false;
  }

  #setStatus(text) {
    if (this.data.autosave) return; // the attempt page shows its own save state
    // Beside a reference read the form's Save stores the marks.
    this.el(".vw-status").textContent = this.data.form_save ? _("marks changed: Save read stores them") : text;
  }

  #redraw() { for (const p of this.panes) p.drawOverlay(); this.#refreshControls(); }

  // A snapshot for tests and for the exercise pages that embed the viewer.
  state() {
    return {
      tool: this.tool, layout: this.layout, marks: structuredClone(this.marks),
      measurements: structuredClone(this.measurements), dirty: Boolean(this.dirty),
      panes: this.panes.map((p) => ({
        imageId: p.image.id, view: { ...p.view }, window: { ...p.window }, invert: p.invert,
        previewShown: p.previewShown, fullLoaded: p.fullLoaded, progress: p.progress,
        stage: p.stage, stages: [...p.stageHistory], stageTimes: { ...p.stageTimes },
        renderer: p.renderer ? p.renderer.kind : null, error: p.loadError || null,
      })),
    };
  }
}
