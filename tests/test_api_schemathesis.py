"""schemathesis generates requests from the API's own OpenAPI document and sends them to
the portal (as a user holding every role the API serves, with a read and write token, over
a library with cases and an exercise): no request may cause a 5xx, and every response must
match what the document says of it (status, content type, body schema)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from app.api.tokens import create_token
from app.auth.roles import Role
from app.cases.ingest import ImportOptions
from app.certification.models import Certificate
from app.certification.services import create_programme, new_code
from app.db_types import utcnow
from app.extensions import db, limiter
from app.jobs.case_import import start_path_import
from app.quizzes.exercises import create_exercise
from app.quizzes.services import start_attempt, submit_attempt
from tests import test_attempts
from tests.dicom_factory import cr_dataset, to_bytes

cases, practice = test_attempts.cases, test_attempts.practice

# Per operation; 13 operations x this many requests stay well under two minutes per
# database on one slow core, and still reach every operation's refusals and answers.
EXAMPLES_PER_OPERATION = 40
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, from the document of an app with no database:
    writing the document reads none."""
    spec = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "x" * 32}
                      ).test_client().get("/api/v1/openapi.json").json
    return [(method.upper(), path) for path, item in spec["paths"].items()
            for method in item if method in ("get", "put", "post", "delete", "patch")]


def _own_context_per_request(app, token: str):
    """The app as a server runs it: each request in its own application context (and so its
    own database session), not in the test's (tests.conftest.IsolatedClient does the same
    for the test client). Every request carries the token: schemathesis's negative cases
    also leave out the declared security header, and tests/test_api.py covers refusals."""

    def wsgi(environ, start_response):
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        with app.app_context():
            return list(app(environ, start_response))

    return wsgi


def _certificate(user, practice, exam_case) -> str:
    exam = create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[exam_case.id], actor=None)
    programme = create_programme(title="TB CXR reader",
                                 requirements=[(practice.id, "practice"), (exam.id, "exam")],
                                 eligible_roles=["trainee_radiologist"], validity_days=730,
                                 cme_hours=4)
    now = utcnow()
    certificate = Certificate(code=new_code(), programme_id=programme.id, user_id=user.id,
                              holder_name=user.full_name, issued_at=now,
                              expires_at=now + timedelta(days=730), evidence={})
    db.session.add(certificate)
    db.session.commit()
    return certificate.code


def _job(user, tmp_path) -> int:
    """A finished import of ``user``: one file imported, one refused (the test queue runs
    it at once)."""
    folder = tmp_path / "import"
    folder.mkdir()
    (folder / "one.dcm").write_bytes(to_bytes(cr_dataset(seed=5, rows=48, columns=48)))
    (folder / "notes.txt").write_bytes(b"not dicom")
    return start_path_import([folder], actor=user, options=ImportOptions()).id


# schemathesis.pytest.from_fixture does not run under pytest 9 (its lazy schema reads a
# node attribute pytest 9 removed): each operation's hypothesis strategy is driven here.
@pytest.mark.parametrize(("method", "path"), _operations())
def test_generated_requests_get_documented_answers_and_never_a_5xx(
        app, make_user, make_clinic, cases, practice, tmp_path, method, path):
    limiter.enabled = False  # the verify operation's guessing limit would answer 429s only
    try:
        user = make_user(Role.TRAINER, Role.TRAINEE_RADIOLOGIST, Role.ADMIN, username="omni")
        token = create_token(user, "schemathesis", "write",
                             utcnow().date() + timedelta(days=1)).secret
        attempt = start_attempt(practice, user)
        if path.endswith("/result"):  # a result to show
            submit_attempt(attempt, user)
        code = _certificate(user, practice, cases[2]) if "{code}" in path else None
        job_id = _job(user, tmp_path) if "/jobs" in path else None
        if "/qc/" in path:  # the people the document's example names
            make_user(username="reader.username", clinic=make_clinic())
            make_user(Role.TRAINER, username="qc.radiologist")
        served = _own_context_per_request(app, token)
        operation = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", served)[path][method]
        # Random ids mostly name nothing (a 404 at once): half the requests name the rows
        # that exist, so that bodies and query strings reach the services.
        real = {"case_id": cases[0].id, "exercise_id": practice.id,
                "attempt_id": attempt.id, "position": 1, "code": code, "job_id": job_id}
        fixed = {name: value for name, value in real.items() if "{" + name + "}" in path}
        strategies = [operation.as_strategy(mode) for mode in GenerationMode]
        # The document's own examples too (a batch of QC records names real accounts, which
        # random bodies never do).
        strategies += operation.get_strategies_from_examples()
        if fixed:
            strategies += [operation.as_strategy(mode, path_parameters=fixed)
                           for mode in GenerationMode]

        @given(case=st.one_of(strategies))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def call(case) -> None:
            # identity: the WSGI transport hands back the bytes as sent and, unlike an HTTP
            # client, does not undo gzip (larger JSON answers are compressed).
            response = case.call_and_validate(checks=CHECKS,
                                              headers={"Accept-Encoding": "identity"})
            statuses.append(response.status_code)

        statuses: list[int] = []
        call()
        # The generated requests reached the operation, not just the token check.
        assert len(statuses) >= EXAMPLES_PER_OPERATION // 2 and 401 not in statuses
        assert Counter(statuses).keys() & {200, 201}, statuses
    finally:
        limiter.enabled = True
