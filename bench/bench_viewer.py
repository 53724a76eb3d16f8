"""Speed of the browser viewer's pixel core in headless Chromium, by hand:

    .venv/bin/python bench/bench_viewer.py [--steps 200] [--canvas 1920x1080]

Not a test. Builds a 2500x2048 12-bit synthetic chest-like radiograph (numpy), turns it
into the exact 16-bit JPEG-LS stream and display parameters with
app.cases.pixels.make_derivatives, serves app/viewer/static/viewer/*.js and the vendored
WebAssembly decoders from a fake origin (page.route, no Flask), and prints: the
stream's bytes, its decode time in the viewer's worker (transfer included), texture
upload time, and the frame time of a window/level drag (setWindow + render, `--steps`
times) for WebGL2 and Canvas 2D, at the given canvas size (image fitted) and at 1:1
(every image pixel on screen).

Two frame times per drag:
* "sync": setWindow + render + a 1-pixel read-back, which waits until the frame is
  really drawn (the GPU work included), timed with performance.now();
* "rAF": the interval between requestAnimationFrame callbacks that each do one step,
  which includes compositing; it cannot go below the display's frame interval (16.7 ms).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from app.cases.pixels import make_derivatives, stored_pixels

STATIC = Path(__file__).resolve().parents[1] / "app" / "viewer" / "static" / "viewer"
VENDOR = Path(__file__).resolve().parents[1] / "app" / "static" / "vendor"
ORIGIN = "http://viewer.test"
CHROMIUM = "/usr/bin/chromium"
# WebGL2 without a GPU: ANGLE on SwiftShader (see tests/test_viewer_render.py).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
TARGET_MS = 16.0
ROWS, COLUMNS = 2048, 2500

INDEX_HTML = b"<!doctype html><html lang=en><head><meta charset=utf-8><title>bench</title></head>"

BENCH_JS = r"""
import { decode16 } from "/viewer/htj2k.js";
import { createRenderer } from "/viewer/render.js";

let image = null;

const median = (xs) => quantile(xs, 0.5);
function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
const stats = (xs) => ({ median: median(xs), p95: quantile(xs, 0.95), max: Math.max(...xs) });

export async function decode(url, repeats) {
  const buffer = await (await fetch(url)).arrayBuffer();
  const times = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    image = await decode16(buffer.slice(0)); // the worker takes the copy it is given
    times.push(performance.now() - t0);
  }
  return { bytes: buffer.byteLength, ...stats(times), width: image.width, height: image.height };
}

// Wait until everything drawn so far is really on the canvas.
function sync(renderer, canvas) {
  if (renderer.kind === "webgl2") {
    const gl = canvas.getContext("webgl2");
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
  } else {
    canvas.getContext("2d").getImageData(0, 0, 1, 1);
  }
}

