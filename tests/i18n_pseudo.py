"""Pseudo-localisation for the browser tests: a made-up language whose every translation is
the English with its letters accented and ~35 % longer, inside ⟦ ⟧ brackets
("Sign in" -> "⟦Šíĝñ íñ ···⟧"). A page in it shows at a glance (and to a script) which texts
went through the catalogue (bracketed) and which are English typed into a page or a script
(not bracketed), and whether the layout holds texts longer than the English.

The catalogue is built at test time from the messages `pybabel extract` finds (babel.cfg, the
README's keywords) and the French catalogue's ids, compiled into a temporary translations
folder that the test app adds to BABEL_TRANSLATION_DIRECTORIES, under a real CLDR locale
that no clinic uses (Esperanto: dates and numbers are formatted by Babel as for any
language). The portal's own catalogues and languages are untouched: the fixture adds the
language to app.i18n.LANGUAGES for the test's duration only (the switcher then offers it).

Also here: the checks that read a page's visible text (English left, the words of the
catalogue's English) and its layout (overflow, clipped controls), shared by
test_browser_pseudo_locale.py and test_browser_i18n_walks.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "app" / "translations"
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "N_": None}

# Esperanto: in CLDR (Babel formats its dates and numbers), spoken by none of the clinics.
PSEUDO_LANGUAGE = "eo"
OPEN, CLOSE, PAD = "⟦", "⟧", "·"
GROWTH = 0.35  # French and Spanish run 15-35 % longer than English; the pad takes the upper end

# What a translation must keep as it is: gettext and JS placeholders, %% (a literal % in a
# python-format message), HTML tags and entities.
KEEP = re.compile(r"(%\(\w+\)[sdif]|%%|%[sdif]|\{\w*\}|</?[a-zA-Z][^>]*>|&#?\w+;)")
ACCENTS = str.maketrans(
    "abcdeghiklnorstuyzABCDEGHIKLNORSTUYZ",
    "áƀçđéĝĥíķĺñóŕšţúýžÁƁÇĐÉĜĤÍĶĹÑÓŘŠŢÚÝŽ")


def pseudo(english: str) -> str:
    """The pseudo translation of ``english``: letters accented, placeholders and markup kept,
    padded ~35 % inside brackets (a message with nothing to translate stays as it is)."""
    if not english.strip() or not re.search(r"[A-Za-z]", KEEP.sub("", english)):
        return english
    parts = KEEP.split(english)
    accented = "".join(part if KEEP.fullmatch(part) else part.translate(ACCENTS)
                       for part in parts)
    visible = len(KEEP.sub("", english))
    pad = " " + PAD * max(1, round(visible * GROWTH) - 3)  # the brackets and space count too
    return f"{OPEN}{accented}{pad}{CLOSE}"


def say(message: str, **params: Any) -> str:
    """The text a pseudo page shows for ``message`` with ``params`` (for locators)."""
    translated = pseudo(message)
    return translated % params if params else translated


def _ids(message: Any) -> tuple[str, ...]:
    return tuple(message) if isinstance(message, (tuple, list)) else (message,)


@cache
def english_messages() -> tuple[tuple[str, ...], ...]:
    """Every message id (a plural as (singular, plural)): what `pybabel extract` finds now
    (a text wrapped since the last `pybabel update` too) and what the catalogue holds."""
    found: set[tuple[str, ...]] = set()
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        found.add(_ids(message))
    with (TRANSLATIONS / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        found.update(_ids(m.id) for m in read_po(fh) if m.id)
    return tuple(sorted(found))


@cache
def contextual_messages() -> tuple[tuple[str, str], ...]:
    """The (context, message id) of the messages that carry a context (pgettext: the same
    English said differently in two places), from the catalogue."""
    with (TRANSLATIONS / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return tuple(sorted((m.context, m.id) for m in read_po(fh)
                            if m.id and m.context and isinstance(m.id, str)))


def write_pseudo_catalogue(folder: Path) -> Path:
    """Compiles the pseudo catalogue into ``folder``/eo/LC_MESSAGES/messages.mo; returns
    ``folder`` (a translations directory for BABEL_TRANSLATION_DIRECTORIES)."""
    catalogue = Catalog(locale=PSEUDO_LANGUAGE)
    for ids in english_messages():
        if len(ids) == 1:
            catalogue.add(ids[0], pseudo(ids[0]))
        else:
            catalogue.add(ids, tuple(pseudo(ids[min(n, len(ids) - 1)])
                                     for n in range(catalogue.num_plurals)))
    for context, message in contextual_messages():
        catalogue.add(message, pseudo(message), context=context)
    target = folder / PSEUDO_LANGUAGE / "LC_MESSAGES"
    target.mkdir(parents=True, exist_ok=True)
    with (target / "messages.mo").open("wb") as fh:
        write_mo(fh, catalogue)
    return folder


def pseudo_config(folder: Path) -> dict[str, str]:
    """The app configuration that serves the pseudo catalogue beside the real ones."""
    return {"BABEL_TRANSLATION_DIRECTORIES": f"{TRANSLATIONS};{folder}"}


def pseudo_language_offered() -> Iterator[None]:
    """For a fixture: the switcher and settings offer the pseudo language while it runs."""
    from app import i18n

    i18n.LANGUAGES[PSEUDO_LANGUAGE] = pseudo("Pseudo")
    try:
        yield
    finally:
        i18n.LANGUAGES.pop(PSEUDO_LANGUAGE, None)


# ---- what a page shows ------------------------------------------------------------------

# Visible text nodes, each with the element that holds it (a short CSS-like path). Text in
# a part marked lang="en" (the official form's wording, the English beside a certificate's
# words) or translate="no", and code/keyboard samples, are not the page's UI language.
VISIBLE_TEXTS_JS = (Path(__file__).parent / "i18n_visible_texts.js").read_text()


def visible_texts(page: Any) -> list[dict[str, str]]:
    return list(page.evaluate(VISIBLE_TEXTS_JS))


@cache
def english_vocabulary() -> frozenset[str]:
    """The words (3+ letters, lower case) of the English messages: text on a pseudo page
    that still holds one of them outside brackets reads as English to a user."""
    words: set[str] = set()
    for ids in english_messages():
        for text in ids:
            words.update(w.lower() for w in re.findall(r"[A-Za-z]{3,}", KEEP.sub(" ", text)))
    return frozenset(words)


# Names that are never translated, wherever they show.
PROPER_NAMES = ("CXR Academy", "DS-3030", "RADPEER", "WCAG", "DICOM", "PACS", "Orthanc",
                "WebAuthn", "OpenAPI", "JSON", "CSV", "XLSX", "PDF", "PNG", "JPEG", "QR",
                # the measures' names, as the literature writes them in every language
                "ROC AUC", "AFROC / wAFROC", "AFROC", "wAFROC", "PABAK", "AUC")
# User data: what a role's pages show of the seeded world (names, titles, codes, e-mails),
# numbers, dates and times, file names and paths.
DATA_PATTERNS = re.compile(
    r"[\w.+-]+@[\w-]+(\.[\w-]+)+"          # e-mail addresses
    r"|https?://\S+|/[\w./{}<>-]*"          # addresses and paths
    r"|\b[A-Z][A-Za-z_]+/[A-Za-z_/+-]+"      # time-zone names (Africa/Nairobi)
    r"|\b[\w-]+\.(dcm|zip|csv|xlsx|pdf|png|json)\b"  # file names
    r"|\b[A-Z0-9]+(-[A-Z0-9]+)+\b"         # codes (certificate, case, accession)
    r"|GMT[+-]\d\d:\d\d|UTC"
    r"|\b(?:[A-Z][a-z0-9]+){2,}(?:, (?:[A-Z][a-z0-9]+){2,})*\b")  # DICOM keywords (StudyDate)


TIME_ZONE = re.compile(r"\b[A-Z][A-Za-z_]+/[A-Za-z_/+-]+")


def _without_allowed(text: str, data: list[str]) -> str:
    """``text`` with what may stay untranslated taken out: time zones (first: a clinic's city
    is part of its zone's name), user data, proper names and data patterns."""
    rest = TIME_ZONE.sub(" ", text)
    for value in data:
        if value in rest:
            rest = rest.replace(value, " ")
    for name in PROPER_NAMES:
        rest = rest.replace(name, " ")
    return DATA_PATTERNS.sub(" ", rest)


def english_left(texts: Iterable[dict[str, str]], user_data: Iterable[str]) -> list[str]:
    """The texts of a pseudo page that hold English UI words outside the pseudo brackets,
    once the allowed parts (user data, proper names, data patterns) are taken out."""
    vocabulary = english_vocabulary()
    data = sorted({_collapsed(d) for d in user_data if len(d) >= 3}, key=len, reverse=True)
    left: list[str] = []
    for item in texts:
        rest = re.sub(re.escape(OPEN) + r".*?" + re.escape(CLOSE), " ",
                      _collapsed(item["text"]))
        rest = _without_allowed(rest, data)
        words = [w for w in re.findall(r"[A-Za-z]{3,}", rest) if w.lower() in vocabulary]
        if words:
            entry = f"{item['where']}: {item['text'][:120]!r}"
            if entry not in left:
                left.append(entry)
    return left


# ---- layout ------------------------------------------------------------------------------

# Horizontal scroll of the document, controls whose text is cut (overflow hidden/clip with
# more content than room, or text running out of its box), elements past the window's edge.
LAYOUT_PROBLEMS_JS = (Path(__file__).parent / "i18n_layout_problems.js").read_text()


def layout_problems(page: Any) -> list[str]:
    return list(page.evaluate(LAYOUT_PROBLEMS_JS))


# ---- the real languages: English left on a French or Spanish page -----------------------

def _collapsed(text: str) -> str:
    """White space as the browser shows it (a note's line breaks are spaces on the page)."""
    return re.sub(r"\s+", " ", text).strip()


def _strings_in(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings_in(item)


def scheme_texts() -> set[str]:
    """Every text of the built-in reporting schemes (labels, help, anchors, in each language):
    they are translated in the scheme's JSON, not the catalogue (tests/test_i18n_schemes.py
    checks them), so a pseudo page shows them as the scheme has them."""
    folder = ROOT / "app" / "schemes" / "builtin"
    values: set[str] = set()
    for path in folder.glob("*.json"):
        values.update(_strings_in(json.loads(path.read_text(encoding="utf-8"))))
    return values


def stored_texts(app: Any) -> set[str]:
    """Every text the seeded world stores (names, titles, codes, e-mails, notes, the schemes'
    texts), and the names of countries in the pseudo language: on a page it is the users'
    data, shown as they typed it, in no UI language."""
    from sqlalchemy import String, select

    from app.cases.models import ReferenceRead
    from app.extensions import db

    values: set[str] = set()
    with app.app_context():
        for table in db.metadata.sorted_tables:
            columns = [c for c in table.columns
                       if isinstance(getattr(c.type, "impl", c.type), String)]
            if columns:
                for row in db.session.execute(select(*columns)):
                    values.update(str(v).strip() for v in row if v and str(v).strip())
        # What the trainers typed into their reads (a criterion's reason, "other" findings).
        for (answers,) in db.session.execute(select(ReferenceRead.answers)):
            values.update(s.strip() for s in _strings_in(answers) if s.strip())
        db.session.remove()
    values |= scheme_texts()
    values.update(str(name) for name in Locale.parse(PSEUDO_LANGUAGE).territories.values())
    return values


@cache
def translations_of(language: str) -> Any:
    from babel.support import Translations

    return Translations.load(str(TRANSLATIONS), [language])


def _shown(message: str) -> str:
    """A message as a page shows it: markup gone, white space as the browser collapses it."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", message)).strip()


@cache
def _english_patterns(language: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """The English messages whose translation in ``language`` differs, each as a pattern of
    the text a page shows (placeholders filled with anything)."""
    t = translations_of(language)
    patterns = []
    for ids in english_messages():
        english = ids[0]
        translated = t.gettext(english) if len(ids) == 1 else t.ngettext(ids[0], ids[1], 2)
        shown = _shown(english)
        if translated == english or not re.search(r"[A-Za-z]{2,}", KEEP.sub("", shown)):
            continue
        parts = KEEP.split(shown)
        regex = "".join(".+?" if KEEP.fullmatch(p) else re.escape(p) for p in parts)
        patterns.append((shown, re.compile(regex.replace("%%", "%"))))
        if len(ids) > 1:
            plural = _shown(ids[1])
            parts = KEEP.split(plural)
            patterns.append((plural, re.compile(
                "".join(".+?" if KEEP.fullmatch(p) else re.escape(p) for p in parts))))
    return tuple(patterns)


@cache
def _english_only_words(language: str) -> frozenset[str]:
    """Words of the English messages that no translation in ``language`` uses (``total``,
    ``programme``, ``date`` are French too: they prove nothing)."""
    t = translations_of(language)
    theirs: set[str] = set()
    for ids in english_messages():
        translated = t.gettext(ids[0]) if len(ids) == 1 else t.ngettext(ids[0], ids[1], 2)
        theirs.update(w.lower() for w in re.findall(r"[^\W\d_]{3,}", KEEP.sub(" ", translated)))
    # Dates are written by Babel in the language: its month and day names ("may" is May in
    # Spanish) are the language's words, not English left.
    locale = Locale.parse(language)
    for names in (locale.months, locale.days):
        for context in names.values():
            for width in context.values():
                theirs.update(str(name).lower().strip(".") for name in width.values())
    return english_vocabulary() - theirs


def english_shown(texts: Iterable[dict[str, str]], language: str,
                  user_data: Iterable[str]) -> list[str]:
    """The visible texts of a page in ``language`` that are English: an English message of
    the catalogue shown verbatim, or a text most of whose words are English-only words
    (a text typed into a template or a script, never wrapped), once user data and proper
    names are taken out."""
    patterns = _english_patterns(language)
    english_words = _english_only_words(language)
    data = sorted({d for d in user_data if len(d) >= 3}, key=len, reverse=True)
    found: list[str] = []
    for item in texts:
        text = item["text"]
        rest = _without_allowed(text, data)
        words = re.findall(r"[^\W\d_]{3,}", rest)
        message = next((m for m, p in patterns if p.fullmatch(text) and words), None)
        english = [w for w in words if w.lower() in english_words]
        if message is not None:
            entry = f"{item['where']}: {text[:120]!r} (the message {message[:60]!r})"
        elif english and len(english) * 2 >= len(words):
            entry = f"{item['where']}: {text[:120]!r} (English words: {', '.join(english[:6])})"
        else:
            continue
        if entry not in found:
            found.append(entry)
    return found
