"""Security keys (WebAuthn, through py_webauthn) as a second kind of second factor.

A key is registered from the account's security-key page and then answers the sign-in's
second step instead of an authenticator code. The relying party (the site a key's
credential is bound to) is the portal's public address, PUBLIC_BASE_URL, never the Host
header of a request: a key registered here must not sign anyone in to a look-alike host.

Each ceremony's challenge is a database row named from the session: answering it deletes
it, so a challenge (and with it a recorded answer) is good for one use even if a client
sends an old session cookie again, and it expires after SECURITY_KEY_CHALLENGE_MAX_AGE.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import current_app, session
from flask_babel import gettext
from sqlalchemy import CursorResult, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.audit.services import record
from app.auth.models import User
from app.auth.passwords import verify_password
from app.auth.security_key_models import (
    CREDENTIAL_ID_MAX,
    KEY_NAME_MAX,
    SecurityKey,
    SecurityKeyChallenge,
)
from app.db_types import utcnow
from app.extensions import db
from app.i18n import N_
from app.urls import checked_base_url
from app.validation import loads_strict

# py_webauthn (with pyOpenSSL) is imported by the functions that use it: loading it costs
# every process (the web workers, each command) a fifth of a second of start-up.
if TYPE_CHECKING:
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor

RP_NAME = "CXR Academy"
REGISTER = "register"
SIGN_IN = "sign_in"
MAX_KEYS_PER_USER = 10
# What a browser may post back for one credential: generous for RSA keys and long ids,
# small enough that nothing large is ever parsed.
MAX_RESPONSE_CHARS = 16_000
# How long the browser shows its prompt (a hint to it, in milliseconds).
PROMPT_TIMEOUT_MS = 120_000
_BASE64URL = re.compile(rf"[A-Za-z0-9_-]{{1,{CREDENTIAL_ID_MAX}}}")

# Plain English (tests compare them, the audit log keeps them); SecurityKeyError.shown
# translates them.
UNAVAILABLE = N_(
    "Security keys need the portal to be reached by its domain name (for example "
    "https://cxr.example.org, or http://localhost on this computer); this portal's public "
    "address is %(base)s. Use an authenticator app instead."
)
NO_CHALLENGE = N_(
    "This security key request was not started here or was already answered. "
    "Try again."
)
EXPIRED = N_("This security key request has expired. Try again.")
MALFORMED = N_("The browser's answer from the security key could not be read. Try again.")
NOT_YOURS = N_("This security key is not registered to your account.")
ALREADY_REGISTERED = N_("This security key is already registered.")
TOO_MANY_KEYS = N_("An account can have at most %(count)s security keys. Remove one first.")
NAME_LENGTH = N_("Name the key in 1 to %(count)s characters.")
NO_KEY = N_("This account has no security key.")
REFUSED = N_("The security key's answer was refused.")
CLONED = N_(
    "This security key's signature counter went back, which a copied key would do. It is "
    "refused; sign in with your authenticator code and ask your administrator to check it."
)
WRONG_PASSWORD = N_("That password is not right.")
NO_SUCH_KEY = N_("There is no such security key on your account.")

# The library's refusals, in words for the user: (what its message mentions, sentence).
_REASONS = (
    ("challenge", N_("It answers a different request. Try again.")),
    ("origin", N_("It was made for another web address than this portal's.")),
    ("RP ID", N_("It was made for another site than this portal.")),
    ("signature", N_("Its signature does not match this security key.")),
    ("present", N_("The security key was not touched.")),
    ("type", N_("It is not the answer to this kind of request.")),
)


class SecurityKeyError(Exception):
    """A refusal with a sentence for the user and the HTTP status that says what went wrong."""

    def __init__(self, sentence: str, status: int = 400, **values: Any) -> None:
        # ``sentence`` is a marked constant, or several joined by a space; ``values`` fill
        # its placeholders.
        english = " ".join(part % values if values else part for part in _parts(sentence))
        super().__init__(english)
        self.sentence = english  # plain English: tests compare it, the audit log keeps it
        self._template = sentence
        self._values = values
        self.status = status

    @property
    def shown(self) -> str:
        """The sentence in the reader's language."""
        return " ".join(gettext(part, **self._values) for part in _parts(self._template))


