"""Which QC reads a programme's pages are about: the period filter's input checks, and the
programme's readers in the viewer's countries (the record's clinic decides the country)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask_babel import force_locale

from app.auth.lead_scope import countries_in_scope
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.certification.models import Programme
from app.extensions import db
from app.qc.importing import add_record
from app.qc.measures import QcRead
from app.qc.scope import (
    DEFAULT_TARGET_RATE,
    MAX_LAST,
    QcPeriod,
    QcRequestError,
    has_ongoing_criterion,
    programme_reads,
    target_rate,
)


def test_the_period_reads_dates_and_the_last_n() -> None:
    period = QcPeriod.from_args({"start": "2026-01-01", "end": "2026-06-30", "last": "50"})
    assert period == QcPeriod(date(2026, 1, 1), date(2026, 6, 30), 50)
    assert QcPeriod.from_args(period.as_args()) == period
    assert QcPeriod.from_args({"start": " ", "last": ""}) == QcPeriod()


@pytest.mark.parametrize("args", [
    {"start": "2026-13-01"}, {"end": "yesterday"}, {"start": "2026-02-01", "end": "2026-01-01"},
    {"last": "0"}, {"last": "-3"}, {"last": "2.5"}, {"last": str(MAX_LAST + 1)}, {"last": "ten"},
])
def test_a_period_that_cannot_be_read_is_refused_with_a_reason(args: dict[str, str]) -> None:
    with pytest.raises(QcRequestError) as refused:
        QcPeriod.from_args(args)
    assert refused.value.status == 400 and refused.value.sentence


def test_the_period_refusal_is_in_the_readers_language(app: Flask) -> None:
    with force_locale("fr"), pytest.raises(QcRequestError) as refused:
        QcPeriod.from_args({"start": "2026-02-01", "end": "2026-01-01"})
    assert refused.value.sentence != "The period starts after it ends."


def test_the_last_n_is_per_group() -> None:
    reads = [QcRead(reader=1, clinic=1, country="KE", read_date=date(2026, 1, d),
                    primary_tb=False, qc_tb=False, grade="1", order=d) for d in range(1, 11)]
    assert [r.order for r in QcPeriod(last=3).select(reads)] == [8, 9, 10]
    assert [r.order for r in QcPeriod(start=date(2026, 1, 5), last=20).select(reads)] == \
        list(range(5, 11))


def test_target_and_criterion_come_from_the_programme() -> None:
    programme = Programme(title="QC")
    assert target_rate(programme) == DEFAULT_TARGET_RATE
    assert not has_ongoing_criterion(programme)
    programme.qc_target_rate, programme.qc_max_rate = 0.03, 0.08
    programme.qc_last_n, programme.qc_min_reads = 50, 20
    assert target_rate(programme) == 0.03 and has_ongoing_criterion(programme)
    programme.qc_min_reads = None
    assert not has_ongoing_criterion(programme)


@pytest.fixture
def world(make_user: Callable[..., User], make_clinic: Callable[..., Clinic]) -> dict[str, Any]:
    kenya, peru = make_clinic("Mathare", country="KE"), make_clinic("Lima", country="PE")
    people = {
        "amina": make_user(Role.TRAINEE_RADIOLOGIST, username="amina", clinic=kenya),
        "rosa": make_user(Role.TRAINEE_RADIOLOGIST, username="rosa", clinic=peru),
        "ray": make_user(Role.TRAINEE_RADIOGRAPHER, username="ray", clinic=kenya),
        "qc": make_user(Role.TRAINER, username="dr.qc"),
        "lead_ke": make_user(Role.PROGRAMME_LEAD, username="lead.ke", countries=("KE",)),
        "admin": make_user(Role.ADMIN, username="root"),
    }
    for n, reader in enumerate(["amina", "rosa", "ray", "amina"]):
        add_record({"study_reference": f"ACC-{n}", "reader": reader,
                    "read_date": f"2026-03-0{n + 1}", "qc_radiologist": "dr.qc", "grade": "1",
                    "primary_classification": "normal", "qc_classification": "normal"})
    # Amina read one study while posted to Peru: it belongs to Peru's view.
    add_record({"study_reference": "ACC-9", "reader": "amina", "clinic": "Lima",
                "read_date": "2026-04-01", "qc_radiologist": "dr.qc", "grade": "1",
                "primary_classification": "normal", "qc_classification": "normal"})
    programme = Programme(title="Radiologists", eligible_roles=[Role.TRAINEE_RADIOLOGIST.value])
    db.session.add(programme)
    db.session.commit()
    return {"programme": programme, **people, "kenya": kenya, "peru": peru}


def test_programme_reads_keep_to_its_readers_and_viewers_countries(world: dict[str, Any]) -> None:
    programme = world["programme"]
    amina, rosa = world["amina"].id, world["rosa"].id
    everyone = programme_reads(programme, None)
    # Ray is a radiographer: not one of this programme's readers.
    assert sorted(r.reader for r in everyone) == sorted([amina, amina, amina, rosa])
    kenya = programme_reads(programme, ["KE"])
    assert {r.country for r in kenya} == {"KE"} and len(kenya) == 2
    peru = programme_reads(programme, ["PE"])
    assert sorted(r.reader for r in peru) == sorted([rosa, amina])
    assert programme_reads(programme, []) == []
    april = programme_reads(programme, None, QcPeriod(start=date(2026, 4, 1)))
    assert [r.reader for r in april] == [amina]
    assert [r.reader for r in programme_reads(programme, None, reader_ids=[rosa])] == [rosa]


def test_a_leads_countries(world: dict[str, Any]) -> None:
    lead = world["lead_ke"]
    assert countries_in_scope(lead) == ["KE"]
    lead.lead_all_countries = True
    assert countries_in_scope(lead) is None
    assert countries_in_scope(world["admin"]) is None
