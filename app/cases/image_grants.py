"""A few seconds' memory, per worker process, of "this user may fetch this image".

An exam page's browser fetches each image in stages (display, then finer stages) and the
next case's preview within a second or two; every one of those requests would otherwise
load the image with its case and ask the access rules again (the user's open attempts),
about a third of an image request's CPU. The signed-in user is still loaded and checked on
every request (Flask-Login's user loader, before this is consulted): a signed-out, ended or
deactivated session is refused at once, whatever is remembered here.

A grant is made by an image request that passed the access check, or by an exam's case page
for the images it shows and prefetches (app/quizzes/access.py), which has just found the
attempt open and the user's: the browser's fetches that follow the page are then hits too.

What a remembered grant can outlive, by at most IMAGE_GRANT_SECONDS (configuration, 5 s):
- the end of the attempt that granted it (submit, deadline), a lost role, a case taken out
  of the library. That is no wider than what the browser holds anyway: an image fetched
  once is cached by it for a year (``private, immutable``), so the few seconds add no
  image the user had not been allowed to see;
- a replaced image: its storage key and version come from here, so the request may answer
  with the previous version's files for that long (the file must still exist).
Only grants are remembered: a refusal is asked again on the next request, so a newly
started attempt sees its images at once. Entries expire at a fixed time after they were
made (a hit never extends them).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

# A bound on memory whatever the traffic: ~1,000 trainees hold a few images each at a time.
_MAX_ENTRIES = 20_000


@dataclass(frozen=True, slots=True)
class ImageGrant:
    """What serving the image needs, as it was when access was granted."""

    storage_key: str
    etag: str
    version: int
    expires: float  # time.monotonic()


# Hand-written rather than cachetools.TTLCache: a dict and a clock are all it takes, and the
# TTLCache would need a lock around every read as well (it is not thread-safe).
_grants: dict[tuple[int, int], ImageGrant] = {}
_prune_lock = threading.Lock()


def _clock() -> float:
    return time.monotonic()


def remembered(user_id: int, image_id: int) -> ImageGrant | None:
    """The grant made to ``user_id`` for ``image_id`` that has not expired, if any."""
    grant = _grants.get((user_id, image_id))
    if grant is None or grant.expires <= _clock():
        return None
    return grant


def remember(user_id: int, image_id: int, storage_key: str, etag: str, version: int,
             seconds: float) -> ImageGrant:
    """Record for ``seconds`` that ``user_id`` was just allowed to fetch ``image_id`` (not at
    all when ``seconds`` is 0)."""
    now = _clock()
    grant = ImageGrant(storage_key, etag, version, now + seconds)
    if seconds <= 0:
        return grant
    if len(_grants) >= _MAX_ENTRIES:
        with _prune_lock:
            for key, held in list(_grants.items()):
                if held.expires <= now:
                    _grants.pop(key, None)
            if len(_grants) >= _MAX_ENTRIES:  # all fresh: start again rather than grow
                _grants.clear()
    _grants[(user_id, image_id)] = grant
    return grant


def forget_all() -> None:
    """Drop every remembered grant (tests; a worker's memory only)."""
    _grants.clear()