def _parts(sentence: str) -> list[str]:
    """A refusal by the library is REFUSED followed by its reason: two catalogue entries."""
    if sentence.startswith(REFUSED + " "):
        return [REFUSED, sentence[len(REFUSED) + 1:]]
    return [sentence]


# ---- the relying party ------------------------------------------------------------------------


@dataclass(frozen=True)
class RelyingParty:
    id: str  # the host name credentials are bound to
    origin: str  # the origin the browser reports in its client data


def relying_party() -> RelyingParty | None:
    """The portal as a WebAuthn relying party, from PUBLIC_BASE_URL; None when browsers would
    refuse it: an IP address is no valid relying-party id, and WebAuthn runs only in a secure
    context (https, or http on localhost)."""
    base = urlsplit(checked_base_url(current_app.config["PUBLIC_BASE_URL"]))
    host = (base.hostname or "").rstrip(".")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    local = host == "localhost" or host.endswith(".localhost")
    if not host or (base.scheme != "https" and not local):
        return None
    default_port = {"http": 80, "https": 443}[base.scheme]
    port = "" if base.port in (None, default_port) else f":{base.port}"
    return RelyingParty(id=host, origin=f"{base.scheme}://{host}{port}")


def unavailable_sentence() -> str:
    """Why security keys cannot be used here, in the reader's language."""
    return gettext(UNAVAILABLE, base=current_app.config["PUBLIC_BASE_URL"])


def _relying_party() -> RelyingParty:
    rp = relying_party()
    if rp is None:
        raise SecurityKeyError(UNAVAILABLE, 409, base=current_app.config["PUBLIC_BASE_URL"])
    return rp


# ---- the keys of an account ----------------------------------------------------------------


def keys_of(user: User) -> list[SecurityKey]:
    return list(
        db.session.scalars(
            select(SecurityKey).where(SecurityKey.user_id == user.id).order_by(SecurityKey.id)
        )
    )


def has_security_key(user: User) -> bool:
    return db.session.scalar(
        select(SecurityKey.id).where(SecurityKey.user_id == user.id).limit(1)
    ) is not None


def _descriptors(user: User) -> list[PublicKeyCredentialDescriptor]:
    from webauthn.helpers import base64url_to_bytes
    from webauthn.helpers.structs import AuthenticatorTransport, PublicKeyCredentialDescriptor

    descriptors = []
    for key in keys_of(user):
        transports = [AuthenticatorTransport(t) for t in key.transports.split(",") if t]
        descriptors.append(
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(key.credential_id),
                                          transports=transports or None)
        )
    return descriptors


def _user_handle(user: User) -> bytes:
    """The WebAuthn user handle: stable per account (an authenticator that keeps credentials
    replaces its own for the same account) yet naming nothing about the user."""
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(secret, f"security-key-user:{user.id}".encode(), hashlib.sha256).digest()


# ---- challenges -------------------------------------------------------------------------------


def _session_key(purpose: str) -> str:
    return f"security_key_challenge_{purpose}"


def _issue_challenge(user: User, purpose: str) -> bytes:
    """A new random challenge for ``user``'s ceremony; an earlier one of the same kind (and
    every expired one) is dropped."""
    now = utcnow()
    db.session.execute(
        delete(SecurityKeyChallenge).where(
            or_(
                SecurityKeyChallenge.expires_at < now,
                and_(SecurityKeyChallenge.user_id == user.id,
                     SecurityKeyChallenge.purpose == purpose),
            )
        )
    )
    challenge = secrets.token_bytes(32)
    row = SecurityKeyChallenge(
        user_id=user.id,
        purpose=purpose,
        challenge=challenge,
        expires_at=now + current_app.config["SECURITY_KEY_CHALLENGE_MAX_AGE"],
    )
    db.session.add(row)
    db.session.commit()
    session[_session_key(purpose)] = row.id
    return challenge


