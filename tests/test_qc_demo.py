"""The demo ships synthetic QC records for its readers, so that every QC view has data: each
reader's concordance beside their exam scores, per clinic and per country, a funnel plot
with a clinic outside its limits, and one drifting reader whose CUSUM signals and who falls
outside the programme's ongoing criterion. The records went through the import (only
pseudonyms stored) and seeding again changes nothing."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.auth.lead_scope import countries_in_scope
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.auth.services import create_user
from app.certification.models import Programme
from app.demo import DEMO_PROGRAMME, seed_demo, seed_demo_library
from app.demo_peers import PEERS, seed_demo_peers
from app.extensions import db
from app.qc import measures
from app.qc.demo_records import (
    DRIFT_FINDING,
    DRIFT_MAJOR,
    DRIFT_READS,
    DRIFTING_READER,
    PROFILES,
    WORSE_CLINIC,
    QcProfile,
    reader_rows,
    seed_demo_qc,
    spread,
)
from app.qc.models import QcImportBatch, QcRecord
from app.qc.pseudonyms import install_secret, study_pseudonym
from app.qc.scope import has_ongoing_criterion, programme_readers, programme_reads, target_rate
from tests.conftest import sqlite_only

PSEUDONYM = re.compile(r"QC-[0-9A-F]{32}")
REFERENCE = re.compile(r"DEMO-\d+-\d+", re.IGNORECASE)  # a synthetic study reference


def _snapshot() -> dict[str, object]:
    """Every QC record as stored, the batches, the audit log's length, the clinics and the
    programme's QC settings."""
    records = [
        (r.study_pseudonym, r.reader_id, r.clinic_id, r.read_date.isoformat(),
         r.qc_date.isoformat() if r.qc_date else None, r.primary_read, r.qc_read, r.grade,
         r.qc_radiologist_id, r.batch_id)
        for r in db.session.scalars(select(QcRecord).order_by(QcRecord.id))]
    programme = db.session.scalars(select(Programme).where(
        Programme.title == DEMO_PROGRAMME)).one()
    return {
        "records": records,
        "batches": db.session.scalar(select(func.count(QcImportBatch.id))),
        "audit": db.session.scalar(select(func.count(AuditEvent.id))),
        "clinics": db.session.scalar(select(func.count(Clinic.id))),
        "settings": (programme.qc_target_rate, programme.qc_max_rate, programme.qc_last_n,
                     programme.qc_min_reads),
    }


def _last_n_rate(reads: list[measures.QcRead], programme: Programme) -> measures.Proportion:
    return measures.discrepancy_rate(measures.select_reads(reads, last=programme.qc_last_n))


