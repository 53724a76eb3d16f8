"""The security log: one JSON object per line (sign-ins, refusals, second-factor events,
exports, revocations...) for a SIEM to collect, separate from the audit table that
administrators read on the audit-log page (docs/security-log.md lists every event).

Two ways in:

- audit events (``app.audit.services.record``) of the actions in ``MIRRORED`` are noted
  with the database session and written only when its transaction COMMITS: a change that
  is rolled back is never logged as done;
- ``emit`` for what changes nothing in the database: refusals (401, 403, 429, CSRF), a
  session that ended for want of activity, exports and downloads.

Within a request, lines are written when the response is ready, so that they carry its
status; outside a request (the command line) at once.

Nothing here may break a request: a log that cannot be written is reported on the
application's own log, and the request goes on. No line holds a password, token, code,
secret, session id, patient data or free text typed by a user: an identifier typed at a
failed sign-in is given as a keyed hash (HMAC-SHA256 keyed from SECRET_KEY), so a SIEM can
correlate repeated guesses without the log holding what was typed (a password typed into
the user-name box, say).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import sys
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from logging.handlers import WatchedFileHandler
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g, has_app_context, has_request_context, request
from flask_login import current_user  # type: ignore[import-untyped]
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction
from werkzeug.wrappers import Response

from app.extensions import db

LOGGER_NAME = "cxr_academy.security"
DEFAULT_FILE_NAME = "security.log"
USER_AGENT_MAX = 200
TEXT_MAX = 120
_EXTENSION = "cxr_security_log"
_PENDING = "security_log_pending"  # Session.info: lines waiting for their commit
_QUEUE = "security_log_queue"  # g: lines waiting for the response's status
_REQUEST_ID = "security_log_request_id"

logger = logging.getLogger(LOGGER_NAME)
# Its own channel: lines go to the security log's destination, not to the portal's log.
logger.propagate = False
logger.setLevel(logging.INFO)

# Audit actions written to the security log: the event name, its outcome, and the detail
# keys copied. Detail keys not listed are left out: audit details may hold free text (a
# revocation's reason) that has no place in a log shipped elsewhere.
MIRRORED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "login": ("login", "success", ("second_factor",)),
    "login.password": ("login.password", "success", ()),
    "login.failed": ("login.failed", "failure", ()),
    "login.locked": ("login.locked", "failure", ("failures", "minutes", "scope", "until")),
    "logout": ("logout", "success", ()),
    "second_factor.enrol": ("second_factor.enrol", "success", ()),
    "second_factor.reset": ("second_factor.reset", "success", ()),
    "second_factor.recovery_codes_regenerated": (
        "second_factor.recovery_codes_regenerated", "success", ()),
    "second_factor.replacement_started": ("second_factor.replacement_started", "success", ()),
    "second_factor.replaced": ("second_factor.replaced", "success", ()),
    "second_factor.disabled": ("second_factor.disabled", "success", ()),
    "second_factor.disable_refused": ("second_factor.disable_refused", "failure", ()),
    # A key's name is typed by its owner: the line gives the key's id only.
    "second_factor.key_added": ("second_factor.key_added", "success", ("key",)),
    "second_factor.key_removed": ("second_factor.key_removed", "success", ("key",)),
    "second_factor.key_refused": ("second_factor.key_refused", "failure", ("reason",)),
    "session.ended": ("session.ended", "success", ("reason",)),
    "second_factor.recovery_code": ("second_factor.recovery_code", "success", ("remaining",)),
    "second_factor.failed": ("second_factor.failed", "failure", ()),
    "second_factor.locked": ("second_factor.locked", "failure", ("failures",)),
    "user.password": ("user.password", "success", ("via",)),
    "password_reset.request": ("password_reset.request", "success", ("matched", "emailed")),
    "user.create": ("user.create", "success", ("roles",)),
    "user.invite": ("user.invite", "success", ("emailed",)),
    "user.roles": ("user.roles", "success", ("before", "after")),
    "user.scope": ("user.scope", "success", ("before", "after")),
    "user.activate": ("user.activate", "success", ()),
    "user.deactivate": ("user.deactivate", "success", ()),
    "certificate.revoke": ("certificate.revoke", "success", ()),
    "certificate.reinstate": ("certificate.reinstate", "success", ()),
    "certificate.exception": ("certificate.exception", "success", ()),
    # A token's name is typed by its owner: the line gives its id (object_id), scope, expiry.
    "api_token.create": ("api_token.create", "success", ("scope", "expires")),
    "api_token.revoke": ("api_token.revoke", "success", ()),
}
# URL parts that are secrets (the signed token of an invitation or password-reset link):
# the line gives the route ("/auth/invitation/<token>") instead of the path.
SECRET_VIEW_ARGS = frozenset({"token"})
# Detail keys holding what someone typed to name an account: logged as a keyed hash only.
IDENTIFIER_KEYS = ("username", "identifier", "email")


# ---- writing -------------------------------------------------------------------------------


class OwnerOnlyFileHandler(WatchedFileHandler):
    """Appends to the log file, created readable by the portal's user alone (0600), and
    opens it afresh when logrotate (or anyone) has moved it away."""

    def __init__(self, path: str, *, make_folder: bool) -> None:
        self._make_folder = make_folder
        # delay: a path that cannot be opened must not stop the portal from starting.
        super().__init__(path, encoding="utf-8", delay=True)

    def _open(self):  # type: ignore[no-untyped-def]
        if self._make_folder:
            Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8")

    def handleError(self, record: logging.LogRecord) -> None:
        _report_failure(sys.exc_info()[1])


class _ToCurrentApp(logging.Handler):
    """The one handler of the security logger: hands each line to the destination of the
    application in whose context it was made (one process may run several, as the tests
    do); operators may add their own handlers to the logger as well."""

    def emit(self, record: logging.LogRecord) -> None:
        if not has_app_context():
            return
        handler = current_app.extensions.get(_EXTENSION)
        if handler is not None:
            handler.handle(record)


if not any(isinstance(h, _ToCurrentApp) for h in logger.handlers):
    logger.addHandler(_ToCurrentApp())


def _report_failure(exc: BaseException | None) -> None:
    # Only the kind of failure (and the OS's reason): never the line that was not written.
    reason = type(exc).__name__ if exc else "unknown error"
    if isinstance(exc, OSError) and exc.strerror:
        reason += f" ({exc.strerror})"
    if has_app_context():
        current_app.logger.warning("security log not written: %s", reason)


def destination(app: Flask) -> str:
    """Where the app writes its security log: a file path, or "-" for standard error."""
    configured = app.config.get("SECURITY_LOG_PATH")
    if configured:
        return str(configured)
    return str(Path(app.instance_path) / DEFAULT_FILE_NAME)


def _handler_for(app: Flask) -> logging.Handler:
    where = destination(app)
    handler: logging.Handler
    if where == "-":  # containers: the platform collects standard error
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = OwnerOnlyFileHandler(where, make_folder=not app.config.get("SECURITY_LOG_PATH"))
    # python-json-logger: fmt=[] writes the fields of the dict logged and nothing else.
    handler.setFormatter(JsonFormatter(fmt=[]))
    return handler


def _write(line: dict[str, Any]) -> None:
    try:
        logger.info(line)
    except Exception as exc:  # a log that cannot be written must not break the request
        _report_failure(exc)


def _deliver(line: dict[str, Any]) -> None:
    if has_request_context():
        g.setdefault(_QUEUE, []).append(line)
    else:
        _write(line)


def _flush(status: int | None) -> None:
    queued = g.pop(_QUEUE, None) if has_app_context() else None
    for line in queued or ():
        if status is not None and line.get("status") is None:
            line["status"] = status
        _write(line)


# ---- the fields of a line ------------------------------------------------------------------


def identifier_hash(text: str) -> str:
    """A keyed hash of a typed account identifier: equal inputs give equal hashes (a SIEM
    can count guesses per name), but the text itself cannot be read back or guessed without
    the portal's secret key."""
    key = hmac.new(str(current_app.config["SECRET_KEY"]).encode(), b"security-log identifiers",
                   hashlib.sha256).digest()
    normalised = text.strip().lower().encode("utf-8", "replace")
    return hmac.new(key, normalised, hashlib.sha256).hexdigest()[:32]


