"""The base of every "bad input" error a service raises for a person to read."""

from __future__ import annotations


class UserError(ValueError):
    """Refused input or action. The message is for the person who asked (lower case, no
    full stop: the command line prints it as is); ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status

    @property
    def sentence(self) -> str:
        """The message as a sentence for a web page."""
        text = str(self)
        return text[:1].upper() + text[1:] + "."
