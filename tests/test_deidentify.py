"""De-identification (PS3.15 Annex E): no planted PHI survives, UIDs and dates stay linked."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import date
from io import BytesIO

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.misc import warn_and_log
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID, ComputedRadiographyImageStorage, ExplicitVRLittleEndian

from app.cases import deidentify as deid_module
from app.cases.deidentify import (
    DeidentificationError,
    DeidOptions,
    DeidReport,
    date_shift_days,
    deidentify,
    new_uid,
)

SECRET = b"test-install-secret-0123456789ab"
OTHER_SECRET = b"another-install-secret-987654321"

ROOT = "1.2.826.0.1.3680043.8.498."
STUDY_UID = ROOT + "7710001"
SERIES_UID = ROOT + "7720002"
FRAME_UID = ROOT + "7730003"
SOP_UID_A = ROOT + "7740004"
SOP_UID_B = ROOT + "7750005"
OTHER_STUDY_UID = ROOT + "7760006"
CREATOR_UID = ROOT + "7770007"
ORIGINAL_UIDS = [
    STUDY_UID,
    SERIES_UID,
    FRAME_UID,
    SOP_UID_A,
    SOP_UID_B,
    OTHER_STUDY_UID,
    CREATOR_UID,
]

BIRTH_DATE = "19771203"
# All exam dates lie within a few days, so a shift of at least 365 days cannot turn one
# into another original date.
ORIGINAL_DATES = [BIRTH_DATE, "20230115", "20230116", "20230118", "20230119"]
ORIGINAL_TIMES = ["134711", "134722", "134733", "134744"]

PHI = [
    "PHI-NAME-7Q3Z",
    "PHI-ID-K2J9",
    "PHI-ADDR-12 Baker",
    "PHI-TEL-5550199",
    "PHI-OPID-X1",
    "PHI-OPIDSEQ-W8",
    "PHI-ISSUER-Q5",
    "PHI-INST-Elsewhere",
    "PHI-INSTADDR-Main",
    "PHI-REFDOC",
    "PHI-OPER",
    "PHI-PERF",
    "PHI-STN-X9",
    "PHI-SN-44817",
    "PHI-ACC-6612",
    "PHI-SID-301",
    "PHI-STUDYDESC",
    "PHI-SERIESDESC",
    "PHI-IMGCOMMENT",
    "PHI-HISTORY",
    "PHI-DEPT",
    "PHI-PROTOCOL",
    "PHI-RPID-1",
    "PHI-SPSID-2",
    "PHI-RPDESC",
    "PHI-REQDOC",
    "PHI-REFSTUDY",
    "PHI-NESTNAME-3F",
    "PHI-NESTID-8M",
    "PHI-NESTCOMMENT",
    "PHI-NESTINST",
    "PHI-CONTENT-TEXT",
    "PHI-OVERLAY",
    "PHI-PRIV-TOP",
    "PHI-PRIV-NEST",
    "PHI-AET-CRX1",
    "PHI-VIEWMEANING",
    "PHI-MODMEANING",
    "PHI-REGIONMEANING",
    "PHI-CSVERSION",
    "PHI-WINDOWLABEL",
    "PHI-MAKER",
    "PHI-MODEL",
    "PHI_IMGTYPE",
]


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _build(
    *,
    sop_uid: str = SOP_UID_A,
    referenced_sop_uid: str = SOP_UID_B,
    patient_id: str = "PHI-ID-K2J9",
    patient_name: str = "PHI-NAME-7Q3Z^JANE",
    modality: str = "CR",
) -> Dataset:
    """A 16x16 CR image with PHI planted in every often-leaked place."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "PHI-AET-CRX1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = ComputedRadiographyImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.FrameOfReferenceUID = FRAME_UID
    ds.InstanceCreatorUID = CREATOR_UID
    ds.Modality = modality
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"

    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientSex = "F"
    ds.PatientSize = "1.62"
    ds.PatientWeight = "58"
    ds.PatientAddress = "PHI-ADDR-12 Baker Street"
    ds.PatientTelephoneNumbers = "PHI-TEL-5550199"
    ds.OtherPatientIDs = "PHI-OPID-X1"
    other_id = Dataset()
    other_id.PatientID = "PHI-OPIDSEQ-W8"
    other_id.IssuerOfPatientID = "PHI-ISSUER-Q5"
    ds.OtherPatientIDsSequence = Sequence([other_id])
    ds.AdditionalPatientHistory = "PHI-HISTORY cough for 3 weeks"

    ds.InstitutionName = "PHI-INST-Elsewhere"
    ds.InstitutionAddress = "PHI-INSTADDR-Main Road"
    ds.InstitutionalDepartmentName = "PHI-DEPT"
    ds.ReferringPhysicianName = "PHI-REFDOC^A"
    ds.OperatorsName = "PHI-OPER^B"
    ds.PerformingPhysicianName = "PHI-PERF^C"
    ds.StationName = "PHI-STN-X9"
    ds.DeviceSerialNumber = "PHI-SN-44817"
    ds.AccessionNumber = "PHI-ACC-6612"
    ds.StudyID = "PHI-SID-301"
    ds.StudyDescription = "PHI-STUDYDESC chest PA"
    ds.SeriesDescription = "PHI-SERIESDESC"
    ds.ProtocolName = "PHI-PROTOCOL"
    ds.ImageComments = "PHI-IMGCOMMENT patient could not stand"

    ds.StudyDate = "20230115"
    ds.SeriesDate = "20230115"
    ds.AcquisitionDate = "20230116"
    ds.ContentDate = "20230118"
    ds.InstanceCreationDate = "20230119"
    ds.AcquisitionDateTime = "20230116134744.123456"
    ds.StudyTime = "134711"
    ds.SeriesTime = "134722"
    ds.AcquisitionTime = "134733"
    ds.ContentTime = "134744"
    ds.TimezoneOffsetFromUTC = "+0530"

    request = Dataset()
    request.RequestedProcedureID = "PHI-RPID-1"
    request.ScheduledProcedureStepID = "PHI-SPSID-2"
    request.RequestedProcedureDescription = "PHI-RPDESC"
    request.RequestingPhysician = "PHI-REQDOC^D"
    ds.RequestAttributesSequence = Sequence([request])

    ref_study = Dataset()
    ref_study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref_study.ReferencedSOPInstanceUID = OTHER_STUDY_UID
    ref_study.PatientName = "PHI-REFSTUDY^E"
    ds.ReferencedStudySequence = Sequence([ref_study])

    ref_image = Dataset()
    ref_image.ReferencedSOPClassUID = ComputedRadiographyImageStorage
    ref_image.ReferencedSOPInstanceUID = referenced_sop_uid
    ds.ReferencedImageSequence = Sequence([ref_image])

    # A sequence the profile keeps, with PHI two levels deep and a private block.
    # Codes from the registry, with free text in their meanings and scheme versions.
    modifier = _code("399196006", "SCT", "cephalad PHI-MODMEANING")
    modifier.CodingSchemeVersion = "PHI-CSVERSION"
    modifier.PatientName = "PHI-NESTNAME-3F^G"
    modifier.PatientID = "PHI-NESTID-8M"
    modifier.ImageComments = "PHI-NESTCOMMENT"
    modifier.InstitutionName = "PHI-NESTINST"
    modifier.ContentDate = "20230118"
    view = _code("272479007", "SCT", "PA PHI-VIEWMEANING")
    view.ViewModifierCodeSequence = Sequence([modifier])
    view.private_block(0x0019, "PHI VENDOR NEST", create=True).add_new(0x01, "LO", "PHI-PRIV-NEST")
    ds.ViewCodeSequence = Sequence([view])
    # A legacy SNOMED-RT code, checked through its SNOMED CT equivalent.
    ds.AnatomicRegionSequence = Sequence([_code("T-D3000", "SRT", "PHI-REGIONMEANING")])
    ds.WindowCenter = [2048, 1000]
    ds.WindowWidth = [4096, 500]
    ds.WindowCenterWidthExplanation = ["PHI-WINDOWLABEL", "lung"]
    ds.Manufacturer = "PHI-MAKER"
    ds.ManufacturerModelName = "PHI-MODEL"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "PHI_IMGTYPE"]

    # Annex E "D" on a whole sequence: free text inside must become a dummy.
    text_item = Dataset()
    text_item.ValueType = "TEXT"
    text_item.TextValue = "PHI-CONTENT-TEXT"
    ds.ContentSequence = Sequence([text_item])

    # Repeating group (60xx): matched through the table's masked entries.
    ds.add_new(0x60004000, "LT", "PHI-OVERLAY comment")

    block = ds.private_block(0x0009, "PHI VENDOR", create=True)
    block.add_new(0x01, "LO", "PHI-PRIV-TOP")
    block.add_new(0x02, "DA", "20230115")

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 16
    ds.Columns = 16
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = (np.arange(256, dtype=np.uint16) * 16).tobytes()
    return ds


