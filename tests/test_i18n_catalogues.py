"""The translation catalogues: every message the code and templates show has a French and a
Spanish translation, each with the same placeholders and markup as the English, and the
compiled .mo files the portal loads say what their .po sources say."""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "app" / "translations"
LANGUAGES = ("fr", "es")
# The keywords README's `pybabel extract` passes: lazy_gettext as _l, and N_ (app.i18n).
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "N_": None}

PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]|\{\w*\}")
TAG = re.compile(r"</?[a-zA-Z][^>]*>")


@cache
def catalogue(language: str) -> Catalog:
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=language)


def messages(language: str) -> list[Message]:
    return [m for m in catalogue(language) if m.id]


def _ids(message: Message) -> tuple[str, ...]:
    return tuple(message.id) if isinstance(message.id, (tuple, list)) else (message.id,)


def _strings(message: Message) -> tuple[str, ...]:
    s = message.string
    return tuple(s) if isinstance(s, (tuple, list)) else (s,)


@cache
def extracted() -> frozenset[str]:
    """What `pybabel extract -F babel.cfg -k _l -k N_` finds in the code and templates."""
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        found.add(message[0] if isinstance(message, tuple) else message)
    return frozenset(found)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_extracted_message_is_in_the_catalogue(language):
    """A string wrapped in the code or a template after the last `pybabel update` fails here:
    run the README's update command and translate it."""
    known = {_ids(m)[0] for m in messages(language)}
    missing = sorted(extracted() - known)
    assert not missing, f"{language}: not in the catalogue (run pybabel update): {missing}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_has_a_translation(language):
    """Coverage 100 %: no empty or fuzzy (machine-guessed, unchecked) translation."""
    untranslated = [m.id for m in messages(language)
                    if "fuzzy" in m.flags or not all(s.strip() for s in _strings(m))]
    assert not untranslated, f"{language}: untranslated or fuzzy: {untranslated}"
    assert messages(language), "an empty catalogue"


def test_both_catalogues_hold_the_same_messages():
    assert ({_ids(m) for m in messages("fr")} == {_ids(m) for m in messages("es")})


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_and_markup_are_the_english_ones(language):
    """Every translation keeps the English's %(name)s / {name} placeholders (as many of each)
    and its HTML tags: a lost placeholder raises at rendering, a lost tag breaks a link."""
    wrong = []
    for m in messages(language):
        english = _ids(m)[-1]  # the plural's placeholders (singular may omit the number)
        for text in _strings(m):
            if Counter(PLACEHOLDER.findall(text)) != Counter(PLACEHOLDER.findall(english)):
                wrong.append((m.id, text, "placeholders"))
            if Counter(TAG.findall(text)) != Counter(TAG.findall(english)):
                wrong.append((m.id, text, "markup"))
    assert not wrong, wrong


def test_placeholders_of_the_checker_are_found():
    assert PLACEHOLDER.findall("%(n)s of {total} %(k)d") == ["%(n)s", "{total}", "%(k)d"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalogue_says_what_its_source_says(language):
    """The committed .mo (what the portal loads) is the compiled .po: run `pybabel compile`
    after editing a .po. Compared by content, since git keeps no file times."""
    folder = TRANSLATIONS / language / "LC_MESSAGES"
    mo_path = folder / "messages.mo"
    assert mo_path.exists(), f"{mo_path} missing: run pybabel compile -d app/translations"
    with mo_path.open("rb") as fh:
        compiled = {_ids(m): _strings(m) for m in read_mo(fh) if m.id}
    source = {_ids(m): _strings(m) for m in messages(language) if "fuzzy" not in m.flags}
    stale = sorted(str(k) for k in set(source) | set(compiled)
                   if source.get(k) != compiled.get(k))
    assert not stale, f"{language}: .mo differs from .po for {stale[:10]}"
