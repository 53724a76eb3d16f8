"""PACS use cases: configure an endpoint, test it, search it, import studies from it.

``import_studies_from_pacs`` takes no request objects, so a background job can run it as the
pages and the CLI do. What a trainer types into a search (patient ID, accession number) goes
to the PACS only: it is not stored, logged or audited here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from app.audit.services import record
from app.auth.models import User
from app.cases.ingest import FileResult, ImportOptions, ImportSummary, Source, import_files
from app.cases.sandbox import Rejected
from app.extensions import db
from app.field_encryption import UndecryptableField, decrypt, encrypt
from app.pacs.clients import (
    ACCEPTED_MODALITIES,
    PacsClient,
    PacsError,
    SearchCriteria,
    StudyHit,
    client_for,
    study_uid_ok,
)
from app.pacs.models import PacsEndpoint, PacsKind

logger = logging.getLogger(__name__)

MAX_STUDIES_PER_IMPORT = 50


class EndpointError(ValueError):
    """An endpoint's settings are refused; the message says why."""


@dataclass(frozen=True)
class EndpointSettings:
    name: str
    kind: str
    url: str = ""
    host: str = ""
    port: int | None = None
    called_ae: str = ""
    calling_ae: str = ""
    # None: keep the stored credentials; "" and "": remove them.
    username: str | None = None
    password: str | None = None


def _keys() -> list[str]:
    return list(current_app.config["FIELD_ENCRYPTION_KEYS"])


def _check(settings: EndpointSettings) -> None:
    if settings.kind not in {k.value for k in PacsKind}:
        raise EndpointError("choose DICOMweb or DIMSE")
    if settings.kind == PacsKind.DICOMWEB:
        if not settings.url.startswith(("http://", "https://")):
            raise EndpointError("the DICOMweb URL must start with http:// or https://")
        if "@" in settings.url.split("//", 1)[1].split("/", 1)[0]:
            raise EndpointError("put the user name and password in their own fields, not in "
                                "the URL: the URL is shown on the endpoints page and is not "
                                "encrypted")
    else:
        if not settings.host or settings.port is None or not (0 < settings.port < 65536):
            raise EndpointError("a DIMSE endpoint needs the PACS's host and port (1-65535)")
        for label, ae in (("called", settings.called_ae), ("calling", settings.calling_ae)):
            if not ae or len(ae) > 16 or not ae.isascii() or "\\" in ae:
                raise EndpointError(f"the {label} AE title must be 1-16 ASCII characters")


def save_endpoint(settings: EndpointSettings, *, actor: User | None,
                  endpoint: PacsEndpoint | None = None) -> PacsEndpoint:
    _check(settings)
    clash = db.session.scalar(select(PacsEndpoint).where(PacsEndpoint.name == settings.name))
    if clash is not None and clash is not endpoint:
        raise EndpointError(f"there is already an endpoint called {settings.name!r}")
    new = endpoint is None
    if endpoint is None:
        endpoint = PacsEndpoint()
        db.session.add(endpoint)
    endpoint.name, endpoint.kind = settings.name, settings.kind
    endpoint.url = settings.url if settings.kind == PacsKind.DICOMWEB else ""
    endpoint.host = settings.host if settings.kind == PacsKind.DIMSE else ""
    endpoint.port = settings.port if settings.kind == PacsKind.DIMSE else None
    endpoint.called_ae = settings.called_ae if settings.kind == PacsKind.DIMSE else ""
    endpoint.calling_ae = settings.calling_ae if settings.kind == PacsKind.DIMSE else ""
    credentials_changed = settings.username is not None or settings.password is not None
    if credentials_changed:
        username, password = settings.username or "", settings.password or ""
        endpoint.credentials_encrypted = (
            encrypt(_keys(), json.dumps({"username": username, "password": password}))
            if username or password else None)
    db.session.flush()
    record("pacs.endpoint_create" if new else "pacs.endpoint_update", actor=actor,
           object_type="pacs_endpoint", object_id=endpoint.id, kind=endpoint.kind,
           **({"credentials": "replaced"} if credentials_changed else {}))
    db.session.commit()
    return endpoint


def delete_endpoint(endpoint: PacsEndpoint, *, actor: User | None) -> None:
    record("pacs.endpoint_delete", actor=actor, object_type="pacs_endpoint",
           object_id=endpoint.id)
    db.session.delete(endpoint)
    db.session.commit()


def endpoints() -> list[PacsEndpoint]:
    return list(db.session.scalars(select(PacsEndpoint).order_by(PacsEndpoint.name)))


