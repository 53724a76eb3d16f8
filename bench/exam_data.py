"""A synthetic exam for the scoring path: published cases with one image each, reference
reads from two experts (with lesion marks on the TB-suggestive cases), an exam over them,
and trainees' finished reads (answers, likelihood ratings and marks with confidences),
written through the portal's own services (save_read, create_exercise, start_attempt,
save_answer) so that the stored data is what production stores.

Used by bench/bench_scoring.py (200 cases) and tests/test_scoring_path.py (10 and 60 cases,
to show that ending and scoring an attempt takes a constant number of SQL statements).
No pixels are stored: scoring reads the image's size from its row, never its files.
Deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Sequence
from typing import Any

from app.auth.models import User
from app.cases.models import Case, CaseImage, CaseStatus, ImageView
from app.cases.reads import reference_for, save_read
from app.extensions import db
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Exercise
from app.quizzes.services import start_attempt
from app.schemes.parts import Scheme

SIZE = 2048  # image pixels, square
FINDINGS = ("infiltrate", "cavitary_lesion", "nodule", "pleural_effusion", "fibrosis")
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


def _image(tag: str, n: int) -> CaseImage:
    digest = hashlib.sha256(f"{tag}:{n}".encode()).hexdigest()
    return CaseImage(
        view=ImageView.PA.value, pixel_hash=digest, storage_key=uuid.uuid4().hex,
        modality="CR", transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN, rows=SIZE, columns=SIZE,
        bits_stored=12, study_uid=f"2.25.{int(digest[:24], 16)}",
        sop_uid=f"2.25.{int(digest[24:48], 16)}", display_params={}, deid_report={},
    )


def _ellipse(rng: random.Random, image_id: int, finding: str, cx: float, cy: float,
             jitter: float) -> dict[str, Any]:
    return {"image_id": image_id, "finding": finding, "shape": "ellipse",
            "geometry": {"cx": cx + rng.uniform(-jitter, jitter),
                         "cy": cy + rng.uniform(-jitter, jitter),
                         "rx": 60 + rng.uniform(-10, 10), "ry": 45 + rng.uniform(-10, 10)}}


def add_cases(count: int, *, scheme: Scheme, experts: Sequence[User], seed: int = 1,
              tag: str = "exam") -> list[int]:
    """``count`` published cases, about half TB-suggestive with 1-2 lesions marked by every
    expert (each outlining it a little differently); returns their ids."""
    rng = random.Random(seed)
    ids = []
    for n in range(count):
        case = Case(status=CaseStatus.PUBLISHED.value, source="synthetic",
                    licence="synthetic test data", images=[_image(tag, n)])
        db.session.add(case)
        db.session.flush()
        image_id = case.images[0].id
        tb = rng.random() < 0.5
        lesions = [(rng.choice(FINDINGS), rng.uniform(300, SIZE - 300),
                    rng.uniform(300, SIZE - 300)) for _ in range(rng.randint(1, 2) if tb else 0)]
        answers = {"classification": "abnormal_tb" if tb else "normal",
                   "tb_likelihood": rng.randint(4, 5) if tb else rng.randint(1, 2),
                   "findings": sorted({finding for finding, _, _ in lesions})}
        for expert in experts:
            marks = [_ellipse(rng, image_id, finding, x, y, jitter=8) for finding, x, y in lesions]
            save_read(case, author=expert, scheme=scheme, answers=answers, marks=marks)
        ids.append(case.id)
    return ids


def add_exam(case_ids: Sequence[int], *, scheme: Scheme, title: str = "Scoring exam",
             review: dict[str, str] | None = None) -> int:
    exam = create_exercise(title=title, kind="exam", scheme_key=scheme.key, case_ids=case_ids,
                           actor=None, shuffle=True, review=review,
                           criteria=[("sensitivity", 0.9), ("specificity", 0.8)])
    return exam.id


def finished_read(exercise_id: int, trainee: User, *, seed: int = 2) -> int:
    """An attempt with every case answered (mostly right, with misses, false alarms and
    marks near the lesions or elsewhere), not yet submitted; returns its id."""
    rng = random.Random(seed)
    attempt = start_attempt(db.session.get(Exercise, exercise_id), trainee)
    for case_id in list(attempt.case_order):
        case = db.session.get(Case, case_id)
        image_id = case.images[0].id
        reference = reference_for(case)
        tb = bool(reference.tb_positive) if rng.random() < 0.85 else not reference.tb_positive
        marks = []
        if tb:
            for lesion in reference.marks:
                geometry = lesion["geometry"]
                if rng.random() < 0.8:
                    marks.append(_ellipse(rng, image_id, lesion["finding"], geometry["cx"],
                                          geometry["cy"], jitter=30))
            if rng.random() < 0.3 or not marks:
                marks.append(_ellipse(rng, image_id, rng.choice(FINDINGS),
                                      rng.uniform(300, SIZE - 300), rng.uniform(300, SIZE - 300),
                                      jitter=0))
        for mark in marks:
            mark["confidence"] = rng.randint(10, 100)
        answers = {"classification": "abnormal_tb" if tb else "normal",
                   "tb_likelihood": rng.randint(3, 5) if tb else rng.randint(1, 3),
                   "findings": sorted({m["finding"] for m in marks})}
        save_answer(attempt, trainee, case_id, answers, marks)
    return attempt.id

