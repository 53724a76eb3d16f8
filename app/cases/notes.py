"""A case's teaching note as a reader sees it: in their language, else in English, else in
the language it was written in, marked with that language when it is not the page's."""

from __future__ import annotations

from markupsafe import Markup

from app.cases.models import Case
from app.i18n import current_language


def teaching_note(case: Case) -> Markup:
    """The note's paragraph, or nothing when the case has no note."""
    note = case.note_for(current_language())
    if note is None:
        return Markup("")
    # Screen readers switch voice on lang; a French page showing the English note says so.
    lang = (Markup(' lang="{}"').format(note.language)
            if note.language != current_language() else Markup(""))
    return Markup('<p class="teaching"{}>{}</p>').format(lang, note.text)
