"""The pages each demo role reaches, and how, for the browser walks over the seeded demo
(tests/test_browser_roles.py checks them with axe-core, tests/test_browser_pseudo_locale.py
in the pseudo language). One list for both: a page added here is checked by both.

A page is reached by a step: the main menu and then links by name, an address, a form's
answer, or the sign-in's second step. Names are message ids (with their parameters), so each
walk says them in its own language: the English, or the pseudo translation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A link's or button's name: a message id, or (message id, parameters).
Name = str | tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Menu:
    """From the home page, the main menu's link ``names[0]``, then links by name."""

    names: tuple[Name, ...]


@dataclass(frozen=True)
class Url:
    """A deep page by its address; ``{key}`` is filled from the seeded ids."""

    template: str


@dataclass(frozen=True)
class Submit:
    """The page a form's answer shows (e.g. new recovery codes): from ``path``, the form
    whose button is ``button``, its code field filled with ``role``'s authenticator code."""

    path: str
    button: str
    role: str


@dataclass(frozen=True)
class SecondStep:
    """The sign-in's second step, after the password of ``role`` (not signed in)."""

    role: str


Step = Menu | Url | Submit | SecondStep


def menu(*names: Name) -> Menu:
    return Menu(names)


USERNAMES = {
    "radiologist": "demo-radiologist",
    "radiographer": "demo-radiographer",
    "trainer": "demo-trainer",
    "lead": "demo-lead",
    "admin": "demo-admin",
}

# The label of the code field of the forms that ask for a second factor.
ANY_CODE = "A code from your authenticator app, or one of your recovery codes"

IN_PROGRESS, SUBMITTED = "in progress", "submitted"


def trainee_pages(role: str) -> dict[str, Step]:
    return {
        "home": Url("/"),
        "training": menu("Training"),
        "attempt-case": menu("Training", IN_PROGRESS),
        "summary": Url(f"/training/attempts/{{{role}_attempt}}/summary"),
        "abandon": Url(f"/training/attempts/{{{role}_attempt}}/abandon"),
        "result": menu("Training", SUBMITTED),
        "review": menu("Training", SUBMITTED, ("Review case %(number)s", {"number": 1})),
        "certificates": menu("My certificates"),
        "settings": Url("/account/settings"),
        "password": Url("/auth/password"),
        "account-security": Url("/account/security"),
        "help": menu("Help"),
        "help-role": Url(f"/help/{role}"),
    }


PAGES: dict[str, dict[str, Step]] = {
    "radiologist": {**trainee_pages("radiologist"),
                    "exam-case": Url("/training/attempts/{exam_attempt}/1"),
                    # Setting up a second factor (the key waits unconfirmed: nothing changes).
                    "second-factor-set-up": Url("/auth/second-factor/set-up")},
    "radiographer": trainee_pages("radiographer"),
    "trainer": {
        "home": Url("/"),
        "training": menu("Training"),
        "case-library": menu("Case library"),
        "case": Url("/cases/{case}"),
        "case-read": Url("/cases/{case}/read"),
        "case-quality-read": Url("/cases/{case}/read?scheme=image_quality"),
        "pixel-review": Url("/cases/{review_case}/review"),
        "case-upload": Url("/cases/upload"),
        "schemes": Url("/cases/schemes"),
        "exercises": menu("Exercises"),
        "exercise-edit": Url("/training/manage/{unattempted}/edit"),
        "statistics": Url("/training/manage/{practice}/statistics"),
        "viewer": menu("Viewer"),
        "viewer-case": Url("/viewer/cases/{case}"),
        "qc-import": menu("QC records"),
        "qc-new-record": Url("/qc/records/new"),
        "account-security": Url("/account/security"),
        "help": menu("Help"),
        "help-role": Url("/help/trainer"),
    },
    "lead": {
        "home": Url("/"),
        "dashboard": menu("Certification"),
        "programmes": Url("/certification/programmes"),
        "programme": Url("/certification/programmes/{programme}"),
        "reader": Url("/certification/readers/{radiologist}"),
        "qc-programme": Url("/qc/programmes/{programme}"),
        "qc-reader": Url("/qc/programmes/{programme}/readers/{radiologist}"),
        "qc-flags": Url("/qc/flags"),
        "certificates": menu("Certificates"),
        "reviews": Url("/certification/reviews"),
        "exception": Url("/certification/exceptions/new"),
        "account-security": Url("/account/security"),
        # A new authenticator's key, waiting for its first code (the old one stays).
        "replace-authenticator": Submit("/account/security", "Replace authenticator", "lead"),
        "help": menu("Help"),
        "help-role": Url("/help/lead"),
    },
    "admin": {
        "home": Url("/"),
        "administration": menu("Administration"),
        "users": Url("/admin/users"),
        "user": Url("/admin/users/{radiologist}"),
        "new-user": Url("/admin/users/new"),
        "clinics": Url("/admin/clinics"),
        "audit": Url("/admin/audit"),
        "case-library": menu("Case library"),
        "exercises": menu("Exercises"),
        "dashboard": menu("Certification"),
        "certificates": menu("Certificates"),
        "programmes": Url("/certification/programmes"),
        "new-programme": Url("/certification/programmes/new"),
        "edit-programme": Url("/certification/programmes/{programme}/edit"),
        "account-security": Url("/account/security"),
        "recovery-codes": Submit("/account/security", "Make new recovery codes", "admin"),
        "help": menu("Help"),
        "help-role": Url("/help/admin"),
    },
    "anonymous": {
        "sign-in": Url("/auth/login"),
        "verify-form": Url("/verify/"),
        "verify": Url("/verify/{certificate_code}"),
        "help": Url("/help"),
        "glossary": Url("/help/glossary"),
        "help-role": Url("/help/radiologist"),
        "second-step": SecondStep("trainer"),
    },
}


def message_and_params(name: Name) -> tuple[str, dict[str, Any]]:
    return (name, {}) if isinstance(name, str) else (name[0], name[1])


def english(name: Name) -> str:
    message, params = message_and_params(name)
    return message % params if params else message

