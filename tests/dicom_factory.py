"""Small DICOM files built in the tests: good ones, hostile ones, and ones full of PHI."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)

# Distinctive strings planted in every often-leaked tag; none may survive import.
PHI = {
    "PatientName": "Zebulon^Quarrington^PHIQX",
    "PatientID": "PHI-ID-K2J9X7",
    "OtherPatientIDs": "PHI-OTHER-77QX",
    "PatientBirthDate": "19490317",
    "PatientAddress": "17 PHI-STREET Quarrytown",
    "InstitutionName": "PHI-HOSPITAL-Marrowdale",
    "InstitutionAddress": "99 PHI-INSTADDR Road",
    "ReferringPhysicianName": "Doctor^PHIREFER",
    "OperatorsName": "Operator^PHIOPER",
    "StationName": "PHI-STATION-9",
    "DeviceSerialNumber": "PHI-SERIAL-31337",
    "AccessionNumber": "PHIACC4242",
    "StudyID": "PHISTUDY77",
    "StudyDescription": "PHI-STUDYDESC chest of Quarrington",
    "SeriesDescription": "PHI-SERIESDESC",
    "ImageComments": "PHI-COMMENT patient Quarrington",
    "StudyDate": "20210405",
    "SeriesDate": "20210405",
    "AcquisitionDate": "20210405",
    "ContentDate": "20210405",
    "StudyTime": "101112",
}
NESTED_PHI = "PHI-NESTED-Quarrington-deep"
PRIVATE_PHI = "PHI-PRIVATE-Quarrington"


def cr_dataset(
    rows: int = 64,
    columns: int = 48,
    *,
    modality: str = "CR",
    bits_stored: int = 12,
    photometric: str = "MONOCHROME2",
    seed: int = 0,
    phi: bool = False,
    burned_in: str | None = "NO",
    **extra: Any,
) -> Dataset:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 2**bits_stored, size=(rows, columns), dtype=np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientSex = "F"
    ds.PatientAge = "045Y"
    ds.ViewPosition = "PA"
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.WindowCenter = 2**bits_stored // 2
    ds.WindowWidth = 2**bits_stored
    ds.PixelData = pixels.tobytes()
    if phi:
        plant_phi(ds)
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def plant_phi(ds: Dataset) -> None:
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    del ds.PatientAge  # the age must be derived from birth and study dates
    inner = Dataset()
    inner.PatientName = NESTED_PHI
    inner.AccessionNumber = NESTED_PHI
    middle = Dataset()
    middle.RequestedProcedureDescription = NESTED_PHI
    middle.ReferencedStudySequence = Sequence([inner])
    ds.RequestAttributesSequence = Sequence([middle])
    code = Dataset()
    code.CodeMeaning = NESTED_PHI
    code.CodeValue = "X1"
    code.CodingSchemeDesignator = "99PHI"
    ds.ProcedureCodeSequence = Sequence([code])
    block = ds.private_block(0x0011, "PHI CREATOR", create=True)
    block.add_new(0x01, "LO", PRIVATE_PHI)


def to_bytes(ds: Dataset, *, preamble: bool = True) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=preamble)
    return out.getvalue()


def phi_strings() -> list[bytes]:
    """Every planted value as it could appear in storage (also parts of names)."""
    values = [v for k, v in PHI.items() if "Date" not in k and "Time" not in k]
    values += [NESTED_PHI, PRIVATE_PHI, "Quarrington", "Zebulon", "19490317", "20210405", "PHIQX"]
    return [v.encode() for v in values]


# Free text hidden where an allow-list keeps attributes (coded entries, device fields,
# labels, the writing application's identity): none may survive import.
CODED_PHI = {
    "window": "PHIWINDOW Quarrington",
    "view_meaning": "PHI-VIEWMEANING",
    "modifier_meaning": "PHI-MODMEANING",
    "region_meaning": "PHI-REGIONMEANING",
    "scheme_version": "PHI-SCHEMEVERSION",
    "manufacturer": "PHI-MAKER Marrowdale",
    "model": "PHI-MODEL-X",
    "image_type": "PHIIMAGETYPE",
    "body_part": "PHIBODYPART",
    "rescale_type": "PHIRESCALE",
    "conversion_type": "PHICONV",
    "implementation_uid": "1.2.840.99999.8888.1",
    "implementation_version": "PHIIMPLVER",
}


def _coded(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    item.CodingSchemeVersion = CODED_PHI["scheme_version"]
    return item


def plant_coded_phi(ds: Dataset) -> None:
    """Registry codes with free-text meanings, and free text in the kept attributes."""
    ds.WindowCenterWidthExplanation = CODED_PHI["window"]
    view = _coded("272479007", "SCT", CODED_PHI["view_meaning"])  # postero-anterior
    view.ViewModifierCodeSequence = Sequence(
        [_coded("399196006", "SCT", CODED_PHI["modifier_meaning"])]  # cephalad
    )
    ds.ViewCodeSequence = Sequence([view])
    ds.AnatomicRegionSequence = Sequence(
        [_coded("816094009", "SCT", CODED_PHI["region_meaning"])]  # chest
    )
    ds.Manufacturer = CODED_PHI["manufacturer"]
    ds.ManufacturerModelName = CODED_PHI["model"]
    ds.ImageType = ["ORIGINAL", "PRIMARY", CODED_PHI["image_type"]]
    ds.BodyPartExamined = CODED_PHI["body_part"]
    ds.RescaleType = CODED_PHI["rescale_type"]
    ds.ConversionType = CODED_PHI["conversion_type"]
    ds.file_meta.ImplementationClassUID = CODED_PHI["implementation_uid"]
    ds.file_meta.ImplementationVersionName = CODED_PHI["implementation_version"]


def coded_phi_strings() -> list[bytes]:
    return [v.encode() for v in CODED_PHI.values()] + [b"99999.8888"]
