"""A synthetic certification programme at a chosen scale, written with bulk inserts: clinics
in many countries, readers, exercises with cases, ended attempts with stored scores, and
certificates (valid, expiring, expired, revoked, renewed).

Used by bench/bench_dashboards.py at full scale (10,000 users, 100 clinics in 50 countries,
200,000 attempts, 20,000 certificates) and by tests/test_dashboards.py at small scales, to
show that the dashboards' query counts do not grow with the data. Deterministic for a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

import pycountry
from sqlalchemy import insert, select

from app.auth.models import Clinic, User, UserRole
from app.auth.roles import Role
from app.cases.models import Case
from app.certification.models import Certificate
from app.certification.services import create_programme, new_code
from app.db_types import utcnow
from app.extensions import db
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt, AttemptState, ExerciseCase
from app.quizzes.scoring.items import compact_scores
from app.quizzes.standings import rebuild_standings


@dataclass(frozen=True)
class Scale:
    users: int
    clinics: int
    countries: int
    attempts: int
    certificates: int
    cases_per_exercise: int = 20


FULL = Scale(users=10_000, clinics=100, countries=50, attempts=200_000, certificates=20_000)


@dataclass(frozen=True)
class ScaleData:
    programme_id: int
    exercise_ids: list[int]  # practice, practice, exam, renewal
    country_codes: list[str]
    busiest_reader_id: int  # the reader with the most attempts


def _chunks(rows: list[dict], size: int = 5000):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _bulk(model: type, rows: list[dict]) -> None:
    for chunk in _chunks(rows):
        db.session.execute(insert(model), chunk)


def _case_ids(exercise_id: int) -> list[int]:
    return list(db.session.scalars(select(ExerciseCase.case_id).where(
        ExerciseCase.exercise_id == exercise_id).order_by(ExerciseCase.position)))


def populate(
    scale: Scale, seed: int = 1, tag: str = "s", existing: ScaleData | None = None
) -> ScaleData:
    """Adds the data to the current database and commits. ``tag`` keeps names unique when
    called more than once on one database; with ``existing``, the new clinics, readers,
    attempts and certificates belong to that programme (``scale.cases_per_exercise`` is
    then unused)."""
    rng = random.Random(seed)
    now = utcnow()
    countries = sorted(c.alpha_2 for c in pycountry.countries)
    codes = rng.sample(countries, scale.countries)

    _bulk(Clinic, [
        {"name": f"{tag} clinic {n:03d}", "city": f"City {n}",
         "country_code": codes[n % len(codes)]}
        for n in range(scale.clinics)
    ])
    clinic_ids = list(db.session.scalars(
        select(Clinic.id).where(Clinic.name.like(f"{tag} clinic %")).order_by(Clinic.id)))

    if existing is None:
        _bulk(Case, [
            {"status": "published", "source": "synthetic", "reference_tb_positive": n % 2 == 0,
             "published_at": now}
            for n in range(scale.cases_per_exercise * 2)
        ])
        case_ids = list(db.session.scalars(
            select(Case.id).where(Case.source == "synthetic").order_by(Case.id.desc())
            .limit(scale.cases_per_exercise * 2)))
        practice_cases = case_ids[: scale.cases_per_exercise]
        exam_cases = case_ids[scale.cases_per_exercise:]
        exercises = [
            create_exercise(title=f"{tag} practice A", kind="practice",
                            scheme_key="tb_screening", case_ids=practice_cases, actor=None),
            create_exercise(title=f"{tag} practice B", kind="practice",
                            scheme_key="tb_screening", case_ids=practice_cases[::-1], actor=None),
            create_exercise(title=f"{tag} exam", kind="exam", scheme_key="tb_screening",
                            case_ids=exam_cases, actor=None,
                            criteria=[("sensitivity", 0.8), ("specificity", 0.7)]),
            create_exercise(title=f"{tag} renewal exam", kind="exam", scheme_key="tb_screening",
                            case_ids=exam_cases[::-1], actor=None,
                            criteria=[("sensitivity", 0.8), ("specificity", 0.7)]),
        ]
        exercise_ids = [e.id for e in exercises]
        programme_id = create_programme(
            title=f"{tag} TB CXR reader — radiologist",
            requirements=list(zip(exercise_ids, ("practice", "practice", "exam", "renewal"),
                                  strict=True)),
            eligible_roles=[Role.TRAINEE_RADIOLOGIST.value],
        ).id
    else:  # more of everything for the same programme
        exercise_ids, programme_id = existing.exercise_ids, existing.programme_id
        practice_cases = _case_ids(exercise_ids[0])
        exam_cases = _case_ids(exercise_ids[2])

    _bulk(User, [
        {"username": f"{tag}reader{n:05d}", "email": f"{tag}reader{n:05d}@example.org",
         "full_name": f"Reader {tag.upper()}{n:05d}", "clinic_id": clinic_ids[n % len(clinic_ids)],
         "active": n % 50 != 0}
        for n in range(scale.users)
    ])
    user_ids = list(db.session.scalars(
        select(User.id).where(User.username.like(f"{tag}reader%")).order_by(User.id)))
    _bulk(UserRole, [
        {"user_id": uid, "role": (Role.TRAINEE_RADIOGRAPHER if n % 5 == 4
                                  else Role.TRAINEE_RADIOLOGIST).value}
        for n, uid in enumerate(user_ids)
    ])

    attempts: list[dict] = []
    numbers: dict[tuple[int, int], int] = {}
    per_user: dict[int, int] = {}
    # Most readers have a handful of attempts, a few keen ones up to ten times as many.
    weights = [min(rng.paretovariate(2.0), 10.0) for _ in user_ids]
    chosen = rng.choices(user_ids, weights=weights, k=scale.attempts)
    for user_id in chosen:
        exercise_id = rng.choice(exercise_ids)
        number = numbers[(user_id, exercise_id)] = numbers.get((user_id, exercise_id), 0) + 1
        per_user[user_id] = per_user.get(user_id, 0) + 1
        started = now - timedelta(days=rng.uniform(0, 3 * 365))
        sensitivity = min(1.0, max(0.0, rng.gauss(0.85, 0.1)))
        specificity = min(1.0, max(0.0, rng.gauss(0.8, 0.12)))
        exam = exercise_id in exercise_ids[2:]
        attempts.append({
            "exercise_id": exercise_id, "user_id": user_id,
            "state": AttemptState.SUBMITTED.value if rng.random() < 0.93
            else AttemptState.TIMED_OUT.value,
            "number": number, "case_order": [], "started_at": started,
            "ended_at": started + timedelta(minutes=rng.uniform(10, 90)),
            "metrics": {
                "metrics": {"sensitivity": sensitivity, "specificity": specificity,
                            "accuracy": (sensitivity + specificity) / 2,
                            "kappa": sensitivity + specificity - 1},
                "cases": {str(c): int(rng.random() < 0.8)
                          for c in (exam_cases if exam else practice_cases)},
            },
            "passed": (sensitivity >= 0.8 and specificity >= 0.7) if exam else None,
            "sensitivity": sensitivity, "specificity": specificity,
            "accuracy": (sensitivity + specificity) / 2,
        })
        attempts[-1]["case_set"], attempts[-1]["case_scores"] = compact_scores(  # as finalise
            attempts[-1]["metrics"]["cases"])
    _bulk(Attempt, attempts)
    rebuild_standings()  # as ending each attempt would have kept them

    certificates: list[dict] = []
    holders = [uid for n, uid in enumerate(user_ids) if n % 5 != 4]  # radiologists
    names = dict(db.session.execute(
        select(User.id, User.full_name).where(User.username.like(f"{tag}reader%"))).all())
    while len(certificates) < scale.certificates:
        user_id = holders[len(certificates) % len(holders)]
        renewal = len(certificates) >= len(holders)
        issued = now - timedelta(days=rng.uniform(0, 800 if not renewal else 60))
        revoked = rng.random() < 0.02
        certificates.append({
            "code": new_code(), "programme_id": programme_id, "user_id": user_id,
            "holder_name": names[user_id], "issued_at": issued,
            "expires_at": issued + timedelta(days=730), "cme_hours": 4.0,
            "evidence": {"requirements": [], "renews": None},
            "revoked_at": now if revoked else None,
            "revoke_reason": "synthetic" if revoked else None,
        })
    _bulk(Certificate, certificates)
    db.session.commit()
    busiest = max(per_user, key=per_user.get) if per_user else user_ids[0]
    return ScaleData(programme_id, exercise_ids, codes, busiest)

