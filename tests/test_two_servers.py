"""Two app servers (gunicorn) on one PostgreSQL, one Redis (rate limits and the job queue),
one shared image folder and one `cxr-academy worker`, all on 127.0.0.1, driven over real
HTTP with one cookie jar: the portal keeps nothing that matters in a server's memory.

Each server has its own instance folder, so nothing reaches it through that folder either:
what they share is the configuration the README's production sketch lists.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from sqlalchemy import select

from app.auth.roles import Role
from app.auth.routes import TOO_MANY_FAILURES
from app.cases.models import Case
from app.extensions import db
from app.jobs.models import Job
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt
from tests.conftest import (
    PASSWORD,
    base_config,
    current_totp,
    migrate_database,
    postgresql_only,
)
from tests.dicom_factory import cr_dataset, to_bytes
from tests.forms import Value, submission
from tests.realservers import create_database, free_port, gunicorn_command, stop_process
from tests.test_attempts import published_tb_case

REPO = Path(__file__).resolve().parents[1]
RATE_LIMIT_DB, QUEUE_DB = 0, 1
START_TIMEOUT = 120  # seconds: two servers and a worker starting on a busy 2-core machine

pytestmark = postgresql_only


@dataclass
class Cluster:
    a: str  # base URLs of the two app servers
    b: str
    database_url: str
    redis_url: str
    images: Path


def _wait_until_up(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"{url} exited at start:\n{log.read_text(errors='replace')[-3000:]}",
                        pytrace=False)
        try:
            if requests.get(url + "/auth/login", timeout=15).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer within {START_TIMEOUT} s:\n"
                        f"{log.read_text(errors='replace')[-3000:]}", pytrace=False)
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(postgres_base_url: str, redis_base_url: str, _migrated_databases: dict[str, str],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The database the postgresql-only ``app`` fixture uses (migrated here if no test did
    so before), a Redis, and the servers: started once for the module, stopped by pid."""
    if "postgresql" not in _migrated_databases:
        url = create_database(postgres_base_url, "cxr_test")
        migrate_database(url, tmp_path_factory.mktemp("migrate-instance"))
        _migrated_databases["postgresql"] = url
    database_url = _migrated_databases["postgresql"]
    work = Path(tempfile.mkdtemp(prefix="cxr-two-servers-"))
    shared = work / "shared"  # what an NFS volume is to real servers
    (shared / "images").mkdir(parents=True)
    (shared / "job-uploads").mkdir()
    ports = {"a": free_port(), "b": free_port()}
    secrets = base_config(database_url, work)  # the test's own keys: it reads what they write
    common = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CXR_ACADEMY_SQLALCHEMY_DATABASE_URI": database_url,
        "CXR_ACADEMY_SECRET_KEY": secrets["SECRET_KEY"],
        "CXR_ACADEMY_DEID_SECRET": secrets["DEID_SECRET"],
        "CXR_ACADEMY_FIELD_ENCRYPTION_KEYS": json.dumps(secrets["FIELD_ENCRYPTION_KEYS"]),
        "CXR_ACADEMY_IMAGE_STORAGE_PATH": str(shared / "images"),
        "CXR_ACADEMY_JOB_SPOOL_PATH": str(shared / "job-uploads"),
        "CXR_ACADEMY_JOB_QUEUE_URL": f"{redis_base_url}/{QUEUE_DB}",
        "CXR_ACADEMY_RATELIMIT_STORAGE_URI": f"{redis_base_url}/{RATE_LIMIT_DB}",
        "CXR_ACADEMY_PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['a']}",
        **{f"CXR_ACADEMY_{k}": str(v) for k, v in secrets.items() if k.startswith("ARGON2_")},
    }
    processes: list[subprocess.Popen] = []
    logs = []

    def start(name: str, command: list[str]) -> tuple[subprocess.Popen, Path]:
        instance = work / name  # each process its own instance folder: nothing shared there
        instance.mkdir()
        log_path = work / f"{name}.log"
        log = log_path.open("wb")
        logs.append(log)
        process = subprocess.Popen(
            command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**common, "CXR_ACADEMY_INSTANCE_PATH": str(instance),
                 "CXR_ACADEMY_SECURITY_LOG_PATH": str(instance / "security.log")})
        processes.append(process)
        return process, log_path

    try:
        servers = {name: start(f"server-{name}", gunicorn_command(
            f"127.0.0.1:{port}", "app.wsgi:create_server_app()", workers=2))
            for name, port in ports.items()}
        start("worker", [sys.executable, "-c", "from app.cli import main; main()", "worker"])
        for name, (process, log_path) in servers.items():
            _wait_until_up(process, f"http://127.0.0.1:{ports[name]}", log_path)
        yield Cluster(a=f"http://127.0.0.1:{ports['a']}", b=f"http://127.0.0.1:{ports['b']}",
                      database_url=database_url, redis_url=redis_base_url,
                      images=shared / "images")
    finally:
        for process in processes:
            stop_process(process)
        for log in logs:
            log.close()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(autouse=True)
