"""The viewer's decoders (HTJ2K, JPEG-LS) as the browser gets them: the vendored
WebAssembly builds, served compressed (a slow clinic link carries a third of the bytes),
under a CSP that lets them compile and nothing more."""

from __future__ import annotations

import zlib
from pathlib import Path

from app.cases.routes import IMAGE_FILES

VENDOR = Path(__file__).resolve().parents[1] / "app" / "static" / "vendor"


def _decoded(response) -> bytes:
    encoding = response.headers.get("Content-Encoding")
    data = response.get_data()
    if encoding == "gzip":
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompress(data)
    return data


def test_the_decoders_are_served_compressed_and_whole(client):
    for name, mimetype in (("openjph/openjphjs.wasm", "application/wasm"),
                           ("openjph/openjphjs.js", "text/javascript"),
                           ("charls/charlswasm_decode.wasm", "application/wasm"),
                           ("charls/charlswasm_decode.js", "text/javascript")):
        response = client.get(f"/static/vendor/{name}",
                              headers={"Accept-Encoding": "gzip, deflate"})
        assert response.status_code == 200 and response.mimetype == mimetype
        assert response.headers["Content-Encoding"] in ("gzip", "deflate")
        body = response.get_data()
        original = (VENDOR / name).read_bytes()
        assert _decoded(response) == original
        assert len(body) < len(original) / 2
    for name in ("openjph/LICENSE", "openjph/VERSION.md", "charls/LICENSE",
                 "charls/LICENSE-CharLS", "charls/VERSION.md"):
        assert (VENDOR / name).is_file()


def test_pages_are_compressed_but_images_are_not(client):
    page = client.get("/auth/login", headers={"Accept-Encoding": "gzip"})
    assert page.headers["Content-Encoding"] == "gzip"
    compressed = set(client.application.config["COMPRESS_MIMETYPES"])
    # JPEG, HTJ2K and JPEG-LS are compressed already: compressing again costs CPU for no bytes.
    served = {mimetype for files in IMAGE_FILES.values() for _, mimetype in files}
    assert "image/jls" in served and compressed.isdisjoint(served)


def test_the_worker_script_may_compile_webassembly_and_nothing_else(client):
    response = client.get("/viewer/static/viewer/htj2k_worker.js")
    assert response.status_code == 200 and response.mimetype == "text/javascript"
    csp = dict(d.strip().split(" ", 1) for d in response.headers["Content-Security-Policy"]
               .split(";"))
    assert csp["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert csp["worker-src"] == "'self'"
