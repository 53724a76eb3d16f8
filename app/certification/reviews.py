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

from flask_babel import force_locale, format_date, gettext
from sqlalchemy import Select, select

from app.audit.services import record
from app.auth.models import Clinic, User
from app.certification.models import (
    Certificate,
    CertificateReview,
    CertificationNotice,
    Programme,
    Requirement,
)
from app.certification.notices import deliver, notify
from app.certification.services import VALID, CertificationError, issue_if_met, status
from app.certification.wording import REVIEW_STATES, requirement_step
from app.db_types import utcnow
from app.extensions import db
from app.i18n import N_, language_of
from app.locking import lock_key, lock_row, retrying
from app.quizzes.models import ENDED_STATES, Attempt, AttemptState
from app.quizzes.results import VerdictChange
from app.quizzes.services import CRITERIA_METRICS
from app.sentences import PHRASES, Message, message, phrase

OPEN, REVOKED, KEPT, WITHDRAWN = "open", "revoked", "kept", "withdrawn"
# The figures a review shows: those kept in a certificate's evidence, and any a pass
# criterion uses.
EVIDENCE_METRICS = ("sensitivity", "specificity", "accuracy", "kappa", "auc")
# The decision recorded when re-scoring withdraws a review (translated where shown).
WITHDRAWN_REASON = N_("the evidence meets the rule again after re-scoring")


def _busy() -> CertificationError:
    return CertificationError(gettext("the database stayed busy: try again in a moment"), 409)


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
    return gettext("not computable") if value is None else f"{float(value):.2f}"


def shortfall_reason(shortfalls: Sequence[dict[str, Any]]) -> str:
    """One sentence per evidence attempt that no longer meets its requirement, in the
    current language (the review keeps the figures: the lead's page words them again in
    the lead's language, the holder's notice in the holder's)."""
    sentences = []
    for item in shortfalls:
        what = requirement_step(item["kind"], item["exercise"])
        if item["attempt_number"] is None:
            sentences.append(gettext("%(step)s: the attempt behind the certificate no longer "
                                     "exists.", step=what))
            continue
        ended = (item["ended_at"] or "")[:10]
        below = [
            gettext("%(metric)s %(after)s against a minimum of %(minimum)s (%(before)s at "
                    "issue)", metric=gettext(str(CRITERIA_METRICS.get(c["metric"], c["metric"]))),
                    after=_figure(item["after"].get(c["metric"])),
                    minimum=f"{c['minimum']:.2f}",
                    before=_figure(item["before"].get(c["metric"])))
            for c in item["criteria"]
            if item["after"].get(c["metric"]) is None
            or item["after"][c["metric"]] < c["minimum"]
        ]
        if below:
            sentence = gettext("%(step)s: attempt %(number)s (ended %(date)s) no longer passes "
                               "after re-scoring: %(figures)s.", step=what,
                               number=item["attempt_number"], date=ended,
                               figures="; ".join(below))
        else:
            sentence = gettext("%(step)s: attempt %(number)s (ended %(date)s) no longer passes "
                               "after re-scoring.", step=what, number=item["attempt_number"],
                               date=ended)
        if item["other_attempt"] is not None:
            sentence += " " + gettext("Attempt %(number)s, also ended before the certificate "
                                      "was issued, passes.", number=item["other_attempt"])
        sentences.append(sentence)
    return " ".join(sentences)


# A re-scoring job's summary words the figures again in its reader's language.
PHRASES["shortfalls"] = shortfall_reason


