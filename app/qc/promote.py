"""Promote a discordant QC study to the case library: imported from the PACS as a draft
teaching case through the PACS import's own de-identification path, with both reads of the
QC record attached to it as *candidate* reference reads.

Which records: discordant ones only — the primary and QC reads differ on the sputum
decision (``primary_tb != qc_tb``, both known), or the QC radiologist graded a clinically
significant or a major discrepancy (2b, 3a, 3b). Concordant studies (1, 2a with the same
decision) teach little that the library lacks.

The record keeps only a keyed hash of the study reference, so the trainer types the
reference again (the Study Instance UID or the accession number the QC import was given);
it must match the record's pseudonym. The study is then found on the chosen PACS endpoint
and imported by ``start_pacs_import`` with the follow-up ``qc.promote``, which the job runs
once its study is in: the new case gets the record's two reads and the record its case.
What was typed is never stored, logged or audited.

Candidate reads: a ReferenceRead of kind ``candidate`` by its author — the primary read by
the reader who made it (often a trainee), the QC read by the QC radiologist. Candidates are
shown on the case page with whose read each is, and never count toward the reference
consensus (``reference_for`` counts expert reads only), so the case cannot be published on
them. A trainer accepts one by saving it, edited as needed, as their own expert read on the
case's read page (opened pre-filled with the candidate's answers). Expert reads by the two
authors were the other way: but a trainee's read would then be a reference read at once,
and two discordant expert reads would show as ties to adjudicate rather than as proposals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

from flask_babel import gettext
from sqlalchemy import or_, select

from app.audit.services import record
from app.auth.models import User
from app.cases.candidates import register_candidate_describer
from app.cases.models import Case, ReadKind, ReferenceRead
from app.extensions import db
from app.jobs.lifecycle import JobError
from app.jobs.models import Job
from app.jobs.pacs_import import register_follow_up, start_pacs_import
from app.pacs.clients import PacsError, SearchCriteria, StudyHit, study_uid_ok
from app.pacs.models import PacsEndpoint
from app.pacs.services import search
from app.qc.models import QcRecord
from app.qc.pseudonyms import MAX_REFERENCE_LENGTH, install_secret, matches
from app.schemes.answers import validate_answers
from app.schemes.parts import Scheme
from app.schemes.registry import get_scheme
from app.user_errors import UserError

FOLLOW_UP = "qc.promote"
#: Grades that make a record discordant whatever the sputum decisions say: a clinically
#: significant minor discrepancy (2b) and every major one (3a, 3b).
DISCORDANT_GRADES = frozenset({"2b", "3a", "3b"})
# A PACS that cannot be used is the gateway's failure, not the request's.
PACS_FAILED = 502


class PromoteError(UserError):
    """A refused promotion; the message says why (``status``: 400, 409, 502)."""


class _Graded(Protocol):
    primary_tb: bool | None
    qc_tb: bool | None
    grade: str


def is_discordant(qc: _Graded) -> bool:
    """A record (or a row of one) that may be promoted: see the module's docstring."""
    decisions_differ = (qc.primary_tb is not None and qc.qc_tb is not None
                        and qc.primary_tb != qc.qc_tb)
    return decisions_differ or qc.grade in DISCORDANT_GRADES


#: Discordant records offered for promotion on the QC records page, newest QC date first.
PROMOTABLE_SHOWN = 50


def promotable_records(limit: int = PROMOTABLE_SHOWN) -> list[QcRecord]:
    """Discordant records not yet in the library, newest QC date first: where
    the QC centre's trainers find the studies worth teaching from."""
    discordant = or_(QcRecord.grade.in_(sorted(DISCORDANT_GRADES)),
                     QcRecord.primary_tb.is_not(None) & QcRecord.qc_tb.is_not(None)
                     & (QcRecord.primary_tb != QcRecord.qc_tb))
    return list(db.session.scalars(
        select(QcRecord).where(discordant, QcRecord.case_id.is_(None))
        .order_by(QcRecord.qc_date.desc().nulls_last(), QcRecord.id.desc()).limit(limit)))


def import_in_progress(qc: QcRecord) -> Job | None:
    """The PACS import promoting the record, while it is queued or running."""
    job = qc.promote_job
    return job if job is not None and not job.finished and qc.case_id is None else None


def refusal(qc: QcRecord) -> PromoteError | None:
    """Why the record cannot be promoted now, whatever is typed; None when it can."""
    if qc.case_id is not None:
        return PromoteError(gettext(
            "this QC study is already in the library as case %(case)s", case=qc.case_id), 409)
    if import_in_progress(qc) is not None:
        return PromoteError(gettext(
            "this QC study is being imported from the PACS (job %(job)s)",
            job=qc.promote_job_id), 409)
    if not is_discordant(qc):
        return PromoteError(gettext(
            "only a discordant QC study can be promoted: the sputum decisions differ, or the "
            "grade is 2b, 3a or 3b (this one is graded %(grade)s with the same decision)",
            grade=qc.grade))
    if qc.reader_id == qc.qc_radiologist_id:
        return PromoteError(gettext(
            "the primary read and the QC read have the same author: there are not two reads "
            "to propose"))
    return None


