"""The browser viewer's pixel core (app/viewer/static/viewer/htj2k.js with its worker and
the vendored OpenJPH WebAssembly build, png16.js for images stored before HTJ2K, and
render.js) in real Chromium: bit-exact decoding of the 16-bit data, and window/level on
both back ends (WebGL2 and Canvas 2D), checked against app.cases.pixels (FORMAT.md).

The modules are served without the Flask app: a fake origin (http://viewer.test) is
intercepted with page.route and answered from app/viewer/static/viewer/ and from bytes
built here, under the portal's CSP (script-src 'self', no inline script anywhere).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from app.cases import htj2k
from app.cases.pixels import (
    Window,
    make_derivatives,
    render_8bit,
    stored_pixels,
    window_linear,
)
from tests.conftest import CHROMIUM_ARGS

pytestmark = pytest.mark.browser

STATIC = Path(__file__).resolve().parents[1] / "app" / "viewer" / "static" / "viewer"
VENDOR = Path(__file__).resolve().parents[1] / "app" / "static" / "vendor"
ORIGIN = "http://viewer.test"
BACKENDS = ("webgl2", "canvas2d")

# WebGL2 in headless Chromium without a GPU: ANGLE on SwiftShader (software Vulkan).
# Chromium 156 still picks SwiftShader by itself in headless mode, even with --disable-gpu,
# but the automatic software fallback is deprecated; asking for it explicitly keeps WebGL2
# available when that fallback goes.

# The portal's policy for scripts and workers (app/security.py).
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; "
       "style-src 'self'; img-src 'self' blob: data:")
INDEX_HTML = (
    b"<!doctype html><html lang=en><head><meta charset=utf-8><title>viewer test</title>"
    b"</head><body></body></html>"
)

# Test-side JavaScript, served as a module from the fake origin (no inline script).
HELPERS_JS = r"""
import { decode16 } from "/viewer/htj2k.js";
import { decodePng16 } from "/viewer/png16.js";
import { buildLut, createRenderer, linearWindow } from "/viewer/render.js";

export const violations = [];
globalThis.cspViolations = violations;
document.addEventListener("securitypolicyviolation", (e) => violations.push(e.violatedDirective));

const images = new Map();
async function bytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.arrayBuffer();
}
// .jls: JPEG-LS (exact16.jls); .j2c: an HTJ2K codestream (approx16.j2c, and the
// exact16.j2c of images stored before JPEG-LS); .png: an image stored before HTJ2K.
function decode(url, buffer) {
  return url.endsWith(".png") ? decodePng16(buffer) : decode16(buffer);
}
export async function load(url) {
  if (!images.has(url)) images.set(url, await decode(url, await bytes(url)));
  return images.get(url);
}

// Decode `png` (or .j2c) and compare every sample with the little-endian uint16 file `raw`.
export async function compareDecoded(png, raw) {
  const image = await decode(png, await bytes(png));
  const expected = new Uint16Array(await bytes(raw));
  let mismatches = 0, first = -1;
  const n = Math.max(expected.length, image.data.length);
  for (let i = 0; i < n; i++) {
    if (image.data[i] !== expected[i]) { mismatches++; if (first < 0) first = i; }
  }
  const { width, height, bitDepth } = image;
  return { width, height, bitDepth: bitDepth ?? null, length: image.data.length, mismatches, first,
           isUint16: image.data instanceof Uint16Array };
}

export async function decodeError(url) {
  try {
    await decode(url, await bytes(url));
    return null;
  } catch (error) {
    return `${error.constructor.name}: ${error.message}`;
  }
}

// Grey level at each [x, y] canvas pixel (or the whole canvas when points is null).
function readGreys(kind, canvas, points) {
  const { width: w, height: h } = canvas;
  let rgba, at;
  if (kind === "webgl2") {
    const gl = canvas.getContext("webgl2");
    rgba = new Uint8Array(w * h * 4);
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, rgba);
    at = (x, y) => ((h - 1 - y) * w + x) * 4; // readPixels starts at the bottom row
  } else {
    rgba = canvas.getContext("2d").getImageData(0, 0, w, h).data;
    at = (x, y) => (y * w + x) * 4;
  }
  const grey = (i) => {
    if (rgba[i] !== rgba[i + 1] || rgba[i] !== rgba[i + 2] || rgba[i + 3] !== 255) {
      throw new Error(`not an opaque grey: ${Array.from(rgba.subarray(i, i + 4))}`);
    }
    return rgba[i];
  };
  if (points === null) {
    const out = new Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = grey(at(x, y));
    return out;
  }
  return points.map(([x, y]) => grey(at(x, y)));
}

