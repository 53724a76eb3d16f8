"""The task queue: Huey.

Huey over RQ or Dramatiq because it keeps its queue in a SQLite file as well as in Redis:
the embedded default (a file in the instance folder) means `cxr-academy demo` and a single
server need nothing more installed or running, and JOB_QUEUE_URL=redis://... moves the queue
to Redis when several app servers share it. RQ and Dramatiq both need a Redis (or RabbitMQ)
server even for the demo.

Huey only carries "run job N"; the job's state, progress and results are our own rows
(app.jobs.models), so a message lost with a killed worker loses nothing: workers take up
running jobs whose heartbeat stopped (``recover_stalled``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from flask import Flask, current_app
from huey import (  # type: ignore[import-untyped]
    Huey,
    MemoryHuey,
    RedisHuey,
    SqliteHuey,
    crontab,
)
from huey.consumer import Consumer  # type: ignore[import-untyped]

from app.shared_services import queue_connection_pool

logger = logging.getLogger(__name__)

IMMEDIATE = "immediate"
RUN_JOB = "run_job"
_opening = threading.Lock()


def make_huey(app: Flask) -> Huey:
    url = str(app.config.get("JOB_QUEUE_URL") or "")
    name = "cxr-academy"
    if url.startswith(("redis://", "rediss://", "unix://")):
        # Bounded socket waits: a Redis that hangs costs an upload a 503, not a held thread.
        return RedisHuey(name, connection_pool=queue_connection_pool(url))
    if url == IMMEDIATE:
        # Runs each job inside the call that enqueues it: for tests of pages and commands
        # that only care about the result, never for a server.
        return MemoryHuey(name, immediate=True)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
    elif url:
        raise ValueError(
            "JOB_QUEUE_URL must be redis://..., sqlite:///path or empty (the instance folder)")
    else:
        path = Path(app.instance_path) / "job-queue.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=str(path))


def _check_url(app: Flask) -> None:
    url = str(app.config.get("JOB_QUEUE_URL") or "")
    if url and url != IMMEDIATE and not url.startswith(
            ("redis://", "rediss://", "unix://", "sqlite:///")):
        raise ValueError(
            "JOB_QUEUE_URL must be redis://..., sqlite:///path or empty (the instance folder)")


class Periodic(NamedTuple):
    """Work a worker does by itself on a schedule (Huey's crontab fields, UTC)."""

    name: str
    run: Callable[[], object]
    minute: str = "*"
    hour: str = "*"


class JobRunners(NamedTuple):
    """What the queue's tasks call: the jobs' services, handed in so that the queue knows
    nothing of them (the services enqueue through this module)."""

    run_job: Callable[[int], None]
    recover_stalled: Callable[[], object]
    # Besides taking up stalled jobs every minute (recover_stalled): sending the day's
    # reminders, removing kept files past their time, ...
    periodic: tuple[Periodic, ...] = ()


def init_queue(app: Flask, runners: JobRunners) -> None:
    """The queue is opened at its first use, not here: building the app touches no file
    (a wrong JOB_QUEUE_URL still stops it at start)."""
    _check_url(app)
    app.extensions.pop("huey", None)
    app.extensions.pop("huey_run_job", None)
    app.extensions["job_runners"] = runners


def huey_of(app: Flask | None = None) -> Huey:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    with _opening:  # request threads may all arrive first at once
        if "huey" not in app.extensions:
            _open_queue(app)
    return app.extensions["huey"]  # type: ignore[no-any-return]


def _open_queue(app: Flask) -> None:
    huey = make_huey(app)
    runners: JobRunners = app.extensions["job_runners"]

    def run_job_task(job_id: int) -> None:
        with app.app_context():
            runners.run_job(job_id)

    def recover_task() -> None:
        with app.app_context():
            runners.recover_stalled()

    app.extensions["huey_run_job"] = huey.task(name=RUN_JOB)(run_job_task)
    # Every minute on every consumer, not only when one starts: a worker that dies while
    # others keep running has its job taken up by them (the claim lets one run it).
    app.extensions["huey_recover"] = huey.periodic_task(
        crontab(), name="recover_stalled_jobs")(recover_task)
    for periodic in runners.periodic:
        _schedule(app, huey, periodic)
    app.extensions["huey"] = huey


def _schedule(app: Flask, huey: Huey, periodic: Periodic) -> None:
    def task() -> None:
        with app.app_context():
            periodic.run()

    # Every consumer runs the schedule (one per server with Redis): each periodic job makes
    # sure itself that two consumers doing it in the same minute do it once.
    app.extensions[f"huey_periodic_{periodic.name}"] = huey.periodic_task(
        crontab(minute=periodic.minute, hour=periodic.hour), name=periodic.name)(task)


def enqueue(job_id: int) -> None:
    huey_of()
    current_app.extensions["huey_run_job"](job_id)


class _ThreadConsumer(Consumer):  # type: ignore[misc]
    """A consumer run in a thread of another program (the demo server): only the main
    thread may set signal handlers, and that program has its own."""

    def _set_signal_handlers(self) -> None:
        pass


class BackgroundWorker:
    """A queue consumer in threads of this process (``cxr-academy demo``)."""

    def __init__(self, app: Flask, workers: int = 1) -> None:
        self.app = app
        huey = huey_of(app)
        # An immediate queue runs each job in the call that enqueues it: nothing to consume.
        self.consumer = None if huey.immediate else _ThreadConsumer(
            huey, workers=workers, periodic=True, worker_type="thread")

    def start(self) -> BackgroundWorker:
        if self.consumer is not None:
            with self.app.app_context():
                self.app.extensions["job_runners"].recover_stalled()
            self.consumer.start()
        return self

    def stop(self) -> None:
        if self.consumer is not None:
            self.consumer.stop(graceful=True)
