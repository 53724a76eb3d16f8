"""The part of a chest radiograph's header the library keeps, and the values each may hold.

The Annex E profile (``deidentify``) removes what is known to identify; this allow-list then
keeps only what a teaching library needs, and ``deid_values`` keeps only values that are
checked against a registry or against the value sets and rules tabulated here, so that free
text typed at a modality (a name in a window label, a ward in a code meaning, a note in a
manufacturer field) cannot ride along. Tables only: no code that looks at a dataset.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from app.sentences import N_

__all__ = [
    "ALLOWED",
    "ALLOWED_IN_ITEMS",
    "CODE_SEQUENCES",
    "DX_TYPE_1",
    "KEPT_EMPTY",
    "NUMBERS",
    "TYPE_1",
    "TYPE_2",
    "VALUE_SETS",
]


# What a teaching library needs from a chest radiograph's header. Anything else left by the
# Annex E profile (codes with free-text meanings, device notes, sequences the profile does not
# list) is removed as well: an allow-list is the only way to be sure that PHI hiding in an
# attribute nobody thought of does not reach the library.
ALLOWED = frozenset(
    {
        "SpecificCharacterSet",
        "ImageType",
        "SOPClassUID",
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
        "StudyDate",
        "SeriesDate",
        "AcquisitionDate",
        "ContentDate",
        "Modality",
        "ConversionType",
        "PresentationIntentType",
        "Manufacturer",
        "PatientName",
        "PatientID",
        "PatientSex",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "LongitudinalTemporalInformationModified",
        "BodyPartExamined",
        "ViewPosition",
        "ImageLaterality",
        "Laterality",
        "PatientOrientation",
        "SeriesNumber",
        "InstanceNumber",
        "KVP",
        "ExposureTime",
        "XRayTubeCurrent",
        "Exposure",
        "ExposureInuAs",
        "DistanceSourceToDetector",
        "DistanceSourceToPatient",
        "EstimatedRadiographicMagnificationFactor",
        "ImagerPixelSpacing",
        "PixelSpacing",
        "PixelSpacingCalibrationType",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "NumberOfFrames",
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "PlanarConfiguration",
        "PixelAspectRatio",
        "SmallestImagePixelValue",
        "LargestImagePixelValue",
        "PixelPaddingValue",
        "PixelPaddingRangeLimit",
        "PixelIntensityRelationship",
        "PixelIntensityRelationshipSign",
        "WindowCenter",
        "WindowWidth",
        "VOILUTFunction",
        "RescaleIntercept",
        "RescaleSlope",
        "RescaleType",
        "PresentationLUTShape",
        "BurnedInAnnotation",
        "RecognizableVisualFeatures",
        "LossyImageCompression",
        "LossyImageCompressionRatio",
        "LossyImageCompressionMethod",
        "PixelData",
        # Sequences, with the attributes kept inside their items:
        "VOILUTSequence",
        "ModalityLUTSequence",
        "DeidentificationMethodCodeSequence",
        "ViewCodeSequence",
        "AnatomicRegionSequence",
        "ReferencedImageSequence",
        "AcquisitionDateTime",
    }
)
ALLOWED_IN_ITEMS = frozenset(
    {
        "LUTDescriptor",
        "LUTData",
        "ModalityLUTType",
        "ViewModifierCodeSequence",
        "CodeValue",
        "CodingSchemeDesignator",
        "CodeMeaning",
        "ReferencedSOPClassUID",
        "ReferencedSOPInstanceUID",
    }
)

# Type 2 attributes the profile empties: kept, always empty, so the file stays valid DICOM.
KEPT_EMPTY = frozenset(
    {
        "PatientBirthDate",
        "StudyTime",
        "ContentTime",
        "AccessionNumber",
        "ReferringPhysicianName",
        "StudyID",
    }
)

# Defined and enumerated terms (CS), by keyword, with the PS3.3 section that lists them.
VALUE_SETS: dict[str, frozenset[str]] = {
    # C.12.1.1.2: single-byte and multi-byte character sets.
    "SpecificCharacterSet": frozenset(
        {
            "ISO_IR 6", "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 144",
            "ISO_IR 127", "ISO_IR 126", "ISO_IR 138", "ISO_IR 148", "ISO_IR 203", "ISO_IR 13",
            "ISO_IR 166", "ISO_IR 192", "GB18030", "GBK", "ISO 2022 IR 6", "ISO 2022 IR 100",
            "ISO 2022 IR 101", "ISO 2022 IR 109", "ISO 2022 IR 110", "ISO 2022 IR 144",
            "ISO 2022 IR 127", "ISO 2022 IR 126", "ISO 2022 IR 138", "ISO 2022 IR 148",
            "ISO 2022 IR 203", "ISO 2022 IR 13", "ISO 2022 IR 166", "ISO 2022 IR 87",
            "ISO 2022 IR 159", "ISO 2022 IR 149", "ISO 2022 IR 58",
        }
    ),
    "Modality": frozenset({"CR", "DX"}),  # C.7.3.1.1.1, limited to what the portal accepts
    # C.8.6.1.1 (SC Equipment): how a secondary capture was made.
    "ConversionType": frozenset({"DV", "DI", "DF", "WSD", "SD", "SI", "DRW", "SYN"}),
    "PresentationIntentType": frozenset({"FOR PRESENTATION", "FOR PROCESSING"}),  # C.8.11.1
    # PS3.16 Annex L (Body Part Examined column), the regions a chest radiograph shows.
    "BodyPartExamined": frozenset(
        {"CHEST", "THORAX", "LUNG", "HEART", "RIB", "STERNUM", "CLAVICLE", "SHOULDER",
         "TSPINE", "CSPINE", "NECK", "ABDOMEN", "CHESTABDOMEN", "WHOLEBODY", "MEDIASTINUM"}
    ),
    # C.8.11.5.1.1 (DX Positioning) / C.8.1.1 (CR Series): the radiographic view.
    "ViewPosition": frozenset({"AP", "PA", "LL", "RL", "RLD", "LLD", "RLO", "LLO"}),
    "ImageLaterality": frozenset({"R", "L", "U", "B"}),  # C.7.6.1 / C.8.11.2
    "Laterality": frozenset({"R", "L"}),  # C.7.3.1.1.2
    "PixelSpacingCalibrationType": frozenset({"GEOMETRY", "FIDUCIAL"}),  # C.7.6.3.1.8
    "PixelIntensityRelationship": frozenset({"LIN", "LOG", "DISP"}),  # C.8.11.3.1.2
    "VOILUTFunction": frozenset({"LINEAR", "LINEAR_EXACT", "SIGMOID"}),  # C.11.2.1.3
    # C.11.1.1.2: units of the output of the rescale (DX: "US" only, C.8.11.3.1.2).
    "RescaleType": frozenset({"US", "OD", "HU", "MGML", "Z_EFF", "ED", "EDW", "HU_MOD", "PCT"}),
    "ModalityLUTType": frozenset({"US", "OD", "HU", "MGML", "Z_EFF", "ED", "EDW", "HU_MOD",
                                  "PCT"}),
    "PresentationLUTShape": frozenset({"IDENTITY", "INVERSE"}),  # C.11.6.1.2
    "BurnedInAnnotation": frozenset({"YES", "NO"}),  # C.7.6.1 (General Image)
    "RecognizableVisualFeatures": frozenset({"YES", "NO"}),
    "LossyImageCompression": frozenset({"00", "01"}),  # C.7.6.1.1.5
    "LossyImageCompressionMethod": frozenset(  # C.7.6.1.1.5.1
        {"ISO_10918_1", "ISO_14495_1", "ISO_15444_1", "ISO_15444_15", "ISO_18181_1",
         "ISO_13818_2", "ISO_14496_10", "ISO_23008_2"}
    ),
    # Written by the de-identification itself (PS3.15 Annex E, C.7.1.1).
    "PatientIdentityRemoved": frozenset({"YES", "NO"}),
    "LongitudinalTemporalInformationModified": frozenset({"UNMODIFIED", "MODIFIED", "REMOVED"}),
}
# C.7.6.1.1.2 (General Image) and C.8.11.1.1.1 (DX Image): value 1 and value 2 of Image
# Type. Value 3 and beyond are implementation specific (free text in practice): dropped.
IMAGE_TYPE_1 = frozenset({"ORIGINAL", "DERIVED"})
IMAGE_TYPE_2 = frozenset({"PRIMARY", "SECONDARY"})
# C.7.6.1.1.1: each value of Patient Orientation is made of these letters (biped).
ORIENTATION_RE = re.compile(r"^[APRLHF]{1,3}$")
STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "PN", "SH", "TM", "UI"})
IS_RE = re.compile(r"^[+-]?\d{1,12}$")

# Free text with no value set: emptied (Type 2 in General Equipment, C.7.5.1) or removed.
# The only manufacturer kept is the portal's own phantom marker (app.cases.dicom_build).
OWN_MANUFACTURERS = frozenset({"CXR Academy phantom"})

# Attributes written by the de-identification itself after the allow-list (not vetted).
OWN = frozenset({"DeidentificationMethod", "PatientID", "PatientName", "PatientSex",
                  "PatientAge", "PatientSize", "PatientWeight"})


def positive(x: float) -> bool:
    return x > 0


def not_negative(x: float) -> bool:
    return x >= 0


def any_number(x: float) -> bool:
    return True


def nonzero(x: float) -> bool:
    return x != 0


# Numbers: (lowest VM, highest VM or 0 for "n", rule on each value, the rule in words).
NUMBERS: dict[str, tuple[int, int, Callable[[float], bool], str]] = {
    "KVP": (1, 1, positive, N_("a positive number")),
    "ExposureTime": (1, 1, not_negative, N_("a number of milliseconds, not negative")),
    "XRayTubeCurrent": (1, 1, not_negative, N_("a current, not negative")),
    "Exposure": (1, 1, not_negative, N_("an exposure, not negative")),
    "ExposureInuAs": (1, 1, not_negative, N_("an exposure, not negative")),
    "DistanceSourceToDetector": (1, 1, positive, N_("a positive distance")),
    "DistanceSourceToPatient": (1, 1, positive, N_("a positive distance")),
    "EstimatedRadiographicMagnificationFactor": (1, 1, positive, N_("a positive factor")),
    "ImagerPixelSpacing": (2, 2, positive, N_("two positive spacings")),
    "PixelSpacing": (2, 2, positive, N_("two positive spacings")),
    "PixelAspectRatio": (2, 2, positive, N_("two positive integers")),
    "RescaleIntercept": (1, 1, any_number, N_("one number")),
    "RescaleSlope": (1, 1, nonzero, N_("one number other than zero")),
    "SeriesNumber": (1, 1, any_number, N_("one integer")),
    "InstanceNumber": (1, 1, any_number, N_("one integer")),
    "LossyImageCompressionRatio": (1, 0, positive, N_("positive ratios")),
    "PixelIntensityRelationshipSign": (1, 1, lambda x: x in (1, -1), N_("1 or -1")),
}

# Type 1 in the DX IOD (PS3.3 A.26): an invalid value there cannot simply be dropped.
# A value listed here is the one the IOD prescribes, used in place of an invalid one.
DX_TYPE_1: dict[str, list[str] | str | None] = {
    "ImageType": ["DERIVED", "PRIMARY"],  # the header was changed by de-identification
    "RescaleType": "US",  # C.8.11.3.1.2: enumerated value US
    "RescaleIntercept": None,
    "RescaleSlope": None,
    "ImagerPixelSpacing": None,
    "PixelIntensityRelationship": None,
    "PixelIntensityRelationshipSign": None,
    "PresentationLUTShape": None,
    "LossyImageCompression": None,
    "ImageLaterality": None,
    "PresentationIntentType": None,
    "PatientOrientation": None,  # Type 1C for DX images for presentation (C.8.11.1)
    "BurnedInAnnotation": None,  # the pixel review depends on it: not guessed
}

# Type 1 in the Secondary Capture IOD (PS3.3 A.8.1, SC Equipment C.8.6.1).
SC_TYPE_1: dict[str, list[str] | str | None] = {"ConversionType": None}
TYPE_1 = {"DX": DX_TYPE_1, "SC": SC_TYPE_1}
# Type 2 in the CR and DX IODs: an invalid value is emptied, the attribute stays.
TYPE_2 = frozenset({"SeriesNumber", "InstanceNumber", "Manufacturer", "PatientOrientation",
                    "Laterality", "StudyDate", "BodyPartExamined", "ViewPosition"})

# Registry checks for coded entries: PS3.16 CIDs per sequence (DX View, DX View Modifier,
# DX Anatomy Imaged and Common Anatomic Regions).
CODE_SEQUENCES: dict[str, frozenset[int]] = {
    "ViewCodeSequence": frozenset({4010}),
    "ViewModifierCodeSequence": frozenset({4011}),
    "AnatomicRegionSequence": frozenset({4009, 4031}),
}
