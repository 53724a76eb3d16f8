"""Every model module, imported so that Alembic and ``db.metadata`` see all tables."""

from app.api.models import ApiToken
from app.audit.models import AuditEvent
from app.auth.models import Clinic, LeadCountry, User, UserRole, UserSession
from app.auth.second_factor_models import RecoveryCode, SecondFactor
from app.auth.security_key_models import SecurityKey, SecurityKeyChallenge
from app.auth.sign_in_throttle_models import SignInFailures
from app.cases.models import Case, CaseFinding, CaseImage, CaseTag, ReferenceRead
from app.certification.models import (
    Certificate,
    CertificateReminder,
    CertificateReview,
    CertificationNotice,
    Programme,
    Requirement,
)
from app.jobs.models import Job, JobItem
from app.pacs.models import PacsEndpoint
from app.qc.models import QcFlag, QcImportBatch, QcRecord
from app.quizzes.models import (
    Attempt,
    AttemptAnswer,
    Exercise,
    ExerciseCase,
)
from app.schemes.models import ReportingScheme

__all__ = [
    "ApiToken",
    "Attempt",
    "AttemptAnswer",
    "AuditEvent",
    "Case",
    "CaseFinding",
    "CaseImage",
    "CaseTag",
    "Certificate",
    "CertificateReminder",
    "CertificateReview",
    "CertificationNotice",
    "Clinic",
    "Exercise",
    "ExerciseCase",
    "Job",
    "JobItem",
    "LeadCountry",
    "PacsEndpoint",
    "Programme",
    "QcFlag",
    "QcImportBatch",
    "QcRecord",
    "RecoveryCode",
    "ReferenceRead",
    "ReportingScheme",
    "Requirement",
    "SecondFactor",
    "SecurityKey",
    "SecurityKeyChallenge",
    "SignInFailures",
    "User",
    "UserRole",
    "UserSession",
]
