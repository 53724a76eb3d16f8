"""Turning a submitted read form (generated from a scheme) back into answers.

Field names: ``<item>`` for choice/scale/text, ``<item>`` repeated for multi,
``<item>.pass`` ("pass"/"fail") and ``<item>.reason`` for criteria. The same names are
rendered by templates/quizzes/_read_form.html.
"""

from __future__ import annotations

from typing import Any, Protocol

from app.schemes.parts import Scheme


class FormData(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...
    def getlist(self, key: str) -> list[Any]: ...


def answers_from_form(scheme: Scheme, form: FormData, *, only: set[str] | None = None
                      ) -> dict[str, Any]:
    """Raw answers (validate with schemes.validate_answers); ``only`` limits the items read."""
    answers: dict[str, Any] = {}
    for item in scheme.items:
        if only is not None and item.key not in only:
            continue
        if item.type == "multi":
            values = [v for v in form.getlist(item.key) if v]
            if values:
                answers[item.key] = values
        elif item.type == "criterion":
            verdict = form.get(f"{item.key}.pass")
            if verdict in ("pass", "fail"):
                answers[item.key] = {"pass": verdict == "pass",
                                     "reason": form.get(f"{item.key}.reason", "")}
        else:
            value = (form.get(item.key) or "").strip()
            if value:
                answers[item.key] = value
    return answers
