"""gunicorn configuration for bench/load/run_load.py --cpu: CPU time per request type.

Loaded with ``gunicorn -c bench/load/cpu_accounting.py`` (bench only, never in production).
Each worker wraps the portal's WSGI callable and adds up the CPU time of the thread that
serves each request (``time.thread_time``: robust to other processes on the machine, unlike
wall time), from the call of the application to the close of its response, so it includes
gunicorn writing the body. At exit each worker writes its figures, and its whole process
CPU (the rest is gunicorn's own work: accepting, parsing, keep-alive polling), to
``$LOAD_CPU_DIR/worker-<pid>.json``. With ``LOAD_CPROFILE=1`` each request type also gets a
cProfile (per thread, merged at exit: ``cprofile-<pid>-<type>.pstats``); that slows every
request, so its CPU figures are not the ones to report.
"""

from __future__ import annotations

import cProfile
import json
import os
import re
import resource
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

OUT = os.environ.get("LOAD_CPU_DIR", "")
PROFILE = os.environ.get("LOAD_CPROFILE") == "1"

_KINDS: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/auth/login$"), "sign-in page"),
    ("POST", re.compile(r"^/auth/login$"), "sign in"),
    ("GET", re.compile(r"^/training/$"), "exercise list"),
    ("POST", re.compile(r"^/training/exercises/\d+/start$"), "start exam"),
    ("GET", re.compile(r"^/training/attempts/\d+/\d+$"), "case page"),
    ("POST", re.compile(r"^/training/attempts/\d+/\d+/answer$"), "autosave"),
    ("POST", re.compile(r"^/training/attempts/\d+/\d+/opened$"), "opened"),
    ("GET", re.compile(r"^/training/attempts/\d+/summary$"), "summary"),
    ("POST", re.compile(r"^/training/attempts/\d+/submit$"), "submit"),
    ("GET", re.compile(r"^/training/attempts/\d+/result$"), "result"),
    ("GET", re.compile(r"^/cases/images/\d+/preview$"), "image preview"),
    ("GET", re.compile(r"^/cases/images/\d+/\w+$"), "image stages"),
    ("GET", re.compile(r"^/(?:[\w-]+/)?static/"), "static"),
]


def request_kind(method: str, path: str) -> str:
    for wanted, pattern, name in _KINDS:
        if method == wanted and pattern.search(path):
            return name
    return "other"


class _Counted:
    """The response body, passed through; its close() ends the request's CPU count."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self.body, self.done = body, done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            if hasattr(self.body, "close"):
                self.body.close()  # type: ignore[attr-defined]
        finally:
            self.done()


def post_worker_init(worker: Any) -> None:
    inner = worker.wsgi
    lock = threading.Lock()
    figures: dict[str, list[float]] = {}  # kind -> [requests, CPU seconds]
    profiles: dict[tuple[int, str], cProfile.Profile] = {}

    def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        kind = request_kind(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""))
        profile = None
        if PROFILE:
            key = (threading.get_ident(), kind)
            profile = profiles.get(key)
            if profile is None:
                # Thread CPU time, not wall time: waits on PostgreSQL and the GIL left out.
                profile = profiles[key] = cProfile.Profile(time.thread_time)
            profile.enable()
        started = time.thread_time()

        def done() -> None:
            spent = time.thread_time() - started
            if profile is not None:
                profile.disable()
            with lock:
                entry = figures.setdefault(kind, [0, 0.0])
                entry[0] += 1
                entry[1] += spent

        try:
            body = inner(environ, start_response)
        except BaseException:
            done()
            raise
        wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type) and isinstance(body, wrapper):
            # gunicorn sends its own file wrapper with sendfile(): keep it, count at close.
            close = getattr(body, "close", None)

            def closing() -> None:
                try:
                    if close is not None:
                        close()
                finally:
                    done()

            body.close = closing
            return body
        return _Counted(body, done)

    worker.wsgi = counted
    usage = resource.getrusage(resource.RUSAGE_SELF)
    worker.cpu_at_start = usage.ru_utime + usage.ru_stime  # the imports and the app's build
    worker.cpu_figures = figures
    worker.cpu_profiles = profiles
    worker.cpu_lock = lock


def worker_exit(server: Any, worker: Any) -> None:
    if not OUT or not hasattr(worker, "cpu_figures"):
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with worker.cpu_lock:
        figures = {kind: list(entry) for kind, entry in worker.cpu_figures.items()}
    spent = usage.ru_utime + usage.ru_stime - worker.cpu_at_start
    record = {"pid": os.getpid(), "process_cpu": spent, "kinds": figures}
    with open(os.path.join(OUT, f"worker-{os.getpid()}.json"), "w") as handle:
        json.dump(record, handle)
    if PROFILE:
        import pstats

        merged: dict[str, pstats.Stats] = {}
        for (_, kind), profile in worker.cpu_profiles.items():
            profile.create_stats()
            if kind in merged:
                merged[kind].add(profile)
            else:
                merged[kind] = pstats.Stats(profile)
        for kind, stats in merged.items():
            stats.dump_stats(os.path.join(OUT, f"cprofile-{os.getpid()}-{kind}.pstats"))