// Render `png` with each of `steps` ({window: [c, w], invert, view}) on one renderer and
// read the canvas after each render.
export async function sample({ png, params, prefer, size, steps, points = null,
                               maxTextureSize }) {
  const image = await load(png);
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = size;
  const renderer = createRenderer(canvas, image, params, { prefer, maxTextureSize });
  const results = [];
  for (const step of steps) {
    if (step.window) renderer.setWindow(...step.window);
    if (step.invert !== undefined) renderer.setInvert(step.invert);
    if (step.view) renderer.setView(step.view);
    if (step.resize) renderer.resize(...step.resize);
    renderer.render();
    results.push(readGreys(renderer.kind, canvas, points));
  }
  const { kind, tileCount } = renderer;
  renderer.destroy();
  return { kind, tileCount: tileCount ?? null, results };
}

export function windows(cases) {
  return cases.map(([x, c, w]) => {
    try { return linearWindow(x, c, w); } catch (error) { return error.constructor.name; }
  });
}

export function lut(params, center, width, invert) {
  return Array.from(buildLut(params, center, width, invert));
}
"""


# ----------------------------------------------------------------------------- serving


@dataclass
class Viewer:
    """One Chromium page on the fake origin; `served` maps paths to (bytes, type)."""

    page: Any
    served: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def serve(self, path: str, body: bytes, content_type: str = "application/octet-stream"):
        self.served[path] = (body, content_type)
        return path

    def call(self, function: str, *args: Any) -> Any:
        """Call an export of the helpers module with JSON arguments."""
        return self.page.evaluate(
            "async ([name, args]) => (await import('/test/helpers.js'))[name](...args)",
            [function, list(args)],
        )


def _handler(viewer: Viewer):
    def handle(route) -> None:
        path = urlsplit(route.request.url).path
        if path.startswith("/viewer/"):
            target = (STATIC / path.removeprefix("/viewer/")).resolve()
            if target.parent != STATIC.resolve() or not target.is_file():
                route.fulfill(status=404, body=b"not found")
                return
            kind = "text/javascript" if target.suffix == ".js" else "application/octet-stream"
            route.fulfill(status=200, body=target.read_bytes(), content_type=kind)
        elif path.startswith("/static/vendor/"):
            target = (VENDOR / path.removeprefix("/static/vendor/")).resolve()
            kind = "application/wasm" if target.suffix == ".wasm" else "text/javascript"
            if target.parent.parent != VENDOR.resolve() or not target.is_file():
                route.fulfill(status=404, body=b"not found")
                return
            route.fulfill(status=200, body=target.read_bytes(), content_type=kind)
        elif path in viewer.served:
            body, kind = viewer.served[path]
            headers = {"Content-Security-Policy": CSP} if kind.startswith("text/html") else {}
            route.fulfill(status=200, body=body, content_type=kind, headers=headers)
        else:
            route.fulfill(status=404, body=b"not found")

    return handle


@pytest.fixture(scope="module")
def chromium(browser: Any) -> Any:
    """The suite's one Chromium (tests/conftest.py): Playwright's sync API allows a single
    instance per process. Its flags give real WebGL2 in headless mode (SwiftShader)."""
    return browser


@pytest.fixture(scope="module")
def viewer(chromium) -> Iterator[Viewer]:
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    viewer = Viewer(page)
    viewer.serve("/index.html", INDEX_HTML, "text/html; charset=utf-8")
    viewer.serve("/test/helpers.js", HELPERS_JS.encode(), "text/javascript")
    page.route(f"{ORIGIN}/**", _handler(viewer))
    page.goto(f"{ORIGIN}/index.html")
    yield viewer
    context.close()


# ------------------------------------------------------------------------ test images


def dataset(
    stored: np.ndarray, *, photometric: str = "MONOCHROME2", bits_stored: int = 12, **attrs: Any
) -> Dataset:
    """A single-frame DX dataset holding `stored` (uint16 or int16), decodable in memory."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(stored.dtype.kind == "i")
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    ds.PixelData = np.ascontiguousarray(stored, dtype=stored.dtype.newbyteorder("<")).tobytes()
    return ds


