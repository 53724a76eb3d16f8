"""Every route in the URL map, as every role and signed out, answers bad requests with a
4xx, never a 5xx: path variables out of range or of the wrong kind, query strings with
junk and huge numbers, form and JSON bodies with deep nesting, NaN/Infinity, huge numbers,
long strings and wrong types, and methods the route does not take. Bodies are sent both
without a CSRF token (refused at the edge) and with the page's real token, so that they
reach the views."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.routing import Rule

from app.auth.models import User
from app.auth.roles import Role
from app.cases.models import Case, CaseImage
from app.certification.models import Programme
from app.extensions import db, limiter
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt, Exercise
from app.quizzes.services import start_attempt
from tests.conftest import IsolatedClient, login
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_certification import programme  # noqa: F401 (fixture)

# Per route and role: enough to reach every kind of bad input a few times while the whole
# file stays within a few minutes on one slow core (74 routes x 6 roles).
EXAMPLES_PER_ROUTE = 4
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
# Query parameters the views read (grep request.args), plus a name no view knows.
KNOWN_ARGS = ("page", "per_page", "programme", "clinic", "from", "status", "finding",
              "classification", "tb", "difficulty", "tag", "source", "review", "format",
              "table", "user", "attempts", "q", "country", "code", "next", "v", "scheme",
              "allow_no_meta", "actor", "action", "object_type", "object_id", "since",
              "until", "start", "end", "last", "by", "junk")
# Field names the portal's forms and JSON bodies use.
KNOWN_FIELDS = ("answers", "marks", "revision", "definition", "title", "name", "email",
                "username", "password", "new_password", "confirm", "reason", "flagged",
                "scheme", "status", "roles", "clinic", "programme", "reader", "case_ids",
                "validity_days", "cme_hours", "time_limit", "x", "y", "width", "height",
                "decision", "city", "country", "files", "kind", "criteria", "junk")
# Words the string path variables take (image kinds, certificate actions, help guides).
KNOWN_WORDS = ("original", "preview", "display", "full", "thumbnail", "revoke", "reinstate",
               "trainee", "trainer", "programme-lead", "admin", "glossary", "x.json")

HUGE_INTS = st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64, 10**20, 10**400])
NUMBER_TEXT = st.one_of(
    st.integers(-5, 5).map(str),
    HUGE_INTS.map(str),
    st.sampled_from(["-99999999999999999999", "1.5", "1e400", "NaN", "Infinity", "²",
                     "٣", "0x10", " 1", "", "null"]),
)
JUNK_TEXT = st.one_of(
    NUMBER_TEXT,
    st.text(max_size=40),
    st.sampled_from(["a" * 5_000, "<script>", "../../etc/passwd", "%00", "'; --", "\x00"]),
)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10, 10), HUGE_INTS,
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(KNOWN_FIELDS), children,
                                               max_size=4)),
    max_leaves=12,
)
RAW_JSON = st.one_of(
    JSON_VALUES.map(json.dumps),
    st.dictionaries(st.sampled_from(KNOWN_FIELDS), JSON_VALUES, max_size=4).map(json.dumps),
    st.sampled_from([
        '{"answers": {"tb_likelihood": Infinity}, "marks": []}',
        '{"answers": {"tb_likelihood": 1e400}, "marks": []}',
        '{"answers": NaN}',
        '{"answers": {}, "marks": ' + _deep(50_000) + "}",
        '{"marks": [{"image_id": [1], "finding": "nodule", "shape": "point"}]}',
        '{"revision": 99999999999999999999}',
        "{not json", "", "\xff\xfe",
    ]),
)


def _path_value(converter: str, ids: list[int]) -> st.SearchStrategy[str]:
    if converter == "IntegerConverter" or converter == "BoundedIntegerConverter":
        return st.one_of(st.sampled_from(ids), st.integers(-3, 8), HUGE_INTS).map(str)
    if converter == "PathConverter":
        return st.one_of(st.sampled_from(["app.css", "viewer/viewer.js", "../../config.py",
                                          "x" * 300]), st.text(min_size=1, max_size=20))
    return st.one_of(st.sampled_from(KNOWN_WORDS), JUNK_TEXT.filter(bool))


def _path(rule: Rule, data: Any, ids: list[int]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[-1]
        converter = type(rule._converters[name]).__name__
        value = data.draw(_path_value(converter, ids), label=name)
        return quote(value, safe="")

    return re.sub(r"<([^>]+)>", fill, rule.rule)


@pytest.fixture
def world(app: Flask, make_user, cases, programme, monkeypatch):  # noqa: F811 (fixture)
    """Something of everything for the ids in paths to find: cases, an exercise, an open
    attempt, a programme; one user per role."""
    # The sign-in rate limit would otherwise refuse the many sign-ins below (429 is a 4xx,
    # but the rest of the run would then be signed out).
    monkeypatch.setattr(limiter, "enabled", False)
    practice = create_exercise(title="More practice", kind="practice", scheme_key="ds3030",
                               case_ids=[cases[1].id], actor=None)
    users = {role: make_user(role, username=f"fuzz_{role.value}", lead_all_countries=True)
             if role is Role.PROGRAMME_LEAD else make_user(role, username=f"fuzz_{role.value}")
             for role in Role}
    start_attempt(practice, users[Role.TRAINEE_RADIOLOGIST])
    db.session.commit()
    ids = sorted({1, 2, *(i for model in (User, Case, CaseImage, Exercise, Attempt, Programme)
                          for i in db.session.scalars(select(model.id)))})
    return users, ids


def _client(app: Flask, user: User | None) -> tuple[IsolatedClient, str | None]:
    client = app.test_client()
    if user is not None:
        assert login(client, user.username).status_code == 302
    page = client.get("/help/").get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    return client, match.group(1) if match else None  # type: ignore[return-value]


HUGE = "99999999999999999999"  # 20 digits: past 64-bit integers
# Bodies every route that takes one is sent, with the real CSRF token, besides the random ones.
CANONICAL_BODIES: tuple[tuple[str, str | dict[str, str]], ...] = (
    ("application/json", '{"answers": {}, "marks": ' + _deep(100_000) + "}"),
    ("application/json", '{"answers": {"tb_likelihood": Infinity}, "marks": []}'),
    ("application/json", '{"answers": {"tb_likelihood": 1e400}, "revision": 1e400}'),
    ("application/json", '{"answers": {}, "marks": [{"image_id": [1], "finding": "nodule", '
                         '"shape": "point", "geometry": {"x": 1, "y": 1}}]}'),
    ("", {name: HUGE for name in KNOWN_FIELDS}),
    ("", {name: "a" * 5_000 for name in KNOWN_FIELDS}),
)


def _canonical_paths(rule: Rule, ids: list[int]) -> list[str]:
    """The route with every number too large for the database, and with each known id."""
    def fill(value: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1).split(":")[-1]
            converter = type(rule._converters[name]).__name__
            return value if "Integer" in converter else quote("x.json" if value == HUGE
                                                              else KNOWN_WORDS[0], safe="")
        return re.sub(r"<([^>]+)>", one, rule.rule)

    return list(dict.fromkeys([fill(HUGE), *(fill(str(i)) for i in ids[:3])]))


def _canonical(client: IsolatedClient, rule: Rule, who: str, token: str | None,
               ids: list[int]) -> None:
    """Deterministic bad requests: huge numbers in every path variable and query
    parameter, each bad body with the real token, every method the route does not take."""
    taken = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    for path in _canonical_paths(rule, ids):
        requests: list[tuple[str, dict[str, Any]]] = [
            ("GET", {"query_string": {name: HUGE for name in KNOWN_ARGS}}),
            ("GET", {"query_string": {name: "²" for name in KNOWN_ARGS}}),
            *((m, {}) for m in METHODS if m not in taken),
        ]
        if set(taken) - {"GET"}:
            for kind, body in CANONICAL_BODIES:
                headers = {"X-CSRFToken": token} if token else {}
                if kind:
                    headers["Content-Type"] = kind
                elif token:
                    body = {**body, "csrf_token": token}  # type: ignore[dict-item]
                requests.append(("POST", {"data": body, "headers": headers}))
        for method, kwargs in requests:
            response = client.open(path, method=method, **kwargs)
            assert response.status_code < 500, (
                f"{who} {method} {path} {str(kwargs)[:200]} -> {response.status_code}")


def _fuzz_route(app: Flask, rule: Rule, who: str, user: User | None, ids: list[int]) -> None:
    client, token = _client(app, user)
    _canonical(client, rule, who, token, ids)

    @settings(max_examples=EXAMPLES_PER_ROUTE, derandomize=True, deadline=None,
              database=None, phases=(Phase.explicit, Phase.generate),
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data: Any) -> None:
        path = _path(rule, data, ids)
        taken = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        method = data.draw(st.one_of(st.sampled_from(taken), st.sampled_from(METHODS)),
                           label="method")
        query = data.draw(st.dictionaries(st.sampled_from(KNOWN_ARGS), JUNK_TEXT,
                                          max_size=4), label="query")
        kwargs: dict[str, Any] = {"query_string": query}
        with_token = data.draw(st.booleans(), label="real CSRF token") and token is not None
        headers = {"X-CSRFToken": token} if with_token else {}
        if method != "GET":
            if data.draw(st.booleans(), label="JSON body"):
                kwargs["data"] = data.draw(RAW_JSON, label="json")
                headers["Content-Type"] = "application/json"
            else:
                form = data.draw(st.dictionaries(st.sampled_from(KNOWN_FIELDS), JUNK_TEXT,
                                                 max_size=6), label="form")
                if with_token:
                    form["csrf_token"] = token
                kwargs["data"] = form
        note(f"{who} {method} {path} {kwargs} {headers}")
        response = client.open(path, method=method, headers=headers, **kwargs)
        assert response.status_code < 500, (
            f"{who} {method} {path} -> {response.status_code}")

    check()


def _rules(app: Flask) -> list[Rule]:
    # Sign-out last: it ends the session the rest of a role's requests use.
    return sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint == "auth.logout", r.rule))


@pytest.mark.parametrize("role", [None, *Role], ids=lambda r: r.value if r else "anonymous")
def test_no_route_answers_a_bad_request_with_a_server_error(app, world, role):
    users, ids = world
    user = users[role] if role is not None else None
    for rule in _rules(app):
        _fuzz_route(app, rule, role.value if role else "anonymous", user, ids)
        db.session.rollback()
