"""One keyed hash for every pseudonym the portal makes from the install's secret (the case
library's UIDs, patients and date shifts; the QC centre's study references): HMAC-SHA256
with a purpose label, so two uses of one secret never give the same value for one text.
Its own module so that code which only needs the hash does not load the DICOM stack."""

from __future__ import annotations

import hashlib
import hmac


def keyed_hash(secret: bytes, purpose: str, value: str) -> bytes:
    # The purpose prefix separates the uses of one secret: a UID hash is never a shift.
    message = f"cxr-academy/{purpose}\x00{value}".encode("utf-8", "surrogatepass")
    return hmac.new(secret, message, hashlib.sha256).digest()
