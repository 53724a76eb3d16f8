"""The services every app server and worker share when the portal runs on several servers:
the rate-limit store (RATELIMIT_STORAGE_URI) and the job queue (JOB_QUEUE_URL), on Redis.

Checked when a server or a worker starts (``app.wsgi``, ``cxr-academy worker``), not in
``create_app``: building the app stays free of network work, so that commands such as
``db upgrade`` or ``backup`` still run while Redis is down. A store that stops answering
later is met with a 503 and its reason (app.errors).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry

# How long a start waits for each store to answer, in seconds.
CHECK_TIMEOUT = 3.0
# Socket timeouts of the Redis clients (the rate limiter's unless configured otherwise, the
# queue's): a store that hangs costs a request seconds and a 503, not a thread held for good.
REDIS_TIMEOUT = 2.0
# Reads of the queue's client: longer than the one-second blocking read of Huey's consumers.
QUEUE_SOCKET_TIMEOUT = 10.0

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+unix://")
_WHAT = {
    "RATELIMIT_STORAGE_URI": "the store of the sign-in and other rate limits",
    "JOB_QUEUE_URL": "the background job queue",
}


class SharedServiceUnreachable(RuntimeError):
    """A shared store the configuration names does not answer; the message says which,
    where, and why."""


def is_redis_url(url: str) -> bool:
    return url.startswith(_REDIS_SCHEMES)


def shown_url(url: str) -> str:
    """The URL without its password, for messages and logs (even a URL that does not parse
    further, e.g. one whose port is not a number)."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query,
                       parts.fragment))


def check_store_urls(config: Mapping[str, Any]) -> None:
    """Refuse a Redis URL that cannot be one, naming the setting (no connection is made):
    redis-py would otherwise fail at the first request, or quietly use database 0 for a
    path that is not a number."""
    for setting in _WHAT:
        url = str(config.get(setting) or "")
        if not is_redis_url(url):
            continue
        parts = urlsplit(url)
        try:
            if url.startswith(("redis://", "rediss://")):
                parts.port  # noqa: B018  (parsing it raises ValueError)
                database = parts.path.strip("/")
                if database and not database.isdigit():
                    raise ValueError(f"the path names a database by its number, not {database!r}")
            redis.connection.parse_url(url.replace("redis+unix://", "unix://", 1))
        except ValueError as exc:
            raise ValueError(f"{setting} is not a usable Redis URL ({shown_url(url)}): "
                             f"{_sentence(exc)}") from None


def rate_limit_storage_options(url: str, options: dict[str, object]) -> dict[str, object]:
    """Flask-Limiter's storage options: storage errors wrapped in limits' StorageError (so a
    store that stops answering is one kind of error whatever it is) and, on Redis, bounded
    socket waits."""
    options = {"wrap_exceptions": True, **options}
    if is_redis_url(url):
        options.setdefault("socket_connect_timeout", REDIS_TIMEOUT)
        options.setdefault("socket_timeout", REDIS_TIMEOUT)
        # One more try after a dropped connection, at once: redis-py's default three tries
        # with back-off would hold each request several times the timeout.
        options.setdefault("retry", Retry(NoBackoff(), 1))
    return options


def queue_connection_pool(url: str) -> redis.ConnectionPool:
    """The job queue's connections: bounded waits, longer than the one-second blocking read
    with which Huey's consumers wait for work."""
    return redis.ConnectionPool.from_url(url, socket_connect_timeout=REDIS_TIMEOUT,
                                         socket_timeout=QUEUE_SOCKET_TIMEOUT)


def _ping(url: str, timeout: float) -> None:
    if url.startswith("redis+unix://"):
        url = "unix://" + url.removeprefix("redis+unix://")
    # One try: redis-py's default retries with back-off only delay the answer at start.
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout,
                                  retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
    finally:
        client.close()


def _sentence(exc: Exception) -> str:
    return str(exc).rstrip(". ") or type(exc).__name__


def check_shared_services(app: Flask, settings: tuple[str, ...] = tuple(_WHAT),
                          timeout: float = CHECK_TIMEOUT) -> None:
    """Raise SharedServiceUnreachable unless every Redis the configuration names (in
    ``settings``) answers."""
    problems = []
    for setting in settings:
        url = str(app.config.get(setting) or "")
        if not is_redis_url(url):
            continue
        try:
            _ping(url, timeout)
        except redis.exceptions.AuthenticationError as exc:
            problems.append(f"{setting} ({shown_url(url)}), {_WHAT[setting]}, refused the "
                            f"credentials: {_sentence(exc)}")
        except (redis.exceptions.RedisError, OSError, ValueError) as exc:
            problems.append(f"{setting} ({shown_url(url)}), {_WHAT[setting]}, cannot be "
                            f"reached: {_sentence(exc)}")
    if problems:
        raise SharedServiceUnreachable(
            "; ".join(problems) + ". Start Redis or correct the setting; every app server "
            "and worker must name the same one.")


def layout_warnings(config: Mapping[str, Any]) -> list[str]:
    """Settings that work but contradict each other: a queue on Redis means several servers
    or workers, and then limits counted in each process's memory multiply the guesses each
    limit allows by the number of processes."""
    queue = str(config.get("JOB_QUEUE_URL") or "")
    limits = str(config.get("RATELIMIT_STORAGE_URI") or "")
    if is_redis_url(queue) and limits.startswith("memory://"):
        return ["JOB_QUEUE_URL is on Redis but RATELIMIT_STORAGE_URI is memory://: every "
                "process counts sign-in failures and the other limits on its own. Point "
                "RATELIMIT_STORAGE_URI at the shared Redis too."]
    return []
