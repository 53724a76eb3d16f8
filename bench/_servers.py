"""What the bench scripts start, in one place: fresh databases at the migration head
(SQLite in a temporary file, PostgreSQL in a throw-away server on 127.0.0.1, as the test
suite starts it), the application on one of them, and gunicorn serving the portal as
production does, waited for until it answers and stopped by its pid."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flask import Flask

from app import create_app
from tests.cohort import HttpClient
from tests.conftest import IsolatedClient, base_config, migrate_database
from tests.realservers import create_database, free_port, postgres_server

DATABASES = ("sqlite", "postgresql", "both")
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@contextmanager
def database_urls(choice: str, name: str = "cxr_bench") -> Iterator[Iterator[tuple[str, str]]]:
    """(label, URL) of an empty database of each kind ``choice`` names ("sqlite",
    "postgresql" or "both"), each made when the caller reaches it: PostgreSQL is started
    only once SQLite's figures are printed, and stopped when the block ends."""
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:

        def urls() -> Iterator[tuple[str, str]]:
            if choice in ("sqlite", "both"):
                yield "SQLite", f"sqlite:///{tmp}/bench.sqlite3"
            if choice in ("postgresql", "both"):
                base = stack.enter_context(postgres_server())
                yield "PostgreSQL", create_database(base, name)

        yield urls()


@contextmanager
def postgres_database(name: str, instance: Path) -> Iterator[str]:
    """A throw-away PostgreSQL on 127.0.0.1 with database ``name`` at the migration head."""
    with postgres_server() as base:
        url = create_database(base, name)
        migrate_database(url, instance)
        yield url


def migrated_app(database_url: str, instance: Path, **config: Any) -> Flask:
    """The application on a database brought to the migration head, as a server runs it
    (TESTING off), its test clients isolated from each other's sessions."""
    migrate_database(database_url, instance)
    app = create_app({**base_config(database_url, instance), "TESTING": False, **config})
    app.test_client_class = IsolatedClient
    return app


@contextmanager
def gunicorn(database_url: str, instance: Path, *, workers: int = 2,
             worker_class: str = "sync", threads: int = 8,
             app_spec: str = "app.wsgi:create_server_app()",
             options: Sequence[str] = (), settings: Mapping[str, object] | None = None,
             environment: Mapping[str, str] | None = None,
             timeout: float = 60) -> Iterator[tuple[subprocess.Popen, str]]:
    """gunicorn serving the portal on a free port of 127.0.0.1, yielded (process, base URL)
    once its sign-in page answers; stopped by its pid when the block ends. ``settings``:
    more CXR_ACADEMY_* settings (without the prefix); ``environment``: other variables for the
    server (e.g. a bench-only gunicorn config's)."""
    port = free_port()
    env = {**os.environ, "CXR_ACADEMY_SQLALCHEMY_DATABASE_URI": database_url,
           "CXR_ACADEMY_INSTANCE_PATH": str(instance),
           **{f"CXR_ACADEMY_{k}": str(v) for k, v in (settings or {}).items()},
           **(environment or {})}
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
               "--workers", str(workers), "--worker-class", worker_class,
               "--timeout", "120", "--log-level", "warning", *options]
    if worker_class == "gthread":
        command += ["--threads", str(threads)]
    server = subprocess.Popen([*command, app_spec], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if HttpClient(base, timeout=5).get("/auth/login").status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not come up (exit {server.poll()})")
            time.sleep(0.3)
        yield server, base
    finally:
        stop(server)


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """End a process this bench started: politely, then for sure."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())
