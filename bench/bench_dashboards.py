"""Server time and SQL query count of the certification dashboards at scale, by hand:

    .venv/bin/python bench/bench_dashboards.py [--database sqlite|postgresql|both]
                                               [--runs 5] [--small] [--only TEXT]

Not a test. Builds 10,000 users, 100 clinics in 50 countries, 200,000 ended attempts and
20,000 certificates (bench/scale_data.py) in a fresh database — SQLite in a temporary
file, PostgreSQL in a temporary server started like the test suite's — then signs in as a
programme lead (all countries), a lead for 10 countries, a trainer and a trainee, and times
each dashboard page in the application (the Flask test client: server time, no network).
Prints the median of N runs and the number of SQL statements per page, against the target
of < 300 ms per page on PostgreSQL. ``--small`` runs a 1/20 scale for a quick look;
``--only statistics`` times only the pages whose label contains that text.

Populating the full scale takes minutes, so the populated database is kept under /tmp
(a pg_dump archive or the SQLite file, with the returned ids beside it), keyed by the
scale, bench/scale_data.py, the migrations and the UTC day (the data is dated from today:
certificates expire relative to it), and restored by later runs; ``--no-cache`` builds
afresh.

Then the clinic figure's first request in a fresh process, as a server's worker meets it:
without the server's warm-up (``cold``: matplotlib and its fonts loaded by that request)
and after it (app.wsgi starts it in a thread as a worker boots), each drawn from the
scores (its PNG cache empty), and again (``warm``: the PNG kept). The last line is the
slowest of every page's median and the figure's first request on a warmed-up server.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, select, text

from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.auth.services import create_user, set_password
from app.extensions import db
from bench._servers import DATABASES, ROOT, database_urls, load_average, migrated_app
from bench.scale_data import FULL, Scale, ScaleData, populate
from tests.conftest import login
from tests.realservers import pg_bindir

TARGET_MS = 300.0
PASSWORD = "bench-password-long-enough-1"


def _pages(data, clinic_id: int, country: str) -> list[tuple[str, str, str]]:
    """(who, label, url) of every dashboard page."""
    p = f"/certification/programmes/{data.programme_id}"
    exam = data.exercise_ids[2]
    return [
        ("lead", "certification index", "/certification/"),
        ("lead", "programme: all clinics + readers p.1", p),
        ("lead", "programme: one country", f"{p}?country={country}"),
        ("lead", "programme: clinic drill-down", f"{p}?clinic={clinic_id}"),
        ("lead", "programme: status expiring", f"{p}?status=expiring"),
        ("lead", "programme: readers page 40", f"{p}?page=40"),
        ("lead", "figure: sens/spec per clinic (PNG)", f"{p}/scores.png"),
        ("lead", "figure: one country (PNG)", f"{p}/scores.png?country={country}"),
        ("lead", "export: clinics XLSX", f"{p}?format=xlsx"),
        ("lead", "export: all readers CSV", f"{p}?format=csv&table=readers"),
        ("lead", "certificates p.1", "/certification/certificates"),
        ("lead", "certificates: valid in a clinic", f"/certification/certificates?status=valid"
                                                    f"&clinic={clinic_id}"),
        ("lead", "certificates: search by name", "/certification/certificates?q=Reader+S00"),
        ("lead", "reader history (busiest reader)",
         f"/certification/readers/{data.busiest_reader_id}"),
        ("country lead", "programme, 10 countries", p),
        ("trainer", "exam statistics: first attempts", f"/training/manage/{exam}/statistics"),
        ("trainer", "exam statistics: all attempts",
         f"/training/manage/{exam}/statistics?attempts=all"),
        ("trainee", "my certification", "/certification/mine"),
    ]


def _measure(client, url: str, runs: int) -> tuple[float, int, int, float, float]:
    statements: list[str] = []

    def count(*args, **kwargs) -> None:
        statements.append(args[2])

    times, cpu = [], []
    for run in range(runs + 1):  # the first run warms caches and templates; not counted
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", count)
        start, start_cpu = time.perf_counter(), time.process_time()
        response = client.get(url)
        elapsed = time.perf_counter() - start
        # The application's CPU (the test client runs it in this process); the database's
        # share is the rest of the wall time, less any wait for a core.
        cpu.append((time.process_time() - start_cpu) * 1000)
        event.remove(db.engine, "before_cursor_execute", count)
        if response.status_code != 200:
            raise SystemExit(f"{url}: HTTP {response.status_code}")
        if run:
            times.append(elapsed * 1000)
        else:
            first = elapsed * 1000
    return (statistics.median(times), len(statements), len(response.data), first,
            statistics.median(cpu[1:] or cpu))


def _account(username: str, **kwargs) -> User:
    user = db.session.scalar(select(User).where(User.username == username))
    return user or create_user(email=f"{username}@example.org", full_name=username.title(),
                               username=username, password=PASSWORD, **kwargs)


def time_pages(app, data, runs: int, only: str = "") -> tuple[str, float]:
    """Sign in as each kind of user and print every page's median time and query count;
    returns the slowest page and its median."""
    with app.app_context():
        clinic = db.session.scalars(select(Clinic).order_by(Clinic.id)).first()
        _account("lead", roles=[Role.PROGRAMME_LEAD], lead_all_countries=True)
        _account("lead10", roles=[Role.PROGRAMME_LEAD], lead_countries=data.country_codes[:10])
        _account("trainer", roles=[Role.TRAINER])
        busiest = db.session.get(User, data.busiest_reader_id)
        set_password(busiest, PASSWORD, via="bench")
        db.session.commit()
        clients = {}
        for who, username in (("lead", "lead"), ("country lead", "lead10"),
                              ("trainer", "trainer"), ("trainee", busiest.username)):
            clients[who] = app.test_client()
            response = login(clients[who], username, PASSWORD)
            # A privileged user sets up a second factor at first sign-in: the answer is then
            # the page of recovery codes, not a redirect.
            assert response.status_code in (200, 302), f"sign-in of {username} failed"
        # first: the first request (cold caches: templates, the figure's PNG), not counted.
        print(f"{'page':<40} {'who':<13} {'median ms':>10} {'queries':>8} {'bytes':>10} "
              f"{'first ms':>9} {'app CPU ms':>10}")
        slowest = ("", 0.0)
        for who, name, url in _pages(data, clinic.id, clinic.country_code):
            if only not in name:
                continue
            ms, queries, size, first, cpu = _measure(clients[who], url, runs)
            flag = "" if ms < TARGET_MS else f"  (> {TARGET_MS:.0f} ms)"
            print(f"{name:<40} {who:<13} {ms:>10.1f} {queries:>8} {size:>10} "
                  f"{first:>9.1f} {cpu:>10.1f}{flag}")
            slowest = max(slowest, (name, ms), key=lambda page: page[1])
        db.session.remove()
    return slowest


FIRST_FIGURE = """
import json, statistics, sys, time
sys.path.insert(0, {root!r})
from app import create_app
from app.auth.roles import Role
from app.wsgi import start_warm_up
from bench.bench_dashboards import PASSWORD, _account
from tests.conftest import base_config, login
app = create_app({{**base_config({url!r}, {instance!r}), "TESTING": False}})
with app.app_context():
    _account({user!r}, roles=[Role.PROGRAMME_LEAD], lead_all_countries=True)
