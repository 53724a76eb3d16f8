"""A reporting scheme's texts in the portal's other working languages. Pure module.

A scheme is written in English (its ``label``/``name``/``help`` fields); each labelled part
(the scheme, an item, a group, an option) may add ``"translations"``::

    {"value": "infiltrate", "label": "Infiltrate or consolidation",
     "translations": {"fr": {"label": "Infiltrat ou condensation"},
                      "es": {"label": "Infiltrado o consolidación"}}}

An item's translation may also carry ``"anchors"`` (scale anchors by value). A text missing in
a language falls back to the English one. ``"official_language": "en"`` on the scheme says
its English wording is an official form's (DS-3030): readers of other languages see it beside
the translation. Answers are option values and item keys, never labels, so a read and its
score do not depend on the language it was made in.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from app.schemes.errors import N_, Phrase, SchemeError, phrase

# The portal's working languages besides English (app.i18n.LANGUAGES; this module imports no
# Flask, a test keeps the two in step).
SCHEME_LANGUAGES = ("fr", "es")
BASE_LANGUAGE = "en"
MAX_TRANSLATED_LABEL = 500
MAX_HELP = 2_000

Translations = Mapping[str, Mapping[str, Any]]

# The translatable texts of each part of a scheme, with their length bound.
SCHEME_FIELDS = {"name": MAX_TRANSLATED_LABEL, "help": MAX_HELP}
ITEM_FIELDS = {"label": MAX_TRANSLATED_LABEL, "help": MAX_HELP, "anchors": MAX_TRANSLATED_LABEL}
GROUP_FIELDS = {"label": MAX_TRANSLATED_LABEL}
OPTION_FIELDS = {"label": MAX_TRANSLATED_LABEL, "help": MAX_HELP}


class TranslationError(SchemeError):
    """A scheme's translations or help texts that do not fit."""


class Translatable:
    """Texts of a scheme part in a reader's language, English where none is given."""

    translations: Translations

    def text_in(self, name: str, language: str | None) -> str:
        english = str(getattr(self, name) or "")
        if language and language != BASE_LANGUAGE:
            translated = self.translations.get(language, {}).get(name)
            if isinstance(translated, str) and translated:
                return translated
        return english

    def label_in(self, language: str | None) -> str:
        return self.text_in("label", language)

    def help_in(self, language: str | None) -> str:
        return self.text_in("help", language)

    def is_translated(self, name: str, language: str | None) -> bool:
        return bool(language and language != BASE_LANGUAGE
                    and self.translations.get(language, {}).get(name))


def parse_help(raw: Any, where: Phrase) -> str:
    """The optional English ``help`` of a scheme part."""
    if raw is None:
        return ""
    if not isinstance(raw, str) or len(raw) > MAX_HELP:
        raise TranslationError(N_("%(where)s: 'help' must be text of at most %(count)s "
                                  "characters"), where=where, count=MAX_HELP)
    return raw.strip()


def parse_official_language(raw: Any) -> str | None:
    if raw is None:
        return None
    if raw != BASE_LANGUAGE:
        raise TranslationError(
            N_("'official_language' may only be %(language)s: the language the scheme's own "
               "labels are written in"), language=repr(BASE_LANGUAGE))
    return BASE_LANGUAGE


def parse_translations(raw: Any, where: Phrase, fields: Mapping[str, int],
                       anchors: Collection[str] = ()) -> dict[str, dict[str, Any]]:
    """Validated ``translations`` of one scheme part: ``{language: {field: text}}``.
    ``where`` names the part in messages ("item 'findings'"); ``anchors`` are the anchor
    values of a scale item (the only ones a translation may give)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise TranslationError(N_("%(where)s: 'translations' must be an object of language: "
                                  "texts"), where=where)
    languages = ", ".join(SCHEME_LANGUAGES)
    clean: dict[str, dict[str, Any]] = {}
    for language, texts in raw.items():
        if language == BASE_LANGUAGE:
            raise TranslationError(N_("%(where)s: the English text is the part's own; "
                                      "'translations' are for %(languages)s"),
                                   where=where, languages=languages)
        if language not in SCHEME_LANGUAGES:
            raise TranslationError(N_("%(where)s: %(language)s is not a language of the portal "
                                      "(%(languages)s)"),
                                   where=where, language=repr(str(language)[:20]),
                                   languages=languages)
        if not isinstance(texts, dict):
            raise TranslationError(N_("%(where)s: the %(language)s translation must be an "
                                      "object"), where=where, language=repr(language))
        clean[language] = _texts(texts, _within(where, repr(language)), fields, anchors)
    return clean


def _texts(texts: dict[str, Any], where: Phrase, fields: Mapping[str, int],
           anchors: Collection[str]) -> dict[str, Any]:
    unknown = sorted(set(texts) - set(fields))
    if unknown:
        raise TranslationError(N_("%(where)s: %(field)s cannot be translated here (only "
                                  "%(fields)s)"),
                               where=where, field=repr(str(unknown[0])[:40]),
                               fields=", ".join(fields))
    clean: dict[str, Any] = {}
    for name, value in texts.items():
        limit = fields[name]
        if name == "anchors":
            if not isinstance(value, dict):
                raise TranslationError(N_("%(where)s: 'anchors' must be an object of value: "
                                          "text"), where=where)
            for key, text in value.items():
                if key not in anchors:
                    raise TranslationError(N_("%(where)s: the scale has no anchor %(anchor)s "
                                              "to translate"),
                                           where=where, anchor=repr(str(key)[:20]))
                _text(text, phrase(N_("%(where)s, anchor %(anchor)s"), where=where,
                                   anchor=repr(key)), limit)
            clean[name] = {str(k): v.strip() for k, v in value.items()}
            continue
        _text(value, _within(where, repr(name)), limit)
        clean[name] = value.strip()
    return clean


def _within(where: Phrase, part: str) -> Phrase:
    """A part within ``where`` ("item 'x', 'fr'")."""
    return phrase(N_("%(where)s, %(part)s"), where=where, part=part)


def _text(value: Any, where: Phrase, limit: int) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise TranslationError(N_("%(where)s: must be text of 1 to %(limit)s characters"),
                               where=where, limit=limit)
