// Lesion marks and measurements in image pixel coordinates: geometry, hit testing, drawing.
// Image pixel (0, 0) is the top-left corner of the first pixel; pixel (i, j) covers
// [i, i+1) x [j, j+1). Nothing here depends on zoom, pan or screen size.

import { _ } from "../../../static/js/i18n.js";

export const SHAPES = ["point", "ellipse", "rectangle", "polygon"];
// The server's limits per case (app/schemes/answers.py MAX_MARKS, MAX_MARK_VERTICES):
// the viewer refuses the mark that would pass them rather than have the save refused.
export const MAX_MARKS = 300;
export const MAX_MARK_VERTICES = 20000;

const vertices = (m) => (m.shape === "polygon" ? m.geometry.points.length : 0);

// Why `mark` cannot join `marks`, or null when it can.
export function refusal(marks, mark) {
  if (marks.length + 1 > MAX_MARKS) return _("at most %(count)s marks per case", { count: MAX_MARKS });
  const total = marks.reduce((n, m) => n + vertices(m), vertices(mark));
  if (total > MAX_MARK_VERTICES) return _("at most %(count)s polygon points per case", { count: MAX_MARK_VERTICES });
  return null;
}

const round1 = (v) => Math.round(v * 10) / 10;

export function clampPoint([x, y], columns, rows) {
  return [Math.min(Math.max(x, 0), columns), Math.min(Math.max(y, 0), rows)];
}

// A mark from a dragged box (ellipse/rectangle) in image coordinates.
export function boxMark(shape, finding, [x0, y0], [x1, y1], imageId) {
  const left = Math.min(x0, x1), top = Math.min(y0, y1);
  const width = Math.abs(x1 - x0), height = Math.abs(y1 - y0);
  const geometry = shape === "ellipse"
    ? { cx: round1(left + width / 2), cy: round1(top + height / 2),
        rx: round1(Math.max(width / 2, 0.5)), ry: round1(Math.max(height / 2, 0.5)) }
    : { x: round1(left), y: round1(top), width: round1(Math.max(width, 1)),
        height: round1(Math.max(height, 1)) };
  return { image_id: imageId, finding, shape, geometry };
}

export function pointMark(finding, [x, y], imageId) {
  return { image_id: imageId, finding, shape: "point", geometry: { x: round1(x), y: round1(y) } };
}

// Freehand path -> polygon: drop points closer than `minStep` image pixels, keep <= 200.
export function polygonMark(finding, path, imageId, minStep = 2) {
  const points = [];
  for (const p of path) {
    const last = points[points.length - 1];
    if (!last || Math.hypot(p[0] - last[0], p[1] - last[1]) >= minStep) points.push(p);
  }
  const step = Math.ceil(points.length / 200);
  const kept = points.filter((_, i) => i % step === 0).map(([x, y]) => [round1(x), round1(y)]);
  return kept.length >= 3
    ? { image_id: imageId, finding, shape: "polygon", geometry: { points: kept } }
    : null;
}

export function bounds(mark) {
  const g = mark.geometry;
  switch (mark.shape) {
    case "point": return { left: g.x, top: g.y, right: g.x, bottom: g.y };
    case "ellipse": return { left: g.cx - g.rx, top: g.cy - g.ry, right: g.cx + g.rx, bottom: g.cy + g.ry };
    case "rectangle": return { left: g.x, top: g.y, right: g.x + g.width, bottom: g.y + g.height };
    default: {
      const xs = g.points.map((p) => p[0]), ys = g.points.map((p) => p[1]);
      return { left: Math.min(...xs), top: Math.min(...ys), right: Math.max(...xs), bottom: Math.max(...ys) };
    }
  }
}

