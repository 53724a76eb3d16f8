"""A trainee who holds a practice attempt and an exam attempt at once cannot obtain any exam
case's answer key by any route: every page, JSON, image and figure reachable from her pages
is fetched (and the review and feedback routes are tried on every position, the exam's
included), and no response may carry an exam case's teaching note, reference read, reference
mark geometry or outcome.

Each exam case's key carries text unique to it, so a leak is found wherever it appears. The
crawl also checks that the practice cases' keys do appear once practice feedback allows:
the detector sees keys when they are there."""

from __future__ import annotations

import contextlib
import json
import re
from collections import deque
from dataclasses import dataclass
from urllib.parse import urldefrag, urlsplit

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.models import Case
from app.cases.reads import reference_for, save_read
from app.extensions import db
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt, Exercise, ExerciseCase
from tests.forms import FormNotFound, submit_form, submit_html
from tests.keycases import make_key_case

NOT_CRAWLED = ("/static/", "/viewer/static/", "/auth/")
CRAWL_LIMIT = 800  # responses; the demo trainee's whole world is a few hundred
CHECK_BUTTON = "Check my answer (final for this case)"


@dataclass
class Fetched:
    method: str
    url: str
    status: int
    text: str | None  # None for images and other binary bodies


class Crawler:
    """Fetches what a browser on the trainee's pages could fetch, each URL once."""

    def __init__(self, client) -> None:
        self.client = client
        self.fetched: dict[str, Fetched] = {}  # the latest answer to each GET
        self.history: list[Fetched] = []  # every response, in order

    def _record(self, method: str, url: str, response) -> Fetched:
        textual = response.mimetype in ("text/html", "application/json", "text/plain")
        item = Fetched(method, url, response.status_code,
                       response.get_data(as_text=True) if textual else None)
        if method == "GET":
            self.fetched[url] = item
        self.history.append(item)
        return item

    def get(self, url: str, *, fresh: bool = False) -> Fetched:
        if fresh or url not in self.fetched:
            self._record("GET", url, self.client.get(url))
        return self.fetched[url]

    def post(self, url: str, response) -> Fetched:
        return self._record("POST", url, response)

    def crawl(self, *starts: str) -> None:
        queue = deque(starts)
        done: set[str] = set()
        while queue:
            url = queue.popleft()
            if url in done:
                continue
            done.add(url)
            assert len(self.fetched) < CRAWL_LIMIT, "the crawl does not end"
            item = self.fetched.get(url) or self.get(url)
            if item.text and item.status == 200:
                queue.extend(u for u in links(item.text) if u not in done)


def _local(url: str) -> str | None:
    url = urldefrag(url.strip())[0]
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not url.startswith("/"):
        return None
    if url.startswith(NOT_CRAWLED):
        return None
    return url


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def links(text: str) -> set[str]:
    """Every same-site URL a page or JSON names: links, images, GET forms, data-*
    attributes and the URLs inside embedded JSON (viewer images, prefetches)."""
    found: set[str] = set()
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        with contextlib.suppress(ValueError):
            found.update(_strings(json.loads(text)))
    else:
        soup = BeautifulSoup(text, "html.parser")
        for tag in soup.find_all(True):
            for name, value in tag.attrs.items():
                if name in ("href", "src") or name.startswith("data-"):
                    found.update(value if isinstance(value, list) else [value])
            if tag.name == "form" and (tag.get("method") or "get").lower() == "get":
                found.add(tag.get("action") or "")
            if tag.name == "script" and tag.get("type") == "application/json":
                with contextlib.suppress(ValueError):
                    found.update(_strings(json.loads(tag.get_text())))
    return {u for u in (_local(s) for s in found if isinstance(s, str)) if u}


