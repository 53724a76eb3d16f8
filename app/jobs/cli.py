"""``cxr-academy worker`` (the queue consumer) and waiting for a job on the command line."""

from __future__ import annotations

import time

import click
from flask import current_app
from flask.cli import with_appcontext
from flask_babel import gettext, ngettext
from sqlalchemy import select
from tqdm import tqdm  # type: ignore[import-untyped]

from app.extensions import db
from app.jobs.models import Job, JobItem, JobStatus
from app.jobs.queue import huey_of
from app.jobs.services import item_name, recover_stalled
from app.shared_services import SharedServiceUnreachable, check_shared_services

# Said once a job has waited this long in the queue without a worker taking it.
NO_WORKER_HINT_AFTER = 10.0  # seconds


@click.command("worker")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Jobs run side by side (threads).")
@with_appcontext
def worker(workers: int) -> None:
    """Run background jobs (imports, re-scoring, library exports, reminders) until stopped
    (SIGINT/SIGTERM: the job in hand ends first); also sends the day's expiry reminders and
    removes expired library exports by itself."""
    huey = huey_of()
    if huey.immediate:
        raise click.ClickException(gettext(
            "JOB_QUEUE_URL is 'immediate': there is no queue to consume"))
    try:
        check_shared_services(current_app, ("JOB_QUEUE_URL",))
    except SharedServiceUnreachable as exc:
        raise click.ClickException(str(exc)) from None
    taken_up = recover_stalled()
    if taken_up:
        click.echo(gettext("Taking up again jobs whose worker stopped: %(jobs)s",
                           jobs=", ".join(map(str, taken_up))))
    db.session.remove()
    # periodic: every minute, take up the jobs of workers that died meanwhile.
    consumer = huey.create_consumer(workers=workers, periodic=True, worker_type="thread")
    click.echo(ngettext("Worker started (%(num)s thread); Ctrl+C stops.",
                        "Worker started (%(num)s threads); Ctrl+C stops.", workers))
    consumer.run()


def wait_for_job(job_id: int, *, poll: float = 0.5, unit: str = "file") -> Job:
    """Show the job's progress as a bar (counted in ``unit``s) until it ends; returns it
    ended."""
    started = time.monotonic()
    hinted = False
    # On a terminal only (disable=None): piped output stays the result lines alone.
    with tqdm(total=None, unit=unit, desc=gettext("Job %(number)s", number=job_id), leave=True,
              disable=None) as bar:
        while True:
            db.session.expire_all()
            job = db.session.get(Job, job_id)
            assert job is not None
            if job.progress_total is not None and bar.total != job.progress_total:
                bar.total = job.progress_total
                bar.refresh()
            bar.update(job.progress_done - bar.n)
            if job.finished:
                return job
            if (job.status == JobStatus.QUEUED.value and not hinted
                    and time.monotonic() - started > NO_WORKER_HINT_AFTER):
                hinted = True
                bar.write(gettext("Waiting for a worker to take the job: is `cxr-academy "
                                  "worker` running? (Ctrl+C stops waiting; the job stays "
                                  "queued.)"))
            time.sleep(poll)


def job_items(job_id: int) -> list[tuple[JobItem, str]]:
    items = db.session.scalars(select(JobItem).where(JobItem.job_id == job_id)
                               .order_by(JobItem.position))
    return [(item, item_name(item)) for item in items]
