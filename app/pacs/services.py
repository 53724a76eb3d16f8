"""PACS use cases: configure an endpoint, test it, search it. Importing studies from it is a
background job (app.jobs.pacs_import). What a trainer types into a search (patient ID,
accession number) goes to the PACS only: it is not stored, logged or audited here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext
from sqlalchemy import select

from app.audit.services import record
from app.auth.models import User
from app.extensions import db
from app.field_encryption import UndecryptableField, decrypt, encrypt
from app.i18n import N_
from app.pacs.clients import (
    PacsClient,
    PacsError,
    SearchCriteria,
    StudyHit,
    client_for,
    study_uid_ok,
)
from app.pacs.models import PacsEndpoint, PacsKind
from app.pacs.retrieval import StudyLimits

logger = logging.getLogger(__name__)


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
        raise EndpointError(gettext("choose DICOMweb or DIMSE"))
    if settings.kind == PacsKind.DICOMWEB:
        if not settings.url.startswith(("http://", "https://")):
            raise EndpointError(gettext("the DICOMweb URL must start with http:// or https://"))
        if "@" in settings.url.split("//", 1)[1].split("/", 1)[0]:
            raise EndpointError(gettext(
                "put the user name and password in their own fields, not in the URL: the URL "
                "is shown on the endpoints page and is not encrypted"))
    else:
        if not settings.host or settings.port is None or not (0 < settings.port < 65536):
            raise EndpointError(gettext(
                "a DIMSE endpoint needs the PACS's host and port (1-65535)"))
        for message, ae in (
                (N_("the called AE title must be 1-16 ASCII characters"), settings.called_ae),
                (N_("the calling AE title must be 1-16 ASCII characters"), settings.calling_ae)):
            if not ae or len(ae) > 16 or not ae.isascii() or "\\" in ae:
                raise EndpointError(gettext(message))


def save_endpoint(settings: EndpointSettings, *, actor: User | None,
                  endpoint: PacsEndpoint | None = None) -> PacsEndpoint:
    _check(settings)
    clash = db.session.scalar(select(PacsEndpoint).where(PacsEndpoint.name == settings.name))
    if clash is not None and clash is not endpoint:
        raise EndpointError(gettext("there is already an endpoint called %(name)s",
                                    name=repr(settings.name)))
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
        raise PacsError(N_("the endpoint's stored credentials open with none of the configured "
                           "FIELD_ENCRYPTION_KEYS: an administrator must enter them again")) \
            from None
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


# ---- import (run as a job: app.jobs.pacs_import) ------------------------------------------


def study_limits() -> StudyLimits:
    cfg = current_app.config
    return StudyLimits(max_bytes=int(cfg["PACS_STUDY_MAX_BYTES"]),
                       max_images=int(cfg["PACS_STUDY_MAX_IMAGES"]))
