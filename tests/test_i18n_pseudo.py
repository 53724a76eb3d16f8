"""The pseudo-localisation tool (tests/i18n_pseudo.py) itself: what a pseudo translation
keeps and how much longer it is, the catalogue it compiles, a page served in it, and the
checks that read a page's texts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from tests.conftest import base_config
from tests.forms import submit_form
from tests.i18n_pseudo import (
    CLOSE,
    KEEP,
    OPEN,
    PSEUDO_LANGUAGE,
    english_left,
    english_messages,
    english_shown,
    pseudo,
    pseudo_config,
    pseudo_language_offered,
    say,
    write_pseudo_catalogue,
)


@pytest.mark.parametrize("english", [
    "Sign in",
    "Review case %(number)s",
    "Case %(number)s: %(status)s",
    'See the <a href="%(url)s">glossary</a> &amp; the 50%% rule',
    "saved {time} (revision {revision})",
])
def test_a_pseudo_translation_keeps_placeholders_and_markup(english: str) -> None:
    translated = pseudo(english)
    assert translated.startswith(OPEN) and translated.endswith(CLOSE)
    assert KEEP.findall(translated) == KEEP.findall(english)
    assert not re.search(r"[a-zA-Z]{4,}", KEEP.sub("", translated)), "letters left unaccented"


def test_pseudo_translations_are_a_third_longer() -> None:
    english = "Read chest X-rays as you do for pre-migration health assessments."
    assert len(pseudo(english)) >= 1.3 * len(english)
    assert len(pseudo("OK")) > len("OK") + 2
    assert say("Review case %(number)s", number=3) == pseudo("Review case %(number)s") % {
        "number": 3}
    assert pseudo("%(n)s") == "%(n)s" and pseudo(" ") == " "  # nothing to translate


def test_every_message_of_the_catalogue_is_pseudo_translated(tmp_path: Path) -> None:
    from babel.messages.mofile import read_mo

    folder = write_pseudo_catalogue(tmp_path)
    with (folder / PSEUDO_LANGUAGE / "LC_MESSAGES" / "messages.mo").open("rb") as fh:
        compiled = {m.id if isinstance(m.id, str) else m.id[0]: m.string for m in read_mo(fh)
                    if m.id}
    assert {ids[0] for ids in english_messages()} <= set(compiled)
    assert compiled["Sign in"] == pseudo("Sign in")


@pytest.fixture
def pseudo_app(tmp_path: Path) -> Iterator[Flask]:
    """The portal with the pseudo catalogue and language (no database needed for the
    sign-in page)."""
    offered = pseudo_language_offered()
    next(offered)
    config = {**base_config(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "instance"),
              **pseudo_config(write_pseudo_catalogue(tmp_path / "translations"))}
    try:
        yield create_app(config)
    finally:
        next(offered, None)


def test_the_switcher_serves_a_page_in_the_pseudo_language(pseudo_app: Flask) -> None:
    from app import i18n

    client = pseudo_app.test_client()
    response = submit_form(client, "/auth/login", button=pseudo("Pseudo"))
    assert response.status_code == 302
    html = client.get("/auth/login").get_data(as_text=True)
    assert f'<html lang="{PSEUDO_LANGUAGE}">' in html
    assert pseudo("Sign in") in html and ">Sign in<" not in html
    # Only for the test's duration: the portal's languages are untouched after it.
    assert PSEUDO_LANGUAGE in i18n.LANGUAGES


def test_the_pseudo_language_is_gone_after_the_fixture() -> None:
    from app import i18n

    assert PSEUDO_LANGUAGE not in i18n.LANGUAGES


def test_english_left_on_a_pseudo_page() -> None:
    texts = [{"text": pseudo("Training"), "where": "nav a"},
             {"text": "Dr Amina Otieno", "where": "span.who"},  # user data
             {"text": "U7K85U7EJRY2PCVF", "where": "td"},  # a code
             {"text": "DS-3030", "where": "td"},
             {"text": "6 Dec 2026, 07:14 GMT+03:00", "where": "td"},
             {"text": "Certification dashboard", "where": "main > h1"},  # typed in a template
             {"text": f"{pseudo('Clinic: %(name)s')} " % {"name": "Nairobi"} + "Status",
              "where": "p"}]
    left = english_left(texts, {"Dr Amina Otieno", "Nairobi"})
    assert left == ["main > h1: 'Certification dashboard'",
                    f"p: {texts[-1]['text']!r}"]


def test_english_shown_on_a_french_page() -> None:
    texts = [{"text": "Se connecter", "where": "button"},
             {"text": "Sign in", "where": "button"},  # a message shown in English
             {"text": "Review case 3", "where": "a"},  # with its placeholder filled
             {"text": "Programme", "where": "th"},  # the same word in French: fine
             {"text": "Certificates to review", "where": "h1"},  # never wrapped
             {"text": "Dr Amina Otieno", "where": "span"}]
    found = english_shown(texts, "fr", {"Dr Amina Otieno"})
    assert [f.split(":")[0] for f in found] == ["button", "a", "h1"], found


BROKEN_LAYOUT = """<!doctype html><html lang="en"><body style="margin:0;width:1280px">
<button id="cut" style="width:60px;overflow:hidden;white-space:nowrap">A very long name</button>
<select id="choice" style="width:70px"><option>A very long choice name</option></select>
<table style="table-layout:fixed;width:120px"><tr>
  <th id="head" style="width:60px;white-space:nowrap">Averyverylongheading</th><th>b</th>
</tr></table>
<a id="far" href="#" style="position:absolute;left:1300px;top:0">Far</a>
<div style="width:1500px">wide</div></body></html>"""

SOUND_LAYOUT = """<!doctype html><html lang="en"><body style="margin:0">
<button>A very long name</button><select><option>A very long choice name</option></select>
<table><tr><th>Averyverylongheading</th><th>b<span class="visually-hidden"
  style="position:absolute;left:-10000px">read aloud only</span></th></tr></table>
<a href="#">Near</a></body></html>"""


@pytest.mark.browser
def test_layout_check_finds_each_kind_of_overflow(page) -> None:
    from tests.i18n_pseudo import layout_problems

    page.set_viewport_size({"width": 1280, "height": 800})
    page.set_content(BROKEN_LAYOUT)
    problems = "\n".join(layout_problems(page))
    for expected in ("the page scrolls sideways", 'clipped text: button#cut "A very long name"',
                     'clipped choice: select#choice', 'text overflows its box: th#head',
                     "past the window's edge: a#far"):
        assert expected in problems, problems
    page.set_content(SOUND_LAYOUT)
    assert layout_problems(page) == []


def test_time_zone_names_are_data() -> None:
    texts = [{"text": "Africa/Nairobi", "where": "input@placeholder"},
             {"text": "America/Port-au-Prince", "where": "td"}]
    assert english_left(texts, set()) == []