def _request_id() -> str:
    """An id per request, shared by its lines (and sent back as X-Request-ID)."""
    value = g.get(_REQUEST_ID)
    if value is None:
        value = uuid.uuid4().hex
        g.setdefault(_REQUEST_ID, value)
    return str(value)


def _loggable_path() -> str:
    """The path without its query string (which may carry a token), and with a link's
    token (invitation and reset links) replaced by the route's placeholder."""
    path = request.path
    secret_args = SECRET_VIEW_ARGS & set(request.view_args or {})
    if secret_args and request.url_rule is not None:
        path = (request.script_root + request.url_rule.rule)
    return path[:TEXT_MAX * 2]


def _signed_in_user() -> Any:
    try:
        user = current_user._get_current_object()  # type: ignore[attr-defined]
    except Exception:  # e.g. the database is out of reach
        return None
    return user if getattr(user, "is_authenticated", False) else None


def _base(event: str, outcome: str, user: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "event": event,
        "outcome": outcome,
        "user_id": None,
        "roles": [],
    }
    if user is None and has_request_context():
        user = _signed_in_user()
    if user is not None:
        line["user_id"] = getattr(user, "id", None)
        try:
            line["roles"] = sorted(r.value for r in user.roles)
        except Exception:  # roles not readable now: leave them out
            line["roles"] = []
    if has_request_context():
        line.update(
            ip=request.remote_addr,
            user_agent=(request.user_agent.string or "")[:USER_AGENT_MAX],
            request_id=_request_id(),
            method=request.method,
            path=_loggable_path(),
            endpoint=request.endpoint,
            status=None,
        )
    else:
        line["source"] = "command line"
    return line


