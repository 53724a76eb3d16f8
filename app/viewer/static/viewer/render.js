// Window/level rendering of the stored 16-bit samples (app/viewer/FORMAT.md).
//
// Per displayed pixel, for a PNG sample v:
//   stored = v - stored_offset;  output = stored * slope + intercept
//   grey   = round(LINEAR window of output), 255 - grey when inverted, 0 for padding
// Outside the image the canvas is black.
//
// Two back ends with the same behaviour:
// * "webgl2": the samples are uploaded once as an unsigned-integer texture (R16UI), read
//   with texelFetch (exact values, nearest pixel when zoomed); window, invert, padding and
//   view are uniforms, so a window drag costs one uniform update and a redraw.
// * "canvas2d": a 65,536-entry lookup table per window change, applied to the whole image
//   once, then drawn with the view transform and smoothing off.
//
// Setters only record state; render() draws. A viewer calls render() once per animation
// frame after any change (or right after a setter when it wants the pixels at once).

/**
 * DICOM PS3.3 C.11.2.1.2.1 LINEAR window, output in [0, 255] (float, not rounded).
 * Same arithmetic as app.cases.pixels.window_linear. Throws RangeError for width < 1.
 */
export function linearWindow(x, center, width) {
  checkWindow(center, width);
  const c = center - 0.5;
  const w = width - 1;
  if (x <= c - w / 2) return 0;
  if (x > c + w / 2) return 255;
  return ((x - c) / w + 0.5) * 255; // never reached with w == 0: both tests above cover it
}

function checkWindow(center, width) {
  if (!Number.isFinite(center) || !Number.isFinite(width) || width < 1) {
    throw new RangeError(`Invalid LINEAR window (center ${center}, width ${width}): ` +
                         "the width must be at least 1.");
  }
}

/** The inclusive padding range in stored units, or null (FORMAT.md: padding_value and
 *  padding_range_limit; with no limit only the value itself is padding). */
function paddingRange(params) {
  const value = params.padding_value;
  if (value === null || value === undefined) return null;
  const limit = params.padding_range_limit ?? value;
  return [Math.min(value, limit), Math.max(value, limit)];
}

/** The canvas pixels [first, end) along one axis whose centres fall on the image pixels
 *  [start, start + length), clipped to [0, size): pixel c shows image pixel
 *  floor((c + 0.5 - t) / scale), so a centre exactly on an image edge belongs to the pixel
 *  right of / below it. Both back ends fill exactly these whole pixels, in double
 *  precision here, instead of relying on how the edges of a fractional rectangle are
 *  rasterised (GL's tie rules, or a 2D canvas's antialiasing). */
function coveredPixels(start, length, scale, t, size) {
  const first = Math.ceil(t + start * scale - 0.5);
  const end = Math.ceil(t + (start + length) * scale - 0.5);
  return [Math.min(Math.max(first, 0), size), Math.min(Math.max(end, 0), size)];
}

/** The padding range as PNG samples: [first, count - 1] for the shader's one unsigned
 *  compare; a first sample beyond 16 bits matches nothing. */
function paddingSamples(params) {
  const range = paddingRange(params);
  if (!range) return [0x10000, 0];
  const first = Math.max(range[0] + params.stored_offset, 0);
  const last = Math.min(range[1] + params.stored_offset, 0xffff);
  return last < first ? [0x10000, 0] : [first, last - first];
}

/**
 * @param {HTMLCanvasElement|OffscreenCanvas} canvas target; its width/height are device px
 * @param {{width: number, height: number, data: Uint16Array}} image from decodePng16
 * @param {object} params DisplayParams JSON (FORMAT.md)
 * @param {{prefer?: "webgl2"|"canvas2d", maxTextureSize?: number}} options
 *   maxTextureSize lowers the tile size below the GPU's limit (used by the tests to
 *   exercise tiling; a real viewer leaves it out).
 */
export function createRenderer(canvas, image, params, options = {}) {
  if (image.width !== params.columns || image.height !== params.rows) {
    throw new Error(`The image is ${image.width}x${image.height} but the display ` +
                    `parameters say ${params.columns}x${params.rows}.`);
  }
  if (image.data.length !== image.width * image.height) {
    throw new Error("The image data does not match its width and height.");
  }
  const prefer = options.prefer ?? "webgl2";
  if (prefer !== "webgl2" && prefer !== "canvas2d") {
    throw new Error(`Unknown renderer "${prefer}" (use "webgl2" or "canvas2d").`);
  }
  const state = {
    center: params.default_window.center,
    width: params.default_window.width,
    invert: Boolean(params.invert),
    view: { scale: 1, tx: 0, ty: 0 },
  };
  checkWindow(state.center, state.width);
  if (prefer === "webgl2") {
    const gl = canvas.getContext("webgl2", {
      alpha: false, antialias: false, depth: false, stencil: false,
      premultipliedAlpha: false, preserveDrawingBuffer: false,
    });
    if (gl) return webglRenderer(canvas, gl, image, params, state, options);
  }
  return canvasRenderer(canvas, image, params, state);
}

