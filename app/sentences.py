"""Sentences the product stores or passes on in English and translates where they are shown.

A refusal written in the import's sandbox, a PACS client's failure or a line of a job's
summary has no reader when it is written, and the API and the logs read it as English. It is
written as ``say(N_("template with %(name)s"), name=value)``: the template is a message id
of the catalogue (pybabel's ``-k N_``), and app.cases.reasons gives the stored text in the
reader's language by matching it against the templates (tests/test_i18n_job_lines.py checks
that every ``say`` template of the code is one of them).

A pure module: no Flask, so the sandboxed import can use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def N_(message: str) -> str:  # gettext's conventional name for a marker
    """Marks ``message`` for the catalogue; it stays English here."""
    return message


def say(template: str, /, **params: object) -> str:
    """``template`` with ``params`` filled in, in English (as stored)."""
    return template % params if params else template


# A stored message: a template and its parameters, each a plain value, a message of its own,
# or a phrase: {"phrase": name, "value": data} worded again by PHRASES[name](data) in the
# reader's language (a certificate review's figures, say).
Message = dict[str, Any]

# name -> a function wording its data in the current language; registered by the area
# that owns the data (app.certification.reviews registers "shortfalls").
PHRASES: dict[str, Callable[[Any], str]] = {}


def message(template: str, /, **params: object) -> Message:
    """``template`` (a message id) and ``params``, kept as they are for later wording."""
    return {"msg": template, "params": params}


def phrase(name: str, value: object) -> Message:
    return {"phrase": name, "value": value}


def english(stored: Message | str) -> str:
    """A stored message in English, as the API and the logs read it. A phrase is worded by
    its function in the current language: call under force_locale("en")."""
    if isinstance(stored, str):
        return stored
    if "phrase" in stored:
        return PHRASES[stored["phrase"]](stored["value"])
    params = {name: english(value) if isinstance(value, dict) else value
              for name, value in stored["params"].items()}
    return say(stored["msg"], **params)