def _written(ds: Dataset) -> bytes:
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _report_text(report: DeidReport) -> str:
    return json.dumps(report.to_json())


def _all_elements(ds: Dataset) -> list[pydicom.DataElement]:
    return [*ds.file_meta, *ds.iterall()]


@pytest.fixture
def options() -> DeidOptions:
    return DeidOptions(secret=SECRET)


@pytest.fixture
def make_case() -> Callable[..., Dataset]:
    return _build


@pytest.fixture
def case(make_case: Callable[..., Dataset]) -> Dataset:
    return make_case()


@pytest.fixture
def processed(case: Dataset, options: DeidOptions) -> tuple[Dataset, DeidReport]:
    return case, deidentify(case, options)


# --- nothing identifying survives ------------------------------------------------------------


def test_no_planted_phi_uid_or_date_survives_in_the_written_file(processed):
    ds, report = processed
    written = _written(ds)
    report_text = _report_text(report)
    for needle in PHI + ORIGINAL_UIDS + ORIGINAL_DATES + ORIGINAL_TIMES:
        assert needle.encode() not in written, needle
        assert needle not in report_text, needle
    # The file still reads back as a valid image with its pixels.
    back = pydicom.dcmread(BytesIO(written))
    assert back.pixel_array.shape == (16, 16)
    assert back.BodyPartExamined == "CHEST"


