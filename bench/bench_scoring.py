"""Timing of app/quizzes/scoring.py, by hand:

    .venv/bin/python bench/bench_scoring.py [--runs 20] [--attempts 10000] [--processes 2]
        [--part pure|rescore|database ...] [--database sqlite|postgresql|both] [--db-runs 5]

Not a test. Prints these figures against their targets:

1. Scoring one exam attempt: 200 cases x 12 findings, about half abnormal with 1-3 lesions
   each (ellipses, rectangles, polygons), trainee marks of every shape with confidences,
   likelihood ratings and ordinal answers, DeLong CI included. Median of N runs; target
   < 50 ms per attempt.
2. Re-scoring stored attempts after a reference read changes: each attempt is a JSON
   string as the database would hold it; it is parsed, turned into CaseRead objects,
   scored against the new reference and what an attempt keeps of its score
   (results.finalise: the headline scores, per-case decisions and calls) serialised back
   to JSON. Target
   10,000 attempts < 60 s, with a pool of 2 processes. ``--attempts`` below 10,000
   measures that many and extrapolates linearly (the output says so).
3. The database path: a 200-case exam with reference reads from two experts (lesion marks on
   the TB-suggestive cases) and trainees' finished 200-case reads with marks
   (bench/exam_data.py), in a fresh database: SQLite in a temporary file, PostgreSQL in a
   temporary server started like the test suite's. Times, in the application (server
   time, no network): ``submit_attempt`` (end, score, certificate check, commit),
   the case page's submit form, loading and scoring an ended attempt (``results.score``)
   and its result page; prints the median of N runs (each submit on its own attempt, after
   one warm-up) and the SQL statements each sends. Target: a 200-case submit < 100 ms on
   PostgreSQL.

``--part`` picks the parts to run (default all); ``--database`` the databases of part 3.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, text

from app.quizzes.scoring import CaseRead, CaseTruth, Criterion, score_attempt

FINDINGS = (
    "infiltrate",
    "fibrosis",
    "cavitary_lesion",
    "nodule",
    "pleural_effusion",
    "hilar_adenopathy",
    "miliary",
    "linear_opacity",
    "discrete_nodule",
    "volume_loss",
    "pleural_reaction",
    "other_tb",
)
COMPATIBLE = {"other_tb": set(FINDINGS) - {"other_tb"}}
CRITERIA = (
    Criterion("sensitivity", 0.9),
    Criterion("specificity", 0.8),
    Criterion("kappa", 0.6),
    Criterion("auc", 0.8),
    Criterion("wafroc", 0.7),
    Criterion("major_discrepancies", maximum=5),
)
CASES = 200
SIZE = 2048  # image pixels, square
DISTINCT_ATTEMPTS = 200  # distinct stored attempts, cycled for the re-scoring run


def region(rng: random.Random, cx: float, cy: float, r: float) -> tuple[str, dict[str, Any]]:
    shape = rng.choice(("ellipse", "rectangle", "polygon"))
    if shape == "ellipse":
        return shape, {"cx": cx, "cy": cy, "rx": r, "ry": r * rng.uniform(0.6, 1.0)}
    if shape == "rectangle":
        return shape, {"x": cx - r, "y": cy - r, "width": 2 * r, "height": 2 * r}
    points = [[cx - r, cy - r], [cx + r, cy - r * 0.8], [cx + r * 0.9, cy + r], [cx - r, cy + r]]
    return shape, {"points": points}


def make_exam(seed: int) -> list[dict[str, Any]]:
    """The reference reads, as stored dicts."""
    rng = random.Random(seed)
    exam = []
    for case_id in range(1, CASES + 1):
        abnormal = rng.random() < 0.5
        lesions = []
        if abnormal:
            for n in range(rng.randint(1, 3)):
                shape, geometry = region(
                    rng, rng.uniform(200, SIZE - 200), rng.uniform(200, SIZE - 200), 60
                )
                lesions.append(
                    {
                        "id": f"{case_id}-{n}",
                        "image_id": case_id,
                        "finding": rng.choice(FINDINGS),
                        "shape": shape,
                        "geometry": geometry,
                        "weight": None,
                    }
                )
        exam.append(
            {
                "case_id": case_id,
                "tb_positive": abnormal,
                "classification": "abnormal_tb" if abnormal else "normal",
                "findings": sorted({lesion["finding"] for lesion in lesions}),
                "lesions": lesions,
                "rating": rng.randint(4, 5) if abnormal else rng.randint(1, 2),
            }
        )
    return exam


def make_attempt(exam: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """A trainee's reads of the exam, as stored dicts: mostly right, with misses, false
    alarms, marks off target and wrong labels."""
    rng = random.Random(seed)
    reads = []
    for case in exam:
        positive = case["tb_positive"] if rng.random() < 0.85 else not case["tb_positive"]
        marks = []
        for lesion in case["lesions"]:
            if rng.random() < 0.75:
                x, y = _centre(lesion["geometry"])
                shape, geometry = region(
                    rng, x + rng.gauss(0, 25), y + rng.gauss(0, 25), rng.uniform(20, 50)
                )
                if rng.random() < 0.3:
                    shape, geometry = "point", {"x": x, "y": y}
                finding = lesion["finding"] if rng.random() < 0.9 else rng.choice(FINDINGS)
                marks.append(_mark(case["case_id"], finding, shape, geometry, rng))
        for _ in range(rng.choice((0, 0, 0, 1, 2))):  # false marks anywhere on the image
            shape, geometry = region(rng, rng.uniform(100, SIZE - 100), rng.uniform(100, 1900), 30)
            marks.append(_mark(case["case_id"], rng.choice(FINDINGS), shape, geometry, rng))
        findings = {m["finding"] for m in marks} if positive else set()
        rating = min(5, max(1, case["rating"] + rng.choice((-2, -1, 0, 0, 0, 1))))
        reads.append(
            {
                "case_id": case["case_id"],
                "tb_positive": positive,
                "classification": "abnormal_tb" if positive else "normal",
                "findings": sorted(findings),
                "rating": rating,
                "marks": marks,
                "ordinal": rating,
                "reading_seconds": round(rng.uniform(15, 120), 1),
            }
        )
    return reads


def _centre(geometry: dict[str, Any]) -> tuple[float, float]:
    if "cx" in geometry:
        return geometry["cx"], geometry["cy"]
    if "width" in geometry:
        return geometry["x"] + geometry["width"] / 2, geometry["y"] + geometry["height"] / 2
    xs = [p[0] for p in geometry["points"]]
    ys = [p[1] for p in geometry["points"]]
    return sum(xs) / len(xs), sum(ys) / len(ys)


def _mark(image_id: int, finding: str, shape: str, geometry: dict, rng: random.Random) -> dict:
    return {
        "image_id": image_id,
        "finding": finding,
        "shape": shape,
        "geometry": geometry,
        "confidence": rng.randint(10, 100),
    }


# ---- 1. one attempt ----------------------------------------------------------------------


def bench_one_attempt(runs: int) -> None:
    exam = make_exam(1)
    truths = [CaseTruth.from_dict(case) for case in exam]
    reads = [CaseRead.from_dict(r) for r in make_attempt(exam, 2)]
    pairs = list(zip(truths, reads, strict=True))
    lesions = sum(len(t.lesions) for t in truths)
    marks = sum(len(r.marks) for r in reads)
    score_attempt(pairs, CRITERIA, COMPATIBLE, findings_universe=FINDINGS)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = score_attempt(pairs, CRITERIA, COMPATIBLE, findings_universe=FINDINGS)
        times.append(time.perf_counter() - start)
    median_ms = statistics.median(times) * 1000
    m = result.metrics
    print(
        f"exam: {CASES} cases x {len(FINDINGS)} findings, "
        f"{sum(1 for t in truths if t.lesions)} abnormal, {lesions} lesions, {marks} marks"
    )
    print(
        f"  sensitivity {m['sensitivity']:.3f}, specificity {m['specificity']:.3f}, "
        f"AUC {m['auc']:.3f} (DeLong CI {result.intervals['auc'][0]:.3f}-"
        f"{result.intervals['auc'][1]:.3f}), wAFROC {m['wafroc']:.3f}, "
        f"LL fraction {m['lesion_localisation_sensitivity']:.3f}"
    )
    print(
        f"1. score one attempt: median {median_ms:.2f} ms of {runs} runs "
        f"(min {min(times) * 1000:.2f}, max {max(times) * 1000:.2f}); "
        f"target 50 ms, ratio {median_ms / 50:.3f}"
    )


# ---- 2. re-scoring stored attempts -------------------------------------------------------

_TRUTHS: list[CaseTruth] = []
_STORED: list[str] = []


def _init_worker(truth_json: str, stored: list[str]) -> None:
    """Each worker parses the (changed) reference read once: every attempt of the exam is
    scored against the same truths."""
    global _TRUTHS, _STORED
    _TRUTHS = [CaseTruth.from_dict(case) for case in json.loads(truth_json)]
    _STORED = stored
    # The long-lived objects (reference and stored attempts) go to the permanent GC
    # generation, so full collections do not walk them again and again (about 30 %).
    gc.freeze()


def _rescore(indices: range) -> tuple[int, float]:
    """Bytes of result written and the CPU seconds this worker spent."""
    cpu = time.process_time()
    by_id = {t.case_id: t for t in _TRUTHS}
    written = 0
    for i in indices:
        stored = json.loads(_STORED[i % len(_STORED)])
        reads = [CaseRead.from_dict(r) for r in stored["reads"]]
        pairs = [(by_id[r.case_id], r) for r in reads]
        result = score_attempt(pairs, CRITERIA, COMPATIBLE, findings_universe=FINDINGS)
        # What results.finalise stores: the headline scores and, per case, whether the
        # sputum decision was right and what it was.
        kept = {
            **result.stored_json(),
            "cases": {str(c.case_id): None if c.tb_correct is None else int(c.tb_correct)
                      for c in result.cases},
            "calls": {str(c.case_id): None if c.blank or c.tb_correct is None
                      or by_id[c.case_id].tb_positive is None
                      else int(c.tb_correct == bool(by_id[c.case_id].tb_positive))
                      for c in result.cases},
        }
        written += len(json.dumps(kept, allow_nan=False))
    return written, time.process_time() - cpu


def bench_rescoring(attempts: int, processes: int) -> None:
    exam = make_exam(1)
    stored = [
        json.dumps({"attempt_id": k, "reads": make_attempt(exam, 100 + k)})
        for k in range(DISTINCT_ATTEMPTS)
    ]
    # The trainer corrects a reference read: case 7 loses a lesion and changes decision.
    changed = json.loads(json.dumps(exam))
    changed[6]["lesions"] = changed[6]["lesions"][:-1]
    changed[6]["tb_positive"] = bool(changed[6]["lesions"])
    changed[6]["classification"] = "abnormal_tb" if changed[6]["lesions"] else "normal"
    truth_json = json.dumps(changed)
    chunks = [range(p, attempts, processes) for p in range(processes)]
    context = multiprocessing.get_context("fork")
    start = time.perf_counter()
    with context.Pool(processes, _init_worker, (truth_json, stored)) as pool:
        done = pool.map(_rescore, chunks)
    elapsed = time.perf_counter() - start
    written = sum(w for w, _ in done)
    cpu = sum(c for _, c in done)
    full = elapsed * 10_000 / attempts
    size_kb = sum(len(s) for s in stored) / len(stored) / 1024
    print(
        f"2. re-score {attempts:,} stored attempts ({size_kb:.0f} kB of JSON each, "
        f"{written / attempts / 1024:.0f} kB of result each) with {processes} processes: "
        f"{elapsed:.1f} s, {elapsed / attempts * 1000:.2f} ms per attempt"
    )
    label = "measured" if attempts >= 10_000 else f"extrapolated from {attempts:,}"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"   CPU time in the workers: {cpu:.1f} s, {cpu / attempts * 1000:.2f} ms per attempt; "
        f"{os.cpu_count()} CPUs, load average {load}"
    )
    idle = cpu * 10_000 / attempts / processes
    print(
        f"   10,000 attempts on {processes} otherwise idle CPUs (CPU time / {processes}): "
        f"{idle:.1f} s, ratio {idle / 60:.3f}"
    )
    print(f"   10,000 attempts: {full:.1f} s ({label}); target 60 s, ratio {full / 60:.3f}")


# ---- 3. the database path ---------------------------------------------------------------

SUBMIT_TARGET_MS = 100.0
DB_CASES = 200


@contextmanager
def _statements() -> Iterator[list[str]]:
    from app.extensions import db

    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


Sample = tuple[float, float, int]  # wall ms, this process's CPU ms, SQL statements


def _timed(action: Callable[[], Any]) -> tuple[Sample, Any]:
    """The sample and the result of one call. CPU time is the application's own (the
    database server's is not in it): on a shared machine it varies less than wall time."""
    with _statements() as sent:
        cpu, start = time.process_time(), time.perf_counter()
        result = action()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return (elapsed * 1000, cpu * 1000, len(sent)), result


