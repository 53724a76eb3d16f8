"""The one-page reference read: the scheme's answers and the lesion marks saved together, and
an image-quality reference read beside the diagnostic one."""

from __future__ import annotations

import json
from html import unescape

import pytest
from sqlalchemy import func, select

from app.auth.roles import Role
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import Case, ReferenceRead
from app.cases.reads import reference_for, save_read, save_reference_read
from app.extensions import db
from app.schemes.errors import SchemeError
from app.schemes.registry import get_scheme
from tests.conftest import login
from tests.dicom_factory import cr_dataset, to_bytes
from tests.forms import submit_form

ELLIPSE = {"finding": "cavitary_lesion", "shape": "ellipse",
           "geometry": {"cx": 20.5, "cy": 30.0, "rx": 5.0, "ry": 6.0}}
IQ_ANSWERS = {f"{item}.pass": "pass" for item in (
    "inclusion", "rotation", "scapulae", "inspiration", "exposure", "collimation", "artefacts")}


def _import(actor, seed: int) -> Case:
    data = to_bytes(cr_dataset(seed=seed, rows=80, columns=60))
    [result] = import_files([Source(f"{seed}.dcm", lambda: data)], actor=actor,
                            options=ImportOptions()).results
    return db.session.get_one(Case, result.case_id)


@pytest.fixture
def trainer(make_user):
    return make_user(Role.TRAINER, username="expert")


@pytest.fixture
def case(app, trainer) -> Case:
    return _import(trainer, 11)


def _reads() -> int:
    return db.session.scalar(select(func.count()).select_from(ReferenceRead))


def _save(client, case, marks, **answers):
    fields = {"overall": "abnormal", "findings": ["cavitary_lesion"], **answers}
    if marks is not None:
        fields["marks"] = marks if isinstance(marks, str) else json.dumps(marks)
    return submit_form(client, f"/cases/{case.id}/read?scheme=ds3030", button="Save read",
                       fields=fields)


# ---- service ------------------------------------------------------------------------------


def test_service_stores_answers_and_marks_as_one_version(case, trainer):
    mark = {**ELLIPSE, "image_id": case.images[0].id}
    read = save_reference_read(case, author=trainer, scheme=get_scheme("ds3030"),
                               answers={"overall": "abnormal", "findings": ["cavitary_lesion"]},
                               marks_field=json.dumps([mark]))
    assert read.version == 1 and read.answers["findings"] == ["cavitary_lesion"]
    assert read.marks == [mark]
    # An empty field (the viewer did not start) keeps the saved marks; "[]" removes them.
    again = save_reference_read(case, author=trainer, scheme=get_scheme("ds3030"),
                                answers={"overall": "abnormal", "findings": ["cavitary_lesion"]},
                                marks_field="")
    assert again.version == 2 and again.marks == [mark]
    cleared = save_reference_read(case, author=trainer, scheme=get_scheme("ds3030"),
                                  answers={"overall": "normal"}, marks_field="[]")
    assert cleared.marks == []


@pytest.mark.parametrize(
    ("marks_field", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"finding": "cavitary_lesion"}', "marks must be a list"),
        ("[1]", "must name one of this case's images"),
    ],
)
def test_service_refuses_bad_marks_and_writes_nothing(case, trainer, marks_field, message):
    with pytest.raises(SchemeError, match=message):
        save_reference_read(case, author=trainer, scheme=get_scheme("ds3030"),
                            answers={"overall": "normal"}, marks_field=marks_field)
    db.session.rollback()
    assert _reads() == 0


# ---- the page -----------------------------------------------------------------------------


