"""What a security-log line costs, by hand:

    .venv/bin/python bench/bench_security_log.py [--lines 5000]

Not a test. Builds the app on a throw-away instance folder and, inside one request, writes
``--lines`` lines the way a refused sign-in does (the fields of the request, a keyed hash,
the response's status), each through the logger to the 0600 file. Prints the time per line
and the bytes per line, so the log's cost can be set against a request's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app
from app.audit import security_log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5000)
    lines = parser.parse_args().lines
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"SECRET_KEY": "bench", "DEID_SECRET": "bench", "INSTANCE_PATH": folder,
                          "SQLALCHEMY_DATABASE_URI": "sqlite://"})
        with app.test_request_context("/auth/login", method="POST",
                                      headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}):
            start = time.perf_counter()
            for _ in range(lines):
                security_log.emit("login.failed", outcome="failure",
                                  username_hash=security_log.identifier_hash("someone"))
                security_log._flush(401)  # as the response does
            elapsed = time.perf_counter() - start
        size = os.path.getsize(security_log.destination(app))
    print(f"{lines} lines in {elapsed:.2f} s: {elapsed / lines * 1e6:.0f} µs per line, "
          f"{size / lines:.0f} bytes per line")


if __name__ == "__main__":
    main()
