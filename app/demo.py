"""Demo data for a fresh install: clinics and one account per role.

Re-running never duplicates or resets anything: existing clinics and users are left as they
are. Generated passwords are kept in the instance folder (owner-only) so that later runs can
print them again. Trainer, programme-lead and administrator accounts need a second factor: the
demo enrols them at seeding and prints each TOTP key beside the password (and keeps it in the
same file), so adding the key to an authenticator app is all the demo needs.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
from flask import Flask, current_app
from sqlalchemy import func, select

from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.auth.second_factor import PRIVILEGED_ROLES, enrol_with_secret
from app.auth.services import create_clinic, create_user
from app.cases.demo_library import IMAGE_QUALITY_TAG
from app.cases.library_files import LoadResult, load_library
from app.cases.models import Case, CaseStatus
from app.cases.services import put_in_exam_bank
from app.config import DefaultConfig
from app.extensions import db
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Exercise, ExerciseKind
from app.quizzes.selection import CaseRule, SelectionError, select_cases
from app.quizzes.services import expire_overdue_attempts

PASSWORD_FILE = "demo-accounts.txt"  # noqa: S105  (a file name, not a password)

DEMO_CLINICS = [
    ("Nairobi Panel Clinic", "Nairobi", "KE"),
    ("Manila Health Assessment Centre", "Manila", "PH"),
    ("Dhaka Migration Health Clinic", "Dhaka", "BD"),
    ("Teleradiology QC Centre", "Bangkok", "TH"),
]

# user name, full name, role, clinic, programme-lead countries
DEMO_USERS: list[tuple[str, str, Role, str | None, list[str]]] = [
    ("demo-radiologist", "Dr Amina Otieno", Role.TRAINEE_RADIOLOGIST, "Nairobi Panel Clinic", []),
    (
        "demo-radiographer",
        "Jose Santos",
        Role.TRAINEE_RADIOGRAPHER,
        "Manila Health Assessment Centre",
        [],
    ),
    ("demo-trainer", "Dr Somchai Wongsa", Role.TRAINER, "Teleradiology QC Centre", []),
    ("demo-lead", "Dr Farhana Rahman", Role.PROGRAMME_LEAD, None, ["KE", "PH", "BD"]),
    ("demo-admin", "Portal Administrator", Role.ADMIN, None, []),
]


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: Role
    password: str | None  # None when set before and no longer known to this install
    created: bool
    totp_secret: str | None = None  # privileged accounts: the authenticator key


def _password_file() -> Path:
    return Path(current_app.instance_path) / PASSWORD_FILE


def _known_lines() -> dict[str, list[str]]:
    """User name → [password, TOTP secret (privileged accounts)] as remembered."""
    path = _password_file()
    if not path.exists():
        return {}
    known = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith("#"):
            known[parts[0]] = parts[1:3]
    return known


def _remember(passwords: dict[str, str], secrets_by_name: dict[str, str]) -> None:
    path = _password_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# CXR Academy demo accounts: user name, password, authenticator (TOTP) key of "
        "accounts that need a second factor (local demo only)"
    ]
    lines += [
        f"{name} {pw} {secrets_by_name.get(name, '')}".rstrip()
        for name, pw in sorted(passwords.items())
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def demo_public_url(configured: str, port: int) -> str:
    """The address the demo's links carry (certificate QR codes, e-mails): the server it
    starts on 127.0.0.1:port, named ``localhost`` (browsers accept security keys for
    localhost, never for an IP address), unless a public address was configured."""
    if configured == DefaultConfig.PUBLIC_BASE_URL:
        return f"http://localhost:{port}"
    return configured


def demo_library_path() -> Path:
    configured = current_app.config.get("DEMO_LIBRARY_PATH")
    return Path(configured) if configured else Path(current_app.root_path).parent / "case_library"


DEMO_PRACTICE = "Demo practice: DS-3030 chest X-ray reads"
DEMO_EXAM = "Demo exam: TB screening reader (30 minutes)"
DEMO_QUALITY_PRACTICE = "Demo practice: PA chest image quality (radiographers)"
QUALITY_PRACTICE_SIZE = 8


def seed_demo_library() -> list[LoadResult]:
    """The curated demo cases, published (already loaded ones are left as they are), a
    practice set of ten of them (the follow-up case with its prior among them) and a
    30-minute exam of twelve others, kept in the exam bank: the exam's cases are never in
    the practice set (whose feedback shows the key). The technique-fault cases are for the
    radiographers' image-quality practice set, not the diagnostic exercises."""
    results = load_library(demo_library_path(), publish=True)
    loaded = [case for r in results if r.case_id
              if (case := db.session.get_one(Case, r.case_id)).status == CaseStatus.PUBLISHED.value]
    with_prior = [c for c in loaded if any(image.is_prior for image in c.images)]
    diagnostic = [c for c in loaded
                  if IMAGE_QUALITY_TAG not in c.tags and c not in with_prior]
    exercises: tuple[tuple[str, ExerciseKind, int, int, dict[str, Any]], ...] = (
        (DEMO_PRACTICE, ExerciseKind.PRACTICE, 10, 1, {}),
        (DEMO_EXAM, ExerciseKind.EXAM, 12, 2, {
            "time_limit_minutes": 30, "max_attempts": 3, "cooldown_hours": 1,
            "criteria": [("sensitivity", 0.8), ("specificity", 0.8)]}),
    )
    for title, kind, total, seed, extra in exercises:
        if db.session.scalar(select(Exercise.id).where(Exercise.title == title)) is not None:
            continue
        forced = with_prior[:1] if kind is ExerciseKind.PRACTICE else []
        tb_wanted = total // 2 - sum(1 for c in forced if c.reference_tb_positive)
        try:  # half TB-suggestive, so that sensitivity and specificity both mean something
            case_ids = select_cases(
                CaseRule(total=total - len(forced), tb_share=tb_wanted / (total - len(forced)),
                         seed=seed, kind=kind),
                candidates=diagnostic)
        except SelectionError:
            continue  # a trimmed library: no demo exercise rather than a lopsided one
        # Diagnostic reads are the radiologists' job; radiographers have their own set.
        exercise = create_exercise(title=title, kind=kind.value, scheme_key="ds3030",
                                   case_ids=case_ids + [c.id for c in forced], actor=None,
                                   audience={"roles": [Role.TRAINEE_RADIOLOGIST.value]},
                                   **extra)
        if kind is ExerciseKind.EXAM:
            put_in_exam_bank([link.case for link in exercise.cases], actor=None)
    seed_quality_practice(loaded)
    seed_demo_programme()
    return results


