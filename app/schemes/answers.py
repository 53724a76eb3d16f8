"""What a reader gives in a scheme: answers, lesion marks, the TB decision they imply, and
the experts' consensus. Pure module besides the reader's language (Flask-Babel) for answer
refusals.

Answer shapes by item type:
  choice     -> one option value (str)
  multi      -> list of option values
  scale      -> int within [min, max]
  text       -> str (max_length)
  criterion  -> {"pass": bool, "reason": str}
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from flask import has_request_context
from flask_babel import gettext

from app.schemes.errors import N_, SchemeError
from app.schemes.parts import Item, Scheme

MARK_SHAPES = ("point", "ellipse", "rectangle", "polygon")
# A reader marks a handful of lesions per image; a few hundred is far past any real read
# and keeps the result page's drawing fast (1,500 polygons took 4 s to render).
MAX_MARKS = 300
# The viewer's freehand tool keeps at most 200 points per polygon (marks.js polygonMark).
MAX_POLYGON_POINTS = 500
# All polygons of one case together: 100 polygons of the viewer's 200 points.
MAX_MARK_VERTICES = 20_000


# ---- answers ------------------------------------------------------------------------------


def validate_answers(scheme: Scheme, answers: Any, *, partial: bool = False) -> dict[str, Any]:
    """Normalised answers, or SchemeError naming the first item that does not fit.
    ``partial``: required items may be missing (an adjudication answers only the ties)."""
    if not isinstance(answers, dict):
        raise SchemeError(N_("answers must be an object keyed by item"))
    unknown = set(answers) - {i.key for i in scheme.items}
    if unknown:
        raise SchemeError(N_("unknown item(s): %(items)s"), items=", ".join(sorted(unknown)))
    clean: dict[str, Any] = {}
    for item in scheme.items:
        value = answers.get(item.key)
        if value in (None, "", []):
            if item.required and not partial:
                raise SchemeError(gettext("'%(item)s' needs an answer", item=_shown(item)))
            continue
        clean[item.key] = _validate_value(item, value)
    return clean


def _shown(item: Item) -> str:
    """An item as the reader's form names it (English outside a request and in the API)."""
    from app.i18n import current_language

    return item.label_in(current_language()) if has_request_context() else item.label


def _validate_value(item: Item, value: Any) -> Any:
    if item.type == "choice":
        if value not in item.option_values():
            raise SchemeError(gettext("'%(item)s': %(value)s is not one of the options",
                                      item=_shown(item), value=repr(value)))
        return value
    if item.type == "multi":
        values = value if isinstance(value, list) else [value]
        if len(values) > len(item.options):
            raise SchemeError(gettext("'%(item)s' has %(count)s options at most",
                                      item=_shown(item), count=len(item.options)))
        bad = [v for v in values if v not in item.option_values()]
        if bad:
            raise SchemeError(gettext("'%(item)s': %(value)s is not one of the options",
                                      item=_shown(item), value=repr(bad[0])))
        return sorted(set(values), key=item.option_values().index)
    if item.type == "scale":
        number = _whole_number(value)
        if number is None:
            raise SchemeError(gettext("'%(item)s' needs a whole number", item=_shown(item)))
        if not item.minimum <= number <= item.maximum:  # type: ignore[operator]
            raise SchemeError(gettext("'%(item)s' must be between %(minimum)s and %(maximum)s",
                                      item=_shown(item), minimum=item.minimum,
                                      maximum=item.maximum))
        return number
    if item.type == "text":
        text = str(value).strip()
        if len(text) > item.max_length:
            raise SchemeError(gettext("'%(item)s' has at most %(count)s characters",
                                      item=_shown(item), count=item.max_length))
        return text
    # criterion
    if not isinstance(value, dict) or not isinstance(value.get("pass"), bool):
        raise SchemeError(gettext("'%(item)s' needs pass or fail", item=_shown(item)))
    reason = str(value.get("reason") or "").strip()[:500]
    if not value["pass"] and not reason:
        raise SchemeError(gettext("'%(item)s': give the reason it fails", item=_shown(item)))
    return {"pass": value["pass"], "reason": reason}


def _whole_number(value: Any) -> int | None:
    """A scale answer: an int, a whole finite float (JSON 3.0) or digits (a form's "3");
    None for anything else (Infinity, NaN, 1e400, 2.5, lists, booleans)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip().lstrip("-")
        if text.isascii() and text.isdigit() and len(text) <= 18:
            return int(value)
    return None



# ---- marks --------------------------------------------------------------------------------


def validate_marks(scheme: Scheme, marks: Any, *, columns: int, rows: int) -> list[dict]:
    """Lesion marks in image pixel coordinates, labelled from the scheme."""
    check_mark_count(marks)
    if marks and scheme.mark_labels is None:
        raise SchemeError(N_("this scheme takes no lesion marks"))
    allowed = {o.value for o in scheme.mark_labels or ()}
    clean = []
    for n, mark in enumerate(marks, 1):
        if not isinstance(mark, dict):
            raise SchemeError(N_("mark %(number)s is not an object"), number=n)
        finding, shape, geo = mark.get("finding"), mark.get("shape"), mark.get("geometry")
        if finding not in allowed:
            raise SchemeError(N_("mark %(number)s: %(finding)s is not a finding of this scheme"),
                              number=n, finding=repr(finding))
        if shape not in MARK_SHAPES or not isinstance(geo, dict):
            raise SchemeError(N_("mark %(number)s: shape must be one of %(shapes)s"), number=n,
                              shapes=", ".join(MARK_SHAPES))
        clean_mark: dict[str, Any] = {
            "finding": finding,
            "shape": shape,
            "geometry": _validate_geometry(shape, geo, columns, rows, n),
        }
        if mark.get("confidence") is not None:
            confidence = mark["confidence"]
            if (not isinstance(confidence, int | float) or isinstance(confidence, bool)
                    or not 0 <= confidence <= 100):
                raise SchemeError(N_("mark %(number)s: confidence must be between 0 and 100"),
                                  number=n)
            clean_mark["confidence"] = confidence
        clean.append(clean_mark)
    return clean


def check_mark_count(marks: Any) -> None:
    """The limits on a case's marks as a whole (each mark is checked by validate_marks)."""
    if not isinstance(marks, list):
        raise SchemeError(N_("marks must be a list"))
    if len(marks) > MAX_MARKS:
        raise SchemeError(N_("a case takes at most %(count)s marks"), count=MAX_MARKS)
    if sum(_vertices(mark) for mark in marks) > MAX_MARK_VERTICES:
        raise SchemeError(N_("the marks of a case have at most %(count)s polygon points in "
                             "all"), count=MAX_MARK_VERTICES)


