"""De-identification of uploaded DICOM images (PS3.15 Annex E), a pure module.

Base rules: the Basic Application Level Confidentiality Profile as tabulated by
dicom-anonymizer (``dicomfields_2026c``, the newest table it ships).  We use only its
*table* (tag -> action); the actions themselves are implemented here, because the
library's own ones do not fit a shared case library:

* its UID replacement keeps a process-global random dictionary, so two uploads of one
  study (or two worker processes) would get different UIDs; ours are an HMAC of the
  original (``new_uid``), deterministic for one install and not reversible without the
  secret;
* its "X" on a date writes 00010101 instead of removing, its "K" does not clean inside
  sequences, and it can ``print`` tag numbers;
* the Retain Patient Characteristics and Retain Longitudinal Temporal Information with
  Modified Dates options are not implemented there.

Choices where the profile leaves one open (documented because a reviewer will ask):

* ``X/Z``, ``X/D`` and ``X/Z/D`` resolve to **X**: every attribute in those sets is Type 3
  in the CR and DX IODs this portal accepts, so removal keeps the IOD valid.
* ``Z/D`` resolves to **Z** (Type 2 in CR/DX), except PatientID, which gets an HMAC
  pseudonym so one patient's cases can still be grouped.
* ``X/Z/U*`` (Referenced/Source Image Sequence) keeps the sequence, replaces the instance
  UIDs inside it and cleans every item with the whole profile.
* ``D`` on a sequence (Content Sequence and the like) replaces every leaf inside it with a
  dummy, since free text there (TextValue) is not listed on its own.
* Sequences the profile does not list are kept and every item is cleaned recursively
  ("K: cleaned for sequences").
* Public attributes unknown to pydicom's data dictionary are removed: nobody can judge
  what they hold.  Group lengths (gggg,0000) are removed since the lengths change.
* PatientName is emptied (Annex E "Z"), not set to a dummy: an empty name is what viewers
  and the profile expect, and "ANONYMOUS" would add nothing.
* Times of day (TM, and the time part of DT) are removed in both date modes: shifted
  dates keep every interval in days, which is all a chest X-ray course needs, while the
  time of day narrows an exam down to one slot in the hospital's RIS log.
* PatientBirthDate is always emptied; with Retain Patient Characteristics the age is
  derived from it first.  Ages over 89 become "090Y" (HIPAA Safe Harbor).
* BurnedInAnnotation = YES asks for a pixel review on any modality; a missing value
  does on CR and DX, where burned-in markers and names are common.
* After the profile, only the attributes a teaching library needs are kept, each with a
  value checked against a registry or a value set (``deid_allowlist``,
  ``deid_values``); an invalid Type 1
  value of a DX image raises a DeidentificationError naming the attribute and the rule.
* The file meta names the portal as the implementation that wrote the file
  (IMPLEMENTATION_CLASS_UID), not the modality or archive that wrote the original.

Nothing in this module prints or logs, and no exception it raises carries a value from
the dataset: reports and errors name attributes only.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from dicomanonymizer import simpledicomanonymizer as _sda
from pydicom.datadict import dictionary_has_tag, keyword_for_tag, repeater_has_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    UID,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
    UID_dictionary,
)
from pydicom.valuerep import is_valid_ds

from app.cases.deid_allowlist import ALLOWED, ALLOWED_IN_ITEMS, KEPT_EMPTY
from app.cases.deid_values import InvalidValue, vet_element, vet_sequence, vet_window
from app.keyed_hash import keyed_hash as _hmac
from app.sentences import N_, say

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "PROFILE_TABLE",
    "DeidOptions",
    "DeidReport",
    "DeidentificationError",
    "date_shift_days",
    "deidentify",
    "new_uid",
]

# The newest Annex E table shipped by dicom-anonymizer 2.1 (DICOM 2026c).  Pinned rather
# than discovered so that an upgrade that adds a table is a reviewed change.
PROFILE_TABLE = "dicomfields_2026c"

DateMode = Literal["shift", "remove"]


@dataclass(frozen=True)
class DeidOptions:
    """secret keys every HMAC (UIDs, date shift, PatientID pseudonym); one per install.

    retain_patient_characteristics keeps PatientSex, PatientAge (derived from the birth
    date when missing), PatientSize and PatientWeight; dates are shifted per patient or
    removed.
    """

    # repr=False: options objects end up in logs and tracebacks; the secret must not.
    secret: bytes = field(repr=False)
    retain_patient_characteristics: bool = True
    dates: DateMode = "shift"
    # A file this software de-identified before (marked by _mark, PatientID a pseudonym),
    # such as an image of an exported case library, keeps its pseudonym, its already
    # shifted dates and its replacement UIDs: hashing or shifting them again would break
    # the links to the same patient's other images. Everything else is cleaned as usual,
    # so a file that merely claims to be de-identified cannot bring PHI along.
    keep_own_pseudonyms: bool = False


@dataclass
class DeidReport:
    """What was done, by attribute name only ("Keyword", "(gggg,eeee)", "Seq > Keyword")."""

    removed: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    emptied: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    private_tags_removed: int = 0
    pixel_review_needed: bool = False
    age_derived: bool = False
    pseudonyms_kept: bool = False  # de-identified by CXR Academy before: see DeidOptions

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class DeidentificationError(ValueError):
    """De-identification failed; the message names an attribute, never a value.

    The dataset may be half-processed when this is raised: discard it.
    """


# --- the profile table -------------------------------------------------------------------

# dicom-anonymizer's table maps each tag to one of its action functions; translate them
# back to the Annex E action codes we implement ourselves.
_CODE_OF_ACTION: dict[Callable[..., Any], str] = {
    _sda.replace: "D",
    _sda.empty: "Z",
    _sda.delete: "X",
    _sda.replace_UID: "U",
    _sda.empty_or_replace: "Z/D",
    _sda.delete_or_empty: "X/Z",
    _sda.delete_or_replace: "X/D",
    _sda.delete_or_empty_or_replace: "X/Z/D",
    _sda.delete_or_empty_or_replace_UID: "X/Z/U*",
}


def _load_profile() -> tuple[dict[int, str], list[tuple[int, int, int, int, str]]]:
    exact: dict[int, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    for key, action in _sda.initialize_actions(PROFILE_TABLE).items():
        code = _CODE_OF_ACTION[action]  # KeyError here = a library change to review
        if len(key) == 2:
            exact[int(Tag(key[0], key[1]))] = code
        else:  # repeating groups such as (60xx,3000): (group, element, gmask, emask)
            group, element, gmask, emask = key
            masked.append((group & gmask, element & emask, gmask, emask, code))
    return exact, masked


_EXACT_ACTIONS, _MASKED_ACTIONS = _load_profile()


def _profile_action(tag: BaseTag) -> str | None:
    """Annex E action code for a public tag, or None when the profile keeps it."""
    code = _EXACT_ACTIONS.get(int(tag))
    if code is not None:
        return code
    for group, element, gmask, emask, masked_code in _MASKED_ACTIONS:
        if tag.group & gmask == group and tag.element & emask == element:
            return masked_code
    return None


_REMOVE_CODES = frozenset({"X", "X/Z", "X/D", "X/Z/D"})  # resolved to X: Type 3 in CR/DX
_EMPTY_CODES = frozenset({"Z", "Z/D"})  # resolved to Z: Type 2 in CR/DX
_UID_CODES = frozenset({"U", "X/Z/U*"})

# Our own rules on top of the table (the options and the pseudonym), by tag.
_PATIENT_NAME = 0x00100010
_PATIENT_ID = 0x00100020
_PATIENT_BIRTH_DATE = 0x00100030
_PATIENT_AGE = 0x00101010
_PATIENT_SEX = 0x00100040
_SEXES = frozenset({"M", "F", "O"})  # the defined terms of PatientSex
# Retain Patient Characteristics Option (CID 7050 113108), limited to what the course uses.
_PATIENT_CHARACTERISTICS = frozenset({_PATIENT_SEX, _PATIENT_AGE, 0x00101020, 0x00101030})

# File meta: keep only what is needed to read the file; the rest (Source/Sending/Receiving
# AE titles, presentation addresses, private information) names machines and sites.
# The implementation class UID and version name are replaced by the portal's own: they name
# the software (and through its version, often the site) that wrote the original file.
_FILE_META_KEPT = frozenset({0x00020000, 0x00020002, 0x00020010})
# A 2.25 UUID-derived UID (PS3.5 B.2), generated once for this product.
IMPLEMENTATION_CLASS_UID = UID("2.25.122023612858390902021373766684500398212")
IMPLEMENTATION_VERSION_NAME = "CXR_ACADEMY_1"  # SH: at most 16 characters
_MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003

_DX_SOP_CLASSES = frozenset(
    {DigitalXRayImageStorageForPresentation, DigitalXRayImageStorageForProcessing}
)
_TEXT_VRS = frozenset({"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT", "UI"})
_AGE_RE = re.compile(r"^(\d{3})([DWMY])$")
_REFERENCE_DATES = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")

_SHIFT_MIN_DAYS = 365
_SHIFT_MAX_DAYS = 3650

# What this module writes, by which it knows its own earlier work (DeidOptions).
_OWN_METHOD = "CXR Academy: PS3.15 E Basic"
_OWN_PSEUDONYM = re.compile(r"^ANON-[0-9A-F]{12}$")
_OWN_UID = re.compile(r"^2\.25\.[1-9][0-9]{0,38}$")  # new_uid's form
_KEPT_PSEUDONYM = "pseudonym="


# --- keyed derivations ---------------------------------------------------------------------


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes | bytearray) or not secret:
        raise ValueError("the de-identification secret must be non-empty bytes")


def new_uid(original: str, secret: bytes) -> str:
    """Deterministic replacement UID: same original + same secret -> same new UID.

    A "2.25." UID whose integer is a version-8 (RFC 9562 custom) UUID made from an
    HMAC-SHA256 of the original.  pydicom's generate_uid(prefix=None, entropy_srcs=...)
    is not used: in pydicom 3.0 it ignores entropy_srcs and returns a random UUID.
    """
    _check_secret(secret)
    cleaned = str(original).strip().rstrip("\x00")
    raw = bytearray(_hmac(secret, "uid", cleaned)[:16])
    raw[6] = (raw[6] & 0x0F) | 0x80  # UUID version 8
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122/9562 variant
    return UID(f"2.25.{int.from_bytes(raw, 'big')}")


def date_shift_days(patient_key: str, secret: bytes) -> int:
    """Deterministic per-patient shift in whole days, in [-3650, -365].

    Always into the past by at least a year, so a shifted date never looks like a
    plausible real exam date of the same period.
    """
    _check_secret(secret)
    span = _SHIFT_MAX_DAYS - _SHIFT_MIN_DAYS + 1
    offset = int.from_bytes(_hmac(secret, "date-shift", patient_key)[:8], "big") % span
    return -_SHIFT_MAX_DAYS + offset


def _pseudonym(patient_key: str, secret: bytes) -> str:
    if patient_key.startswith(_KEPT_PSEUDONYM):  # given by an earlier de-identification
        return patient_key.removeprefix(_KEPT_PSEUDONYM)
    return "ANON-" + _hmac(secret, "patient-id", patient_key).hex()[:12].upper()


def _deidentified_before(ds: Dataset) -> bool:
    """Marked by this module's _mark, with a PatientID in our pseudonym form."""
    return (
        _text(ds.get("PatientIdentityRemoved")).upper() == "YES"
        and _text(ds.get("DeidentificationMethod")).startswith(_OWN_METHOD)
        and _OWN_PSEUDONYM.match(_text(ds.get("PatientID"))) is not None
    )


