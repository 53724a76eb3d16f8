"""Trainees taking a timed exam, as their browsers do it (run by bench/load/run_load.py).

Each simulated trainee signs in through the sign-in page's form (its CSRF token read from
the page), starts the exam from the exercise list, then for each case: loads the case page,
revalidates the page's stylesheets and scripts as a browser does (they are served with
no-cache unless they say otherwise), loads the images the viewer asks for (the preview and
the full-resolution data, and the next case's that the page prefetches: each image once,
they are cached for a year), posts "opened" (the server's reading clock), and autosaves the
read (the JSON attempt.js sends: answers, marks, the revision the page is based on) when it
first answers and then every 15 seconds while it reads, as the page's heartbeat does. After
the last case it opens the summary, submits and opens its result.

Settings come from the environment (run_load.py sets them): LOAD_EXAM_ID, LOAD_CASES,
LOAD_PASSWORD, LOAD_TRAINEE_PREFIX, LOAD_PROCESSES, LOAD_OFFSET, LOAD_DWELL ("min,max"
seconds on a case).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import time
from typing import Any
from urllib.parse import urljoin

from locust import FastHttpUser, constant, task

EXAM_ID = int(os.environ.get("LOAD_EXAM_ID", "1"))
CASES = int(os.environ.get("LOAD_CASES", "4"))
PASSWORD = os.environ.get("LOAD_PASSWORD", "")
PREFIX = os.environ.get("LOAD_TRAINEE_PREFIX", "loadtrainee")
PROCESSES = int(os.environ.get("LOAD_PROCESSES", "1"))
OFFSET = int(os.environ.get("LOAD_OFFSET", "0"))  # each run of one database its own trainees
DWELL = tuple(float(x) for x in os.environ.get("LOAD_DWELL", "30,90").split(","))
HEARTBEAT = 15.0  # attempt.js HEARTBEAT_MS
FIRST_ANSWER = (3.0, 8.0)  # seconds on a case before the first answer (a save on change)

_numbers = itertools.count()

_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
_HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*>')
_NAME = re.compile(r'name="([^"]+)"')
_VALUE = re.compile(r'value="([^"]*)"')
_VIEWER_DATA = re.compile(
    r'<script type="application/json" id="viewer-data">(.*?)</script>', re.S)
_DATA = re.compile(r'data-(save-url|opened-url|revision)="([^"]*)"')
_ASSET = re.compile(r'(?:href|src)="(/[^"]*static/[^"]+?\.(?:css|js|svg)(?:\?v=\w+)?)"')
_IMPORT = re.compile(r'(?:\bfrom|^import)\s*"(\./[^"]+\.js)"', re.M)
_MAX_AGE = re.compile(r"max-age=(\d+)")


def _hidden_fields(html: str, action: str) -> dict[str, str]:
    """The hidden inputs of the form posting to ``action``."""
    start = html.find(f'action="{action}"')
    if start < 0:
        raise ValueError(f"no form posting to {action}")
    form = html[start:html.find("</form>", start)]
    fields = {}
    for tag in _HIDDEN.findall(form):
        name, value = _NAME.search(tag), _VALUE.search(tag)
        if name:
            fields[name.group(1)] = value.group(1) if value else ""
    return fields


def _read(rng: random.Random, images: list[dict[str, Any]]) -> tuple[dict, list]:
    """A read as the case page's form and viewer give it: a TB-suggestive read outlines
    the cavity on the first image."""
    if rng.random() < 0.5 or not images:
        return {"overall": "normal"}, []
    image = images[0]
    mark = {"image_id": image["id"], "finding": "cavitary_lesion", "shape": "ellipse",
            "geometry": {"cx": image["columns"] * rng.uniform(0.3, 0.7),
                         "cy": image["rows"] * rng.uniform(0.2, 0.5),
                         "rx": image["columns"] * 0.05, "ry": image["rows"] * 0.04}}
    return {"overall": "abnormal", "findings": ["cavitary_lesion"]}, [mark]


class Trainee(FastHttpUser):
    wait_time = constant(0)  # the scenario paces itself (reading time, 15 s heartbeat)

    def on_start(self) -> None:
        runner = self.environment.runner
        index = OFFSET + next(_numbers) * PROCESSES + getattr(runner, "worker_index", 0)
        self.username = f"{PREFIX}{index}"
        self.rng = random.Random(index)
        self.fetched: set[str] = set()  # the browser's cache: images and cacheable assets
        self.etags: dict[str, str] = {}
        self.cached_until: dict[str, float] = {}
        self.imports: dict[str, list[str]] = {}
        self.attempt_url = ""
        self.finished = False
        self.sign_in()
        self.start_exam()

    def sign_in(self) -> None:
        page = self.client.get("/auth/login", name="sign-in page")
        try:
            fields = _hidden_fields(page.text or "", "/auth/login")
        except ValueError:
            return  # the page's failure is counted; the trainee gives up
        fields.update(username=self.username, password=PASSWORD, submit="Sign in")
        with self.client.post("/auth/login", data=fields, name="sign in",
                              allow_redirects=False, catch_response=True) as answer:
            if answer.status_code != 302:
                answer.failure(f"sign-in answered {answer.status_code}")

    def start_exam(self) -> None:
        listing = self.client.get("/training/", name="exercise list")
        action = f"/training/exercises/{EXAM_ID}/start"
        try:
            fields = _hidden_fields(listing.text or "", action)
        except ValueError:
            return  # not signed in, or the list failed: counted already
        with self.client.post(action, data=fields,
                              name="start exam", allow_redirects=False,
                              catch_response=True) as answer:
            location = answer.headers.get("Location", "")
            if answer.status_code != 302 or "/attempts/" not in location:
                answer.failure(f"start answered {answer.status_code} {location}")
                return
        self.attempt_url = re.sub(r"^https?://[^/]+", "", location).rsplit("/", 1)[0]

    @task
    def take_exam(self) -> None:
        if self.finished or not self.attempt_url:
            time.sleep(60)  # done (or could not start): the trainee has left
            return
        for position in range(1, CASES + 1):
            self.read_case(position)
        self.submit()
        self.finished = True

    def _assets(self, html: str) -> None:
        for url in dict.fromkeys(_ASSET.findall(html)):
            self._asset(url)

    def _asset(self, url: str) -> None:
        """A stylesheet or script as a browser gets it: from its cache while its max-age
        lasts, else asked again (304 when unchanged); a script's module imports likewise."""
        if self.cached_until.get(url, 0.0) > time.monotonic():
            return
        headers = {"If-None-Match": self.etags[url]} if url in self.etags else {}
        with self.client.get(url, name="static", headers=headers,
                             catch_response=True) as answer:
            if answer.status_code not in (200, 304):
                answer.failure(f"static answered {answer.status_code}")
                return
            answer.success()
            cache = answer.headers.get("Cache-Control", "")
            age = _MAX_AGE.search(cache)
            if age and "no-cache" not in cache:
                self.cached_until[url] = time.monotonic() + int(age.group(1))
            if answer.headers.get("ETag"):
                self.etags[url] = answer.headers["ETag"]
            if answer.status_code == 200 and url.split("?")[0].endswith(".js"):
                self.imports[url] = [urljoin(url, name) for name in _IMPORT.findall(answer.text)]
        for imported in self.imports.get(url, []):
            self._asset(imported)

    def _image(self, url: str) -> None:
        if url in self.fetched:
            return
        kind = "image preview" if "/preview" in url else "image stages"
        self.client.get(url, name=kind)
        self.fetched.add(url)

    def read_case(self, position: int) -> None:
        page = self.client.get(f"{self.attempt_url}/{position}", name="case page")
        html = page.text or ""
        token = _CSRF_META.search(html)
        data = dict(_DATA.findall(html))
        viewer = _VIEWER_DATA.search(html)
        if not (token and viewer and "save-url" in data):
            return  # the failure is the page's status, already counted
        headers = {"X-CSRFToken": token.group(1)}
        payload = json.loads(viewer.group(1))
        self._assets(html)
        for image in payload.get("images", []):
            # Every stage the viewer fetches: preview, full-resolution JPEG, the two HTJ2K
            # streams; an image stored before HTJ2K has only preview and the 16-bit PNG.
            for key in ("preview_url", "display_url", "approx_url", "exact_url", "full_url"):
                if image.get(key):
                    self._image(image[key])
        self.client.post(data["opened-url"], headers=headers, name="opened")
        for url in payload.get("prefetch", []):
            self._image(url)
        revision = int(data.get("revision") or 0)
        dwell = self.rng.uniform(*DWELL)
        started = time.monotonic()
        time.sleep(min(self.rng.uniform(*FIRST_ANSWER), dwell))
        answers, marks = _read(self.rng, payload.get("images", []))
        while True:
            with self.client.post(data["save-url"], headers=headers, name="autosave",
                                  json={"answers": answers, "marks": marks,
                                        "revision": revision},
                                  catch_response=True) as answer:
                if answer.status_code != 200:
                    answer.failure(f"autosave answered {answer.status_code}")
                    return
                revision = answer.json()["revision"]
            left = dwell - (time.monotonic() - started)
            if left <= 0:
                return
            time.sleep(min(HEARTBEAT, left))
            if left <= HEARTBEAT:
                return  # moves on; its answer was acknowledged

    def submit(self) -> None:
        page = self.client.get(f"{self.attempt_url}/summary", name="summary")
        action = f"{self.attempt_url}/submit"
        try:
            fields = _hidden_fields(page.text or "", action)
        except ValueError:
            return  # the summary's failure is counted already
        with self.client.post(action, data=fields,
                              name="submit", allow_redirects=False,
                              catch_response=True) as answer:
            if answer.status_code != 302:
                answer.failure(f"submit answered {answer.status_code}")
                return
        self.client.get(f"{self.attempt_url}/result", name="result")
