"""The stores several app servers share (Redis: rate limits and the job queue): limits
counted there, a clear stop at start when it cannot be reached, and a 503 with the reason,
never a 500, when it stops answering later. The two-server test is test_two_servers.py."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from limits.errors import ConfigurationError
from sqlalchemy import select

from app import create_app
from app.auth.roles import Role
from app.auth.routes import TOO_MANY_FAILURES
from app.errors import SHARED_STORE_REASON
from app.extensions import db
from app.jobs.lifecycle import spool_dir
from app.jobs.models import Job
from app.shared_services import (
    SharedServiceUnreachable,
    check_shared_services,
    shown_url,
)
from tests.conftest import IsolatedClient, base_config, login
from tests.dicom_factory import cr_dataset, to_bytes
from tests.forms import submit_form
from tests.realservers import free_port, gunicorn_command

REPO = Path(__file__).resolve().parents[1]


def _closed_redis_url(password: str | None = None) -> str:
    """A Redis URL on a port nothing listens on."""
    auth = f":{password}@" if password else ""
    return f"redis://{auth}127.0.0.1:{free_port()}/0"


@pytest.fixture
def silent_redis_url() -> Iterator[str]:
    """A Redis that hangs: the port accepts connections (the kernel's backlog) but nothing
    ever answers, as a stuck or overloaded server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def _app_on(app: Flask, **settings: object) -> Flask:
    """A second app on the test's database (whose tables the ``app`` fixture empties after
    the test) with ``settings``; requests run in their own contexts as on a server."""
    config = base_config(app.config["SQLALCHEMY_DATABASE_URI"], Path(app.instance_path))
    other = create_app({**config, **settings})
    other.test_client_class = IsolatedClient
    return other


def _fail_sign_in(client, n: int):
    return submit_form(client, "/auth/login", button="Sign in",
                       fields={"username": f"nobody-{n}", "password": "wrong-password-123"})


# ---- counted in Redis ---------------------------------------------------------------------------


def test_failed_sign_ins_are_counted_in_redis_and_outlive_a_restart(app, redis_base_url):
    url = f"{redis_base_url}/2"
    store = redis.Redis.from_url(url)
    store.flushdb()
    try:
        first = _app_on(app, RATELIMIT_STORAGE_URI=url).test_client()
        for n in range(6):
            assert _fail_sign_in(first, n).status_code == 401
        assert store.dbsize() > 0  # the count is in Redis, not in this process
        # A server started afterwards (or another one) goes on from the same count.
        second = _app_on(app, RATELIMIT_STORAGE_URI=url).test_client()
        for n in range(6, 10):
            assert _fail_sign_in(second, n).status_code == 401
        refused = _fail_sign_in(second, 10)
        assert refused.status_code == 429
        assert TOO_MANY_FAILURES in refused.get_data(as_text=True)
    finally:
        store.flushdb()
        store.close()


# ---- a store that cannot be reached ----------------------------------------------------------


def test_the_check_names_the_setting_and_hides_the_password(app):
    secret = "hunter2-redis-Secret"
    app.config["RATELIMIT_STORAGE_URI"] = _closed_redis_url(secret)
    app.config["JOB_QUEUE_URL"] = _closed_redis_url()
    with pytest.raises(SharedServiceUnreachable) as caught:
        check_shared_services(app, timeout=1)
    message = str(caught.value)
    assert "RATELIMIT_STORAGE_URI (redis://:***@127.0.0.1:" in message
    assert "JOB_QUEUE_URL (redis://127.0.0.1:" in message
    assert "cannot be reached" in message and "Start Redis or correct the setting" in message
    assert secret not in message


def test_the_check_passes_on_a_running_redis_and_ignores_other_stores(app, redis_base_url):
    app.config["RATELIMIT_STORAGE_URI"] = f"{redis_base_url}/0"
    app.config["JOB_QUEUE_URL"] = f"{redis_base_url}/1"
    check_shared_services(app, timeout=1)
    app.config["RATELIMIT_STORAGE_URI"] = "memory://"
    app.config["JOB_QUEUE_URL"] = "immediate"
    check_shared_services(app, timeout=1)


def test_shown_url_keeps_the_user_name_but_not_the_password():
    assert shown_url("redis://cxr:pw@redis.internal:6380/1") == "redis://cxr:***@redis.internal:6380/1"
    assert shown_url("rediss://redis.internal/0") == "rediss://redis.internal/0"


def test_an_unknown_rate_limit_store_stops_the_app_at_start(app):
    config = base_config(app.config["SQLALCHEMY_DATABASE_URI"], Path(app.instance_path))
    with pytest.raises(ConfigurationError, match="unknown storage scheme"):
        create_app({**config, "RATELIMIT_STORAGE_URI": "redsi://127.0.0.1:6379"})


@pytest.mark.parametrize("setting", ["RATELIMIT_STORAGE_URI", "JOB_QUEUE_URL"])
@pytest.mark.parametrize(("url", "reason"), [
    ("redis://:pw-Secret-9@127.0.0.1:notaport/0", "Port could not be cast to integer"),
    ("redis://127.0.0.1:6379/notadb", "names a database by its number, not 'notadb'"),
])
def test_a_redis_url_that_cannot_be_one_stops_the_app_at_start(app, setting, url, reason):
    config = base_config(app.config["SQLALCHEMY_DATABASE_URI"], Path(app.instance_path))
    with pytest.raises(ValueError, match=f"{setting} is not a usable Redis URL") as caught:
        create_app({**config, setting: url})
    assert reason in str(caught.value)
    assert "pw-Secret-9" not in str(caught.value)


def test_wrong_redis_credentials_are_named_as_such(app, redis_base_url):
    port = redis_base_url.rsplit(":", 1)[1]
    app.config["RATELIMIT_STORAGE_URI"] = f"redis://cxr:wrong-Secret-7@127.0.0.1:{port}/0"
    with pytest.raises(SharedServiceUnreachable) as caught:
        check_shared_services(app, ("RATELIMIT_STORAGE_URI",), timeout=2)
    message = str(caught.value)
    assert f"RATELIMIT_STORAGE_URI (redis://cxr:***@127.0.0.1:{port}/0)" in message
    assert "refused the credentials" in message
    assert "wrong-Secret-7" not in message


def test_a_server_warns_of_a_shared_queue_with_limits_counted_per_process(
        app, redis_base_url, monkeypatch, caplog):
    from app.wsgi import create_server_app

    settings = {"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                "INSTANCE_PATH": app.instance_path, "JOB_QUEUE_URL": f"{redis_base_url}/1"}
    for name, value in settings.items():
        monkeypatch.setenv(f"CXR_ACADEMY_{name}", value)
    monkeypatch.setenv("CXR_ACADEMY_RATELIMIT_STORAGE_URI", "memory://")
    create_server_app()
    assert "RATELIMIT_STORAGE_URI is memory://: every process counts" in caplog.text
    caplog.clear()
    monkeypatch.setenv("CXR_ACADEMY_RATELIMIT_STORAGE_URI", f"{redis_base_url}/0")
    create_server_app()
    assert "RATELIMIT_STORAGE_URI" not in caplog.text


def _env(app: Flask, **settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CXR_ACADEMY_INSTANCE_PATH": app.instance_path,
        "CXR_ACADEMY_SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
        **{f"CXR_ACADEMY_{name}": value for name, value in settings.items()},
    }


def test_a_server_stops_at_start_with_the_reason_when_redis_cannot_be_reached(app):
    secret = "hunter2-redis-Secret"
    closed = _closed_redis_url(secret)
    command = gunicorn_command(f"127.0.0.1:{free_port()}", "app.wsgi:create_server_app()",
                               workers=1)
    run = subprocess.run(command, env=_env(app, RATELIMIT_STORAGE_URI=closed), cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=False)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "CXR Academy cannot start: RATELIMIT_STORAGE_URI (redis://:***@127.0.0.1:" in output
    assert "cannot be reached" in output
    assert "Traceback" not in output
    assert secret not in output


def test_the_worker_stops_at_start_with_the_reason_when_its_queue_cannot_be_reached(app):
    run = subprocess.run([sys.executable, "-c", "from app.cli import main; main()", "worker"],
                         env=_env(app, JOB_QUEUE_URL=_closed_redis_url()), cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "JOB_QUEUE_URL (redis://127.0.0.1:" in run.stderr
    assert "cannot be reached" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("page", ["/verify/", "/verify/ABCD-EFGH.json"])
def test_a_store_that_stops_answering_gets_a_503_with_the_reason(app, page):
    client = _app_on(app, RATELIMIT_STORAGE_URI=_closed_redis_url()).test_client()
    wants_json = page.endswith(".json")
    response = client.get(page, headers={"Accept": "application/json"} if wants_json else {})
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    if wants_json:
        assert response.get_json()["reason"] == "shared_store_unavailable"
        assert response.get_json()["message"] == SHARED_STORE_REASON
    else:
        assert SHARED_STORE_REASON in response.get_data(as_text=True)


def test_a_sign_in_while_the_store_is_down_is_refused_with_the_reason(app, make_user):
    make_user(username="amina")
    client = _app_on(app, RATELIMIT_STORAGE_URI=_closed_redis_url()).test_client()
    response = submit_form(client, "/auth/login", button="Sign in",
                           fields={"username": "amina", "password": "wrong-password-123"})
    # The limit cannot be counted: the sign-in is refused (not let through uncounted).
    assert response.status_code == 503
    assert SHARED_STORE_REASON in response.get_data(as_text=True)


def test_a_redis_that_hangs_costs_a_sign_in_seconds_and_a_503(app, make_user, silent_redis_url):
    make_user(username="amina")
    client = _app_on(app, RATELIMIT_STORAGE_URI=silent_redis_url).test_client()
    started = time.monotonic()
    response = submit_form(client, "/auth/login", button="Sign in",
                           fields={"username": "amina", "password": "wrong-password-123"})
    assert response.status_code == 503
    assert SHARED_STORE_REASON in response.get_data(as_text=True)
    # Two tries of a two-second socket timeout (app.shared_services), not a held thread.
    assert time.monotonic() - started < 15


def test_the_check_gives_up_on_a_redis_that_hangs(app, silent_redis_url):
    app.config["RATELIMIT_STORAGE_URI"] = silent_redis_url
    started = time.monotonic()
    with pytest.raises(SharedServiceUnreachable, match=r"RATELIMIT_STORAGE_URI .* cannot be "
                                                       r"reached: Timeout"):
        check_shared_services(app, timeout=1)
    assert time.monotonic() - started < 5


def test_an_upload_while_the_queue_is_down_gets_a_503_with_the_reason(app, make_user):
    trainer = make_user(Role.TRAINER)
    client = _app_on(app, JOB_QUEUE_URL=_closed_redis_url()).test_client()
    assert login(client, trainer.username).status_code == 302
    data = to_bytes(cr_dataset(seed=5, rows=64, columns=48))
    response = submit_form(client, "/cases/upload", button="Import",
                           fields={"files": [(io.BytesIO(data), "chest.dcm")]})
    assert response.status_code == 503
    assert SHARED_STORE_REASON in response.get_data(as_text=True)
    # The job is not left queued for ever with the upload on disk: it failed, saying why.
    [job] = db.session.scalars(select(Job)).all()
    assert job.status == "failed" and "could not be handed to the job queue" in (job.error or "")
    assert not spool_dir(job.id).exists()