client = app.test_client()
assert login(client, {user!r}, PASSWORD).status_code in (200, 302)
if {warm_up!r}:
    start_warm_up(app).join()
times, cpu = [], []
for _ in range(4):
    start, start_cpu = time.perf_counter(), time.process_time()
    assert client.get({path!r}).status_code == 200
    times.append((time.perf_counter() - start) * 1000)
    cpu.append((time.process_time() - start_cpu) * 1000)
print(json.dumps([times[0], statistics.median(times[1:]), cpu[0]]))
"""


def first_figure(database_url: str, instance: Path, programme_id: int) -> dict[str, float]:
    """The figure's first request in a fresh process without and with the server's
    warm-up, and a kept PNG's, in ms."""
    import json
    import subprocess

    figures = {}
    for mode, warm_up in (("cold", False), ("server", True)):
        code = FIRST_FIGURE.format(root=str(ROOT), url=database_url, instance=str(instance),
                                   user=f"figure{mode}", warm_up=warm_up,
                                   path=f"/certification/programmes/{programme_id}/scores.png")
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                             text=True, timeout=600, check=True).stdout
        first, kept, first_cpu = json.loads(out.strip().splitlines()[-1])
        figures[mode], figures[f"{mode} CPU"] = first, first_cpu
        figures["warm"] = kept
    print(f"figure: sens/spec per clinic, first request in a fresh process: cold "
          f"{figures['cold']:.1f} ms (CPU {figures['cold CPU']:.1f}), after the server's "
          f"warm-up {figures['server']:.1f} ms (CPU {figures['server CPU']:.1f}); "
          f"warm (PNG kept) {figures['warm']:.1f} ms; load average {load_average()}")
    return figures


