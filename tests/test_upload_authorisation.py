"""The 1 GiB case upload limit is a trainer's or administrator's: anyone else is answered
from the request line and headers alone, over real HTTP, before the body is read or spooled
to a temporary file; a trainer's large upload still goes through."""

from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import werkzeug.wrappers.request as werkzeug_request

from app.auth.roles import Role
from app.cases.models import Case
from app.extensions import db
from app.jobs.models import JobItem
from tests.conftest import login
from tests.dicom_factory import cr_dataset, to_bytes

MB = 1024 * 1024
BOUNDARY = "cxrboundary7d1f"
CHUNK = 64 * 1024


@pytest.fixture
def spooled(monkeypatch) -> list[int]:
    """Every file part the server starts to keep (in memory or a temporary file)."""
    calls: list[int] = []
    original: Callable = werkzeug_request.default_stream_factory

    def counting(*args, **kwargs):
        calls.append(kwargs.get("total_content_length") or 0)
        return original(*args, **kwargs)

    monkeypatch.setattr(werkzeug_request, "default_stream_factory", counting)
    return calls


def _multipart(fields: dict[str, str], files: list[tuple[str, bytes]]) -> bytes:
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
             f"{value}\r\n".encode() for name, value in fields.items()]
    parts += [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
              f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
              + data + b"\r\n" for name, data in files]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _post(base: str, body: bytes, cookie: str | None = None) -> tuple[str, bytes, int]:
    """POST ``body`` to /cases/upload over a raw socket, chunk by chunk, watching for an
    answer between chunks. Returns the status line, the response and the bytes sent."""
    url = urlsplit(base)
    head = ["POST /cases/upload HTTP/1.1", f"Host: {url.netloc}",
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
            f"Content-Length: {len(body)}", "Connection: close"]
    if cookie:
        head.append(f"Cookie: {cookie}")
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    sent = 0
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        while sent < len(body):
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered: stop sending, as a browser would
            try:
                sent += sock.send(body[sent:sent + CHUNK])
            except (BrokenPipeError, ConnectionResetError):
                break
        response = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            response += data
            if b"\r\n\r\n" in response and _complete(response):
                break
    finally:
        sock.close()
    return response.split(b"\r\n", 1)[0].decode(), response, sent


def _complete(response: bytes) -> bool:
    head, _, rest = response.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    return length is not None and len(rest) >= int(length.group(1))


def _junk(size: int) -> bytes:
    return bytes(range(256)) * (size // 256)


def test_anonymous_large_upload_is_answered_before_the_body_is_read(portal_url, spooled):
    body = _multipart({"csrf_token": "x", "source": "upload"}, [("big.dcm", _junk(40 * MB))])
    status, response, sent = _post(portal_url, body)
    assert status == "HTTP/1.1 302 FOUND", response[:300]
    assert b"Location: /auth/login?next=/cases/upload" in response
    assert sent < len(body) // 2, f"{sent} of {len(body)} bytes sent before the answer"
    assert spooled == []


def _session(app, make_user, role: Role) -> tuple[str, str]:
    """A signed-in session cookie and the upload form's CSRF token, as a browser holds them."""
    client = app.test_client()
    user = make_user(role)
    assert login(client, user.username).status_code == 302
    page = client.get("/cases/upload")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                      r'value="([^"]+)"[^>]*name="csrf_token"', page.get_data(as_text=True))
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    return f"{cookie.key}={cookie.value}", (token.group(1) or token.group(2)) if token else ""


def test_trainee_large_upload_is_refused_before_the_body_is_read(
        app, portal_url, make_user, spooled):
    cookie, _ = _session(app, make_user, Role.TRAINEE_RADIOLOGIST)
    body = _multipart({"csrf_token": "x", "source": "upload"}, [("big.dcm", _junk(40 * MB))])
    status, response, sent = _post(portal_url, body, cookie)
    assert status == "HTTP/1.1 403 FORBIDDEN", response[:300]
    assert b"This page is only for: trainer, administrator." in response
    assert sent < len(body) // 2, f"{sent} of {len(body)} bytes sent before the answer"
    assert spooled == []


def test_trainer_uploads_more_than_the_global_limit(app, portal_url, make_user, spooled):
    cookie, token = _session(app, make_user, Role.TRAINER)
    assert token
    dicom = to_bytes(cr_dataset(seed=3, rows=64, columns=64))
    body = _multipart({"csrf_token": token, "source": "upload"},
                      [("chest.dcm", dicom), ("padding.bin", _junk(20 * MB))])
    assert len(body) > app.config["MAX_CONTENT_LENGTH"]
    status, response, sent = _post(portal_url, body, cookie)
    assert sent == len(body)
    # Taken: the import job's page is next (the job ran at once: JOB_QUEUE_URL immediate).
    assert status == "HTTP/1.1 303 SEE OTHER", response[:500]
    assert b"Location: /jobs/" in response
    assert len(db.session.scalars(db.select(JobItem)).all()) == 2  # chest.dcm, padding.bin
    assert len(db.session.scalars(db.select(Case)).all()) == 1
    assert len(spooled) == 2


def test_trainer_upload_over_the_upload_limit_is_413_before_the_body_is_read(
        app, portal_url, make_user, spooled):
    app.config["CASE_UPLOAD_MAX_BYTES"] = 8 * MB
    cookie, token = _session(app, make_user, Role.TRAINER)
    body = _multipart({"csrf_token": token, "source": "upload"}, [("big.dcm", _junk(40 * MB))])
    status, response, sent = _post(portal_url, body, cookie)
    assert status == "HTTP/1.1 413 REQUEST ENTITY TOO LARGE", response[:300]
    assert b"larger than the limit of 8 MB" in response
    assert sent < len(body) // 2
    assert spooled == []
