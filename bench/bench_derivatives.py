"""Times and sizes of the display derivatives for RG1 (pydicom-data), by hand:

    .venv/bin/python bench/bench_derivatives.py [--repeat N]

Not a test. Prints, per file: decode time (pylibjpeg and GDCM for JPEG 2000), display
parameters, LUT build, rendering (table lookup vs pydicom on the whole image), the
encodings, and the bytes of each derivative against the raw DICOM file.
Each time is the best of N runs (default 3), in milliseconds.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder

from app.cases import pixels
from app.cases.pixels import (
    PNG_COMPRESS_LEVEL,
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


def bench_file(name: str, repeat: int) -> None:
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
    png_ms, _ = best_ms(lambda: pixels._png16(stored, pipe.offset), repeat)
    row(f"full 16-bit PNG, zlib level {PNG_COMPRESS_LEVEL}", f"{png_ms:8.1f} ms")
    shifted = np.ascontiguousarray(stored, dtype=np.uint16)
    png6_ms, png6 = best_ms(lambda: encode_png(shifted, 6), repeat)
    row("full 16-bit PNG, zlib level 6 (compare)", f"{png6_ms:8.1f} ms", f"{len(png6):,} bytes")
    full_jpeg_ms, full_jpeg = best_ms(lambda: pixels._jpeg(full, PREVIEW_QUALITY), repeat)
    row(f"full-size 8-bit JPEG q{PREVIEW_QUALITY} (compare)", f"{full_jpeg_ms:8.1f} ms",
        f"{len(full_jpeg):,} bytes")
    total_ms, derived = best_ms(lambda: make_derivatives(ds, stored), repeat)
    row("make_derivatives (all of the above, once)", f"{total_ms:8.1f} ms")

    print("  sizes (ratio to the raw DICOM file):")
    for label, size in (
        ("thumbnail JPEG", len(derived.thumbnail_jpeg)),
        ("preview JPEG", len(derived.preview_jpeg)),
        ("full 16-bit PNG", len(derived.full_png16)),
        ("raw DICOM file", raw),
        ("stored pixels in memory", stored.nbytes),
    ):
        row(label, f"{size:,} B", f"{size / raw:7.3f}x  (1:{raw / size:,.1f})")
    seconds = len(derived.preview_jpeg) * 8 / 2e6
    row("preview at 2 Mbit/s", f"{seconds:8.2f} s",
        f"raw file: {raw * 8 / 2e6:.1f} s, full PNG: {len(derived.full_png16) * 8 / 2e6:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (best kept)")
    args = parser.parse_args()
    print(f"pydicom {pydicom.__version__}, numpy {np.__version__}, "
          f"Pillow {Image.__version__}; best of {args.repeat}")
    for name in FILES:
        bench_file(name, args.repeat)


if __name__ == "__main__":
    main()