// Setters shared by both back ends; `changed(what)` tells the back end what went stale.
function baseRenderer(kind, canvas, state, changed) {
  return {
    kind,
    setWindow(center, width) {
      checkWindow(center, width);
      state.center = center;
      state.width = width;
      changed("window");
    },
    setInvert(invert) {
      state.invert = Boolean(invert);
      changed("window");
    },
    setView({ scale, tx = 0, ty = 0 }) {
      if (!(scale > 0) || !Number.isFinite(scale) || !Number.isFinite(tx) || !Number.isFinite(ty)) {
        throw new RangeError("The view needs a positive finite scale and finite translation.");
      }
      state.view = { scale, tx, ty };
      changed("view");
    },
    resize(width, height) {
      canvas.width = Math.max(1, Math.round(width));
      canvas.height = Math.max(1, Math.round(height));
      changed("size"); // resizing clears the canvas: call render() afterwards
    },
  };
}

// ------------------------------------------------------------------------------- WebGL2

const VERTEX_SHADER = `#version 300 es
// One quad per texture tile, on whole canvas pixels (see coveredPixels); corners come
// from the vertex id, so there are no vertex buffers at all.
uniform vec4 u_rect;   // x0, y0, x1, y1 in canvas pixels, y down
uniform vec2 u_canvas; // canvas size in pixels
void main() {
  vec2 corner = vec2(gl_VertexID & 1, gl_VertexID >> 1);
  vec2 canvasPos = mix(u_rect.xy, u_rect.zw, corner);
  // Canvas rows go down, clip space goes up.
  gl_Position = vec4(canvasPos / u_canvas * vec2(2.0, -2.0) + vec2(-1.0, 1.0), 0.0, 1.0);
}`;

const FRAGMENT_SHADER = `#version 300 es
// Kept lean: on a software GPU (SwiftShader) every operation per fragment shows up in the
// frame time of a window drag.
precision highp float;
precision highp int;
precision highp usampler2D;
uniform usampler2D u_samples;
uniform vec3 u_view;       // scale, tx, ty
uniform vec2 u_canvas;     // canvas size in pixels
uniform ivec4 u_tileRect;  // tile x0, y0, width, height in image pixels
uniform vec2 u_rescale;    // slope, intercept - stored_offset * slope: sample -> output
uniform vec2 u_window;     // c' = c - 0.5, 255 / w' (w' = w - 1 > 0)
uniform bool u_threshold;  // width 1 (w' = 0): black up to c', white above
uniform float u_invert;    // 255 to invert, else 0: grey' = |u_invert - grey|
uniform uvec2 u_padding;   // first padding sample, number of padding samples - 1
out vec4 outColor;
void main() {
  // Centre of this canvas pixel, y down, then the image pixel it falls in (nearest).
  vec2 canvasPos = vec2(gl_FragCoord.x, u_canvas.y - gl_FragCoord.y);
  ivec2 pixel = ivec2(floor((canvasPos - u_view.yz) / u_view.x));
  // The clamp guards tile edges against rounding; the quad already limits coverage.
  ivec2 texel = clamp(pixel - u_tileRect.xy, ivec2(0), u_tileRect.zw - 1);
  uint value = texelFetch(u_samples, texel, 0).r;
  float x = float(value) * u_rescale.x + u_rescale.y;
  // The LINEAR window: clamping the straight line equals the standard's three cases.
  float grey = u_threshold ? (x > u_window.x ? 255.0 : 0.0)
                           : clamp((x - u_window.x) * u_window.y + 127.5, 0.0, 255.0);
  grey = abs(u_invert - floor(grey + 0.5));
  // One unsigned compare for the padding range: samples below it wrap to huge values.
  bool padding = value - u_padding.x <= u_padding.y;
  outColor = vec4(vec3(padding ? 0.0 : grey / 255.0), 1.0);
}`;

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
    const log = gl.getShaderInfoLog(shader);
    gl.deleteShader(shader);
    throw new Error(`WebGL2 shader failed to compile: ${log}`);
  }
  return shader;
}

function link(gl) {
  const program = gl.createProgram();
  const shaders = [compile(gl, gl.VERTEX_SHADER, VERTEX_SHADER),
                   compile(gl, gl.FRAGMENT_SHADER, FRAGMENT_SHADER)];
  for (const shader of shaders) gl.attachShader(program, shader);
  gl.linkProgram(program);
  for (const shader of shaders) gl.deleteShader(shader); // the program keeps them alive
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
    const log = gl.getProgramInfoLog(program);
    gl.deleteProgram(program);
    throw new Error(`WebGL2 program failed to link: ${log}`);
  }
  return program;
}