export async function drag({ params, prefer, size, steps }) {
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = size;
  document.body.append(canvas); // on screen, so rAF frames are composited
  const fit = Math.min(size[0] / image.width, size[1] / image.height);
  const t0 = performance.now();
  const renderer = createRenderer(canvas, image, params, { prefer });
  const created = performance.now();
  renderer.setView({ scale: fit, tx: (size[0] - image.width * fit) / 2,
                     ty: (size[1] - image.height * fit) / 2 });
  renderer.render();
  sync(renderer, canvas);
  const firstFrame = performance.now();

  const { center: c0, width: w0 } = params.default_window;
  const windowAt = (i) => [c0 + 0.2 * w0 * Math.sin(i / 20),
                           Math.max(1, w0 * (1 + 0.3 * Math.cos(i / 17)))];
  const syncTimes = [];
  for (let i = 0; i < steps; i++) {
    const t = performance.now();
    renderer.setWindow(...windowAt(i));
    renderer.render();
    sync(renderer, canvas);
    syncTimes.push(performance.now() - t);
  }

  const intervals = await new Promise((resolve) => {
    const out = [];
    let last = null, i = 0;
    const frame = (now) => {
      if (last !== null) out.push(now - last);
      last = now;
      renderer.setWindow(...windowAt(i));
      renderer.render();
      if (++i <= steps) requestAnimationFrame(frame); else resolve(out);
    };
    requestAnimationFrame(frame);
  });
  const kind = renderer.kind;
  renderer.destroy();
  canvas.remove();
  return { kind, createMs: created - t0, firstFrameMs: firstFrame - created,
           uploadMs: firstFrame - t0, sync: stats(syncTimes), raf: stats(intervals) };
}
"""


def chest_like(seed: int = 7) -> np.ndarray:
    """A 12-bit MONOCHROME2 chest-like image: soft-tissue body, dark lung fields, bright
    mediastinum and spine, rib bands, blur, quantum noise and a collimation border of
    padding (stored 0)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:ROWS, 0:COLUMNS].astype(np.float32)
    u, v = (x - COLUMNS / 2) / (COLUMNS / 2), (y - ROWS / 2) / (ROWS / 2)
    image = np.full((ROWS, COLUMNS), 300.0, np.float32)  # air around the body
    image += 1900 * (u**2 / 0.85**2 + v**2 / 1.1**2 < 1)  # body
    for side in (-1, 1):  # lungs: less attenuation, darker
        lung = ((u - side * 0.38) / 0.3) ** 2 + ((v + 0.05) / 0.7) ** 2 < 1
        image -= 1100 * lung
    image += 1200 * np.exp(-((u / 0.16) ** 2)) * (v > -0.6)  # mediastinum and spine
    image += 700 * np.exp(-(((u + 0.05) / 0.25) ** 2 + ((v - 0.3) / 0.25) ** 2))  # heart
    ribs = 0.5 + 0.5 * np.sin(v * 38 + 6 * u**2)
    image += 260 * ribs**8 * (np.abs(u) < 0.75) * (np.abs(v) < 0.8)
    image = box_blur(box_blur(image, 9), 9)
    image += rng.normal(0, 25, image.shape)
    stored = np.clip(np.rint(image), 1, 4095).astype(np.uint16)
    stored[:40], stored[-40:], stored[:, :30], stored[:, -30:] = 0, 0, 0, 0
    return stored


def box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    """Separable box filter by cumulative sums (edges replicated)."""
    for axis in (0, 1):
        padded = np.pad(image, [(radius + 1, radius) if a == axis else (0, 0) for a in (0, 1)],
                        mode="edge")
        sums = np.cumsum(padded, axis=axis, dtype=np.float64)
        upper = np.take(sums, range(2 * radius + 1, sums.shape[axis]), axis=axis)
        lower = np.take(sums, range(0, sums.shape[axis] - 2 * radius - 1), axis=axis)
        image = ((upper - lower) / (2 * radius + 1)).astype(np.float32)
    return image


def dataset(stored: np.ndarray) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelPaddingValue = 0
    ds.PixelData = stored.astype("<u2").tobytes()
    return ds


def serve(page: Any, files: dict[str, tuple[bytes, str]]) -> None:
    def handle(route: Any) -> None:
        path = urlsplit(route.request.url).path
        if path.startswith("/viewer/") and (STATIC / path.removeprefix("/viewer/")).is_file():
            body = (STATIC / path.removeprefix("/viewer/")).read_bytes()
            route.fulfill(status=200, body=body, content_type="text/javascript")
        elif path.startswith("/static/vendor/"):
            target = VENDOR / path.removeprefix("/static/vendor/")
            kind = "application/wasm" if target.suffix == ".wasm" else "text/javascript"
            route.fulfill(status=200, body=target.read_bytes(), content_type=kind)
        elif path in files:
            body, kind = files[path]
            headers = {"Content-Security-Policy": "script-src 'self' 'wasm-unsafe-eval'"}
            route.fulfill(status=200, body=body, content_type=kind, headers=headers)
        else:
            route.fulfill(status=404, body=b"")

    page.route(f"{ORIGIN}/**", handle)


