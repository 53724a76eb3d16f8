"""A programme's QC world for the concordance pages' tests: readers in Kenya and Peru with
random QC records (a fixed seed), one reader who moved from Lima to Nairobi, one with no QC
read, and the latest exam of two readers."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
from freezegun import freeze_time

from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.certification.models import Programme
from app.extensions import db
from app.qc.models import QcImportBatch, QcRecord
from app.qc.pseudonyms import install_secret, study_pseudonym
from tests.test_certification import TB, _exercise, _take

START = date(2026, 1, 5)
NORMAL = {"overall": "normal"}


@dataclass
class QcWorld:
    programme: Programme
    clinics: dict[str, Clinic]
    readers: dict[str, User]
    qc: User
    records: list[QcRecord] = field(default_factory=list)

    def of(self, key: str) -> list[QcRecord]:
        return [r for r in self.records if r.reader_id == self.readers[key].id]


def add_record(world: QcWorld, reader: User, clinic: Clinic, read_date: date,
               primary_tb: bool | None, qc_tb: bool | None, grade: str,
               batch: QcImportBatch) -> QcRecord:
    n = len(world.records) + 1
    record = QcRecord(
        study_pseudonym=study_pseudonym(f"ACC-{reader.id}-{n}", install_secret()),
        reader_id=reader.id, clinic_id=clinic.id, read_date=read_date,
        qc_date=read_date + timedelta(days=7), scheme_key="ds3030", scheme_version=1,
        primary_read={}, qc_read={}, primary_tb=primary_tb, qc_tb=qc_tb, grade=grade,
        qc_radiologist_id=world.qc.id, batch_id=batch.id)
    db.session.add(record)
    world.records.append(record)
    return record


def random_records(world: QcWorld, reader: User, clinic: Clinic, count: int,
                   rng: random.Random, batch: QcImportBatch, start: date = START) -> None:
    """Reads on random days of ~half a year: the QC read is TB in ~30 %, the reader agrees
    ~85 % of the time (a few primary reads give no decision); a changed decision is 2b or
    3b, an unchanged one 1, 2a or 3a."""
    for _ in range(count):
        qc_tb = rng.random() < 0.3
        primary: bool | None = qc_tb if rng.random() < 0.85 else not qc_tb
        if rng.random() < 0.05:
            primary = None
        grade = (rng.choice(("2b", "3b", "3b")) if primary is not None and primary != qc_tb
                 else rng.choice(("1", "1", "1", "2a", "3a")))
        add_record(world, reader, clinic, start + timedelta(days=rng.randrange(180)),
                   primary, qc_tb, grade, batch)


def build_world(programme: Programme, make_user: Callable[..., Any],
                make_clinic: Callable[..., Any], seed: int = 17) -> QcWorld:
    rng = random.Random(seed)
    clinics = {"nairobi": make_clinic("Nairobi site", "Nairobi", "KE"),
               "mombasa": make_clinic("=Mombasa site", "Mombasa", "KE"),  # formula-like
               "lima": make_clinic("Lima site", "Lima", "PE")}
    readers = {
        "amina": make_user(Role.TRAINEE_RADIOLOGIST, clinic=clinics["nairobi"],
                           full_name="Amina Otieno"),
        "baraka": make_user(Role.TRAINEE_RADIOLOGIST, clinic=clinics["mombasa"],
                            full_name="Baraka Mwangi"),
        "carmen": make_user(Role.TRAINEE_RADIOLOGIST, clinic=clinics["lima"],
                            full_name="Carmen Quispe"),
        # Read in Lima first, now in Nairobi: Lima's records stay in Peru's view.
        "moved": make_user(Role.TRAINEE_RADIOLOGIST, clinic=clinics["nairobi"],
                           full_name="Diego Moved"),
        "idle": make_user(Role.TRAINEE_RADIOLOGIST, clinic=clinics["mombasa"],
                          full_name="Esther Idle"),
    }
    qc = make_user(Role.TRAINER, full_name="Dr QC Centre")
    world = QcWorld(programme, clinics, readers, qc)
    batch = QcImportBatch(source="manual")
    db.session.add(batch)
    db.session.flush()
    random_records(world, readers["amina"], clinics["nairobi"], 60, rng, batch)
    random_records(world, readers["baraka"], clinics["mombasa"], 25, rng, batch)
    random_records(world, readers["carmen"], clinics["lima"], 30, rng, batch)
    random_records(world, readers["moved"], clinics["lima"], 12, rng, batch)
    random_records(world, readers["moved"], clinics["nairobi"], 9, rng, batch,
                   start=START + timedelta(days=200))
    db.session.commit()
    with freeze_time("2026-02-01"):
        _take(_exercise(programme, "practice"), readers["amina"], TB)
        _take(_exercise(programme, "exam"), readers["amina"], TB)
        _take(_exercise(programme, "exam"), readers["carmen"], NORMAL)
    return world


@pytest.fixture
def world(programme, make_user, make_clinic) -> QcWorld:
    return build_world(programme, make_user, make_clinic)
