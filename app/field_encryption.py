"""Encryption of single database fields (authenticator keys) under keys kept outside the
database, so a copy of the database or of a backup does not reveal them.

Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) under MultiFernet: the first key
encrypts, every key decrypts, so keys are rotated by putting a new one first and re-encrypting
(``cxr-academy users encrypt-2fa-keys``) before the old one is dropped. Each configured key is
any string of at least 32 characters (e.g. ``secrets.token_hex(32)``); the Fernet key is derived
from it with HKDF-SHA256, so the instance's generated key file and a hand-set key look alike.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_KEY_LENGTH = 32
# Binds derived keys to this use: the same configured string used elsewhere gives other keys.
_HKDF_INFO = b"cxr-academy/field-encryption/v1"


class FieldKeyError(ValueError):
    """The configured keys are unusable (none, or too short); the message says which."""


class UndecryptableField(ValueError):
    """A stored value that none of the configured keys opens (another install's key, a key
    dropped from the list too early, or a damaged value)."""


def parse_keys(value: object) -> tuple[str, ...]:
    """``FIELD_ENCRYPTION_KEYS`` as configured: a list of strings, or one string holding one
    key or several separated by commas or spaces (environment variables are strings)."""
    if isinstance(value, str):
        keys: Iterable[object] = value.replace(",", " ").split()
    elif isinstance(value, list | tuple):
        keys = value
    else:
        raise FieldKeyError("FIELD_ENCRYPTION_KEYS must be a list of keys (strings)")
    parsed = tuple(str(k).strip() for k in keys if str(k).strip())
    if not parsed:
        raise FieldKeyError("FIELD_ENCRYPTION_KEYS holds no key")
    for n, key in enumerate(parsed, start=1):
        if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
            raise FieldKeyError(
                f"FIELD_ENCRYPTION_KEYS key {n} is shorter than {MIN_KEY_LENGTH} characters; "
                "use e.g. python -c 'import secrets; print(secrets.token_hex(32))'")
    return parsed


def _fernet_key(key: str) -> bytes:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=_HKDF_INFO).derive(key.encode())
    return base64.urlsafe_b64encode(derived)


@lru_cache(maxsize=8)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(k)) for k in keys])


def encrypt(keys: Sequence[str], plaintext: str) -> str:
    """``plaintext`` encrypted under the first key (URL-safe text, authenticated)."""
    return _cipher(tuple(keys)).encrypt(plaintext.encode()).decode("ascii")


def decrypt(keys: Sequence[str], token: str) -> str:
    try:
        return _cipher(tuple(keys)).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError, ValueError):
        raise UndecryptableField("no configured key opens this value") from None


def reencrypt(keys: Sequence[str], token: str) -> str:
    """``token`` under the first key (unchanged in meaning); raises UndecryptableField."""
    try:
        return _cipher(tuple(keys)).rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError, ValueError):
        raise UndecryptableField("no configured key opens this value") from None


def is_first_key(keys: Sequence[str], token: str) -> bool:
    """Whether ``token`` is already encrypted under the first (current) key."""
    try:
        Fernet(_fernet_key(keys[0])).decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeError, ValueError):
        return False
    return True
