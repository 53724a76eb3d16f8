"""Talking to a PACS: DICOMweb through dicomweb-client, DIMSE through pynetdicom.

Both clients offer the same three things — check the connection, search for studies, retrieve
a study's files into a folder (unparsed, as the PACS sent them: the sandboxed ingest parses
them) — and raise PacsError with a sentence for the person at the screen.
Error messages never quote what the PACS sent back or what was searched for: either may hold
patient identifiers.

DIMSE retrieval uses C-GET rather than C-MOVE: the files come back over the association the
portal opened, so the portal needs no listening port, no firewall opening towards it and no
PACS-side routing entry pointing at its address; C-MOVE would need all three (and a storage SCP
reachable from the PACS for the whole retrieve). The PACS must allow the portal's AE title to
retrieve, as for any C-GET client.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import requests

from app.pacs.retrieval import BrokenAnswer, StudyFolder, StudyLimits, StudyRefused, spool_answer
from app.sentences import N_, say

if TYPE_CHECKING:
    from pydicom import Dataset
    from pydicom.uid import UID

ACCEPTED_MODALITIES = ("CR", "DX")


class _QueryWithheld(logging.Filter):
    """Removes query strings and UIDs from urllib3's request lines: a QIDO-RS URL carries
    what was searched for (a patient ID, an accession number), a WADO-RS path the study's,
    series' and image's own UIDs, which stand for the patient's study; neither may reach a
    log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message or _UID_IN_PATH.search(message):
            message = _QUERY.sub("?[query withheld]", message)
            record.msg, record.args = _UID_IN_PATH.sub(r"/\1/[uid withheld]", message), ()
        return True


_QUERY = re.compile(r"\?[^\s\"]*")
_UID_IN_PATH = re.compile(r"/(studies|series|instances)/[0-9.]+")
logging.getLogger("urllib3.connectionpool").addFilter(_QueryWithheld())
# The two libraries log requests with their query (URLs; C-FIND identifiers) below WARNING.
logging.getLogger("dicomweb_client").setLevel(logging.WARNING)
logging.getLogger("pynetdicom").setLevel(logging.WARNING)
logger = logging.getLogger(__name__)
TIMEOUT_SECONDS = 20.0
MAX_RESULTS = 100
# A UID as DICOM defines it: digits and dots, at most 64 characters.
UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class PacsError(Exception):
    """The PACS could not be used; the message says why, in words for the user."""


@dataclass(frozen=True)
class SearchCriteria:
    date_from: date | None = None
    date_to: date | None = None
    # "" for CR or DX, or one of ACCEPTED_MODALITIES; "any" for every modality.
    modality: str = ""
    accession: str = ""
    patient_id: str = ""
    description: str = ""
    study_uid: str = ""

    def date_range(self) -> str:
        if not (self.date_from or self.date_to):
            return ""
        start = self.date_from.strftime("%Y%m%d") if self.date_from else ""
        end = self.date_to.strftime("%Y%m%d") if self.date_to else ""
        return f"{start}-{end}"


@dataclass(frozen=True)
class StudyHit:
    study_uid: str
    study_date: str
    description: str
    modalities: tuple[str, ...]
    instances: int | None
    accession: str = ""

    @property
    def importable(self) -> bool:
        return any(m in ACCEPTED_MODALITIES for m in self.modalities)

    @property
    def shown_date(self) -> str:
        d = self.study_date
        return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


@dataclass
class Retrieved:
    # Part 10 files in the study's folder, in the order the PACS sent them.
    files: list[Path] = field(default_factory=list)
    # Images the PACS reported it could not send (C-GET sub-operations that failed).
    failed: int = 0


class PacsClient(Protocol):
    def echo(self) -> str: ...

    def search(self, criteria: SearchCriteria) -> list[StudyHit]: ...

    def retrieve(self, study_uid: str, folder: Path, limits: StudyLimits) -> Retrieved:
        """Write the study's files into ``folder`` as they arrive. Raises PacsError, or
        StudyRefused once the study passes ``limits`` (the folder then holds a part of it:
        the caller removes it)."""
        ...

    def thumbnail(self, study_uid: str) -> bytes | None: ...


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    return str(value)