# The whole demo (its case library above all) takes minutes to seed: once, on SQLite; the
# seeding's own writes are checked on both databases below.
@sqlite_only
def test_the_demo_ships_qc_records_for_every_qc_view_and_seeding_again_changes_nothing(app):
    seed_demo()
    seed_demo_library()
    seed_demo_peers()
    assert seed_demo_qc() > 0
    programme = db.session.scalars(select(Programme).where(
        Programme.title == DEMO_PROGRAMME)).one()
    users = {u.id: u for u in db.session.scalars(select(User))}
    clinics = {c.id: c for c in db.session.scalars(select(Clinic))}

    # The programme's target rate and ongoing criterion: <= 8 % over the last 50, >= 20.
    assert target_rate(programme) == 0.05
    assert has_ongoing_criterion(programme)
    assert (programme.qc_max_rate, programme.qc_last_n, programme.qc_min_reads) == (
        0.08, 50, 20)

    # Every reader of the programme has 40-120 QC reads over the last year.
    readers = set(db.session.scalars(programme_readers(programme, None)))
    reads = programme_reads(programme, None)
    by_reader = measures.group_reads(reads, "reader")
    assert readers and set(by_reader) == readers
    assert all(40 <= len(group) <= 120 for group in by_reader.values())
    assert (max(r.read_date for r in reads) - min(r.read_date for r in reads)).days <= 366

    # Summaries per reader, clinic and country have every figure.
    for by, at_least in (("reader", len(readers)), ("clinic", 5), ("country", 3)):
        summaries = measures.summaries_by(reads, by)
        assert len(summaries) >= at_least
        for summary in summaries.values():
            assert summary.n > 0 and summary.major.value is not None
            assert summary.agreement.kappa is not None
            assert summary.sensitivity.value is not None
            assert summary.specificity.value is not None

    # The funnel by clinic: at least five clinics, the worse one above its 95 % limit, in
    # the demo lead's countries too.
    lead = db.session.scalars(select(User).where(User.username == "demo-lead")).one()
    for countries in (None, countries_in_scope(lead)):
        _, points = measures.funnel(programme_reads(programme, countries), "clinic",
                                    target_rate(programme))
        assert len(points) >= 5
        outside = {clinics[p.key].name for p in points if p.outside95 == "above"}
        assert outside == {WORSE_CLINIC}

    # One flagged reader: the drifting one's CUSUM signals and they are outside the
    # criterion; every other reader is on target and inside it.
    flagged = set()
    for reader_id, group in by_reader.items():
        chart = measures.reader_cusum(group, target_rate(programme))
        rate = _last_n_rate(group, programme)
        assert rate.n >= programme.qc_min_reads
        outside = rate.value > programme.qc_max_rate
        assert chart.signalled == outside
        if outside:
            flagged.add(users[reader_id].username)
    assert flagged == {DRIFTING_READER}

    # Their misses are of one finding: a practice set on it makes sense.
    drifting = db.session.scalars(select(User).where(User.username == DRIFTING_READER)).one()
    last = db.session.scalars(select(QcRecord).where(QcRecord.reader_id == drifting.id)
                              .order_by(QcRecord.read_date.desc(), QcRecord.id.desc())
                              .limit(DRIFT_READS)).all()
    majors = [r for r in last if r.grade == "3b"]
    assert len(majors) == DRIFT_MAJOR
    missed = Counter(f for r in majors for f in r.qc_read.get("findings", [])
                     if f not in r.primary_read.get("findings", []))
    assert missed.most_common(1)[0] == (DRIFT_FINDING, DRIFT_MAJOR)

    # Nothing but pseudonyms: each made from its synthetic reference as a real one is, and
    # no reference in any record, batch or audit entry.
    stored = db.session.scalars(select(QcRecord)).all()
    assert all(PSEUDONYM.fullmatch(r.study_pseudonym) for r in stored)
    secret = install_secret()
    expected = {study_pseudonym(row["study_reference"], secret)
                for number, profile in enumerate(PROFILES, 1)
                for row in reader_rows(profile, number, max(r.qc_date for r in stored))}
    assert {r.study_pseudonym for r in stored} <= expected
    texts = [json.dumps([r.primary_read, r.qc_read, r.study_pseudonym]) for r in stored]
    texts += [json.dumps(e.detail) for e in db.session.scalars(select(AuditEvent))]
    texts += [b.file_sha256 or "" for b in db.session.scalars(select(QcImportBatch))]
    assert not [t for t in texts if REFERENCE.search(t)]

    # Seeding again changes nothing.
    before = _snapshot()
    assert seed_demo_qc() == 0
    db.session.expire_all()
    assert _snapshot() == before


def _light_demo(leave_out: str | None = None) -> None:
    """The demo's accounts and clinics, its radiologist peers (without their attempts) and
    its programme (without its exercises): what the QC seeding builds on."""
    seed_demo()
    clinics = {c.name: c for c in db.session.scalars(select(Clinic))}
    for peer in PEERS:
        if peer.role is Role.TRAINEE_RADIOLOGIST and peer.username != leave_out and not (
                db.session.scalar(select(User.id).where(User.username == peer.username))):
            create_user(email=f"{peer.username}@demo.cxr-academy.org", username=peer.username,
                        full_name=peer.full_name, roles=[peer.role], clinic=clinics[peer.clinic])
    if not db.session.scalar(select(Programme.id).where(Programme.title == DEMO_PROGRAMME)):
        db.session.add(Programme(title=DEMO_PROGRAMME,
                                 eligible_roles=[Role.TRAINEE_RADIOLOGIST.value]))
    db.session.commit()


