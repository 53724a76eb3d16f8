"""What the viewer is sent for a case: on its own page, beside a reference read, in an
attempt.

The answer key never reaches a browser that may not see it: reference marks are included
only for users who curate the library (trainers, administrators).
"""

from __future__ import annotations

import math
from typing import Any

from flask import url_for
from flask_babel import gettext

from app.auth.models import User
from app.auth.roles import Role
from app.cases.models import Case, CaseImage
from app.cases.reads import my_read, reference_for
from app.i18n import N_
from app.schemes.display import mark_labels_json
from app.schemes.parts import Scheme
from app.schemes.registry import scheme_of


def may_curate(user: User) -> bool:
    return user.has_role(Role.TRAINER, Role.ADMIN)


#: The stages the viewer loads one after the other (FORMAT.md), after the preview.
HTJ2K_STAGES = ("display", "approx", "exact")


def image_json(image: CaseImage) -> dict[str, Any]:
    def url(kind: str) -> str:
        return url_for("cases.image_file", image_id=image.id, kind=kind, v=image.version)

    # `sizes` names the derivatives the image has: the HTJ2K stages, or (stored before
    # them and not yet rebuilt) the 16-bit PNG alone as "full".
    has_htj2k = "exact" in (image.sizes or {})
    stages = {f"{kind}_url": url(kind) if has_htj2k else None for kind in HTJ2K_STAGES}
    return {
        "id": image.id,
        "view": image.view,
        "prior": image.is_prior,
        "columns": image.columns,
        "rows": image.rows,
        "preview_url": url("preview"),
        **stages,
        "full_url": None if has_htj2k else url("full"),
        "params": finite_json(image.display_params),
    }


def image_urls(image: dict[str, Any]) -> list[str]:
    """Every file the viewer loads for an image, in the order it loads them."""
    keys = ("preview_url", *(f"{kind}_url" for kind in HTJ2K_STAGES), "full_url")
    return [image[key] for key in keys if image.get(key)]


def finite_json(value: Any) -> Any:
    """value with every non-finite float as null. Display parameters stored before
    non-finite numbers were refused at import may hold NaN (SQLite keeps it), which is
    not JSON: a strict parser, the browser's included, would reject the whole response."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite_json(item) for item in value]
    return value


#: How the library viewer names a case to someone who does not curate the library: a
#: trainer's title may name the finding ("right upper lobe cavity"), and the case may be in
#: the trainee's own open exam.
UNTITLED = N_("Library case")


def shown_title(case: Case, user: User) -> str:
    return case.title if may_curate(user) else gettext(UNTITLED)


def case_payload(case: Case, user: User) -> dict[str, Any]:
    """The viewer page: the case to look at. Marks are drawn and saved with the reference
    read (read_payload); here a curator sees their own marks and, on request, the
    reference's, without editing them. Others see the images alone, untitled."""
    images = [image_json(image) for image in case.images]
    shown = ({"id": case.id, "title": case.title} if may_curate(user)
             else {"title": gettext(UNTITLED)})
    payload: dict[str, Any] = {"case": shown, "images": images,
                               "labels": [], "marks": [], "editable": False}
    if may_curate(user):
        reference = reference_for(case)
        scheme = reference.scheme
        if scheme is not None and scheme.mark_labels:
            payload["labels"] = mark_labels_json(scheme)
            mine = my_read(case, user, scheme.key)
            payload["marks"] = list(mine.marks) if mine is not None else []
        payload["reference_marks"] = reference.marks
    return payload


def read_payload(case: Case, scheme: Scheme, marks: list[dict[str, Any]]) -> dict[str, Any]:
    """The viewer beside a trainer's reference read: the scheme's finding labels and the
    read's marks, editable when the scheme takes marks. The page's form saves them with the
    answers (static/js/reference_read.js), so the viewer has no save of its own."""
    labels = mark_labels_json(scheme)
    return {
        "case": {"id": case.id, "title": case.title},
        "images": [image_json(image) for image in case.images],
        "labels": labels,
        "marks": marks,
        "editable": bool(labels),
        "form_save": True,
    }


def attempt_payload(attempt: Any, case: Case, answer: Any, next_case: Case | None,
                    position: int) -> dict:
    """What the viewer gets inside an attempt: the images, the scheme's labels and the
    trainee's own marks. Never anything from the reference read, and the case is named by
    its place in the attempt, not by its library title."""

    scheme = scheme_of(attempt.exercise)
    payload: dict[str, Any] = {
        "case": {"position": position, "title": gettext("Case %(number)s", number=position)},
        "images": [image_json(image) for image in case.images],
        "labels": mark_labels_json(scheme),
        "marks": list(answer.marks or []),
        "editable": bool(scheme.mark_labels),
        "autosave": True,
    }
    if next_case is not None:
        upcoming = [image_json(image) for image in next_case.images]
        payload["prefetch"] = [url for i in upcoming for url in image_urls(i)]
    return payload
