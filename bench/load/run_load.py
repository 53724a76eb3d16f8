"""Exam load: trainees taking a timed exam against gunicorn + PostgreSQL on 127.0.0.1.

    .venv/bin/python bench/load/run_load.py [--scenario exam|storm|all] [--users 1000]
        [--ramp 120] [--steady 150] [--storm-users 200] [--storm-seconds 60]
        [--worker-class sync|gthread|both] [--workers 2] [--threads 8] [--cases 6]
        [--image-size 1024] [--locust-processes 1] [--dwell 20,40] [--cpu [--cprofile]]

Not a test (needs the `bench` extra: locust). Starts its own PostgreSQL (Debian's binaries,
as the test suite does), brings a fresh database to the migration head, adds a timed exam and
its trainees (bench/load/load_data.py), serves the portal as production does
(`gunicorn "app.wsgi:create_server_app()"`, 2 workers, sync and/or gthread) with the
shipped argon2 parameters, and runs the locust scenario of bench/load/locustfile.py headless,
bounded in users and time:

- exam: ``--users`` trainees arrive over ``--ramp`` seconds, then ``--steady`` seconds of
  steady state (figures are of the steady state: locust's --reset-stats);
- storm: ``--storm-users`` trainees sign in within ``--storm-seconds`` (figures of the
  whole run; the sign-in POST is "sign in").

With ``--cpu`` each gunicorn worker counts the CPU time of every request by type
(bench/load/cpu_accounting.py, a bench-only gunicorn configuration): thread CPU time, which
other processes on the machine barely distort, unlike wall time; ``--cprofile`` adds a
cProfile per type (kept with ``LOAD_CPU_KEEP=<folder>``; it slows every request).

Prints p50/p95/p99 per request type, errors and where the CPU went (gunicorn, locust, the
rest: PostgreSQL and anything else on the machine), then, on its last line, p95 autosave vs
300 ms, errors vs 0 and the sign-in storm's p95 vs 2 s. Everything it started is stopped by
its pid.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app import create_app
from app.config import DefaultConfig
from app.extensions import db
from bench._servers import gunicorn, postgres_database
from bench.load.load_data import PASSWORD, TRAINEE_PREFIX, populate
from tests.conftest import base_config

AUTOSAVE_LIMIT_MS = 300.0
STORM_LIMIT_MS = 2000.0
ARGON2 = {key: getattr(DefaultConfig, key)
          for key in ("ARGON2_TIME_COST", "ARGON2_MEMORY_COST", "ARGON2_PARALLELISM")}
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


@dataclass
class Row:
    name: str
    count: int
    failures: int
    p50: float
    p95: float
    p99: float


@dataclass
class Outcome:
    label: str
    rows: dict[str, Row] = field(default_factory=dict)
    cpu: str = ""

    @property
    def errors(self) -> int:
        return sum(row.failures for name, row in self.rows.items() if name != "Aggregated")

    def p95(self, name: str) -> float | None:
        row = self.rows.get(name)
        return row.p95 if row and row.count else None


def _cpu_seconds_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(p) for p in found]


def _machine_busy_seconds() -> float:
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in cpu]
    idle = values[3] + values[4]
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


def _serve(url: str, instance: Path, worker_class: str,
           args: argparse.Namespace) -> AbstractContextManager[tuple[subprocess.Popen, str]]:
    options = ["--backlog", "2048"]
    environment = {}
    if args.cpu:
        # Bench only: CPU time per request type, written by each worker at exit.
        environment = {"LOAD_CPU_DIR": str(args.cpu_dir),
                       "LOAD_CPROFILE": "1" if args.cprofile else ""}
        options += ["-c", str(Path(__file__).with_name("cpu_accounting.py"))]
    if worker_class == "gthread":
        # Idle connections outlive the 15 s heartbeat, as nginx keeps its clients' (75 s)
        # in production: otherwise a save races the server closing the connection it reuses.
        options += ["--keep-alive", "75"]
    return gunicorn(url, instance, workers=args.workers, worker_class=worker_class,
                    threads=args.threads, options=options, settings=ARGON2,
                    environment=environment)


def _read_stats(path: Path) -> dict[str, Row]:
    rows = {}
    with path.open(newline="") as handle:
        for record in csv.DictReader(handle):
            name = record["Name"]

            def ms(key: str, record: dict[str, str] = record) -> float:
                value = record.get(key) or "0"
                return float(value) if value != "N/A" else 0.0

            rows[name] = Row(name, int(record["Request Count"]), int(record["Failure Count"]),
                             ms("50%"), ms("95%"), ms("99%"))
    return rows


def _locust(base: str, server: subprocess.Popen, label: str, users: int, spawn_rate: float,
            seconds: int, offset: int, exam_id: int, args: argparse.Namespace,
            work: Path, reset_stats: bool) -> Outcome:
    prefix = work / label.replace(" ", "_")
    env = {**os.environ, "LOAD_EXAM_ID": str(exam_id), "LOAD_CASES": str(args.cases),
           "LOAD_PASSWORD": PASSWORD, "LOAD_PROCESSES": str(args.locust_processes),
           "LOAD_DWELL": args.dwell, "LOAD_TRAINEE_PREFIX": TRAINEE_PREFIX,
           "LOAD_OFFSET": str(offset)}
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
               "-u", str(users), "-r", f"{spawn_rate:.3f}", "-t", f"{seconds}s",
               "--host", base, "--csv", str(prefix), "--only-summary", "--stop-timeout", "5",
               "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    if args.locust_processes > 1:
        command += ["--processes", str(args.locust_processes)]
    if reset_stats:
        command.append("--reset-stats")
    server_pids = [server.pid, *_children(server.pid)]
    server_before = _cpu_seconds_of(server_pids)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine_before, wall_before = _machine_busy_seconds(), time.monotonic()
    load_before = os.getloadavg()
    run = subprocess.run(command, env=env, cwd=ROOT, timeout=seconds + 120,
                         capture_output=True, text=True, check=False)
    wall = time.monotonic() - wall_before
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    locust_cpu = (children_after.ru_utime - children_before.ru_utime
                  + children_after.ru_stime - children_before.ru_stime)
    server_cpu = _cpu_seconds_of(server_pids) - server_before
    machine = _machine_busy_seconds() - machine_before
    outcome = Outcome(label)
    stats = prefix.with_name(prefix.name + "_stats.csv")
    if not stats.exists():
        print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
        raise SystemExit(f"locust wrote no statistics (exit {run.returncode})")
    outcome.rows = _read_stats(stats)
    outcome.cpu = (f"CPU over {wall:.0f} s on 2 cores: gunicorn {server_cpu / wall:.2f} cores, "
                   f"locust {locust_cpu / wall:.2f}, the rest (PostgreSQL, other processes) "
                   f"{max(0.0, machine - server_cpu - locust_cpu) / wall:.2f}; load average "
                   f"before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    failures = prefix.with_name(prefix.name + "_failures.csv")
    if failures.exists() and outcome.errors:
        outcome.cpu += "\nfailures:\n" + failures.read_text()[:2000]
    return outcome


def _print(outcome: Outcome) -> None:
    print(f"\n{outcome.label}")
    print(f"  {'request':<16} {'count':>7} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8}")
    for row in outcome.rows.values():
        print(f"  {row.name:<16} {row.count:>7} {row.failures:>7} {row.p50:>8.0f} "
              f"{row.p95:>8.0f} {row.p99:>8.0f}")
    print(f"  {outcome.cpu}")


def _print_cpu(folder: Path, rows: dict[str, Row]) -> None:
    """CPU per request type as the workers counted it (bench/load/cpu_accounting.py): of
    the whole run, ramp included (locust's counts are of the steady state alone)."""
    kinds: dict[str, list[float]] = {}
    process = 0.0
    for path in sorted(folder.glob("worker-*.json")):
        record = json.loads(path.read_text())
        process += record["process_cpu"]
        for kind, (count, cpu) in record["kinds"].items():
            entry = kinds.setdefault(kind, [0, 0.0])
            entry[0] += count
            entry[1] += cpu
        path.unlink()
    counted = sum(cpu for _, cpu in kinds.values())
    print("  CPU per request type (thread CPU time in the workers, whole run):")
    print(f"  {'request':<16} {'count':>7} {'ms CPU':>8} {'share':>6}")
    for kind, (count, cpu) in sorted(kinds.items(), key=lambda item: -item[1][1]):
        print(f"  {kind:<16} {count:>7.0f} {1000 * cpu / max(count, 1):>8.2f} "
              f"{cpu / max(process, 1e-9):>6.1%}")
    requests = sum(count for count, _ in kinds.values())
    print(f"  workers' process CPU {process:.1f} s for {requests:.0f} requests "
          f"({1000 * process / max(requests, 1):.2f} ms each); in requests {counted:.1f} s, "
          f"gunicorn's own (accept, parse, poll) {process - counted:.1f} s")


def _ratio(value: float | None, limit: float) -> str:
    if value is None:
        return "not measured"
    return f"{value:.0f} ms vs {limit:.0f} ms = {value / limit:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("exam", "storm", "all"), default="all")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--ramp", type=int, default=120, help="seconds to reach --users")
    parser.add_argument("--steady", type=int, default=150, help="seconds of steady state")
    parser.add_argument("--storm-users", type=int, default=200)
    parser.add_argument("--storm-seconds", type=int, default=60)
    parser.add_argument("--worker-class", choices=("sync", "gthread", "both"), default="both")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--locust-processes", type=int, default=1)
    parser.add_argument("--dwell", default="30,90", help="seconds on a case: min,max")
    parser.add_argument("--cpu", action="store_true",
                        help="print the workers' CPU time per request type")
    parser.add_argument("--cprofile", action="store_true",
                        help="with --cpu: a cProfile per request type (slows the server)")
    args = parser.parse_args()
    if args.ramp + args.steady > 300 or args.storm_seconds + 15 > 300:
        raise SystemExit("a load run is bounded to 5 minutes")
    # Looked up, not imported: importing locust monkey-patches this process (gevent).
    if not all(importlib.util.find_spec(name) for name in ("gunicorn", "locust")):
        raise SystemExit("install the bench extra: pip install -e '.[bench]'")

    classes = ["sync", "gthread"] if args.worker_class == "both" else [args.worker_class]
    scenarios = ["storm", "exam"] if args.scenario == "all" else [args.scenario]
    # A trainee whose sign-in failed is replaced by locust with a new one: a quarter spare.
    per_run = max(args.users, args.storm_users) * 5 // 4 + args.locust_processes
    runs = [(c, s) for c in classes for s in scenarios]
    work = Path(tempfile.mkdtemp(prefix="cxr-load-"))
    args.cpu_dir = Path(os.environ.get("LOAD_CPU_KEEP") or work / "cpu")
    args.cpu_dir.mkdir(parents=True, exist_ok=True)
    instance = work / "instance"
    outcomes: dict[tuple[str, str], Outcome] = {}
    print(f"uptime: {os.getloadavg()}; {args.workers} gunicorn workers; PostgreSQL 127.0.0.1; "
          f"{args.cases}-case exam, {args.image_size}-px images; locust "
          f"{args.locust_processes} process(es); argon2 {ARGON2}")
    with postgres_database("cxr_load", instance) as url:
        app = create_app({**base_config(url, instance), "TESTING": False, **ARGON2})
        with app.app_context():
            exam = populate(per_run * len(runs), args.cases, args.image_size)
            db.session.remove()
            db.engine.dispose()
        try:
            for number, (worker_class, scenario) in enumerate(runs):
                label = (f"{scenario} {worker_class}"
                         + (f" x{args.threads} threads" if worker_class == "gthread" else ""))
                with _serve(url, instance, worker_class, args) as (server, base):
                    if scenario == "storm":
                        outcome = _locust(base, server, label, args.storm_users,
                                          args.storm_users / args.storm_seconds,
                                          args.storm_seconds + 15, number * per_run,
                                          exam.exam_id, args, work, reset_stats=False)
                    else:
                        outcome = _locust(base, server, label, args.users,
                                          args.users / args.ramp, args.ramp + args.steady,
                                          number * per_run, exam.exam_id, args, work,
                                          reset_stats=True)
                outcomes[(worker_class, scenario)] = outcome
                _print(outcome)
                if args.cpu:
                    _print_cpu(args.cpu_dir, outcome.rows)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    summary = []
    for worker_class in classes:
        exam_outcome = outcomes.get((worker_class, "exam"))
        storm_outcome = outcomes.get((worker_class, "storm"))
        errors = sum(o.errors for o in (exam_outcome, storm_outcome) if o is not None)
        summary.append(
            f"{worker_class}: {args.users} trainees p95 autosave "
            f"{_ratio(exam_outcome.p95('autosave') if exam_outcome else None, AUTOSAVE_LIMIT_MS)}"
            f", errors {errors} vs 0, sign-in storm ({args.storm_users} in "
            f"{args.storm_seconds} s) p95 "
            f"{_ratio(storm_outcome.p95('sign in') if storm_outcome else None, STORM_LIMIT_MS)}")
    print("; ".join(summary))


if __name__ == "__main__":
    main()
