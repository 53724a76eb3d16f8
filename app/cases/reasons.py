"""Stored reasons (why a file was refused, why a job failed) in the reader's language.

Per-file import results, job errors, job summary lines and PACS failures are stored or
passed on as English sentences: the import runs in a sandbox and a worker without a reader,
the JSON API and the command line's logs read them as English, and rows stored before
translations keep working. They are translated when shown: each sentence the code writes is
a gettext template (its message id, written with app.sentences.say), and a stored text that
matches one is given in the reader's language, its parameters (case numbers, attribute
names, nested reasons) filled in, nested reasons translated in turn. A text matching none
is shown as stored.

The templates are the ``N_("...")`` messages of the modules that write such sentences
(WRITERS), read from their source once, plus TEMPLATES below (sentences stored by earlier
versions, kept so that old rows are still translated). tests/test_i18n_job_lines.py checks
that every sentence those modules can write is a template, never an English literal.
"""

from __future__ import annotations

import ast
import re
from functools import cache, lru_cache
from pathlib import Path

from flask_babel import gettext
from markupsafe import Markup, escape

from app.i18n import N_
from app.sentences import PHRASES, Message

APP = Path(__file__).resolve().parent.parent

# The modules that write stored or passed-on sentences (paths under app/).
WRITERS: tuple[str, ...] = (
    "cases/archive.py", "cases/child_entry.py", "cases/codestream.py",
    "cases/dataset_import.py", "cases/deid_allowlist.py", "cases/deid_values.py",
    "cases/deidentify.py", "cases/ingest.py", "cases/library_files.py", "cases/pixels.py",
    "cases/processed.py", "cases/processing.py", "cases/rebuild.py", "cases/sandbox.py",
    "pacs/clients.py", "pacs/retrieval.py", "pacs/services.py",
    "jobs/case_import.py", "jobs/derivatives_rebuild.py", "jobs/library_export.py",
    "jobs/lifecycle.py", "jobs/pacs_import.py", "jobs/services.py",
    "quizzes/rescoring.py", "quizzes/rescoring_job.py", "certification/reviews.py",
    "certification/reminder_jobs.py",
)

# Sentences as rows stored by earlier versions hold them (most are also marked where they
# are written now; templates() adds every N_ message of the WRITERS modules).
# tests/test_i18n_library.py checks that the shared constants are among them.
TEMPLATES: tuple[str, ...] = (
    N_("not a DICOM file"),
    N_("not a DICOM file (a %(format)s image: import the original DICOM file from the X-ray "
       "system or the PACS; a picture lacks the pixel values and header the portal needs)"),
    N_("DICOM without a Part 10 header (no preamble or file meta), as older systems write it: "
       "import it with \"Also accept DICOM files without a Part 10 header\" ticked "
       "(--allow-no-meta on the command line)"),
    N_("storage full: there is no space left for the images, so this file was not stored "
       "(nothing of it was kept)"),
    N_("not tried: the import stopped because the image storage is full"),
    N_("the folder holds no files: nothing was imported"),
    N_("symbolic links are not followed"),
    N_("no such file or folder"),
    N_("could not be read (%(cause)s)"),
    N_("could not be stored (%(cause)s)"),
    N_("could not be listed (%(cause)s)"),
    N_("could not be processed: %(cause)s"),
    N_("the same image is already in case %(case)s; not stored again"),
    N_("the same image was imported at the same moment; not stored again"),
    N_("the image needs more memory than the import limit allows"),
    N_("the file has no pixel data"),
    N_("the file meta has no transfer syntax"),
    N_("only greyscale (MONOCHROME1/MONOCHROME2) images are accepted"),
    N_("the image size (Rows/Columns) is missing"),
    N_("the transfer syntax is not a known DICOM transfer syntax"),
    N_("implicit VR big endian is not a DICOM transfer syntax"),
    N_("the pixel data could not be decoded (%(cause)s)"),
    N_("the PACS sent no CR or DX images for it"),
    N_("%(reason)s; nothing of this study was imported"),
    N_("the PACS did not send these images (not CR or DX images, or a transfer the PACS "
       "refused)"),
    N_("Cancelled by %(name)s."),
    N_("Nothing was exported: %(reason)s."),
)

# Parameters that are themselves stored reasons or phrases, translated in turn.
_NESTED = ("reason", "cause", "expected", "vr_name", "label", "after")


