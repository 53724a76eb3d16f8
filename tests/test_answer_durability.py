"""Answers are never lost: every acknowledged save has its own revision, a save based on an
older revision is refused (409, with the newer answer) instead of silently overwriting it;
the error page survives a database outage; the SQLite database is its owner's alone."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.auth.roles import Role
from app.auth.services import create_user
from app.extensions import db
from app.quizzes.models import Attempt, AttemptAnswer
from tests.cohort import run_together
from tests.conftest import (
    PASSWORD,
    IsolatedClient,
    base_config,
    csrf_token,
    login,
    migrate_database,
    postgresql_only,
)
from tests.realservers import create_database, postgres_server
from tests.test_attempts import cases, post_start, practice, save_url  # noqa: F401 (fixtures)


def _answer(attempt_id: int) -> AttemptAnswer:
    db.session.expire_all()
    attempt = db.session.get(Attempt, attempt_id)
    return db.session.scalars(select(AttemptAnswer).where(
        AttemptAnswer.attempt_id == attempt_id,
        AttemptAnswer.case_id == attempt.case_order[0])).one()


@pytest.fixture
def started(client, practice, make_user):  # noqa: F811 (fixture)
    """A trainee signed in with a practice attempt open at its first case: (client, attempt
    id, the CSRF token of the case page)."""
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, username="reader")
    login(client, trainee.username)
    response = post_start(client, practice)
    attempt = db.session.scalars(select(Attempt)).one()
    return client, attempt.id, csrf_token(client, response.headers["Location"])


def test_a_save_based_on_an_older_revision_is_refused_with_the_newer_answer(started):
    """Two tabs showed revision 1; the first saves (revision 2); the second's save based on
    revision 1 would overwrite it: refused with 409, reason "stale" and the newer answer."""
    client, attempt_id, token = started
    url, headers = save_url(attempt_id, 1), {"X-CSRFToken": token}
    first = client.post(url, json={"answers": {"overall": "normal"}, "marks": [], "revision": 0},
                        headers=headers)
    assert first.status_code == 200 and first.get_json()["revision"] == 1
    tab_a = client.post(url, json={"answers": {"overall": "abnormal"}, "marks": [],
                                   "revision": 1}, headers=headers)
    assert tab_a.status_code == 200 and tab_a.get_json()["revision"] == 2
    tab_b = client.post(url, json={"answers": {"overall": "normal"}, "marks": [],
                                   "revision": 1}, headers=headers)
    assert tab_b.status_code == 409
    body = tab_b.get_json()
    assert body["reason"] == "stale" and body["ended"] is False
    assert body["revision"] == 2 and body["answers"] == {"overall": "abnormal"}
    assert "another window" in body["message"]
    saved = _answer(attempt_id)
    assert (saved.revision, saved.answers) == (2, {"overall": "abnormal"})
    # The page, told of revision 2, saves again on top of it.
    again = client.post(url, json={"answers": {"overall": "normal"}, "marks": [],
                                   "revision": 2}, headers=headers)
    assert again.status_code == 200 and again.get_json()["revision"] == 3


@pytest.mark.parametrize("revision", [-1, "1", 1.5, True, [1]])
def test_a_revision_that_is_not_a_whole_number_is_refused_with_a_reason(started, revision):
    client, attempt_id, token = started
    response = client.post(save_url(attempt_id, 1), json={"answers": {"overall": "normal"},
                                                          "revision": revision},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 400
    assert "revision" in response.get_json()["message"]
    assert db.session.scalars(select(AttemptAnswer)).all() == []  # nothing written


def test_a_save_based_on_a_revision_from_the_future_is_refused(started):
    client, attempt_id, token = started
    response = client.post(save_url(attempt_id, 1), json={"answers": {}, "revision": 5},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 409 and "does not exist" in response.get_json()["message"]


def _signed_in_client(app, username: str, attempt_id: int) -> tuple[IsolatedClient, str]:
    """Another device: its own cookies and CSRF token."""
    other = app.test_client()
    login(other, username, PASSWORD)
    return other, csrf_token(other, f"/training/attempts/{attempt_id}/1")


@postgresql_only
def test_two_devices_saving_the_same_revision_at_once_one_wins_one_is_told(app, started):
    """Two signed-in devices (their own sessions, connections and transactions) both show
    revision 1 and save at the same moment: exactly one is acknowledged (revision 2), the
    other gets 409 with that newer answer; nothing acknowledged is overwritten."""
    client, attempt_id, token = started
    url = save_url(attempt_id, 1)
    assert client.post(url, json={"answers": {"overall": "normal"}, "revision": 0},
                       headers={"X-CSRFToken": token}).status_code == 200
    devices = [_signed_in_client(app, "reader", attempt_id) for _ in range(2)]
    db.session.remove()
    choices = ["abnormal", "normal"]

    def save(n: int):
        device, device_token = devices[n]
        return lambda: device.post(url, json={"answers": {"overall": choices[n]}, "marks": [],
                                              "revision": 1},
                                   headers={"X-CSRFToken": device_token})

    for _ in range(5):  # several rounds: the collision is not left to one lucky timing
        responses = run_together([save(0), save(1)], timeout=60)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 409], [r.get_data(as_text=True)[:300] for r in responses]
        [won] = [r for r in responses if r.status_code == 200]
        [lost] = [r for r in responses if r.status_code == 409]
        assert won.get_json()["revision"] == 2
        assert lost.get_json()["revision"] == 2
        winner = choices[responses.index(won)]
        assert lost.get_json()["answers"] == {"overall": winner}
        saved = _answer(attempt_id)
        assert (saved.revision, saved.answers) == (2, {"overall": winner})
        # Back to revision 1 for the next round.
        _answer(attempt_id).revision = 1
        db.session.commit()
        db.session.remove()


@postgresql_only
def test_concurrent_acknowledged_saves_each_get_their_own_revision(app, started):
    """Saves without a revision (last one wins) at the same moment from several devices:
    each acknowledgement names a different revision, and the stored one is the highest."""
    _client, attempt_id, _token = started
    devices = [_signed_in_client(app, "reader", attempt_id) for _ in range(4)]
    db.session.remove()
    url = save_url(attempt_id, 1)

    def save(n: int):
        device, device_token = devices[n]
        return lambda: device.post(url, json={"answers": {"overall": "normal"}},
                                   headers={"X-CSRFToken": device_token})

    responses = run_together([save(n) for n in range(4)], timeout=60)
    assert [r.status_code for r in responses] == [200] * 4
    revisions = sorted(r.get_json()["revision"] for r in responses)
    assert revisions == [1, 2, 3, 4]
    assert _answer(attempt_id).revision == 4


# ---- the error page during a database outage ------------------------------------------------

OUTAGE_USER = {"username": "outage.reader", "full_name": "Amina Outage-Reader",
               "email": "amina.outage@example.org"}


def _portal_signed_in(database_url: str, instance: Path) -> tuple[Flask, IsolatedClient, str]:
    """A portal of its own on ``database_url`` (migrated from empty) and a trainee signed in
    to it: (app, client, the CSRF token of a page)."""
    migrate_database(database_url, instance)
    portal = create_app(base_config(database_url, instance))
    portal.test_client_class = IsolatedClient
    with portal.app_context():
        create_user(roles=(Role.TRAINEE_RADIOLOGIST,), password=PASSWORD, **OUTAGE_USER)
    client = portal.test_client()
    assert login(client, OUTAGE_USER["username"]).status_code == 302
    return portal, client, csrf_token(client, "/training/")


def _assert_unavailable_pages(client: IsolatedClient, token: str, secrets: list[str]) -> None:
    """Every kind of page answers 503 with Retry-After: HTML without the database (no
    name of the signed-in person, nothing internal), JSON for the autosave."""
    # The last: a 404, whose full error page would ask the database who is signed in.
    for path in ("/training/", "/", "/training/attempts/1/1", "/no-such-page"):
        page = client.get(path)
        assert page.status_code == 503, (path, page.get_data(as_text=True)[:500])
        assert int(page.headers["Retry-After"]) > 0
        assert page.mimetype == "text/html"
        html = page.get_data(as_text=True)
        assert "cannot reach its database" in html and "<h1>" in html
        for secret in secrets:
            assert secret not in html
        assert "Traceback" not in html and "OperationalError" not in html
    save = client.post("/training/attempts/1/1/answer", json={"answers": {}, "revision": 0},
                       headers={"X-CSRFToken": token})
    assert save.status_code == 503 and int(save.headers["Retry-After"]) > 0
    body = save.get_json()
    assert body["reason"] == "database_unavailable" and "try again" in body["message"]


def test_the_error_page_renders_while_the_sqlite_database_is_gone(tmp_path):
    """The database's folder disappears (a volume unmounted) while a trainee is signed in:
    their pages answer 503 with Retry-After, and work again once it is back."""
    folder = tmp_path / "data"
    folder.mkdir()
    url = f"sqlite:///{folder / 'portal.sqlite3'}"
    portal, client, token = _portal_signed_in(url, tmp_path / "instance")
    assert client.get("/training/").status_code == 200
    folder.rename(tmp_path / "elsewhere")
    with portal.app_context():
        db.engine.dispose()  # open connections would still read the moved file
    try:
        _assert_unavailable_pages(client, token, [*OUTAGE_USER.values(), str(folder),
                                                  portal.config["SECRET_KEY"]])
    finally:
        (tmp_path / "elsewhere").rename(folder)
    assert client.get("/training/").status_code == 200  # back: the session still holds
    with portal.app_context():
        db.engine.dispose()


@pytest.mark.postgres
def test_the_error_page_renders_while_the_postgresql_server_is_stopped(tmp_path):
    """The PostgreSQL server stops while a trainee is signed in (its pooled connections
    break, new ones are refused): 503 pages that need no database, JSON for the autosave."""
    with postgres_server() as base:
        url = create_database(base, "outage")
        portal, client, token = _portal_signed_in(url, tmp_path / "instance")
        assert client.get("/training/").status_code == 200
    # The server is stopped here (and its data removed): a real outage.
    _assert_unavailable_pages(client, token, [*OUTAGE_USER.values(), url.split("@")[-1],
                                              portal.config["SECRET_KEY"]])
    with portal.app_context():
        db.engine.dispose()


# ---- the SQLite database file is its owner's alone --------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def test_a_new_sqlite_database_and_its_journals_are_readable_by_their_owner_alone(tmp_path):
    """``cxr-academy db upgrade`` on a fresh instance folder (the database of a zero-setup
    install), under the common umask 022: the database file is 0600, and so are the
    rollback journal and the write-ahead log SQLite makes beside it."""
    instance = tmp_path / "instance"
    env = {**os.environ, "CXR_ACADEMY_INSTANCE_PATH": str(instance)}
    env.pop("CXR_ACADEMY_SQLALCHEMY_DATABASE_URI", None)
    # The console script's entry point, run from this checkout.
    script = "import sys; from app.cli import main; sys.argv[0] = 'cxr-academy'; main()"
    result = subprocess.run([sys.executable, "-c", script, "db", "upgrade"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300, check=False,
                            preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0, result.stderr[-2000:]
    database = instance / "cxr_academy.sqlite3"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600

    def mode_of_journal(journal_mode: str, suffix: str) -> int:
        with sqlite3.connect(database) as conn:
            conn.execute(f"PRAGMA journal_mode={journal_mode}")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TABLE probe (x)")  # a page written: the journal exists now
            mode = stat.S_IMODE((instance / f"cxr_academy.sqlite3{suffix}").stat().st_mode)
            conn.rollback()
            return mode

    old = os.umask(0o022)
    try:
        assert mode_of_journal("DELETE", "-journal") == 0o600
        assert mode_of_journal("WAL", "-wal") == 0o600
    finally:
        os.umask(old)


def test_an_existing_sqlite_database_keeps_its_permissions(tmp_path):
    """Only a file the portal creates is made 0600: an administrator's own choice for an
    existing database (a group that backs it up) is left as it is."""
    database = tmp_path / "kept.sqlite3"
    sqlite3.connect(database).close()
    database.chmod(0o640)
    portal = create_app(base_config(f"sqlite:///{database}", tmp_path / "instance"))
    with portal.app_context():
        db.session.execute(select(1))
        db.session.remove()
        db.engine.dispose()
    assert stat.S_IMODE(database.stat().st_mode) == 0o640
