"""Run untrusted-file parsing in a child process with a time and memory limit.

A crafted DICOM can make a decoder spin or allocate without bound; in a child process the
limit is enforced by the operating system (RLIMIT_AS) and a timer, and the web process never
holds the half-parsed file.
"""

from __future__ import annotations

import contextvars
import io
import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import pickle
import resource
import signal
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing import popen_forkserver, reduction, spawn, util
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from app.sentences import N_, say

T = TypeVar("T")


class Rejected(Exception):
    """The input was refused; the message is a human-readable reason without patient data."""


class LimitExceeded(Rejected):
    pass


def too_large(limit: int) -> str:
    """The refusal of a file over the per-file limit of ``limit`` bytes."""
    return say(N_("larger than the %(megabytes)s MB per-file limit"), megabytes=limit // 1024**2)


def _child(conn: Connection, memory_bytes: int, fn: Callable[..., Any], args: tuple) -> None:
    # Decoders and pydicom may print or log values from the file: nothing the child says
    # may reach the server's logs.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        _send(conn, _outcome(fn, args))
    except MemoryError:  # the result itself did not fit while being sent
        _send(conn, ("rejected", MEMORY_REASON))
    finally:
        conn.close()


# Byte strings at least this long (the DICOM file, the derivatives) travel beside the
# pickle rather than in it: Connection.send would copy the whole result into one pickle
# (18 MB per copy for a 3000 x 3000 image), and recv would copy it back out.
BESIDE_PICKLE = 1 << 16


def _beside(data: bytes) -> bytes:
    return data


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is bytes and len(obj) >= BESIDE_PICKLE:
            return _beside, (pickle.PickleBuffer(obj),)
        return NotImplemented


def _send(conn: Connection, outcome: tuple[str, Any]) -> None:
    """The outcome as a count, a pickle and the long byte strings, each sent as it is."""
    buffers: list[pickle.PickleBuffer] = []
    head = io.BytesIO()
    _Pickler(head, protocol=5, buffer_callback=buffers.append).dump(outcome)
    conn.send_bytes(str(len(buffers)).encode())
    conn.send_bytes(head.getbuffer())
    for buffer in buffers:
        conn.send_bytes(buffer.raw())


def _receive(conn: Connection) -> tuple[str, Any]:
    count = int(conn.recv_bytes(32))
    head = conn.recv_bytes()
    buffers = [conn.recv_bytes() for _ in range(count)]
    status, payload = pickle.loads(head, buffers=buffers)  # noqa: S301 (our own child)
    return status, payload


MEMORY_REASON = N_("the image needs more memory than the import limit allows")


def _outcome(fn: Callable[..., Any], args: tuple) -> tuple[str, Any]:
    try:
        return ("ok", fn(*args))
    except Rejected as exc:
        return ("rejected", str(exc))
    except MemoryError:
        return ("rejected", MEMORY_REASON)
    except Exception as exc:
        return ("error", _cause(exc))


# Exceptions whose messages are written to name an attribute and never a value (named here
# rather than imported, so the sandbox does not load what it runs).
SAFE_MESSAGES = {"app.cases.deidentify.DeidentificationError"}


def _cause(exc: Exception) -> str:
    """An unexpected exception in words that leak no value of the file: its type, or its
    message where that is known to name only an attribute."""
    kind = type(exc)
    if f"{kind.__module__}.{kind.__qualname__}" in SAFE_MESSAGES and str(exc):
        return str(exc)[:200]
    return kind.__name__


def _result(status: str, payload: Any) -> Any:
    if status == "ok":
        return payload
    if status == "rejected":
        raise Rejected(payload)
    raise Rejected(say(N_("could not be processed: %(cause)s"), cause=payload))


def _death_reason(exitcode: int | None) -> str:
    """Why the child went away without answering, from how it ended."""
    if exitcode is not None and exitcode < 0:
        number = -exitcode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        description = signal.strsignal(number) or name
        if number == signal.SIGKILL:
            # Nothing here sends SIGKILL before an answer: the system's out-of-memory killer
            # is the usual sender.
            return say(N_("the process reading the file was killed (%(signal)s: "
                          "%(description)s) while decoding it, possibly by the system for lack "
                          "of memory"), signal=name, description=description)
        return say(N_("the decoder crashed: the process reading the file died with %(signal)s "
                      "(%(description)s) while decoding it"), signal=name, description=description)
    return say(N_("the process reading the file stopped without an answer (exit status "
                  "%(status)s) while decoding it"), status=exitcode)


# What the server preloads, so that each child starts parsing at once. Lean: importing the
# app package costs nothing (see app/__init__), so the server holds the imaging modules
# (pydicom, numpy, Pillow, the decoders), warmed up, and not the web application.
PRELOAD = ["app.cases.sandbox_server"]


def _context() -> multiprocessing.context.BaseContext:
    # forkserver: children start from a clean server process (no inherited threads, sockets
    # or database connections of the web process) with the imaging modules preloaded.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


class _Popen(popen_forkserver.Popen):
    """The standard library's forkserver launch (Python 3.11 to 3.13), except that the child
    is not told to import the parent's main module.

    multiprocessing runs the main module again in every child, for functions defined
    there. Ours is the cxr-academy script, gunicorn or a worker: importing it loads the
    whole application, 2 to 4 s of CPU for every file parsed, where the child needs only
    the preloaded imaging modules and the functions it is given (importable by name).
    """

    def _launch(self, process_obj: Any) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buf = io.BytesIO()
        multiprocessing.context.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            multiprocessing.context.set_spawning_popen(None)
        self.sentinel, w = multiprocessing.forkserver.connect_to_new_process(
            self._fds)  # type: ignore[attr-defined]
        # As the standard library: a duplicate of the data pipe's write end is the
        # parent's sentinel for the child.
        _parent_w = os.dup(w)
        self.finalizer = util.Finalize(
            self, util.close_fds, (_parent_w, self.sentinel))  # type: ignore[attr-defined]
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = multiprocessing.forkserver.read_signed(self.sentinel)


class _Process(multiprocessing.context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _Popen:  # the standard library's name
        return _Popen(process_obj)


def start_server() -> None:
    """Start the server children are forked from, without waiting for it: it loads its
    modules on another core while this process goes on (a command line starts it before
    loading the application, so that the first file does not wait for it)."""
    _context()
    multiprocessing.forkserver.ensure_running()


class Children:
    """The sandboxed processes of one batch that are running now, so that a batch that
    stops (an error, the worker shutting down) takes its children with it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[BaseProcess] = set()
        self._stopped = False

    def add(self, process: BaseProcess) -> None:
        with self._lock:
            self._running.add(process)
            stopped = self._stopped
        if stopped:
            process.kill()

    def discard(self, process: BaseProcess) -> None:
        with self._lock:
            self._running.discard(process)

    def kill_all(self) -> None:
        with self._lock:
            self._stopped = True
            running = list(self._running)
        for process in running:
            if process.is_alive():
                process.kill()


_children: contextvars.ContextVar[Children | None] = contextvars.ContextVar(
    "sandbox_children", default=None)


def run_limited(fn: Callable[..., T], args: tuple, *, timeout: float, memory_bytes: int) -> T:
    """``fn(*args)`` in a child process; raises Rejected with the reason on refusal or limit."""
    ctx = _context()
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    process = _Process(target=_child, args=(child_conn, memory_bytes, fn, args), daemon=True)
    process.start()
    child_conn.close()
    children = _children.get()
    if children is not None:
        children.add(process)
    try:
        if not parent_conn.poll(timeout):
            raise LimitExceeded(say(N_("reading the file took longer than the %(seconds)s s "
                                       "limit"), seconds=f"{timeout:g}"))
        try:
            status, payload = _receive(parent_conn)
        except EOFError:
            # The child died without a word: a decoder abort or crash (python-gdcm calls
            # abort() on some damaged codestreams) or the kernel killing it.
            process.join(timeout=5)
            raise Rejected(_death_reason(process.exitcode)) from None
    finally:
        if process.is_alive():
            process.kill()
        process.join(timeout=5)
        parent_conn.close()
        if children is not None:
            children.discard(process)
    return _result(status, payload)


class SandboxPool:
    """Up to ``size`` sandboxed calls at once, for a batch of files on several cores.

    Each call still gets a child of its own with run_limited's limits (a crash or a limit
    refuses that file only); the pool's threads only wait on their children's pipes, so
    the calling process stays free to store the results. A stdlib process pool would reuse
    its workers: one decoder's crash would break the pool, and RLIMIT_AS could not be set
    per file.
    """

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._children = Children()
        self._executor = ThreadPoolExecutor(max_workers=self.size,
                                            thread_name_prefix="sandbox")

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """``fn(*args, **kwargs)`` on a pool thread; the run_limited calls it makes belong
        to this pool's children."""
        context = contextvars.copy_context()
        context.run(_children.set, self._children)
        return self._executor.submit(context.run, fn, *args, **kwargs)

    def close(self) -> None:
        """Wait for the calls in hand (a batch that ended normally has none left)."""
        self._executor.shutdown(wait=True)

    def stop(self) -> None:
        """Kill the running children and drop the calls not started: the batch stopped."""
        self._children.kill_all()
        self._executor.shutdown(wait=True, cancel_futures=True)


def run_in_process(fn: Callable[..., T], args: tuple, *, timeout: float, memory_bytes: int) -> T:
    """``fn(*args)`` here, with ``run_limited``'s refusals but without its limits: for tests
    that feed many generated files through the import, where a process per file would cost
    more than the parsing."""
    return _result(*_outcome(fn, args))
