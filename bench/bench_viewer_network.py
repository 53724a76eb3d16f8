"""Bytes and time until the first image and until full resolution in the viewer, on slow
links, for a 2500 x 2048 12-bit chest radiograph, against loading the whole DICOM file.

Run by hand:  .venv/bin/python bench/bench_viewer_network.py
Needs Debian's Chromium at /usr/bin/chromium. Target: first image in under 1.5 s at 2 Mbit/s.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import MIGRATIONS_DIR, create_app
from app.auth.roles import Role
from app.auth.services import create_user
from app.cases.dicom_build import dataset_bytes, dx_dataset
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.phantom import make_phantom
from app.cases.reads import save_read
from app.extensions import db
from app.schemes.registry import get_scheme

PASSWORD = "bench-password-123"
LINKS_MBIT = (2, 10)
LATENCY_MS = 100
RUNS = 3


def chest_radiograph() -> bytes:
    """A 2500 (rows) x 2048 (columns) 12-bit DX file built from the synthetic phantom."""
    phantom = make_phantom(7, ("cavitary_lesion",), size=2048)
    pixels = np.pad(phantom.pixels, ((226, 226), (0, 0)), mode="edge")
    return dataset_bytes(dx_dataset(pixels, bits_stored=12, pixel_spacing_mm=0.17))


def serve(tmp: Path):
    from flask_migrate import upgrade

    app = create_app(
        {
            "INSTANCE_PATH": str(tmp),
            "SECRET_KEY": "bench",
            "DEID_SECRET": "bench",
            "ARGON2_TIME_COST": 1,
            "ARGON2_MEMORY_COST": 1024,
            "ARGON2_PARALLELISM": 1,
        }
    )
    with app.app_context():
        upgrade(directory=str(MIGRATIONS_DIR))
        trainer = create_user(
            email="b@example.org",
            full_name="Bench",
            username="bench",
            roles=[Role.TRAINER],
            password=PASSWORD,
        )
        data = chest_radiograph()
        [result] = import_files(
            [Source("bench.dcm", lambda: data)], actor=trainer, options=ImportOptions()
        ).results
        case_id = result.case_id
        from app.cases.models import Case

        save_read(
            db.session.get(Case, case_id),
            author=trainer,
            scheme=get_scheme("ds3030"),
            answers={"overall": "abnormal", "findings": ["cavitary_lesion"]},
        )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, case_id, len(data)


def measure(browser, base: str, case_id: int, mbit: int) -> dict[str, float]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(base + "/auth/login")
    page.fill("#username", "bench")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": LATENCY_MS,
            "downloadThroughput": mbit * 1_000_000 / 8,
            "uploadThroughput": mbit * 1_000_000 / 8,
        },
    )
    finished: list[tuple[float, float]] = []
    cdp.on(
        "Network.loadingFinished",
        lambda e: finished.append((time.monotonic(), e["encodedDataLength"])),
    )
    start = time.monotonic()
    page.goto(f"{base}/viewer/cases/{case_id}")
    page.wait_for_function(
        "() => window.cxrViewer && window.cxrViewer.state().panes[0].previewShown",
        timeout=120_000,
        polling=10,
    )
    first = time.monotonic()
    page.wait_for_function(
        "() => window.cxrViewer.state().panes[0].fullLoaded", timeout=300_000, polling=20
    )
    full = time.monotonic()
    context.close()
    return {
        "first_s": first - start,
        "full_s": full - start,
        "first_bytes": sum(n for t, n in finished if t <= first),
        "full_bytes": sum(n for _, n in finished),
    }


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server, case_id, dicom_bytes = serve(Path(tmp))
        base = f"http://127.0.0.1:{server.server_port}"
        print(f"image: 2500 x 2048, 12 bits; uncompressed DICOM {dicom_bytes:,} bytes")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium",
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            for mbit in LINKS_MBIT:
                runs = [measure(browser, base, case_id, mbit) for _ in range(RUNS)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                raw_s = dicom_bytes * 8 / (mbit * 1_000_000) + LATENCY_MS / 1000
                print(f"\n{mbit} Mbit/s, {LATENCY_MS} ms latency (median of {RUNS}):")
                print(
                    f"  first image    {med['first_s']:6.2f} s  {med['first_bytes']:>12,.0f} B"
                    f"  ({med['first_bytes'] / dicom_bytes:.1%} of the DICOM)"
                    f"  target < 1.5 s at 2 Mbit/s"
                )
                print(
                    f"  full res.      {med['full_s']:6.2f} s  {med['full_bytes']:>12,.0f} B"
                    f"  ({med['full_bytes'] / dicom_bytes:.1%} of the DICOM)"
                )
                print(
                    f"  whole DICOM    {raw_s:6.2f} s  {dicom_bytes:>12,} B  (a viewer that loads"
                    f" the file; first-image speed-up x{raw_s / med['first_s']:.1f})"
                )
            browser.close()
        server.shutdown()


if __name__ == "__main__":
    main()