@dataclass
class Outcome:
    lines: list[Message]
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
    lines: list[Message] = []
    notices = []
    for certificate in _valid_certificates(user, programme):
        shortfalls = evidence_shortfalls(certificate)
        latest = _latest_review(certificate)
        is_open = latest is not None and latest.state == OPEN
        if not shortfalls:
            if is_open and latest is not None:
                latest.state, latest.decided_at = WITHDRAWN, now
                latest.decision_reason = WITHDRAWN_REASON
                record("certificate.review.withdraw", actor=None, object_type="certificate",
                       object_id=certificate.id, review=latest.id)
                with force_locale(language_of(user)):
                    notices.append(notify(
                        user, gettext("Your CXR Academy certificate is no longer under review"),
                        gettext("Your exam attempts were scored again. Certificate %(code)s "
                                "(%(programme)s) meets the programme's rule again and stays "
                                "valid.", code=certificate.code, programme=programme.title),
                        programme=programme, certificate=certificate))
                lines.append(message(N_("certificate %(code)s (%(name)s, %(programme)s): "
                                        "review withdrawn, the evidence holds again"),
                                     code=certificate.code, name=user.full_name,
                                     programme=programme.title))
            continue
        if latest is not None and latest.figures == shortfalls and latest.state in (OPEN, KEPT):
            continue  # already listed, or a lead kept it on these very figures
        with force_locale("en"):  # the record's wording; pages word the figures again
            reason = shortfall_reason(shortfalls)
        if is_open and latest is not None:  # re-scored again: the open review shows the news
            latest.figures, latest.reason = shortfalls, reason
            record("certificate.review.update", actor=None, object_type="certificate",
                   object_id=certificate.id, review=latest.id)
            lines.append(message(N_("certificate %(code)s (%(name)s, %(programme)s): review "
                                    "updated: %(reason)s"), code=certificate.code,
                                 name=user.full_name, programme=programme.title,
                                 reason=phrase("shortfalls", shortfalls)))
            continue
        review = CertificateReview(certificate=certificate, state=OPEN, reason=reason,
                                   figures=shortfalls, opened_at=now)
        db.session.add(review)
        db.session.flush()
        record("certificate.review.open", actor=None, object_type="certificate",
               object_id=certificate.id, review=review.id, reason=reason)
        with force_locale(language_of(user)):
            notices.append(notify(
                user, gettext("Your CXR Academy certificate is under review"),
                gettext("Reference reads were corrected and your exam attempts were scored "
                        "again.") + " " + shortfall_reason(shortfalls) + "\n\n"
                + gettext("Certificate %(code)s (%(programme)s) stays valid while a programme "
                          "lead reviews it; you will be told the decision.",
                          code=certificate.code, programme=programme.title),
                programme=programme, certificate=certificate))
        lines.append(message(N_("certificate %(code)s (%(name)s, %(programme)s): listed for "
                                "the programme lead's review: %(reason)s"),
                             code=certificate.code, name=user.full_name,
                             programme=programme.title, reason=phrase("shortfalls", shortfalls)))
    issued = issue_if_met(user, programme, now)
    if issued is not None:
        with force_locale(language_of(user)):
            notices.append(notify(
                user, gettext("Your CXR Academy certificate has been issued"),
                gettext("Reference reads were corrected and your exam attempts were scored "
                        "again: you now meet every requirement of %(programme)s. Certificate "
                        "%(code)s is valid until %(date)s.", programme=programme.title,
                        code=issued.code, date=format_date(issued.expires_at.date(), "long")),
                programme=programme, certificate=issued))
        lines.append(message(N_("certificate %(code)s (%(name)s, %(programme)s): issued after "
                                "re-scoring"), code=issued.code, name=user.full_name,
                             programme=programme.title))
    db.session.flush()
    return Outcome(lines, [n.id for n in notices])