def _clean(value: Any) -> Any:
    """Values a line may carry: numbers, booleans, short strings, lists of those."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value[:TEXT_MAX]
    if isinstance(value, Mapping):
        return {str(k)[:TEXT_MAX]: _clean(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_clean(v) for v in list(value)[:50]]
    return str(value)[:TEXT_MAX]


def emit(event: str, *, outcome: str, user: Any = None, status: int | None = None,
         **fields: Any) -> None:
    """Write an event that changes nothing in the database (a refusal, an export). ``user``
    defaults to the signed-in user; ``fields`` must hold no secret or patient data."""
    try:
        line = _base(event, outcome, user)
        if status is not None:
            line["status"] = status
        line.update({key: _clean(value) for key, value in fields.items()})
        _deliver(line)
    except Exception as exc:  # never break the request
        _report_failure(exc)


def note_audit_event(action: str, *, actor: Any, object_type: str | None, object_id: object,
                     detail: Mapping[str, Any]) -> None:
    """Called by ``record``: if ``action`` is mirrored, hold its line until the audit
    event's transaction commits (dropped if it rolls back)."""
    mirrored = MIRRORED.get(action)
    if mirrored is None:
        return
    try:
        event, outcome, keys = mirrored
        line = _base(event, outcome, actor)
        if object_type is not None:
            line["object_type"] = object_type
            line["object_id"] = None if object_id is None else str(object_id)[:64]
        # A detail never overwrites a field of the line (a new account's roles are not
        # the actor's): such a key gets the prefix "detail_".
        line.update({(f"detail_{key}" if key in line else key): _clean(detail[key])
                     for key in keys if key in detail})
        for key in IDENTIFIER_KEYS:
            typed = detail.get(key)
            if isinstance(typed, str) and typed:
                line[f"{key}_hash"] = identifier_hash(typed)
            hashed = detail.get(f"{key}_hash")  # hashed already by the code that audits
            if isinstance(hashed, str) and hashed:
                line[f"{key}_hash"] = hashed
        db.session.info.setdefault(_PENDING, []).append(line)
    except Exception as exc:  # never break the change being audited
        _report_failure(exc)


# ---- the commit hook -----------------------------------------------------------------------


def _after_commit(session: Session) -> None:
    for line in session.info.pop(_PENDING, ()):
        _deliver(line)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended: what is still pending was rolled back (a commit
    # delivered its lines just before). Savepoints leave the lines to their outer transaction.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


sa_event.listen(db.session, "after_commit", _after_commit)
sa_event.listen(db.session, "after_transaction_end", _after_transaction_end)


# ---- the application's side ----------------------------------------------------------------


def _note_refused_access(status: int) -> None:
    """A 401 or 403, whether aborted (roles_required) or rendered by a page (an exercise not
    assigned to the user), is a refused access, unless the request already logged its own
    failure (a wrong password is "login.failed", a wrong code "second_factor.failed")."""
    if status not in (401, 403):
        return
    if any(line.get("outcome") == "failure" for line in g.get(_QUEUE, ())):
        return
    emit("access.refused", outcome="failure",
         reason="forbidden" if status == 403 else "sign_in_required")


def init_security_log(app: Flask) -> None:
    app.extensions[_EXTENSION] = _handler_for(app)
    # logging.config.dictConfig disables loggers it does not name unless told otherwise
    # (disable_existing_loggers), as a server's logging set-up may do before the app loads:
    # the security log must not fall silent that way.
    logger.disabled = False

    @app.after_request
    def _write_request_lines(response: Response) -> Response:
        try:
            _note_refused_access(response.status_code)
            if _QUEUE in g:
                response.headers["X-Request-ID"] = _request_id()
            _flush(response.status_code)
        except Exception as exc:  # never break the response
            _report_failure(exc)
        return response

    @app.teardown_request
    def _write_left_over_lines(exc: BaseException | None) -> None:
        # A request that ended without a response (an error past the handlers).
        try:
            _flush(None)
        except Exception as failure:
            _report_failure(failure)
