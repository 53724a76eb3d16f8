"""Times and sizes of the display derivatives for RG1 (pydicom-data), by hand:

    .venv/bin/python bench/bench_derivatives.py [--repeat N]

Not a test. Prints, per file: decode time (pylibjpeg and GDCM for JPEG 2000), display
parameters, LUT build, rendering (table lookup vs pydicom on the whole image), the
encodings (the full-resolution JPEG with Pillow and simplejpeg; the 16-bit data as lossy
HTJ2K and exact JPEG-LS, against JPEG 2000 lossless, lossless HTJ2K and the 16-bit PNG of
earlier versions), and the bytes of each derivative against the raw DICOM file. Each time
is the best of N runs (default 3), in milliseconds. Last line: the derivatives' CPU
against the PNG-based derivatives of earlier versions, and the exact data's bytes against
JPEG 2000 lossless (target 1.05x).
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pydicom
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder

from app.cases import htj2k, jpegls, pixels
from app.cases.pixels import (
    FULL_DISPLAY_QUALITY,
    PREVIEW_MAX,
    PREVIEW_QUALITY,
    THUMBNAIL_MAX,
    THUMBNAIL_QUALITY,
    display_lut,
    display_params,
    make_derivatives,
    render_8bit,
    stored_pixels,
)

FILES = ("RG1_UNCR.dcm", "RG1_J2KR.dcm")
LEGACY_PNG_LEVEL = 1  # the 16-bit PNG earlier versions made at ingest


def best_ms(action: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of `repeat` runs (least disturbed by the other process on 2 cores)."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        times.append((time.perf_counter() - start) * 1000)
    return min(times), result


def decode_ms(path: Path, repeat: int, plugin: str = "") -> float:
    """Decode on a fresh dataset each run: pydicom caches pixel_array on the dataset."""
    times = []
    for _ in range(repeat):
        ds = pydicom.dcmread(path)
        if plugin:
            ds.pixel_array_options(decoding_plugin=plugin)
        start = time.perf_counter()
        stored_pixels(ds)
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def decode_with(path: Path, plugin: str) -> np.ndarray:
    ds = pydicom.dcmread(path)
    ds.pixel_array_options(decoding_plugin=plugin)
    return stored_pixels(ds)


def encode_png(array: np.ndarray, level: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


def row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<46} {value:>12}  {note}")


def bench_file(name: str, repeat: int) -> dict[str, float]:
    path = Path(get_testdata_file(name))
    raw = path.stat().st_size
    read_ms, ds = best_ms(lambda: pydicom.dcmread(path), repeat)
    tsyntax = ds.file_meta.TransferSyntaxUID
    stored = stored_pixels(ds)
    print(f"\n{name}: {stored.shape[1]}x{stored.shape[0]}, {ds.BitsStored} bits stored, "
          f"{tsyntax.name}, {raw:,} bytes")

    row("read header+data (dcmread)", f"{read_ms:8.1f} ms")
    plugins = get_decoder(tsyntax).available_plugins
    default = f"default plugin: {plugins[0]}" if tsyntax.is_compressed else "native"
    row(f"decode (stored_pixels, {default})", f"{decode_ms(path, repeat):8.1f} ms")
    if tsyntax.is_compressed:
        for plugin in plugins:
            try:
                same = np.array_equal(decode_with(path, plugin), stored)
                note = "identical values" if same else "VALUES DIFFER from the default"
                row(f"decode with {plugin}", f"{decode_ms(path, repeat, plugin):8.1f} ms", note)
            except (ValueError, RuntimeError) as exc:
                row(f"decode with {plugin}", "n/a", str(exc)[:60])

    params_ms, params = best_ms(lambda: display_params(ds, stored), repeat)
    row("display_params (histogram, windows)", f"{params_ms:8.1f} ms")
    pipe = pixels._pipeline(ds, stored)
    build_ms, lut = best_ms(lambda: pixels._build_lut(pipe, ds, params, None), repeat)
    row("LUT build (modality + VOI, every stored value)", f"{build_ms:8.1f} ms",
        f"{lut.size:,} entries")
    row("display_lut (public: params + LUT)",
        f"{best_ms(lambda: display_lut(ds, stored), repeat)[0]:8.1f} ms")
    index_ms, image = best_ms(lambda: pixels._render(stored, pipe, params, lut), repeat)
    row("render: lut[stored]", f"{index_ms:8.1f} ms")
    row("render_8bit (public: params + LUT + lookup)",
        f"{best_ms(lambda: render_8bit(ds, stored), repeat)[0]:8.1f} ms")

    def whole_image() -> np.ndarray:
        out = apply_voi_lut(apply_modality_lut(stored, ds), ds)
        return pixels._to_uint8(out, 0.0, float(2**ds.BitsStored - 1), params.invert)

    whole_ms, slow = best_ms(whole_image, repeat)
    row("pydicom modality+VOI+8-bit on whole image", f"{whole_ms:8.1f} ms",
        "same as lookup" if np.array_equal(slow, image) else "DIFFERS from lookup")

    full = Image.fromarray(image)
    resize_ms, preview = best_ms(lambda: pixels._fit(full, PREVIEW_MAX), repeat)
    row(f"resize to {PREVIEW_MAX} px (Lanczos)", f"{resize_ms:8.1f} ms")
    row(f"preview JPEG q{PREVIEW_QUALITY}",
        f"{best_ms(lambda: pixels._jpeg(preview, PREVIEW_QUALITY), repeat)[0]:8.1f} ms")
    thumb_ms, thumbnail = best_ms(lambda: pixels._fit(preview, THUMBNAIL_MAX), repeat)
    thumb_ms += best_ms(lambda: pixels._jpeg(thumbnail, THUMBNAIL_QUALITY), repeat)[0]
    row(f"resize to {THUMBNAIL_MAX} px + JPEG q{THUMBNAIL_QUALITY}", f"{thumb_ms:8.1f} ms")
    samples = pixels._samples16(stored, pipe.offset)
    png_ms, png = best_ms(lambda: encode_png(samples, LEGACY_PNG_LEVEL), repeat)
    row(f"16-bit PNG, zlib level {LEGACY_PNG_LEVEL} (earlier versions)", f"{png_ms:8.1f} ms",
        f"{len(png):,} bytes")
    full_jpeg_ms, full_jpeg = best_ms(lambda: pixels._jpeg(full, FULL_DISPLAY_QUALITY), repeat)
    row(f"full-resolution JPEG q{FULL_DISPLAY_QUALITY} (Pillow)", f"{full_jpeg_ms:8.1f} ms",
        f"{len(full_jpeg):,} bytes")
    optimised_ms, optimised = best_ms(
        lambda: pixels._jpeg(full, FULL_DISPLAY_QUALITY, optimize=True), repeat)
    row(f"full-resolution JPEG q{FULL_DISPLAY_QUALITY} (Pillow, optimised)",
        f"{optimised_ms:8.1f} ms", f"{len(optimised):,} bytes")
    try:
        import simplejpeg

        grey = np.ascontiguousarray(image[:, :, None])
        simple_ms, simple = best_ms(lambda: simplejpeg.encode_jpeg(
            grey, quality=FULL_DISPLAY_QUALITY, colorspace="GRAY"), repeat)
        row(f"full-resolution JPEG q{FULL_DISPLAY_QUALITY} (simplejpeg)", f"{simple_ms:8.1f} ms",
            f"{len(simple):,} bytes")
    except ImportError:
        row("full-resolution JPEG (simplejpeg)", "n/a", "pip install simplejpeg to compare")
    exact_ms, exact = best_ms(lambda: jpegls.exact_stream(samples), repeat)
    row("JPEG-LS lossless (exact 16-bit)", f"{exact_ms:8.1f} ms", f"{len(exact):,} bytes")
    htj2k_ms, lossless_htj2k = best_ms(lambda: htj2k.exact_stream(samples), repeat)
    row("HTJ2K lossless (the exact stage before, compare)", f"{htj2k_ms:8.1f} ms",
        f"{len(lossless_htj2k):,} bytes")
    approx_ms, approx = best_ms(lambda: htj2k.approx_stream(samples, len(exact)), repeat)
    row("HTJ2K lossy (16-bit progressive stage)", f"{approx_ms:8.1f} ms", f"{len(approx):,} bytes")
    values = np.ascontiguousarray(stored)
    j2k_ms, j2k = best_ms(lambda: imagecodecs.jpeg2k_encode(values, level=0, reversible=True),
                          max(1, repeat // 3))
    row("JPEG 2000 lossless (OpenJPEG, compare)", f"{j2k_ms:8.1f} ms", f"{len(j2k):,} bytes")
    total_ms, derived = best_ms(lambda: make_derivatives(ds, stored), repeat)
    row("make_derivatives (all derivatives, once)", f"{total_ms:8.1f} ms")
    legacy_ms = total_ms - full_jpeg_ms - exact_ms - approx_ms + png_ms
    row("  earlier versions (thumbnail, preview, PNG)", f"{legacy_ms:8.1f} ms", "estimated")

    print("  sizes (ratio to the raw DICOM file):")
    for label, size in (
        ("thumbnail JPEG", len(derived.thumbnail_jpeg)),
        ("preview JPEG", len(derived.preview_jpeg)),
        ("full-resolution JPEG", len(derived.display_jpeg)),
        ("16-bit progressive (lossy HTJ2K)", len(derived.approx_htj2k)),
        ("exact 16-bit (lossless JPEG-LS)", len(derived.exact16)),
        ("16-bit PNG of earlier versions", len(png)),
        ("raw DICOM file", raw),
        ("stored pixels in memory", stored.nbytes),
    ):
        row(label, f"{size:,} B", f"{size / raw:7.3f}x  (1:{raw / size:,.1f})")
    row("exact / JPEG 2000 lossless", f"{len(derived.exact16) / len(j2k):8.3f}x",
        f"HTJ2K lossless {len(lossless_htj2k) / len(j2k):.3f}x, PNG {len(png) / len(j2k):.3f}x")
    return {"ms": total_ms, "legacy_ms": legacy_ms,
            "exact_ratio": len(derived.exact16) / len(j2k)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (best kept)")
    args = parser.parse_args()
    print(f"pydicom {pydicom.__version__}, numpy {np.__version__}, "
          f"Pillow {Image.__version__}; best of {args.repeat}")
    results = {name: bench_file(name, args.repeat) for name in FILES}
    print("\n" + " | ".join(
        f"{name}: derivatives {r['ms']:.0f} ms = {r['ms'] / r['legacy_ms']:.2f}x the PNG-based "
        f"ones; exact bytes {r['exact_ratio']:.3f}x J2K lossless "
        f"({r['exact_ratio'] / 1.05:.2f}x of the 1.05 target)" for name, r in results.items()))


if __name__ == "__main__":
    main()