def _shared(app, cluster: Cluster) -> Iterator[None]:
    """The test's own app writes images where the servers read them; every test starts with
    no rate-limit counts (the database is emptied by the ``app`` fixture)."""
    app.config["IMAGE_STORAGE_PATH"] = str(cluster.images)
    store = redis.Redis.from_url(f"{cluster.redis_url}/{RATE_LIMIT_DB}")
    store.flushdb()
    yield
    store.flushdb()
    store.close()


class Browser:
    """One cookie jar over real HTTP, on whichever server a request is sent to (cookies do
    not depend on the port), submitting the forms the pages render (tests.forms)."""

    def __init__(self) -> None:
        self.http = requests.Session()

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.http.get(url, allow_redirects=False, timeout=60, **kwargs)

    def submit(self, base: str, page: str, *, html: str | None = None,
               button: str | None = None, action: str | None = None,
               fields: dict[str, Value] | None = None) -> requests.Response:
        """Submit a form of ``page`` on server ``base`` (fetched there unless ``html``)."""
        if html is None:
            shown = self.get(base + page)
            assert shown.status_code == 200, f"{base}{page} answered {shown.status_code}"
            html = shown.text
        method, path, data = submission(html, page, button=button, action=action,
                                        fields=fields)
        plain, files = [], []
        for name, value in data.items(multi=True):
            if isinstance(value, tuple):
                stream, filename = value
                files.append((name, (filename, stream.read(), "application/octet-stream")))
            else:
                plain.append((name, value))
        if method == "post":
            return self.http.post(base + path, data=plain, files=files or None,
                                  allow_redirects=False, timeout=120)
        return self.http.get(base + path.split("?")[0], params=plain, allow_redirects=False,
                             timeout=60)

    def sign_in(self, base: str, username: str, password: str = PASSWORD, *,
                second_step_on: str | None = None) -> requests.Response:
        """Sign in with the password on ``base``, and the second factor's code (if the
        account has one) on ``second_step_on`` (default: the same server)."""
        response = self.submit(base, "/auth/login", button="Sign in",
                               fields={"username": username, "password": password})
        if response.status_code == 302 and response.headers["Location"].endswith(
                "/auth/second-factor"):
            response = self.submit(second_step_on or base, "/auth/second-factor",
                                   button="Verify", fields={"code": current_totp(username)})
        return response


_CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')
_SAVE_URL = re.compile(r'data-save-url="([^"]+)"')


def test_a_trainee_signs_in_on_one_server_and_finishes_the_exam_on_the_other(
        cluster, make_user):
    trainer = make_user(Role.TRAINER, username="expert")
    cases = [published_tb_case(trainer, seed) for seed in (401, 402)]
    db.session.commit()
    exam = create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in cases], actor=None, time_limit_minutes=10)
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, username="trainee")
    browser = Browser()

    assert browser.sign_in(cluster.a, "trainee").status_code == 302
    started = browser.submit(cluster.a, "/training/", action=f"/exercises/{exam.id}/start")
    assert started.status_code == 302, started.text
    attempt_id = int(started.headers["Location"].split("/attempts/")[1].split("/")[0])

    # Every case read and answered on server B, with the session server A started.
    for position in (1, 2):
        page = browser.get(f"{cluster.b}/training/attempts/{attempt_id}/{position}")
        assert page.status_code == 200, page.status_code
        [token] = _CSRF.findall(page.text)
        [save_url] = _SAVE_URL.findall(page.text)
        saved = browser.http.post(cluster.b + save_url, timeout=60, headers={
            "X-CSRFToken": token}, json={
            "answers": {"overall": "abnormal", "findings": ["cavitary_lesion"]}, "marks": []})
        assert saved.status_code == 200, saved.text
        assert saved.json()["revision"] == 1

    # Submitted on A, the result read on B.
    summary = browser.submit(cluster.a, f"/training/attempts/{attempt_id}/1",
                             button="Submit all answers")
    assert summary.status_code == 200, summary.status_code
    finished = browser.submit(cluster.a, f"/training/attempts/{attempt_id}/summary",
                              html=summary.text, button="Submit and finish")
    assert finished.status_code == 302, finished.text
    result = browser.get(f"{cluster.b}/training/attempts/{attempt_id}/result")
    assert result.status_code == 200
    assert 'data-testid="scores"' in result.text

    db.session.expire_all()
    attempt = db.session.get(Attempt, attempt_id)
    assert attempt is not None and attempt.user_id == trainee.id
    assert attempt.state == "submitted"
    assert attempt.sensitivity == 1.0  # both TB cases called TB
    assert {a.case_id for a in attempt.answers} == {c.id for c in cases}