def _take_challenge(user: User, purpose: str) -> bytes:
    """The challenge this session was given, spent now whatever the answer turns out to be.
    One conditional DELETE, so two requests racing with the same answer cannot both pass."""
    challenge_id = session.pop(_session_key(purpose), None)
    if not isinstance(challenge_id, int):
        raise SecurityKeyError(NO_CHALLENGE)
    row = db.session.get(SecurityKeyChallenge, challenge_id)
    if row is None or row.user_id != user.id or row.purpose != purpose:
        raise SecurityKeyError(NO_CHALLENGE)
    challenge, expires_at = row.challenge, row.expires_at
    spent: CursorResult[Any] = db.session.execute(  # type: ignore[assignment]
        delete(SecurityKeyChallenge)
        .where(SecurityKeyChallenge.id == challenge_id)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if spent.rowcount != 1:
        raise SecurityKeyError(NO_CHALLENGE)
    if expires_at <= utcnow():
        raise SecurityKeyError(EXPIRED)
    return challenge


# ---- registration -------------------------------------------------------------------------------


def registration_options(user: User) -> str:
    """The options for ``navigator.credentials.create()``, as JSON."""
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers.structs import (
        AttestationConveyancePreference,
        AuthenticatorSelectionCriteria,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    rp = _relying_party()
    if len(keys_of(user)) >= MAX_KEYS_PER_USER:
        raise SecurityKeyError(TOO_MANY_KEYS, 409, count=MAX_KEYS_PER_USER)
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=RP_NAME,
        user_id=_user_handle(user),
        user_name=user.username,
        user_display_name=user.full_name,
        challenge=_issue_challenge(user, REGISTER),
        timeout=PROMPT_TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        # A second factor after the password: the touch of the key is the proof, so no PIN
        # is asked for and nothing is stored on the key itself.
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED,
            user_verification=UserVerificationRequirement.DISCOURAGED,
        ),
        exclude_credentials=_descriptors(user),
    )
    return options_to_json(options)


def register_key(user: User, name: str, response: str) -> SecurityKey:
    """Verify the browser's answer to the registration options and keep the new key."""
    from webauthn import verify_registration_response
    from webauthn.helpers import bytes_to_base64url

    rp = _relying_party()
    name = " ".join(name.split())
    if not name or len(name) > KEY_NAME_MAX:
        raise SecurityKeyError(NAME_LENGTH, count=KEY_NAME_MAX)
    challenge = _take_challenge(user, REGISTER)
    credential = _parse(response)
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=False,
        )
    except _library_refusals() as exc:
        raise SecurityKeyError(_refusal(exc)) from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if len(credential_id) > CREDENTIAL_ID_MAX:
        raise SecurityKeyError(MALFORMED)
    if len(keys_of(user)) >= MAX_KEYS_PER_USER:
        raise SecurityKeyError(TOO_MANY_KEYS, 409, count=MAX_KEYS_PER_USER)
    if db.session.scalar(select(SecurityKey.id).where(SecurityKey.credential_id == credential_id)):
        raise SecurityKeyError(ALREADY_REGISTERED, 409)
    key = SecurityKey(
        user_id=user.id,
        credential_id=credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=",".join(_transports(credential)),
        name=name,
        created_at=utcnow(),
    )
    db.session.add(key)
    try:
        db.session.flush()
    except IntegrityError:  # the same key registered by a racing request
        db.session.rollback()
        raise SecurityKeyError(ALREADY_REGISTERED, 409) from None
    record("second_factor.key_added", actor=user, object_type="user", object_id=user.id,
           key=key.id, name=name)
    db.session.commit()
    return key


def _transports(credential: dict[str, Any]) -> list[str]:
    from webauthn.helpers.structs import AuthenticatorTransport

    given = credential.get("response", {}).get("transports")
    known = {t.value for t in AuthenticatorTransport}
    if not isinstance(given, list):
        return []
    return sorted({t for t in given if isinstance(t, str) and t in known})


# ---- sign-in ------------------------------------------------------------------------------------


def sign_in_options(user: User) -> str:
    """The options for ``navigator.credentials.get()`` for ``user``'s keys, as JSON."""
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers.structs import UserVerificationRequirement

    rp = _relying_party()
    allowed = _descriptors(user)
    if not allowed:
        raise SecurityKeyError(NO_KEY, 409)
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=_issue_challenge(user, SIGN_IN),
        timeout=PROMPT_TIMEOUT_MS,
        allow_credentials=allowed,
        user_verification=UserVerificationRequirement.DISCOURAGED,
    )
    return options_to_json(options)


