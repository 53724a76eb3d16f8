"""Demo QC records: a year of live reads of the demo programme's readers re-read by the QC
centre, so that every QC view (concordance beside the exam scores, the funnel plot, the
CUSUM charts, the ongoing criterion and its flags) has something to show on a first run.

The records are made up by a seeded model and go through ``app.qc.importing.import_rows``
like any QC centre's batch: every row is checked against the ``tb_screening`` scheme, the
grades must fit the sputum decisions, and the synthetic study references ("DEMO-…") are
pseudonymised on entry as real ones are. The QC radiologist is the demo trainer.

What the demo shows:

* most readers at 2-4 % major discrepancies (grade 3b), a few minor ones (2a, 2b, 3a);
* readers work in their own clinic and some of them in a second one; one clinic
  (``WORSE_CLINIC``) is noticeably worse, whoever reads there, so it lies above the funnel
  plot's 95 % limit;
* one reader (``DRIFTING_READER``) drifts: 6 of their last 30 reads are major
  discrepancies, each a missed infiltrate or consolidation, so their CUSUM
  signals, they fall outside the programme's ongoing criterion and a practice set on
  infiltrates is what their error profile suggests.

Discrepancies are spread evenly over each reader's reads (one in each stretch of reads, at
a seeded place within it), so the counts above are exact on every install and the charts
of readers on target stay quiet. Seeding is idempotent: a reader who has QC records is left
as they are, and a programme's QC settings are only filled in where unset.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from app.auth.models import Clinic, User
from app.auth.services import create_clinic
from app.db_types import utcnow
from app.extensions import db
from app.qc.importing import import_rows
from app.qc.models import QcRecord

#: Clinics where the demo readers also work (beside the demo clinics of ``app.demo``).
QC_CLINICS = (
    ("Mombasa Port Health Clinic", "Mombasa", "KE"),
    ("Cebu Health Assessment Centre", "Cebu", "PH"),
    ("Sylhet Migration Health Clinic", "Sylhet", "BD"),
)
WORSE_CLINIC = "Cebu Health Assessment Centre"
WORSE_CLINIC_RATE = 0.14  # major discrepancies there, against 2-4 % elsewhere
DRIFTING_READER = "peer-ph-villanueva"
DRIFT_READS = 30  # the drifting reader's last reads ...
DRIFT_MAJOR = 6  # ... of which this many are major discrepancies (20 %)
DRIFT_FINDING = "infiltrate"  # what the drifting reader misses
QC_RADIOLOGIST = "demo-trainer"
SCHEME = "tb_screening"
DAYS = 365  # reads over the last year

#: The demo programme's QC settings: target rate 5 %, ongoing criterion "at most 8 % major
#: discrepancies over the last 50 QC reads, at least 20 of them".
TARGET_RATE = 0.05
MAX_RATE = 0.08
LAST_N = 50
MIN_READS = 20


@dataclass(frozen=True)
class QcProfile:
    username: str
    reads: int  # QC reads over the year
    major_rate: float  # share of major discrepancies at their clinics (the worse one aside)
    clinics: tuple[tuple[str, float], ...]  # (clinic, share of the reads); first: their own


NAIROBI, MOMBASA = "Nairobi Panel Clinic", "Mombasa Port Health Clinic"
MANILA, CEBU = "Manila Health Assessment Centre", "Cebu Health Assessment Centre"
DHAKA, SYLHET = "Dhaka Migration Health Clinic", "Sylhet Migration Health Clinic"

PROFILES: tuple[QcProfile, ...] = (
    QcProfile("demo-radiologist", 48, 0.03, ((NAIROBI, 1.0),)),
    QcProfile("peer-ke-wanjiru", 110, 0.02, ((NAIROBI, 0.7), (MOMBASA, 0.3))),
    QcProfile("peer-ke-kiprono", 95, 0.03, ((NAIROBI, 0.6), (MOMBASA, 0.4))),
    QcProfile("peer-ke-achieng", 70, 0.04, ((NAIROBI, 1.0),)),
    QcProfile("peer-ph-reyes", 100, 0.02, ((MANILA, 0.65), (CEBU, 0.35))),
    QcProfile(DRIFTING_READER, 75, 0.03, ((MANILA, 0.85), (CEBU, 0.15))),
    QcProfile("peer-bd-hossain", 120, 0.02, ((DHAKA, 0.8), (SYLHET, 0.2))),
    QcProfile("peer-bd-akter", 90, 0.03, ((DHAKA, 0.5), (CEBU, 0.25), (SYLHET, 0.25))),
    QcProfile("peer-bd-rahman", 60, 0.04, ((DHAKA, 0.6), (SYLHET, 0.4))),
)

# Findings of a TB-suggestive read, and of an abnormal read that does not suggest TB.
TB_FINDINGS = ("infiltrate", "cavitary_lesion", "nodule", "pleural_effusion",
               "hilar_adenopathy", "miliary", "fibrosis")
MISSED_FINDINGS = ("cavitary_lesion", "nodule", "pleural_effusion", "hilar_adenopathy",
                   "infiltrate", "miliary")
NOT_TB_FINDINGS = ("calcified_nodule", "other")
# Shares of the minor and same-decision grades among reads without a major discrepancy.
MINOR_SHARES = (("2a", 0.08), ("2b", 0.015), ("3a", 0.01))


# ---- made-up reads ----------------------------------------------------------------------


Read = dict[str, Any]


def _read(classification: str, findings: Sequence[str], likelihood: int) -> Read:
    return {"classification": classification, "findings": list(findings),
            "tb_likelihood": likelihood}


def _truth(rng: random.Random) -> Read:
    """The QC radiologist's read of a screened study (QC samples are enriched for abnormal
    films: a quarter suggest TB)."""
    draw = rng.random()
    if draw < 0.55:
        return _read("normal", [], 1)
    if draw < 0.75:
        return _read("abnormal_not_tb", [rng.choice(NOT_TB_FINDINGS)], rng.choice((1, 2)))
    findings = sorted(set(rng.sample(TB_FINDINGS, rng.choice((1, 1, 2)))),
                      key=TB_FINDINGS.index)
    return _read("abnormal_tb", findings, rng.choice((4, 5)))


def _reads(grade: str, rng: random.Random, missed: str | None = None) -> tuple[Read, Read]:
    """(primary, QC) reads that a QC radiologist grades ``grade``: the sputum decisions
    differ exactly for 2b and 3b. ``missed``: the finding a major miss is about."""
    if grade == "1":
        qc = _truth(rng)
        return dict(qc), qc
    if grade == "2a":  # same decision, a finding more or less
        qc = _truth(rng)
        if qc["classification"] == "abnormal_tb":
            extra = [f for f in TB_FINDINGS if f not in qc["findings"]]
            return _read("abnormal_tb", [*qc["findings"], rng.choice(extra)],
                         qc["tb_likelihood"]), qc
        if qc["classification"] == "abnormal_not_tb":
            return _read("normal", [], 1), qc  # a calcified nodule left out
        return _read("abnormal_not_tb", ["calcified_nodule"], 1), qc
    if grade == "2b":  # old fibrotic change called TB: sputum asked for needlessly
        return (_read("abnormal_tb", ["fibrosis"], 3),
                _read("abnormal_not_tb", ["other"], 2))
    if grade == "3a":  # a significant non-TB finding missed
        return _read("normal", [], 1), _read("abnormal_not_tb", ["other"], 1)
    # 3b: a TB-suggestive finding missed, or (one time in three) TB called on a normal film
    if missed is None and rng.random() < 1 / 3:
        return _read("abnormal_tb", ["infiltrate"], 4), _read("normal", [], 1)
    finding = missed or rng.choice(MISSED_FINDINGS)
    return _read("normal", [], rng.choice((1, 2))), _read("abnormal_tb", [finding],
                                                          rng.choice((4, 5)))


def spread(count: int, positions: Sequence[int], rng: random.Random) -> list[int]:
    """``count`` of ``positions``, one in each of ``count`` equal stretches of them (at a
    seeded place within it): discrepancies evenly spread, never bunched by chance."""
    if count <= 0 or not positions:
        return []
    count = min(count, len(positions))
    size = len(positions) / count
    return [positions[min(len(positions) - 1, int(i * size + rng.random() * size))]
            for i in range(count)]


def grades(profile: QcProfile, clinics: Sequence[str], rng: random.Random) -> list[str]:
    """The grade of each of the reader's reads, oldest first (``clinics``: where each was
    read)."""
    major: set[int] = set()
    if profile.username == DRIFTING_READER:
        steady = list(range(len(clinics) - DRIFT_READS))
        major |= set(spread(round(profile.major_rate * len(steady)), steady, rng))
        # The drift: DRIFT_MAJOR misses in the last DRIFT_READS reads, most of them lately.
        late = list(range(len(clinics) - DRIFT_READS + 6, len(clinics)))
        major |= set(spread(DRIFT_MAJOR, late, rng))
    else:
        for clinic in dict.fromkeys(clinics):
            here = [i for i, c in enumerate(clinics) if c == clinic]
            rate = WORSE_CLINIC_RATE if clinic == WORSE_CLINIC else profile.major_rate
            major |= set(spread(round(rate * len(here)), here, rng))
    result = []
    for i in range(len(clinics)):
        if i in major:
            result.append("3b")
            continue
        draw, grade = rng.random(), "1"
        for minor, share in MINOR_SHARES:
            if draw < share:
                grade = minor
                break
            draw -= share
        result.append(grade)
    return result


def _clinic_of_each_read(profile: QcProfile, rng: random.Random) -> list[str]:
    counts = [round(share * profile.reads) for _, share in profile.clinics]
    counts[0] += profile.reads - sum(counts)
    clinics = [name for (name, _), n in zip(profile.clinics, counts, strict=True)
               for _ in range(n)]
    rng.shuffle(clinics)
    return clinics


def _columns(prefix: str, read: Read) -> dict[str, Any]:
    return {f"{prefix}_{key}": value for key, value in read.items() if value not in ([], "")}


def reader_rows(profile: QcProfile, number: int, today: date) -> list[dict[str, Any]]:
    """The reader's QC records as import rows (template columns), oldest first."""
    rng = random.Random(f"cxr-academy demo qc {profile.username}")  # noqa: S311 (demo data)
    days = sorted(rng.sample(range(1, DAYS + 1), profile.reads), reverse=True)
    clinics = _clinic_of_each_read(profile, rng)
    rows = []
    for index, (days_ago, clinic, grade) in enumerate(
            zip(days, clinics, grades(profile, clinics, rng), strict=True)):
        drifting = profile.username == DRIFTING_READER and grade == "3b"
        primary, qc = _reads(grade, rng, missed=DRIFT_FINDING if drifting else None)
        read_date = today - timedelta(days=days_ago)
        rows.append({
            "study_reference": f"DEMO-{number:02d}-{index + 1:04d}",
            "reader": profile.username,
            "clinic": clinic,
            "read_date": read_date,
            "qc_date": min(today, read_date + timedelta(days=rng.randint(2, 14))),
            "qc_radiologist": QC_RADIOLOGIST,
            "grade": grade,
            "scheme": SCHEME,
            **_columns("primary", primary),
            **_columns("qc", qc),
        })
    return rows


