"""Certificates after re-scoring (reference reads corrected, attempts scored again).

Nothing about a certificate changes silently. A trainee whose attempts now meet every
requirement is issued the certificate (and told). A certificate whose evidence no longer
meets its programme's rule is listed for the programme lead with the figures at issue and
after re-scoring and the reason; it changes only when a lead revokes it (or stays when the
lead keeps it), with the lead's reason in the audit log, and the holder is told each step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select

from app.audit.services import record
from app.auth.models import Clinic, User
from app.certification.models import Certificate, CertificateReview, Programme, Requirement
from app.certification.notices import deliver, notify
from app.certification.services import VALID, CertificationError, issue_if_met, status
from app.db_types import utcnow
from app.extensions import db
from app.locking import lock_key, lock_row, retrying
from app.quizzes.models import ENDED_STATES, Attempt, AttemptState
from app.quizzes.results import VerdictChange
from app.quizzes.services import CRITERIA_METRICS

OPEN, REVOKED, KEPT, WITHDRAWN = "open", "revoked", "kept", "withdrawn"
# The figures a review shows: those kept in a certificate's evidence, and any a pass
# criterion uses.
EVIDENCE_METRICS = ("sensitivity", "specificity", "accuracy", "kappa", "auc")
REQUIREMENT_WORDS = {"practice": "Complete", "exam": "Pass", "renewal": "To renew, pass"}


def _busy() -> CertificationError:
    return CertificationError("the database stayed busy: try again in a moment", 409)


def _meets(kind: str, attempt: Attempt) -> bool:
    """services.progress's rule for one attempt."""
    if kind == "practice":
        return attempt.state == AttemptState.SUBMITTED.value
    return attempt.state in ENDED_STATES and attempt.passed is True


def _metrics(attempt: Attempt | None) -> dict[str, Any]:
    return dict(((attempt.metrics or {}).get("metrics") or {}) if attempt else {})


def evidence_shortfalls(certificate: Certificate) -> list[dict[str, Any]]:
    """The evidence attempts that no longer meet their requirement, each with its figures at
    issue and now, and the exercise's pass criteria. Empty when the evidence still holds
    (and for certificates granted by exception, which rest on no attempt)."""
    out = []
    for item in (certificate.evidence or {}).get("requirements", []):
        kind, attempt_id = item.get("kind", "exam"), item.get("attempt_id")
        attempt = (db.session.get(Attempt, attempt_id, populate_existing=True)
                   if attempt_id is not None else None)
        if attempt is not None and _meets(kind, attempt):
            continue
        criteria = list(attempt.exercise.criteria or []) if attempt is not None else []
        shown = list(EVIDENCE_METRICS) + [c["metric"] for c in criteria
                                          if c["metric"] not in EVIDENCE_METRICS]
        before, after = item.get("metrics") or {}, _metrics(attempt)
        out.append({
            "kind": kind,
            "exercise": item.get("exercise"),
            "attempt_id": attempt_id,
            "attempt_number": attempt.number if attempt is not None else None,
            "ended_at": item.get("ended_at"),
            "passed_after": attempt.passed if attempt is not None else None,
            "before": {m: before.get(m) for m in shown if m in before or m in after},
            "after": {m: after.get(m) for m in shown if m in before or m in after},
            "criteria": [{"metric": c["metric"], "minimum": c["minimum"]} for c in criteria],
            "other_attempt": _other_meeting(certificate, kind, attempt),
        })
    return out


def _other_meeting(certificate: Certificate, kind: str, attempt: Attempt | None) -> int | None:
    """The number of another attempt at the same exercise, ended by the time the
    certificate was issued, that meets the requirement now: worth knowing to the lead."""
    if attempt is None:
        return None
    others = db.session.scalars(
        select(Attempt).where(
            Attempt.user_id == attempt.user_id, Attempt.exercise_id == attempt.exercise_id,
            Attempt.id != attempt.id, Attempt.state.in_(ENDED_STATES),
            Attempt.ended_at <= certificate.issued_at,
        ).order_by(Attempt.number.desc())
    )
    return next((a.number for a in others if _meets(kind, a)), None)


def _figure(value: Any) -> str:
    return "not computable" if value is None else f"{float(value):.2f}"


def shortfall_reason(shortfalls: Sequence[dict[str, Any]]) -> str:
    """One sentence per evidence attempt that no longer meets its requirement."""
    sentences = []
    for item in shortfalls:
        what = f"{REQUIREMENT_WORDS.get(item['kind'], 'Pass')} “{item['exercise']}”"
        if item["attempt_number"] is None:
            sentences.append(f"{what}: the attempt behind the certificate no longer exists.")
            continue
        ended = (item["ended_at"] or "")[:10]
        below = [
            f"{CRITERIA_METRICS.get(c['metric'], c['metric'])} "
            f"{_figure(item['after'].get(c['metric']))} against a minimum of "
            f"{c['minimum']:.2f} ({_figure(item['before'].get(c['metric']))} at issue)"
            for c in item["criteria"]
            if item["after"].get(c["metric"]) is None
            or item["after"][c["metric"]] < c["minimum"]
        ]
        sentence = (f"{what}: attempt {item['attempt_number']} (ended {ended}) no longer "
                    f"passes after re-scoring")
        sentence += (": " + "; ".join(below) + ".") if below else "."
        if item["other_attempt"] is not None:
            sentence += (f" Attempt {item['other_attempt']}, also ended before the "
                         "certificate was issued, passes.")
        sentences.append(sentence)
    return " ".join(sentences)


