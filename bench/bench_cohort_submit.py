"""A cohort submitting an exam at the same moment, under gunicorn, by hand:

    .venv/bin/python bench/bench_cohort_submit.py [--rounds 3] [--cohort 64] [--cases 12]
                                                  [--worker-class gthread|sync]
                                                  [--workers 2] [--threads 8]

Not a test. Starts a throw-away PostgreSQL server (as the test suite does), brings a fresh
database to the migration head, and serves the portal with gunicorn on 127.0.0.1 (gthread:
2 workers x 8 threads by default, as in production). Each round builds a 12-case exam and
64 trainees, each with an attempt in progress and every case answered (each attempt with its
own shuffled case order); every trainee signs in over HTTP and fetches their exam page, then
all 64 post the page's submit form at the same moment. Prints, per round, the HTTP statuses
of the 64 submits (302 to the result page is success), how many attempts ended, how many
have their compact case scores stored, and how many the trainers' case statistics count
(results.exercise_statistics).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from app import create_app
from app.auth.roles import Role
from app.auth.services import create_user
from app.cases.models import Case
from app.extensions import db
from app.quizzes.models import Attempt, AttemptState
from app.quizzes.results import exercise_statistics
from bench._servers import gunicorn, postgres_database
from tests.cohort import cohort_exam, make_cases, prepare_cohort, submit_cohort
from tests.conftest import FAST_HASHING, base_config

PASSWORD = "bench-password-long-enough-1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cohort", type=int, default=64)
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--worker-class", choices=("gthread", "sync"), default="gthread")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    if importlib.util.find_spec("gunicorn") is None:
        raise SystemExit("gunicorn is not installed (pip install gunicorn)")

    instance = Path(tempfile.mkdtemp(prefix="cxr-bench-cohort-"))
    label = (f"gunicorn {args.worker_class} {args.workers} workers"
             + (f" x {args.threads} threads" if args.worker_class == "gthread" else ""))
    with postgres_database("cxr_bench_cohort", instance) as url, gunicorn(
            url, instance, workers=args.workers, worker_class=args.worker_class,
            threads=args.threads, app_spec="app:create_app()",
            settings=FAST_HASHING) as (_server, base):
        app = create_app({**base_config(url, instance), "TESTING": False})
        print(f"{args.cohort} trainees submit a {args.cases}-case exam at once; {label}; "
              "PostgreSQL")
        try:
            with app.app_context():
                expert = create_user(email="expert@example.org", username="expert",
                                     full_name="Expert Reader", roles=[Role.TRAINER],
                                     password=PASSWORD)
                case_ids = [c.id for c in make_cases(args.cases, expert)]
                for round_number in range(1, args.rounds + 1):
                    cases = [db.session.get(Case, case_id) for case_id in case_ids]
                    exam = cohort_exam(cases, title=f"Cohort exam {round_number}")
                    exam_id = exam.id
                    members = prepare_cohort(exam, args.cohort, PASSWORD, seed=round_number,
                                             prefix=f"r{round_number}t")
                    db.session.remove()
                    start = time.perf_counter()
                    answers = submit_cohort(base, members, PASSWORD)
                    elapsed = time.perf_counter() - start
                    statuses = collections.Counter(
                        type(a).__name__ if isinstance(a, BaseException) else a.status
                        for a in answers)
                    ended = db.session.scalar(select(func.count(Attempt.id)).where(
                        Attempt.exercise_id == exam_id,
                        Attempt.state == AttemptState.SUBMITTED.value))
                    scored = db.session.scalar(select(func.count(Attempt.id)).where(
                        Attempt.exercise_id == exam_id,
                        Attempt.case_scores.is_not(None)))
                    counted = exercise_statistics(exam_id).analysed
                    failed = sum(n for status, n in statuses.items() if status != 302)
                    print(f"round {round_number}: submits answered {dict(statuses)}; "
                          f"{failed} of {args.cohort} failed; {ended} attempts submitted, "
                          f"{scored} with compact case scores, {counted} in the case "
                          f"statistics (sign-in, page fetch and burst {elapsed:.1f} s)")
        finally:
            with app.app_context():
                db.engine.dispose()
    shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    main()