def row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<44} {value:>14}  {note}")


def verdict(ms: float) -> str:
    return "meets the 16 ms target" if ms < TARGET_MS else f"{ms / TARGET_MS:.1f}x the 16 ms target"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="window/level steps per drag")
    parser.add_argument("--canvas", default="1920x1080", help="canvas size in device pixels")
    parser.add_argument("--decode-repeats", type=int, default=5)
    parser.add_argument("--backends", default="webgl2,canvas2d", help="comma-separated")
    parser.add_argument("--extra-flag", action="append", default=[],
                        help="another Chromium flag, e.g. --extra-flag=--disable-gpu (software "
                             "2D canvas, as on a machine without WebGL2)")
    args = parser.parse_args()
    canvas = [int(v) for v in args.canvas.lower().split("x")]

    start = time.perf_counter()
    ds = dataset(chest_like())
    derived = make_derivatives(ds, stored_pixels(ds))
    params = derived.params.to_json()
    print(f"Synthetic {COLUMNS}x{ROWS} 12-bit chest-like image "
          f"(derivatives in {time.perf_counter() - start:.1f} s)")
    row("exact 16-bit JPEG-LS", f"{len(derived.exact16) / 1e6:.2f} MB")
    row("default window", json.dumps(params["default_window"]))

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + args.extra_flag
        )
        page = browser.new_page(viewport={"width": canvas[0], "height": canvas[1]})
        page.set_default_timeout(300_000)
        serve(page, {
            "/index.html": (INDEX_HTML, "text/html"),
            "/bench.js": (BENCH_JS.encode(), "text/javascript"),
            "/image.jls": (derived.exact16, "image/jls"),
        })
        page.goto(f"{ORIGIN}/index.html")
        renderer_name = page.evaluate("""() => {
            const gl = document.createElement("canvas").getContext("webgl2");
            const info = gl && gl.getExtension("WEBGL_debug_renderer_info");
            return gl ? gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER)
                      : "no WebGL2";
        }""")
        print(f"Chromium {browser.version}, WebGL2: {renderer_name}")
        if args.extra_flag:
            print("Extra flags:", " ".join(args.extra_flag))

        def call(name: str, *call_args: Any) -> Any:
            return page.evaluate(
                "async ([name, args]) => (await import('/bench.js'))[name](...args)",
                [name, list(call_args)],
            )

        decoded = call("decode", "/image.jls", args.decode_repeats)
        print("\nDecoding (htj2k.js: CharLS WebAssembly in a worker), median of",
              args.decode_repeats)
        row("decode16", f"{decoded['median']:.0f} ms", f"max {decoded['max']:.0f} ms")

        for label, size in ((f"fitted in {canvas[0]}x{canvas[1]}", canvas),
                            (f"1:1, {COLUMNS}x{ROWS} canvas", [COLUMNS, ROWS])):
            print(f"\nWindow/level drag, {args.steps} steps, image {label}")
            medians = {}
            for backend in args.backends.split(","):
                got = call("drag", {"params": params, "prefer": backend, "size": size,
                                    "steps": args.steps})
                assert got["kind"] == backend, f"asked for {backend}, got {got['kind']}"
                medians[backend] = got["sync"]["median"]
                row(f"{backend}: createRenderer (upload, compile)", f"{got['createMs']:.0f} ms")
                row(f"{backend}: first frame", f"{got['firstFrameMs']:.0f} ms")
                row(f"{backend}: frame, sync median / p95",
                    f"{got['sync']['median']:.1f} / {got['sync']['p95']:.1f} ms",
                    verdict(got["sync"]["median"]))
                row(f"{backend}: rAF interval median / p95",
                    f"{got['raf']['median']:.1f} / {got['raf']['p95']:.1f} ms")
            if len(medians) == 2:
                ratio = medians["canvas2d"] / medians["webgl2"]
                row("canvas2d / webgl2 (sync median)", f"{ratio:.1f}x")
        browser.close()


if __name__ == "__main__":
    main()