def test_one_save_stores_answers_and_marks_and_the_page_loads_them(client, case):
    login(client, "expert")
    mark = {**ELLIPSE, "image_id": case.images[0].id}
    response = _save(client, case, [mark])
    assert response.status_code == 302, unescape(response.get_data(as_text=True))
    [read] = db.session.scalars(select(ReferenceRead)).all()
    assert read.answers == {"overall": "abnormal", "findings": ["cavitary_lesion"]}
    assert read.marks == [mark]
    page = client.get(f"/cases/{case.id}/read").get_data(as_text=True)
    payload = json.loads(page.split('id="viewer-data">', 1)[1].split("</script>", 1)[0])
    assert payload["marks"] == [mark] and payload["editable"] is True
    assert {"value": "cavitary_lesion", "label": "Cavitary lesion"} in payload["labels"]
    assert 'class="viewer-app"' in page and 'name="marks"' in page


@pytest.mark.parametrize(
    ("marks", "message"),
    [
        ("[{]", "not valid JSON"),
        ('"marks"', "Marks must be a list"),
        ([{**ELLIPSE, "finding": "unicorn"}], "is not a finding of this scheme"),
        ([{**ELLIPSE, "shape": "star"}], "shape must be one of"),
        ([{**ELLIPSE, "geometry": {"cx": 500, "cy": 1, "rx": 1, "ry": 1}}], "within the image"),
        ([{**ELLIPSE, "geometry": {"cx": "20", "cy": 1, "rx": 1, "ry": 1}}], "within the image"),
        ([{**ELLIPSE, "geometry": {"cx": True, "cy": 1, "rx": 1, "ry": 1}}], "within the image"),
        ([{**ELLIPSE, "confidence": 101}], "confidence must be between 0 and 100"),
        ([{**ELLIPSE, "image_id": 99999}], "must name one of this case's images"),
        ([{**ELLIPSE, "image_id": True}], "must name one of this case's images"),
        (["a mark"], "must name one of this case's images"),
    ],
)
def test_bad_marks_are_400_with_the_reason_and_nothing_is_written(client, case, marks,
                                                                  message):
    login(client, "expert")
    if isinstance(marks, list):
        marks = [{"image_id": case.images[0].id, **m} if isinstance(m, dict) else m
                 for m in marks]
    response = _save(client, case, marks)
    assert response.status_code == 400
    text = unescape(response.get_data(as_text=True))
    assert message in text, text[text.find("role=\"alert\""):][:300]
    assert _reads() == 0


def test_marks_of_another_case_are_refused(client, case, trainer):
    other = _import(trainer, 12)
    login(client, "expert")
    response = _save(client, case, [{**ELLIPSE, "image_id": other.images[0].id}])
    assert response.status_code == 400 and "must name one of this case's images" in (
        unescape(response.get_data(as_text=True)))
    assert _reads() == 0


def test_the_separate_marks_save_is_gone(client, case, trainer):
    save_read(case, author=trainer, scheme=get_scheme("ds3030"),
              answers={"overall": "abnormal", "findings": ["cavitary_lesion"]})
    login(client, "expert")
    detail = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "mark lesions" not in detail
    # Deliberately hand-built: the endpoint the old marks page posted to no longer exists.
    assert client.post(f"/viewer/api/cases/{case.id}/marks", json={"marks": []}).status_code \
        in (404, 405)
    data = client.get(f"/viewer/api/cases/{case.id}").get_json()
    assert data["editable"] is False and "save_url" not in data
    viewer_page = client.get(f"/viewer/cases/{case.id}").get_data(as_text=True)
    assert "Save marks" not in viewer_page


# ---- image-quality reference reads --------------------------------------------------------


def test_an_image_quality_read_sits_beside_the_diagnostic_one(case, trainer):
    save_read(case, author=trainer, scheme=get_scheme("ds3030"),
              answers={"overall": "abnormal", "findings": ["cavitary_lesion"]})
    iq = save_read(case, author=trainer, scheme=get_scheme("image_quality"),
                   answers={key.split(".")[0]: {"pass": True, "reason": ""}
                            for key in IQ_ANSWERS} | {"grade": "1"})
    assert iq.version == 1  # versions count per scheme
    assert reference_for(case).scheme.key == "ds3030"
    assert reference_for(case, "image_quality").answers["grade"] == "1"
    assert case.reference_classification == "abnormal"  # the library's summary is diagnostic
    # Another diagnostic scheme is still refused.
    with pytest.raises(SchemeError, match="same reporting scheme"):
        save_read(case, author=trainer, scheme=get_scheme("tb_screening"),
                  answers={"classification": "normal"})


