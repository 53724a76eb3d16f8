"""Personal API tokens: create, list, revoke, and check the token of a request.

A token reads ``cxr_<prefix>_<secret>``: the prefix (shown in the token list) finds its row,
the secret is 256 random bits. Only the SHA-256 of the whole token is stored; it is shown
once, when created. A slow password hash buys nothing against 256 random bits and would
cost every API request its time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from flask_babel import gettext
from sqlalchemy import select

from app.api.models import ApiToken, TokenScope
from app.audit.services import record
from app.auth.models import User
from app.db_types import utcnow
from app.extensions import db
from app.user_errors import UserError

TOKEN_START = "cxr_"  # noqa: S105 (the visible start of every token, no secret)
MAX_LIFETIME_DAYS = 365
NAME_MAX = 80
# last_used_at is written at most this often per token: a busy client must not turn every
# read into a write.
LAST_USED_GRANULARITY = timedelta(minutes=1)


class TokenError(UserError):
    """A refused token action on the account page."""


class TokenRefused(Exception):
    """The request's bearer token is not accepted: ``reason`` is a stable word for programs
    (unknown, expired, revoked, inactive_account), ``message`` a sentence for people.
    ``prefix`` is the public part of what was presented when it has the form of one;
    ``token`` the stored token that prefix names, if any, and ``genuine`` whether the
    whole token matched it (a revoked or expired token, not a guess at one)."""

    def __init__(self, reason: str, message: str, *, prefix: str | None = None,
                 token: ApiToken | None = None, genuine: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.prefix = prefix
        self.token = token
        self.genuine = genuine


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # the whole token, shown once


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def latest_expiry(today: date) -> date:
    return today + timedelta(days=MAX_LIFETIME_DAYS)


def create_token(user: User, name: str, scope: str, expires_on: date | None,
                 *, now: datetime | None = None) -> NewToken:
    """A new token of ``user``, valid until the end of ``expires_on`` (UTC)."""
    now = now or utcnow()
    name = (name or "").strip()
    if not name:
        raise TokenError(gettext("give the token a name, to recognise it in the list later"))
    if len(name) > NAME_MAX:
        raise TokenError(gettext("the name is longer than %(count)s characters", count=NAME_MAX))
    try:
        chosen = TokenScope(scope)
    except ValueError:
        raise TokenError(gettext("choose read only, or read and write")) from None
    today = now.date()
    if expires_on is None:
        raise TokenError(gettext("choose the date the token expires"))
    if expires_on < today:
        raise TokenError(gettext("the expiry date has passed: choose a date from today on"))
    if expires_on > latest_expiry(today):
        raise TokenError(gettext("a token lasts at most %(days)s days: choose a date on or "
                                 "before %(last)s", days=MAX_LIFETIME_DAYS,
                                 last=latest_expiry(today).isoformat()))
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_START}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken(
        user_id=user.id, name=name, prefix=prefix, token_hash=_hash(secret),
        scope=chosen.value, created_at=now,
        expires_at=datetime.combine(expires_on + timedelta(days=1), time(), tzinfo=UTC))
    db.session.add(token)
    db.session.flush()
    # The name is typed by its owner: the audit keeps the token's id, scope and expiry.
    record("api_token.create", actor=user, object_type="api_token", object_id=token.id,
           scope=chosen.value, expires=expires_on.isoformat())
    db.session.commit()
    return NewToken(token, secret)


def tokens_of(user: User) -> list[ApiToken]:
    return list(db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id)
        .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc(),
                  ApiToken.id.desc())))


def revoke_token(user: User, token_id: int, *, now: datetime | None = None) -> ApiToken:
    """Revoke one of ``user``'s own tokens (someone else's is "no such token")."""
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise TokenError(gettext("there is no such token"), 404)
    if token.revoked_at is not None:
        raise TokenError(gettext("this token is already revoked"), 409)
    token.revoked_at = now or utcnow()
    record("api_token.revoke", actor=user, object_type="api_token", object_id=token.id)
    db.session.commit()
    return token


def check_token(presented: str, *, now: datetime | None = None) -> ApiToken:
    """The live token ``presented`` names, or TokenRefused saying why not."""
    now = now or utcnow()
    prefix = _prefix_of(presented)
    token = None if prefix is None else db.session.scalars(
        select(ApiToken).where(ApiToken.prefix == prefix)).first()
    if token is None or not hmac.compare_digest(token.token_hash, _hash(presented)):
        raise TokenRefused("unknown", "This API token is not known. Create one on your "
                                      "account's API tokens page.", prefix=prefix, token=token)
    if token.revoked_at is not None:
        raise TokenRefused("revoked", "This API token was revoked.", prefix=prefix,
                           token=token, genuine=True)
    if token.expires_at <= now:
        raise TokenRefused("expired", "This API token has expired. Create a new one.",
                           prefix=prefix, token=token, genuine=True)
    if not token.user.active:
        raise TokenRefused("inactive_account", "The account of this API token is "
                           "deactivated.", prefix=prefix, token=token, genuine=True)
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_GRANULARITY:
        token.last_used_at = now
        db.session.commit()
    return token


def _prefix_of(presented: str) -> str | None:
    if not presented.startswith(TOKEN_START) or len(presented) > 200:
        return None
    prefix, _, secret = presented[len(TOKEN_START):].partition("_")
    # The form create_token gives (4 random bytes in hex): anything else names no token,
    # and is not repeated in the security log.
    if len(prefix) != 8 or not secret or not all(c in "0123456789abcdef" for c in prefix):
        return None
    return prefix