@dataclass(frozen=True)
class Case:
    name: str
    ds: Dataset
    stored: np.ndarray
    png: bytes  # the 16-bit PNG an image stored before HTJ2K has
    j2c: bytes  # the exact HTJ2K stream of an image stored before JPEG-LS
    jls: bytes  # the exact JPEG-LS stream ingest makes today
    params: dict[str, Any]


def make_case(name: str, ds: Dataset) -> Case:
    stored = stored_pixels(ds)
    derived = make_derivatives(ds, stored)
    params = derived.params.to_json()
    samples = (stored.astype(np.int32) + params["stored_offset"]).astype(np.uint16)
    return Case(name, ds, stored, write_png(samples), htj2k.exact_stream(samples),
                derived.exact16, params)


def ramp_with_noise(rows: int, columns: int, low: int, high: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(low, high, rows * columns).reshape(rows, columns)
    return ramp + rng.normal(0, (high - low) / 50, size=(rows, columns))


@pytest.fixture(scope="module")
def cases(viewer: Viewer) -> dict[str, Case]:
    """RG1 (15-bit MONOCHROME1), a 12-bit image with rescale and a padding range, and a
    signed image with a negative padding value; each served as /cases/<name>.png."""
    rg1 = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))

    values = np.clip(ramp_with_noise(120, 160, 60, 4095, seed=1), 60, 4095).astype(np.uint16)
    values[:10, :] = np.arange(160) % 51  # padding stripe: 0..50
    rescaled = dataset(
        values,
        RescaleSlope="2.5",
        RescaleIntercept="-1024",
        PixelPaddingValue=0,
        PixelPaddingRangeLimit=50,
    )

    signed_values = np.clip(ramp_with_noise(90, 110, -2000, 2000, seed=2), -2000, 2000)
    signed_values = signed_values.astype(np.int16)
    signed_values[-8:, -30:] = -3000
    signed = dataset(signed_values, bits_stored=16)
    signed.add_new(0x00280120, "SS", -3000)  # PixelPaddingValue

    built = {
        "rg1": make_case("rg1", rg1),
        "rescaled": make_case("rescaled", rescaled),
        "signed": make_case("signed", signed),
    }
    assert built["rg1"].params["invert"]  # MONOCHROME1
    rescaled_params = built["rescaled"].params
    assert [rescaled_params[key] for key in ("rescale_slope", "rescale_intercept",
                                             "padding_value", "padding_range_limit")] == [
        2.5, -1024.0, 0, 50
    ]
    assert built["signed"].params["padding_value"] == -3000
    for case in built.values():
        viewer.serve(f"/cases/{case.name}.png", case.png, "image/png")
        viewer.serve(f"/cases/{case.name}.j2c", case.j2c, "image/jphc")
        viewer.serve(f"/cases/{case.name}.jls", case.jls, "image/jls")
        viewer.serve(f"/cases/{case.name}.raw", stored_plus_offset(case).astype("<u2").tobytes())
    return built


def stored_plus_offset(case: Case) -> np.ndarray:
    return (case.stored.astype(np.int32) + case.params["stored_offset"]).astype(np.uint16)


def expected_greys(
    case: Case, stored: np.ndarray, center: float, width: float, invert: bool
) -> np.ndarray:
    """FORMAT.md step 3 in Python: window_linear on the output values, rounded, inverted,
    padding black."""
    params = case.params
    output = stored.astype(np.float64) * params["rescale_slope"] + params["rescale_intercept"]
    grey = np.rint(window_linear(output, center, width))
    if invert:
        grey = 255 - grey
    if params["padding_value"] is not None:
        limit = params["padding_range_limit"]
        low, high = sorted((params["padding_value"], params["padding_value"] if limit is None
                            else limit))
        grey[(stored >= low) & (stored <= high)] = 0
    return grey.astype(np.int64)