def test_add_image_quality_read_from_the_case_page(client, case, trainer):
    save_read(case, author=trainer, scheme=get_scheme("ds3030"),
              answers={"overall": "normal"})
    login(client, "expert")
    detail = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Add image-quality reference read" in detail
    page = client.get(f"/cases/{case.id}/read?scheme=image_quality").get_data(as_text=True)
    assert "Image-quality reference read" in page and "Overall grade" in page
    response = submit_form(client, f"/cases/{case.id}/read?scheme=image_quality",
                           button="Save read", fields={**IQ_ANSWERS, "grade": "2"})
    assert response.status_code == 302, unescape(response.get_data(as_text=True))
    db.session.expire_all()
    case = db.session.get_one(Case, case.id)
    assert reference_for(case, "image_quality").answers["grade"] == "2"
    assert reference_for(case).scheme.key == "ds3030"
    detail = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "Image-quality reference read" in detail and "acceptable" in detail
    # Image quality takes no lesion marks: a mark sent with it is refused.
    refused = submit_form(client, f"/cases/{case.id}/read?scheme=image_quality",
                          button="Save read", fields={
                              **IQ_ANSWERS, "grade": "2",
                              "marks": json.dumps([{**ELLIPSE, "image_id": case.images[0].id}])})
    assert refused.status_code == 400 and "takes no lesion marks" in unescape(refused.get_data(
        as_text=True))


def test_a_refused_read_keeps_the_marks_just_drawn_on_the_page(client, case):
    login(client, "expert")
    mark = {**ELLIPSE, "image_id": case.images[0].id}
    # The overall answer is required: the read is refused, the drawn mark is not lost.
    response = submit_form(client, f"/cases/{case.id}/read?scheme=ds3030", button="Save read",
                           fields={"findings": ["cavitary_lesion"], "marks": json.dumps([mark])})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    payload = json.loads(page.split('id="viewer-data">', 1)[1].split("</script>", 1)[0])
    assert payload["marks"] == [mark]
    assert _reads() == 0


def test_tied_image_quality_reads_are_adjudicated_on_the_case_page(client, case, trainer,
                                                                   make_user):
    from app.cases.models import CaseStatus
    from app.quizzes.exercises import create_exercise
    from app.quizzes.services import AttemptError

    criteria = {key.split(".")[0]: {"pass": True, "reason": ""} for key in IQ_ANSWERS}
    second = make_user(Role.TRAINER)
    save_read(case, author=trainer, scheme=get_scheme("ds3030"), answers={"overall": "normal"})
    save_read(case, author=trainer, scheme=get_scheme("image_quality"),
              answers={**criteria, "grade": "1"})
    save_read(case, author=second, scheme=get_scheme("image_quality"),
              answers={**criteria, "grade": "3"})
    case.status = CaseStatus.PUBLISHED.value
    db.session.commit()
    with pytest.raises(AttemptError, match=f"image-quality reads of case {case.id} are tied"):
        create_exercise(title="IQ", kind="practice", scheme_key="image_quality",
                        case_ids=[case.id], actor=None)
    db.session.rollback()
    login(client, "expert")
    response = submit_form(client, f"/cases/{case.id}",
                           button="Save image-quality adjudication", fields={"grade": "3"})
    assert response.status_code == 302, unescape(response.get_data(as_text=True))
    db.session.expire_all()
    case = db.session.get_one(Case, case.id)
    quality = reference_for(case, "image_quality")
    assert quality.complete and quality.answers["grade"] == "3"
    assert reference_for(case).scheme.key == "ds3030"
    create_exercise(title="IQ", kind="practice", scheme_key="image_quality",
                    case_ids=[case.id], actor=None)
