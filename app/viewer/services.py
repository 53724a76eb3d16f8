"""What the viewer is sent for a case, and saving a trainer's reference marks.

The answer key never reaches a browser that may not see it: reference marks are included
only for users who curate the library (trainers, administrators).
"""

from __future__ import annotations

from typing import Any

from flask import url_for

from app.auth.models import User
from app.auth.roles import Role
from app.cases.models import Case, CaseImage, ReadKind, ReferenceRead
from app.cases.reads import reference_for, save_read
from app.schemes.definitions import SchemeError
from app.schemes.registry import get_scheme, scheme_of
from app.user_errors import UserError


class ViewerError(UserError):
    """A refused viewer request; the message is for the user."""


def may_curate(user: User) -> bool:
    return user.has_role(Role.TRAINER, Role.ADMIN)


def image_json(image: CaseImage) -> dict[str, Any]:
    return {
        "id": image.id,
        "view": image.view,
        "prior": image.is_prior,
        "columns": image.columns,
        "rows": image.rows,
        "preview_url": url_for("cases.image_file", image_id=image.id, kind="preview",
                               v=image.version),
        "full_url": url_for("cases.image_file", image_id=image.id, kind="full",
                            v=image.version),
        "params": image.display_params,
    }


def case_payload(case: Case, user: User) -> dict[str, Any]:
    images = [image_json(image) for image in case.images]
    payload: dict[str, Any] = {"case": {"id": case.id, "title": case.title}, "images": images,
                               "labels": [], "marks": [], "editable": False}
    if may_curate(user):
        reference = reference_for(case)
        mine = _my_read(case, user)
        scheme = reference.scheme
        if scheme is not None and scheme.mark_labels:
            payload["labels"] = [{"value": o.value, "label": o.label}
                                 for o in scheme.mark_labels]
        payload["editable"] = mine is not None and bool(payload["labels"])
        payload["marks"] = list(mine.marks) if mine is not None else []
        payload["reference_marks"] = reference.marks
        payload["save_url"] = url_for("viewer.save_marks", case_id=case.id)
    return payload


def _my_read(case: Case, user: User) -> ReferenceRead | None:
    return next((r for r in case.current_reads
                 if r.author_id == user.id and r.kind == ReadKind.EXPERT.value), None)


def save_reference_marks(case: Case, user: User, marks: Any) -> int:
    """A new version of the trainer's own read with these marks; returns the version."""
    mine = _my_read(case, user)
    if mine is None:
        raise ViewerError("write your reference read of this case before marking lesions")
    scheme = get_scheme(mine.scheme_key, mine.scheme_version)
    try:
        read = save_read(case, author=user, scheme=scheme, answers=mine.answers, marks=marks)
    except SchemeError as exc:
        raise ViewerError(str(exc)) from None
    return read.version


def attempt_payload(attempt: Any, case: Case, answer: Any, next_case: Case | None,
                    position: int) -> dict:
    """What the viewer gets inside an attempt: the images, the scheme's labels and the
    trainee's own marks. Never anything from the reference read, and the case is named by
    its place in the attempt, not by its library title."""

    scheme = scheme_of(attempt.exercise)
    payload: dict[str, Any] = {
        "case": {"position": position, "title": f"Case {position}"},
        "images": [image_json(image) for image in case.images],
        "labels": [{"value": o.value, "label": o.label} for o in scheme.mark_labels or ()],
        "marks": list(answer.marks or []),
        "editable": bool(scheme.mark_labels),
        "autosave": True,
    }
    if next_case is not None:
        upcoming = [image_json(image) for image in next_case.images]
        payload["prefetch"] = [url for i in upcoming for url in (i["preview_url"], i["full_url"])]
    return payload
