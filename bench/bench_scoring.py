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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, text

from app.quizzes.scoring import CaseRead, CaseTruth, Criterion, score_attempt
from bench._servers import ROOT, database_urls, load_average, migrated_app, postgres_database, stop

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
    from app.auth.models import User
    from app.auth.roles import Role
    from app.auth.services import create_user
    from app.extensions import db
    from app.quizzes.models import Attempt
    from app.quizzes.results import score
    from app.quizzes.services import submit_attempt
    from app.schemes.registry import get_scheme
    from bench.exam_data import add_cases, add_exam, finished_read
    from tests.conftest import PASSWORD, login
    from tests.forms import submit_html

    with tempfile.TemporaryDirectory() as tmp:
        app = migrated_app(database_url, Path(tmp) / "instance")
        with app.app_context():
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
    with database_urls(databases) as urls:
        submit = {label: bench_database(url, label, runs) for label, url in urls}
    label = "PostgreSQL" if "PostgreSQL" in submit else "SQLite"
    print(f"   {DB_CASES}-case submit on {label}: {submit[label]:.1f} ms; target "
          f"{SUBMIT_TARGET_MS:.0f} ms, ratio {submit[label] / SUBMIT_TARGET_MS:.3f}")


# ---- 4. the re-scoring job through PostgreSQL ----------------------------------------------

RESCORE_TARGET_S = 60.0
JOB_CASES = 200
REAL_READS = 8  # trainees' reads made through the services; the others are copies of them


def _cpu_of(pid: int) -> float:
    """CPU seconds of a process and of its children it has waited for (the re-scoring
    processes a worker forks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[n]) for n in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")


def _ended_attempts(exam_id: int, originals: list[int], count: int) -> None:
    """``count`` ended attempts of the exam in all: copies of ``originals`` (answers and
    stored scores) by other trainees, two each, inserted in bulk; then the peer figures
    recounted, as after any bulk load."""
    from sqlalchemy import insert, select

    from app.auth.models import User, UserRole
    from app.auth.roles import Role
    from app.extensions import db
    from app.quizzes.models import Attempt
    from app.quizzes.peers import rebuild_peer_calls
    from app.quizzes.standings import rebuild_standings

    missing = count - len(originals)
    sources = [db.session.get_one(Attempt, attempt_id) for attempt_id in originals]
    users = [{"username": f"peer{n:06d}", "email": f"peer{n:06d}@example.org",
              "full_name": f"Peer {n}"} for n in range((missing + 1) // 2)]
    db.session.execute(insert(User), users)
    ids = list(db.session.scalars(select(User.id).where(User.username.like("peer%"))
                                  .order_by(User.id)))
    db.session.execute(insert(UserRole), [
        {"user_id": uid, "role": Role.TRAINEE_RADIOLOGIST.value} for uid in ids])
    columns = ("exercise_id", "state", "case_order", "started_at", "ended_at", "metrics",
               "passed", "sensitivity", "specificity", "accuracy", "case_set", "case_scores")
    for start in range(0, missing, 1000):
        rows, copied = [], []
        for n in range(start, min(missing, start + 1000)):
            source = sources[n % len(sources)]
            rows.append({**{c: getattr(source, c) for c in columns},
                         "user_id": ids[n // 2], "number": 1 + n % 2})
            copied.append(source.id)
        new_ids = list(db.session.scalars(
            insert(Attempt).returning(Attempt.id, sort_by_parameter_order=True), rows))
        db.session.execute(text(
            "INSERT INTO attempt_answer (attempt_id, case_id, answers, marks, revision, "
            "seconds, saved_at, checked_at, flagged) "
            "SELECT m.new_id, a.case_id, a.answers, a.marks, a.revision, a.seconds, "
            "a.saved_at, a.checked_at, a.flagged FROM attempt_answer a "
            "JOIN unnest(CAST(:new AS integer[]), CAST(:old AS integer[])) AS m(new_id, old_id)"
            " ON a.attempt_id = m.old_id"), {"new": new_ids, "old": copied})
        db.session.commit()
    rebuild_standings(exam_id)
    rebuild_peer_calls()
    db.session.commit()


def build_rescoring_exam(attempts: int) -> int:
    """A 200-case exam with ``attempts`` ended attempts (REAL_READS made through the
    services, the others copies of them), whose reference of one case the trainers then
    correct; returns the exam's id. PostgreSQL only (bulk copies with unnest)."""
    from app.auth.models import User
    from app.auth.roles import Role
    from app.auth.services import create_user
    from app.cases.models import Case
    from app.cases.reads import save_read
    from app.extensions import db
    from app.quizzes.models import Attempt
    from app.quizzes.services import submit_attempt
    from app.schemes.registry import get_scheme
    from bench.exam_data import add_cases, add_exam, finished_read
    from tests.conftest import PASSWORD

    scheme = get_scheme("tb_screening")
    experts = [create_user(email=f"expert{n}@example.org", full_name=f"Expert {n}",
                           username=f"expert{n}", roles=[Role.TRAINER],
                           password=PASSWORD) for n in range(2)]
    case_ids = add_cases(JOB_CASES, scheme=scheme, experts=experts, seed=1)
    exam_id = add_exam(case_ids, scheme=scheme)
    originals = []
    for n in range(REAL_READS):
        trainee = create_user(email=f"t{n}@example.org", full_name=f"T {n}",
                              username=f"trainee{n}", password=PASSWORD,
                              roles=[Role.TRAINEE_RADIOLOGIST])
        attempt_id = finished_read(exam_id, trainee, seed=100 + n)
        submit_attempt(db.session.get_one(Attempt, attempt_id), trainee)
        originals.append(attempt_id)
    _ended_attempts(exam_id, originals, attempts)
    # The trainers correct a reference read: a TB case turns out normal.
    case = db.session.get_one(Case, case_ids[6])
    for expert in experts:
        save_read(case, author=db.session.get_one(User, expert.id), scheme=scheme,
                  answers={"classification": "normal", "tb_likelihood": 1, "findings": []},
                  marks=[])
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return exam_id


