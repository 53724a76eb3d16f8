"""argon2id password hashing (argon2-cffi), parameters from the app config."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

_EXTENSION_KEY = "cxr_password_hasher"


def hasher() -> PasswordHasher:
    hashers = current_app.extensions
    if _EXTENSION_KEY not in hashers:
        cfg = current_app.config
        hashers[_EXTENSION_KEY] = PasswordHasher(
            time_cost=cfg["ARGON2_TIME_COST"],
            memory_cost=cfg["ARGON2_MEMORY_COST"],
            parallelism=cfg["ARGON2_PARALLELISM"],
        )
    return hashers[_EXTENSION_KEY]


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        # Spend the same time as a real check so that timing does not reveal
        # whether an account exists or has a password yet.
        hasher().hash(password)
        return False
    try:
        return hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return hasher().check_needs_rehash(password_hash)