def _hit(ds: Dataset) -> StudyHit | None:
    uid = _text(ds, "StudyInstanceUID")
    if not UID_PATTERN.match(uid) or len(uid) > 64:
        return None
    raw = ds.get("ModalitiesInStudy") or []
    modalities = tuple(str(m).upper() for m in ([raw] if isinstance(raw, str) else raw) if m)
    count = ds.get("NumberOfStudyRelatedInstances")
    try:
        instances = int(count) if count not in (None, "") else None
    except (TypeError, ValueError):
        instances = None
    return StudyHit(uid, _text(ds, "StudyDate"), _text(ds, "StudyDescription"), modalities,
                    instances, _text(ds, "AccessionNumber"))


def _keep(hit: StudyHit, criteria: SearchCriteria) -> bool:
    if criteria.modality == "any":
        return True
    if criteria.modality:
        return criteria.modality in hit.modalities
    return hit.importable


def _query_filters(criteria: SearchCriteria) -> dict[str, str]:
    filters: dict[str, str] = {}
    if criteria.date_range():
        filters["StudyDate"] = criteria.date_range()
    if criteria.modality in ACCEPTED_MODALITIES:
        filters["ModalitiesInStudy"] = criteria.modality
    if criteria.accession:
        filters["AccessionNumber"] = criteria.accession
    if criteria.patient_id:
        filters["PatientID"] = criteria.patient_id
    if criteria.description:
        # Wildcards: a word anywhere in the description (PS3.4 C.2.2.2.4).
        filters["StudyDescription"] = f"*{criteria.description}*"
    if criteria.study_uid:
        filters["StudyInstanceUID"] = criteria.study_uid
    return filters


RESULT_FIELDS = ("StudyInstanceUID", "StudyDate", "StudyDescription", "ModalitiesInStudy",
                 "NumberOfStudyRelatedInstances", "AccessionNumber")


# ---- DICOMweb ---------------------------------------------------------------------------