// Upload the samples once, as tiles no larger than the GPU allows. WebGL2 only guarantees
// MAX_TEXTURE_SIZE >= 2048, so a 2500-wide radiograph may need two tiles on a small GPU
// (most report 8192 or more: one tile). UNPACK_ROW_LENGTH and UNPACK_SKIP_* cut each tile
// out of the one array without copying.
function uploadTiles(gl, image, tileSize) {
  const tiles = [];
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, 2); // rows of 2-byte samples need not be 4-aligned
  gl.pixelStorei(gl.UNPACK_ROW_LENGTH, image.width);
  for (let y0 = 0; y0 < image.height; y0 += tileSize) {
    for (let x0 = 0; x0 < image.width; x0 += tileSize) {
      const w = Math.min(tileSize, image.width - x0);
      const h = Math.min(tileSize, image.height - y0);
      const texture = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D, texture);
      gl.texStorage2D(gl.TEXTURE_2D, 1, gl.R16UI, w, h);
      // Integer textures cannot be filtered: anything but NEAREST leaves them incomplete.
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      gl.pixelStorei(gl.UNPACK_SKIP_PIXELS, x0);
      gl.pixelStorei(gl.UNPACK_SKIP_ROWS, y0);
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, w, h, gl.RED_INTEGER, gl.UNSIGNED_SHORT,
                       image.data);
      tiles.push({ texture, x0, y0, w, h });
    }
  }
  for (const name of ["UNPACK_ROW_LENGTH", "UNPACK_SKIP_PIXELS", "UNPACK_SKIP_ROWS"]) {
    gl.pixelStorei(gl[name], 0);
  }
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, 4);
  return tiles;
}

function webglRenderer(canvas, gl, image, params, state, options) {
  const limit = gl.getParameter(gl.MAX_TEXTURE_SIZE);
  const tileSize = Math.min(limit, options.maxTextureSize ?? limit);
  if (!(tileSize >= 1)) throw new Error("WebGL2 reports no usable MAX_TEXTURE_SIZE.");
  const program = link(gl);
  const uniform = {};
  for (const name of ["u_rect", "u_view", "u_canvas", "u_samples",
                      "u_tileRect", "u_rescale", "u_window", "u_threshold", "u_invert",
                      "u_padding"]) {
    uniform[name] = gl.getUniformLocation(program, name);
  }
  const tiles = uploadTiles(gl, image, tileSize);
  const vao = gl.createVertexArray(); // empty: corners come from gl_VertexID
  const { stored_offset: offset, rescale_slope: slope, rescale_intercept: intercept } = params;

  gl.useProgram(program);
  gl.uniform1i(uniform.u_samples, 0);
  gl.uniform2f(uniform.u_rescale, slope, intercept - offset * slope);
  gl.uniform2ui(uniform.u_padding, ...paddingSamples(params));
  gl.disable(gl.DEPTH_TEST);
  gl.disable(gl.BLEND);

  let destroyed = false;
  const renderer = baseRenderer("webgl2", canvas, state, () => {});
  return Object.assign(renderer, {
    tileCount: tiles.length,
    render() {
      if (destroyed) return;
      const { scale, tx, ty } = state.view;
      const c = state.center - 0.5;
      const w = state.width - 1;
      gl.viewport(0, 0, canvas.width, canvas.height);
      gl.clearColor(0, 0, 0, 1);
      gl.clear(gl.COLOR_BUFFER_BIT);
      gl.useProgram(program);
      gl.bindVertexArray(vao);
      gl.uniform3f(uniform.u_view, scale, tx, ty);
      gl.uniform2f(uniform.u_canvas, canvas.width, canvas.height);
      gl.uniform2f(uniform.u_window, c, w > 0 ? 255 / w : 0);
      gl.uniform1i(uniform.u_threshold, w > 0 ? 0 : 1);
      gl.uniform1f(uniform.u_invert, state.invert ? 255 : 0);
      gl.activeTexture(gl.TEXTURE0);
      for (const tile of tiles) {
        const [x0, x1] = coveredPixels(tile.x0, tile.w, scale, tx, canvas.width);
        const [y0, y1] = coveredPixels(tile.y0, tile.h, scale, ty, canvas.height);
        if (x1 <= x0 || y1 <= y0) continue; // off screen
        gl.bindTexture(gl.TEXTURE_2D, tile.texture);
        gl.uniform4f(uniform.u_rect, x0, y0, x1, y1);
        gl.uniform4i(uniform.u_tileRect, tile.x0, tile.y0, tile.w, tile.h);
        gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
      }
      gl.bindVertexArray(null);
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      for (const tile of tiles) gl.deleteTexture(tile.texture);
      gl.deleteVertexArray(vao);
      gl.deleteProgram(program);
    },
  });
}