def seed_quality_practice(loaded: list[Case]) -> None:
    """The radiographers' practice set in the image-quality scheme: the technique-fault
    cases among well-taken films, none of them an exam case."""
    if db.session.scalar(select(Exercise.id).where(Exercise.title == DEMO_QUALITY_PRACTICE)):
        return
    rated = [c for c in loaded if not c.exam_bank
             and any(r.scheme_key == "image_quality" for r in c.current_reads)]
    faults = [c for c in rated if IMAGE_QUALITY_TAG in c.tags]
    good = [c for c in rated if IMAGE_QUALITY_TAG not in c.tags]
    chosen = faults + good[: max(0, QUALITY_PRACTICE_SIZE - len(faults))]
    if not faults or len(chosen) < QUALITY_PRACTICE_SIZE:
        return  # a trimmed library
    create_exercise(title=DEMO_QUALITY_PRACTICE, kind=ExerciseKind.PRACTICE.value,
                    scheme_key="image_quality", case_ids=[c.id for c in chosen], actor=None,
                    audience={"roles": [Role.TRAINEE_RADIOGRAPHER.value]})


DEMO_PROGRAMME = "TB CXR reader — radiologist (demo)"


def seed_demo_programme() -> None:
    """A certification programme over the demo practice set and exam: complete the one,
    pass the other; renewed by passing the exam again in the last 90 days."""
    from app.certification.models import Programme
    from app.certification.services import create_programme

    if db.session.scalar(select(Programme.id).where(Programme.title == DEMO_PROGRAMME)):
        return
    found = {title: db.session.scalar(select(Exercise.id).where(Exercise.title == title))
             for title in (DEMO_PRACTICE, DEMO_EXAM)}
    ids = {title: exercise_id for title, exercise_id in found.items() if exercise_id is not None}
    if len(ids) < len(found):
        return  # a trimmed library without the demo exercises
    create_programme(
        title=DEMO_PROGRAMME,
        description="Demonstration programme: the demo practice set and exam.",
        requirements=[(ids[DEMO_PRACTICE], "practice"), (ids[DEMO_EXAM], "exam"),
                      (ids[DEMO_EXAM], "renewal")],
        eligible_roles=[Role.TRAINEE_RADIOLOGIST.value],
        validity_days=730,
        renewal_window_days=90,
        cme_hours=4,
    )


