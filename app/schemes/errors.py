"""Why a scheme definition, an answer set or a mark is refused, in the reader's language.

A refusal is an English message id marked for the catalogue (``N_``) with named
placeholders, and the values apart. ``str(exc)`` is the English sentence: the command line's
logs, the JSON API and code that compares messages read it. ``text()`` (and ``sentence``, for
a page) is the same message in the reader's language, where a page or the command line shows
it. A value may itself be a ``Phrase`` (the part of a scheme a message is about: "item 'x',
option 'y'"), translated in turn. Another refusal may take ``message`` and ``params`` as its
own (app.quizzes.refusal.Refusal: English in ``str``, translated in ``sentence``).

Answer refusals name an item as the reader's form does, so they are raised already in the
reader's language (``gettext`` at the raise, a message without values).

Pure module: Flask-Babel is imported only when a message is translated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.user_errors import UserError


def N_(message: str) -> str:  # gettext's conventional name for a marker
    """Marks ``message`` for the catalogue (pybabel's ``-k N_``); translated when shown."""
    return message


def _translate(message: str, params: dict[str, Any]) -> str:
    from flask_babel import gettext  # outside an application: English (no catalogue)

    return gettext(message, **{k: _text(v) for k, v in params.items()})


def _english(message: str, params: dict[str, Any]) -> str:
    if not params:
        return message
    return message % {k: v.english() if isinstance(v, Phrase) else str(v)
                      for k, v in params.items()}


def _text(value: Any) -> Any:
    return value.text() if isinstance(value, Phrase) else value


@dataclass(frozen=True)
class Phrase:
    """A marked message with its values, to fill another message's placeholder."""

    message: str
    params: dict[str, Any] = field(default_factory=dict)

    def english(self) -> str:
        return _english(self.message, self.params)

    def text(self) -> str:
        return _translate(self.message, self.params)

    def __str__(self) -> str:
        """In the language of the moment, as a value in another refusal is written out."""
        return self.text()


def phrase(message: str, **params: Any) -> Phrase:
    return Phrase(message, params)


class SchemeError(UserError):
    """A scheme definition, an answer set or a mark that does not fit; message for people.
    ``message`` is a marked message id with ``%(name)s`` placeholders filled from
    ``params`` (English in ``str``, the reader's language in ``text``)."""

    def __init__(self, message: str, status: int = 400, **params: Any) -> None:
        super().__init__(_english(message, params), status)
        self.message = message
        self.params = params

    def text(self) -> str:
        """The message in the reader's language (the command line's in a command)."""
        return _translate(self.message, self.params)

    @property
    def sentence(self) -> str:
        """The message as a sentence for a web page, in the reader's language."""
        text = self.text()
        return text[:1].upper() + text[1:] + "."
