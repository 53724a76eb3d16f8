// One image on screen, in stages that only ever get better (FORMAT.md, "What the browser
// viewer does"): the preview, the full-resolution JPEG, the lossy 16-bit data, the exact
// 16-bit data; window/level on either 16-bit stage; zoom and pan as a view transform; an
// overlay canvas for marks and measurements.
import { _ } from "../../../static/js/i18n.js";
import { decode16, prepareFor, warmUp } from "./htj2k.js";
import { createRenderer } from "./render.js";
import { drawMark, STYLES, distance } from "./marks.js";

const MIN_SCALE = 0.02, MAX_SCALE = 40;
let noticeIds = 0;

// What is on screen, in the order the stages arrive; the label is shown and announced.
export const STAGES = {
  none: { rank: 0, label: _("Loading"), bits: 0 },
  preview: { rank: 1, label: _("Preview"), bits: 8 },
  display: { rank: 2, label: _("Full resolution"), bits: 8 },
  approx: { rank: 3, label: _("16-bit (progressive)"), bits: 16 },
  exact: { rank: 4, label: _("Exact 16-bit"), bits: 16 },
};

// "1.2 of 5.5 MB (22 %)": bytes as well as percent, so a slow link is seen to be moving.
function megabytes(bytes) { return (bytes / 1e6).toFixed(1); }
export function progressText(received, total) {
  if (!total) {
    return received ? _("%(received)s MB received", { received: megabytes(received) }) : _("waiting for the first bytes");
  }
  return _("%(received)s of %(total)s MB (%(percent)s)", {
    received: megabytes(received), total: megabytes(total), percent: `${Math.floor((received / total) * 100)} %`,
  });
}

export class Pane {
  constructor(container, image, viewer) {
    this.image = image;
    this.viewer = viewer;
    this.params = image.params;
    this.columns = image.columns;
    this.rows = image.rows;
    this.view = { scale: 1, tx: 0, ty: 0 }; // screen (CSS px) = image * scale + t
    this.window = { ...this.params.default_window };
    this.invert = Boolean(this.params.invert);
    this.renderer = null;
    this.previewImage = null; // the 8-bit image on screen: the preview, then the full JPEG
    this.stage = "none";
    this.stageHistory = []; // every stage reached, in order (they never go backwards)
    this.stageTimes = {}; // ms since the page started loading, per stage (for the bench)
    this.fullLoaded = false; // the exact data is on screen
    this.previewShown = false;
    this.progress = 0;
    this.received = 0;
    this.total = 0;
    // True while the window shown in the readout is one the user set on the 8-bit preview:
    // the preview cannot show it, the full data will.
    this.windowPending = false;

    this.el = document.createElement("div");
    this.el.className = "pane";
    this.el.dataset.imageId = image.id;
    this.previewCanvas = this.#canvas("pane-preview");
    this.imageCanvas = this.#canvas("pane-image");
    this.overlay = this.#canvas("pane-overlay");
    this.overlay.tabIndex = 0;
    this.caption = document.createElement("div");
    this.caption.className = "pane-caption";
    this.caption.textContent = image.prior ? _("%(view)s (prior)", { view: image.view }) : `${image.view}`;
    this.progressEl = document.createElement("div");
    this.progressEl.className = "pane-progress";
    this.progressEl.setAttribute("role", "progressbar");
    this.progressEl.setAttribute("aria-label", _("Image data"));
    this.stageEl = document.createElement("div");
    this.stageEl.className = "pane-stage";
    this.stageEl.setAttribute("role", "status");
    this.stageEl.textContent = STAGES.none.label;
    this.progressEl.setAttribute("aria-valuemin", "0");
    this.progressEl.setAttribute("aria-valuemax", "100");
    this.notice = document.createElement("div");
    this.notice.className = "pane-notice";
    this.notice.id = `pane-notice-${++noticeIds}`;
    this.notice.setAttribute("role", "status");
    this.notice.hidden = true;
    this.el.append(this.previewCanvas, this.imageCanvas, this.overlay, this.caption, this.stageEl,
                   this.progressEl, this.notice);
    container.append(this.el);
    this.resizeObserver = new ResizeObserver(() => this.#resize());
    this.resizeObserver.observe(this.el);
  }

  #canvas(cls) {
    const c = document.createElement("canvas");
    c.className = cls;
    return c;
  }

