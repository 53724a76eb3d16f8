"""Progressive display over a slow clinic link: time and bytes to each stage the viewer
shows, in throttled Chromium (CDP: 2 Mbit/s, 100 ms RTT), for RG1 (pydicom-data, 1841 x
1955, 15-bit CR) and a 2500 x 2048 12-bit DX, against today's PNG path (the same image
stored as before HTJ2K: preview, then the 16-bit PNG), A B A B in one run.

Run by hand:  .venv/bin/python bench/bench_viewer_network.py [--runs 2]
Needs Debian's Chromium at /usr/bin/chromium.

Stages (FORMAT.md): first image (the preview), full-resolution default-window image (the
8-bit JPEG), first 16-bit stage window/level acts on (lossy HTJ2K), exact data (lossless
JPEG-LS; bench_exact_formats.py compares the formats). Targets (issue "Progressive
display"): 1.0 s / 2.5 s / 5 s, exact bytes <= 1.05x the J2K lossless bytes of the same
pixels. Times are from the start of navigation
(performance.now() in the page) to the stage being drawn.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import MIGRATIONS_DIR, create_app
from app.auth.roles import Role
from app.auth.services import create_user
from app.cases import pixels
from app.cases.dicom_build import dataset_bytes, dx_dataset
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import CaseImage
from app.cases.phantom import make_phantom
from app.cases.storage import (
    APPROX_FILE,
    DICOM_FILE,
    DISPLAY_FILE,
    EXACT_FILE,
    LEGACY_FULL_FILE,
    image_store,
)
from app.extensions import db

PASSWORD = "bench-password-123"
MBIT = 2
LATENCY_MS = 100
TARGETS = {"first": 1.0, "display": 2.5, "approx": 5.0}
EXACT_BYTES_TARGET = 1.05
STAGE_KEYS = {"first": "preview", "display": "display", "approx": "approx", "exact": "exact"}


def rg1() -> bytes:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("RG1_UNCR.dcm")).read_bytes()


def chest_radiograph() -> bytes:
    """A 2500 (rows) x 2048 (columns) 12-bit DX file built from the synthetic phantom."""
    phantom = make_phantom(7, ("cavitary_lesion",), size=2048)
    pixels_ = np.pad(phantom.pixels, ((226, 226), (0, 0)), mode="edge")
    return dataset_bytes(dx_dataset(pixels_, bits_stored=12, pixel_spacing_mm=0.17))


def as_stored_before_htj2k(image: CaseImage) -> None:
    """Today's path: the files and sizes an image stored before HTJ2K has (the 16-bit PNG
    at zlib level 1, as the earlier ingest wrote it)."""
    from PIL import Image

    store = image_store()
    samples = pixels.decode_exact16(store.read(image.storage_key, EXACT_FILE))
    png = io.BytesIO()
    Image.fromarray(samples).save(png, format="PNG", compress_level=1)
    store.replace(image.storage_key, {LEGACY_FULL_FILE: png.getvalue()})
    for name in (DISPLAY_FILE, APPROX_FILE, EXACT_FILE):
        store.remove(image.storage_key, name)
    image.sizes = {"thumbnail": image.sizes["thumbnail"], "preview": image.sizes["preview"],
                   "full": len(png.getvalue())}
    db.session.commit()


def serve(tmp: Path, images: dict[str, bytes]):
    """The portal with each image imported twice: as ingest stores it now, and as stored
    before HTJ2K (a different pixel, so the second import is not a duplicate)."""
    from flask_migrate import upgrade

    app = create_app({"INSTANCE_PATH": str(tmp), "SECRET_KEY": "bench", "DEID_SECRET": "bench",
                      "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024,
                      "ARGON2_PARALLELISM": 1,
                      # The bench signs in through the form; the second step is not measured.
                      "REQUIRE_2FA": False})
    cases: dict[str, dict[str, Any]] = {}
    with app.app_context():
        upgrade(directory=str(MIGRATIONS_DIR))
        trainer = create_user(email="b@example.org", full_name="Bench", username="bench",
                              roles=[Role.TRAINER], password=PASSWORD)
        for name, data in images.items():
            info: dict[str, Any] = {}
            for path in ("htj2k", "png"):
                body = data if path == "htj2k" else _nudged(data)
                [result] = import_files([Source(f"{name}-{path}.dcm", lambda b=body: b)],
                                        actor=trainer, options=ImportOptions()).results
                assert result.status == "imported", result.reason
                image = db.session.get_one(CaseImage, result.image_id)
                if path == "png":
                    as_stored_before_htj2k(image)
                info[path] = result.case_id
            image = db.session.get_one(CaseImage, import_id(info["htj2k"]))
            store = image_store()
            ds_bytes = store.read(image.storage_key, DICOM_FILE)
            info["sizes"] = dict(image.sizes)
            info["j2k_lossless"] = j2k_lossless_bytes(ds_bytes)
            info["shape"] = (image.rows, image.columns, image.bits_stored)
            cases[name] = info
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, cases


def import_id(case_id: int) -> int:
    from sqlalchemy import select

    return db.session.scalar(select(CaseImage.id).where(CaseImage.case_id == case_id))


def _nudged(data: bytes) -> bytes:
    """The same file with one pixel changed by one: another image to the library."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    values = ds.pixel_array.copy()
    values[0, 0] ^= 1
    ds.PixelData = values.tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def j2k_lossless_bytes(dicom: bytes) -> int:
    """JPEG 2000 lossless (OpenJPEG through imagecodecs) of the same stored pixels."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(dicom))
    stored = pixels.stored_pixels(ds)
    return len(imagecodecs.jpeg2k_encode(np.ascontiguousarray(stored), level=0,
                                         reversible=True))


def measure(browser, base: str, case_id: int) -> dict[str, float]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(base + "/auth/login")
    page.fill("#username", "bench")
    page.fill("#password", PASSWORD)
    page.click("form[action$=\"/auth/login\"] [type=submit]")  # not the language switcher
    page.wait_for_load_state()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": LATENCY_MS,
        "downloadThroughput": MBIT * 1_000_000 / 8, "uploadThroughput": MBIT * 1_000_000 / 8,
    })
    urls: dict[str, str] = {}
    sizes: dict[str, int] = {}
    cdp.on("Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"],
                                                                    e["request"]["url"]))
    cdp.on("Network.loadingFinished",
           lambda e: sizes.__setitem__(urls.get(e["requestId"], "?"), e["encodedDataLength"]))
    page.goto(f"{base}/viewer/cases/{case_id}")
    page.wait_for_function(
        "() => window.cxrViewer && (window.cxrViewer.state().panes[0].fullLoaded"
        " || window.cxrViewer.state().panes[0].error)", timeout=300_000, polling=50)
    state = page.evaluate("() => window.cxrViewer.state().panes[0]")
    context.close()
    if state["error"]:
        raise SystemExit(f"the viewer failed: {state['error']}")
    times = {k: state["stageTimes"].get(stage) for k, stage in STAGE_KEYS.items()}
    out = {k: (v / 1000 if v is not None else float("nan")) for k, v in times.items()}
    for kind in ("preview", "display", "approx", "exact", "full"):
        out[f"{kind}_bytes"] = sum(n for u, n in sizes.items() if f"/{kind}?" in u)
    return out


def median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="A B pairs per image")
    args = parser.parse_args()
    ratios: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        server, cases = serve(Path(tmp), {"RG1": rg1(), "2500x2048": chest_radiograph()})
        base = f"http://127.0.0.1:{server.server_port}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True,
                args=["--no-sandbox", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync"])
            print(f"{MBIT} Mbit/s, {LATENCY_MS} ms RTT; median of {args.runs} runs, "
                  "new path and PNG path alternating (A B A B)")
            for name, info in cases.items():
                new: list[dict[str, float]] = []
                old: list[dict[str, float]] = []
                for _ in range(args.runs):
                    new.append(measure(browser, base, info["htj2k"]))
                    old.append(measure(browser, base, info["png"]))
                rows, columns, bits = info["shape"]
                print(f"\n{name}: {columns} x {rows}, {bits}-bit; J2K lossless "
                      f"{info['j2k_lossless']:,} B")
                for key, label in (("first", "first image (preview)"),
                                   ("display", "full-res default window (8-bit JPEG)"),
                                   ("approx", "first 16-bit stage (lossy HTJ2K)"),
                                   ("exact", "exact 16-bit (lossless JPEG-LS)")):
                    stage = STAGE_KEYS[key]
                    limit = f"  target {TARGETS[key]:.1f} s" if key in TARGETS else ""
                    print(f"  {label:40s} {median(new, key):6.2f} s "
                          f"{median(new, stage + '_bytes'):>11,.0f} B{limit}")
                print(f"  {'PNG path: preview':40s} {median(old, 'first'):6.2f} s "
                      f"{median(old, 'preview_bytes'):>11,.0f} B")
                print(f"  {'PNG path: exact 16-bit (the PNG)':40s} {median(old, 'exact'):6.2f} s "
                      f"{median(old, 'full_bytes'):>11,.0f} B")
                exact_ratio = info["sizes"]["exact"] / info["j2k_lossless"]
                print(f"  exact bytes / J2K lossless bytes: {exact_ratio:.3f}"
                      f"  (target <= {EXACT_BYTES_TARGET})")
                ratios.append(
                    f"{name}: first {median(new, 'first') / TARGETS['first']:.2f}x"
                    f" display {median(new, 'display') / TARGETS['display']:.2f}x"
                    f" 16-bit {median(new, 'approx') / TARGETS['approx']:.2f}x"
                    f" exact-bytes {exact_ratio / EXACT_BYTES_TARGET:.2f}x of target;"
                    f" 16-bit data {median(new, 'approx') / median(old, 'exact'):.2f}x"
                    f" exact {median(new, 'exact') / median(old, 'exact'):.2f}x of the PNG path")
            browser.close()
        server.shutdown()
    print("\n" + " | ".join(ratios))


if __name__ == "__main__":
    main()
