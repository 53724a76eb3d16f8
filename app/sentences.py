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


def N_(message: str) -> str:  # gettext's conventional name for a marker
    """Marks ``message`` for the catalogue; it stays English here."""
    return message


def say(template: str, /, **params: object) -> str:
    """``template`` with ``params`` filled in, in English (as stored)."""
    return template % params if params else template
