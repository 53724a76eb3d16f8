"""Which countries a programme lead sees: every country for administrators and leads of
all countries, else the lead's own (an empty list: none). Certification and QC pages both
scope their queries by it."""

from __future__ import annotations

from app.auth.models import User
from app.auth.roles import Role


def countries_in_scope(user: User) -> list[str] | None:
    """None: every country; else the country codes the user leads."""
    if user.has_role(Role.ADMIN) or user.lead_all_countries:
        return None
    return user.lead_countries