def verify_sign_in(user: User, response: str) -> SecurityKey:
    """Check the browser's answer from one of ``user``'s keys; on success the key's counter
    and last use are updated (the caller completes the sign-in and commits)."""
    from webauthn import verify_authentication_response

    rp = _relying_party()
    challenge = _take_challenge(user, SIGN_IN)
    credential = _parse(response)
    credential_id = credential.get("id")
    key = None
    # Looked up only as what an id can be (base64url): no stray character (a NUL, which
    # PostgreSQL text refuses) reaches the query.
    if isinstance(credential_id, str) and _BASE64URL.fullmatch(credential_id):
        key = db.session.scalar(
            select(SecurityKey).where(SecurityKey.credential_id == credential_id)
        )
    if key is None or key.user_id != user.id:
        if key is not None:
            _refused(user, "another account's key", key_owner=key.user_id)
        raise SecurityKeyError(NOT_YOURS, 401)
    try:
        # The counter is compared below, after the signature: only a response the key really
        # signed may flag the key as copied (an unsigned one with a low counter would let
        # anyone raise that alarm).
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=key.public_key,
            credential_current_sign_count=0,
            require_user_verification=False,
        )
    except _library_refusals() as exc:
        sentence = _refusal(exc)
        _refused(user, sentence, key=key.id)
        raise SecurityKeyError(sentence, 401) from None
    new_count = verified.new_sign_count
    # WebAuthn section 6.1.1: a key that keeps no counter always says 0; otherwise each
    # use must say more than the last.
    if (new_count or key.sign_count) and new_count <= key.sign_count:
        _refused(user, "counter", key=key.id, stored=key.sign_count, given=new_count)
        raise SecurityKeyError(CLONED, 401)
    claimed: CursorResult[Any] = db.session.execute(  # type: ignore[assignment]
        update(SecurityKey)
        .where(SecurityKey.id == key.id, SecurityKey.sign_count == key.sign_count)
        .values(sign_count=new_count, last_used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # another sign-in with this key moved the counter meanwhile
        db.session.rollback()
        raise SecurityKeyError(NO_CHALLENGE, 409)
    db.session.refresh(key)
    return key


def _refused(user: User, reason: str, **detail: Any) -> None:
    record("second_factor.key_refused", actor=user, object_type="user", object_id=user.id,
           reason=reason, **detail)
    db.session.commit()


# ---- removal ------------------------------------------------------------------------------------


def remove_key(user: User, key_id: int, password: str) -> None:
    """Remove one of ``user``'s keys; their password confirms it is them."""
    key = db.session.get(SecurityKey, key_id)
    if key is None or key.user_id != user.id:
        raise SecurityKeyError(NO_SUCH_KEY, 404)
    if not verify_password(user.password_hash, password):
        raise SecurityKeyError(WRONG_PASSWORD, 401)
    record("second_factor.key_removed", actor=user, object_type="user", object_id=user.id,
           key=key.id, name=key.name)
    db.session.delete(key)
    db.session.commit()


def remove_all_keys(user: User) -> int:
    """Remove every key of ``user`` (an administrator's reset; the caller commits)."""
    removed: CursorResult[Any] = db.session.execute(  # type: ignore[assignment]
        delete(SecurityKey).where(SecurityKey.user_id == user.id)
    )
    db.session.execute(delete(SecurityKeyChallenge).where(SecurityKeyChallenge.user_id == user.id))
    return int(removed.rowcount or 0)


# ---- the browser's answer -------------------------------------------------------------------


# What py_webauthn raises for an answer it refuses, and what its parsers may raise on bytes
# that are no WebAuthn structure at all (bad base64, CBOR, key points).
def _library_refusals() -> tuple[type[Exception], ...]:
    from webauthn.helpers.exceptions import WebAuthnException

    return (WebAuthnException, ValueError, TypeError, KeyError, IndexError, AttributeError,
            OverflowError)


def _parse(response: str) -> dict[str, Any]:
    if not response or len(response) > MAX_RESPONSE_CHARS:
        raise SecurityKeyError(MALFORMED)
    try:
        # As every JSON the portal reads: no NaN, and nesting refused well before Python's
        # recursion limit (json.loads would raise RecursionError, past ValueError).
        credential = loads_strict(response)
    except ValueError:
        raise SecurityKeyError(MALFORMED) from None
    if not isinstance(credential, dict) or not isinstance(credential.get("response"), dict):
        raise SecurityKeyError(MALFORMED)
    return credential


def _refusal(exc: Exception) -> str:
    message = str(exc)
    for needle, sentence in _REASONS:
        if needle.lower() in message.lower():
            return REFUSED + " " + sentence
    return MALFORMED
