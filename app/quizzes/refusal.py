"""Refusals of the training area in the reader's language.

A refusal's message stays English (lower case, no full stop) for the JSON API, the command
line and the logs; the page shows its ``sentence`` translated. The message is a catalogue
id (marked ``N_`` where it is raised) with named values, so the translation keeps them; a
value may itself be a lazy translation (a reason), English in the message, translated in
the sentence.
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import force_locale, gettext

from app.user_errors import UserError


class Refusal(UserError):
    def __init__(self, message: str, status: int = 400, **values: object) -> None:
        self.template = message
        self.values = values
        with force_locale("en"):
            super().__init__(self._text(), status)

    def _text(self) -> str:
        # gettext substitutes only when given values: a message without them keeps any "%".
        if not self.values:
            return gettext(self.template)
        return gettext(self.template, **{k: str(v) for k, v in self.values.items()})

    @property
    def sentence(self) -> str:
        text = self._text()
        return text[:1].upper() + text[1:] + "."


class LocalTime:
    """A time in a refusal: UTC to the minute in English (as the API and the command line
    have always said it), the reader's language and time zone in the others."""

    def __init__(self, value: datetime) -> None:
        self.value = value

    def __str__(self) -> str:
        from app.i18n import current_language, local_datetime

        if current_language() == "en":
            return f"{self.value:%Y-%m-%d %H:%M} UTC"
        return local_datetime(self.value)


class Phrase:
    """Part of a refusal (a reason, "(and 3 more)") translated when it is written out: in
    English inside the message, in the reader's language inside the sentence."""

    def __init__(self, message: str, **values: object) -> None:
        self.message, self.values = message, values

    def __str__(self) -> str:
        values = {k: str(v) for k, v in self.values.items()}
        return gettext(self.message, **values) if values else gettext(self.message)

    def __html__(self) -> str:  # shown in a page as text, escaped
        from markupsafe import escape

        return str(escape(str(self)))