def test_an_upload_through_one_server_is_imported_by_the_worker_and_served_by_the_other(
        cluster, make_user):
    make_user(Role.TRAINER, username="uploader")
    browser = Browser()
    # The password on B, the second step (held in the signed session cookie) on A.
    signed_in = browser.sign_in(cluster.b, "uploader", second_step_on=cluster.a)
    assert signed_in.status_code == 302
    assert not signed_in.headers["Location"].endswith("/auth/second-factor")
    data = to_bytes(cr_dataset(seed=77, rows=96, columns=80))
    uploaded = browser.submit(cluster.a, "/cases/upload", button="Import",
                              fields={"files": [(io.BytesIO(data), "chest.dcm")]})
    assert uploaded.status_code == 303, uploaded.text
    job_path = uploaded.headers["Location"].removeprefix(cluster.a)
    job_id = int(job_path.rstrip("/").split("/")[-1])

    # Only the worker process consumes the queue; the job's page is asked of server B.
    deadline = time.monotonic() + 120
    while True:
        status = browser.get(f"{cluster.b}{job_path}/status").json()
        if status["finished"]:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.3)
    assert status["status"] == "done", status
    [item] = status["items"]
    assert item["status"] == "imported", item
    page = browser.get(cluster.b + job_path)
    assert page.status_code == 200
    assert re.search(r'data-testid="job-status">done<', page.text)

    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None and job.status == "done"
    case = db.session.get(Case, item["case_id"])
    assert case is not None
    image = case.images[0]
    for kind in ("thumbnail", "preview"):
        served = browser.get(f"{cluster.b}/cases/images/{image.id}/{kind}?v=1")
        assert served.status_code == 200, (kind, served.status_code)
        assert served.headers["Content-Type"].startswith("image/")
    assert not (Path(cluster.images).parent / "job-uploads" / str(job_id)).exists()


def test_failed_sign_ins_spread_over_both_servers_meet_one_per_address_limit(cluster, app):
    limit = int(app.config["LOGIN_FAILURE_LIMIT_PER_ADDRESS"].split()[0])  # "10 per 15 minutes"
    browser = Browser()
    # Unknown user names, each tried once: only the per-address limit can refuse them.
    for n in range(limit):
        base = (cluster.a, cluster.b)[n % 2]
        failed = browser.submit(base, "/auth/login", button="Sign in", fields={
            "username": f"nobody-{n}", "password": "wrong-password-123"})
        assert failed.status_code == 401, (n, base, failed.status_code)
    for base in (cluster.a, cluster.b):
        refused = browser.submit(base, "/auth/login", button="Sign in", fields={
            "username": "nobody-else", "password": "wrong-password-123"})
        assert refused.status_code == 429, (base, refused.status_code)
        assert TOO_MANY_FAILURES in refused.text


def test_signing_out_on_one_server_ends_the_session_on_the_other(cluster, make_user):
    make_user(Role.TRAINEE_RADIOLOGIST, username="leaver")
    browser = Browser()
    assert browser.sign_in(cluster.a, "leaver").status_code == 302
    assert browser.get(f"{cluster.b}/training/").status_code == 200
    copied = dict(browser.http.cookies)  # what a thief of the cookie would hold
    signed_out = browser.submit(cluster.a, "/training/", button="Sign out")
    assert signed_out.status_code == 302
    for client_cookies in (dict(browser.http.cookies), copied):
        thief = requests.Session()
        thief.cookies.update(client_cookies)
        response = thief.get(f"{cluster.b}/training/", allow_redirects=False, timeout=60)
        assert response.status_code == 302
        assert "/auth/login" in response.headers["Location"]
    assert db.session.scalars(select(Attempt)).first() is None
