"""Who may see which case."""

from __future__ import annotations

from app.auth.models import User
from app.auth.roles import Role
from app.cases.models import Case, CaseStatus


def can_view_case(user: User, case: Case) -> bool:
    """Trainers and administrators see the whole library; everyone else only published,
    non-exam-bank cases (exercises widen this for the cases they include)."""
    if user.has_role(Role.TRAINER, Role.ADMIN):
        return True
    return case.status == CaseStatus.PUBLISHED.value and not case.exam_bank
