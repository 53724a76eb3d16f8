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
