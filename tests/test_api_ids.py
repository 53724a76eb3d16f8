"""Ids past what the database's id columns hold name nothing: a 404, on PostgreSQL too
(whose 32-bit integer columns refuse to compare with them), in the API and the pages."""

from __future__ import annotations

import pytest

from app.api.tokens import create_token
from app.auth.roles import Role
from app.db_types import utcnow
from tests.conftest import login


@pytest.mark.parametrize("number", [2**31, 2**40, 2**63 - 1])
def test_ids_past_the_id_columns_are_404_not_500(client, make_user, number):
    user = make_user(Role.TRAINEE_RADIOLOGIST, Role.TRAINER)
    token = create_token(user, "t", "write", utcnow().date()).secret
    auth = {"Authorization": f"Bearer {token}"}
    for method, path in (("POST", f"/api/v1/exercises/{number}/attempts"),
                         ("GET", f"/api/v1/attempts/{number}"),
                         ("GET", f"/api/v1/cases/{number}")):
        assert client.open(path, method=method, headers=auth).status_code == 404, path
    login(client, user.username)
    assert client.get(f"/training/attempts/{number}/1").status_code == 404
    assert client.get(f"/cases/{number}").status_code == 404