# ------------------------------------------------------------------------- PNG writer


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def filter_row(kind: int, line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """PNG filter `kind` applied to one row of raw bytes (spec section 9.2)."""
    x = line.astype(np.int32)
    b = prev.astype(np.int32)
    a = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
    c = np.concatenate([np.zeros(bpp, np.int32), b[:-bpp]])
    if kind == 0:
        predicted = np.zeros_like(x)
    elif kind == 1:
        predicted = a
    elif kind == 2:
        predicted = b
    elif kind == 3:
        predicted = (a + b) // 2
    else:
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        predicted = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    return ((x - predicted) & 255).astype(np.uint8)


def write_png(
    samples: np.ndarray,
    *,
    bit_depth: int = 16,
    filters: list[int] | None = None,
    idat_size: int = 97,
    interlace: int = 0,
    header_size: tuple[int, int] | None = None,
) -> bytes:
    """A greyscale PNG written by hand: row y uses filters[y % len(filters)], the zlib
    stream is split over several IDAT chunks, and an ancillary chunk comes first."""
    height, width = samples.shape
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = np.ascontiguousarray(samples, dtype=dtype).view(np.uint8).reshape(height, -1)
    bpp = bit_depth // 8
    filters = filters or [0]
    rows, prev = [], np.zeros(raw.shape[1], np.uint8)
    for y in range(height):
        kind = filters[y % len(filters)]
        rows.append(bytes([kind]) + filter_row(kind, raw[y], prev, bpp).tobytes())
        prev = raw[y]
    stream = zlib.compress(b"".join(rows), 6)
    w, h = header_size or (width, height)
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, 0, 0, 0, interlace)
    idats = [stream[i : i + idat_size] for i in range(0, len(stream), idat_size)]
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"tEXt", b"Comment\x00written by test_viewer_render")
        + b"".join(png_chunk(b"IDAT", part) for part in idats)
        + png_chunk(b"IEND", b"")
    )


# ----------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("name", ["rg1", "signed", "rescaled"])
def test_decodes_the_exact_jpegls_stream_bit_for_bit(viewer: Viewer, cases: dict[str, Case],
                                                      name: str):
    """CharLS' WebAssembly decoder in the worker gives back stored + stored_offset exactly."""
    case = cases[name]
    assert case.jls[:2] == b"\xff\xd8"  # what ingest stores is JPEG-LS
    got = viewer.call("compareDecoded", f"/cases/{name}.jls", f"/cases/{name}.raw")
    rows, columns = case.stored.shape
    assert got == {
        "width": columns, "height": rows, "bitDepth": None, "length": rows * columns,
        "mismatches": 0, "first": -1, "isUint16": True,
    }