def _report(label: str, samples: list[Sample], target: float | None = None) -> None:
    times = [ms for ms, _, _ in samples]
    cpu = statistics.median(c for _, c, _ in samples)
    counts = sorted({n for _, _, n in samples})
    median = statistics.median(times)
    versus = f"; target {target:.0f} ms, ratio {median / target:.3f}" if target else ""
    print(f"   {label:<38} median {median:6.1f} ms of {len(times)} "
          f"(min {min(times):.1f}, max {max(times):.1f}; app CPU {cpu:.1f} ms), "
          f"{'/'.join(map(str, counts))} statements{versus}")


def bench_database(database_url: str, label: str, runs: int) -> float:
    """The median submit time, in ms."""
    from flask_migrate import upgrade

    from app import MIGRATIONS_DIR, create_app
    from app.auth.models import User
    from app.auth.roles import Role
    from app.auth.services import create_user
    from app.extensions import db
    from app.quizzes.models import Attempt
    from app.quizzes.results import score
    from app.quizzes.services import submit_attempt
    from app.schemes.registry import get_scheme
    from bench.exam_data import add_cases, add_exam, finished_read
    from tests.conftest import PASSWORD, IsolatedClient, base_config, login
    from tests.forms import submit_html

    with tempfile.TemporaryDirectory() as tmp:
        config = {**base_config(database_url, Path(tmp) / "instance"), "TESTING": False}
        app = create_app(config)
        app.test_client_class = IsolatedClient
        with app.app_context():
            upgrade(directory=str(MIGRATIONS_DIR))
            start = time.perf_counter()
            scheme = get_scheme("tb_screening")

            def person(name: str, role: Role) -> User:
                return create_user(email=f"{name}@example.org", full_name=name.title(),
                                   username=name, roles=[role], password=PASSWORD)

            experts = [person(f"expert{n}", Role.TRAINER) for n in range(2)]
            case_ids = add_cases(DB_CASES, scheme=scheme, experts=experts, seed=1)
            review = dict.fromkeys(("score", "correctness", "reference", "teaching_notes"),
                                   "after_submit")
            exam_id = add_exam(case_ids, scheme=scheme, review=review)
            reads = []
            for n in range(2 * (runs + 1)):
                trainee = person(f"trainee{n}", Role.TRAINEE_RADIOLOGIST)
                reads.append((trainee.id, trainee.username,
                              finished_read(exam_id, trainee, seed=100 + n)))
            if db.engine.dialect.name == "postgresql":
                # As autovacuum would soon after a load: the planner needs statistics.
                with db.engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text("ANALYZE"))
            print(f"\n{label}: {DB_CASES}-case exam, {len(experts)} experts, "
                  f"{len(reads)} finished reads built in {time.perf_counter() - start:.1f} s")
            db.session.remove()

            service: list[Sample] = []
            form: list[Sample] = []
            scoring: list[Sample] = []
            page: list[Sample] = []
            for n, (user_id, _, attempt_id) in enumerate(reads[: runs + 1]):
                # As a request would start: nothing of earlier work in the session.
                db.session.remove()
                user, attempt = db.session.get(User, user_id), db.session.get(Attempt, attempt_id)
                sample, _ = _timed(lambda a=attempt, u=user: submit_attempt(a, u))
                if n:  # the first run warms caches; not counted
                    service.append(sample)
            db.session.remove()
            for n, (_, username, attempt_id) in enumerate(reads[runs + 1:]):
                client = app.test_client()
                if login(client, username).status_code != 302:
                    raise SystemExit(f"sign-in of {username} failed")
                case_page = f"/training/attempts/{attempt_id}/summary"
                html = client.get(case_page).get_data(as_text=True)
                sample, response = _timed(lambda h=html, p=case_page, c=client: submit_html(
                    c, h, p, button="Submit and finish"))
                if response.status_code != 302:
                    raise SystemExit(f"submit form: HTTP {response.status_code}")
                if n:
                    form.append(sample)
            ended = reads[0][2]
            for n in range(runs + 1):
                db.session.remove()
                attempt = db.session.get(Attempt, ended)
                sample, _ = _timed(lambda a=attempt: score(a))
                if n:
                    scoring.append(sample)
            db.session.remove()
            last_user, last_attempt = reads[-1][1], reads[-1][2]
            client = app.test_client()
            login(client, last_user)
            for n in range(runs + 1):
                sample, response = _timed(
                    lambda: client.get(f"/training/attempts/{last_attempt}/result"))
                if response.status_code != 200:
                    raise SystemExit(f"result page: HTTP {response.status_code}")
                if n:
                    page.append(sample)
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"   {os.cpu_count()} CPUs, load average {load}")
            _report("submit_attempt (service)", service, SUBMIT_TARGET_MS)
            _report("submit form of the case page (POST)", form)
            _report("results.score of an ended attempt", scoring)
            _report("result page (GET)", page)
            db.session.remove()
            db.engine.dispose()
            return statistics.median(ms for ms, _, _ in service)