# ---- seeding ----------------------------------------------------------------------------


def _ensure_clinics() -> None:
    for name, city, country in QC_CLINICS:
        if not db.session.scalar(select(Clinic.id).where(func.lower(Clinic.name)
                                                          == name.lower())):
            create_clinic(name, city, country)


def _programme_settings() -> None:
    """The demo programme's target rate and ongoing criterion, where it sets none."""
    from app.certification.models import Programme
    from app.demo import DEMO_PROGRAMME

    programme = db.session.scalar(select(Programme).where(Programme.title == DEMO_PROGRAMME))
    if programme is None:
        return
    changed = False
    if programme.qc_target_rate is None:
        programme.qc_target_rate, changed = TARGET_RATE, True
    if None in (programme.qc_max_rate, programme.qc_last_n, programme.qc_min_reads):
        programme.qc_max_rate, programme.qc_last_n, programme.qc_min_reads = (
            MAX_RATE, LAST_N, MIN_READS)
        changed = True
    if changed:
        db.session.commit()


def seed_demo_qc(today: date | None = None) -> int:
    """QC records of the demo readers who have none yet, in one import; returns how many
    records were created (0 when every demo reader has them, or the demo trainer or the
    readers are missing)."""
    _programme_settings()
    if not db.session.scalar(select(User.id).where(User.username == QC_RADIOLOGIST)):
        return 0
    present = dict(db.session.execute(select(User.username, User.id).where(
        User.username.in_([p.username for p in PROFILES]))).all())
    done = set(db.session.scalars(select(QcRecord.reader_id).where(
        QcRecord.reader_id.in_(list(present.values()))).distinct()))
    todo = [(number, p) for number, p in enumerate(PROFILES, 1)
            if p.username in present and present[p.username] not in done]
    if not todo:
        return 0
    _ensure_clinics()
    today = today or utcnow().date()
    rows = [row for number, profile in todo for row in reader_rows(profile, number, today)]
    report = import_rows(list(enumerate(rows, 1)), source="api", default_scheme=SCHEME)
    if report.refused:  # the demo's own data: a refusal is a bug, not a user's mistake
        raise RuntimeError("demo QC records refused: " + "; ".join(
            f"row {p.row} {p.field}: {p.english()}" for p in report.problems[:5]))
    return report.count("created")