def test_the_seeding_imports_checked_records_once_and_a_new_reader_gets_theirs(app):
    _light_demo(leave_out="peer-bd-rahman")
    created = seed_demo_qc()
    assert created == sum(p.reads for p in PROFILES if p.username != "peer-bd-rahman")
    batches = db.session.scalars(select(QcImportBatch)).all()
    assert [(b.source, b.created, b.imported_by_id) for b in batches] == [("api", created, None)]
    assert db.session.scalar(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == "qc.import")) == 1
    trainer = db.session.scalars(select(User).where(User.username == "demo-trainer")).one()
    stored = db.session.scalars(select(QcRecord)).all()
    assert {r.qc_radiologist_id for r in stored} == {trainer.id}
    assert all(PSEUDONYM.fullmatch(r.study_pseudonym) for r in stored)
    assert {r.clinic.country_code for r in stored} == {"KE", "PH", "BD"}
    programme = db.session.scalars(select(Programme).where(
        Programme.title == DEMO_PROGRAMME)).one()
    assert (target_rate(programme), has_ongoing_criterion(programme)) == (0.05, True)

    before = _snapshot()
    assert seed_demo_qc() == 0
    db.session.expire_all()
    assert _snapshot() == before

    # A demo reader added since (a peer seeded later) gets theirs; nobody else's change.
    _light_demo()
    rahman = next(p for p in PROFILES if p.username == "peer-bd-rahman")
    assert seed_demo_qc() == rahman.reads
    db.session.expire_all()
    after = _snapshot()
    assert after["records"][:len(before["records"])] == before["records"]
    assert after["settings"] == before["settings"] and after["clinics"] == before["clinics"]


def test_without_the_demo_trainer_or_readers_nothing_is_seeded(app):
    assert seed_demo_qc() == 0
    assert db.session.scalar(select(func.count(QcRecord.id))) == 0
    assert db.session.scalar(select(func.count(QcImportBatch.id))) == 0


def test_discrepancies_are_spread_one_in_each_stretch():
    rng = random.Random(1)
    positions = list(range(100, 160))
    chosen = spread(6, positions, rng)
    assert len(set(chosen)) == 6
    assert [(p - 100) // 10 for p in chosen] == list(range(6))
    assert spread(0, positions, rng) == [] and spread(3, [], rng) == []


def test_the_drifting_reader_misses_infiltrates_lately_and_rows_are_the_same_every_time():
    from datetime import date

    profile = next(p for p in PROFILES if p.username == DRIFTING_READER)
    rows = reader_rows(profile, 6, date(2026, 1, 31))
    assert rows == reader_rows(profile, 6, date(2026, 1, 31))
    assert len(rows) == profile.reads
    assert [r["read_date"] for r in rows] == sorted(r["read_date"] for r in rows)
    late = rows[-DRIFT_READS:]
    majors = [r for r in late if r["grade"] == "3b"]
    assert len(majors) == DRIFT_MAJOR
    assert all(DRIFT_FINDING in r["qc_findings"] and r["primary_classification"] == "normal"
               for r in majors)
    steady = rows[:-DRIFT_READS]
    assert sum(r["grade"] == "3b" for r in steady) <= 0.05 * len(steady)
    # Grades fit the sputum decisions (2b and 3b: they differ).
    for row in rows:
        differ = (row["primary_classification"] == "abnormal_tb") != (
            row["qc_classification"] == "abnormal_tb")
        assert differ == (row["grade"] in ("2b", "3b"))


def test_a_reader_at_the_worse_clinic_has_more_discrepancies_there():
    from datetime import date

    profile = QcProfile("someone", 100, 0.02, (("Home", 0.5), (WORSE_CLINIC, 0.5)))
    rows = reader_rows(profile, 99, date(2026, 1, 31))
    major = Counter(r["clinic"] for r in rows if r["grade"] == "3b")
    assert major[WORSE_CLINIC] >= 6 and major["Home"] <= 1