class DicomWebPacs:
    def __init__(self, url: str, username: str = "", password: str = "",
                 timeout: float = TIMEOUT_SECONDS) -> None:
        from dicomweb_client.api import DICOMwebClient

        session = requests.Session()
        if username or password:
            session.auth = (username, password)
        self._client = DICOMwebClient(url.rstrip("/"), session=session, timeout=timeout)
        # dicomweb-client retries a failed request with exponential back-off, for about half
        # a minute in all; a person waits at the search page, so a failure is said at once
        # (and the import is started again by hand, or by a job's own retry).
        self._client.set_http_retry_params(retry=False)
        self._session, self._timeout = session, timeout
        self._url = url.rstrip("/")

    def _call(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (401, 403):
                raise PacsError(say(N_("the PACS refused the user name or password (HTTP "
                                       "%(status)s): check the endpoint's credentials"),
                                    status=status)) from None
            if status == 404:
                raise PacsError(N_("the PACS has no DICOMweb service at this URL (HTTP 404): "
                                   "check the endpoint's URL")) from None
            raise PacsError(say(N_("the PACS answered with an error (HTTP %(status)s)"),
                                status=status)) from None
        except requests.Timeout:
            raise PacsError(say(N_("the PACS did not answer within %(seconds)s seconds"),
                                seconds=f"{TIMEOUT_SECONDS:.0f}")) from None
        except requests.ConnectionError:
            raise PacsError(N_("the PACS could not be reached (connection refused or no route): "
                               "check the URL and that the PACS is running")) from None
        except requests.RequestException as exc:
            raise PacsError(say(N_("the PACS could not be used (%(cause)s)"),
                                cause=type(exc).__name__)) from None
        except BrokenAnswer as exc:
            raise PacsError(str(exc)) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise PacsError(say(N_("the PACS's answer could not be read (%(cause)s)"),
                                cause=type(exc).__name__)) from None

    def echo(self) -> str:
        self._call(lambda: self._client.search_for_studies(limit=1))
        return N_("connected: the PACS answered a QIDO-RS study search")

    def search(self, criteria: SearchCriteria) -> list[StudyHit]:
        filters = _query_filters(criteria)
        # The description is matched here, not by the PACS: a QIDO-RS wildcard travels
        # percent-encoded ("%2A", as dicomweb-client rightly sends it), and some servers
        # (Orthanc 1.10) compare the encoded text instead of decoding it, finding nothing.
        wanted = criteria.description.casefold()
        filters.pop("StudyDescription", None)
        found = self._call(lambda: self._client.search_for_studies(
            search_filters=filters, fields=list(RESULT_FIELDS),
            limit=MAX_RESULTS * 5 if wanted else MAX_RESULTS))
        from pydicom import Dataset  # with its first use (see _transfer_syntaxes)
        hits = [_hit(Dataset.from_json(item)) for item in found]
        return [h for h in hits if h is not None and _keep(h, criteria)
                and wanted in h.description.casefold()][:MAX_RESULTS]

    def retrieve(self, study_uid: str, folder: Path, limits: StudyLimits) -> Retrieved:
        """WADO-RS, on dicomweb-client's session but not through its retrieve_study, which
        parses every file with pydicom here (see app.pacs.retrieval)."""
        study = StudyFolder(folder, limits)
        # transfer-syntax=*: each file as the PACS holds it (the ingest decodes JPEG,
        # JPEG-LS and JPEG 2000), so the PACS never has to transcode.
        accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'

        def fetch() -> None:
            with self._session.get(f"{self._url}/studies/{study_uid}", stream=True,
                                   headers={"Accept": accept}, timeout=self._timeout) as answer:
                answer.raise_for_status()
                spool_answer(answer, study)

        self._call(fetch)
        return Retrieved(files=study.files)

    def thumbnail(self, study_uid: str) -> bytes | None:
        instances = self._call(lambda: self._client.search_for_instances(
            study_instance_uid=study_uid, limit=1))
        if not instances:
            return None
        from pydicom import Dataset  # with its first use (see _transfer_syntaxes)
        first = Dataset.from_json(instances[0])
        series, sop = _text(first, "SeriesInstanceUID"), _text(first, "SOPInstanceUID")
        try:
            image = self._call(lambda: self._client.retrieve_instance_rendered(
                study_uid, series, sop, media_types=("image/jpeg",)))
        except PacsError as error:
            # e.g. a compression the PACS cannot render; the reason, never the study, is logged
            logger.warning("The PACS gave no rendered thumbnail: %s", error)
            return None
        return bytes(image)


# ---- DIMSE ------------------------------------------------------------------------------

def _transfer_syntaxes() -> list[UID]:
    # pydicom is imported where a PACS is talked to, not with the application: its import
    # (with numpy and its pixel plugins) is a third of a second of every command's start-up.
    from pydicom.uid import (
        JPEG2000,
        DeflatedExplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        JPEG2000Lossless,
        JPEGBaseline8Bit,
        JPEGExtended12Bit,
        JPEGLosslessSV1,
        JPEGLSLossless,
        JPEGLSNearLossless,
        RLELossless,
    )
    from pydicom.uid import JPEGLossless as JPEGLosslessP14

    return [
        ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
        JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLosslessP14, JPEGLosslessSV1, JPEGLSLossless,
        JPEGLSNearLossless, JPEG2000Lossless, JPEG2000, RLELossless,
    ]


class DimsePacs:
    def __init__(self, host: str, port: int, called_ae: str, calling_ae: str,
                 timeout: float = TIMEOUT_SECONDS) -> None:
        self._host, self._port = host, port
        self._called, self._calling = called_ae, calling_ae
        self._timeout = timeout

    def _ae(self) -> Any:
        from pynetdicom import AE

        ae = AE(ae_title=self._calling)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self._timeout
        ae.connection_timeout = self._timeout
        return ae

    def _associate(self, ae: Any, **kwargs: Any) -> Any:
        try:
            assoc = ae.associate(self._host, self._port, ae_title=self._called, **kwargs)
        except (OSError, ValueError) as exc:
            raise PacsError(say(N_("the PACS could not be reached (%(cause)s)"),
                                cause=type(exc).__name__)) from None
        if assoc.is_established:
            return assoc
        if assoc.is_rejected:
            raise PacsError(N_("the PACS rejected the association: check the called and "
                               "calling AE titles, and that the PACS knows the portal's AE "
                               "title"))
        raise PacsError(say(N_("the PACS could not be reached at %(host)s:%(port)s (connection "
                               "refused, no answer, or association aborted)"),
                            host=self._host, port=self._port))

    def echo(self) -> str:
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        ae = self._ae()
        ae.add_requested_context(Verification)
        assoc = self._associate(ae)
        try:
            status = assoc.send_c_echo()
        finally:
            assoc.release()
        if not status or status.Status != 0:
            raise PacsError(N_("the PACS did not confirm the C-ECHO"))
        return N_("connected: the PACS answered a C-ECHO")

    def search(self, criteria: SearchCriteria) -> list[StudyHit]:
        from pynetdicom.sop_class import (  # type: ignore[attr-defined]
            StudyRootQueryRetrieveInformationModelFind,
        )

        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        from pydicom import Dataset  # with its first use (see _transfer_syntaxes)
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        for keyword in RESULT_FIELDS:
            setattr(query, keyword, "")
        for keyword, value in _query_filters(criteria).items():
            setattr(query, keyword, value)
        assoc = self._associate(ae)
        hits: list[StudyHit] = []
        try:
            for status, identifier in assoc.send_c_find(
                    query, StudyRootQueryRetrieveInformationModelFind):
                if not status:
                    raise PacsError(N_("the PACS stopped answering the C-FIND"))
                if status.Status in (0xFF00, 0xFF01) and identifier is not None:
                    hit = _hit(identifier)
                    if hit is not None and _keep(hit, criteria) and len(hits) < MAX_RESULTS:
                        hits.append(hit)
                elif status.Status not in (0x0000, 0xFF00, 0xFF01):
                    raise PacsError(say(N_("the PACS refused the C-FIND (status %(status)s)"),
                                        status=f"0x{status.Status:04X}"))
        finally:
            assoc.release()
        return hits

    def retrieve(self, study_uid: str, folder: Path, limits: StudyLimits) -> Retrieved:
        from pynetdicom import build_role, evt
        from pynetdicom.dsutils import encode_file_meta
        from pynetdicom.sop_class import (  # type: ignore[attr-defined]
            ComputedRadiographyImageStorage,
            DigitalXRayImageStorageForPresentation,
            DigitalXRayImageStorageForProcessing,
            StudyRootQueryRetrieveInformationModelGet,
        )

        # The storage classes a chest radiograph comes in; other images of a mixed study
        # are not negotiated, so the PACS reports them as not sent.
        storage = (ComputedRadiographyImageStorage, DigitalXRayImageStorageForPresentation,
                   DigitalXRayImageStorageForProcessing)
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        # One presentation context per transfer syntax: an acceptor accepts one syntax per
        # context, and the PACS can then send each file as it holds it instead of having to
        # transcode (which a PACS may not be able to do, e.g. from JPEG 2000).
        for sop_class in storage:
            for syntax in _transfer_syntaxes():
                ae.add_requested_context(sop_class, syntax)
        roles = [build_role(sop_class, scp_role=True) for sop_class in storage]
        study = StudyFolder(folder, limits)
        refused: list[StudyRefused] = []

        def on_store(event: Any) -> int:
            if refused:
                return 0xA700  # out of resources: the study is refused already
            try:
                # A Part 10 file: a file meta for the negotiated transfer syntax, then the
                # data set's bytes as received, never decoded here. What
                # event.encoded_dataset() gives, written from pynetdicom's own buffer
                # rather than from the two copies of it that call makes.
                study.start_file()
                study.write(b"\0" * 128 + b"DICM" + encode_file_meta(event.file_meta))
                with event.request.DataSet.getbuffer() as received:
                    study.write(received)
                study.close_file()
            except StudyRefused as exc:
                refused.append(exc)
                study.close_quietly()
                # Stop the PACS sending the rest (from a handler: without waiting). The C-GET
                # loop would then wait the whole DIMSE timeout for a message that cannot
                # come: it is told to stop waiting.
                event.assoc.abort(block=False)
                event.assoc.dimse_timeout = 0
                return 0xA700
            return 0x0000

        from pydicom import Dataset  # with its first use (see _transfer_syntaxes)
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = study_uid
        assoc = self._associate(ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
        final = None
        try:
            for status, _identifier in assoc.send_c_get(
                    query, StudyRootQueryRetrieveInformationModelGet):
                if refused:
                    raise refused[0]
                if not status:
                    raise PacsError(N_("the PACS stopped answering the C-GET"))
                final = status
        finally:
            if assoc.is_established:
                assoc.release()
        if refused:
            raise refused[0]
        out = Retrieved(files=study.files)
        if final is not None:
            out.failed = int(final.get("NumberOfFailedSuboperations", 0) or 0)
            if final.Status not in (0x0000, 0xB000, 0xFF00) and not out.files:
                raise PacsError(say(N_("the PACS refused the C-GET (status %(status)s)"),
                                    status=f"0x{final.Status:04X}"))
        return out

    def thumbnail(self, study_uid: str) -> bytes | None:
        return None  # DIMSE has no rendering service


def study_uid_ok(value: str) -> bool:
    return len(value) <= 64 and bool(UID_PATTERN.match(value))


def client_for(kind: str, *, url: str, host: str, port: int | None, called_ae: str,
               calling_ae: str, username: str, password: str) -> PacsClient:
    if kind == "dicomweb":
        return DicomWebPacs(url, username, password)
    return DimsePacs(host, int(port or 104), called_ae, calling_ae)

