"""The programme's QC figures: the funnel plot's limits against ``control.funnel_limits``
and an independent binomial computation, the CUSUM series against ``bernoulli_cusum``, the
PNG routes, and a lead's countries (a lead never sees another country's reads)."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from flask_babel import force_locale
from PIL import Image
from scipy.stats import binom

from app.auth.lead_scope import countries_in_scope
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.certification.models import Programme
from app.extensions import db
from app.qc.control import bernoulli_cusum, design_cusum, funnel_limits
from app.qc.figure_data import programme_funnel, reader_cusum, reader_in_view
from app.qc.figures import (
    CUSUM_INCHES,
    DPI,
    FUNNEL_INCHES,
    cusum_png,
    cusum_series,
    funnel_png,
    funnel_series,
    limit_curves,
)
from app.qc.measures import QC_GRADES, QcRead, funnel
from app.qc.measures import reader_cusum as measures_reader_cusum
from app.qc.models import QcImportBatch, QcRecord
from app.qc.scope import QcPeriod

START = date(2026, 1, 5)


def random_reads(rng: random.Random, units: int = 30, rate: float = 0.06) -> list[QcRead]:
    reads = []
    order = 0
    for unit in range(units):
        bad = rng.random() < 0.15  # a few units well off target
        for k in range(rng.randint(1, 80)):
            order += 1
            major = rng.random() < (rate * 4 if bad else rate)
            grade = "3b" if major else rng.choice([g for g in QC_GRADES if g != "3b"])
            reads.append(QcRead(reader=1000 + unit, clinic=unit % 7, country="KE",
                                read_date=START + timedelta(days=k), primary_tb=True,
                                qc_tb=not major, grade=grade, order=order))
    rng.shuffle(reads)
    return reads


def published_limit(target: float, n: int, p: float) -> float:
    """Spiegelhalter (2005), appendix A.1.1, from binomial sums: r_p the smallest r with
    F(r) >= p, alpha = (F(r_p) - p) / (F(r_p) - F(r_p - 1)), limit (r_p - alpha) / n."""
    cdf = [float(binom.cdf(r, n, target)) for r in range(n + 1)]
    r = next(r for r in range(n + 1) if cdf[r] >= p - 1e-15)
    below = cdf[r - 1] if r else 0.0
    alpha = (cdf[r] - p) / (cdf[r] - below) if cdf[r] > below else 0.0
    return min(1.0, max(0.0, (r - alpha) / n))


# ---- the series (pure) --------------------------------------------------------------------


@pytest.mark.parametrize("target", [0.02, 0.05, 0.137, 0.3])
def test_limit_curves_are_control_funnel_limits_at_every_n(target: float) -> None:
    ns = [*range(1, 251), 487, 1000, 2500]
    curves = limit_curves(target, ns)
    assert curves.ns == tuple(ns)
    for i, n in enumerate(ns):
        expected = funnel_limits(target, n)
        assert (curves.lower95[i], curves.upper95[i], curves.lower998[i], curves.upper998[i]) \
            == pytest.approx((expected.lower95, expected.upper95, expected.lower998,
                              expected.upper998), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_limit_curves_follow_the_published_formula(seed: int) -> None:
    rng = random.Random(seed)
    target = rng.uniform(0.01, 0.25)
    ns = sorted(rng.sample(range(1, 400), 25))
    curves = limit_curves(target, ns)
    for i, n in enumerate(ns):
        assert curves.lower95[i] == pytest.approx(published_limit(target, n, 0.025), abs=1e-9)
        assert curves.upper95[i] == pytest.approx(published_limit(target, n, 0.975), abs=1e-9)
        assert curves.lower998[i] == pytest.approx(published_limit(target, n, 0.001), abs=1e-9)
        assert curves.upper998[i] == pytest.approx(published_limit(target, n, 0.999), abs=1e-9)
    assert all(lo <= target <= hi for lo, hi in zip(curves.lower998, curves.upper998,
                                                       strict=True))


@pytest.mark.parametrize(("by", "seed"), [("clinic", 1), ("reader", 2), ("reader", 3)])
def test_funnel_series_points_are_the_measures_funnel(by: str, seed: int) -> None:
    reads = random_reads(random.Random(seed))
    series = funnel_series(reads, by, 0.05, {}, "title")
    _, expected = funnel(reads, by, 0.05)
    got = {p.key: p for p in series.points}
    assert set(got) == {p.key for p in expected}
    for point in expected:
        mine = got[point.key]
        assert (mine.n, mine.events, mine.rate) == (point.n, point.events, point.rate)
        assert (mine.outside95, mine.outside998) == (point.outside95, point.outside998)
    # The curves run from 1 read to the largest unit's, so every point has its limits.
    assert series.curves.ns == tuple(range(1, max(p.n for p in expected) + 1))
    assert series.outliers == tuple(p for p in series.points if p.outside998)
    assert series.outliers  # the seeds plant units off target
    assert series.empty_text is None


def test_the_limit_curves_of_a_large_unit_keep_every_small_n() -> None:
    reads = [QcRead(reader=1, clinic=1, country="KE", read_date=START, primary_tb=True,
                    qc_tb=True, grade="3b" if i % 12 == 0 else "1", order=i)
             for i in range(4321)]
    reads += [QcRead(reader=2, clinic=2, country="KE", read_date=START, primary_tb=True,
                     qc_tb=True, grade="3b", order=5000 + i) for i in range(3)]
    series = funnel_series(reads, "clinic", 0.05, {}, "t")
    ns = series.curves.ns
    assert ns[:1000] == tuple(range(1, 1001)) and ns[-1] == 4321 and len(ns) < 2001
    assert list(ns) == sorted(set(ns))
    at = dict(zip(ns, series.curves.upper998, strict=True))
    assert at[4321] == pytest.approx(funnel_limits(0.05, 4321).upper998, abs=1e-12)
    _, expected = funnel(reads, "clinic", 0.05)
    assert {p.key: p.outside998 for p in series.points} == {
        p.key: p.outside998 for p in expected} == {1: "above", 2: "above"}


def test_funnel_series_counts_each_units_last_reads_and_names_them() -> None:
    day = START
    reads = [QcRead(reader=1, clinic=9, country="KE", read_date=day + timedelta(days=i),
                    primary_tb=True, qc_tb=True, grade="3b" if i < 5 else "1", order=i)
             for i in range(20)]
    everything = funnel_series(reads, "reader", 0.05, {1: "Amina Njeri"}, "t")
    recent = funnel_series(reads, "reader", 0.05, {1: "Amina Njeri"}, "t", last=10)
    assert [(p.label, p.n, p.events) for p in everything.points] == [("Amina Njeri", 20, 5)]
    assert [(p.n, p.events) for p in recent.points] == [(10, 0)]  # the 3b reads came first
    assert everything.points[0].outside998 == "above"
    with pytest.raises(ValueError):
        funnel_series(reads, "country", 0.05, {}, "t")


def test_an_empty_funnel_says_so() -> None:
    series = funnel_series([], "clinic", 0.05, {}, "t")
    assert series.points == () and series.curves.ns == ()
    assert series.empty_text == "No QC reads in this period"
    image = Image.open(io.BytesIO(funnel_png(series)))
    assert image.format == "PNG"


@pytest.mark.parametrize("seed", range(3))
def test_cusum_series_is_the_readers_bernoulli_cusum(seed: int) -> None:
    rng = random.Random(seed)
    target = rng.choice([0.03, 0.05, 0.1])
    reads = [r for r in random_reads(rng, units=40, rate=target) if r.reader == 1000 + seed]
    reads += [QcRead(1000 + seed, 0, "KE", START + timedelta(days=200 + i), True, False, "3b",
                     10_000 + i) for i in range(8)]  # a run of discrepancies: a signal
    series = cusum_series(reads, target, "t")
    ordered = sorted(reads, key=lambda r: (r.read_date, r.order))
    chart = bernoulli_cusum([r.grade == "3b" for r in ordered], design_cusum(target))
    assert series.values == chart.values and series.signals == chart.signals
    assert series.values == measures_reader_cusum(reads, target).values
    assert series.h == chart.design.h and series.signals
    assert "2" in series.caption and "1,0" in series.caption  # odds ratio, ARL0 ~1,000
    assert series.empty_text is None


def test_figure_words_in_french(app) -> None:  # type: ignore[no-untyped-def]
    reads = random_reads(random.Random(4), units=5)
    with app.test_request_context(), force_locale("fr"):
        funnel_words = funnel_series(reads, "clinic", 0.05, {}, "t")
        cusum_words = cusum_series(reads[:30], 0.05, "t")
        empty = cusum_series([], 0.05, "t")
    assert funnel_words.x_label == "nombre de relectures CQ"
    assert funnel_words.y_label == "taux de discordances majeures (%)"
    assert funnel_words.limit998_label == "limites de contrôle à 99,8\xa0%"
    assert funnel_words.target_label == "cible 5\xa0%"
    assert cusum_words.x_label == "relectures CQ, de la plus ancienne à la plus récente"
    assert cusum_words.h_label == "intervalle de décision h = 2,64"
    assert "Taux cible 5\xa0%" in cusum_words.caption
    assert empty.empty_text == "Aucune relecture CQ sur cette période"


# ---- the routes, on both databases --------------------------------------------------------


@pytest.fixture
def qc(make_user: Callable[..., User], make_clinic: Callable[..., Clinic]) -> dict[str, Any]:
    """A programme with readers in Kenya and the Philippines and their QC records; Otieno
    read in Kenya and has since moved to Manila."""
    programme = Programme(title="TB readers", eligible_roles=["trainee_radiologist"],
                          qc_target_rate=0.05)
    db.session.add(programme)
    kenya = make_clinic("Mathare Clinic", country="KE")
    kisumu = make_clinic("Kisumu Clinic", city="Kisumu", country="KE")
    manila = make_clinic("Quezon Clinic", city="Manila", country="PH")
    people = {
        "programme": programme, "kenya": kenya, "kisumu": kisumu, "manila": manila,
        "amina": make_user(username="amina", full_name="Amina Njeri", clinic=kenya),
        "wanjiru": make_user(username="wanjiru", full_name="Wanjiru Kamau", clinic=kisumu),
        "jose": make_user(username="jose", full_name="José Reyes", clinic=manila),
        "otieno": make_user(username="otieno", full_name="Otieno Odhiambo", clinic=manila),
        "quiet": make_user(username="quiet", full_name="No Reads", clinic=kenya),
        "qc": make_user(Role.TRAINER, username="dr.qc"),
    }
    batch = QcImportBatch(source="manual")
    db.session.add(batch)
    db.session.flush()
    plan = [("amina", kenya, 40, {3, 11, 25}), ("wanjiru", kisumu, 12, set(range(8))),
            ("jose", manila, 30, {1, 2}), ("otieno", kenya, 10, {4}),
            ("otieno", manila, 6, {0, 1, 2, 3, 4, 5})]
    for name, clinic, count, majors in plan:
        for i in range(count):
            db.session.add(QcRecord(
                study_pseudonym=f"QC-{name}-{clinic.id}-{i:04d}", reader_id=people[name].id,
                clinic_id=clinic.id, read_date=START + timedelta(days=2 * i),
                scheme_key="cxr-tb", scheme_version=1, primary_read={}, qc_read={},
                primary_tb=True, qc_tb=i not in majors, grade="3b" if i in majors else "1",
                qc_radiologist_id=people["qc"].id, batch_id=batch.id))
    db.session.commit()
    return people


def url(qc: dict[str, Any], path: str = "funnel.png") -> str:
    return f"/qc/programmes/{qc['programme'].id}/{path}"


def test_funnel_and_cusum_are_pngs_for_a_lead(client, qc, login_as) -> None:  # type: ignore[no-untyped-def]
    login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    responses = [client.get(url(qc)), client.get(url(qc) + "?by=reader&last=20"),
                 client.get(url(qc, f"readers/{qc['amina'].id}/cusum.png?start=2026-01-01"))]
    sizes = [FUNNEL_INCHES, FUNNEL_INCHES, CUSUM_INCHES]
    for response, (width, height) in zip(responses, sizes, strict=True):
        assert response.status_code == 200 and response.mimetype == "image/png"
        assert response.headers["Cache-Control"].startswith("private")
        image = Image.open(io.BytesIO(response.data))
        assert image.format == "PNG" and image.size == (width * DPI, height * DPI)


def test_a_leads_funnel_holds_only_their_countries(app, qc, make_user) -> None:  # type: ignore[no-untyped-def]
    kenya_lead = make_user(Role.PROGRAMME_LEAD, countries=("KE",))
    admin = make_user(Role.ADMIN)
    programme = qc["programme"]
    with app.test_request_context():
        clinics = programme_funnel(programme, countries_in_scope(kenya_lead), QcPeriod(),
                                   "clinic")
        readers = programme_funnel(programme, countries_in_scope(kenya_lead), QcPeriod(),
                                   "reader")
        everyone = programme_funnel(programme, countries_in_scope(admin), QcPeriod(), "clinic")
    assert [(p.label, p.n) for p in clinics.points] == [
        ("KE · Kisumu Clinic", 12), ("KE · Mathare Clinic", 50)]
    # Otieno's Kenyan reads only; José (Manila) not at all.
    assert [(p.label, p.n) for p in readers.points] == [
        ("Amina Njeri", 40), ("Otieno Odhiambo", 10), ("Wanjiru Kamau", 12)]
    assert [p.label for p in readers.outliers] == ["Wanjiru Kamau"]  # 8 of 12 at 5 %
    assert "Kisumu" in clinics.outliers[0].label
    assert [p.label for p in everyone.points] == [
        "KE · Kisumu Clinic", "KE · Mathare Clinic", "PH · Quezon Clinic"]
    assert "TB readers" in clinics.title


def test_a_lead_cannot_see_another_countrys_reader(client, qc, login_as) -> None:  # type: ignore[no-untyped-def]
    login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    assert client.get(url(qc, f"readers/{qc['jose'].id}/cusum.png")).status_code == 404
    assert client.get(url(qc, "readers/999999/cusum.png")).status_code == 404
    not_a_reader = qc["qc"]  # a trainer: no eligible role
    assert client.get(url(qc, f"readers/{not_a_reader.id}/cusum.png")).status_code == 404
    assert client.get("/qc/programmes/999999/funnel.png").status_code == 404
    assert client.get(f"/qc/programmes/999999/readers/{qc['amina'].id}/cusum.png"
                      ).status_code == 404
    # A reader who moved stays visible for the reads of this lead's country.
    assert client.get(url(qc, f"readers/{qc['otieno'].id}/cusum.png")).status_code == 200


def test_the_cusum_of_a_lead_counts_their_countrys_reads(app, qc, make_user) -> None:  # type: ignore[no-untyped-def]
    programme, otieno = qc["programme"], qc["otieno"]
    kenya_lead = make_user(Role.PROGRAMME_LEAD, countries=("KE",))
    manila_lead = make_user(Role.PROGRAMME_LEAD, countries=("PH",))
    with app.test_request_context():
        kenyan = reader_cusum(programme, countries_in_scope(kenya_lead), QcPeriod(), otieno)
        filipino = reader_cusum(programme, countries_in_scope(manila_lead), QcPeriod(), otieno)
        recent = reader_cusum(programme, None, QcPeriod(last=5), otieno)
        assert reader_in_view(programme, ["PH"], qc["amina"].id) is None
        assert reader_in_view(programme, ["KE"], otieno.id) == otieno
    design = design_cusum(0.05)
    assert kenyan.values == bernoulli_cusum([i == 4 for i in range(10)], design).values
    assert filipino.values == bernoulli_cusum([True] * 6, design).values
    assert filipino.signals  # six major discrepancies in a row
    assert len(recent.values) == 5


def test_no_reads_is_a_figure_not_an_error(app, client, qc, login_as) -> None:  # type: ignore[no-untyped-def]
    login_as(Role.ADMIN)
    quiet = client.get(url(qc, f"readers/{qc['quiet'].id}/cusum.png"))
    later = client.get(url(qc) + "?start=2030-01-01")
    assert quiet.status_code == later.status_code == 200
    assert Image.open(io.BytesIO(later.data)).format == "PNG"
    with app.test_request_context():
        series = programme_funnel(qc["programme"], None, QcPeriod(start=date(2030, 1, 1)),
                                  "clinic")
    assert series.points == () and series.empty_text == "No QC reads in this period"


@pytest.mark.parametrize(("query", "reason"), [
    ("by=country", "per clinic or per reader"),
    ("start=2026-13-01", "is not a date"),
    ("start=2026-03-01&end=2026-02-01", "starts after it ends"),
    ("last=0", "whole number from 1"),
    ("last=many", "whole number from 1"),
])
def test_bad_figure_arguments_are_refused_with_a_reason(client, qc, login_as,  # type: ignore[no-untyped-def]
                                                        query, reason) -> None:
    login_as(Role.PROGRAMME_LEAD, lead_all_countries=True)
    paths = [url(qc)]
    if not query.startswith("by"):
        paths.append(url(qc, f"readers/{qc['amina'].id}/cusum.png"))
    for path in paths:
        response = client.get(f"{path}?{query}")
        assert response.status_code == 400
        assert reason in response.get_data(as_text=True)


def test_trainees_cannot_see_qc_figures(client, qc, login_as) -> None:  # type: ignore[no-untyped-def]
    login_as(Role.TRAINEE_RADIOLOGIST, Role.TRAINER)
    assert client.get(url(qc)).status_code == 403
    assert client.get(url(qc, f"readers/{qc['amina'].id}/cusum.png")).status_code == 403


def test_the_png_is_drawn_once_per_language(app, qc) -> None:  # type: ignore[no-untyped-def]
    reads = random_reads(random.Random(7), units=4)
    with app.test_request_context():
        english = cusum_png(cusum_series(reads, 0.05, "t"))
        again = cusum_png(cusum_series(reads, 0.05, "t"))
        with force_locale("es"):
            spanish = cusum_png(cusum_series(reads, 0.05, "t"))
    assert english is again and spanish != english


def test_a_server_designs_the_default_cusum_at_start(app) -> None:  # type: ignore[no-untyped-def]
    from app.qc.figures import cusum_design
    from app.qc.scope import DEFAULT_TARGET_RATE
    from app.wsgi import start_warm_up

    cusum_design.cache_clear()
    start_warm_up(app).join(120)
    assert cusum_design.cache_info().currsize == 1
    before = cusum_design.cache_info().hits
    assert cusum_design(DEFAULT_TARGET_RATE) == design_cusum(DEFAULT_TARGET_RATE)
    assert cusum_design.cache_info().hits == before + 1  # no request designs it again
