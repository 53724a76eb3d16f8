"""Demo peers: trainee radiologists and radiographers at the demo clinics who have already
worked through the demo exercises, so that peer comparison, the lead's dashboard, the case
statistics and certification have something to show on a first run.

Their reads are made up from the reference reads by a seeded reader model (each peer has
their own sensitivity, specificity and care), and go through the same services as a
trainee's (start, autosave, submit), so every score is the portal's own scoring. Peers
have no password: nobody signs in as one. Seeding is idempotent: a peer that exists is
left as it is, attempts and all.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, func, select

from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.auth.services import create_user
from app.cases.models import Case
from app.cases.reads import Reference, references_for
from app.db_types import utcnow
from app.extensions import db
from app.quizzes.answers import save_answer
from app.quizzes.models import Attempt, Exercise
from app.quizzes.services import (
    AttemptError,
    open_case,
    start_attempt,
    submit_attempt,
)


@dataclass(frozen=True)
class Peer:
    username: str
    full_name: str
    role: Role
    clinic: str
    sensitivity: float  # chance of calling a TB-suggestive case (radiographers: of a fault)
    specificity: float  # chance of calling a normal case normal (radiographers: a good film)
    days_ago: int  # when they took the demo exercises
    retake: bool = False  # a first exam attempt read hastily, then a careful second one


# Readers of the demo programme across the lead's countries; one of them certified nearly
# two years ago (expiring within the reminder window), one whose certificate has lapsed.
PEERS: tuple[Peer, ...] = (
    Peer("peer-ke-wanjiru", "Dr Grace Wanjiru", Role.TRAINEE_RADIOLOGIST,
         "Nairobi Panel Clinic", 0.95, 0.92, 40),
    Peer("peer-ke-kiprono", "Dr Daniel Kiprono", Role.TRAINEE_RADIOLOGIST,
         "Nairobi Panel Clinic", 0.9, 0.9, 690),
    Peer("peer-ke-achieng", "Dr Mercy Achieng", Role.TRAINEE_RADIOLOGIST,
         "Nairobi Panel Clinic", 0.7, 0.85, 12, retake=True),
    Peer("peer-ph-reyes", "Dr Carlo Reyes", Role.TRAINEE_RADIOLOGIST,
         "Manila Health Assessment Centre", 0.85, 0.95, 120),
    Peer("peer-ph-villanueva", "Dr Ana Villanueva", Role.TRAINEE_RADIOLOGIST,
         "Manila Health Assessment Centre", 0.6, 0.7, 5),
    Peer("peer-bd-hossain", "Dr Kamal Hossain", Role.TRAINEE_RADIOLOGIST,
         "Dhaka Migration Health Clinic", 0.97, 0.95, 760, retake=True),
    Peer("peer-bd-akter", "Dr Nusrat Akter", Role.TRAINEE_RADIOLOGIST,
         "Dhaka Migration Health Clinic", 0.88, 0.93, 200, retake=True),
    Peer("peer-bd-rahman", "Dr Tanvir Rahman", Role.TRAINEE_RADIOLOGIST,
         "Dhaka Migration Health Clinic", 0.75, 0.8, 25),
    Peer("peer-ph-dela-cruz", "Maria Dela Cruz", Role.TRAINEE_RADIOGRAPHER,
         "Manila Health Assessment Centre", 0.9, 0.9, 30),
    Peer("peer-ph-bautista", "Paolo Bautista", Role.TRAINEE_RADIOGRAPHER,
         "Manila Health Assessment Centre", 0.7, 0.85, 60),
    Peer("peer-ke-otieno", "Brian Otieno", Role.TRAINEE_RADIOGRAPHER,
         "Nairobi Panel Clinic", 0.8, 0.95, 14),
    Peer("peer-ke-mutua", "Faith Mutua", Role.TRAINEE_RADIOGRAPHER,
         "Nairobi Panel Clinic", 0.6, 0.8, 90),
    Peer("peer-bd-islam", "Rafiq Islam", Role.TRAINEE_RADIOGRAPHER,
         "Dhaka Migration Health Clinic", 0.85, 0.75, 45),
)

# The demo radiologist has read the practice set once, a week ago: her results, her
# history and her place among her peers are there to look at.
DEMO_TRAINEE = Peer("demo-radiologist", "", Role.TRAINEE_RADIOLOGIST, "", 0.8, 0.85, 7)


# ---- made-up reads ----------------------------------------------------------------------


def _inside_point(mark: dict[str, Any], rng: random.Random) -> dict[str, float]:
    """A point a reader would click on the reference lesion ``mark``."""
    geo = mark["geometry"]
    if mark["shape"] == "ellipse":
        return {"x": geo["cx"] + rng.uniform(-0.3, 0.3) * geo["rx"],
                "y": geo["cy"] + rng.uniform(-0.3, 0.3) * geo["ry"]}
    if mark["shape"] == "point":
        return {"x": geo["x"], "y": geo["y"]}
    if mark["shape"] == "rectangle":
        return {"x": geo["x"] + geo["width"] / 2, "y": geo["y"] + geo["height"] / 2}
    points = geo["points"]
    from matplotlib.path import Path as Outline  # matplotlib only when demo peers are drawn

    outline = Outline(points)
    cx = sum(p[0] for p in points) / len(points)
    cy = sum(p[1] for p in points) / len(points)
    # The centroid, or the first point on the way from it to a corner that is inside.
    for px, py in [(cx, cy), *points]:
        for t in (0.0, 0.25, 0.5, 0.75, 0.9):
            x, y = cx + (px - cx) * t, cy + (py - cy) * t
            if outline.contains_point((x, y)):
                return {"x": x, "y": y}
    return {"x": points[0][0], "y": points[0][1]}


def _clamp(value: float, low: int = 1, high: int = 5) -> int:
    return max(low, min(high, round(value)))


def diagnostic_read(reference: Reference, peer: Peer,
                    rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A DS-3030 read of a case by ``peer``: answers and lesion marks (on the current
    image), with a TB likelihood that tracks the reader's call."""
    answers = reference.answers
    findings = list(answers.get("findings") or [])
    if reference.tb_positive:
        if rng.random() < peer.sensitivity:
            named = [f for f in findings if rng.random() < 0.85] or findings[:1]
            marks = [{"image_id": m["image_id"], "finding": m["finding"], "shape": "point",
                      "geometry": _inside_point(m, rng),
                      "confidence": _clamp(rng.gauss(80, 12), 30, 100)}
                     for m in reference.marks if m["finding"] in named]
            return ({"overall": "abnormal", "findings": named,
                     "tb_likelihood": _clamp(rng.gauss(4.4, 0.7), 3, 5)}, marks)
        return {"overall": "normal", "tb_likelihood": _clamp(rng.gauss(2.2, 0.8), 1, 3)}, []
    if rng.random() < peer.specificity:
        read: dict[str, Any] = {"overall": "abnormal" if findings else "normal",
                                "tb_likelihood": _clamp(rng.gauss(1.4, 0.6), 1, 3)}
        if findings:
            read["findings"] = findings
        return read, []
    # A false alarm: an opacity called infiltrate where there is none.
    return {"overall": "abnormal", "findings": ["infiltrate"],
            "tb_likelihood": _clamp(rng.gauss(3.6, 0.7), 3, 5)}, []


