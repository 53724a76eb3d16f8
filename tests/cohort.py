"""A cohort of trainees at one exam, and a plain HTTP client that submits the forms the
pages render: shared by tests/test_concurrency.py and bench/bench_cohort_submit.py.

The HTTP client is the standard library's (http.client): one connection per request, the
session cookie kept, redirects not followed, so each answer's own status is seen.
"""

from __future__ import annotations

import http.client
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode, urlsplit

from app.auth.models import User
from app.auth.roles import Role
from app.auth.services import create_user
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import Case, CaseStatus
from app.cases.reads import save_read
from app.extensions import db
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Exercise
from app.quizzes.services import start_attempt
from app.schemes.registry import get_scheme
from tests.dicom_factory import cr_dataset, to_bytes
from tests.forms import submission

TB = {"overall": "abnormal", "findings": ["cavitary_lesion"]}
NORMAL = {"overall": "normal"}


def make_cases(count: int, expert: User, seed: int = 700) -> list[Case]:
    """Published cases with an expert reference read: every other one TB-suggestive."""
    made = []
    for n in range(count):
        data = to_bytes(cr_dataset(seed=seed + n, rows=64, columns=48))
        [result] = import_files([Source(f"c{n}.dcm", lambda d=data: d)], actor=expert,
                                options=ImportOptions()).results
        case = db.session.get(Case, result.case_id)
        save_read(case, author=expert, scheme=get_scheme("ds3030"),
                  answers=TB if n % 2 == 0 else NORMAL, marks=[])
        case.status = CaseStatus.PUBLISHED.value
        made.append(case)
    db.session.commit()
    return made


def cohort_exam(cases: list[Case], title: str = "Cohort exam") -> Exercise:
    return create_exercise(title=title, kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in cases], actor=None, time_limit_minutes=60,
                           criteria=[("sensitivity", 0.5)])


@dataclass(frozen=True)
class Member:
    username: str
    attempt_id: int


def prepare_cohort(exam: Exercise, size: int, password: str, seed: int = 1,
                   prefix: str = "cohort") -> list[Member]:
    """``size`` trainees, each with an exam attempt in progress and every case answered
    (each attempt has its own shuffled case order, as in production)."""
    rng = random.Random(seed)
    members = []
    for n in range(size):
        trainee = create_user(email=f"{prefix}{n}@example.org", username=f"{prefix}{n}",
                              full_name=f"Cohort Trainee {n}",
                              roles=[Role.TRAINEE_RADIOLOGIST], password=password)
        attempt = start_attempt(exam, trainee)
        for case_id in attempt.case_order:
            save_answer(attempt, trainee, case_id, TB if rng.random() < 0.6 else NORMAL, [])
        members.append(Member(trainee.username, attempt.id))
    return members


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str


class HttpClient:
    """One user's browser without JavaScript: cookies, forms, no redirects followed."""

    def __init__(self, base: str, timeout: float = 120.0) -> None:
        parts = urlsplit(base)
        self.base = base
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout = timeout
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None) -> Answer:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        headers = {"Connection": "close"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode("utf-8", errors="replace")
            for value in response.headers.get_all("Set-Cookie") or []:
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                for name, morsel in jar.items():
                    self.cookies[name] = morsel.value
            return Answer(response.status, dict(response.headers.items()), text)
        finally:
            connection.close()

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def prepare_form(self, page: str, button: str,
                     fields: dict[str, str] | None = None) -> tuple[str, str]:
        """GET ``page`` and return (action path, urlencoded body) of its form with
        ``button``, filled with ``fields`` and submitted as a browser would."""
        answer = self.get(page)
        if answer.status != 200:
            raise AssertionError(f"{page} answered {answer.status}")
        _method, action, data = submission(answer.body, page, button=button, fields=fields)
        return action, urlencode(list(data.items(multi=True)))

    def submit(self, page: str, button: str, fields: dict[str, str] | None = None) -> Answer:
        action, body = self.prepare_form(page, button, fields)
        return self.request("POST", action, body)


def sign_in(base: str, username: str, password: str) -> HttpClient:
    client = HttpClient(base)
    action, body = client.prepare_form("/auth/login", "Sign in",
                                       {"username": username, "password": password})
    signed = client.request("POST", action, body)
    if signed.status != 302:
        raise AssertionError(f"{username} could not sign in ({signed.status})")
    return client


def run_together(jobs: list[Callable[[], Any]], timeout: float = 300.0) -> list[Any]:
    """Run every job in its own thread, released at the same moment by a barrier; returns
    each job's result (or the exception it raised). Bounded: threads are joined with
    ``timeout`` and a job still running then fails the caller."""
    barrier = threading.Barrier(len(jobs), timeout=timeout)
    results: list[Any] = [None] * len(jobs)

    def run(n: int) -> None:
        try:
            barrier.wait()
            results[n] = jobs[n]()
        except BaseException as exc:  # reported to the caller
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if any(thread.is_alive() for thread in threads):
        raise AssertionError(f"jobs still running after {timeout} s")
    return results


def submit_cohort(base: str, members: list[Member], password: str) -> list[Answer | BaseException]:
    """Sign every member in, fetch each one's submission summary (where the exam page's
    "Submit all answers" leads) and its submit form, then post all the forms at the same
    moment."""
    prepared = []
    for member in members:
        client = sign_in(base, member.username, password)
        action, body = client.prepare_form(f"/training/attempts/{member.attempt_id}/summary",
                                           "Submit and finish")
        prepared.append((client, action, body))
    return run_together([lambda c=c, a=a, b=b: c.request("POST", a, b)
                         for c, a, b in prepared])
