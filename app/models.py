"""Every model module, imported so that Alembic and ``db.metadata`` see all tables."""

from app.audit.models import AuditEvent
from app.auth.models import Clinic, LeadCountry, User, UserRole, UserSession

__all__ = ["AuditEvent", "Clinic", "LeadCountry", "User", "UserRole", "UserSession"]