def _credentials(endpoint: PacsEndpoint) -> tuple[str, str]:
    if not endpoint.credentials_encrypted:
        return "", ""
    try:
        stored = json.loads(decrypt(_keys(), endpoint.credentials_encrypted))
    except UndecryptableField:
        raise PacsError("the endpoint's stored credentials open with none of the configured "
                        "FIELD_ENCRYPTION_KEYS: an administrator must enter them again") from None
    return str(stored.get("username", "")), str(stored.get("password", ""))


def client_of(endpoint: PacsEndpoint) -> PacsClient:
    username, password = _credentials(endpoint)
    return client_for(endpoint.kind, url=endpoint.url, host=endpoint.host, port=endpoint.port,
                      called_ae=endpoint.called_ae, calling_ae=endpoint.calling_ae,
                      username=username, password=password)


def test_connection(endpoint: PacsEndpoint) -> tuple[bool, str]:
    """(worked, a sentence for the admin)."""
    try:
        return True, client_of(endpoint).echo()
    except PacsError as exc:
        return False, str(exc)


test_connection.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def search(endpoint: PacsEndpoint, criteria: SearchCriteria) -> list[StudyHit]:
    """Studies matching ``criteria``; raises PacsError. Nothing of the criteria is kept."""
    return client_of(endpoint).search(criteria)


def thumbnail(endpoint: PacsEndpoint, study_uid: str) -> bytes | None:
    if not study_uid_ok(study_uid):
        return None
    return client_of(endpoint).thumbnail(study_uid)


# ---- import -----------------------------------------------------------------------------


def _study_items(client: PacsClient, number: int, total: int, study_uid: str,
                 ) -> Iterator[Source | FileResult]:
    """One study's files as ingest items, or its refusal. A study is fetched whole before
    any of it is imported, so a retrieve that breaks off imports nothing of that study."""
    # Named by position only: descriptions and identifiers may carry patient data.
    label = f"PACS study {number} of {total}"
    limit = int(current_app.config["INGEST_FILE_MAX_BYTES"])
    if not study_uid_ok(study_uid):
        yield FileResult(label, "rejected", reason="not a valid Study Instance UID")
        return
    try:
        found = client.search(SearchCriteria(study_uid=study_uid, modality="any"))
        hit = next((h for h in found if h.study_uid == study_uid), None)
        if hit is None:
            yield FileResult(label, "rejected", reason="the PACS does not hold this study")
            return
        if hit.modalities and not hit.importable:
            shown = ", ".join(m for m in hit.modalities if m.isalnum() and len(m) <= 4)
            yield FileResult(label, "rejected", reason=(
                f"the study holds {shown or 'other'} images, not chest radiographs: only "
                f"{' and '.join(ACCEPTED_MODALITIES)} studies are imported; nothing of it "
                "was retrieved"))
            return
        retrieved = client.retrieve(study_uid)
    except PacsError as exc:
        yield FileResult(label, "rejected", reason=f"{exc}; nothing of this study was imported")
        return
    if retrieved.failed and retrieved.files:
        yield FileResult(f"{label}, {retrieved.failed} image(s)", "rejected",
                         reason="the PACS did not send these images (not CR or DX images, "
                         "or a transfer the PACS refused)")
    if not retrieved.files:
        yield FileResult(label, "rejected", reason="the PACS sent no CR or DX images for it")
        return
    count = len(retrieved.files)
    for index, data in enumerate(retrieved.files, start=1):
        yield Source(f"{label}, image {index} of {count}", _bounded_reader(data, limit))


def _bounded_reader(data: bytes, limit: int) -> Callable[[], bytes]:
    def read() -> bytes:
        if len(data) > limit:
            raise Rejected(f"larger than the {limit // 1024**2} MB per-file limit")
        return data

    return read


def import_studies_from_pacs(endpoint: PacsEndpoint, study_uids: list[str],
                             actor: User | None) -> ImportSummary:
    """Retrieve each study and import its files through the upload's ingest (sandboxed
    de-identification, duplicate check, per-file report). Raises PacsError when the PACS
    cannot be used at all (unreachable, credentials refused), before anything is imported."""
    uids = list(dict.fromkeys(u.strip() for u in study_uids if u.strip()))
    if not uids:
        raise PacsError("no study was selected")
    if len(uids) > MAX_STUDIES_PER_IMPORT:
        raise PacsError(f"at most {MAX_STUDIES_PER_IMPORT} studies can be imported at once")
    client = client_of(endpoint)
    client.echo()  # unreachable or refused: say so once, with nothing imported

    def items() -> Iterator[Source | FileResult]:
        for number, uid in enumerate(uids, start=1):
            yield from _study_items(client, number, len(uids), uid)

    return import_files(items(), actor=actor,
                        options=ImportOptions(source=f"PACS {endpoint.name}"[:200]))