def after_rescore(sender: object, *, exercise_ids: Sequence[int],
                  changes: Sequence[VerdictChange], **_: object) -> list[Message]:
    """Receiver of quizzes.signals.attempts_rescored: every trainee with an ended attempt
    at a re-scored exercise is re-evaluated for each programme that uses it, one
    transaction each (so a re-run after an interruption finishes the job); trainees whose
    verdict changed with no consequence for a certificate are told too."""
    programmes = db.session.scalars(
        select(Programme).join(Requirement).where(Requirement.exercise_id.in_(exercise_ids))
        .order_by(Programme.id)
    ).unique().all()
    lines: list[Message] = []
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
        with force_locale(language_of(attempt.user)):
            verdict = {True: gettext("passed"), False: gettext("failed"),
                       None: gettext("no verdict")}
            notice = notify(
                attempt.user, gettext("Your CXR Academy exam result has changed"),
                gettext("Reference reads were corrected and your attempt %(number)s at "
                        "“%(title)s” was scored again: now %(now)s (was %(was)s). Your "
                        "certification is unchanged.", number=attempt.number,
                        title=attempt.exercise.title, now=verdict[change.passed_after],
                        was=verdict[change.passed_before]))
        db.session.commit()
        notice_ids.append(notice.id)
    sent, failed = deliver(notice_ids)
    if notice_ids:
        if sent or failed:
            lines.append(message(N_("%(count)s trainees told on their certification page; "
                                    "%(sent)s e-mailed, %(failed)s e-mails failed"),
                                 count=len(notice_ids), sent=sent, failed=failed))
        else:
            lines.append(message(N_("%(count)s trainees told on their certification page"),
                                 count=len(notice_ids)))
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


def _decision_notice(certificate: Certificate, review: CertificateReview, *, revoke: bool,
                     reason: str) -> CertificationNotice:
    """The holder's notice of a lead's decision, in the holder's language."""
    programme = certificate.programme
    with force_locale(language_of(certificate.user)):
        if revoke:
            subject = gettext("Your CXR Academy certificate has been revoked")
            outcome = gettext("A programme lead revoked certificate %(code)s (%(programme)s).",
                              code=certificate.code, programme=programme.title)
        else:
            subject = gettext("Your CXR Academy certificate stays valid")
            outcome = gettext("A programme lead reviewed certificate %(code)s (%(programme)s) "
                              "and kept it: it stays valid.", code=certificate.code,
                              programme=programme.title)
        why = gettext("Why it was reviewed: %(reason)s",
                      reason=shortfall_reason(review.figures or []))
        lead = gettext("The lead's reason: %(reason)s", reason=reason)
        return notify(certificate.user, subject, f"{outcome}\n\n{why}\n{lead}",
                      programme=programme, certificate=certificate)


def decide(review: CertificateReview, *, revoke: bool, reason: str,
           actor: User) -> CertificateReview:
    """A lead's decision on an open review: revoke the certificate, or keep it; with a
    reason, audited, and the holder told. Of two leads deciding at once, the second is
    told it was decided already."""
    reason = reason.strip()
    if not reason:
        raise CertificationError(gettext("give the reason for your decision"))

    def work() -> tuple[CertificateReview, int]:
        # The same lock as issuing and re-evaluation take: a re-scoring running meanwhile
        # sees the decision, or the decision sees what the re-scoring did.
        lock_key("certificate", review.certificate.programme_id, review.certificate.user_id)
        locked = lock_row(CertificateReview, review.id)
        if locked is None or locked.state != OPEN:
            db.session.rollback()
            raise CertificationError(gettext(
                "this review was decided already (%(state)s)",
                state=str(REVIEW_STATES.get(locked.state, locked.state)) if locked
                else gettext("deleted")), 409)
        certificate = lock_row(Certificate, locked.certificate_id)
        assert certificate is not None  # the review's foreign key
        now = utcnow()
        locked.state = REVOKED if revoke else KEPT
        locked.decided_at, locked.decided_by, locked.decision_reason = now, actor, reason
        if revoke and certificate.revoked_at is None:
            certificate.revoked_at = now
            certificate.revoke_reason = f"After re-scoring: {locked.reason} {reason}"
            record("certificate.revoke", actor=actor, object_type="certificate",
                   object_id=certificate.id, reason=certificate.revoke_reason)
        record(f"certificate.review.{locked.state}", actor=actor, object_type="certificate",
               object_id=certificate.id, review=locked.id, reason=reason,
               figures=locked.figures)
        notice = _decision_notice(certificate, locked, revoke=revoke, reason=reason)
        db.session.commit()
        return locked, notice.id

    decided, notice_id = retrying(work, _busy)
    deliver([notice_id])
    return decided