def marked_messages(source: str) -> list[str]:
    """The literal messages of the ``N_("...")`` calls in a module's source."""
    return [node.args[0].value for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "N_" and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)]


@cache
def templates() -> tuple[str, ...]:
    """Every sentence template, the most specific (most fixed text) first."""
    found = dict.fromkeys(TEMPLATES)
    for module in WRITERS:
        found.update(dict.fromkeys(marked_messages((APP / module).read_text(encoding="utf-8"))))
    return tuple(sorted(found, key=lambda t: -len(re.sub(r"%\(\w+\)s", "", t))))


@cache
def _patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    found = []
    for template in templates():
        parts = re.split(r"%\((\w+)\)s", template)
        seen: set[str] = set()
        pieces = []
        for i, part in enumerate(parts):
            if i % 2 == 0:
                pieces.append(re.escape(part))
            else:  # a parameter named twice holds the same value twice
                pieces.append(f"(?P={part})" if part in seen else f"(?P<{part}>.+?)")
                seen.add(part)
        regex = "".join(pieces)
        found.append((re.compile(regex, re.DOTALL), template))
    return tuple(found)


def _match(text: str) -> tuple[str, dict[str, str]] | None:
    best = _best(text)
    return None if best is None else (best[1], best[2])


@lru_cache(maxsize=4096)
def _best(text: str) -> tuple[int, str, dict[str, str]] | None:
    """The reading of ``text`` that recognises most of it: the template whose fixed words,
    with those of its nested reasons read in turn, cover the most characters ("PACS study 2
    of 3, image 1 of 4" is an image of a study, not a study "of 3, image 1 of 4")."""
    best = None
    for pattern, template in _patterns():
        match = pattern.fullmatch(text)
        if match is None:
            continue
        params = match.groupdict()
        score = len(text) - sum(len(value) for value in params.values())
        for name, value in params.items():
            nested = _best(value) if name in _NESTED else None
            if nested is not None:
                score += nested[0]
        if best is None or score > best[0]:
            best = (score, template, params)
    return best


def translate_reason(text: str | Message | None) -> str:
    """``text`` (a stored English reason, or a stored message: app.sentences.message) in the
    reader's language; as stored when it is none of the known sentences. Empty for None."""
    if not text:
        return ""
    if isinstance(text, dict):
        if "phrase" in text:
            return PHRASES[text["phrase"]](text["value"])
        return gettext(text["msg"], **{name: translate_reason(value)
                                       if isinstance(value, dict) or name in _NESTED else value
                                       for name, value in text["params"].items()})
    found = _match(text)
    if found is None:
        return text
    template, params = found
    values = {name: translate_reason(value) if name in _NESTED else value
              for name, value in params.items()}
    return gettext(template, **values) if values else gettext(template)


# Parameters that hold DICOM names (keywords and tags, value representations, transfer
# syntaxes, modalities) or addresses: kept as they are, and marked so that no translation
# tool touches them. A cause (an error's type, the system's words) is quoted as it is, as
# are case numbers and people's and programmes' names (the reader's own data).
_TECHNICAL = frozenset({"attribute", "vr", "syntax", "host", "modality", "modalities",
                        "photometric", "format", "signal", "description", "status", "shape",
                        "type", "file"})


def _untranslated(value: object) -> Markup:
    return Markup('<span translate="no">%s</span>') % value


def _param_markup(name: str, value: object) -> Markup | str:
    """A parameter on a page: a nested message or reason in the reader's language, a
    technical one marked translate="no", anything else as it is (escaped by the caller)."""
    if isinstance(value, dict):
        return reason_markup(value)
    if name in _NESTED and isinstance(value, str) and (
            name != "cause" or _match(value) is not None):
        return reason_markup(value)
    if name in _TECHNICAL and not (isinstance(value, str) and value.isdigit()):
        return _untranslated(value)
    return str(value)


def reason_markup(text: str | Message | None) -> Markup:
    """translate_reason for a page: the parameters that are DICOM names or technical details
    (attribute keywords and tags, a library's own words) marked translate="no"."""
    if not text:
        return Markup("")
    if isinstance(text, dict):
        if "phrase" in text:
            return escape(PHRASES[text["phrase"]](text["value"]))
        template, params = text["msg"], text["params"]
    else:
        found = _match(text)
        if found is None:
            return escape(text)
        template, params = found
    translated = escape(gettext(template))
    if not params:
        return translated
    return translated % {name: _param_markup(name, value) for name, value in params.items()}