def _csrf(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def _attempt_of(title: str) -> Attempt:
    db.session.expire_all()
    return db.session.scalars(
        select(Attempt).join(Exercise).where(Exercise.title == title)
        .order_by(Attempt.id.desc())).first()


def _start(client, exercise_id: int) -> None:
    response = submit_form(client, "/training/", action=f"/exercises/{exercise_id}/start")
    assert response.status_code == 302, response.status_code


def _read_every_case(client, crawler: Crawler, attempt: Attempt, *, ask_feedback: bool) -> None:
    """Go through the attempt as attempt.js does: each page, "case opened", an autosave; in
    a practice set also the page's "check my answer" form, and the feedback it leads to."""
    base = f"/training/attempts/{attempt.id}"
    for position in range(1, len(attempt.case_order) + 1):
        page = crawler.get(f"{base}/{position}")
        assert page.status == 200, (page.url, page.status)
        headers = {"X-CSRFToken": _csrf(page.text)}
        opened = re.search(r'data-opened-url="([^"]+)"', page.text)
        if opened:
            crawler.post(opened.group(1), client.post(opened.group(1), headers=headers))
        save_url = re.search(r'data-save-url="([^"]+)"', page.text).group(1)
        crawler.post(save_url, client.post(save_url, headers=headers, json={
            "answers": {"overall": "normal"}, "marks": []}))
        if not ask_feedback:
            continue
        try:
            checked = submit_html(client, page.text, page.url, button=CHECK_BUTTON)
        except FormNotFound:
            continue  # the page offers no feedback for this case
        crawler.post(f"{base}/check/{position}", checked)
        if checked.status_code == 302:
            crawler.get(_local(checked.headers["Location"]) or "/")


def _probe(client, crawler: Crawler, attempts: list[Attempt]) -> None:
    """What a curious trainee types in: every position (and one past either end) of both
    attempts on the case, review and feedback routes, results and figures, and every case
    of both attempts in the viewer and its images."""
    for attempt in attempts:
        base = f"/training/attempts/{attempt.id}"
        token = _csrf(crawler.get("/training/").text)
        for position in range(0, len(attempt.case_order) + 2):
            crawler.get(f"{base}/{position}", fresh=True)
            crawler.get(f"{base}/review/{position}", fresh=True)
            # A forged "check my answer" post (the exam page renders no such form).
            crawler.post(f"{base}/check/{position}", client.post(
                f"{base}/check/{position}", data={"csrf_token": token}))
            crawler.get(f"{base}/review/{position}", fresh=True)
        for tail in ("result", "roc.png", "learning.png"):
            crawler.get(f"{base}/{tail}")
        for case_id in attempt.case_order:
            crawler.get(f"/viewer/cases/{case_id}")
            crawler.get(f"/viewer/api/cases/{case_id}")
            for image in db.session.get(Case, case_id).images:
                for kind in ("thumbnail", "preview", "display", "approx", "exact"):
                    crawler.get(f"/cases/images/{image.id}/{kind}?v={image.version}")


def _practice_positions_showing_keys(crawler: Crawler, practice: Attempt) -> set[int]:
    """The practice positions whose key a response showed: review pages answered 200, and
    result-page sections with a reference read, a grade or a teaching note."""
    shown = set()
    prefix = f"/training/attempts/{practice.id}/review/"
    result_url = f"/training/attempts/{practice.id}/result"
    for item in crawler.history:
        if item.url.startswith(prefix) and item.status == 200:
            shown.add(int(item.url.removeprefix(prefix)))
        if item.url != result_url or not item.text or item.status != 200:
            continue
        soup = BeautifulSoup(item.text, "html.parser")
        for section in soup.select('[data-testid="case-feedback"]'):
            heading = section.find("h3").get_text(" ", strip=True)
            if "grade" in heading or "Reference read" in section.get_text() or section.select(
                    ".teaching"):
                shown.add(int(re.match(r"Case (\d+)", heading).group(1)))
    return shown


def walk_and_check(client, practice_title: str, exam_title: str,
                   secrets: dict[int, tuple[str, ...]]) -> Crawler:
    """The whole walk for a signed-in trainee, then the checks. ``secrets``: per case id,
    the traces of its key."""
    practice_ex = db.session.scalars(select(Exercise).where(Exercise.title == practice_title)).one()
    exam_ex = db.session.scalars(select(Exercise).where(Exercise.title == exam_title)).one()
    _start(client, exam_ex.id)
    _start(client, practice_ex.id)
    exam, practice = _attempt_of(exam_title), _attempt_of(practice_title)
    crawler = Crawler(client)
    _read_every_case(client, crawler, exam, ask_feedback=False)
    _read_every_case(client, crawler, practice, ask_feedback=True)
    crawler.crawl("/", "/training/")
    _probe(client, crawler, [exam, practice])
    # The practice attempt ends while the exam is still open: its result shows every key.
    page = crawler.get(f"/training/attempts/{practice.id}/1")
    summary = submit_html(client, page.text, page.url, button="Submit all answers")
    assert summary.status_code == 200, summary.status_code
    summary_url = f"/training/attempts/{practice.id}/summary"
    submitted = submit_html(client, summary.get_data(as_text=True), summary_url,
                            button="Submit and finish")
    crawler.post(f"/training/attempts/{practice.id}/submit", submitted)
    crawler.fetched.clear()  # fetch everything again, now that more may be shown
    crawler.crawl("/", "/training/", f"/training/attempts/{practice.id}/result")
    _probe(client, crawler, [exam, practice])
    assert _attempt_of(exam_title).state == "in_progress"

    responses = crawler.history
    assert len(crawler.fetched) > 40, "the crawl reached too little to mean anything"
    errors = [(r.method, r.url, r.status) for r in responses if r.status >= 500]
    assert errors == []

    exam_cases = set(exam.case_order)
    leaks = [(r.method, r.url, secret) for r in responses if r.text
             for case_id in exam_cases for secret in secrets[case_id] if secret in r.text]
    assert leaks == [], leaks
    leaked_positions = {p for p in _practice_positions_showing_keys(crawler, practice)
                        if practice.case_order[p - 1] in exam_cases}
    assert leaked_positions == set(), "practice feedback shown for exam cases"
    exam_reviews = [r.url for r in responses if r.status == 200
                    and r.url.startswith(f"/training/attempts/{exam.id}/review/")]
    assert exam_reviews == []

    # The detector sees keys where they are shown: the practice-only cases' keys appear.
    practice_only = [c for c in practice.case_order if c not in exam_cases]
    assert practice_only
    everything = "\n".join(r.text for r in responses if r.text)
    for case_id in practice_only:
        assert secrets[case_id][0] in everything, f"practice case {case_id}'s key not seen"
    return crawler


# ---- the demo programme ----------------------------------------------------------------


def _mark_keys(case: Case, label: str) -> tuple[str, ...]:
    """Give the case's key text unique to it: a teaching note and a free-text item in the
    reference read; its reference marks' coordinates are already its own."""
    reference = reference_for(case)
    note = f"{label} teaching note of case {case.id}"
    text = f"{label} reference text of case {case.id}"
    save_read(case, author=None, scheme=reference.scheme,
              answers={**reference.answers, "other_text": text})
    case.teaching_notes = note
    db.session.commit()
    # Coordinates as JSON writes them; whole numbers would match any number on a page.
    numbers = tuple(repr(float(value)) for mark in reference_for(case).marks
                    for key, value in mark["geometry"].items()
                    if key in ("cx", "cy", "x", "y") and not float(value).is_integer())
    return (note, text, *numbers)


def test_demo_trainee_with_practice_and_exam_open_gets_no_exam_key(client, login_as):
    from app.demo import DEMO_EXAM, DEMO_PRACTICE, seed_demo_library

    seed_demo_library()
    links_of = {title: [link.case_id for link in db.session.scalars(
        select(ExerciseCase).join(Exercise).where(Exercise.title == title))]
        for title in (DEMO_PRACTICE, DEMO_EXAM)}
    assert len(links_of[DEMO_PRACTICE]) == 10 and len(links_of[DEMO_EXAM]) == 12
    secrets = {}
    for title, label in ((DEMO_EXAM, "EXAM"), (DEMO_PRACTICE, "PRACTICE")):
        for case_id in links_of[title]:
            if case_id not in secrets:  # a case in both (the old demo) is an exam case
                secrets[case_id] = _mark_keys(db.session.get(Case, case_id), label)
    # A coordinate that is also a practice case's tells nothing: keep only the exam's own.
    practice_numbers = {s for c in links_of[DEMO_PRACTICE] for s in secrets[c][2:]}
    for case_id in set(links_of[DEMO_EXAM]) - set(links_of[DEMO_PRACTICE]):
        secrets[case_id] = tuple(s for s in secrets[case_id] if s not in practice_numbers)
    login_as(Role.TRAINEE_RADIOLOGIST)
    walk_and_check(client, DEMO_PRACTICE, DEMO_EXAM, secrets)
    assert not set(links_of[DEMO_PRACTICE]) & set(links_of[DEMO_EXAM])
    assert all(db.session.get(Case, c).exam_bank for c in links_of[DEMO_EXAM])


# ---- data from before the rule: an exam case and an exam-bank case in a practice set ------


@pytest.fixture
def legacy_overlap(make_user):
    """A practice set of four cases and an exam of four others plus an exam-bank case; then,
    as data written before practice sets and exams were kept apart, two of the exam's cases
    (one of them the exam-bank case) also in the practice set."""
    curator = make_user(Role.TRAINER)
    exam_cases = [make_key_case(curator, 700 + n, tb=n % 2 == 0, label="EXAM") for n in range(4)]
    bank = make_key_case(curator, 710, tb=True, label="EXAM-BANK", exam_bank=True)
    practice_cases = [make_key_case(curator, 720 + n, tb=n % 2 == 0, label="PRACTICE")
                      for n in range(4)]
    practice = create_exercise(title="Practice", kind="practice", scheme_key="ds3030",
                               case_ids=[c.id for c in practice_cases], actor=None)
    create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                    case_ids=[c.id for c in [*exam_cases, bank]], actor=None,
                    time_limit_minutes=60)
    for position, case in enumerate((exam_cases[0], bank), start=len(practice_cases)):
        db.session.add(ExerciseCase(exercise_id=practice.id, case_id=case.id, position=position))
    db.session.commit()
    return {c.id: c.secrets for c in [*exam_cases, bank, *practice_cases]}


def test_legacy_overlap_still_gives_no_exam_key(client, login_as, legacy_overlap):
    login_as(Role.TRAINEE_RADIOLOGIST)
    walk_and_check(client, "Practice", "Exam", legacy_overlap)
