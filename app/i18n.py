"""Languages and time zones: which language and time zone a request is rendered in, the
language switcher, and the date filters of the templates (Flask-Babel, Babel's CLDR data).

The portal speaks the organisation's working languages: English, French and Spanish.
Stored times are UTC (exports and the API say so); pages show them in the reader's zone.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import pytz  # Flask-Babel's own time-zone library; its CLDR-backed country table too
from babel.messages.extract import DEFAULT_KEYWORDS, extract_javascript
from flask import Blueprint, Flask, abort, has_request_context, redirect, request, session
from flask_babel import (
    Babel,
    force_locale,
    format_date,
    format_datetime,
    format_percent,
    format_time,
    get_locale,
    get_timezone,
    gettext,
)
from flask_babel import lazy_gettext as _l
from flask_login import current_user  # type: ignore[import-untyped]
from markupsafe import Markup
from werkzeug.wrappers import Response

from app.extensions import db
from app.urls import same_site_path

DEFAULT_LANGUAGE = "en"
# Each language named in itself: a reader who does not read the current one finds theirs.
LANGUAGES: dict[str, str] = {"en": "English", "fr": "Français", "es": "Español"}
SESSION_KEY = "language"
API_PREFIX = "/api/"
# The API's pages read by people (its documentation) are in the reader's language.
API_PAGES = frozenset({"api_docs.index"})
DEFAULT_TIMEZONE = "UTC"

# The language of a clinic's country, for readers whose browser asks for none we have.
# Only countries where French or Spanish is the language of health care are listed; every
# other country falls back to English. Where both apply (e.g. Cameroon: French and
# English), the language most of its clinics' readers work in is given.
COUNTRY_LANGUAGE: dict[str, str] = {
    # French: West and Central Africa, the Indian Ocean, North Africa, the Caribbean, Europe
    **dict.fromkeys(
        ("BJ", "BF", "BI", "CD", "CF", "CG", "CI", "CM", "DJ", "DZ", "FR", "GA", "GN", "HT",
         "KM", "MA", "MG", "ML", "MR", "NE", "RW", "SN", "TD", "TG", "TN", "BE", "LU", "MC",
         "CH", "GF", "GP", "MQ", "RE", "YT", "PF", "NC"), "fr"),
    # Spanish: Latin America, Spain, Equatorial Guinea
    **dict.fromkeys(
        ("AR", "BO", "CL", "CO", "CR", "CU", "DO", "EC", "ES", "GQ", "GT", "HN", "MX", "NI",
         "PA", "PE", "PR", "PY", "SV", "UY", "VE"), "es"),
}

bp = Blueprint("i18n", __name__)

# Stored values of the training area as a reader reads them.
EXERCISE_KINDS = {"practice": _l("practice"), "exam": _l("exam")}
ATTEMPT_STATES = {"in_progress": _l("in progress"), "submitted": _l("submitted"),
                  "timed_out": _l("timed out"), "abandoned": _l("abandoned")}


def N_(message: str) -> str:  # gettext's conventional name for a marker
    """Marks ``message`` for the catalogue (pybabel's ``-k N_``) where it must stay a plain
    English string (tests and logs compare it); it is translated where it is shown, with
    ``gettext(message)``."""
    return message


def _signed_in() -> bool:
    return has_request_context() and bool(current_user) and current_user.is_authenticated


def clinic_country() -> str | None:
    if _signed_in() and current_user.clinic is not None:
        return str(current_user.clinic.country_code)
    return None


def select_locale() -> str:
    """The user's setting, then the (anonymous) session's choice, then the browser's
    Accept-Language, then the language of the clinic's country, then English."""
    if not has_request_context():
        return DEFAULT_LANGUAGE  # the command line and e-mails set theirs explicitly
    if request.path.startswith(API_PREFIX) and request.endpoint not in API_PAGES:
        # The JSON API is read by programs: its messages stay English whoever calls it.
        return DEFAULT_LANGUAGE
    if _signed_in() and current_user.language in LANGUAGES:
        return str(current_user.language)
    chosen = session.get(SESSION_KEY)
    if chosen in LANGUAGES:
        return str(chosen)
    browser = request.accept_languages.best_match(list(LANGUAGES))
    if browser:
        return browser
    return COUNTRY_LANGUAGE.get(clinic_country() or "", DEFAULT_LANGUAGE)


def language_of(user: Any) -> str:
    """A user's language where no request of theirs says it (their certificate's page, an
    e-mail to them): their setting, else their clinic's country's, else English."""
    if user is not None and user.language in LANGUAGES:
        return str(user.language)
    clinic = getattr(user, "clinic", None)
    return COUNTRY_LANGUAGE.get(clinic.country_code if clinic else "", DEFAULT_LANGUAGE)


def bilingual(language: str | None, message: Any) -> Markup:
    """``message`` (a lazy translation) in ``language`` with the English beside it; English
    alone when ``language`` is English. Text in another language than the page's is marked
    with its own (screen readers switch voice)."""
    page = current_language()

    def tagged(lang: str, text: str, css: str = "") -> Markup:
        if lang == page and not css:
            return Markup("{}").format(text)
        attributes = Markup(' class="{}"').format(css) if css else Markup("")
        return Markup('<span lang="{}"{}>{}</span>').format(lang, attributes, text)

    with force_locale(DEFAULT_LANGUAGE):
        english = str(message)
    if not language or language == DEFAULT_LANGUAGE:
        return tagged(DEFAULT_LANGUAGE, english)
    with force_locale(language):
        translated = str(message)
    if translated == english:
        return tagged(DEFAULT_LANGUAGE, english)
    return tagged(language, translated) + Markup(" ") + tagged(
        DEFAULT_LANGUAGE, "/ " + english, "english")


def country_timezone(country_code: str | None) -> str:
    """The time zone of a country: its only one, or the first the tz database lists (the
    most populous region), which a reader elsewhere changes in their settings."""
    zones = pytz.country_timezones.get((country_code or "").upper()) if country_code else None
    return zones[0] if zones else DEFAULT_TIMEZONE


def select_timezone() -> str:
    """The user's setting, else the zone of their clinic's country, else UTC."""
    if _signed_in():
        if current_user.timezone and is_timezone_name(current_user.timezone):
            return str(current_user.timezone)
        return country_timezone(clinic_country())
    return DEFAULT_TIMEZONE


_ZONE_NAMES: frozenset[str] | None = None


def timezone_names() -> frozenset[str]:
    global _ZONE_NAMES
    if _ZONE_NAMES is None:
        _ZONE_NAMES = frozenset(available_timezones())
    return _ZONE_NAMES


def is_timezone_name(name: str) -> bool:
    if name not in timezone_names():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def common_timezones() -> list[str]:
    """The zones offered in the settings list: the tz database's current, canonical ones."""
    return [name for name in pytz.common_timezones if name in timezone_names()]


def current_language() -> str:
    locale = get_locale()
    return locale.language if locale is not None else DEFAULT_LANGUAGE


def forget_session_language() -> None:
    session.pop(SESSION_KEY, None)


def clear_session_keeping_language() -> None:
    """Empties the session (signing in and out renew it, against fixation) but for the
    language picked with the switcher: the reader's own choice, one of ours, granting
    nothing, which the sign-in page's switcher offers precisely to be kept."""
    language = session.get(SESSION_KEY)
    session.clear()
    if isinstance(language, str) and language in LANGUAGES:
        session[SESSION_KEY] = language


@bp.post("/language")
def switch_language() -> Response:
    """The switcher on every page: remembers the choice (the account's setting for a
    signed-in user, the session otherwise) and goes back to the page it was sent from."""
    language = request.form.get("language", "")
    if language not in LANGUAGES:
        abort(400, description=gettext(
            "Choose one of the offered languages (%(languages)s).",
            languages=", ".join(LANGUAGES)))
    session[SESSION_KEY] = language
    if _signed_in():
        current_user.language = language
        db.session.commit()
    return redirect(same_site_path(request.form.get("next")) or "/")


def _as_utc(value: datetime) -> datetime:
    # Stored times are naive UTC or aware; Babel converts aware ones to the reader's zone.
    return value if value.tzinfo is not None else value.replace(tzinfo=pytz.utc)


def local_datetime(value: datetime | None) -> str:
    """A stored time in the reader's language and time zone: the day as the language writes
    it (month by name: 03/04 reads differently in Manila and in Dakar), the time to the
    minute, and the zone's offset ("GMT+03:00"), since a reader may compare it with a clock
    elsewhere."""
    if value is None:
        return ""
    moment = _as_utc(value)
    locale = get_locale()
    pattern = locale.datetime_formats["medium"] if locale is not None else "{1}, {0}"
    day, time = format_date(moment, "medium"), format_time(moment, "short")
    return f"{pattern.format(time, day)} {format_datetime(moment, 'ZZZZ')}"


def local_percent(fraction: float | None) -> str:
    """0.9 -> "90 %": whole percents, the number as the reader's language writes it, and
    a space before the sign in every language, as the result table's figures have it
    (app.quizzes.wording) and as French and Spanish typography wants."""
    if fraction is None:
        return ""
    return format_percent(fraction, "#,##0 %")


def local_date(value: datetime | date | None, format: str = "medium") -> str:
    """The day (in the reader's time zone, for a time) in the reader's language."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = _as_utc(value).astimezone(get_timezone()).date()
    return format_date(value, format)


# The scripts whose texts come from the catalogue (their `_("...")` calls; static/js/i18n.js).
SCRIPT_FOLDERS = (Path(__file__).resolve().parent / "static" / "js",
                  Path(__file__).resolve().parent / "viewer" / "static" / "viewer")


@cache
def script_message_ids() -> tuple[str, ...]:
    """The message ids of the page scripts, found as `pybabel extract` finds them (babel.cfg),
    once per process: a page sends only these to the browser, not the whole catalogue."""
    found: set[str] = set()
    for folder in SCRIPT_FOLDERS:
        for path in sorted(folder.glob("*.js")):
            with path.open("rb") as fh:
                for _lineno, _function, message, _comments in extract_javascript(
                        fh, DEFAULT_KEYWORDS, [], {}):
                    found.add(message if isinstance(message, str) else message[0])
    return tuple(sorted(found))


def script_messages() -> dict[str, str]:
    """{message id: translation} for the page scripts in the reader's language (JSON in a
    <script type="application/json"> block); empty in English, which the scripts carry."""
    if current_language() == DEFAULT_LANGUAGE:
        return {}
    return {message: gettext(message) for message in script_message_ids()}


def init_i18n(app: Flask, babel: Babel) -> None:
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    # {% trans %} blocks wrap like HTML: their msgids are the sentence on one line (as
    # babel.cfg's `trimmed` extracts them).
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.register_blueprint(bp)
    app.add_template_filter(local_datetime, "datetime")
    app.add_template_filter(local_date, "date")
    app.add_template_filter(local_percent, "percent")
    app.add_template_global(bilingual, "bilingual")
    app.add_template_global(script_messages, "script_messages")

    @app.context_processor
    def _language() -> dict[str, Any]:
        if not has_request_context():
            return {"languages": LANGUAGES, "current_language": DEFAULT_LANGUAGE}
        return {"languages": LANGUAGES, "current_language": current_language(),
                "exercise_kinds": EXERCISE_KINDS, "attempt_states": ATTEMPT_STATES}

    @app.after_request
    def _vary(response: Response) -> Response:
        # A page's language follows these request headers: shared caches must key on them.
        if response.mimetype == "text/html":
            response.vary.add("Accept-Language")
            response.vary.add("Cookie")
        return response