// ----------------------------------------------------------------------------- Canvas 2D

// Skia resolves a pixel centre that falls exactly on an image pixel edge to the left
// (in x) where coveredPixels and the WebGL path go right; shifting the pattern by a hair
// (invisible) gives the same pixels as WebGL for such ties (e.g. scale 1, tx = 0.5).
const TIE_NUDGE = 1 / 128; // canvas pixels
// ImageData is RGBA bytes; writing whole pixels through a Uint32Array view needs the
// platform's byte order (little-endian everywhere in practice, checked anyway).
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Grey level (0..255) per PNG sample value, for the current window (FORMAT.md step 3). */
export function buildLut(params, center, width, invert) {
  checkWindow(center, width);
  const lut = new Uint8Array(65536);
  const { stored_offset: offset, rescale_slope: slope, rescale_intercept: intercept } = params;
  const c = center - 0.5;
  const w = width - 1;
  const low = c - w / 2;
  const high = c + w / 2;
  for (let v = 0; v < 65536; v++) {
    const x = (v - offset) * slope + intercept;
    const grey = x <= low ? 0 : x > high ? 255 : Math.round(((x - c) / w + 0.5) * 255);
    lut[v] = invert ? 255 - grey : grey;
  }
  const padding = paddingRange(params);
  if (padding) {
    // Padding is in stored units; its samples are clamped to the table.
    const first = Math.min(Math.max(padding[0] + offset, 0), 65536);
    const end = Math.min(Math.max(padding[1] + offset + 1, 0), 65536);
    lut.fill(0, first, end);
  }
  return lut;
}

function canvasRenderer(canvas, image, params, state) {
  const ctx = canvas.getContext("2d", { alpha: false });
  if (!ctx) {
    throw new Error("Neither WebGL2 nor a 2D context is available on this canvas " +
                    "(a canvas keeps the first kind of context it was given).");
  }
  const { width, height, data } = image;
  // The windowed image at full resolution, redrawn onto the visible canvas with the view.
  const source = typeof OffscreenCanvas === "function"
    ? new OffscreenCanvas(width, height)
    : Object.assign(document.createElement("canvas"), { width, height });
  // willReadFrequently keeps this canvas in CPU memory. Otherwise, where 2D canvases are
  // GPU-backed, every window change uploads the whole image (20 MB at 2500x2048) into a
  // GPU surface: 80 ms a frame against 15 ms with SwiftShader (bench/bench_viewer.py).
  const sourceCtx = source.getContext("2d", { willReadFrequently: true });
  const pixels = sourceCtx.createImageData(width, height);
  const out = new Uint32Array(pixels.data.buffer);
  const lut32 = new Uint32Array(65536);
  let stale = true;
  let pattern = null;

  function applyWindow() {
    const lut = buildLut(params, state.center, state.width, state.invert);
    for (let v = 0; v < 65536; v++) {
      const g = lut[v];
      lut32[v] = LITTLE_ENDIAN ? (0xff000000 | (g << 16) | (g << 8) | g) >>> 0
                               : ((g << 24) | (g << 16) | (g << 8) | 0xff) >>> 0;
    }
    for (let i = 0, n = data.length; i < n; i++) out[i] = lut32[data[i]];
    sourceCtx.putImageData(pixels, 0, 0);
    stale = false;
  }

  let destroyed = false;
  const renderer = baseRenderer("canvas2d", canvas, state, (what) => {
    if (what === "window") stale = true;
  });
  return Object.assign(renderer, {
    render() {
      if (destroyed) return;
      if (stale) {
        applyWindow();
        // A pattern snapshots its canvas, so it is made again after each window change.
        pattern = ctx.createPattern(source, "no-repeat");
      }
      const { scale, tx, ty } = state.view;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      // drawImage would antialias the image's edges when they fall between canvas pixels
      // (blending the first and last row and column with the background). Instead, fill
      // exactly the canvas pixels whose centres lie on the image, with the image as a
      // pattern: nearest sampling everywhere, like the WebGL path.
      const [x0, x1] = coveredPixels(0, width, scale, tx, canvas.width);
      const [y0, y1] = coveredPixels(0, height, scale, ty, canvas.height);
      if (x1 <= x0 || y1 <= y0) return; // off screen
      ctx.imageSmoothingEnabled = false; // nearest pixel when zoomed
      pattern.setTransform(new DOMMatrix([scale, 0, 0, scale, tx - TIE_NUDGE, ty - TIE_NUDGE]));
      ctx.fillStyle = pattern;
      ctx.fillRect(x0, y0, x1 - x0, y1 - y0);
    },
    destroy() {
      destroyed = true;
    },
  });
}