def test_private_tags_are_removed_everywhere_and_counted(processed):
    ds, report = processed
    assert not any(elem.tag.is_private for elem in _all_elements(ds))
    # Top level: creator + 2 elements; nested: creator + 1 element.
    assert report.private_tags_removed == 5
    assert "(0009,0010)" in report.removed
    assert "ViewCodeSequence > (0019,0010)" in report.removed


def test_profile_applies_inside_kept_sequences(processed):
    ds, report = processed
    modifier = ds.ViewCodeSequence[0].ViewModifierCodeSequence[0]
    # Inside coded sequences only the codes survive (the allow-list after the profile).
    assert sorted(e.keyword for e in modifier) == [
        "CodeMeaning", "CodeValue", "CodingSchemeDesignator"]
    assert modifier.CodeMeaning == "cephalad"  # the registry's meaning, not the file's
    assert ds.ViewCodeSequence[0].CodeMeaning == "postero-anterior"
    assert ds.AnatomicRegionSequence[0].CodeValue == "T-D3000"
    assert ds.AnatomicRegionSequence[0].CodeMeaning == "Thoracic structure (body structure)"
    nested = "ViewCodeSequence > ViewModifierCodeSequence"
    for name in ("PatientName", "PatientID", "ImageComments", "ContentDate"):
        assert f"{nested} > {name}" in report.removed
        assert f"{nested} > {name}" not in report.replaced + report.emptied + report.kept
    assert "ContentSequence" in report.removed
    assert "ContentSequence" not in ds
    for keyword in ("RequestAttributesSequence", "OtherPatientIDsSequence"):
        assert keyword not in ds
        assert keyword in report.removed


def test_attributes_outside_the_allow_list_are_removed():
    ds = Dataset()
    ds.Modality = "CR"
    ds.PatientSex = "F"
    code = Dataset()
    code.CodeValue = "X1"
    code.CodingSchemeDesignator = "99LOCAL"
    code.CodeMeaning = "PHI-free-text-in-a-code"
    ds.ProcedureCodeSequence = Sequence([code])  # kept by Annex E, not needed by us
    ds.PerformedProcedureStepDescription = "PHI-step"
    report = deidentify(ds, DeidOptions(secret=b"k" * 16))
    assert "ProcedureCodeSequence" not in ds
    assert "ProcedureCodeSequence" in report.removed
    assert ds.PatientSex == "F" and ds.Modality == "CR"


def test_report_names_attributes_only(processed):
    _, report = processed
    assert "PatientName" in report.emptied
    assert "PatientID" in report.replaced
    assert "PatientBirthDate" in report.emptied
    for keyword in ("InstitutionName", "StationName", "DeviceSerialNumber", "StudyDescription"):
        assert keyword in report.removed
    assert {"AccessionNumber", "StudyID", "ReferringPhysicianName"} <= set(report.emptied)
    assert {"StudyInstanceUID", "SOPInstanceUID", "MediaStorageSOPInstanceUID"} <= set(
        report.replaced
    )
    assert "SOPClassUID" in report.kept
    assert "SourceApplicationEntityTitle" in report.removed
    assert "OverlayComments" in report.removed
    data = report.to_json()
    assert json.loads(json.dumps(data)) == data
    every_name = data["removed"] + data["replaced"] + data["emptied"] + data["kept"]
    assert all(isinstance(name, str) and name for name in every_name)


