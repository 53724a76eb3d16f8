"""Who may see which case, and which cases may join the exam bank.

The case library sits below exercises and attempts: it knows nothing of them. Where an area
above it can grant or refuse something about a case (an open attempt lets its trainee see
its own cases; a case in a practice set cannot become an exam-bank case), that area answers
one of the signals below; app set-up connects the receivers (see app/quizzes/access.py).
"""

from __future__ import annotations

from blinker import Namespace

from app.auth.models import User
from app.auth.roles import Role
from app.cases.models import Case, CaseStatus

_signals = Namespace()

#: Asked when the library alone does not let ``sender`` (a user) see ``case``: a receiver
#: returns True when something it owns grants it. Nobody answering means no.
case_access_requested = _signals.signal("case-access-requested")

#: Asked before ``sender`` (a case) joins the exam bank: a receiver returns the reason to
#: refuse (a phrase for the trainer), or None.
exam_bank_requested = _signals.signal("exam-bank-requested")


def can_view_case(user: User, case: Case) -> bool:
    """Trainers and administrators see the whole library; trainees see published,
    non-exam-bank cases, and whatever an area above grants them (the cases of their own
    open attempts; exam-bank cases only ever that way)."""
    if user.has_role(Role.TRAINER, Role.ADMIN):
        return True
    if case.status == CaseStatus.PUBLISHED.value and not case.exam_bank:
        return True
    return any(granted is True for _, granted in case_access_requested.send(user, case=case))


def exam_bank_refusals(case: Case) -> list[str]:
    """Why ``case`` cannot join the exam bank (empty: it can)."""
    # Each reason written out in the reader's language (a receiver may answer a phrase that
    # translates itself when shown).
    return [str(reason) for _, reason in exam_bank_requested.send(case) if reason]
