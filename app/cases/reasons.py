"""Stored reasons (why a file was refused, why a job failed) in the reader's language.

Per-file import results, job errors and rebuild failures are stored as English sentences:
the import runs in a sandbox and a worker without a reader, the JSON API and the command
line's logs read them as English, and rows stored before translations keep working. They are
translated when shown: each sentence the import writes is listed here as a gettext template
(its message id), and a stored text that matches one is given in the reader's language, its
parameters (case numbers, nested reasons) filled in, nested reasons translated in turn. A text
matching none (a DICOM attribute's own refusal, built from attribute names) is shown as
stored.
"""

from __future__ import annotations

import re
from functools import cache

from flask_babel import gettext

from app.i18n import N_

# The English sentences as the import and the jobs store them (app.cases.ingest,
# processing, processed, sandbox; app.jobs.*; app.pacs.retrieval). Keep each identical to
# the code that writes it: tests/test_i18n_library.py checks the shared constants.
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

# Parameters that are themselves stored reasons, translated in turn.
_NESTED = ("reason", "cause")


@cache
def _patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    found = []
    for template in TEMPLATES:
        parts = re.split(r"%\((\w+)\)s", template)
        regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)"
                        for i, part in enumerate(parts))
        found.append((re.compile(regex, re.DOTALL), template))
    return tuple(found)


def translate_reason(text: str | None) -> str:
    """``text`` (a stored English reason) in the reader's language; as stored when it is
    none of the known sentences. Empty for None."""
    if not text:
        return ""
    for pattern, template in _patterns():
        match = pattern.fullmatch(text)
        if match is None:
            continue
        values = {name: translate_reason(value) if name in _NESTED else value
                  for name, value in match.groupdict().items()}
        return gettext(template, **values) if values else gettext(template)
    return text