def test_nothing_is_printed_logged_or_warned(case, options, capsys, caplog, recwarn):
    # Read back from bytes so pydicom converts raw values inside deidentify.
    ds = pydicom.dcmread(BytesIO(_written(case)))
    recwarn.clear()
    with caplog.at_level(logging.DEBUG):
        deidentify(ds, options)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""
    assert caplog.records == []
    assert len(recwarn) == 0


def test_pydicom_messages_quoting_values_are_silenced(case, options, monkeypatch, caplog, recwarn):
    # pydicom reports some invalid values as "Invalid value for VR ..: '<value>'" on its
    # logger and as a warning; stand in for such a conversion inside the call.
    original = deid_module._needs_pixel_review

    def noisy(ds: Dataset) -> bool:
        warn_and_log("Invalid value for VR PN: 'PHI-NAME-7Q3Z'")
        return original(ds)

    monkeypatch.setattr(deid_module, "_needs_pixel_review", noisy)
    with caplog.at_level(logging.DEBUG):
        deidentify(case, options)
    assert caplog.records == []
    assert len(recwarn) == 0
    # The silencing ends with the call.
    with caplog.at_level(logging.WARNING, logger="pydicom"), pytest.warns(UserWarning):
        warn_and_log("after the call")
    assert [record.getMessage() for record in caplog.records] == ["after the call"]


# --- UIDs ------------------------------------------------------------------------------------


def test_uids_are_valid_consistent_and_keep_registry_uids(processed):
    ds, _ = processed
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert UID(ds[keyword].value).is_valid
        assert ds[keyword].value.startswith("2.25.")
    assert ds.FrameOfReferenceUID == new_uid(FRAME_UID, SECRET)
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SOPClassUID == ComputedRadiographyImageStorage
    assert ds.file_meta.MediaStorageSOPClassUID == ComputedRadiographyImageStorage
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.ReferencedImageSequence[0].ReferencedSOPClassUID == ComputedRadiographyImageStorage


def test_two_images_of_one_study_stay_linked_across_uploads(make_case, options):
    first = make_case(sop_uid=SOP_UID_A, referenced_sop_uid=SOP_UID_B)
    second = make_case(sop_uid=SOP_UID_B, referenced_sop_uid=SOP_UID_A)
    deidentify(first, options)
    deidentify(second, options)
    assert first.StudyInstanceUID == second.StudyInstanceUID
    assert first.SeriesInstanceUID == second.SeriesInstanceUID
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert first.ReferencedImageSequence[0].ReferencedSOPInstanceUID == second.SOPInstanceUID
    assert second.ReferencedImageSequence[0].ReferencedSOPInstanceUID == first.SOPInstanceUID


def test_another_secret_gives_other_uids(make_case):
    first, second = make_case(), make_case()
    deidentify(first, DeidOptions(secret=SECRET))
    deidentify(second, DeidOptions(secret=OTHER_SECRET))
    assert first.StudyInstanceUID != second.StudyInstanceUID
    assert first.SOPInstanceUID != second.SOPInstanceUID


def test_new_uid_is_deterministic_and_valid():
    uid = new_uid(STUDY_UID, SECRET)
    assert uid == new_uid(STUDY_UID, SECRET)
    assert uid == new_uid(STUDY_UID + "\x00", SECRET)  # padding does not matter
    assert uid != new_uid(SERIES_UID, SECRET)
    assert uid != new_uid(STUDY_UID, OTHER_SECRET)
    assert UID(uid).is_valid
    assert len(uid) <= 64
    with pytest.raises(ValueError):
        new_uid(STUDY_UID, b"")


# --- dates -----------------------------------------------------------------------------------


def _as_date(value: str) -> date:
    return date(int(value[:4]), int(value[4:6]), int(value[6:8]))


