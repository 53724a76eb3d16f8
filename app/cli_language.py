"""The command line speaks the language of its environment, as gettext programs do.

The variables are read in gettext's order: LANGUAGE (a colon-separated list of preferences),
then LC_ALL, LC_MESSAGES and LANG (the first set one is the locale, e.g. ``fr_FR.UTF-8``).
As in gettext, LANGUAGE is ignored when the locale is "C" or "POSIX"; a language the portal
does not speak, or none, gives English. Click's own texts (``--help``, "Error:") stay
English.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

import click
from flask import current_app
from flask.cli import ScriptInfo
from flask_babel import force_locale

from app.i18n import DEFAULT_LANGUAGE, LANGUAGES


def _language_of(value: str) -> str | None:
    """"fr_FR.UTF-8", "es", "fr-CA@euro" -> "fr", "es", "fr" when the portal speaks it."""
    code = value.split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()
    return code if code in LANGUAGES else None


def environment_language(environ: Mapping[str, str] | None = None) -> str:
    """The portal language the environment asks for (gettext's convention), else English."""
    env = os.environ if environ is None else environ
    locale = next((env[name] for name in ("LC_ALL", "LC_MESSAGES", "LANG") if env.get(name)),
                  "")
    if locale in ("C", "POSIX") or locale.startswith("C."):
        return DEFAULT_LANGUAGE
    for wanted in env.get("LANGUAGE", "").split(":"):
        found = _language_of(wanted) if wanted else None
        if found:
            return found
    return _language_of(locale) or DEFAULT_LANGUAGE


def in_environment_language(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command's callback with the application context pushed (as ``with_appcontext``
    would, which then finds it) and gettext answering in the environment's language."""

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        if not current_app:
            ctx.with_resource(ctx.ensure_object(ScriptInfo).load_app().app_context())
        ctx.with_resource(force_locale(environment_language()))
        return callback(*args, **kwargs)

    return run


def localise_commands(group: click.Group) -> None:
    """Every command under ``group`` (nested groups too) runs in the environment's
    language."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            localise_commands(command)
        elif command.callback is not None and not getattr(command, "_localised", False):
            command.callback = in_environment_language(command.callback)
            command._localised = True  # type: ignore[attr-defined]  # registered once per app
