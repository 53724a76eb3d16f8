"""Who sees which QC records, on both databases: leads of Kenya, of Peru and of every
country, an administrator, a trainer and a trainee, against every QC page, export and
figure (the figures where their views exist). A lead of one country never sees another
country's pseudonyms, readers' names or clinics (404 or absent); trainers and trainees are
refused (403). A reader who moved from Lima to Nairobi shows in each country's view with
that country's records only."""

from __future__ import annotations

import io
from typing import Any

import pytest
from openpyxl import load_workbook

from app.auth.roles import Role
from tests.conftest import login
from tests.qc_world import QcWorld, world  # noqa: F401 (fixture)
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_certification import programme  # noqa: F401 (fixture)

VIEWERS = {
    "lead_ke": (Role.PROGRAMME_LEAD, {"countries": ("KE",)}),
    "lead_pe": (Role.PROGRAMME_LEAD, {"countries": ("PE",)}),
    "lead_all": (Role.PROGRAMME_LEAD, {"lead_all_countries": True}),
    "admin": (Role.ADMIN, {}),
    "trainer": (Role.TRAINER, {}),
    "trainee": (Role.TRAINEE_RADIOLOGIST, {}),
}
SEES = {"lead_ke": {"KE"}, "lead_pe": {"PE"}, "lead_all": {"KE", "PE"}, "admin": {"KE", "PE"}}
READERS_OF = {"KE": ("amina", "baraka", "idle"), "PE": ("carmen",)}


def _text(response: Any) -> str:
    if response.mimetype.endswith("spreadsheetml.sheet"):
        book = load_workbook(io.BytesIO(response.data))
        return "\n".join(str(v) for row in book.active.iter_rows(values_only=True)
                         for v in row if v is not None)
    return response.get_data(as_text=True)


def _pseudonyms(qc: QcWorld, key: str, country: str) -> set[str]:
    lima = qc.clinics["lima"].id
    return {r.study_pseudonym for r in qc.of(key)
            if (r.clinic_id == lima) == (country == "PE")}


def _urls(app: Any, qc: QcWorld) -> dict[str, tuple[str, str | None, str | None]]:
    """{url: (kind, reader key, table grouping)}."""
    p = qc.programme.id
    urls: dict[str, tuple[str, str | None, str | None]] = {}
    for by in ("reader", "clinic", "country"):
        urls[f"/qc/programmes/{p}?by={by}"] = ("table", None, by)
        urls[f"/qc/programmes/{p}?by={by}&format=csv"] = ("table", None, by)
        urls[f"/qc/programmes/{p}?by={by}&format=xlsx&start=2026-01-01"] = ("table", None, by)
    for key in ("amina", "carmen", "moved"):
        uid = qc.readers[key].id
        urls[f"/qc/programmes/{p}/readers/{uid}"] = ("reader", key, None)
        urls[f"/qc/programmes/{p}/readers/{uid}?last=5"] = ("reader", key, None)
        if "qc.cusum_png" in app.view_functions:
            urls[f"/qc/programmes/{p}/readers/{uid}/cusum.png"] = ("figure", key, None)
    if "qc.funnel_png" in app.view_functions:
        for by in ("clinic", "reader"):
            urls[f"/qc/programmes/{p}/funnel.png?by={by}"] = ("funnel", None, by)
    return urls


@pytest.mark.parametrize("viewer", list(VIEWERS))
def test_every_qc_page_export_and_figure_keeps_to_the_viewers_countries(
        app, world: QcWorld, make_user, viewer: str) -> None:  # noqa: F811
    role, options = VIEWERS[viewer]
    user = make_user(role, clinic=world.clinics["nairobi"] if role is Role.TRAINEE_RADIOLOGIST
                     else None, **options)
    client = app.test_client()
    assert login(client, user.username).status_code == 302
    seen = SEES.get(viewer)
    for url, (kind, key, by) in _urls(app, world).items():
        response = client.get(url)
        if seen is None:
            assert response.status_code == 403, (viewer, url)
            continue
        if kind == "funnel":
            assert response.status_code == 200 and response.mimetype == "image/png", url
            continue
        if kind in ("reader", "figure"):
            reader_countries = {"amina": {"KE"}, "carmen": {"PE"}, "moved": {"KE", "PE"}}[key]
            if not reader_countries & seen:
                assert response.status_code == 404, (viewer, url)
                assert "no such reader" in response.get_data(as_text=True)
                continue
            assert response.status_code == 200, (viewer, url)
            if kind == "figure":
                continue
            text = _text(response)
            for country in ("KE", "PE"):
                own = _pseudonyms(world, key, country)
                if country in seen:
                    assert not own or "last=" in url or any(p in text for p in own), url
                else:
                    assert not any(p in text for p in own), (viewer, url, country)
            if "KE" not in seen:
                assert "Nairobi site" not in text and "Mombasa" not in text, (viewer, url)
            if "PE" not in seen:
                assert "Lima site" not in text, (viewer, url)
            continue
        assert response.status_code == 200, (viewer, url)
        text = _text(response)
        names = {"KE": ("Nairobi site", "Mombasa site"), "PE": ("Lima site",)}
        for country in ("KE", "PE"):
            shown = country in seen
            for reader in READERS_OF[country]:
                if by == "reader":
                    assert (world.readers[reader].full_name in text) == shown, (viewer, url)
                else:
                    assert world.readers[reader].full_name not in text, (viewer, url)
            for clinic in names[country]:
                if by == "clinic" or (by == "reader" and country in seen):
                    assert (clinic in text) == shown, (viewer, url, clinic)
                elif not shown:
                    assert clinic not in text, (viewer, url, clinic)
        if by == "reader":  # the reader who moved shows in both countries' views
            assert "Diego Moved" in text, (viewer, url)


def test_a_moved_readers_counts_follow_the_country_of_each_record(app, world: QcWorld,  # noqa: F811
                                                                 make_user) -> None:
    """Kenya's lead counts Diego's Nairobi reads, Peru's lead his Lima reads, everyone's
    lead both; the certification dashboard's QC columns follow the same rule."""
    p = world.programme.id
    moved = world.readers["moved"]
    for options, expected in (({"countries": ("KE",)}, 9), ({"countries": ("PE",)}, 12),
                              ({"lead_all_countries": True}, 21)):
        client = app.test_client()
        assert login(client, make_user(Role.PROGRAMME_LEAD, **options).username
                     ).status_code == 302
        rows = {line.split(",")[2]: line.split(",")
                for line in client.get(f"/qc/programmes/{p}?format=csv").get_data(
                    as_text=True).splitlines()[1:]}
        assert rows["Diego Moved"][3] == str(expected)
        page = client.get(f"/qc/programmes/{p}/readers/{moved.id}").get_data(as_text=True)
        assert f"{expected} QC record" in page