def _text(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def _patient_key(ds: Dataset, *, pseudonymised: bool = False) -> str:
    """Key for one patient from the ORIGINAL identifiers: the patient-linking rule.

    A patient is a PatientID within its issuer (IssuerOfPatientID; an ID without an issuer
    is a namespace of its own), compared without case or spacing. The name is NOT part of
    the key: systems spell it differently (a middle initial added, the name left out), which
    would split one patient into two pseudonyms and two date shifts, and two patients may
    share a name. Without a PatientID nothing links images across studies reliably, so the
    study stands for the patient (a study-level pseudonym: the study's images stay together
    and nothing else joins them); without a study UID either, the image itself does.
    The pseudonym, the date shift and the grouping of uploads into cases all follow this key.
    A ``pseudonymised`` file (DeidOptions.keep_own_pseudonyms) is keyed by its pseudonym,
    which _pseudonym then keeps.
    """
    if pseudonymised:
        return _KEPT_PSEUDONYM + _text(ds.get("PatientID"))
    patient_id = _text(ds.get("PatientID")).upper()
    if patient_id:
        issuer = _text(ds.get("IssuerOfPatientID")).upper()
        return f"issuer={issuer}\x1fid={patient_id}"
    study = _text(ds.get("StudyInstanceUID"))
    if study:
        return f"study={study}"
    instance = _text(ds.get("SOPInstanceUID"))
    if instance:
        return f"image={instance}"
    # Not even an instance UID: the pixels are the only thing that tells images apart.
    pixel_data = ds.get("PixelData")
    digest = hashlib.sha256(pixel_data if isinstance(pixel_data, bytes) else b"").hexdigest()
    return f"pixels={digest}"


# --- dates and ages ------------------------------------------------------------------------


def _parse_da(value: Any) -> date | None:
    text = _text(value).replace(".", "")  # ACR-NEMA style YYYY.MM.DD
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def _parse_dt_date(value: Any) -> date | None:
    text = _text(value)
    return _parse_da(text[:8]) if len(text) >= 8 else None


def _format_age(birth: date, reference: date) -> str | None:
    """DICOM AS for the age at `reference`; years from 2, months below, days below that."""
    if reference < birth:
        return None
    before_birthday = (reference.month, reference.day) < (birth.month, birth.day)
    years = reference.year - birth.year - before_birthday
    if years > 89:
        return "090Y"
    if years >= 2:
        return f"{years:03d}Y"
    months = (reference.year - birth.year) * 12 + reference.month - birth.month
    months -= reference.day < birth.day
    if months >= 1:
        return f"{months:03d}M"
    return f"{(reference - birth).days:03d}D"


def _capped_age(value: Any) -> str | None:
    """A valid AS value with ages over 89 aggregated, or None when not a valid AS."""
    match = _AGE_RE.match(_text(value))
    if match is None:
        return None
    if match.group(2) == "Y" and int(match.group(1)) > 89:
        return "090Y"
    return match.group(0)


def _derive_age(ds: Dataset) -> str | None:
    birth = _parse_da(ds.get("PatientBirthDate"))
    if birth is None:
        return None
    for keyword in _REFERENCE_DATES:
        reference = _parse_da(ds.get(keyword))
        if reference is not None:
            return _format_age(birth, reference)
    return None


def _needs_pixel_review(ds: Dataset) -> bool:
    burned_in = _text(ds.get("BurnedInAnnotation")).upper()
    if burned_in == "YES":
        return True
    return not burned_in and _text(ds.get("Modality")).upper() in {"CR", "DX"}


def _iod(ds: Dataset) -> str:
    """The IOD whose Type 1 rules apply: "DX" or "SC" by SOP class, else the modality."""
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class in _DX_SOP_CLASSES:
        return "DX"
    if sop_class == SecondaryCaptureImageStorage:
        return "SC"
    return _text(ds.get("Modality")).upper()


# --- the walk ------------------------------------------------------------------------------


def _name(tag: BaseTag) -> str:
    keyword = "" if tag.is_private else keyword_for_tag(tag)
    return keyword or f"({tag.group:04X},{tag.element:04X})"


def _where(name: str, tag: BaseTag) -> str:
    """The attribute for an error message: its report name, and its tag when public."""
    return name if tag.is_private else f"{name} ({tag.group:04X},{tag.element:04X})"


@dataclass
class _Context:
    options: DeidOptions
    report: DeidReport
    shift: timedelta
    pending_age: str | None
    pseudonymised: bool = False  # keep our own pseudonym and replacement UIDs
    iod: str = ""  # whose Type 1 rules apply: "DX", "SC" or the modality
    current: str = "(start)"  # the attribute being processed, for error messages
    # Outcome -> names in order. Dicts, not the report's lists: a header with thousands of
    # private elements records thousands of names, and each record must take constant time.
    names: dict[str, dict[str, None]] = field(
        default_factory=lambda: {b: {} for b in ("removed", "replaced", "emptied", "kept")}
    )

    def record(self, outcome: str, name: str) -> None:
        self.names[outcome][name] = None

    def unrecord(self, name: str) -> None:
        for bucket in self.names.values():
            bucket.pop(name, None)

    def finish(self) -> None:
        """Copy the recorded names into the report."""
        for outcome, bucket in self.names.items():
            setattr(self.report, outcome, list(bucket))


def _values(elem: DataElement) -> list[Any]:
    if elem.value is None:
        return []
    if isinstance(elem.value, MultiValue | list | tuple):
        return list(elem.value)
    return [elem.value]


def _set_values(elem: DataElement, values: list[Any]) -> None:
    elem.value = values[0] if len(values) == 1 else values


def _empty(elem: DataElement) -> None:
    if elem.VR == "SQ":
        elem.value = Sequence([])
    elif elem.VR in _TEXT_VRS or elem.VR in {"DA", "DT", "TM", "DS", "IS"}:
        elem.value = ""
    else:
        elem.value = None


def _replace_uids(elem: DataElement, ctx: _Context) -> bool:
    """Replace instance UIDs; registry UIDs (SOP classes, transfer syntaxes) stay."""
    values = [_text(v) for v in _values(elem)]
    if not any(values):
        return False
    replaced = [
        v
        if (not v or v in UID_dictionary or (ctx.pseudonymised and _OWN_UID.match(v)))
        else new_uid(v, ctx.options.secret)
        for v in values
    ]
    if replaced == values:
        return False
    _set_values(elem, replaced)
    return True


def _shift_dates(elem: DataElement, ctx: _Context) -> bool:
    """Shift DA/DT values (DT loses its time part); False when a value cannot be parsed."""
    shifted: list[str] = []
    for value in _values(elem):
        parsed = _parse_da(value) if elem.VR == "DA" else _parse_dt_date(value)
        if parsed is None:
            return False
        shifted.append((parsed + ctx.shift).strftime("%Y%m%d"))
    _set_values(elem, shifted)
    return True


def _dummy(elem: DataElement, ctx: _Context) -> bool:
    """Annex E "D": a non-empty value consistent with the VR; False if we have none."""
    vr = elem.VR
    if vr == "UI":
        _replace_uids(elem, ctx)
        if not _text(elem.value):
            elem.value = new_uid("dummy", ctx.options.secret)
    elif vr == "AS":
        elem.value = "000Y"
    elif vr == "UR":
        elem.value = "http://anonymized.invalid"  # .invalid is reserved (RFC 2606)
    elif vr in _TEXT_VRS:
        elem.value = "ANONYMIZED"
    elif vr in {"DS", "IS"}:
        elem.value = "0"
    elif vr in {"FD", "FL", "SS", "US", "SL", "UL", "SV", "UV"}:
        elem.value = 0
    elif vr in {"OB", "OW", "UN"}:
        elem.value = b"ANONYMIZED"  # even length, as OW needs
    else:
        return False
    return True


def _remove(ds: Dataset, tag: BaseTag, name: str, ctx: _Context) -> None:
    del ds[tag]
    ctx.record("removed", name)


def _date_or_time(
    ds: Dataset, elem: DataElement, code: str | None, name: str, ctx: _Context
) -> None:
    """DA/DT/TM: the date option decides, whatever the base profile says."""
    if elem.VR != "TM" and ctx.options.dates == "shift":
        if not any(_text(v) for v in _values(elem)):
            ctx.record("kept", name)
            return
        if _shift_dates(elem, ctx):
            ctx.record("replaced", name)
            return
    # Removal (dates="remove", every time of day, unparseable dates): empty where the
    # profile needs the attribute present (Z, Z/D, D), remove otherwise.
    if code in _EMPTY_CODES or code == "D":
        _empty(elem)
        ctx.record("emptied", name)
    else:
        _remove(ds, elem.tag, name, ctx)


def _dummy_dataset(ds: Dataset, path: str, ctx: _Context) -> None:
    """Annex E "D" applied to a whole sequence: every leaf becomes a dummy."""
    for tag in sorted(ds.keys()):
        name = f"{path} > {_name(tag)}"
        ctx.current = _where(name, tag)
        if tag.is_private:
            _remove(ds, tag, name, ctx)
            ctx.report.private_tags_removed += 1
            continue
        elem = ds[tag]
        if elem.VR == "SQ":
            for item in elem.value:
                _dummy_dataset(item, name, ctx)
        elif elem.VR in {"DA", "DT", "TM"}:
            _date_or_time(ds, elem, "D", name, ctx)
        elif _dummy(elem, ctx):
            ctx.record("replaced", name)
        else:
            _remove(ds, tag, name, ctx)


def _walk(ds: Dataset, path: str, ctx: _Context, *, top: bool) -> None:
    options, report = ctx.options, ctx.report
    # The key of the patient this level describes, from the ORIGINAL values: taken before
    # the loop below empties the name.
    level_key = (
        _patient_key(ds, pseudonymised=top and ctx.pseudonymised) if "PatientID" in ds else ""
    )
    for tag in sorted(ds.keys()):
        name = f"{path} > {_name(tag)}" if path else _name(tag)
        ctx.current = _where(name, tag)
        if tag.is_private:
            _remove(ds, tag, name, ctx)
            report.private_tags_removed += 1
            continue
        if tag.element == 0x0000 or not (dictionary_has_tag(tag) or repeater_has_tag(tag)):
            _remove(ds, tag, name, ctx)  # group length, or a public tag nobody can judge
            continue
        elem = ds[tag]
        code = _profile_action(tag)

        if tag == _PATIENT_ID:
            if top or _text(elem.value):
                elem.value = _pseudonym(level_key, options.secret)
                ctx.record("replaced", name)
            else:
                ctx.record("kept", name)
        elif tag in (_PATIENT_NAME, _PATIENT_BIRTH_DATE):
            _empty(elem)
            ctx.record("emptied", name)
        elif tag in _PATIENT_CHARACTERISTICS and options.retain_patient_characteristics:
            _retain_characteristic(ds, elem, name, ctx, top=top)
        elif elem.VR == "SQ":
            _sequence(ds, elem, code, name, ctx)
        elif elem.VR in {"DA", "DT", "TM"}:
            _date_or_time(ds, elem, code, name, ctx)
        elif code is None:
            ctx.record("kept", name)
        elif code in _UID_CODES or (code == "D" and elem.VR == "UI"):
            if elem.VR == "UI":
                ctx.record("replaced" if _replace_uids(elem, ctx) else "kept", name)
            else:
                _remove(ds, tag, name, ctx)
        elif code in _REMOVE_CODES:
            _remove(ds, tag, name, ctx)
        elif code in _EMPTY_CODES:
            _empty(elem)
            ctx.record("emptied", name)
        elif _dummy(elem, ctx):  # "D"
            ctx.record("replaced", name)
        else:
            _remove(ds, tag, name, ctx)


def _is_number(value: Any) -> bool:
    """A valid DS for a size or weight: a finite, positive decimal string (PS3.5 6.2)."""
    text = _text(getattr(value, "original_string", value))
    try:
        number = float(text)
    except ValueError:
        return False
    return is_valid_ds(text) and len(text) <= 16 and math.isfinite(number) and number > 0


def _retain_characteristic(
    ds: Dataset, elem: DataElement, name: str, ctx: _Context, *, top: bool
) -> None:
    """Keep sex, age, size and weight, but only as the coded values they should be.

    The option lets values through that the base profile would remove, so a value
    that is not a valid code or number (free text typed into the wrong field at the
    modality) is removed rather than trusted.
    """
    if top and elem.tag == _PATIENT_AGE and ctx.pending_age is not None:
        return  # replaced by the derived age after the walk
    values = [_text(v) for v in _values(elem)]
    if not any(values):
        ctx.record("kept", name)
        return
    if elem.tag == _PATIENT_AGE:
        capped = _capped_age(elem.value)
        if capped is None:
            _remove(ds, elem.tag, name, ctx)
        elif capped != _text(elem.value):
            elem.value = capped  # over 89: aggregated (HIPAA Safe Harbor)
            ctx.record("replaced", name)
        else:
            ctx.record("kept", name)
    elif elem.tag == _PATIENT_SEX:
        if len(values) == 1 and values[0] in _SEXES:
            ctx.record("kept", name)
        else:  # Type 2 in the Patient module: kept, empty
            _empty(elem)
            ctx.record("emptied", name)
    elif all(_is_number(v) for v in values):  # PatientSize, PatientWeight (DS)
        ctx.record("kept", name)
    else:
        _remove(ds, elem.tag, name, ctx)


def _sequence(ds: Dataset, elem: DataElement, code: str | None, name: str, ctx: _Context) -> None:
    if code in _REMOVE_CODES:
        _remove(ds, elem.tag, name, ctx)
    elif code in _EMPTY_CODES:
        _empty(elem)
        ctx.record("emptied", name)
    elif code == "D":
        for item in elem.value:
            _dummy_dataset(item, name, ctx)
        ctx.record("replaced", name)
    else:  # kept ("K") or X/Z/U*: keep the sequence, clean every item with the profile
        for item in elem.value:
            _walk(item, name, ctx, top=False)


def _clean_file_meta(ds: Dataset, ctx: _Context) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return
    for tag in sorted(meta.keys()):
        name = _name(tag)
        ctx.current = _where(name, tag)
        if tag == _MEDIA_STORAGE_SOP_INSTANCE_UID:
            # Must equal the (new) SOPInstanceUID; both come from new_uid of the same
            # original, this makes it hold even when the two originals disagreed.
            new = _text(ds.get("SOPInstanceUID")) or new_uid(
                _text(meta[tag].value), ctx.options.secret
            )
            meta[tag].value = new
            ctx.record("replaced", name)
        elif tag in _FILE_META_KEPT:
            ctx.record("kept", name)
        else:
            _remove(meta, tag, name, ctx)
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    for name in ("FileMetaInformationVersion", "ImplementationClassUID",
                 "ImplementationVersionName"):
        ctx.unrecord(name)
        ctx.record("replaced", name)


def _allow_list(ds: Dataset, ctx: _Context, path: str = "", *, top: bool = True) -> None:
    """Keep the allow-listed attributes, each with a value checked by deid_allowlist."""
    allowed = ALLOWED | KEPT_EMPTY if top else ALLOWED_IN_ITEMS

    def note(outcome: str, name: str) -> None:
        if outcome == "removed":
            ctx.unrecord(name)
        ctx.record(outcome, name)

    for elem in list(ds):
        name = f"{path}{_name(elem.tag)}"
        ctx.current = _where(name, elem.tag)
        keyword = "" if elem.tag.is_private else keyword_for_tag(elem.tag)
        if top and keyword in KEPT_EMPTY and not elem.is_empty:
            _empty(elem)
            ctx.record("emptied", name)
        if keyword not in allowed:
            del ds[elem.tag]
            # Reported once, as removed, whatever the profile did to it before.
            note("removed", name)
        elif elem.VR == "SQ":
            if not vet_sequence(ds, elem, name, note):
                for item in elem.value:
                    _allow_list(item, ctx, f"{name} > ", top=False)
        elif elem.tag in ds:
            vet_element(ds, elem, name, ctx.iod, note)
    if top:
        ctx.current = "WindowCenter"
        vet_window(ds, note)


def _mark(ds: Dataset, options: DeidOptions) -> None:
    """PatientIdentityRemoved, DeidentificationMethod(CodeSequence), temporal flag."""
    codes = [("113100", "Basic Application Confidentiality Profile")]
    method = ["CXR Academy: PS3.15 E Basic"]
    if options.retain_patient_characteristics:
        codes.append(("113108", "Retain Patient Characteristics Option"))
        method.append("Retain Pt Chars")
    if options.dates == "shift":
        codes.append(("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))
        method.append("Dates Shifted")
    else:
        method.append("Dates Removed")
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "; ".join(method)  # LO: at most 64 characters
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = (
        "MODIFIED" if options.dates == "shift" else "REMOVED"
    )


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextmanager
def _quiet_pydicom() -> Iterator[None]:
    """Silence pydicom while values are converted.

    pydicom reports some invalid values (a character not allowed for the VR, say) with
    the value in the message, both as a warning and on the "pydicom" logger.  Both
    switches are process global: for the duration of the call, pydicom messages from
    other threads are dropped too, which is the safe direction.
    """
    logger = logging.getLogger("pydicom")
    quiet = _DropAll()
    logger.addFilter(quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.removeFilter(quiet)


def deidentify(ds: Dataset, options: DeidOptions) -> DeidReport:
    """De-identify ds IN PLACE (dataset and ds.file_meta) and report what was done.

    The report names attributes ("Keyword", "(gggg,eeee)", "Outer > Keyword"), never a
    value.  On failure a DeidentificationError naming the attribute is raised and the
    dataset must be discarded.
    """
    _check_secret(options.secret)
    if options.dates not in ("shift", "remove"):
        raise ValueError("dates must be 'shift' or 'remove'")

    report = DeidReport()
    ctx: _Context | None = None
    failure: str | None = None
    with _quiet_pydicom():
        try:
            # Everything that needs an original value is read before anything is changed.
            report.pixel_review_needed = _needs_pixel_review(ds)
            pseudonymised = options.keep_own_pseudonyms and _deidentified_before(ds)
            if pseudonymised and (
                _text(ds.get("LongitudinalTemporalInformationModified")).upper() != "MODIFIED"
            ):
                # Dates were removed there: any date found now was added since; remove it.
                options = replace(options, dates="remove")
            key = _patient_key(ds, pseudonymised=pseudonymised)
            report.pseudonyms_kept = pseudonymised
            pending_age = None
            if options.retain_patient_characteristics and not _text(ds.get("PatientAge")):
                pending_age = _derive_age(ds)
            ctx = _Context(
                options=options,
                report=report,
                # Dates shifted before are shifted already: a second shift would move them
                # away from the same patient's other images.
                shift=timedelta(days=0 if pseudonymised else date_shift_days(key, options.secret)),
                pending_age=pending_age,
                pseudonymised=pseudonymised,
                iod=_iod(ds),
            )
            _walk(ds, "", ctx, top=True)

            ctx.current = "PatientID"
            if "PatientID" not in ds:  # always present: the pseudonym groups cases
                ds.PatientID = _pseudonym(key, options.secret)
                ctx.record("replaced", "PatientID")
            if "PatientName" not in ds:  # Type 2
                ds.PatientName = ""
                ctx.record("emptied", "PatientName")
            if pending_age is not None:
                ctx.current = "PatientAge"
                ds.PatientAge = pending_age
                report.age_derived = True
                ctx.record("replaced", "PatientAge")
            _allow_list(ds, ctx)
            _clean_file_meta(ds, ctx)
            # The 128-byte preamble is free for applications to use (TIFF headers, vendor
            # notes): nothing we can vouch for.
            if any(getattr(ds, "preamble", None) or b""):
                ds.preamble = b"\x00" * 128
                ctx.record("replaced", "(preamble)")
            ctx.current = "DeidentificationMethod"
            _mark(ds, options)
            ctx.finish()
        except InvalidValue as exc:  # names the attribute and the rule, never the value
            failure = str(exc)
        except Exception as exc:  # re-raised below, outside this block, without context
            cause = type(exc).__name__
            failure = (
                say(N_("%(attribute)s: the value could not be de-identified (%(cause)s)"),
                    attribute=ctx.current, cause=cause)
                if ctx is not None and ctx.current != "(start)"
                else say(N_("the file could not be de-identified (%(cause)s)"), cause=cause)
            )
    if failure is not None:
        # Raised outside the except block so the original exception (whose message may
        # quote a value) is not chained as __context__.
        raise DeidentificationError(failure)
    return report