def find_study(endpoint: PacsEndpoint, reference: str) -> StudyHit:
    """The one study the PACS holds under ``reference``: a Study Instance UID (digits and
    dots) or else an accession number. Raises PromoteError (PACS failures with 502)."""
    by_uid = study_uid_ok(reference)
    hits: list[StudyHit] = []
    # The pseudonym ignores letter case ("acc-001" is "ACC-001"); a PACS may not: as typed,
    # then in capitals.
    for text in dict.fromkeys([reference] if by_uid else [reference, reference.upper()]):
        criteria = (SearchCriteria(study_uid=text, modality="any") if by_uid
                    else SearchCriteria(accession=text, modality="any"))
        try:
            hits = search(endpoint, criteria)
        except PacsError as exc:
            raise PromoteError(gettext("the PACS could not be searched: %(reason)s",
                                       reason=exc), PACS_FAILED) from None
        if by_uid:
            hits = [h for h in hits if h.study_uid == reference]
        if hits:
            break
    if not hits:
        raise PromoteError(gettext(
            "the PACS %(endpoint)s holds no study with this reference", endpoint=endpoint.name))
    if len(hits) > 1:
        raise PromoteError(gettext(
            "the PACS %(endpoint)s holds %(count)s studies with this accession number: type "
            "the study's Study Instance UID instead", endpoint=endpoint.name, count=len(hits)))
    if hits[0].modalities and not hits[0].importable:
        raise PromoteError(gettext(
            "the study on the PACS holds no chest radiograph (CR or DX images)"))
    return hits[0]


def promote(qc: QcRecord, reference: str, endpoint: PacsEndpoint, *, actor: User) -> Job:
    """Check the typed reference against the record, find the study on the PACS and queue its
    import with the follow-up that attaches the reads. Nothing is queued or written when it
    is refused (PromoteError)."""
    refused = refusal(qc)
    if refused is not None:
        raise refused
    typed = " ".join(reference.split())
    if not typed:
        raise PromoteError(gettext("type the study's reference (Study Instance UID or "
                                   "accession number)"))
    if len(typed) > MAX_REFERENCE_LENGTH:
        raise PromoteError(gettext("a study reference has at most %(most)s characters",
                                   most=MAX_REFERENCE_LENGTH))
    if not matches(typed, qc.study_pseudonym, install_secret()):
        raise PromoteError(gettext(
            "this reference is not the one of this QC record's study: type the Study Instance "
            "UID or accession number the QC import was given"))
    hit = find_study(endpoint, typed)
    record_id, actor_id = qc.id, actor.id
    try:
        job = start_pacs_import(endpoint, [hit.study_uid], actor=actor,
                                then={"name": FOLLOW_UP, "record_id": record_id})
    except JobError as exc:
        raise PromoteError(str(exc).rstrip(".")) from None
    except PacsError as exc:
        raise PromoteError(gettext("nothing was imported: %(reason)s", reason=exc),
                           PACS_FAILED) from None
    # The queue may have run the job already (its follow-up committed): read the row anew.
    fresh = db.session.get(QcRecord, record_id, populate_existing=True)
    assert fresh is not None
    fresh.promote_job_id = job.id
    record("qc.promote", actor=db.session.get(User, actor_id), object_type="qc_record",
           object_id=record_id, job=job.id, endpoint=endpoint.name)
    db.session.commit()
    return job


def attach_reads(job: Job, case_ids: list[int], params: dict[str, Any]) -> None:
    """The follow-up the import runs once its study is in: the record's primary and QC reads
    on the new case as candidate reference reads, and the record linked to the case. A
    study that was already in the library is not imported again (its images come back as
    duplicates): the reads go on the case that holds it. Does nothing when the job found no
    case (the study was refused; the job's page says why), or when the record already has
    its case (a job taken up again)."""
    qc = db.session.get(QcRecord, int(params["record_id"]))
    if qc is None or qc.case_id is not None or not case_ids:
        return
    case = db.session.get(Case, case_ids[0])
    if case is None:
        return
    scheme = get_scheme(qc.scheme_key, qc.scheme_version)
    for author_id, answers in ((qc.reader_id, qc.primary_read),
                               (qc.qc_radiologist_id, qc.qc_read)):
        db.session.add(ReferenceRead(
            case=case, author_id=author_id, kind=ReadKind.CANDIDATE.value,
            scheme_key=scheme.key, scheme_version=scheme.version,
            answers=validate_answers(scheme, answers, partial=True), marks=[], version=1,
            current=True))
        record("case.read", actor=job.created_by, object_type="case", object_id=case.id,
               kind=ReadKind.CANDIDATE.value, version=1, scheme=scheme.ref)
    qc.case_id = case.id
    db.session.commit()


@dataclass(frozen=True)
class CandidateRead:
    """A candidate read as the case page shows it: whose it is and in which role."""

    read: ReferenceRead
    scheme: Scheme
    # "primary": the reader's own read of the live study; "qc": the QC radiologist's re-read;
    # "other": the QC record is gone, only the author is known.
    role: str
    author_name: str
    read_date: date | None


def candidate_reads(case: Case) -> list[CandidateRead]:
    """The case's current candidate reads, the primary read first."""
    reads = [r for r in case.current_reads if r.kind == ReadKind.CANDIDATE.value]
    if not reads:
        return []
    qc = db.session.scalar(select(QcRecord).where(QcRecord.case_id == case.id).limit(1))
    found = []
    for read in reads:
        role, when = "other", None
        if qc is not None and read.author_id == qc.reader_id:
            role, when = "primary", qc.read_date
        elif qc is not None and read.author_id == qc.qc_radiologist_id:
            role, when = "qc", qc.qc_date
        found.append(CandidateRead(
            read, get_scheme(read.scheme_key, read.scheme_version), role,
            read.author.full_name if read.author else "", when))
    order = {"primary": 0, "qc": 1, "other": 2}
    return sorted(found, key=lambda c: (order[c.role], c.read.id))


register_follow_up(FOLLOW_UP, attach_reads)
register_candidate_describer(candidate_reads)
