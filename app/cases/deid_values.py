"""Checks of the values kept by the allow-list (``deid_allowlist``), a pure module.

Each kept value is checked against a registry or a value set, so that free text typed at a
modality (a name in a window label, a ward in a code meaning, a note in a manufacturer
field) cannot ride along:

* coded strings (CS) against the defined or enumerated terms of PS3.3, cited by section;
* coded entries against pydicom's copy of the PS3.16 concept registry; the code meaning is
  replaced by the registry's own and the coding scheme version is dropped;
* SOP Class UIDs against pydicom's copy of the PS3.6 UID registry;
* numbers (DS, IS) against the VR's form (PS3.5 6.2), finiteness, the attribute's value
  multiplicity and range;
* free-text attributes (Manufacturer, ManufacturerModelName, WindowCenterWidthExplanation)
  have no value set: they are emptied where the IOD needs them (Type 2) and removed
  otherwise; the only manufacturer kept is the portal's own phantom marker.

An invalid value is emptied (Type 2), replaced by the value the IOD prescribes when there is
exactly one (DX Rescale Type "US"), or removed (Type 3).  A Type 1 attribute of the DX IOD
that cannot be repaired refuses the file (``InvalidValue``, naming the attribute and why,
never the value).  Pure module: no I/O, no logging.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pydicom.config
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.sr._concepts_dict import concepts as _SR_CONCEPTS
from pydicom.sr._snomed_dict import mapping as _SNOMED_MAPPING
from pydicom.tag import BaseTag
from pydicom.uid import UID_dictionary
from pydicom.valuerep import is_valid_ds, validate_value

from app.cases.deid_allowlist import (
    CODE_SEQUENCES,
    IMAGE_TYPE_1,
    IMAGE_TYPE_2,
    IS_RE,
    KEPT_EMPTY,
    NUMBERS,
    ORIENTATION_RE,
    OWN,
    OWN_MANUFACTURERS,
    STRING_VRS,
    TYPE_1,
    TYPE_2,
    VALUE_SETS,
)
from app.sentences import N_, say

__all__ = [
    "InvalidValue",
    "Note",
    "label",
    "registry_meaning",
    "vet_code_item",
    "vet_element",
    "vet_sequence",
    "vet_window",
]

# note(outcome, name): outcome is "replaced", "emptied" or "removed"; name as in the report.
Note = Callable[[str, str], None]


class InvalidValue(ValueError):
    """A Type 1 attribute holds a value that cannot be kept or repaired.

    The message names the attribute (keyword and tag) and the rule, never the value.
    """


def _concept_index() -> dict[tuple[str, str], list[tuple[str, frozenset[int]]]]:
    """(scheme, code) -> every (meaning, CIDs) the registry lists for it.

    One code can carry several meanings: the SNOMED name and, per context group, the
    PS3.16 one (399196006 is "cephalad" as a view modifier, "caudo-cranial" as a view).
    """
    index: dict[tuple[str, str], list[tuple[str, frozenset[int]]]] = {}
    for scheme, names in _SR_CONCEPTS.items():
        for codes in names.values():
            entries: dict[str, tuple[str, list[int]]] = codes  # type: ignore[assignment]
            for code, (meaning, cids) in entries.items():
                index.setdefault((scheme, code), []).append((meaning, frozenset(cids)))
    return index


_CONCEPTS = _concept_index()


def registry_meaning(scheme: str, code: str, cids: frozenset[int]) -> str | None:
    """The registry's meaning of a code in these CIDs, or None when it is not one of them.

    Legacy SNOMED-RT codes (SRT) are looked up through their SNOMED CT equivalent. A
    concept the registry lists with no CID at all (some anatomy) is accepted with its
    SNOMED name: pydicom's copy of PS3.16 does not record every membership.
    """
    if scheme == "SRT":
        code = _SNOMED_MAPPING["SRT"].get(code, "")
        scheme = "SCT"
    entries = _CONCEPTS.get((scheme, code), [])
    for meaning, member_of in entries:
        if member_of & cids:
            return meaning
    if entries and not any(member_of for _, member_of in entries):
        return entries[0][0]
    return None


# --- values ------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _values(elem: DataElement) -> list[Any]:
    if elem.value is None or elem.value == "":
        return []
    if isinstance(elem.value, MultiValue | list | tuple):
        return list(elem.value)
    return [elem.value]


def _set(elem: DataElement, values: list[Any]) -> None:
    elem.value = values[0] if len(values) == 1 else values


def _number(value: Any, vr: str) -> float | None:
    """The value as a finite number when it is valid for its VR (PS3.5 6.2), else None."""
    if isinstance(value, int | float) and vr not in ("DS", "IS"):
        number = float(value)
    else:
        text = _text(getattr(value, "original_string", value))
        if vr == "DS" and not (is_valid_ds(text) and len(text) <= 16):
            return None
        if vr == "IS" and not (IS_RE.match(text) and -(2**31) <= int(text) < 2**31):
            return None
        try:
            number = float(text)
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def label(tag: BaseTag) -> str:
    """Keyword and tag, as refusals name an attribute: "RescaleSlope (0028,1053)"."""
    keyword = keyword_for_tag(tag)
    tag_text = f"({tag.group:04X},{tag.element:04X})"
    return f"{keyword} {tag_text}" if keyword else tag_text


# A refusal names the attribute (%(attribute)s: keyword and tag) and what it must hold.
MUST_HOLD = N_("%(attribute)s must hold %(expected)s")


def _details(elem: DataElement, keyword: str) -> dict[str, str]:
    """The parameters of a refusal beside the attribute: what a number must be (a phrase of
    deid_allowlist.NUMBERS, itself a message id) and the value representation."""
    return {"expected": NUMBERS[keyword][3] if keyword in NUMBERS else "", "vr": str(elem.VR)}


def _numbers_ok(elem: DataElement, keyword: str) -> tuple[bool, str]:
    low, high, rule, _words = NUMBERS[keyword]
    values = _values(elem)
    if not values:
        return True, ""
    if len(values) < low or (high and len(values) > high):
        return False, MUST_HOLD
    for value in values:
        number = _number(value, elem.VR)
        if number is None or not rule(number):
            return False, MUST_HOLD
    return True, ""


def _codes_ok(elem: DataElement, keyword: str) -> tuple[bool, str]:
    values = [_text(v) for v in _values(elem)]
    if not values:
        return True, ""
    terms = VALUE_SETS[keyword]
    if keyword == "SpecificCharacterSet":
        ok = all(v in terms or (i == 0 and not v) for i, v in enumerate(values))
    else:
        ok = len(values) == 1 and values[0] in terms
    return ok, N_("%(attribute)s is not one of the defined terms")


def _vr_ok(elem: DataElement) -> bool:
    """Length and character repertoire of a string VR (PS3.5 6.2), as pydicom checks them.

    Numbers (DS, IS) are checked by _numbers_ok, binary VRs need no check.
    """
    if elem.VR not in STRING_VRS:
        return True
    try:
        for value in _values(elem):
            validate_value(elem.VR, value, pydicom.config.RAISE)
    except (ValueError, TypeError):
        return False
    return True


# --- vetting -----------------------------------------------------------------------------


def _invalid(
    ds: Dataset, elem: DataElement, keyword: str, why: str, name: str, iod: str,
    note: Note,
) -> None:
    """Empty, repair, remove or refuse an attribute whose value failed its check."""
    type_1 = TYPE_1.get(iod, {})
    if keyword in type_1:
        fallback = type_1[keyword]
        if fallback is None:
            raise InvalidValue(say(why, attribute=label(elem.tag), **_details(elem, keyword)))
        elem.value = fallback
        note("replaced", name)
    elif keyword in TYPE_2:
        elem.value = "" if elem.VR != "SQ" else Sequence([])
        note("emptied", name)
    else:
        del ds[elem.tag]
        note("removed", name)


def vet_element(ds: Dataset, elem: DataElement, name: str, iod: str, note: Note) -> None:
    """Check one kept top-level attribute (not a sequence); see the module docstring."""
    keyword = keyword_for_tag(elem.tag)
    if keyword in OWN or keyword in KEPT_EMPTY or keyword in ("WindowCenter", "WindowWidth"):
        return  # written by the de-identification, or checked by vet_window
    if keyword == "Manufacturer":
        if _text(elem.value) and _text(elem.value) not in OWN_MANUFACTURERS:
            elem.value = ""
            note("emptied", name)
        return
    if keyword == "SOPClassUID":
        _vet_sop_class(ds, elem, name, iod, note)
        return
    if keyword == "ImageType":
        _vet_image_type(ds, elem, name, iod, note)
        return
    ok, why = True, ""
    if keyword in NUMBERS:
        ok, why = _numbers_ok(elem, keyword)
    elif keyword in VALUE_SETS:
        ok, why = _codes_ok(elem, keyword)
    elif keyword == "PatientOrientation":
        values = [_text(v) for v in _values(elem)]
        ok = not values or (len(values) == 2 and all(ORIENTATION_RE.match(v) for v in values))
        why = N_("%(attribute)s must be two directions made of A, P, R, L, H and F")
    elif elem.VR in ("UI", "DA", "DT", "TM"):
        ok, why = len(_values(elem)) <= 1, N_("%(attribute)s must hold one value")
    if ok and not _vr_ok(elem):
        ok, why = False, N_("%(attribute)s is not a valid %(vr)s value")
    if not ok:
        _invalid(ds, elem, keyword, why, name, iod, note)


def vet_window(ds: Dataset, note: Note) -> None:
    """Keep only the centre/width pairs that are valid (C.11.2.1.2), both or neither.

    The width must be at least 1 for LINEAR (the default) and positive otherwise; a pair
    whose centre or width is not a finite number is dropped, and so are widths without a
    centre. The explanations are free text and were removed with the allow-list.
    """
    if "WindowCenter" not in ds and "WindowWidth" not in ds:
        return
    function = _text(ds.get("VOILUTFunction")) or "LINEAR"
    centers = _values(ds["WindowCenter"]) if "WindowCenter" in ds else []
    widths = _values(ds["WindowWidth"]) if "WindowWidth" in ds else []
    kept: list[tuple[Any, Any]] = []
    for center, width in zip(centers, widths, strict=False):
        c, w = _number(center, "DS"), _number(width, "DS")
        if c is None or w is None or not (w >= 1 if function == "LINEAR" else w > 0):
            continue
        kept.append((center, width))
    if len(kept) == len(centers) == len(widths):
        return
    for keyword, column in (("WindowCenter", 0), ("WindowWidth", 1)):
        if kept:
            _set(ds[keyword], [pair[column] for pair in kept])
            note("replaced", keyword)
        elif keyword in ds:
            del ds[keyword]
            note("removed", keyword)


def _is_sop_class(value: Any) -> bool:
    if isinstance(value, MultiValue | list | tuple):
        return False
    return UID_dictionary.get(_text(value), ("", ""))[1] == "SOP Class"


def _vet_sop_class(
    ds: Dataset, elem: DataElement, name: str, iod: str, note: Note
) -> None:
    """A SOP Class UID must be a registered SOP Class (PS3.6 Annex A).

    A private SOP class names a vendor's product line, and no IOD says which attributes
    its files must hold: such a file is refused rather than relabelled as CR or DX.
    """
    if not _is_sop_class(elem.value):
        raise InvalidValue(say(N_("%(attribute)s is not a registered DICOM SOP Class"),
                               attribute=label(elem.tag)))


def _vet_image_type(
    ds: Dataset, elem: DataElement, name: str, iod: str, note: Note
) -> None:
    values = [_text(v).upper() for v in _values(elem)]
    if not values:
        return
    if len(values) >= 2 and values[0] in IMAGE_TYPE_1 and values[1] in IMAGE_TYPE_2:
        if len(values) > 2:
            elem.value = values[:2]
            note("replaced", name)
        return
    _invalid(ds, elem, "ImageType", N_("%(attribute)s must start with ORIGINAL or DERIVED, "
                                       "then PRIMARY or SECONDARY"), name, iod, note)


def vet_code_item(item: Dataset, cids: frozenset[int], path: str, note: Note) -> bool:
    """Keep a coded entry only when the registry knows it; False to drop the item.

    Only CodeValue and CodingSchemeDesignator are kept as received (both checked); the
    meaning is the registry's, and everything else in the item (the coding scheme version,
    free text, other attributes) is removed. View modifiers are checked the same way.
    """
    scheme = _text(item.get("CodingSchemeDesignator"))
    code = _text(item.get("CodeValue"))
    meaning = registry_meaning(scheme, code, cids) if scheme and code else None
    if meaning is None:
        return False
    for elem in list(item):
        keyword = "" if elem.tag.is_private else keyword_for_tag(elem.tag)
        if keyword == "ViewModifierCodeSequence" and elem.VR == "SQ":
            vet_sequence(item, elem, f"{path} > {keyword}", note)
        elif keyword not in ("CodeValue", "CodingSchemeDesignator", "CodeMeaning"):
            del item[elem.tag]
            note("removed", f"{path} > {keyword or _tag_text(elem.tag)}")
    if _text(item.get("CodeMeaning")) != meaning:
        item.CodeMeaning = meaning[:64]  # LO
        note("replaced", f"{path} > CodeMeaning")
    return True


def _tag_text(tag: BaseTag) -> str:
    return f"({tag.group:04X},{tag.element:04X})"


def vet_sequence(ds: Dataset, elem: DataElement, name: str, note: Note) -> bool:
    """Coded and referencing sequences; True when the sequence was handled here."""
    keyword = keyword_for_tag(elem.tag)
    if keyword in CODE_SEQUENCES:
        kept = [item for item in elem.value
                if vet_code_item(item, CODE_SEQUENCES[keyword], name, note)]
        if len(kept) != len(elem.value):
            elem.value = Sequence(kept)  # empty is valid: Type 2 or 3 in CR and DX
            note("replaced", name)
        return True
    if keyword == "ReferencedImageSequence":
        kept = [item for item in elem.value
                if _is_sop_class(item.get("ReferencedSOPClassUID"))
                and "ReferencedSOPInstanceUID" in item
                and len(_values(item["ReferencedSOPInstanceUID"])) == 1]
        if len(kept) != len(elem.value):
            elem.value = Sequence(kept)
            note("replaced", name)
        return False  # the items are cleaned by the allow-list as usual
    return False
