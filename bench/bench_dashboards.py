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

Then the clinic figure's first request in a fresh process, as a server's worker meets it:
without the server's warm-up (``cold``: matplotlib and its fonts loaded by that request)
and after it (app.wsgi starts it in a thread as a worker boots), each drawn from the
scores (its PNG cache empty), and again (``warm``: the PNG kept). The last line is the
slowest of every page's median and the figure's first request on a warmed-up server.
"""

from __future__ import annotations

import argparse
import statistics
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
from bench.scale_data import FULL, Scale, populate
from tests.conftest import login

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


def _measure(client, url: str, runs: int) -> tuple[float, int, int, float]:
    statements: list[str] = []

    def count(*args, **kwargs) -> None:
        statements.append(args[2])

    times = []
    for run in range(runs + 1):  # the first run warms caches and templates; not counted
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", count)
        start = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - start
        event.remove(db.engine, "before_cursor_execute", count)
        if response.status_code != 200:
            raise SystemExit(f"{url}: HTTP {response.status_code}")
        if run:
            times.append(elapsed * 1000)
        else:
            first = elapsed * 1000
    return statistics.median(times), len(statements), len(response.data), first


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
              f"{'first ms':>9}")
        slowest = ("", 0.0)
        for who, name, url in _pages(data, clinic.id, clinic.country_code):
            if only not in name:
                continue
            ms, queries, size, first = _measure(clients[who], url, runs)
            flag = "" if ms < TARGET_MS else f"  (> {TARGET_MS:.0f} ms)"
            print(f"{name:<40} {who:<13} {ms:>10.1f} {queries:>8} {size:>10} "
                  f"{first:>9.1f}{flag}")
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


def bench(database_url: str, scale: Scale, runs: int, label: str,
          only: str = "") -> tuple[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        app = migrated_app(database_url, Path(tmp) / "instance")
        with app.app_context():
            start = time.perf_counter()
            data = populate(scale)
            # As autovacuum would soon after a bulk load: the planner needs statistics.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))
            print(f"\n{label}: populated {scale} in {time.perf_counter() - start:.1f} s")
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
    args = parser.parse_args()
    scale = FULL
    if args.small:
        scale = Scale(users=500, clinics=20, countries=10, attempts=10_000, certificates=1_000)
    print(f"Target: < {TARGET_MS:.0f} ms server time per dashboard page on PostgreSQL.")
    with database_urls(args.database) as urls:
        slowest = {label: bench(url, scale, args.runs, label, args.only) for label, url in urls}
    label = "PostgreSQL" if "PostgreSQL" in slowest else "SQLite"
    name, ms = slowest[label]
    print(f"slowest page on {label}: {name} {ms:.1f} ms; target {TARGET_MS:.0f} ms, "
          f"ratio {ms / TARGET_MS:.3f}")


if __name__ == "__main__":
    main()
