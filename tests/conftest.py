"""Fixtures: the app on a real database (SQLite, and PostgreSQL started by the suite),
clients, and factories for clinics and users."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import select
from werkzeug.serving import make_server

from app import MIGRATIONS_DIR, create_app
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.auth.second_factor import PRIVILEGED_ROLES, enrol_with_secret, secret_of
from app.auth.second_factor_models import SecondFactor
from app.auth.services import create_clinic, create_user
from app.extensions import db
from tests.forms import submit_form
from tests.realservers import (
    CHROMIUM,
    create_database,
    missing,
    postgres_server,
    redis_server,
)

PASSWORD = "correct-horse-battery"
# The authenticator key ``make_user`` gives trainers, programme leads and administrators, so
# the sign-in helpers can complete the second step.
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

# Cheap argon2 parameters: the tests check behaviour, not hashing cost.
FAST_HASHING = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 1024, "ARGON2_PARALLELISM": 1}


def base_config(database_url: str, instance_path: Path) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "DEID_SECRET": "test-deid-secret-not-for-production",
        # One key for every test instance, as an operator copies instance/field_key along
        # with a backup (tests of the key itself set their own).
        "FIELD_ENCRYPTION_KEYS": ["test-field-key-not-for-production-0123456789abcdef"],
        "SQLALCHEMY_DATABASE_URI": database_url,
        "INSTANCE_PATH": str(instance_path),
        "RATELIMIT_STORAGE_URI": "memory://",
        "INVITATION_MAX_AGE": timedelta(days=7),
        "SERVER_NAME": None,
        # Jobs run inside the request or command that queues them: the pages' and commands'
        # tests see their results at once. Tests of the queue itself (test_jobs*) run a real
        # consumer on a SQLite queue.
        "JOB_QUEUE_URL": "immediate",
        # Each request asks who may see an image: tests of access change it between two
        # requests. Tests of the few seconds' memory (test_image_grants) set their own.
        "IMAGE_GRANT_SECONDS": 0,
        **FAST_HASHING,
    }


def migrate_database(database_url: str, instance_path: Path) -> None:
    app = create_app(base_config(database_url, instance_path))
    with app.app_context():
        upgrade(directory=str(MIGRATIONS_DIR))
        db.engine.dispose()


@pytest.fixture(scope="session")
def postgres_base_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str]:
    """A throw-away Redis on 127.0.0.1 (``redis://127.0.0.1:PORT``; add ``/N``)."""
    with redis_server() as url:
        yield url


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _migrated_databases: dict[str, str],
) -> str:
    """An empty database brought to the migration head with ``flask db upgrade``.

    Each kind is created once per test process and kept: when tests run in parallel
    (pytest-xdist), one process takes SQLite and PostgreSQL tests file by file, and pytest
    sets this fixture up again at each switch; the tables are emptied after every test
    (``app``), so the database is reused instead of migrated again."""
    if request.param in _migrated_databases:
        return _migrated_databases[request.param]
    instance = tmp_path_factory.mktemp("migrate-instance")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.sqlite3'}"
    else:
        base = request.getfixturevalue("postgres_base_url")
        url = create_database(base, "cxr_test")
    migrate_database(url, instance)
    _migrated_databases[request.param] = url
    return url


@pytest.fixture(scope="session")
def _migrated_databases() -> dict[str, str]:
    return {}


