"""A reporting scheme's labels as a reader sees them: in the page's language, with the
official English wording beside the translation where the scheme is an official English
form (DS-3030), and ``lang`` marking text in another language than the page's."""

from __future__ import annotations

from flask import Flask
from markupsafe import Markup

from app.i18n import current_language
from app.schemes.parts import Item, Scheme
from app.schemes.translations import BASE_LANGUAGE, Translatable


def scheme_text(scheme: Scheme | None, part: Translatable, name: str = "label") -> Markup:
    """``part``'s text ``name`` (label, name, help) for the page, as HTML."""
    language = current_language()
    english = part.text_in(name, BASE_LANGUAGE)
    if language == BASE_LANGUAGE or not english:
        return Markup("{}").format(english)
    if not part.is_translated(name, language):
        return Markup('<span lang="{}">{}</span>').format(BASE_LANGUAGE, english)
    translated = part.text_in(name, language)
    if scheme is not None and scheme.official_language == BASE_LANGUAGE:
        return Markup('{} <span lang="{}" class="official-wording">{}</span>').format(
            translated, BASE_LANGUAGE, english)
    return Markup("{}").format(translated)


def scheme_plain(part: Translatable, name: str = "label") -> str:
    """``part``'s text in the page's language as plain text (attributes, lists, scripts)."""
    return part.text_in(name, current_language())


def anchor_text(item: Item, value: str) -> Markup:
    """A scale anchor in the page's language (English, marked as such, where untranslated)."""
    language = current_language()
    english = item.anchors.get(value, "")
    translated = item.anchor_in(value, language)
    if language != BASE_LANGUAGE and translated == english and english:
        return Markup('<span lang="{}">{}</span>').format(BASE_LANGUAGE, english)
    return Markup("{}").format(translated)


def mark_labels_json(scheme: Scheme | None) -> list[dict[str, str]]:
    """The viewer's finding labels: each value with its label in the page's language."""
    if scheme is None:
        return []
    language = current_language()
    return [{"value": o.value, "label": o.label_in(language)} for o in scheme.mark_labels or ()]


def init_scheme_display(app: Flask) -> None:
    app.add_template_global(scheme_text, "scheme_text")
    app.add_template_global(scheme_plain, "scheme_plain")
    app.add_template_global(anchor_text, "anchor_text")
