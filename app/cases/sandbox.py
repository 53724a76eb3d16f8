"""Run untrusted-file parsing in a child process with a time and memory limit.

A crafted DICOM can make a decoder spin or allocate without bound; in a child process the
limit is enforced by the operating system (RLIMIT_AS) and a timer, and the web process never
holds the half-parsed file.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

T = TypeVar("T")


class Rejected(Exception):
    """The input was refused; the message is a human-readable reason without patient data."""


class LimitExceeded(Rejected):
    pass


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
        conn.send(("ok", fn(*args)))
    except Rejected as exc:
        conn.send(("rejected", str(exc)))
    except MemoryError:
        conn.send(("rejected", "the image needs more memory than the import limit allows"))
    except Exception as exc:  # anything else is reported by type only: no values leak
        conn.send(("error", type(exc).__name__))
    finally:
        conn.close()


def _context() -> multiprocessing.context.BaseContext:
    # forkserver: children start from a clean server process (no inherited threads, sockets
    # or database connections of the web process) with the imaging modules preloaded.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["app.cases.processing"])
    return ctx


def run_limited(fn: Callable[..., T], args: tuple, *, timeout: float, memory_bytes: int) -> T:
    """``fn(*args)`` in a child process; raises Rejected with the reason on refusal or limit."""
    ctx = _context()
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(child_conn, memory_bytes, fn, args), daemon=True)
    process.start()
    child_conn.close()
    try:
        if not parent_conn.poll(timeout):
            raise LimitExceeded(f"reading the file took longer than the {timeout:g} s limit")
        try:
            status, payload = parent_conn.recv()
        except EOFError:
            raise LimitExceeded(
                "the file could not be read within the import's memory limit"
            ) from None
    finally:
        if process.is_alive():
            process.kill()
        process.join(timeout=5)
        parent_conn.close()
    if status == "ok":
        return payload
    if status == "rejected":
        raise Rejected(payload)
    raise Rejected(f"the file could not be read ({payload})")