# For tests of concurrent transactions that only PostgreSQL can run side by side (row locks;
# SQLite lets one writer at a time): they run on PostgreSQL alone instead of skipping SQLite.
postgresql_only = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
# For rows only SQLite can hold (e.g. NaN in a JSON column, which PostgreSQL refuses).
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class IsolatedClient(FlaskClient):
    """A test client whose every request runs in its own application context, as on a
    real server: the test's own context (``g``, the database session) never leaks into
    a request, so per-request state such as the CSRF token behaves as in production."""

    def open(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(base_config(database_url, tmp_path / "instance"))
    app.test_client_class = IsolatedClient
    with app.app_context():
        yield app
        db.session.remove()
        # Empty every table (children first) so each test starts from a clean database.
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _push_request_context() -> None:
    """Overrides pytest-flask's fixture of this name, which pushes a request context around
    every test: code under test must see what it sees in production (the command line has
    no request)."""


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Overrides pytest-flask's client, which keeps request contexts alive between
    requests (``with client``) and would share them with the test's own context."""
    return app.test_client()


@pytest.fixture
def make_clinic(app: Flask) -> Callable[..., Clinic]:
    counter = iter(range(1, 10_000))

    def factory(name: str | None = None, city: str = "Nairobi", country: str = "KE") -> Clinic:
        return create_clinic(name or f"Clinic {next(counter)}", city, country)

    return factory


@pytest.fixture
def make_user(app: Flask, make_clinic: Callable[..., Clinic]) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def factory(
        *roles: Role,
        username: str | None = None,
        password: str | None = PASSWORD,
        clinic: Clinic | None = None,
        countries: tuple[str, ...] = (),
        second_factor: bool | None = None,  # default: privileged users are enrolled
        **kwargs: Any,
    ) -> User:
        n = next(counter)
        roles = roles or (Role.TRAINEE_RADIOLOGIST,)
        if Role.PROGRAMME_LEAD in roles and not countries and "lead_all_countries" not in kwargs:
            countries = ("KE",)
        enrol = second_factor
        if enrol is None:
            enrol = not set(roles).isdisjoint(PRIVILEGED_ROLES)
        user = create_user(
            email=f"{username or f'user{n}'}@example.org",
            full_name=kwargs.pop("full_name", f"Test User {n}"),
            username=username or f"user{n}",
            roles=roles,
            clinic=clinic,
            password=password,
            lead_countries=countries,
            **kwargs,
        )
        if enrol:
            enrol_with_secret(user, TOTP_SECRET)
        return user

    return factory


_CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/auth/login") -> str:
    """The CSRF token a browser would get from ``path``."""
    page = client.get(path)
    match = _CSRF_RE.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({page.status_code})"
    return match.group(1)


def current_totp(username: str) -> str:
    """A code the authenticator of ``username`` would show now. The replay rule (a time step
    is accepted once) is tested in test_second_factor; here the user's last accepted step is
    forgotten so that tests of other features may sign the same user in again and again."""
    ident = username.strip().lower()
    user = db.session.scalar(select(User).where((User.username == ident) | (User.email == ident)))
    assert user is not None, f"no user {username}"
    factor = db.session.get(SecondFactor, user.id)
    assert factor is not None, f"{username} has no second factor"
    factor.last_time_step = None
    code = pyotp.TOTP(secret_of(factor)).now()
    db.session.commit()
    return code


def login(client: FlaskClient, username: str, password: str = PASSWORD,
          next: str | None = None, *, remember: bool = False):
    """Sign in through the rendered sign-in form (``next`` as a link to the page carries it);
    for a user with a second factor, the second step's form is filled in too, and a privileged
    user without one sets it up (the answer is then the page of recovery codes)."""
    page = "/auth/login" + (f"?{urlencode({'next': next})}" if next is not None else "")
    fields = {"username": username, "password": password}
    if remember:
        fields["remember"] = "y"
    response = submit_form(client, page, button="Sign in", fields=fields)
    if response.status_code != 302 or not response.location.endswith("/auth/second-factor"):
        return response
    step = client.get("/auth/second-factor").get_data(as_text=True)
    if "Turn on" in step:  # a privileged user without a second factor sets one up first
        secret = re.search(r'data-testid="enrol-secret"[^>]*>([A-Z2-7]+)<', step)
        assert secret, step
        return submit_form(client, "/auth/second-factor", button="Turn on",
                           fields={"code": pyotp.TOTP(secret.group(1)).now()})
    with client.application.app_context():
        code = current_totp(username)
    return submit_form(client, "/auth/second-factor", button="Verify", fields={"code": code})


def sign_out(client: FlaskClient, page: str = "/training/"):
    """Sign out with the button every signed-in page renders."""
    return submit_form(client, page, button="Sign out")


@pytest.fixture
def login_as(client: FlaskClient, make_user: Callable[..., User]) -> Callable[..., User]:
    """Create a user with ``roles`` and sign the test client in as them."""

    def factory(*roles: Role, **kwargs: Any) -> User:
        user = make_user(*roles, **kwargs)
        response = login(client, user.username)
        assert response.status_code == 302, response.get_data(as_text=True)
        return user

    return factory


def post_hand_built(client: FlaskClient, path: str, data: dict[str, Any] | None = None,
                    page: str | None = None):
    """POST a body written by the test, with only the CSRF token a browser would have from
    ``page``: for requests no rendered form can make (a forged choice, an over-long value, an
    attacker's request). Tests of what a page lets a user do use tests.forms.submit_form."""
    token = csrf_token(client, page or path)
    return client.post(path, data={"csrf_token": token, **(data or {})})


# ---- a real browser against a live server ------------------------------------------------

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # Real WebGL2 without a GPU: ANGLE on SwiftShader, which headless Chromium would otherwise
    # only pick as an automatic fallback that Chrome plans to remove.
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]


def serve_portal(app, host_name: str = "127.0.0.1") -> Iterator[str]:
    """Serve the app over real HTTP on 127.0.0.1, in a background thread, public as
    http://<host_name>:PORT (links in e-mails and certificates are built on PUBLIC_BASE_URL)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://{host_name}:{server.server_port}"
    app.config["PUBLIC_BASE_URL"] = url
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def portal_url(app) -> Iterator[str]:
    """The app served on 127.0.0.1, that address its public one."""
    yield from serve_portal(app)


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        missing(f"Chromium not found at {CHROMIUM} (install Debian's 'chromium')")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python is not installed")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()




def sign_in(page, base: str, username: str, password: str = PASSWORD) -> None:
    """Sign in through the real form of a live portal."""
    page.goto(base + "/auth/login")
    page.get_by_label("User name or e-mail").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    if page.url.split("?")[0].endswith("/auth/second-factor"):
        page.get_by_label("Code").fill(current_totp(username))
        page.get_by_role("button", name="Verify").click()
        page.wait_for_load_state()
