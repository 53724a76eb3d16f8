"""Study references become pseudonyms on entry: a keyed hash under the install's secret.

The QC centre identifies a live study by its accession number or Study Instance UID, which
a PACS, a RIS or a lab slip ties to the patient. We keep only HMAC-SHA256 of it under
DEID_SECRET (the key of the case library's de-identification, ``app.keyed_hash``,
with its own purpose label so a study pseudonym never equals a UID or patient pseudonym
made from the same text). The same reference always gives the same pseudonym on this
install, which is what makes re-imports idempotent; without the secret nothing leads back
to the study. Anyone who later needs the study (promoting it to the library) types its
reference again and ``matches`` checks it against the record.
"""

from __future__ import annotations

import hmac

from flask import current_app

from app.keyed_hash import keyed_hash as _hmac

PREFIX = "QC-"
MAX_REFERENCE_LENGTH = 128


def normalise_reference(reference: str) -> str:
    """Surrounding spaces and letter case do not make another study: " acc-001 " and
    "ACC-001" are one reference (RIS and PACS exports differ in both)."""
    return " ".join(str(reference).split()).upper()


def study_pseudonym(reference: str, secret: bytes) -> str:
    """"QC-" and 32 hex digits (128 bits: no two studies of a programme's lifetime meet)."""
    text = normalise_reference(reference)
    if not text:
        raise ValueError("an empty study reference has no pseudonym")
    return PREFIX + _hmac(secret, "qc-study", text).hex()[:32].upper()


def install_secret() -> bytes:
    return str(current_app.config["DEID_SECRET"]).encode()


def matches(reference: str, pseudonym: str, secret: bytes) -> bool:
    return hmac.compare_digest(study_pseudonym(reference, secret), pseudonym)
