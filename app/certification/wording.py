"""The words the certification pages show for stored keys (a certificate's status, a
requirement's kind, a review's state), in the reader's language; the keys themselves stay
English in the database, exports and the API."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel import pgettext

from app.certification import bp

STATUS_WORDS = {"valid": _l("valid"), "expired": _l("expired"), "revoked": _l("revoked")}
# "Complete “title”", "Pass “title”": the step a requirement asks for.
REQUIREMENT_STEPS = {
    "practice": _l("Complete “%(title)s”"),
    "exam": _l("Pass “%(title)s”"),
    "renewal": _l("To renew, pass “%(title)s”"),
}
REVIEW_STATES = {
    "open": _l("open"),
    "revoked": _l("revoked"),
    "kept": _l("kept"),
    "withdrawn": _l("withdrawn (the evidence holds again)"),
}


def status_word(key: str) -> str:
    return str(STATUS_WORDS.get(key, key))


def requirement_step(kind: str, title: str) -> str:
    return str(REQUIREMENT_STEPS.get(kind, REQUIREMENT_STEPS["exam"])) % {"title": title}


def export_headers() -> dict[str, str]:
    """The exports' column headers in the requesting reader's language. In English they
    are the column keys themselves, as scripts reading the files expect; the cells stay
    machine-friendly in every language (ISO dates, True/False, the states' English words)."""
    return {
        "country": pgettext("export column", "country"),
        "clinic": pgettext("export column", "clinic"),
        "enrolled": pgettext("export column", "enrolled"),
        "certified": pgettext("export column", "certified"),
        "expiring_90_days": pgettext("export column", "expiring_90_days"),
        "expired": pgettext("export column", "expired"),
        "in_progress": pgettext("export column", "in_progress"),
        "not_started": pgettext("export column", "not_started"),
        "exam_attempts": pgettext("export column", "exam_attempts"),
        "exam_pass_rate": pgettext("export column", "exam_pass_rate"),
        "reader": pgettext("export column", "reader"),
        "state": pgettext("export column", "state"),
        "certificate_expires": pgettext("export column", "certificate_expires"),
        "latest_exam": pgettext("export column", "latest_exam"),
        "latest_exam_passed": pgettext("export column", "latest_exam_passed"),
        "sensitivity": pgettext("export column", "sensitivity"),
        "specificity": pgettext("export column", "specificity"),
    }



@bp.app_context_processor
def _wording() -> dict[str, Any]:
    # app-wide: the e-mails of the reminder job are rendered outside a request of this blueprint
    return {"status_word": status_word, "requirement_step": requirement_step,
            "review_states": REVIEW_STATES}
