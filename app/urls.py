"""Links: absolute ones for e-mails, the command line and printed documents, and the
same-site check of a redirect target a form sends."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app


def checked_base_url(value: str) -> str:
    """PUBLIC_BASE_URL as given, when it is an http(s) address with a host and nothing
    after the path; a mistake here would print a dead address on every certificate."""
    url = urlsplit(str(value).strip())
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise ValueError(
            f"PUBLIC_BASE_URL must be the portal's public http(s) address such as "
            f"https://cxr.example.org, not {value!r}"
        )
    return str(value).strip().rstrip("/")


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute URL on PUBLIC_BASE_URL, never on the request's Host header: a link
    sent by e-mail or printed on a certificate must not point wherever the requester
    chose (a forged Host would make a reset link or a QR code lead elsewhere)."""
    base = urlsplit(checked_base_url(current_app.config["PUBLIC_BASE_URL"]))
    # A map adapter bound to the configured base, not url_for: url_for takes the host of
    # the request in progress.
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "http"
    )
    return adapter.build(endpoint, values, force_external=True)


def same_site_path(target: str | None) -> str | None:
    """``target`` when it is a path of this site, else None: a sign-in or a language switch
    never sends anyone to another host."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target:  # browsers read "/\evil.example" as another host
        return None
    return target