@dataclass
class Outcome:
    lines: list[str]
    notice_ids: list[int]


def _valid_certificates(user: User, programme: Programme) -> list[Certificate]:
    held = db.session.scalars(
        select(Certificate).where(
            Certificate.user_id == user.id, Certificate.programme_id == programme.id,
            Certificate.revoked_at.is_(None),
        ).order_by(Certificate.id).execution_options(populate_existing=True)
    ).all()
    return [c for c in held if status(c) == VALID]


def _latest_review(certificate: Certificate) -> CertificateReview | None:
    return db.session.scalars(
        select(CertificateReview).where(CertificateReview.certificate_id == certificate.id)
        .order_by(CertificateReview.id.desc()).execution_options(populate_existing=True)
    ).first()


def reevaluate(user: User, programme: Programme) -> Outcome:
    """One trainee and programme after re-scoring, under the certificate lock of
    services.issue_if_met; the caller commits. Returns lines for the person who ran the
    re-scoring and the notices to e-mail after the commit."""
    lock_key("certificate", programme.id, user.id)
    now = utcnow()
    lines: list[str] = []
    notices = []
    for certificate in _valid_certificates(user, programme):
        shortfalls = evidence_shortfalls(certificate)
        latest = _latest_review(certificate)
        is_open = latest is not None and latest.state == OPEN
        if not shortfalls:
            if is_open and latest is not None:
                latest.state, latest.decided_at = WITHDRAWN, now
                latest.decision_reason = "the evidence meets the rule again after re-scoring"
                record("certificate.review.withdraw", actor=None, object_type="certificate",
                       object_id=certificate.id, review=latest.id)
                notices.append(notify(
                    user, "Your CXR Academy certificate is no longer under review",
                    f"Your exam attempts were scored again. Certificate {certificate.code} "
                    f"({programme.title}) meets the programme's rule again and stays valid.",
                    programme=programme, certificate=certificate))
                lines.append(f"certificate {certificate.code} ({user.full_name}, "
                             f"{programme.title}): review withdrawn, the evidence holds again")
            continue
        if latest is not None and latest.figures == shortfalls and latest.state in (OPEN, KEPT):
            continue  # already listed, or a lead kept it on these very figures
        reason = shortfall_reason(shortfalls)
        if is_open and latest is not None:  # re-scored again: the open review shows the news
            latest.figures, latest.reason = shortfalls, reason
            record("certificate.review.update", actor=None, object_type="certificate",
                   object_id=certificate.id, review=latest.id)
            lines.append(f"certificate {certificate.code} ({user.full_name}, "
                         f"{programme.title}): review updated: {reason}")
            continue
        review = CertificateReview(certificate=certificate, state=OPEN, reason=reason,
                                   figures=shortfalls, opened_at=now)
        db.session.add(review)
        db.session.flush()
        record("certificate.review.open", actor=None, object_type="certificate",
               object_id=certificate.id, review=review.id, reason=reason)
        notices.append(notify(
            user, "Your CXR Academy certificate is under review",
            f"Reference reads were corrected and your exam attempts were scored again. "
            f"{reason}\n\nCertificate {certificate.code} ({programme.title}) stays valid "
            "while a programme lead reviews it; you will be told the decision.",
            programme=programme, certificate=certificate))
        lines.append(f"certificate {certificate.code} ({user.full_name}, {programme.title}): "
                     f"listed for the programme lead's review: {reason}")
    issued = issue_if_met(user, programme, now)
    if issued is not None:
        notices.append(notify(
            user, "Your CXR Academy certificate has been issued",
            f"Reference reads were corrected and your exam attempts were scored again: you "
            f"now meet every requirement of {programme.title}. Certificate {issued.code} is "
            f"valid until {issued.expires_at:%Y-%m-%d}.",
            programme=programme, certificate=issued))
        lines.append(f"certificate {issued.code} ({user.full_name}, {programme.title}): "
                     "issued after re-scoring")
    db.session.flush()
    return Outcome(lines, [n.id for n in notices])