function insidePolygon([x, y], points) {
  let inside = false;
  for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
    const [xi, yi] = points[i], [xj, yj] = points[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

// Is image point p on the mark? `tolerance` is in image pixels (screen slop / scale).
export function hits(mark, [x, y], tolerance) {
  const g = mark.geometry;
  switch (mark.shape) {
    case "point": return Math.hypot(x - g.x, y - g.y) <= tolerance * 2;
    case "ellipse": {
      const dx = (x - g.cx) / (g.rx + tolerance), dy = (y - g.cy) / (g.ry + tolerance);
      return dx * dx + dy * dy <= 1;
    }
    case "rectangle":
      return x >= g.x - tolerance && x <= g.x + g.width + tolerance
        && y >= g.y - tolerance && y <= g.y + g.height + tolerance;
    default: return insidePolygon([x, y], g.points);
  }
}

// Resize handles (image coordinates): box corners for ellipses/rectangles, vertices for polygons.
export function handles(mark) {
  if (mark.shape === "polygon") return mark.geometry.points.map((p, i) => ({ id: i, at: p }));
  if (mark.shape === "point") return [];
  const b = bounds(mark);
  return [
    { id: "nw", at: [b.left, b.top] }, { id: "ne", at: [b.right, b.top] },
    { id: "sw", at: [b.left, b.bottom] }, { id: "se", at: [b.right, b.bottom] },
  ];
}

export function moved(mark, dx, dy, columns, rows) {
  const g = structuredClone(mark.geometry);
  const b = bounds(mark);
  // Keep the whole mark inside the image.
  dx = Math.min(Math.max(dx, -b.left), columns - b.right);
  dy = Math.min(Math.max(dy, -b.top), rows - b.bottom);
  if (mark.shape === "point") { g.x = round1(g.x + dx); g.y = round1(g.y + dy); }
  else if (mark.shape === "ellipse") { g.cx = round1(g.cx + dx); g.cy = round1(g.cy + dy); }
  else if (mark.shape === "rectangle") { g.x = round1(g.x + dx); g.y = round1(g.y + dy); }
  else g.points = g.points.map(([x, y]) => [round1(x + dx), round1(y + dy)]);
  return { ...mark, geometry: g };
}

export function resized(mark, handleId, point) {
  if (mark.shape === "polygon") {
    const g = structuredClone(mark.geometry);
    g.points[handleId] = point.map(round1);
    return { ...mark, geometry: g };
  }
  const b = bounds(mark);
  const fixed = { nw: [b.right, b.bottom], ne: [b.left, b.bottom], sw: [b.right, b.top], se: [b.left, b.top] }[handleId];
  return { ...boxMark(mark.shape, mark.finding, fixed, point, mark.image_id),
           ...(mark.confidence !== undefined ? { confidence: mark.confidence } : {}) };
}

// Distance between two image points: millimetres when the pixel spacing is known.
export function distance([x0, y0], [x1, y1], spacing) {
  if (spacing) {
    const [rowMm, colMm] = spacing;
    return { value: Math.hypot((x1 - x0) * colMm, (y1 - y0) * rowMm), unit: "mm" };
  }
  return { value: Math.hypot(x1 - x0, y1 - y0), unit: "px" };
}

// ---- drawing (screen space; `toScreen` maps image -> CSS pixels) ---------------------------

export const STYLES = {
  own: { stroke: "#39d0ff", dash: [], label: _("your mark") },
  reference: { stroke: "#ffb000", dash: [8, 5], label: _("reference") },
  hit: { stroke: "#3ddc84", dash: [], label: _("hit (found a reference lesion)") },
  miss: { stroke: "#ff4d4d", dash: [8, 5], label: _("missed reference lesion") },
  false: { stroke: "#ff9de2", dash: [2, 4], label: _("false mark") },
};

export function drawMark(ctx, mark, toScreen, style, { selected = false, label = "" } = {}) {
  const g = mark.geometry;
  ctx.save();
  ctx.lineWidth = selected ? 3 : 2;
  ctx.strokeStyle = style.stroke;
  ctx.setLineDash(style.dash);
  ctx.beginPath();
  if (mark.shape === "point") {
    const [sx, sy] = toScreen([g.x, g.y]);
    // An arrow pointing at the point from the upper left.
    ctx.moveTo(sx - 28, sy - 28); ctx.lineTo(sx - 3, sy - 3);
    ctx.moveTo(sx - 3, sy - 13); ctx.lineTo(sx - 3, sy - 3); ctx.lineTo(sx - 13, sy - 3);
  } else if (mark.shape === "ellipse") {
    const [cx, cy] = toScreen([g.cx, g.cy]);
    const [ex, ey] = toScreen([g.cx + g.rx, g.cy + g.ry]);
    ctx.ellipse(cx, cy, Math.abs(ex - cx), Math.abs(ey - cy), 0, 0, 2 * Math.PI);
  } else if (mark.shape === "rectangle") {
    const [x0, y0] = toScreen([g.x, g.y]);
    const [x1, y1] = toScreen([g.x + g.width, g.y + g.height]);
    ctx.rect(x0, y0, x1 - x0, y1 - y0);
  } else {
    g.points.forEach((p, i) => { const [sx, sy] = toScreen(p); i ? ctx.lineTo(sx, sy) : ctx.moveTo(sx, sy); });
    ctx.closePath();
  }
  ctx.stroke();
  if (selected) {
    ctx.setLineDash([]);
    ctx.fillStyle = style.stroke;
    for (const h of handles(mark)) { const [hx, hy] = toScreen(h.at); ctx.fillRect(hx - 4, hy - 4, 8, 8); }
  }
  if (label) {
    const b = bounds(mark);
    const [lx, ly] = toScreen([b.left, b.top]);
    ctx.setLineDash([]);
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = "rgba(0,0,0,0.6)";
    const w = ctx.measureText(label).width + 6;
    ctx.fillRect(lx, ly - 17, w, 15);
    ctx.fillStyle = style.stroke;
    ctx.fillText(label, lx + 3, ly - 5);
  }
  ctx.restore();
}