FALSE_FAULTS = {
    "rotation": "clavicles look asymmetric",
    "inspiration": "only 9 posterior ribs above the diaphragm",
    "scapulae": "scapula over the left upper zone",
    "collimation": "field wider than needed",
}


def quality_read(reference: Reference, peer: Peer, rng: random.Random) -> dict[str, Any]:
    """An image-quality read by ``peer``: each failing criterion seen with the peer's
    sensitivity, each passing one passed with their specificity."""
    answers: dict[str, Any] = {}
    for key, value in reference.answers.items():
        if not isinstance(value, dict):
            continue
        if not value["pass"]:
            seen = rng.random() < peer.sensitivity
            answers[key] = {"pass": not seen, "reason": value["reason"] if seen else ""}
        elif rng.random() < peer.specificity or key not in FALSE_FAULTS:
            answers[key] = {"pass": True, "reason": ""}
        else:
            answers[key] = {"pass": False, "reason": FALSE_FAULTS[key]}
    failed = sum(1 for v in answers.values() if not v["pass"])
    grade = str(reference.answers.get("grade", "1"))
    if grade != "U" and rng.random() > peer.specificity:
        grade = str(min(3, int(grade) + 1)) if failed else grade
    answers["grade"] = grade
    if reference.answers.get("grade_reasons") and failed:
        answers["grade_reasons"] = reference.answers["grade_reasons"]
    return answers


# ---- attempts through the services ------------------------------------------------------


References = dict[int, dict[int, Reference]]  # by exercise, then case


def _references(exercise: Exercise, known: References) -> dict[int, Reference]:
    """The exercise's reference reads by case, looked up once per seeding, not per read."""
    if exercise.id not in known:
        cases = db.session.scalars(select(Case).where(
            Case.id.in_([link.case_id for link in exercise.cases]))).all()
        known[exercise.id] = references_for(cases, exercise.scheme_key)
    return known[exercise.id]


def take(exercise: Exercise, user: User, peer: Peer, started: datetime,
         rng: random.Random, *, hasty: bool = False,
         references: References | None = None) -> Attempt | None:
    """One attempt at ``exercise`` started at ``started``, read case by case (30 s to two
    minutes each) and submitted; None when the exercise refuses a new attempt."""
    try:
        attempt = start_attempt(exercise, user, now=started)
    except AttemptError:
        return None
    reader = Peer(**{**peer.__dict__,
                     "sensitivity": peer.sensitivity * (0.75 if hasty else 1.0),
                     "specificity": peer.specificity * (0.8 if hasty else 1.0)})
    by_case = _references(exercise, {} if references is None else references)
    # The attempt shuffles its cases at random: draw each case's read in the library's
    # order, so that a peer reads (and passes or fails) alike on every install.
    reads: dict[int, tuple[float, dict[str, Any], list[dict[str, Any]]]] = {}
    for case_id in sorted(attempt.case_order):
        seconds = rng.uniform(20, 60) if hasty else rng.uniform(35, 120)
        reference = by_case[case_id]
        marks: list[dict[str, Any]] = []
        if exercise.scheme_key == "image_quality":
            answers = quality_read(reference, reader, rng)
        else:
            answers, marks = diagnostic_read(reference, reader, rng)
        reads[case_id] = (seconds, answers, marks)
    now = started
    for case_id in list(attempt.case_order):
        open_case(attempt, user, case_id, now=now)
        seconds, answers, marks = reads[case_id]
        now += timedelta(seconds=seconds)
        save_answer(attempt, user, case_id, answers, marks, now=now)
    return submit_attempt(attempt, user, now=now + timedelta(seconds=20))


