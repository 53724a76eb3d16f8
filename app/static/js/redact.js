// Draw redaction rectangles over a preview; submit them in image pixel coordinates.
for (const section of document.querySelectorAll("section.redact")) {
  const img = section.querySelector("img.preview");
  const canvas = section.querySelector("canvas.redact-canvas");
  const field = section.querySelector("input.redact-rectangles");
  const list = section.querySelector(".redact-list");
  const columns = Number(section.dataset.columns);
  const rows = Number(section.dataset.rows);
  const rects = []; // image pixel coordinates [x, y, w, h]
  let start = null;

  const scale = () => columns / img.clientWidth; // image pixels per CSS pixel

  function sync() {
    canvas.width = img.clientWidth;
    canvas.height = img.clientHeight;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "rgba(220, 40, 40, 0.45)";
    ctx.strokeStyle = "#ff3030";
    for (const [x, y, w, h] of rects) {
      const s = scale();
      ctx.fillRect(x / s, y / s, w / s, h / s);
      ctx.strokeRect(x / s, y / s, w / s, h / s);
    }
    field.value = rects.map((r) => r.join(",")).join(";");
    list.textContent = rects.length ? field.value : "none";
  }

  function point(event) {
    const box = canvas.getBoundingClientRect();
    const s = scale();
    const x = Math.round((event.clientX - box.left) * s);
    const y = Math.round((event.clientY - box.top) * s);
    return [Math.max(0, Math.min(columns, x)), Math.max(0, Math.min(rows, y))];
  }

  canvas.addEventListener("pointerdown", (e) => { start = point(e); canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointerup", (e) => {
    if (!start) return;
    const [x2, y2] = point(e);
    const [x1, y1] = start;
    start = null;
    const w = Math.abs(x2 - x1), h = Math.abs(y2 - y1);
    if (w > 0 && h > 0) rects.push([Math.min(x1, x2), Math.min(y1, y2), w, h]);
    sync();
  });
  section.querySelector(".redact-clear").addEventListener("click", () => { rects.length = 0; sync(); });
  if (img.complete) sync(); else img.addEventListener("load", sync);
  window.addEventListener("resize", sync);
}