def bench_databases(databases: str, runs: int) -> None:
    print(f"3. the database path ({DB_CASES} cases; target: submit < "
          f"{SUBMIT_TARGET_MS:.0f} ms server time on PostgreSQL)")
    submit: dict[str, float] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        if databases in ("sqlite", "both"):
            submit["SQLite"] = bench_database(f"sqlite:///{tmp}/bench.sqlite3", "SQLite", runs)
        if databases in ("postgresql", "both"):
            from tests.realservers import create_database, postgres_server

            base = stack.enter_context(postgres_server())
            submit["PostgreSQL"] = bench_database(create_database(base, "cxr_bench"),
                                                  "PostgreSQL", runs)
    label = "PostgreSQL" if "PostgreSQL" in submit else "SQLite"
    print(f"   {DB_CASES}-case submit on {label}: {submit[label]:.1f} ms; target "
          f"{SUBMIT_TARGET_MS:.0f} ms, ratio {submit[label] / SUBMIT_TARGET_MS:.3f}")


PARTS = ("pure", "rescore", "database")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--db-runs", type=int, default=5,
                        help="runs per figure of part 3 (each submit needs its own attempt)")
    parser.add_argument("--attempts", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--part", choices=PARTS, action="append",
                        help="run only this part (repeatable); default all")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    parts = args.part or PARTS
    if "pure" in parts:
        bench_one_attempt(args.runs)
    if "rescore" in parts:
        bench_rescoring(args.attempts, args.processes)
    if "database" in parts:
        bench_databases(args.database, args.db_runs)


if __name__ == "__main__":
    main()
