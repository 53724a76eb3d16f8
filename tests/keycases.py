"""Test cases whose answer keys are easy to spot: every case's teaching note, reference
read (a free-text item) and reference mark geometry carry text unique to that case, so a
test finds them in any response that leaks them."""

from __future__ import annotations

from dataclasses import dataclass

from app.auth.models import User
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import Case, CaseStatus
from app.cases.reads import save_read
from app.extensions import db
from app.schemes.registry import get_scheme
from tests.dicom_factory import cr_dataset, to_bytes

TB_READ = {"overall": "abnormal", "findings": ["cavitary_lesion"]}


@dataclass(frozen=True)
class KeyCase:
    id: int
    tb: bool
    secrets: tuple[str, ...]  # the key's traces: note, reference text, mark coordinates


def make_key_case(curator: User, seed: int, *, tb: bool, label: str,
                  exam_bank: bool = False) -> KeyCase:
    data = to_bytes(cr_dataset(seed=seed, rows=64, columns=48))
    [result] = import_files([Source(f"{label}-{seed}.dcm", lambda: data)], actor=curator,
                            options=ImportOptions()).results
    assert result.case_id, result.reason
    case = db.session.get(Case, result.case_id)
    reference_text = f"{label} reference text {seed}"
    answers = {**(TB_READ if tb else {"overall": "normal"}), "other_text": reference_text}
    # Within the 48 x 64 image, and different for nearby seeds (a key's traces must be its own).
    geometry = {"cx": 10 + seed % 31 + 0.271, "cy": 20 + seed % 37 + 0.643, "rx": 3.5,
                "ry": 4.5}
    marks = [{"image_id": case.images[0].id, "finding": "cavitary_lesion",
              "shape": "ellipse", "geometry": geometry}] if tb else []
    save_read(case, author=curator, scheme=get_scheme("ds3030"), answers=answers, marks=marks)
    note = f"{label} teaching note {seed}: what this image shows"
    case.teaching_notes = note
    case.status = CaseStatus.PUBLISHED.value
    case.exam_bank = exam_bank
    db.session.commit()
    secrets = (note, reference_text) + ((str(geometry["cx"]), str(geometry["cy"])) if tb else ())
    return KeyCase(case.id, tb, secrets)
