"""Bad input is answered with a 4xx and its reason, never a 500, and nothing is written:
numbers too large for the database in URLs and query strings, JSON nested past Python's
recursion limit or holding Infinity, answers and marks of the wrong type or past the limits,
malformed reporting-scheme definitions."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.auth.roles import Role
from app.cases.models import CaseImage
from app.extensions import db
from app.quizzes.models import Attempt, AttemptAnswer
from app.schemes.answers import (
    MAX_MARK_VERTICES,
    MAX_MARKS,
    MAX_POLYGON_POINTS,
    validate_answers,
    validate_marks,
)
from app.schemes.errors import SchemeError
from app.schemes.models import ReportingScheme
from app.schemes.registry import get_scheme
from app.validation import MAX_JSON_DEPTH, JSONRefused, loads_strict
from tests.conftest import csrf_token, login
from tests.forms import submit_form
from tests.test_attempts import cases, post_start, practice, save_url  # noqa: F401 (fixtures)
from tests.test_case_pages import NEW_SCHEME
from tests.test_certification import programme  # noqa: F401 (fixture)

HUGE = "99999999999999999999"  # 20 digits: past SQLite's 64-bit integers


# ---- autosave -----------------------------------------------------------------------------


@pytest.fixture
def started(client, practice, make_user):  # noqa: F811 (fixture)
    """A trainee at the first case of a practice attempt: (client, save URL, headers)."""
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    login(client, trainee.username)
    response = post_start(client, practice)
    attempt = db.session.scalars(select(Attempt)).one()
    token = csrf_token(client, response.headers["Location"])
    return client, save_url(attempt.id, 1), {"X-CSRFToken": token,
                                              "Content-Type": "application/json"}


def _nothing_saved() -> bool:
    return db.session.scalar(select(func.count()).select_from(AttemptAnswer)) == 0


def test_autosave_of_json_nested_past_the_recursion_limit_is_400(started):
    client, url, headers = started
    deep = '{"answers": {}, "marks": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = client.post(url, data=deep, headers=headers)
    assert response.status_code == 400
    assert "nested deeper" in response.get_json()["message"]
    assert _nothing_saved()


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN", "1e400", "-1e400"])
def test_autosave_of_a_non_finite_scale_answer_is_400(started, literal):
    client, url, headers = started
    body = '{"answers": {"tb_likelihood": ' + literal + '}, "marks": []}'
    response = client.post(url, data=body, headers=headers)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert _nothing_saved()


@pytest.mark.parametrize("value", [1e300, 2.5, [3], {"n": 3}, True, "3" * 5000, "²"])
def test_a_scale_answer_that_is_not_a_whole_number_is_refused(value):
    scheme = get_scheme("ds3030")
    with pytest.raises(SchemeError, match=r"whole number|between"):
        validate_answers(scheme, {"tb_likelihood": value}, partial=True)


def test_a_whole_scale_answer_is_still_accepted():
    scheme = get_scheme("ds3030")
    for value in (3, 3.0, "3"):
        assert validate_answers(scheme, {"tb_likelihood": value}, partial=True) == {
            "tb_likelihood": 3}


@pytest.mark.parametrize("image_id", [[1], {"id": 1}, True, HUGE, 10**20, None])
def test_autosave_of_a_mark_naming_no_image_is_400(started, image_id):
    client, url, headers = started
    mark = {"image_id": image_id, "finding": "nodule", "shape": "point",
            "geometry": {"x": 1, "y": 1}}
    response = client.post(url, data=json.dumps({"answers": {}, "marks": [mark]}),
                           headers=headers)
    assert response.status_code == 400
    assert "must name one of this case's images" in response.get_json()["message"]
    assert _nothing_saved()


def _polygon(image_id: int, points: int) -> dict:
    return {"image_id": image_id, "finding": "nodule", "shape": "polygon",
            "geometry": {"points": [[1.125 + (i % 7), 1.375 + (i % 5)] for i in range(points)]}}


def test_marks_past_the_limits_are_refused_and_normal_use_is_not(started):
    client, url, headers = started
    attempt = db.session.scalars(select(Attempt)).one()
    image_id = db.session.scalars(select(CaseImage.id).where(
        CaseImage.case_id == attempt.case_order[0])).first()
    # What the issue saw accepted: 1,500 polygons, 11.8 MB; the body alone is refused (413).
    huge = json.dumps({"answers": {}, "marks": [_polygon(image_id, 500)] * 1500})
    assert len(huge) > 10_000_000
    refused = client.post(url, data=huge, headers=headers)
    assert refused.status_code == 413, refused.get_data(as_text=True)
    assert "at most 2 MB" in refused.get_json()["message"]
    # Under the body limit but past the count of marks: 400 with the reason.
    many = client.post(url, data=json.dumps({"answers": {}, "marks": [
        {"image_id": image_id, "finding": "nodule", "shape": "point",
         "geometry": {"x": 1, "y": 1}}] * (MAX_MARKS + 1)}), headers=headers)
    assert many.status_code == 400 and f"at most {MAX_MARKS} marks" in many.get_json()["message"]
    long_polygon = client.post(url, data=json.dumps({"answers": {}, "marks": [
        _polygon(image_id, MAX_POLYGON_POINTS + 1)]}), headers=headers)
    assert long_polygon.status_code == 400
    too_many_points = client.post(url, data=json.dumps({"answers": {}, "marks": [
        _polygon(image_id, 200)] * (MAX_MARK_VERTICES // 200 + 1)}), headers=headers)
    assert too_many_points.status_code == 400
    assert "polygon points in all" in too_many_points.get_json()["message"]
    assert _nothing_saved()
    # Far more than a real read: 30 polygons of the viewer's 200 points each.
    normal = client.post(url, data=json.dumps({"answers": {}, "marks": [
        _polygon(image_id, 200)] * 30}), headers=headers)
    assert normal.status_code == 200, normal.get_data(as_text=True)


def test_validate_marks_refuses_boolean_coordinates():
    scheme = get_scheme("ds3030")
    mark = {"finding": "nodule", "shape": "polygon",
            "geometry": {"points": [[True, 1], [2, 2], [3, 1]]}}
    with pytest.raises(SchemeError):
        validate_marks(scheme, [mark], columns=10, rows=10)


# ---- strict JSON --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "[1e400]",
                                  "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
                                  "[" * 200_000 + "]" * 200_000])
def test_strict_json_refuses_non_finite_numbers_and_deep_nesting(text):
    with pytest.raises(JSONRefused):
        loads_strict(text)


def test_strict_json_reads_ordinary_bodies():
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads_strict('{"a": [1, 2.5, {"b": null}]}') == {"a": [1, 2.5, {"b": None}]}
    assert loads_strict(nested) is not None


# ---- numbers in URLs and query strings ----------------------------------------------------


@pytest.fixture
def everyone(app, client, make_user, programme):  # noqa: F811 (fixture)
    """Signed in as a user who may open every listing."""
    user = make_user(Role.ADMIN, Role.TRAINER, Role.PROGRAMME_LEAD, lead_all_countries=True)
    login(client, user.username)
    return client, programme.id, user.id


LISTINGS = [
    "/cases/?page={n}",
    "/admin/audit?page={n}",
    "/certification/certificates?page={n}",
    "/certification/certificates?programme={n}",
    "/certification/certificates?clinic={n}",
    "/certification/programmes/{programme}?page={n}",
    "/certification/programmes/{programme}?clinic={n}",
    "/certification/programmes/{programme}/scores.png?clinic={n}",
    "/certification/readers/{user}?page={n}",
    "/certification/exceptions/new?programme={n}",
]


@pytest.mark.parametrize("template", LISTINGS)
@pytest.mark.parametrize("number", ["-1", "0", "²", "٣", "1.5", "-" + HUGE])
def test_a_number_parameter_that_is_not_a_positive_number_is_no_server_error(everyone, template,
                                                                            number):
    """Each view judges these (a listing shows its first page); none is a 500."""
    client, programme_id, user_id = everyone
    url = template.format(n=number, programme=programme_id, user=user_id)
    assert client.get(url).status_code in (200, 400, 404), url


@pytest.mark.parametrize("template", LISTINGS)
@pytest.mark.parametrize("number", [HUGE, "9" * 400, "+" + HUGE])
def test_a_number_parameter_too_large_is_400_naming_it(everyone, template, number):
    client, programme_id, user_id = everyone
    url = template.format(n=number, programme=programme_id, user=user_id)
    response = client.get(url)
    assert response.status_code == 400, (url, response.status_code)
    name = template.split("?")[1].split("=")[0]
    assert name in response.get_data(as_text=True)


@pytest.mark.parametrize("template", LISTINGS)
def test_a_number_parameter_in_range_still_lists(everyone, template):
    client, programme_id, user_id = everyone
    url = template.format(n=1, programme=programme_id, user=user_id)
    assert client.get(url).status_code in (200, 404)


@pytest.mark.parametrize("url", [
    f"/certification/programmes/{HUGE}",
    f"/certification/readers/{HUGE}",
    f"/certification/certificates/{HUGE}.pdf",
    f"/training/attempts/{HUGE}/1",
    f"/training/attempts/1/{HUGE}",
    f"/cases/{HUGE}",
    f"/viewer/images/{HUGE}/manifest",
])
def test_an_id_too_large_for_the_database_in_the_path_is_404(everyone, url):
    client, _, _ = everyone
    assert client.get(url).status_code == 404


# ---- reporting-scheme definitions ---------------------------------------------------------


def _scheme(**changes) -> str:
    data = json.loads(NEW_SCHEME)
    item_changes = changes.pop("item", {})
    data["items"][0].update(item_changes)
    data.update(changes)
    return json.dumps(data)


MALFORMED_SCHEMES = [
    (_scheme(version=10**20), "'version' must be a whole number"),
    (_scheme(version=True), "'version' must be a whole number"),
    (_scheme(item={"groups": [{"label": "no key"}]}), "'groups' must be a list"),
    (_scheme(item={"groups": "abc"}), "'groups' must be a list"),
    (_scheme(item={"max_length": "long"}), "'max_length' must be a whole number"),
    (_scheme(item={"anchors": [1, 2]}), "'anchors' must be an object"),
    (_scheme(tb_decision={"item": ["verdict"]}), "'tb_decision' must name an item"),
    (_scheme(tb_decision={"item": "verdict", "positive_values": [{"a": 1}]}),
     "'tb_decision.positive_values' must be a list"),
    (_scheme(tb_decision={"item": "verdict", "positive_values": 5}),
     "'tb_decision.positive_values' must be a list"),
    (_scheme(rating=["verdict"]), "'rating' must be text"),
    (_scheme(item={"options": [{"value": "a", "group": ["g"]}]}), "are text"),
    (_scheme(item={"type": "scale", "min": 1, "max": 1e400}), "Infinity is not a number"),
    (_scheme(item={"type": "scale", "min": 1, "max": 10**30}), "a scale needs whole numbers"),
    ('{"key": "deep", "name": "D", "items": ' + "[" * 50_000 + "]" * 50_000 + "}",
     "nested deeper"),
    ('{"key": "nan", "name": "N", "version": NaN, "items": []}', "not a number JSON allows"),
]


@pytest.mark.parametrize(("definition", "message"), MALFORMED_SCHEMES)
def test_a_malformed_scheme_definition_is_400_with_the_reason(client, login_as, definition,
                                                              message):
    login_as(Role.TRAINER)
    response = submit_form(client, "/cases/schemes", button="Add scheme",
                           fields={"definition": definition})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True).replace("&#39;", "'")
    assert db.session.scalars(select(ReportingScheme)).all() == []


@pytest.mark.parametrize(("definition", "message"), MALFORMED_SCHEMES)
def test_a_malformed_scheme_file_is_refused_by_the_command_line(app, tmp_path, definition,
                                                                message):
    path = tmp_path / "scheme.json"
    path.write_text(definition, encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["cases", "add-scheme", str(path)])
    assert result.exit_code == 1 and message in result.output, result.output
    assert db.session.scalars(select(ReportingScheme)).all() == []


def test_a_read_posted_as_json_with_marks_that_are_not_text_is_400(client, cases,  # noqa: F811
                                                                   make_user):
    """Flask-WTF reads a JSON body as the form: the marks field then holds any JSON value."""
    trainer = make_user(Role.TRAINER)
    login(client, trainer.username)
    url = f"/cases/{cases[0].id}/read"
    token = csrf_token(client, url)
    response = client.post(url, json={"csrf_token": token, "marks": {"a": 1}},
                           headers={"X-CSRFToken": token})
    assert response.status_code == 400
    assert "marks field must be text" in response.get_data(as_text=True)


def test_the_viewer_cannot_draw_what_the_server_refuses():
    """The viewer's own limits (marks.js) match the server's, and its freehand polygon keeps
    fewer points than a polygon may have."""
    from pathlib import Path

    source = (Path(__file__).parents[1] / "app/viewer/static/viewer/marks.js").read_text()
    assert f"export const MAX_MARKS = {MAX_MARKS};" in source
    assert f"export const MAX_MARK_VERTICES = {MAX_MARK_VERTICES};" in source
    assert "points.length / 200" in source and MAX_POLYGON_POINTS >= 200