def _backdate_certificates(user: User) -> None:
    """Certificates follow at once from the attempt that met the programme (issued "now"
    by the service); a peer's attempts are in the past, so is their certificate."""
    from app.certification.models import Certificate

    for certificate in db.session.scalars(select(Certificate).where(
            Certificate.user_id == user.id)):
        ended = [r.get("ended_at") for r in certificate.evidence.get("requirements", [])]
        latest = max((datetime.fromisoformat(e) for e in ended if e), default=None)
        if latest is None:
            continue
        validity = certificate.expires_at - certificate.issued_at
        certificate.issued_at = latest
        certificate.expires_at = latest + validity
    db.session.commit()


def work_through(user: User, peer: Peer, exercises: dict[str, Exercise | None],
                 now: datetime, references: References) -> None:
    from app.demo import DEMO_EXAM, DEMO_PRACTICE, DEMO_QUALITY_PRACTICE

    rng = random.Random(f"cxr-academy demo peer {peer.username}")  # noqa: S311 (demo data)
    start = now - timedelta(days=peer.days_ago, hours=rng.uniform(0, 6))
    if peer.role is Role.TRAINEE_RADIOGRAPHER:
        quality = exercises.get(DEMO_QUALITY_PRACTICE)
        if quality is not None:
            take(quality, user, peer, start, rng, references=references)
        return
    practice, exam = exercises.get(DEMO_PRACTICE), exercises.get(DEMO_EXAM)
    if practice is not None:
        take(practice, user, peer, start, rng, references=references)
    if exam is not None and peer.username != DEMO_TRAINEE.username:
        exam_start = start + timedelta(days=2)
        if peer.retake:
            take(exam, user, peer, exam_start, rng, hasty=True, references=references)
            exam_start += timedelta(days=3)
        take(exam, user, peer, exam_start, rng, references=references)
    _backdate_certificates(user)


@contextmanager
def _unsynced_sqlite() -> Iterator[None]:
    """SQLite waits for the disk at every commit, and the services commit at every step of
    every attempt (some 600 while seeding): demo data that a crash would lose is simply
    seeded again, so the seeding does not wait (``synchronous = OFF``) and every connection
    is handed back as it was."""
    engine = db.engine
    if engine.dialect.name != "sqlite":
        yield
        return

    def unsynced(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous = OFF")

    def synced(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous = FULL")

    event.listen(engine, "checkout", unsynced)
    event.listen(engine, "checkin", synced)
    try:
        yield
    finally:
        db.session.close()  # hands the connection in, synced again
        event.remove(engine, "checkout", unsynced)
        event.remove(engine, "checkin", synced)


def seed_demo_peers(now: datetime | None = None) -> int:
    """Create the demo peers that do not exist yet, each with their ended attempts; the
    demo radiologist gets her practice attempt with the first peers. Returns how many
    peers were created."""
    from app.demo import DEMO_EXAM, DEMO_PRACTICE, DEMO_QUALITY_PRACTICE

    now = now or utcnow()
    exercises = {title: db.session.scalar(select(Exercise).where(Exercise.title == title))
                 for title in (DEMO_PRACTICE, DEMO_EXAM, DEMO_QUALITY_PRACTICE)}
    if exercises[DEMO_PRACTICE] is None:
        return 0  # a trimmed library: nothing to have worked through
    missing = [p for p in PEERS
               if not db.session.scalar(select(User.id).where(User.username == p.username))]
    if not missing:
        return 0
    clinics = {c.name: c for c in db.session.scalars(select(Clinic))}
    created = 0
    references: References = {}
    with _unsynced_sqlite():
        for peer in missing:
            clinic = clinics.get(peer.clinic)
            if clinic is None:
                continue
            user = create_user(email=f"{peer.username}@demo.cxr-academy.org",
                               username=peer.username, full_name=peer.full_name,
                               roles=[peer.role], clinic=clinic)  # no password: no sign-in
            work_through(user, peer, exercises, now, references)
            created += 1
        trainee = db.session.scalar(select(User).where(User.username == DEMO_TRAINEE.username))
        if created and trainee is not None and not db.session.scalar(
                select(func.count(Attempt.id)).where(Attempt.user_id == trainee.id)):
            work_through(trainee, DEMO_TRAINEE, exercises, now, references)
    return created
