"""Server time of an exam attempt's result page as the exam's ended attempts grow, by hand:

    .venv/bin/python bench/bench_result_page.py [--database sqlite|postgresql|both]
        [--cases 20] [--runs 5] [--levels 1,1000,10000]

Not a test. In a fresh database (SQLite in a temporary file, PostgreSQL in a temporary
server started like the test suite's): an exam of ``--cases`` cases with reference reads
from two experts (bench/exam_data.py), one trainee's attempt read and submitted through the
services, then other trainees' ended attempts at the same exam, bulk-inserted (their scores
copied from that attempt with varied accuracies, the peer standings recounted as ending
them would have kept them) until the exam has each level's number of ended attempts. At
each level, prints the median server time (Flask test client, no network) and the SQL
statements of the trainee's result page (score, peer percentile, peer calls per case,
figures' links). Target: < 100 ms whatever the number of ended attempts; the last line is
the ratio at the largest level against it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, insert, select, text

from app.auth.models import User, UserRole
from app.auth.roles import Role
from app.auth.services import create_user
from app.extensions import db
from app.quizzes.models import Attempt, AttemptState
from app.quizzes.peers import rebuild_peer_calls
from app.quizzes.services import submit_attempt
from app.quizzes.standings import rebuild_standings
from app.schemes.registry import get_scheme
from bench._servers import DATABASES, database_urls, migrated_app
from bench.exam_data import add_cases, add_exam, finished_read
from tests.conftest import PASSWORD, login

TARGET_MS = 100.0
SHOW_ALL = dict.fromkeys(("score", "correctness", "reference", "teaching_notes"),
                         "after_submit")


def _grow(exam_id: int, mine: Attempt, to: int, rng: random.Random) -> None:
    """Other trainees' ended attempts at the exam (one or two each) until it has ``to``."""
    have = db.session.scalar(select(db.func.count()).select_from(Attempt).where(
        Attempt.exercise_id == exam_id, Attempt.state.in_(("submitted", "timed_out"))))
    missing = to - have
    if missing <= 0:
        return
    first = db.session.scalar(select(db.func.count()).select_from(User))
    users = [{"username": f"peer{first + n:06d}", "email": f"peer{first + n:06d}@example.org",
              "full_name": f"Peer {first + n}"} for n in range((missing + 1) // 2)]
    db.session.execute(insert(User), users)
    ids = list(db.session.scalars(select(User.id).where(
        User.username.in_([u["username"] for u in users]))))
    db.session.execute(insert(UserRole), [
        {"user_id": uid, "role": Role.TRAINEE_RADIOLOGIST.value} for uid in ids])
    rows = []
    for n in range(missing):
        accuracy = rng.randint(0, 40) / 40  # few distinct values: ties, as real scores have
        scores = {**mine.metrics, "metrics": {**mine.metrics["metrics"], "accuracy": accuracy}}
        rows.append({"exercise_id": exam_id, "user_id": ids[n // 2], "number": 1 + n % 2,
                     "state": AttemptState.SUBMITTED.value, "case_order": mine.case_order,
                     "started_at": mine.started_at, "ended_at": mine.ended_at,
                     "metrics": scores, "passed": mine.passed,
                     "sensitivity": mine.sensitivity, "specificity": mine.specificity,
                     "accuracy": accuracy, "case_set": mine.case_set,
                     "case_scores": mine.case_scores})
    for start in range(0, len(rows), 2000):
        db.session.execute(insert(Attempt), rows[start:start + 2000])
    rebuild_standings(exam_id)
    rebuild_peer_calls()
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))


def _measure(client, url: str, runs: int) -> tuple[float, int]:
    sent: list[str] = []

    def count(*_args) -> None:
        sent.append("")

    client.get(url)  # warm-up
    times = []
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        for _ in range(runs):
            sent.clear()
            start = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - start) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{url}: HTTP {response.status_code}")
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return statistics.median(times), len(sent)


def bench(database_url: str, label: str, cases: int, runs: int, levels: list[int]) -> float:
    """The median at the largest level, in ms."""
    with tempfile.TemporaryDirectory() as tmp:
        app = migrated_app(database_url, Path(tmp) / "instance")
        worst = 0.0
        with app.app_context():
            scheme = get_scheme("tb_screening")
            experts = [create_user(email=f"expert{n}@example.org", full_name=f"Expert {n}",
                                   username=f"expert{n}", roles=[Role.TRAINER],
                                   password=PASSWORD) for n in range(2)]
            exam_id = add_exam(add_cases(cases, scheme=scheme, experts=experts),
                               scheme=scheme, review=SHOW_ALL)
            trainee = create_user(email="trainee@example.org", full_name="Trainee",
                                  username="trainee", roles=[Role.TRAINEE_RADIOLOGIST],
                                  password=PASSWORD)
            attempt_id = finished_read(exam_id, trainee)
            mine = submit_attempt(db.session.get_one(Attempt, attempt_id), trainee)
            client = app.test_client()
            if login(client, "trainee").status_code != 302:
                raise SystemExit("sign-in failed")
            rng = random.Random(1)
            print(f"\n{label}: {cases}-case exam; result page of one attempt")
            for level in levels:
                _grow(exam_id, mine, level, rng)
                ms, statements = _measure(client, f"/training/attempts/{attempt_id}/result",
                                          runs)
                worst = ms
                print(f"   {level:>7,} ended attempts: median {ms:7.1f} ms of {runs}, "
                      f"{statements} statements; target {TARGET_MS:.0f} ms, "
                      f"ratio {ms / TARGET_MS:.3f}")
            db.session.remove()
            db.engine.dispose()
        return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=DATABASES, default="both")
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--levels", default="1,1000,10000")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    with database_urls(args.database) as urls:
        results = [(label, bench(url, label, args.cases, args.runs, levels))
                   for label, url in urls]
    worst_label, worst = max(results, key=lambda r: r[1])
    print(f"result page at {levels[-1]:,} ended attempts, slowest database ({worst_label}): "
          f"{worst:.1f} ms; target {TARGET_MS:.0f} ms, ratio {worst / TARGET_MS:.3f}")


if __name__ == "__main__":
    main()
