// Pixel review: window and zoom the preview to find faint burned-in text, draw rectangles
// over it (outlined live while dragging), remove any before applying, and confirm before the
// rectangles are burned into the stored image. Rectangles are kept in image pixel
// coordinates, so zoom and window changes never move them.
import { _ } from "./i18n.js";

const ZOOMS = [1, 1.5, 2, 3, 4, 6];

function windowLut(level, width) {
  // Window on the preview's 8-bit display values: level is the centre, width the range
  // spread over black..white (256 = as stored).
  const lut = new Uint8ClampedArray(256);
  const low = level - width / 2;
  for (let v = 0; v < 256; v++) lut[v] = ((v - low) / width) * 255;
  return lut;
}

function setUp(section) {
  const source = section.querySelector("img.redact-source");
  const shown = section.querySelector("canvas.redact-image");
  const overlay = section.querySelector("canvas.redact-canvas");
  const stage = section.querySelector(".redact-stage");
  const field = section.querySelector("input.redact-rectangles");
  const list = section.querySelector(".redact-list");
  const empty = section.querySelector(".redact-empty");
  const level = section.querySelector("input.redact-level");
  const width = section.querySelector("input.redact-width");
  const zoomLabel = section.querySelector(".redact-zoom-level");
  const dialog = section.querySelector("dialog.redact-confirm");
  const columns = Number(section.dataset.columns);
  const rows = Number(section.dataset.rows);
  const rects = []; // [x, y, w, h] in image pixels
  let dragging = null; // {start: [x, y], end: [x, y]} while the pointer is down
  let zoom = 0; // index into ZOOMS
  let selected = -1; // a rectangle clicked on, removed with Delete
  let original = null; // the preview's grey values, read once

  const imageScale = () => columns / overlay.clientWidth; // image pixels per CSS pixel

  function fitWidth() {
    // 100 % shows the whole image: as wide as the section, as tall as most of the window.
    const tall = Math.max(300, window.innerHeight * 0.8 - 4);
    return Math.max(100, Math.min(section.clientWidth || 640, (tall * columns) / rows));
  }

  function layout() {
    const cssWidth = Math.round(fitWidth() * ZOOMS[zoom]);
    stage.style.width = `${cssWidth}px`;
    const cssHeight = Math.round((cssWidth * rows) / columns);
    stage.style.height = `${cssHeight}px`;
    overlay.width = cssWidth;
    overlay.height = cssHeight;
    zoomLabel.textContent = `${Math.round(ZOOMS[zoom] * 100)} %`;
    section.querySelector(".redact-zoom-in").disabled = zoom === ZOOMS.length - 1;
    section.querySelector(".redact-zoom-out").disabled = zoom === 0;
    drawRects();
  }

  function render() {
    if (!original) return;
    const lut = windowLut(Number(level.value), Number(width.value));
    const ctx = shown.getContext("2d");
    const out = ctx.createImageData(shown.width, shown.height);
    for (let i = 0; i < original.length; i++) {
      const v = lut[original[i]];
      out.data[4 * i] = v; out.data[4 * i + 1] = v; out.data[4 * i + 2] = v; out.data[4 * i + 3] = 255;
    }
    ctx.putImageData(out, 0, 0);
  }

  function loaded() {
    shown.width = source.naturalWidth;
    shown.height = source.naturalHeight;
    const ctx = shown.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(source, 0, 0);
    const rgba = ctx.getImageData(0, 0, shown.width, shown.height).data;
    original = new Uint8Array(rgba.length / 4);
    for (let i = 0; i < original.length; i++) original[i] = rgba[4 * i];
    render();
    layout();
    section.dataset.ready = "1";
  }

  function current() {
    if (!dragging) return null;
    const [x1, y1] = dragging.start;
    const [x2, y2] = dragging.end;
    return [Math.min(x1, x2), Math.min(y1, y2), Math.abs(x2 - x1), Math.abs(y2 - y1)];
  }

  function drawRects() {
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    const s = imageScale();
    ctx.lineWidth = 2;
    ctx.font = "bold 14px sans-serif";
    rects.forEach(([x, y, w, h], i) => {
      ctx.fillStyle = "rgba(220, 40, 40, 0.45)";
      ctx.strokeStyle = i === selected ? "#ffffff" : "#ff3030";
      ctx.lineWidth = i === selected ? 4 : 2;
      ctx.setLineDash([]);
      ctx.fillRect(x / s, y / s, w / s, h / s);
      ctx.strokeRect(x / s, y / s, w / s, h / s);
      ctx.fillStyle = "#fff";
      ctx.fillText(String(i + 1), x / s + 3, y / s + 15);
    });
    const live = current();
    if (live) {
      // The rectangle being dragged: a dashed outline that follows the pointer.
      const [x, y, w, h] = live;
      ctx.strokeStyle = "#ffd400";
      ctx.lineWidth = 2;
      ctx.setLineDash([6, 4]);
      ctx.strokeRect(x / s, y / s, w / s, h / s);
    }
    overlay.dataset.dragging = live ? live.join(",") : "";
  }

  function syncList() {
    field.value = rects.map((r) => r.join(",")).join(";");
    list.replaceChildren(...rects.map(([x, y, w, h], i) => {
      const item = document.createElement("li");
      if (i === selected) item.setAttribute("aria-current", "true");
      item.append(_("x %(x)s, y %(y)s: %(width)s × %(height)s px", { x, y, width: w, height: h }));
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "secondary";
      remove.textContent = _("Remove");
      remove.setAttribute("aria-label", _("Remove rectangle %(number)s", { number: i + 1 }));
      remove.addEventListener("click", () => removeAt(i));
      item.append(remove);
      return item;
    }));
    empty.hidden = rects.length > 0;
    section.querySelector(".redact-open").disabled = rects.length === 0;
    section.querySelector(".redact-clear").disabled = rects.length === 0;
  }

  function changed() { syncList(); drawRects(); }

  function removeAt(i) {
    rects.splice(i, 1);
    selected = -1;
    changed();
  }

  function rectAt([px, py]) {
    // The last drawn rectangle under the point (it is drawn on top).
    for (let i = rects.length - 1; i >= 0; i--) {
      const [x, y, w, h] = rects[i];
      if (px >= x && px <= x + w && py >= y && py <= y + h) return i;
    }
    return -1;
  }

  function point(event) {
    const box = overlay.getBoundingClientRect();
    const s = columns / box.width;
    const x = Math.round((event.clientX - box.left) * s);
    const y = Math.round((event.clientY - box.top) * s);
    return [Math.max(0, Math.min(columns, x)), Math.max(0, Math.min(rows, y))];
  }

  overlay.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    const start = point(e);
    dragging = { start, end: start };
    overlay.setPointerCapture(e.pointerId);
    drawRects();
  });
  overlay.addEventListener("pointermove", (e) => {
    if (!dragging) return;
    dragging.end = point(e);
    drawRects();
  });
  overlay.addEventListener("pointerup", (e) => {
    if (!dragging) return;
    dragging.end = point(e);
    const made = current();
    dragging = null;
    if (made[2] > 0 && made[3] > 0) {
      rects.push(made);
      selected = -1;
    } else {
      selected = rectAt(made); // a click: select the rectangle under it (Delete removes it)
      overlay.focus();
    }
    changed();
  });
  overlay.addEventListener("pointercancel", () => { dragging = null; drawRects(); });
  overlay.addEventListener("keydown", (e) => {
    if ((e.key === "Delete" || e.key === "Backspace") && selected >= 0) {
      e.preventDefault();
      removeAt(selected);
    } else if (e.key === "Escape") {
      dragging = null;
      selected = -1;
      drawRects();
      syncList();
    }
  });

  level.addEventListener("input", render);
  width.addEventListener("input", render);
  section.querySelector(".redact-zoom-in").addEventListener("click", () => {
    zoom = Math.min(ZOOMS.length - 1, zoom + 1); layout();
  });
  section.querySelector(".redact-zoom-out").addEventListener("click", () => {
    zoom = Math.max(0, zoom - 1); layout();
  });
  section.querySelector(".redact-reset").addEventListener("click", () => {
    level.value = "128"; width.value = "256"; zoom = 0; render(); layout();
  });
  section.querySelector(".redact-clear").addEventListener("click", () => {
    rects.length = 0; selected = -1; changed();
  });
  section.querySelector(".redact-open").addEventListener("click", () => {
    if (!rects.length) return;
    section.querySelector(".redact-confirm-text").textContent =
      rects.length === 1 ? _("1 rectangle will be burned into the stored image.")
        : _("%(count)s rectangles will be burned into the stored image.", { count: rects.length });
    dialog.showModal();
  });
  section.querySelector(".redact-cancel").addEventListener("click", () => dialog.close());

  syncList();
  if (source.complete && source.naturalWidth) loaded(); else source.addEventListener("load", loaded);
  window.addEventListener("resize", layout);
}

for (const section of document.querySelectorAll("section.redact")) setUp(section);