def test_dates_shift_consistently_per_patient_and_keep_intervals(make_case, options):
    first, second = make_case(), make_case(sop_uid=SOP_UID_B)
    deidentify(first, options)
    deidentify(second, options)
    assert first.StudyDate == second.StudyDate
    shift = (_as_date(first.StudyDate) - date(2023, 1, 15)).days
    assert shift == date_shift_days("issuer=\x1fid=PHI-ID-K2J9", SECRET)
    assert -3650 <= shift <= -365
    study = _as_date(first.StudyDate)
    assert (_as_date(first.ContentDate) - study).days == 3
    assert (_as_date(first.AcquisitionDate) - study).days == 1
    assert first.AcquisitionDateTime == first.AcquisitionDate  # time of day dropped
    nested = first.ViewCodeSequence[0].ViewModifierCodeSequence[0]
    assert "ContentDate" not in nested  # only codes survive inside coded sequences


def test_other_patients_get_other_shifts_and_pseudonyms(make_case, options):
    first = make_case()
    second = make_case(patient_id="PHI-ID-OTHER", patient_name="PHI-NAME-OTHER")
    deidentify(first, options)
    deidentify(second, options)
    assert first.StudyDate != second.StudyDate
    assert first.PatientID != second.PatientID
    shifts = {date_shift_days(f"patient-{n}", SECRET) for n in range(100)}
    assert len(shifts) > 90
    assert all(-3650 <= shift <= -365 for shift in shifts)
    assert date_shift_days("patient-1", SECRET) != date_shift_days("patient-1", OTHER_SECRET)


def test_patient_id_is_a_stable_pseudonym(make_case, options):
    first, second = make_case(), make_case(sop_uid=SOP_UID_B)
    deidentify(first, options)
    deidentify(second, options)
    assert first.PatientID == second.PatientID
    assert first.PatientID.startswith("ANON-")
    assert len(first.PatientID) == len("ANON-") + 12
    int(first.PatientID[5:], 16)
    assert first.PatientName == ""


def test_times_are_removed(processed):
    ds, report = processed
    assert ds.StudyTime == ""  # Annex E "Z": Type 2, kept empty
    assert ds.ContentTime == ""
    assert "SeriesTime" not in ds
    assert "AcquisitionTime" not in ds
    assert "StudyTime" in report.emptied
    assert "SeriesTime" in report.removed