def bench_rescoring_job(attempts: int, processes: int, timeout: float) -> None:
    """A wall-clock run of the re-scoring job as production runs it: queued by the same
    call as the exercise page's button, run by a `cxr-academy worker` process (which
    re-scores with RESCORING_PROCESSES processes) on PostgreSQL on 127.0.0.1."""
    import subprocess

    from app.extensions import db
    from app.jobs.models import Job
    from app.quizzes.rescoring_job import start_rescoring
    from tests.conftest import base_config

    print(f"4. the re-scoring job: {attempts:,} ended {JOB_CASES}-case attempts, "
          f"{processes} processes, PostgreSQL on 127.0.0.1 (target < {RESCORE_TARGET_S:.0f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        instance = Path(tmp) / "instance"
        queue = f"sqlite:///{tmp}/queue.sqlite3"
        settings = {"JOB_QUEUE_URL": queue, "RESCORING_PROCESSES": processes}
        with postgres_database("cxr_bench_rescore", instance) as url:
            app = migrated_app(url, instance, **settings)
            # The worker starts first: its start-up is not in the figure.
            config = {k: v for k, v in base_config(url, instance).items()
                      if k in ("SECRET_KEY", "DEID_SECRET", "FIELD_ENCRYPTION_KEYS")}
            env = {**os.environ, "CXR_ACADEMY_SQLALCHEMY_DATABASE_URI": url,
                   "CXR_ACADEMY_INSTANCE_PATH": str(instance),
                   **{f"CXR_ACADEMY_{k}": json.dumps(v) if isinstance(v, list) else str(v)
                      for k, v in {**config, **settings}.items()}}
            worker = subprocess.Popen(
                [sys.executable, "-c", "from app.cli import main; main()", "worker"],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
            try:
                with app.app_context():
                    start = time.perf_counter()
                    exam_id = build_rescoring_exam(attempts)
                    print(f"   built in {time.perf_counter() - start:.0f} s")
                    db.session.remove()
                with app.app_context():
                    cpu_before = _cpu_of(worker.pid)
                    began = time.perf_counter()
                    job_id = start_rescoring(exam_id, actor=None).id
                    while True:
                        db.session.expire_all()
                        job = db.session.get_one(Job, job_id)
                        if job.finished:
                            break
                        if worker.poll() is not None:
                            raise SystemExit(f"the worker stopped (exit {worker.returncode})")
                        if time.perf_counter() - began > timeout:
                            raise SystemExit(f"job {job_id} not finished in {timeout:.0f} s: "
                                             f"{job.progress_done} of {job.progress_total}")
                        time.sleep(0.2)
                    wall = time.perf_counter() - began
                    cpu = _cpu_of(worker.pid) - cpu_before
                    summary = job.summary or {}
                    if job.status != "done":
                        raise SystemExit(f"job {job_id} {job.status}: {job.error}")
                    db.session.remove()
                    db.engine.dispose()
            finally:
                stop(worker)
    print(f"   job {job_id}: {summary.get('attempts')} attempts re-scored, "
          f"{summary.get('changed')} verdicts changed; worker CPU {cpu:.1f} s "
          f"({cpu / attempts * 1000:.2f} ms per attempt); load average {load_average()}")
    print(f"   re-scoring {attempts:,} attempts (job queued -> done): {wall:.1f} s; target "
          f"{RESCORE_TARGET_S:.0f} s, ratio {wall * 10_000 / attempts / RESCORE_TARGET_S:.3f}"
          + ("" if attempts == 10_000 else " (scaled to 10,000)"))


PARTS = ("pure", "rescore", "database", "job")


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
    parser.add_argument("--timeout", type=float, default=600,
                        help="part 4: seconds the job may take before the bench gives up")
    args = parser.parse_args()
    parts = args.part or PARTS
    if "pure" in parts:
        bench_one_attempt(args.runs)
    if "rescore" in parts:
        bench_rescoring(args.attempts, args.processes)
    if "database" in parts:
        bench_databases(args.database, args.db_runs)
    if "job" in parts:
        bench_rescoring_job(args.attempts, args.processes, args.timeout)


if __name__ == "__main__":
    main()