def test_a_damaged_jpegls_stream_is_refused_with_a_reason(viewer: Viewer,
                                                          cases: dict[str, Case]):
    jls = cases["signed"].jls
    viewer.serve("/bad/cut.jls", jls[: len(jls) // 2], "image/jls")
    viewer.serve("/bad/garbage.jls", b"\xff\xd8\xff\xf7" + bytes(200), "image/jls")
    for path in ("/bad/cut.jls", "/bad/garbage.jls"):
        error = viewer.call("decodeError", path)
        assert error and error.startswith("Error: The image data could not be decoded: "), error
        assert error.split(": ", 2)[2][:1].isalpha()  # a reason, not an exception pointer
    got = viewer.call("compareDecoded", "/cases/signed.jls", "/cases/signed.raw")
    assert got["mismatches"] == 0  # the worker survives a refusal


@pytest.mark.parametrize("name", ["rg1", "signed", "rescaled"])
def test_decodes_the_exact_htj2k_stream_of_older_images_bit_for_bit(
        viewer: Viewer, cases: dict[str, Case], name: str):
    """Images stored before JPEG-LS keep their lossless HTJ2K exact stream until rebuilt."""
    case = cases[name]
    got = viewer.call("compareDecoded", f"/cases/{name}.j2c", f"/cases/{name}.raw")
    rows, columns = case.stored.shape
    assert got == {
        "width": columns, "height": rows, "bitDepth": None, "length": rows * columns,
        "mismatches": 0, "first": -1, "isUint16": True,
    }


def test_a_damaged_htj2k_stream_is_refused_with_a_reason(viewer: Viewer, cases: dict[str, Case]):
    viewer.serve("/bad/garbage.j2c", b"\xff\x4f\xff\x51" + bytes(200), "image/jphc")
    error = viewer.call("decodeError", "/bad/garbage.j2c")
    assert error and error.startswith("Error: The image data could not be decoded")
    # The worker survives a refusal: the next stream decodes.
    got = viewer.call("compareDecoded", "/cases/signed.j2c", "/cases/signed.raw")
    assert got["mismatches"] == 0


def test_decodes_rg1_bit_for_bit(viewer: Viewer, cases: dict[str, Case]):
    case = cases["rg1"]
    assert case.params["bits_stored"] == 15 and case.params["stored_offset"] == 0
    got = viewer.call("compareDecoded", "/cases/rg1.png", "/cases/rg1.raw")
    assert got == {
        "width": 1841, "height": 1955, "bitDepth": 16, "length": 1841 * 1955,
        "mismatches": 0, "first": -1, "isUint16": True,
    }


def test_decodes_signed_data_with_offset(viewer: Viewer, cases: dict[str, Case]):
    case = cases["signed"]
    assert case.params["stored_offset"] == 32768 and case.stored.min() == -3000
    got = viewer.call("compareDecoded", "/cases/signed.png", "/cases/signed.raw")
    assert (got["width"], got["height"], got["mismatches"]) == (110, 90, 0)


@pytest.mark.parametrize("bit_depth", [16, 8])
def test_decodes_every_filter_type(viewer: Viewer, bit_depth: int):
    """Five images, each with rows cycling through all five filters, starting from a
    different one: so each filter also occurs on the first row (no row above)."""
    rng = np.random.default_rng(bit_depth)
    top = 2**bit_depth
    for start in range(5):
        # Smooth plus noise: Paeth picks each of its three predictors somewhere.
        ys, xs = np.mgrid[0:23, 0:37]
        smooth = (xs * 1100 + ys * 700 + start * 5000) % top
        samples = (smooth + rng.integers(0, top // 16, size=smooth.shape)) % top
        samples[3, :] = rng.integers(0, top, size=37)  # random bytes in both halves
        filters = [(start + k) % 5 for k in range(5)]
        png = write_png(samples, bit_depth=bit_depth, filters=filters)
        np.testing.assert_array_equal(np.array(Image.open(io.BytesIO(png))), samples)
        name = f"/filters-{bit_depth}-{start}"
        viewer.serve(f"{name}.png", png, "image/png")
        viewer.serve(f"{name}.raw", samples.astype("<u2").tobytes())
        got = viewer.call("compareDecoded", f"{name}.png", f"{name}.raw")
        assert (got["width"], got["height"], got["bitDepth"]) == (37, 23, bit_depth)
        assert got["mismatches"] == 0, (filters, got)


def bare_png(width: int, height: int, depth: int, color: int, stream: bytes) -> bytes:
    """A PNG with the given IHDR and one IDAT holding `stream` as is."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", stream)
        + png_chunk(b"IEND", b"")
    )


def test_rejects_bad_input_with_clear_errors(viewer: Viewer, cases: dict[str, Case]):
    samples = np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 500
    good = write_png(samples, filters=[4])
    rgb = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(rgb, format="PNG")
    rg1 = cases["rg1"].png
    bad = {
        "not-png": (b"GIF89a" + bytes(64), "not a PNG file"),
        "empty": (b"", "not a PNG file"),
        "rgb": (rgb.getvalue(), "unsupported colour type 2"),
        "depth4": (bare_png(10, 12, 4, 0, zlib.compress(bytes(6 * 12))),
                   "unsupported bit depth 4"),
        "interlaced": (write_png(samples, interlace=1), "interlaced PNGs are not supported"),
        "cut-in-idat": (rg1[: len(rg1) // 2], "file is truncated (chunk IDAT declares"),
        "cut-before-iend": (good[:-12], "no IEND"),
        # Chunks intact, but the zlib stream inside stops early.
        "short-stream": (bare_png(10, 12, 16, 0, zlib.compress(bytes(21 * 12))[:-9]),
                         "truncated"),
        "too-long": (write_png(samples, header_size=(10, 11)), "longer than the IHDR"),
        "too-short": (write_png(samples, header_size=(10, 13)), "image data is truncated"),
        "bad-filter": (bare_png(10, 1, 8, 0, zlib.compress(b"\x07" + bytes(10))),
                       "invalid filter type 7"),
    }
    for name, (body, expected) in bad.items():
        path = viewer.serve(f"/bad/{name}.png", body, "image/png")
        message = viewer.call("decodeError", path)
        assert message is not None, name
        assert message.startswith("Error: PNG decode failed: "), (name, message)
        assert expected in message, (name, message)


# ------------------------------------------------------------------------ window/level


def window_grid() -> list[tuple[float, float, float]]:
    grid = []
    for center in (0.5, 1.0, 100.0, 2047.5, -1000.0, 15000.0):
        for width in (1.0, 2.0, 3.0, 10.5, 4096.0, 30000.0):
            c, w = center - 0.5, width - 1.0
            low, high = c - w / 2, c + w / 2
            xs = {low - 1, low, low + 0.25, low + 0.5, c, high - 0.5, high, high + 0.25, high + 1}
            xs |= {float(v) for v in np.round(np.linspace(low - 3, high + 3, 9))}
            grid += [(x, center, width) for x in sorted(xs)]
    return grid


def test_linear_window_in_js_equals_python(viewer: Viewer):
    grid = window_grid()
    got = viewer.call("windows", [list(t) for t in grid])
    for (x, center, width), value in zip(grid, got, strict=True):
        expected = float(window_linear(np.array([x]), center, width)[0])
        assert value == pytest.approx(expected, abs=1e-9), (x, center, width)
    assert viewer.call("windows", [[0, 10, 0.5], [0, float("nan"), 10], [0, 10, -1]]) == [
        "RangeError"
    ] * 3


@pytest.mark.parametrize("name", ["rg1", "rescaled", "signed"])
def test_lookup_table_matches_python(viewer: Viewer, cases: dict[str, Case], name: str):
    """The Canvas 2D path's table over all 65,536 sample values."""
    case = cases[name]
    params = case.params
    samples = np.arange(65536)
    stored = samples - params["stored_offset"]
    window = params["windows"][1]
    for center, width, invert in ((window["center"], window["width"], params["invert"]),
                                  (window["center"], 1.0, not params["invert"])):
        lut = np.array(viewer.call("lut", params, center, width, invert))
        diff = np.abs(lut - expected_greys(case, stored, center, width, invert))
        assert diff.max() <= 1, (center, width, invert)
        assert np.mean(diff == 0) > 0.99  # the rest are rounding ties (rint vs Math.round)


def sample_points(case: Case, seed: int, center: float) -> list[tuple[int, int]]:
    """24 random pixels, plus pixels just below, at and just above `center` (so a narrow
    window shows both black and white), plus padding pixels when there are any."""
    rows, columns = case.stored.shape
    rng = np.random.default_rng(seed)
    points = [(int(x), int(y)) for x, y in zip(rng.integers(0, columns, 24),
                                               rng.integers(0, rows, 24), strict=True)]
    output = case.stored * case.params["rescale_slope"] + case.params["rescale_intercept"]
    for target in (center - 3, center - 1, center, center + 1, center + 3):
        y, x = np.unravel_index(np.argmin(np.abs(output - target)), output.shape)
        points.append((int(x), int(y)))
    if case.params["padding_value"] is not None:
        y, x = np.unravel_index(np.argmin(case.stored), case.stored.shape)
        points.append((int(x), int(y)))
    return points


def windows_for(case: Case) -> list[tuple[float, float, bool]]:
    """(center, width, invert): the default, every preset, width 1 and 2 around the image's
    median output value (centres on and between integers), and the opposite inversion."""
    params = case.params
    inv = params["invert"]
    median = float(np.median(case.stored * params["rescale_slope"]
                             + params["rescale_intercept"]))
    steps = [(w["center"], w["width"], inv) for w in params["windows"]]
    steps += [(median, 1.0, inv), (median + 0.5, 1.0, inv), (median + 0.5, 2.0, inv),
              (median, 2.0, inv), (median, 7.0, not inv)]
    return steps


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["rg1", "rescaled", "signed"])
def test_window_level_matches_python(
    viewer: Viewer, cases: dict[str, Case], name: str, backend: str
):
    case = cases[name]
    rows, columns = case.stored.shape
    steps = windows_for(case)
    median = steps[-1][0]
    points = sample_points(case, seed=len(name), center=median)
    assert len(points) >= 20
    got = viewer.call("sample", {
        "png": f"/cases/{name}.j2c", "params": case.params, "prefer": backend,
        "size": [columns, rows], "points": points,
        "steps": [{"window": [c, w], "invert": inv} for c, w, inv in steps],
    })
    assert got["kind"] == backend  # WebGL2 must really run: no silent fallback
    xs = np.array([p[0] for p in points])
    ys = np.array([p[1] for p in points])
    stored = case.stored[ys, xs]
    for (center, width, invert), greys in zip(steps, got["results"], strict=True):
        expected = expected_greys(case, stored, center, width, invert)
        diff = np.abs(np.array(greys) - expected)
        assert diff.max() <= 1, (center, width, invert, list(greys), list(expected))
    narrow = expected_greys(case, stored, median, 1.0, case.params["invert"])
    assert {0, 255} <= set(narrow.tolist())  # the width-1 window really splits the points
    if case.params["padding_value"] is not None:
        padded = expected_greys(case, stored, median, 7.0, not case.params["invert"])
        assert padded[-1] == 0 and got["results"][-1][-1] == 0  # padding black, even inverted


@pytest.mark.parametrize("backend", BACKENDS)
def test_whole_image_matches_server_rendering(
    viewer: Viewer, cases: dict[str, Case], backend: str
):
    """Every pixel of the rescaled, padded image against render_8bit (pydicom), which
    agrees with window_linear to within one grey level (FORMAT.md)."""
    case = cases["rescaled"]
    rows, columns = case.stored.shape
    preset = case.params["windows"][2]
    got = viewer.call("sample", {
        "png": "/cases/rescaled.j2c", "params": case.params, "prefer": backend,
        "size": [columns, rows], "steps": [{"window": [preset["center"], preset["width"]]}],
    })
    assert got["kind"] == backend
    shown = np.array(got["results"][0]).reshape(rows, columns)
    server = render_8bit(case.ds, case.stored, Window(preset["center"], preset["width"], "x"))
    assert np.abs(shown - server.astype(int)).max() <= 1
    assert (shown[:10] == 0).all()  # the padding stripe


@pytest.mark.parametrize("backend", BACKENDS)
def test_tiled_texture_matches_python(viewer: Viewer, cases: dict[str, Case], backend: str):
    """RG1 cut into 512-pixel tiles (as on a GPU whose MAX_TEXTURE_SIZE is too small),
    read on both sides of the tile edges."""
    case = cases["rg1"]
    rows, columns = case.stored.shape
    points = [(x, y) for x in (0, 511, 512, 1023, 1024, 1840) for y in (0, 511, 512, 1954)]
    window = case.params["windows"][1]
    got = viewer.call("sample", {
        "png": "/cases/rg1.j2c", "params": case.params, "prefer": backend,
        "size": [columns, rows], "points": points, "maxTextureSize": 512,
        "steps": [{"window": [window["center"], window["width"]]}],
    })
    if backend == "webgl2":
        assert got["tileCount"] == 16
    xs, ys = np.array(points).T
    expected = expected_greys(case, case.stored[ys, xs], window["center"], window["width"],
                              case.params["invert"])
    assert np.abs(np.array(got["results"][0]) - expected).max() <= 1


# --------------------------------------------------------------------------------- view


@pytest.fixture(scope="module")
def labelled(viewer: Viewer) -> Case:
    """A 15x15 image whose pixel (x, y) shows grey 10 + 15y + x under window (128, 256):
    every canvas pixel tells which image pixel it shows; black (0) is the background."""
    values = (10 + np.arange(225).reshape(15, 15)).astype(np.uint16)
    case = make_case("labelled", dataset(values, bits_stored=8))
    viewer.serve("/cases/labelled.j2c", case.j2c, "image/jphc")
    return case


def expected_view(scale: float, tx: float, ty: float, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    xs = np.floor((np.arange(width) + 0.5 - tx) / scale).astype(int)
    ys = np.floor((np.arange(height) + 0.5 - ty) / scale).astype(int)
    ix, iy = np.meshgrid(xs, ys)
    inside = (ix >= 0) & (ix < 15) & (iy >= 0) & (iy < 15)
    return np.where(inside, 10 + iy * 15 + ix, 0)


VIEWS = [
    {"scale": 3, "tx": 7.4, "ty": -3.2},
    {"scale": 3, "tx": -20.3, "ty": 11.6},
    {"scale": 1, "tx": 30, "ty": 4},
    {"scale": 2.5, "tx": 0.2, "ty": 0.3},
    # Ties: canvas pixel centres exactly on image pixel edges go right/down (floor).
    {"scale": 1, "tx": 0.5, "ty": 2.5},
    {"scale": 2, "tx": 1.5, "ty": -0.5},
    {"scale": 0.5, "tx": 3, "ty": 1},
    {"scale": 1.25, "tx": 10.75, "ty": 0.25},
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tiles", [None, 4])
def test_view_transform_is_nearest_pixel(
    viewer: Viewer, labelled: Case, backend: str, tiles: int | None
):
    size = (64, 48)
    got = viewer.call("sample", {
        "png": "/cases/labelled.j2c", "params": labelled.params, "prefer": backend,
        "size": list(size), "maxTextureSize": tiles,
        "steps": [{"window": [128, 256], "invert": False, "view": v} for v in VIEWS]
        + [{"resize": [50, 70]}],
    })
    assert got["kind"] == backend
    if backend == "webgl2" and tiles:
        assert got["tileCount"] == 16
    for view, greys in zip(VIEWS, got["results"][:-1], strict=True):
        shown = np.array(greys).reshape(size[1], size[0])
        expected = expected_view(view["scale"], view["tx"], view["ty"], size)
        wrong = np.argwhere(shown != expected)
        assert wrong.size == 0, (view, len(wrong), wrong[:5].tolist())
    resized = np.array(got["results"][-1]).reshape(70, 50)
    last = VIEWS[-1]
    np.testing.assert_array_equal(
        resized, expected_view(last["scale"], last["tx"], last["ty"], (50, 70))
    )


def test_runs_under_the_portal_csp_with_real_webgl2(viewer: Viewer, labelled: Case):
    """Decoding and both back ends run under script-src 'self' (no inline script, no eval),
    and WebGL2 is a real context. The control at the end shows the CSP is enforced."""
    info = viewer.page.evaluate("""() => {
        const gl = document.createElement("canvas").getContext("webgl2");
        return gl && { version: gl.getParameter(gl.VERSION),
                       maxTexture: gl.getParameter(gl.MAX_TEXTURE_SIZE) };
    }""")
    if info is None:
        pytest.fail("WebGL2 is unavailable in headless Chromium with "
                    + " ".join(CHROMIUM_ARGS))
    assert info["version"].startswith("WebGL 2.0")
    assert info["maxTexture"] >= 2048
    for backend in BACKENDS:
        got = viewer.call("sample", {
            "png": "/cases/labelled.j2c", "params": labelled.params, "prefer": backend,
            "size": [20, 20], "points": [[3, 4]], "steps": [{"window": [128, 256]}],
        })
        assert got == {"kind": backend, "tileCount": got["tileCount"], "results": [[10 + 60 + 3]]}
    violations = "async () => (await import('/test/helpers.js')).violations"
    assert viewer.page.evaluate(violations) == []
    viewer.page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.inlineRan = true";
        document.body.append(script);
    }""")
    viewer.page.wait_for_function("() => window.cspViolations.length > 0")
    assert viewer.page.evaluate(violations) == ["script-src-elem"]
    assert viewer.page.evaluate("() => window.inlineRan") is None
