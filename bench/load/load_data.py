"""The exam the load scenario takes: a timed exam of published cases (each with an expert
reference read and a chest-radiograph-sized image), and the trainees who take it, all with
one password.

The trainees are written in bulk with one password hash computed once with the portal's own
parameters: hashing 1,000 passwords one by one would only measure argon2 before the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert

from app.auth.models import User, UserRole
from app.auth.passwords import hash_password
from app.auth.roles import Role
from app.auth.services import create_user
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import Case, CaseStatus
from app.cases.reads import save_read
from app.db_types import utcnow
from app.extensions import db
from app.quizzes.exercises import create_exercise
from app.schemes.registry import get_scheme
from tests.dicom_factory import cr_dataset, to_bytes

PASSWORD = "load-test-password-long-enough-1"
TRAINEE_PREFIX = "loadtrainee"
TB = {"overall": "abnormal", "findings": ["cavitary_lesion"]}
NORMAL = {"overall": "normal"}


@dataclass(frozen=True)
class LoadExam:
    exam_id: int
    cases: int
    trainees: int


def trainee_name(n: int) -> str:
    return f"{TRAINEE_PREFIX}{n}"


def _cases(count: int, expert: User, size: int) -> list[int]:
    """Published cases with a reference read, every other one TB-suggestive; each image
    ``size`` pixels square, so that its preview and full-resolution data weigh what a
    radiograph's do."""
    made = []
    for n in range(count):
        data = to_bytes(cr_dataset(seed=900 + n, rows=size, columns=size))
        [result] = import_files([Source(f"load{n}.dcm", lambda d=data: d)], actor=expert,
                                options=ImportOptions()).results
        if result.case_id is None:
            raise SystemExit(f"the load exam's case {n} was not imported: {result}")
        case = db.session.get_one(Case, result.case_id)
        save_read(case, author=expert, scheme=get_scheme("ds3030"),
                  answers=TB if n % 2 == 0 else NORMAL, marks=[])
        case.status = CaseStatus.PUBLISHED.value
        case.exam_bank = True
        made.append(case.id)
    db.session.commit()
    return made


def _trainees(count: int) -> None:
    password_hash = hash_password(PASSWORD)
    now = utcnow()
    users = [{"username": trainee_name(n), "email": f"{trainee_name(n)}@example.org",
              "full_name": f"Load Trainee {n}", "password_hash": password_hash,
              "active": True, "lead_all_countries": False, "created_at": now}
             for n in range(count)]
    for start in range(0, count, 1000):
        ids = db.session.scalars(
            insert(User).returning(User.id), users[start:start + 1000]).all()
        db.session.execute(insert(UserRole), [
            {"user_id": user_id, "role": Role.TRAINEE_RADIOLOGIST.value} for user_id in ids])
    db.session.commit()


def populate(trainees: int, cases: int, image_size: int) -> LoadExam:
    """The exam (60 minutes, cases in each trainee's own order) and ``trainees`` trainees."""
    expert = create_user(email="load-expert@example.org", username="loadexpert",
                         full_name="Load Expert", roles=[Role.TRAINER], password=PASSWORD)
    case_ids = _cases(cases, expert, image_size)
    exam = create_exercise(title="Load exam", kind="exam", scheme_key="ds3030",
                           case_ids=case_ids, actor=None, time_limit_minutes=60,
                           criteria=[("sensitivity", 0.5)])
    _trainees(trainees)
    return LoadExam(exam_id=exam.id, cases=cases, trainees=trainees)
