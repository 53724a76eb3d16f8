"""Which images belong to one patient: one pseudonym and one date shift per patient, and
never two patients in one case."""

from __future__ import annotations

from collections import defaultdict

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select

from app.cases.deidentify import DeidOptions, deidentify
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import Case, CaseImage
from app.extensions import db
from tests.dicom_factory import cr_dataset, to_bytes

SECRET = b"test-install-secret-0123456789ab"
STUDY_DATE = "20230115"


def radiograph(seed: int = 0, *, study_uid: str | None = None, **patient: str) -> Dataset:
    """A small CR with the given patient attributes (PatientID, PatientName, ...)."""
    ds = cr_dataset(seed=seed, StudyDate=STUDY_DATE)
    if study_uid:
        ds.StudyInstanceUID = study_uid
    for keyword, value in patient.items():
        setattr(ds, keyword, value)
    return ds


def linked(first: Dataset, second: Dataset) -> tuple[bool, bool]:
    """(same pseudonym, same date shift) after de-identifying both."""
    options = DeidOptions(secret=SECRET)
    deidentify(first, options)
    deidentify(second, options)
    return first.PatientID == second.PatientID, first.StudyDate == second.StudyDate


@pytest.mark.parametrize(
    "variant",
    [
        {"PatientName": "DOE^JOHN^Q"},  # a middle initial added at another modality
        {"PatientName": ""},  # the name left out
        {"PatientName": "Doe^Jonathan"},  # spelled otherwise
    ],
)
def test_one_patient_id_is_one_pseudonym_whatever_the_name(variant):
    first = radiograph(1, PatientID="MRN-4711", PatientName="DOE^JOHN")
    second = radiograph(2, PatientID="MRN-4711", **variant)
    assert linked(first, second) == (True, True)


def test_the_patient_id_is_compared_without_case_or_spacing():
    first = radiograph(1, PatientID="mrn 4711 ")
    second = radiograph(2, PatientID="MRN  4711")
    assert linked(first, second) == (True, True)


def test_one_name_with_two_patient_ids_is_two_patients():
    first = radiograph(1, PatientID="MRN-4711", PatientName="DOE^JOHN")
    second = radiograph(2, PatientID="MRN-9999", PatientName="DOE^JOHN")
    assert linked(first, second) == (False, False)


def test_one_patient_id_from_two_issuers_is_two_patients():
    first = radiograph(1, PatientID="4711", IssuerOfPatientID="HOSPITAL-A")
    second = radiograph(2, PatientID="4711", IssuerOfPatientID="HOSPITAL-B")
    assert linked(first, second) == (False, False)
    third = radiograph(3, PatientID="4711", IssuerOfPatientID="hospital-a ")
    fourth = radiograph(4, PatientID="4711", IssuerOfPatientID="HOSPITAL-A")
    assert linked(third, fourth) == (True, True)


def test_without_a_patient_id_the_study_is_the_patient():
    study = generate_uid()
    first = radiograph(1, study_uid=study, PatientName="DOE^JOHN")
    second = radiograph(2, study_uid=study, PatientName="")
    assert linked(first, second) == (True, True)
    # Another study without an ID is not linked to it, even under the same name.
    third = radiograph(3, study_uid=generate_uid(), PatientName="DOE^JOHN")
    fourth = radiograph(4, study_uid=study, PatientName="DOE^JOHN")
    assert linked(third, fourth) == (False, False)


def test_an_image_without_id_and_without_study_has_a_pseudonym_of_its_own():
    first, second = radiograph(1), radiograph(2)
    for ds in (first, second):
        del ds.StudyInstanceUID
        del ds.SOPInstanceUID
    assert linked(first, second)[0] is False


# ---- cases ------------------------------------------------------------------------------------


def import_datasets(datasets: list[Dataset]) -> None:
    files = [to_bytes(ds) for ds in datasets]
    sources = [Source(f"image {n}", lambda data=data: data) for n, data in enumerate(files)]
    summary = import_files(sources, actor=None, options=ImportOptions())
    assert [r.status for r in summary.results] == ["imported"] * len(datasets), summary.results


def test_patients_sharing_a_study_uid_get_a_case_each(app):
    """Eight images with one StudyInstanceUID (a reused or badly generated UID) from six
    patients: six cases, each holding one patient's images only."""
    study = generate_uid()
    patients = ["P1", "P1", "P2", "P3", "P3", "P4", "P5", "P6"]
    import_datasets([radiograph(n, study_uid=study, PatientID=pid, PatientName=f"NAME^{pid}")
                     for n, pid in enumerate(patients)])
    pseudonyms_by_case: dict[int, set[str | None]] = defaultdict(set)
    for image in db.session.scalars(select(CaseImage)):
        pseudonyms_by_case[image.case_id].add(image.patient_pseudonym)
    assert len(pseudonyms_by_case) == 6
    assert all(len(p) == 1 for p in pseudonyms_by_case.values())
    assert len(set().union(*pseudonyms_by_case.values())) == 6
    sizes = sorted(len(c.images) for c in db.session.scalars(select(Case)))
    assert sizes == [1, 1, 1, 1, 2, 2]


def test_one_patients_study_stays_one_case_when_the_name_varies(app):
    study = generate_uid()
    import_datasets([
        radiograph(1, study_uid=study, PatientID="MRN-4711", PatientName="DOE^JOHN"),
        radiograph(2, study_uid=study, PatientID="MRN-4711", PatientName="DOE^JOHN^Q"),
        radiograph(3, study_uid=study, PatientID="MRN-4711", PatientName=""),
    ])
    [case] = db.session.scalars(select(Case)).all()
    assert len({image.patient_pseudonym for image in case.images}) == 1
    assert len(case.images) == 3
