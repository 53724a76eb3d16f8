"""A page names the portal's stylesheets and scripts by the hash of their content, and such a
URL is cached by the browser for a year: an exam page is not followed by a dozen requests
asking whether each file changed."""

from __future__ import annotations

import re

from flask import url_for


def _assets(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/(?:viewer/)?static/[^"]+)"', html)


def test_pages_name_static_files_by_their_content_and_they_are_kept_a_year(client):
    page = client.get("/auth/login").get_data(as_text=True)
    assets = _assets(page)
    assert assets and all(re.search(r"\?v=[0-9a-f]{12}$", url) for url in assets), assets
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200
        assert "max-age=31536000" in response.headers["Cache-Control"], url


def test_the_viewers_files_are_versioned_too(app, client):
    with app.test_request_context():
        url = url_for("viewer.static", filename="viewer/main.js")
    assert re.search(r"\?v=[0-9a-f]{12}$", url), url
    assert "max-age=31536000" in client.get(url).headers["Cache-Control"]


def test_a_file_asked_for_with_another_version_or_none_is_kept_briefly(client):
    """A module imported by a relative name, or an old page's link after an upgrade, is not
    pinned for a year."""
    for url in ("/static/css/app.css", "/static/css/app.css?v=000000000000",
                "/viewer/static/viewer/viewer.js"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "max-age=300" in response.headers["Cache-Control"], url