def _vertices(mark: Any) -> int:
    geo = mark.get("geometry") if isinstance(mark, dict) else None
    points = geo.get("points") if isinstance(geo, dict) else None
    return len(points) if isinstance(points, list) else 0


def _validate_geometry(shape: str, geo: dict, columns: int, rows: int, n: int) -> dict:
    def num(key: str, low: float, high: float) -> float:
        value = geo.get(key)
        if (not isinstance(value, int | float) or isinstance(value, bool)
                or not low <= value <= high):
            raise SchemeError(N_("mark %(number)s: %(field)s must be a number within the image"),
                              number=n, field=key)
        return float(value)

    if shape == "point":
        return {"x": num("x", 0, columns), "y": num("y", 0, rows)}
    if shape == "ellipse":
        return {
            "cx": num("cx", 0, columns),
            "cy": num("cy", 0, rows),
            "rx": num("rx", 0.5, columns),
            "ry": num("ry", 0.5, rows),
        }
    if shape == "rectangle":
        x, y = num("x", 0, columns), num("y", 0, rows)
        return {
            "x": x,
            "y": y,
            "width": num("width", 1, columns - x),
            "height": num("height", 1, rows - y),
        }
    points = geo.get("points")
    if not isinstance(points, list) or not 3 <= len(points) <= MAX_POLYGON_POINTS:
        raise SchemeError(N_("mark %(number)s: a polygon needs 3 to %(count)s points"),
                          number=n, count=MAX_POLYGON_POINTS)
    clean = []
    for point in points:
        if (
            not isinstance(point, list | tuple)
            or len(point) != 2
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in point)
            or not (0 <= point[0] <= columns and 0 <= point[1] <= rows)
        ):
            raise SchemeError(N_("mark %(number)s: polygon points must be [x, y] within the "
                                 "image"), number=n)
        clean.append([float(point[0]), float(point[1])])
    return {"points": clean}


def tb_positive(scheme: Scheme, answers: dict[str, Any]) -> bool | None:
    """The sputum decision implied by the answers, or None when the scheme has none."""
    decision = scheme.tb_decision
    if not decision:
        return None
    value = answers.get(decision["item"])
    if "positive_group" in decision:
        item = scheme.item(decision["item"])
        positive = {o.value for o in item.options if o.group == decision["positive_group"]}
        values = value if isinstance(value, list) else [value]
        return bool(positive & set(values))
    return value in set(decision.get("positive_values", []))


# ---- consensus --------------------------------------------------------------------------


@dataclass(frozen=True)
class Consensus:
    answers: dict[str, Any]
    ties: tuple[str, ...]  # item keys (or "item:option" for multi) needing adjudication
    readers: int


def consensus(scheme: Scheme, reads: list[dict[str, Any]]) -> Consensus:
    """Majority per item across expert reads; an exact tie is left out and flagged.

    choice/scale/text: the most common answer (a tie between the top answers is flagged);
    multi: each option is present when more than half the readers chose it (exactly half is
    flagged); criterion: pass/fail by majority, reasons from the majority side.
    """
    answers: dict[str, Any] = {}
    ties: list[str] = []
    n = len(reads)
    if n == 0:
        return Consensus({}, (), 0)
    for item in scheme.items:
        given = [r[item.key] for r in reads if r.get(item.key) not in (None, "", [])]
        if item.type == "multi":
            counts = Counter(v for r in reads for v in (r.get(item.key) or []))
            chosen = []
            for option in item.option_values():
                if counts[option] * 2 > n:
                    chosen.append(option)
                elif counts[option] * 2 == n:
                    ties.append(f"{item.key}:{option}")
            if chosen:
                answers[item.key] = chosen
            continue
        if not given:
            continue
        if item.type == "criterion":
            passes = sum(1 for g in given if g["pass"])
            if passes * 2 == len(given):
                ties.append(item.key)
                continue
            verdict = passes * 2 > len(given)
            reasons = sorted({g["reason"] for g in given if g["pass"] == verdict and g["reason"]})
            answers[item.key] = {"pass": verdict, "reason": "; ".join(reasons)}
            continue
        counts = Counter(json.dumps(g, sort_keys=True) for g in given)
        (top, top_count), *rest = counts.most_common()
        if rest and rest[0][1] == top_count:
            ties.append(item.key)
            continue
        answers[item.key] = json.loads(top)
    return Consensus(answers, tuple(ties), n)
