"""Candidates for the exact 16-bit stage: bytes against JPEG 2000 lossless, encoding CPU
per image, browser decode time, on RG1 (pydicom-data, 1841 x 1955, 15-bit CR), the
2500 x 2048 12-bit DX of bench_viewer_network.py and the real chest files in
../shared/cxr/dicom (those the portal imports).

Run by hand (about 1 minute on a quiet machine, 2 cores):

    PYTHONPATH=. .venv/bin/python bench/bench_exact_formats.py [--repeat 5]

Needs node (the browser decoders: bench/wasm_decode_compare.cjs, the vendored WebAssembly
builds). Times are CPU (time.process_time, the best of --repeat, candidates interleaved
A B A B), robust to the other work on the machine; libjxl may use several threads, so
its CPU is the sum over them. The peer is JPEG 2000 lossless made by the same tool the
bench_viewer_network.py target uses (OpenJPEG through imagecodecs, reversible 5/3).

Candidates: lossless HTJ2K (OpenJPH) with each option imagecodecs' htj2k_encode exposes
that changes the bytes (decomposition levels `resolutions`, `tile`; code-block size and
progression are not exposed), JPEG-LS (CharLS), JPEG XL lossless (libjxl, efforts 1-2;
there is no 16-bit JPEG XL decoder for the browser on npm that runs without a build step).
Last line: the exact stage (JPEG-LS) against the 1.05x target on both bench images.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
from pydicom.data import get_testdata_file

from app.cases import htj2k, jpegls, pixels
from bench.bench_viewer_network import chest_radiograph

SHARED_DICOM = Path(__file__).resolve().parents[2] / "shared" / "cxr" / "dicom"
TARGET = 1.05

CANDIDATES: dict[str, Callable[[np.ndarray], bytes]] = {
    "HTJ2K lossless (before)": lambda s: imagecodecs.htj2k_encode(s, reversible=True),
    "HTJ2K resolutions=4": lambda s: imagecodecs.htj2k_encode(s, reversible=True,
                                                              resolutions=4),
    "HTJ2K resolutions=8": lambda s: imagecodecs.htj2k_encode(s, reversible=True,
                                                              resolutions=8),
    "HTJ2K tile 1024": lambda s: imagecodecs.htj2k_encode(s, reversible=True,
                                                          tile=(1024, 1024)),
    "JPEG-LS (exact stage)": jpegls.exact_stream,
    "JPEG XL effort 1": lambda s: imagecodecs.jpegxl_encode(s, lossless=True, effort=1),
    "JPEG XL effort 2": lambda s: imagecodecs.jpegxl_encode(s, lossless=True, effort=2),
}


def images() -> dict[str, pydicom.Dataset]:
    found = {
        "RG1": pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm")),
        "2500x2048 12-bit": pydicom.dcmread(io.BytesIO(chest_radiograph())),
    }
    for path in sorted(SHARED_DICOM.glob("*.dcm")) if SHARED_DICOM.is_dir() else []:
        if path.name.startswith("RG1_"):
            continue
        try:
            ds = pydicom.dcmread(path)
            pixels.stored_pixels(ds)
        except Exception as exc:  # the portal refuses it (e.g. no file meta): not a candidate
            print(f"{path.name}: left out ({type(exc).__name__})")
            continue
        found[path.name[:28]] = ds
    return found


def samples_of(ds: pydicom.Dataset) -> tuple[np.ndarray, np.ndarray]:
    stored = pixels.stored_pixels(ds)
    offset = pixels._pipeline(ds, stored).offset  # the samples ingest stores
    return stored, pixels._samples16(stored, offset)


def cpu_ms(runs: dict[str, Callable[[], bytes]], repeat: int) -> dict[str, tuple[float, int]]:
    """Best CPU ms and bytes of each, A B A B."""
    best = {name: float("inf") for name in runs}
    size = {}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.process_time()
            out = run()
            best[name] = min(best[name], (time.process_time() - start) * 1000)
            size[name] = len(out)
    return {name: (best[name], size[name]) for name in runs}


def derivatives_cpu(ds: pydicom.Dataset, stored: np.ndarray, repeat: int) -> tuple[float, float]:
    """make_derivatives CPU with the JPEG-LS exact stage against the HTJ2K one it replaced
    (lossless HTJ2K, and its size as the lossy stage's rate model input), A B A B."""
    def before() -> bytes:
        saved = (jpegls.exact_stream, htj2k.HTJ2K_OVER_JPEGLS_BPP)
        jpegls.exact_stream, htj2k.HTJ2K_OVER_JPEGLS_BPP = htj2k.exact_stream, 0.0
        try:
            return pixels.make_derivatives(ds, stored).exact16
        finally:
            jpegls.exact_stream, htj2k.HTJ2K_OVER_JPEGLS_BPP = saved

    times = cpu_ms({"now": lambda: pixels.make_derivatives(ds, stored).exact16,
                    "before": before}, repeat)
    return times["now"][0], times["before"][0]


def browser_decode(streams: dict[str, tuple[np.ndarray, bytes, bytes]]) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        for index, (samples, j2c, jls) in enumerate(streams.values()):
            base = Path(tmp) / f"{index:02d}"
            base.with_suffix(".raw").write_bytes(samples.astype("<u2").tobytes())
            base.with_suffix(".j2c").write_bytes(j2c)
            base.with_suffix(".jls").write_bytes(jls)
        out = subprocess.run(
            ["node", str(Path(__file__).with_name("wasm_decode_compare.cjs")), tmp, "5"],
            check=True, capture_output=True, text=True, timeout=300,
        ).stdout
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return dict(zip(streams, results, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ratios: dict[str, float] = {}
    extra: dict[str, tuple[float, float]] = {}
    streams: dict[str, tuple[np.ndarray, bytes, bytes]] = {}
    for name, ds in images().items():
        stored, samples = samples_of(ds)
        contiguous = np.ascontiguousarray(stored)
        peer = {"J2K lossless (peer)": lambda st=contiguous:
                imagecodecs.jpeg2k_encode(st, level=0, reversible=True)}
        runs = {**peer, **{label: (lambda f=f, s=samples: f(s))
                           for label, f in CANDIDATES.items()}}
        measured = cpu_ms(runs, args.repeat)
        j2k = measured["J2K lossless (peer)"][1]
        rows, columns = samples.shape
        print(f"\n{name}: {columns} x {rows}, {int(ds.BitsStored)}-bit; J2K lossless {j2k:,} B")
        print(f"  {'candidate':26s} {'bytes':>11s} {'/ J2K':>7s} {'encode CPU':>11s}")
        for label, (ms, size) in measured.items():
            print(f"  {label:26s} {size:11,d} {size / j2k:6.3f}x {ms:8.0f} ms")
        ratios[name] = measured["JPEG-LS (exact stage)"][1] / j2k
        if name in ("RG1", "2500x2048 12-bit"):
            now, before = derivatives_cpu(ds, stored, args.repeat)
            extra[name] = (now, before)
            print(f"  all derivatives, CPU: {now:.0f} ms with the JPEG-LS exact stage, "
                  f"{before:.0f} ms with the HTJ2K one (+{now - before:.0f} ms)")
        streams[name] = (samples, htj2k.exact_stream(samples), jpegls.exact_stream(samples))

    print("\nbrowser decode (WebAssembly in node, CPU ms, median of 5, bit-exact):")
    decoded = browser_decode(streams)
    for name, result in decoded.items():
        j2c, jls = result["j2c"], result["jls"]
        print(f"  {name:28s} HTJ2K {j2c['ms']:5.0f} ms  JPEG-LS {jls['ms']:5.0f} ms "
              f"({jls['ms'] / j2c['ms']:.2f}x)")

    parts = []
    for name, label in (("RG1", "RG1"), ("2500x2048 12-bit", "2500x2048")):
        now, before = extra[name]
        parts.append(
            f"{label}: exact (JPEG-LS) bytes {ratios[name]:.3f}x J2K lossless = "
            f"{ratios[name] / TARGET:.2f}x of the {TARGET} target; derivatives CPU "
            f"+{now - before:.0f} ms vs HTJ2K; browser decode "
            f"{decoded[name]['jls']['ms']:.0f} ms in the worker"
        )
    others = [r for n, r in ratios.items() if n not in ("RG1", "2500x2048 12-bit")]
    if others:
        parts.append(f"real files: at most {max(others):.3f}x")
    print(" | ".join(parts))


if __name__ == "__main__":
    main()