  get dpr() { return window.devicePixelRatio || 1; }
  get width() { return this.el.clientWidth; }
  get height() { return this.el.clientHeight; }

  #resize() {
    const w = Math.max(1, Math.round(this.width * this.dpr));
    const h = Math.max(1, Math.round(this.height * this.dpr));
    for (const c of [this.previewCanvas, this.overlay]) { c.width = w; c.height = h; }
    if (this.renderer) this.renderer.resize(w, h); else { this.imageCanvas.width = w; this.imageCanvas.height = h; }
    if (!this.fitted) { this.fit(); this.fitted = true; } else this.draw();
  }

  // ---- loading: preview first, full data when it arrives -----------------------------------

  async load() {
    const preview = new Image();
    preview.decoding = "async";
    preview.src = this.image.preview_url;
    const previewReady = preview.decode().then(() => {
      if (this.#reach("preview")) { this.previewImage = preview; this.previewShown = true; this.drawNow(); }
      this.viewer.changed(this);
    }).catch(() => {});
    // On a slow link the later stages would compete with the preview for bandwidth: ask for
    // them once the preview is on screen (or after 3 s, whichever comes first), one after
    // the other, so each gets the whole link.
    await Promise.race([previewReady, new Promise((r) => setTimeout(r, 3000))]);
    if (this.image.exact_url) await this.#loadStages();
    else await this.#loadLegacy();
    this.progressEl.hidden = !this.loadError;
    this.#showNotice();
    this.viewer.changed(this);
  }

  async #loadStages() {
    try {
      const bytes = await this.#fetchWithProgress(this.image.display_url, STAGES.display.label);
      const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/jpeg" }));
      if (this.#reach("display")) { this.previewImage = bitmap; this.previewShown = true; this.draw(); }
    } catch (error) {
      this.stageError = String(error); // the preview stays; the 16-bit stages still come
    }
    warmUp();
    for (const stage of ["approx", "exact"]) {
      try {
        const bytes = await this.#fetchWithProgress(this.image[`${stage}_url`], STAGES[stage].label,
                                                    (type) => prepareFor(type));
        this.#show16(await decode16(bytes), stage);
      } catch (error) {
        if (stage === "exact") this.#failed(error);
        else this.stageError = String(error); // the exact data may still come
      }
    }
  }

  // An image stored before HTJ2K and not rebuilt yet: the preview, then its 16-bit PNG.
  async #loadLegacy() {
    try {
      // Loaded only for such images: the others never pay for the PNG decoder's bytes.
      const { decodePng16 } = await import("./png16.js");
      const bytes = await this.#fetchWithProgress(this.image.full_url, STAGES.exact.label);
      this.#show16(await decodePng16(bytes), "exact");
    } catch (error) {
      this.#failed(error);
    }
  }

  #failed(error) {
    this.progressEl.textContent = this.renderer
      ? _("The exact data is not available: window/level works on the 16-bit (progressive) data.")
      : _("Full resolution not available: showing the preview.");
    this.loadError = String(error);
  }

  // Moves to `stage` unless a better one is already on screen; says which one it is.
  #reach(stage) {
    if (STAGES[stage].rank <= STAGES[this.stage].rank) return false;
    this.stage = stage;
    this.stageHistory.push(stage);
    this.stageTimes[stage] = performance.now();
    this.stageEl.textContent = STAGES[stage].label;
    this.el.dataset.stage = stage;
    this.viewer.changed(this);
    return true;
  }

  #show16(decoded, stage) {
    if (STAGES[stage].rank <= STAGES[this.stage].rank) return;
    const renderer = createRenderer(this.imageCanvas, decoded, this.params,
                                    { prefer: this.viewer.options.renderer || "webgl2" });
    if (this.renderer) this.renderer.destroy();
    this.renderer = renderer;
    this.renderer.resize(this.imageCanvas.width, this.imageCanvas.height);
    this.renderer.setInvert(this.invert);
    this.renderer.setWindow(this.window.center, this.window.width);
    this.#reach(stage);
    this.fullLoaded = stage === "exact";
    this.windowPending = false;
    this.previewCanvas.hidden = true;
    this.#showNotice();
    this.draw();
  }

  // What the user is told when the window/level they set cannot be shown yet: which window,
  // that the 8-bit preview cannot show it exactly, and how far the full data has come.
  #showNotice() {
    if (!this.windowPending || this.renderer) {
      this.notice.hidden = true;
      this.notice.textContent = "";
      return;
    }
    const c = Math.round(this.window.center * 100) / 100, w = Math.round(this.window.width * 100) / 100;
    this.notice.textContent = this.loadError
      ? _("Window centre %(centre)s, width %(width)s cannot be shown: the full-resolution data is not available, and the 8-bit preview keeps its default window.", { centre: c, width: w })
      : _("Showing an 8-bit preview at the default window (%(stage)s). The exact window (centre %(centre)s, width %(width)s) is applied when the full-resolution 16-bit data has arrived: %(progress)s.", {
        stage: STAGES[this.stage].label, centre: c, width: w, progress: progressText(this.received, this.total),
      });
    this.notice.hidden = false;
  }

  // `onType` gets the response's media type before its body has come.
  async #fetchWithProgress(url, label, onType = null) {
    this.received = 0;
    this.progress = 0;
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`image request failed (${response.status})`);
    if (onType) onType(response.headers.get("Content-Type") || "");
    const total = Number(response.headers.get("Content-Length")) || 0;
    const reader = response.body.getReader();
    const chunks = [];
    let received = 0;
    this.total = total;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      received += value.length;
      this.received = received;
      this.progress = total ? received / total : 0;
      this.progressEl.textContent = _("%(stage)s: %(progress)s", { stage: label, progress: progressText(received, total) });
      this.progressEl.style.setProperty("--progress", this.progress);
      if (total) this.progressEl.setAttribute("aria-valuenow", String(Math.floor(this.progress * 100)));
      if (this.windowPending) this.#showNotice();
    }
    const out = new Uint8Array(received);
    let offset = 0;
    for (const c of chunks) { out.set(c, offset); offset += c.length; }
    this.progressEl.textContent = "";
    return out.buffer;
  }

  // ---- view transform ------------------------------------------------------------------------

  toScreen([x, y]) { return [x * this.view.scale + this.view.tx, y * this.view.scale + this.view.ty]; }
  toImage([sx, sy]) { return [(sx - this.view.tx) / this.view.scale, (sy - this.view.ty) / this.view.scale]; }

  setView(view, { propagate = true } = {}) {
    this.view = { scale: Math.min(Math.max(view.scale, MIN_SCALE), MAX_SCALE), tx: view.tx, ty: view.ty };
    this.draw();
    if (propagate) this.viewer.viewChanged(this);
  }

  fit() {
    const scale = Math.min(this.width / this.columns, this.height / this.rows) || 1;
    this.setView({ scale, tx: (this.width - this.columns * scale) / 2, ty: (this.height - this.rows * scale) / 2 });
  }

  oneToOne() {
    // One image pixel per device pixel, keeping the centre of the screen where it is.
    this.zoomAt(1 / this.dpr / this.view.scale, this.width / 2, this.height / 2);
  }

  zoomAt(factor, sx, sy) {
    const scale = Math.min(Math.max(this.view.scale * factor, MIN_SCALE), MAX_SCALE);
    const [ix, iy] = this.toImage([sx, sy]);
    this.setView({ scale, tx: sx - ix * scale, ty: sy - iy * scale });
  }

  panBy(dx, dy) { this.setView({ ...this.view, tx: this.view.tx + dx, ty: this.view.ty + dy }); }

  // ---- window/level --------------------------------------------------------------------------

  setWindow(center, width) {
    this.window = { ...this.window, center, width: Math.max(1, width) };
    const d = this.params.default_window;
    // The preview already shows the default window; any other waits for the full data.
    if (this.renderer) this.renderer.setWindow(this.window.center, this.window.width);
    else this.windowPending = this.window.center !== d.center || this.window.width !== d.width;
    this.#showNotice();
    this.draw();
  }

  setInvert(invert) {
    this.invert = invert;
    if (this.renderer) this.renderer.setInvert(invert);
    // Inverting 8-bit grey levels is exact, so the preview can show it at once.
    this.previewCanvas.style.filter = invert !== Boolean(this.params.invert) ? "invert(1)" : "";
    this.draw();
  }

  // ---- drawing -------------------------------------------------------------------------------

  draw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = null; this.drawNow(); });
  }

  drawNow() {
    const d = this.dpr;
    if (this.renderer) {
      this.renderer.setView({ scale: this.view.scale * d, tx: this.view.tx * d, ty: this.view.ty * d });
      this.renderer.render();
    } else if (this.previewImage) {
      const ctx = this.previewCanvas.getContext("2d");
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, this.previewCanvas.width, this.previewCanvas.height);
      // preview -> image pixels (an <img> preview, or the full JPEG as an ImageBitmap)
      const k = this.columns / (this.previewImage.naturalWidth || this.previewImage.width);
      ctx.setTransform(this.view.scale * k * d, 0, 0, this.view.scale * k * d, this.view.tx * d, this.view.ty * d);
      ctx.imageSmoothingEnabled = this.view.scale * k < 2;
      ctx.drawImage(this.previewImage, 0, 0);
    }
    this.drawOverlay();
  }

  drawOverlay() {
    const ctx = this.overlay.getContext("2d");
    const d = this.dpr;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    ctx.setTransform(d, 0, 0, d, 0, 0);
    const toScreen = (p) => this.toScreen(p);
    const viewer = this.viewer;
    for (const mark of viewer.referenceMarksFor(this.image.id)) {
      drawMark(ctx, mark, toScreen, STYLES[mark.status === "miss" ? "miss" : "reference"],
               { label: viewer.labelOf(mark.finding) });
    }
    for (const mark of viewer.marksFor(this.image.id)) {
      const style = STYLES[mark.status === "hit" ? "hit" : mark.status === "false" ? "false" : "own"];
      drawMark(ctx, mark, toScreen, style, { selected: mark === viewer.selected,
                                            label: viewer.labelOf(mark.finding) });
    }
    for (const m of viewer.measurementsFor(this.image.id)) this.#drawMeasurement(ctx, m);
    const draft = viewer.draft;
    if (draft && draft.pane === this) draft.draw(ctx, toScreen);
  }

  #drawMeasurement(ctx, m) {
    const [x0, y0] = this.toScreen(m.from), [x1, y1] = this.toScreen(m.to);
    const { value, unit } = distance(m.from, m.to, this.params.pixel_spacing_mm);
    ctx.save();
    ctx.strokeStyle = "#9dff5a";
    ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
    ctx.font = "13px system-ui, sans-serif";
    ctx.fillStyle = "#9dff5a";
    ctx.fillText(`${value.toFixed(unit === "mm" ? 1 : 0)} ${unit}`, x1 + 6, y1 - 6);
    ctx.restore();
  }

  // The grey level the screen shows at CSS pixel (sx, sy): for tests and the loupe.
  sample(sx, sy) {
    this.drawNow();
    const d = this.dpr;
    const source = this.renderer ? this.imageCanvas : this.previewCanvas;
    const probe = document.createElement("canvas");
    probe.width = probe.height = 1;
    const ctx = probe.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(source, Math.floor(sx * d), Math.floor(sy * d), 1, 1, 0, 0, 1, 1);
    return ctx.getImageData(0, 0, 1, 1).data[0];
  }

  drawLoupe(loupe, sx, sy, magnification = 3) {
    this.drawNow();
    const d = this.dpr;
    const source = this.renderer ? this.imageCanvas : this.previewCanvas;
    const size = loupe.width / magnification;
    const ctx = loupe.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, loupe.width, loupe.height);
    ctx.drawImage(source, sx * d - size / 2, sy * d - size / 2, size, size, 0, 0, loupe.width, loupe.height);
  }

  destroy() {
    this.resizeObserver.disconnect();
    if (this.renderer) this.renderer.destroy();
    this.el.remove();
  }
}