def seed_demo() -> list[DemoAccount]:
    clinics: dict[str, Clinic] = {}
    for name, city, country in DEMO_CLINICS:
        clinic = db.session.scalar(select(Clinic).where(func.lower(Clinic.name) == name.lower()))
        clinics[name] = clinic or create_clinic(name, city, country)

    lines = _known_lines()
    known = {name: parts[0] for name, parts in lines.items()}
    totp = {name: parts[1] for name, parts in lines.items() if len(parts) > 1}
    accounts = []
    for username, full_name, role, clinic_name, countries in DEMO_USERS:
        existing = db.session.scalar(select(User).where(User.username == username))
        if existing is not None:
            accounts.append(DemoAccount(username, role, known.get(username), created=False,
                                        totp_secret=totp.get(username)))
            continue
        password = secrets.token_urlsafe(12)
        user = create_user(
            email=f"{username}@demo.cxr-academy.org",
            username=username,
            full_name=full_name,
            roles=[role],
            clinic=clinics[clinic_name] if clinic_name else None,
            password=password,
            lead_countries=countries,
        )
        known[username] = password
        if role in PRIVILEGED_ROLES:
            totp[username] = pyotp.random_base32()
            enrol_with_secret(user, totp[username])
        accounts.append(DemoAccount(username, role, password, created=True,
                                    totp_secret=totp.get(username)))
    _remember(known, totp)
    return accounts


# ---- serving -------------------------------------------------------------------------------

EXPIRY_INTERVAL_SECONDS = 30.0


class ExpiryWorker:
    """The demo server's stand-in for cron: every ``interval`` seconds, in a background
    thread, attempts past their deadline are timed out, scored and certified, also for
    trainees who never come back (production runs ``quizzes expire`` from cron). Started
    and stopped with the server."""

    def __init__(self, app: Flask, interval: float = EXPIRY_INTERVAL_SECONDS) -> None:
        self.app = app
        self.interval = interval
        self.passes = 0  # completed passes, for whoever waits on ``ran``
        self.ran = threading.Event()  # set after each pass
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="attempt-expiry", daemon=True)

    def run_once(self) -> int:
        with self.app.app_context():
            try:
                return expire_overdue_attempts()
            finally:
                db.session.remove()

    def _loop(self) -> None:
        while True:  # a first pass at once: attempts that ran out while the demo was off
            try:
                ended = self.run_once()
                if ended:
                    self.app.logger.info("%d attempts timed out", ended)
            except Exception:  # the next pass tries again; the server keeps serving
                self.app.logger.exception("timing out overdue attempts failed")
            self.passes += 1
            self.ran.set()
            if self._stop.wait(self.interval):
                return

    def start(self) -> ExpiryWorker:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