def after_rescore(sender: object, *, exercise_ids: Sequence[int],
                  changes: Sequence[VerdictChange], **_: object) -> list[str]:
    """Receiver of quizzes.signals.attempts_rescored: every trainee with an ended attempt
    at a re-scored exercise is re-evaluated for each programme that uses it, one
    transaction each (so a re-run after an interruption finishes the job); trainees whose
    verdict changed with no consequence for a certificate are told too."""
    programmes = db.session.scalars(
        select(Programme).join(Requirement).where(Requirement.exercise_id.in_(exercise_ids))
        .order_by(Programme.id)
    ).unique().all()
    lines: list[str] = []
    notice_ids: list[int] = []
    concerned: set[int] = set()
    for programme_id, required in [(p.id, [r.exercise_id for r in p.requirements])
                                   for p in programmes]:
        user_ids = db.session.scalars(
            select(Attempt.user_id).where(Attempt.exercise_id.in_(required),
                                          Attempt.state.in_(ENDED_STATES))
            .distinct().order_by(Attempt.user_id)
        ).all()
        for user_id in user_ids:

            def one(user_id: int = user_id, programme_id: int = programme_id) -> Outcome:
                user = db.session.get(User, user_id)
                programme = db.session.get(Programme, programme_id)
                if user is None or programme is None:  # deleted meanwhile
                    return Outcome([], [])
                outcome = reevaluate(user, programme)
                db.session.commit()
                return outcome

            outcome = retrying(one, _busy)
            lines += outcome.lines
            notice_ids += outcome.notice_ids
            if outcome.lines:
                concerned.add(user_id)
    required_anywhere = {r.exercise_id for p in programmes for r in p.requirements}
    for change in changes:
        if change.user_id in concerned or change.exercise_id not in required_anywhere:
            continue
        attempt = db.session.get(Attempt, change.attempt_id)
        if attempt is None:
            continue
        verdict = {True: "passed", False: "failed", None: "no verdict"}
        notice = notify(
            attempt.user, "Your CXR Academy exam result has changed",
            f"Reference reads were corrected and your attempt {attempt.number} at "
            f"“{attempt.exercise.title}” was scored again: now {verdict[change.passed_after]} "
            f"(was {verdict[change.passed_before]}). Your certification is unchanged.")
        db.session.commit()
        notice_ids.append(notice.id)
    sent, failed = deliver(notice_ids)
    if notice_ids:
        lines.append(f"{len(notice_ids)} trainees told on their certification page"
                     + (f"; {sent} e-mailed, {failed} e-mails failed" if sent or failed else ""))
    return lines


# ---- the programme lead's page ------------------------------------------------------------


def reviews_query(scope: list[str] | None,
                  states: Sequence[str]) -> Select[tuple[CertificateReview]]:
    """Reviews of certificates held by readers in the lead's countries (None: all)."""
    query = (select(CertificateReview).join(CertificateReview.certificate)
             .join(Certificate.user).where(CertificateReview.state.in_(states)))
    if scope is not None:
        query = query.join(Clinic, User.clinic_id == Clinic.id).where(
            Clinic.country_code.in_(scope))
    return query.order_by(CertificateReview.opened_at.desc(), CertificateReview.id.desc())


def decide(review: CertificateReview, *, revoke: bool, reason: str,
           actor: User) -> CertificateReview:
    """A lead's decision on an open review: revoke the certificate, or keep it; with a
    reason, audited, and the holder told. Of two leads deciding at once, the second is
    told it was decided already."""
    reason = reason.strip()
    if not reason:
        raise CertificationError("give the reason for your decision")

    def work() -> tuple[CertificateReview, int]:
        # The same lock as issuing and re-evaluation take: a re-scoring running meanwhile
        # sees the decision, or the decision sees what the re-scoring did.
        lock_key("certificate", review.certificate.programme_id, review.certificate.user_id)
        locked = lock_row(CertificateReview, review.id)
        if locked is None or locked.state != OPEN:
            db.session.rollback()
            raise CertificationError(
                f"this review was decided already ({locked.state if locked else 'deleted'})",
                409)
        certificate = lock_row(Certificate, locked.certificate_id)
        assert certificate is not None  # the review's foreign key
        now = utcnow()
        locked.state = REVOKED if revoke else KEPT
        locked.decided_at, locked.decided_by, locked.decision_reason = now, actor, reason
        programme = certificate.programme
        if revoke:
            if certificate.revoked_at is None:
                certificate.revoked_at = now
                certificate.revoke_reason = f"After re-scoring: {locked.reason} {reason}"
                record("certificate.revoke", actor=actor, object_type="certificate",
                       object_id=certificate.id, reason=certificate.revoke_reason)
            subject = "Your CXR Academy certificate has been revoked"
            outcome = (f"A programme lead revoked certificate {certificate.code} "
                       f"({programme.title}).")
        else:
            subject = "Your CXR Academy certificate stays valid"
            outcome = (f"A programme lead reviewed certificate {certificate.code} "
                       f"({programme.title}) and kept it: it stays valid.")
        record(f"certificate.review.{locked.state}", actor=actor, object_type="certificate",
               object_id=certificate.id, review=locked.id, reason=reason,
               figures=locked.figures)
        notice = notify(certificate.user, subject,
                        f"{outcome}\n\nWhy it was reviewed: {locked.reason}\n"
                        f"The lead's reason: {reason}",
                        programme=programme, certificate=certificate)
        db.session.commit()
        return locked, notice.id

    decided, notice_id = retrying(work, _busy)
    deliver([notice_id])
    return decided
