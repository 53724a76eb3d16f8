"""Real servers for the tests: PostgreSQL from the installed binaries, Debian's Chromium.

Where a binary is missing the test is skipped with the reason, or fails when
CXR_ACADEMY_REQUIRE_ALL=1 (as in CI).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REQUIRE_ALL = os.environ.get("CXR_ACADEMY_REQUIRE_ALL") == "1"
CHROMIUM = os.environ.get("CXR_ACADEMY_CHROMIUM", "/usr/bin/chromium")


def missing(reason: str) -> None:
    """Skip for lack of a real component, or fail when every component is required."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (CXR_ACADEMY_REQUIRE_ALL=1)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: PATH first, then Debian's layout."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throw-away PostgreSQL cluster on 127.0.0.1 and yield its base URL.

    initdb and pg_ctl refuse to run as root, so as root they run as the unprivileged
    ``postgres`` system user (created by Debian's package), which owns the data folder.
    """
    bindir = pg_bindir()
    if bindir is None:
        missing("PostgreSQL server binaries (initdb, pg_ctl) not installed")
    prefix: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            missing("running as root and there is no 'postgres' system user to run PostgreSQL")
        prefix = ["runuser", "-u", "postgres", "--"]
    workdir = Path(tempfile.mkdtemp(prefix="cxr-pg-"))
    datadir, sockdir, log = workdir / "data", workdir / "sock", workdir / "server.log"
    sockdir.mkdir()
    if owner is not None:
        for path in (workdir, sockdir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    try:
        run(str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-locale", "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(log), "-w", "-t", "60",
            "-o", f"-h 127.0.0.1 -p {port} -k {sockdir} -F -c fsync=off "
                  "-c synchronous_commit=off -c full_page_writes=off",
            "start")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace")[-2000:]
        server_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        pytest.fail(f"PostgreSQL did not start: {detail}\n{server_log}", pytrace=False)
    finally:
        if (datadir / "postmaster.pid").exists():
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate",
                            "-w", "stop"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def create_database(base_url: str, name: str) -> str:
    import psycopg

    conninfo = base_url.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return f"{base_url}/{name}"


REDIS_SERVER = os.environ.get("CXR_ACADEMY_REDIS_SERVER", "/usr/bin/redis-server")


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM, a bounded wait, then SIGKILL: the process (and only it) is gone after."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


@contextmanager
def redis_server() -> Iterator[str]:
    """Start a throw-away Redis (Debian's ``redis-server``) on 127.0.0.1 and yield its URL
    (``redis://127.0.0.1:PORT``, append ``/N`` for a database). Nothing is saved to disk."""
    if not (os.path.exists(REDIS_SERVER) or shutil.which(REDIS_SERVER)):
        missing(f"redis-server not found at {REDIS_SERVER} (install Debian's 'redis-server')")
    import redis

    workdir = Path(tempfile.mkdtemp(prefix="cxr-redis-"))
    port = free_port()
    log = (workdir / "redis.log").open("wb")
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no"],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    url = f"redis://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail("redis-server exited at start:\n"
                            + (workdir / "redis.log").read_text(errors="replace")[-2000:],
                            pytrace=False)
            try:
                with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
                    if client.ping():
                        break
            except redis.exceptions.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("redis-server did not answer within 30 s", pytrace=False)
            time.sleep(0.05)
        yield url
    finally:
        stop_process(process)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def gunicorn_available() -> None:
    """Skip (or fail under CXR_ACADEMY_REQUIRE_ALL=1) where gunicorn is not installed."""
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        missing("gunicorn is not installed (pip install -e '.[test]')")


def gunicorn_command(bind: str, app_spec: str, *, workers: int = 2) -> list[str]:
    """``python -m gunicorn`` serving ``app_spec`` on ``bind``: threaded workers, as in
    production (README), without gunicorn's per-user control socket, which two servers on
    one machine would both claim."""
    gunicorn_available()
    import sys

    from gunicorn.config import KNOWN_SETTINGS

    command = [sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", str(workers),
               "--worker-class", "gthread", "--threads", "4", "--timeout", "120",
               "--graceful-timeout", "10"]
    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        command.append("--no-control-socket")
    return [*command, app_spec]