CACHE_DIR = Path(tempfile.gettempdir())


def _cache_path(database_url: str, scale: Scale) -> Path:
    """Where the populated database of this scale, data builder and schema is kept."""
    key = hashlib.sha256(repr(scale).encode())
    key.update((ROOT / "bench" / "scale_data.py").read_bytes())
    for migration in sorted((ROOT / "migrations" / "versions").glob("*.py")):
        key.update(migration.read_bytes())
    key.update(time.strftime("%Y-%m-%d", time.gmtime()).encode())
    kind = "sqlite3" if database_url.startswith("sqlite") else "pgdump"
    return CACHE_DIR / f"cxr-bench-dashboards-{key.hexdigest()[:16]}.{kind}"


def _libpq(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://")


def _pg_tool(name: str) -> str:
    bindir = pg_bindir()  # the same version as the server the bench started
    return str(bindir / name) if bindir else name


def _save(database_url: str, cache: Path, data: ScaleData) -> None:
    """Keep the populated database; its ids file is written last, so a run stopped midway
    leaves no cache that looks complete."""
    partial = cache.with_suffix(cache.suffix + ".partial")
    if database_url.startswith("sqlite"):
        db.engine.dispose()
        shutil.copyfile(database_url.removeprefix("sqlite:///"), partial)
    else:
        subprocess.run([_pg_tool("pg_dump"), "--format=custom", f"--file={partial}",
                        _libpq(database_url)], check=True)
    partial.replace(cache)
    cache.with_name(cache.name + ".json").write_text(json.dumps(dataclasses.asdict(data)))


def _restore(database_url: str, cache: Path) -> ScaleData | None:
    ids = cache.with_name(cache.name + ".json")
    if not (cache.exists() and ids.exists()):
        return None
    db.engine.dispose()
    if database_url.startswith("sqlite"):
        shutil.copyfile(cache, database_url.removeprefix("sqlite:///"))
    else:
        subprocess.run([_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner",
                        "--single-transaction", f"--dbname={_libpq(database_url)}",
                        str(cache)], check=True)
    return ScaleData(**json.loads(ids.read_text()))


def populated(database_url: str, scale: Scale, use_cache: bool = True) -> ScaleData:
    """The scale's data in the (migrated, empty) database: restored from the kept copy
    when there is one, else built and kept. In an application context."""
    start = time.perf_counter()
    cache = _cache_path(database_url, scale)
    data = _restore(database_url, cache) if use_cache else None
    how = f"restored from {cache}"
    if data is None:
        data = populate(scale)
        how = "populated"
    # As autovacuum would soon after a bulk load: the planner needs statistics (a dump
    # carries none).
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    if how == "populated" and use_cache:
        _save(database_url, cache, data)
    print(f"{how} {scale} in {time.perf_counter() - start:.1f} s")
    return data


def bench(database_url: str, scale: Scale, runs: int, label: str,
          only: str = "", use_cache: bool = True) -> tuple[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        app = migrated_app(database_url, Path(tmp) / "instance")
        with app.app_context():
            print(f"\n{label}: ", end="")
            data = populated(database_url, scale, use_cache)
        slowest = time_pages(app, data, runs, only)
        with app.app_context():
            db.engine.dispose()
        if not only or only in "figure":
            server = first_figure(database_url, Path(tmp) / "instance", data.programme_id)
            slowest = max(slowest, ("figure, first request after the server's warm-up",
                                    server["server"]), key=lambda page: page[1])
    return slowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=DATABASES, default="both")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--small", action="store_true", help="1/20 of the full scale")
    parser.add_argument("--only", default="", metavar="TEXT",
                        help="time only the pages whose label contains TEXT")
    parser.add_argument("--no-cache", action="store_true",
                        help="populate afresh instead of restoring the kept database")
    args = parser.parse_args()
    scale = FULL
    if args.small:
        scale = Scale(users=500, clinics=20, countries=10, attempts=10_000, certificates=1_000)
    print(f"Target: < {TARGET_MS:.0f} ms server time per dashboard page on PostgreSQL.")
    with database_urls(args.database) as urls:
        slowest = {label: bench(url, scale, args.runs, label, args.only, not args.no_cache)
                   for label, url in urls}
    label = "PostgreSQL" if "PostgreSQL" in slowest else "SQLite"
    name, ms = slowest[label]
    print(f"slowest page on {label}: {name} {ms:.1f} ms; target {TARGET_MS:.0f} ms, "
          f"ratio {ms / TARGET_MS:.3f}")


if __name__ == "__main__":
    main()
