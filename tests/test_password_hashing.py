"""The portal's argon2id parameters are OWASP's minimum (m=19 MiB, t=2, p=1), cheap enough
for a whole class signing in at once; a password hashed with other parameters still signs
in and is re-hashed with the current ones."""

from __future__ import annotations

import argon2
import pytest
from argon2 import PasswordHasher

from app.auth.models import User
from app.auth.roles import Role
from app.config import DefaultConfig
from app.extensions import db
from tests.conftest import PASSWORD, login

ARGON2_KEYS = ("ARGON2_TIME_COST", "ARGON2_MEMORY_COST", "ARGON2_PARALLELISM")
# What hashes were made with before: RFC 9106's second profile (argon2-cffi's default).
FORMER = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4)


@pytest.fixture
def production_hashing(app):
    """The app hashing with the shipped parameters (the tests' own are cheaper)."""
    app.config.update({key: getattr(DefaultConfig, key) for key in ARGON2_KEYS})
    app.extensions.pop("cxr_password_hasher", None)
    yield app
    app.extensions.pop("cxr_password_hasher", None)


def test_the_shipped_parameters_are_owasps_minimum(production_hashing, make_user):
    user = make_user(Role.TRAINEE_RADIOLOGIST)
    parameters = argon2.extract_parameters(user.password_hash)
    assert parameters.type is argon2.Type.ID
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (
        19456, 2, 1)


def test_a_password_hashed_with_former_parameters_signs_in_and_is_upgraded(
        production_hashing, client, make_user):
    user = make_user(Role.TRAINEE_RADIOLOGIST, username="reader")
    user.password_hash = FORMER.hash(PASSWORD)
    db.session.commit()
    response = login(client, "reader")
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    db.session.expire_all()
    upgraded = db.session.get(User, user.id).password_hash
    parameters = argon2.extract_parameters(upgraded)
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (
        19456, 2, 1)
    assert PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1).verify(
        upgraded, PASSWORD)
    # And the upgraded hash signs in again.
    assert login(production_hashing.test_client(), "reader").status_code == 302