def test_dates_removed_when_asked(case):
    report = deidentify(case, DeidOptions(secret=SECRET, dates="remove"))
    for elem in _all_elements(case):
        if elem.VR in ("DA", "DT", "TM"):
            assert not elem.value, elem.keyword
    assert "StudyDate" in report.emptied
    assert "SeriesDate" in report.removed
    assert case.LongitudinalTemporalInformationModified == "REMOVED"
    codes = {item.CodeValue for item in case.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113108"}
    written = _written(case)
    for original in ORIGINAL_DATES:
        assert original.encode() not in written


# --- patient characteristics -----------------------------------------------------------------


def test_age_is_derived_from_birth_and_study_date(processed):
    ds, report = processed
    assert ds.PatientAge == "045Y"
    assert report.age_derived
    assert ds.PatientBirthDate == ""
    assert ds.PatientSex == "F"
    assert ds.PatientSize == 1.62
    assert ds.PatientWeight == 58


def test_age_present_is_kept_and_old_ages_aggregated(make_case, options):
    ds = make_case()
    ds.PatientAge = "051Y"
    report = deidentify(ds, options)
    assert ds.PatientAge == "051Y"
    assert not report.age_derived
    assert "PatientAge" in report.kept

    old = make_case()
    old.PatientAge = "094Y"
    deidentify(old, options)
    assert old.PatientAge == "090Y"


@pytest.mark.parametrize(
    ("birth", "expected"),
    [("19200101", "090Y"), ("20220301", "010M"), ("20230101", "014D")],
)
def test_derived_age_forms(make_case, options, birth, expected):
    ds = make_case()
    ds.PatientBirthDate = birth
    deidentify(ds, options)
    assert ds.PatientAge == expected


def test_characteristics_removed_without_the_option(case):
    report = deidentify(case, DeidOptions(secret=SECRET, retain_patient_characteristics=False))
    assert case.PatientSex == ""
    for keyword in ("PatientAge", "PatientSize", "PatientWeight"):
        assert keyword not in case
    assert not report.age_derived
    assert "PatientSex" in report.emptied
    codes = {item.CodeValue for item in case.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113107"}


def test_free_text_in_retained_characteristics_is_dropped(make_case, options, caplog, recwarn):
    ds = make_case()
    # Not a defined term / not a number: someone typed a note there.  Planted raw, as
    # read from a file, since pydicom refuses such values when set.
    ds[0x00100040] = RawDataElement(Tag(0x00100040), "CS", 8, b"PHI-SEX ", 0, False, True)
    ds[0x00101030] = RawDataElement(Tag(0x00101030), "DS", 10, b"58 kg PHI ", 0, False, True)
    with caplog.at_level(logging.DEBUG):
        report = deidentify(ds, options)
    # pydicom would warn and log "Invalid value for VR CS: 'PHI-SEX'" on conversion.
    assert caplog.records == []
    assert len(recwarn) == 0
    assert ds.PatientSex == ""  # Type 2: kept, empty
    assert "PatientWeight" not in ds
    assert "PatientWeight" in report.removed


# --- marking and pixel review ----------------------------------------------------------------


def test_result_is_marked_as_deidentified(processed):
    ds, _ = processed
    assert ds.PatientIdentityRemoved == "YES"
    assert "Annex E" in ds.DeidentificationMethod or "PS3.15" in ds.DeidentificationMethod
    assert len(ds.DeidentificationMethod) <= 64  # LO
    codes = {
        (item.CodeValue, item.CodingSchemeDesignator)
        for item in ds.DeidentificationMethodCodeSequence
    }
    assert codes == {("113100", "DCM"), ("113108", "DCM"), ("113107", "DCM")}
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"


@pytest.mark.parametrize(
    ("modality", "burned_in", "expected"),
    [
        ("CR", None, True),
        ("DX", None, True),
        ("DX", "YES", True),
        ("CR", "NO", False),
        ("DX", "NO", False),
        ("MR", None, False),
    ],
)
def test_pixel_review_flag(make_case, options, modality, burned_in, expected):
    ds = make_case(modality=modality)
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    assert deidentify(ds, options).pixel_review_needed is expected


# --- options and errors ----------------------------------------------------------------------


def test_options_hide_the_secret_and_are_validated(case):
    assert SECRET.decode() not in repr(DeidOptions(secret=SECRET))
    with pytest.raises(ValueError):
        deidentify(case, DeidOptions(secret=b""))
    with pytest.raises(ValueError):
        deidentify(case, DeidOptions(secret=SECRET, dates="keep"))  # type: ignore[arg-type]


def test_errors_name_the_attribute_never_the_value(case, options, monkeypatch):
    def leaky(elem, ctx):
        raise ValueError(f"cannot handle {elem.value}")

    monkeypatch.setattr(deid_module, "_replace_uids", leaky)
    with pytest.raises(DeidentificationError) as raised:
        deidentify(case, options)
    message = str(raised.value)
    assert "InstanceCreatorUID" in message
    assert CREATOR_UID not in message
    assert raised.value.__context__ is None
    assert raised.value.__cause__ is None


# --- a real chest CR -------------------------------------------------------------------------


def test_real_chest_cr_from_pydicom_data(options):
    path = get_testdata_file("RG1_UNCR.dcm")
    assert path is not None
    ds = pydicom.dcmread(path)
    keywords = (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "OtherPatientIDs",
        "StationName",
        "DeviceSerialNumber",
        "InstitutionName",
        "AccessionNumber",
        "StudyInstanceUID",
        "SOPInstanceUID",
    )
    originals = {keyword: str(ds[keyword].value) for keyword in keywords}
    assert all(originals.values())
    pixels = ds.PixelData
    ds.preamble = b"PHI-PREAMBLE-5T".ljust(128, b"\x00")

    report = deidentify(ds, options)
    written = _written(ds)
    report_text = _report_text(report)
    for keyword, value in originals.items():
        assert value.encode() not in written, keyword
        assert value not in report_text, keyword
    assert b"PHI-PREAMBLE-5T" not in written
    assert "(preamble)" in report.replaced
    back = pydicom.dcmread(BytesIO(written))
    assert back.PixelData == pixels
    assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID
    assert back.SOPClassUID == ComputedRadiographyImageStorage
    assert back.PatientAge == "064Y"
    assert report.pixel_review_needed


# --- files de-identified here before (an exported case library) ---------------------------

_LINKS = ("PatientID", "StudyDate", "ContentDate", "StudyInstanceUID", "SeriesInstanceUID",
          "SOPInstanceUID")


def _links(ds: Dataset) -> tuple[str, ...]:
    return (
        *(str(ds.get(k, "")) for k in _LINKS),
        str(ds.file_meta.MediaStorageSOPInstanceUID),
        str(ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID),
    )


def test_own_output_keeps_its_pseudonym_dates_and_uids_when_asked(case):
    deidentify(case, DeidOptions(secret=SECRET))
    first = _links(case)
    again = deidentify(case, DeidOptions(secret=OTHER_SECRET, keep_own_pseudonyms=True))
    assert _links(case) == first
    assert again.pseudonyms_kept is True
    assert case.PatientIdentityRemoved == "YES"


def test_own_output_is_pseudonymised_again_without_the_option(case):
    """A plain upload is never trusted to be de-identified already."""
    deidentify(case, DeidOptions(secret=SECRET))
    first = _links(case)
    report = deidentify(case, DeidOptions(secret=OTHER_SECRET))
    assert report.pseudonyms_kept is False
    assert all(a != b for a, b in zip(_links(case), first, strict=True) if a)


def test_a_file_only_claiming_to_be_deidentified_is_cleaned_in_full(case):
    deidentify(case, DeidOptions(secret=SECRET))
    case.PatientID = "REAL-MRN-4711"  # not a pseudonym: nothing is kept
    case.PatientName = "SMUGGLED^NAME"
    case.OtherPatientIDs = "REAL-MRN-4712"
    case.StudyInstanceUID = STUDY_UID  # an original UID, not our form
    before = case.StudyDate
    report = deidentify(case, DeidOptions(secret=OTHER_SECRET, keep_own_pseudonyms=True))
    assert report.pseudonyms_kept is False
    assert case.PatientID.startswith("ANON-") and case.PatientName == ""
    assert "OtherPatientIDs" not in case
    assert case.StudyInstanceUID != STUDY_UID and case.StudyDate != before


def test_kept_pseudonyms_do_not_keep_original_uids_or_added_names(case):
    deidentify(case, DeidOptions(secret=SECRET))
    pseudonym = case.PatientID
    case.PatientName = "SMUGGLED^NAME"
    case.SeriesInstanceUID = SERIES_UID  # not in the form new_uid writes: replaced
    deidentify(case, DeidOptions(secret=OTHER_SECRET, keep_own_pseudonyms=True))
    assert case.PatientID == pseudonym and case.PatientName == ""
    assert case.SeriesInstanceUID == new_uid(SERIES_UID, OTHER_SECRET)


def test_dates_removed_before_stay_removed(case):
    deidentify(case, DeidOptions(secret=SECRET, dates="remove"))
    case.StudyDate = "20230115"  # added since: the file says dates were removed
    report = deidentify(case, DeidOptions(secret=OTHER_SECRET, keep_own_pseudonyms=True))
    assert report.pseudonyms_kept is True
    assert not case.get("StudyDate")
    assert case.LongitudinalTemporalInformationModified == "REMOVED"


# --- only values checked against a registry or a value set are kept ----------------------------


def _raw(ds: Dataset, keyword: str, vr: str, value: bytes) -> None:
    """Plant a value as read from a file (pydicom refuses invalid ones when set)."""
    if len(value) % 2:
        value += b"\x00" if vr == "UI" else b" "
    tag = Tag(keyword)
    ds[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)


def test_free_text_in_kept_attributes_is_replaced_or_dropped(make_case, options):
    ds = make_case()
    ds.file_meta.ImplementationClassUID = ROOT + "4242"
    ds.file_meta.ImplementationVersionName = "PHI_IMPLVER"
    _raw(ds, "BodyPartExamined", "CS", b"PHI CHEST WARD 7")
    _raw(ds, "RescaleType", "LO", b"PHI-RESCALE")
    _raw(ds, "ConversionType", "CS", b"PHI CONV")
    ds.WindowCenterWidthExplanation = "PHI-WINDOWLABEL"

    report = deidentify(ds, options)

    written = _written(ds)
    for needle in (b"4242", b"PHI_IMPLVER", b"PHI", b"WARD"):
        assert needle not in written, needle
    assert ds.file_meta.ImplementationClassUID == deid_module.IMPLEMENTATION_CLASS_UID
    assert ds.file_meta.ImplementationVersionName == deid_module.IMPLEMENTATION_VERSION_NAME
    assert UID(deid_module.IMPLEMENTATION_CLASS_UID).is_valid
    for keyword in ("RescaleType", "ConversionType", "WindowCenterWidthExplanation",
                    "ManufacturerModelName"):
        assert keyword not in ds, keyword
        assert keyword in report.removed, keyword
    assert ds.Manufacturer == "" and ds.BodyPartExamined == ""  # Type 2: kept, empty
    assert {"Manufacturer", "BodyPartExamined"} <= set(report.emptied)
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY"]  # value 3 is free text
    assert [len(ds.WindowCenter), len(ds.WindowWidth)] == [2, 2]


def test_codes_unknown_to_the_registry_are_dropped(make_case, options):
    ds = make_case()
    ds.AnatomicRegionSequence = Sequence([_code("PHI-99", "99LOCAL", "ward 7 chest")])
    ds.ViewCodeSequence[0].ViewModifierCodeSequence[0].CodeValue = "R-99999"
    report = deidentify(ds, options)
    assert len(ds.AnatomicRegionSequence) == 0  # Type 2: kept, empty
    assert len(ds.ViewCodeSequence[0].ViewModifierCodeSequence) == 0
    assert "AnatomicRegionSequence" in report.replaced
    assert b"ward 7" not in _written(ds)


def test_values_kept_are_valid_for_their_vr_and_rules(make_case, options):
    ds = make_case()
    ds.VOILUTFunction = "LINEAR"
    _raw(ds, "WindowCenter", "DS", b"nan\\1000\\40")
    _raw(ds, "WindowWidth", "DS", b"400\\-5\\80")
    _raw(ds, "PixelSpacing", "DS", b"0.1\\0.1\\0.1")  # wrong multiplicity
    _raw(ds, "KVP", "DS", b"inf")
    _raw(ds, "PatientSize", "DS", b"nan")
    _raw(ds, "SeriesNumber", "IS", b"1.5")
    _raw(ds, "ImagerPixelSpacing", "DS", b"0.143\\0.143")
    _raw(ds, "ViewPosition", "CS", b"PA ERECT")
    _raw(ds, "FrameOfReferenceUID", "UI", FRAME_UID.encode() + b"\\" + STUDY_UID.encode())

    report = deidentify(ds, options)

    # Only the valid pair of the three survives (the others: not a number, negative width).
    assert [float(v) for v in [ds.WindowCenter]] == [40.0]
    assert float(ds.WindowWidth) == 80.0
    for keyword in ("PixelSpacing", "KVP", "PatientSize", "FrameOfReferenceUID"):
        assert keyword not in ds, keyword
        assert keyword in report.removed, keyword
    assert ds.SeriesNumber == "" and ds.ViewPosition == ""  # Type 2: kept, empty
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.143, 0.143]


def test_an_invalid_type_1_value_of_a_dx_image_refuses_it_naming_the_attribute(
    make_case, options
):
    ds = make_case(modality="DX")
    _raw(ds, "RescaleSlope", "DS", b"PHI0")
    with pytest.raises(DeidentificationError) as raised:
        deidentify(ds, options)
    message = str(raised.value)
    assert "RescaleSlope (0028,1053)" in message
    assert "number" in message
    assert "PHI" not in message


def test_a_sop_class_outside_the_registry_is_refused_naming_it(make_case, options):
    ds = make_case()
    _raw(ds, "SOPClassUID", "UI", b"1.2.840.99999.4242")
    with pytest.raises(DeidentificationError) as raised:
        deidentify(ds, options)
    assert str(raised.value) == "SOPClassUID (0008,0016) is not a registered DICOM SOP Class"


def test_recording_takes_constant_work_per_private_element(make_case, options, monkeypatch):
    """De-identification is linear in the number of private elements.

    Counted, not timed: every attribute name the walk records is a string that counts the
    comparisons and hash look-ups made with it. Searching a list of the names recorded so
    far (as a report list would) costs one comparison per name, so the count would grow
    with the square of the elements; a keyed record costs one look-up.
    """
    operations = 0
    budget = 0

    class CountingName(str):
        __slots__ = ()

        def __eq__(self, other: object) -> bool:
            nonlocal operations
            operations += 1
            if operations > budget:
                raise AssertionError("more than a constant amount of work per element")
            return str.__eq__(self, other)

        def __hash__(self) -> int:
            nonlocal operations
            operations += 1
            return str.__hash__(self)

    original_name = deid_module._name
    monkeypatch.setattr(deid_module, "_name", lambda tag: CountingName(original_name(tag)))

    def work(elements: int) -> int:
        nonlocal operations, budget
        ds = make_case()
        for group in range(elements // 200):
            block = ds.private_block(0x0011 + 2 * group, f"VENDOR {group}", create=True)
            for element in range(200):
                block.add_new(element, "LO", "x")
        operations, budget = 0, 50 * elements
        report = deidentify(ds, options)
        assert report.private_tags_removed >= elements
        return operations

    small, large = work(2_000), work(20_000)
    assert large <= 12 * small, (small, large)
