"""Reporting schemes as data: the read form, the answers it accepts and how they map to the
TB decision. Built-in schemes are JSON files in ``schemes/``; trainers add more as database
rows with the same JSON. Pure module: no Flask or database imports.

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
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

from flask import has_request_context
from flask_babel import gettext

# The parts of a scheme are defined in parts.py; importers name them from here.
from app.schemes.parts import Group, Item, Option, Scheme, SchemeError
from app.schemes.translations import (
    GROUP_FIELDS,
    ITEM_FIELDS,
    OPTION_FIELDS,
    SCHEME_FIELDS,
    TranslationError,
    parse_help,
    parse_official_language,
    parse_translations,
)

ITEM_TYPES = ("choice", "multi", "scale", "text", "criterion")
MARK_SHAPES = ("point", "ellipse", "rectangle", "polygon")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# A reader marks a handful of lesions per image; a few hundred is far past any real read
# and keeps the result page's drawing fast (1,500 polygons took 4 s to render).
MAX_MARKS = 300
# The viewer's freehand tool keeps at most 200 points per polygon (marks.js polygonMark).
MAX_POLYGON_POINTS = 500
# All polygons of one case together: 100 polygons of the viewer's 200 points.
MAX_MARK_VERTICES = 20_000
# Definition bounds: the built-in schemes have under 20 items of under 40 options.
MAX_SCHEME_VERSION = 1_000_000
MAX_ITEMS = 200
MAX_OPTIONS = 500
MAX_LABEL = 500
MAX_TEXT = 10_000  # the longest free-text answer an item may ask for
MAX_SCALE = 1_000_000


# ---- definitions ------------------------------------------------------------------------


def parse_scheme(data: Any) -> Scheme:
    """Validate a scheme definition (parsed JSON) and build the Scheme."""
    if not isinstance(data, dict):
        raise SchemeError("a scheme is a JSON object")
    key = data.get("key")
    if not isinstance(key, str) or not _KEY.match(key):
        raise SchemeError("the scheme needs a 'key' of lower-case letters, digits and '_'")
    version = data.get("version", 1)
    if not _is_int(version) or not 1 <= version <= MAX_SCHEME_VERSION:
        raise SchemeError(f"'version' must be a whole number from 1 to {MAX_SCHEME_VERSION}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_LABEL:
        raise SchemeError(f"the scheme needs a 'name' of at most {MAX_LABEL} characters")
    raw_items = data.get("items")
    if not isinstance(raw_items, list) or not 1 <= len(raw_items) <= MAX_ITEMS:
        raise SchemeError(f"the scheme needs a non-empty list of 'items' (at most {MAX_ITEMS})")
    for field_name in ("audience", "rating", "mark_labels"):
        if data.get(field_name) is not None and not isinstance(data[field_name], str):
            raise SchemeError(f"'{field_name}' must be text")
    items = tuple(_parse_item(raw, n) for n, raw in enumerate(raw_items, 1))
    keys = [i.key for i in items]
    if len(set(keys)) != len(keys):
        raise SchemeError("item keys must be unique")
    with _translation_errors():
        help_text = parse_help(data.get("help"), "the scheme")
        official = parse_official_language(data.get("official_language"))
        translations = parse_translations(data.get("translations"), "the scheme", SCHEME_FIELDS)
    scheme = Scheme(
        key=key,
        version=version,
        name=name.strip(),
        audience=str(data.get("audience", "radiologist")),
        items=items,
        tb_decision=data.get("tb_decision"),
        rating=data.get("rating"),
        mark_labels=None,
        definition=data,
        help=help_text,
        official_language=official,
        translations=translations,
    )
    _check_references(scheme)
    labels = data.get("mark_labels")
    if labels is not None:
        if labels not in keys or scheme.item(labels).type not in ("multi", "choice"):
            raise SchemeError("'mark_labels' must name a choice or multi item")
        scheme = replace(scheme, mark_labels=scheme.item(labels).options)
    if data.get("compatible_findings") is not None:
        scheme = replace(
            scheme, compatible_findings=_parse_compatible(data["compatible_findings"], scheme)
        )
    return scheme


def _parse_compatible(raw: Any, scheme: Scheme) -> dict[str, frozenset[str]]:
    """``{"finding": ["other finding", ...]}``: each name a mark finding of the scheme. The
    relation is symmetric: declaring a ~ b also makes b ~ a."""
    if scheme.mark_labels is None:
        raise SchemeError("this scheme takes no lesion marks: it has no 'compatible_findings'")
    if not isinstance(raw, dict):
        raise SchemeError("'compatible_findings' must be an object of finding: [findings]")
    labels = {o.value for o in scheme.mark_labels}
    pairs: dict[str, set[str]] = {}
    for finding, others in raw.items():
        if not isinstance(others, list) or not others or not all(
            isinstance(o, str) for o in others
        ):
            raise SchemeError(f"'compatible_findings': {finding!r} must list findings")
        for name in (finding, *others):
            if name not in labels:
                raise SchemeError(
                    f"'compatible_findings': {name!r} is not a mark finding of this scheme"
                )
        for other in others:
            if other == finding:
                raise SchemeError(
                    f"'compatible_findings': {finding!r} is compatible with itself already"
                )
            pairs.setdefault(finding, set()).add(other)
            pairs.setdefault(other, set()).add(finding)
    return {finding: frozenset(others) for finding, others in pairs.items()}


def _parse_item(raw: Any, n: int) -> Item:
    if not isinstance(raw, dict):
        raise SchemeError(f"item {n} is not an object")
    key, kind = raw.get("key"), raw.get("type")
    if not isinstance(key, str) or not _KEY.match(key):
        raise SchemeError(f"item {n} needs a 'key' of lower-case letters, digits and '_'")
    if kind not in ITEM_TYPES:
        raise SchemeError(f"item {key!r}: 'type' must be one of {', '.join(ITEM_TYPES)}")
    label = raw.get("label")
    if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL:
        raise SchemeError(f"item {key!r} needs a 'label' of at most {MAX_LABEL} characters")
    options: tuple[Option, ...] = ()
    groups = _parse_groups(raw.get("groups", []), key)
    if kind in ("choice", "multi"):
        raw_options = raw.get("options")
        if not isinstance(raw_options, list) or not 1 <= len(raw_options) <= MAX_OPTIONS:
            raise SchemeError(f"item {key!r} needs a list of 1 to {MAX_OPTIONS} 'options'")
        options = tuple(_parse_option(o, key) for o in raw_options)
        values = [o.value for o in options]
        if len(set(values)) != len(values):
            raise SchemeError(f"item {key!r}: option values must be unique")
        known = {g.key for g in groups}
        if any(o.group and o.group not in known for o in options):
            raise SchemeError(f"item {key!r}: an option names an undeclared group")
    minimum = maximum = None
    if kind == "scale":
        low, high = raw.get("min"), raw.get("max")
        if not (_is_int(low) and _is_int(high) and -MAX_SCALE <= low < high <= MAX_SCALE):
            raise SchemeError(f"item {key!r}: a scale needs whole numbers min < max, "
                              f"within ±{MAX_SCALE}")
        minimum, maximum = low, high
    max_length = raw.get("max_length", 500)
    if not _is_int(max_length) or not 1 <= max_length <= MAX_TEXT:
        raise SchemeError(f"item {key!r}: 'max_length' must be a whole number from 1 to "
                          f"{MAX_TEXT}")
    anchors = raw.get("anchors") or {}
    if not isinstance(anchors, dict) or not all(isinstance(v, str) for v in anchors.values()):
        raise SchemeError(f"item {key!r}: 'anchors' must be an object of value: text")
    with _translation_errors():
        help_text = parse_help(raw.get("help"), f"item {key!r}")
        translations = parse_translations(raw.get("translations"), f"item {key!r}",
                                          ITEM_FIELDS, anchors=[str(k) for k in anchors])
    return Item(
        key=key,
        type=kind,
        label=label.strip(),
        required=bool(raw.get("required", False)),
        options=options,
        groups=groups,
        minimum=minimum,
        maximum=maximum,
        max_length=max_length,
        ordinal=bool(raw.get("ordinal", False)),
        anchors={str(k): v for k, v in anchors.items()},
        help=help_text,
        translations=translations,
    )


@contextmanager
def _translation_errors() -> Iterator[None]:
    try:
        yield
    except TranslationError as exc:
        raise SchemeError(str(exc)) from None


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_groups(raw: Any, item_key: str) -> tuple[Group, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(g, dict) and isinstance(g.get("key"), str) and isinstance(g.get("label"), str)
        for g in raw
    ):
        raise SchemeError(f"item {item_key!r}: 'groups' must be a list of {{key, label}}")
    if any(len(g["label"]) > MAX_LABEL for g in raw):
        raise SchemeError(f"item {item_key!r}: a group's 'label' has at most {MAX_LABEL} "
                          "characters")
    with _translation_errors():
        groups = tuple(
            Group(g["key"], g["label"], parse_translations(
                g.get("translations"), f"item {item_key!r}, group {g['key'][:40]!r}",
                GROUP_FIELDS))
            for g in raw)
    return groups


def _parse_option(raw: Any, item_key: str) -> Option:
    if not isinstance(raw, dict) or not isinstance(raw.get("value"), str) or not raw["value"]:
        raise SchemeError(f"item {item_key!r}: every option needs a 'value'")
    if not all(raw.get(name) is None or isinstance(raw[name], str) for name in ("label", "group")):
        raise SchemeError(f"item {item_key!r}: an option's 'label' and 'group' are text")
    where = f"item {item_key!r}, option {raw['value'][:40]!r}"
    with _translation_errors():
        help_text = parse_help(raw.get("help"), where)
        translations = parse_translations(raw.get("translations"), where, OPTION_FIELDS)
    return Option(
        value=raw["value"],
        label=str(raw.get("label") or raw["value"]),
        group=raw.get("group"),
        tb_positive=bool(raw.get("tb_positive", False)),
        help=help_text,
        translations=translations,
    )


def _check_references(scheme: Scheme) -> None:
    keys = {i.key for i in scheme.items}
    decision = scheme.tb_decision
    if decision is not None:
        if (not isinstance(decision, dict) or not isinstance(decision.get("item"), str)
                or decision["item"] not in keys):
            raise SchemeError("'tb_decision' must name an item")
        item = scheme.item(decision["item"])
        if "positive_group" in decision and decision["positive_group"] not in [
            g.key for g in item.groups
        ]:
            raise SchemeError("'tb_decision.positive_group' is not a group of its item")
        values = decision.get("positive_values", [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SchemeError("'tb_decision.positive_values' must be a list of option values")
        if not set(values) <= set(item.option_values()):
            raise SchemeError("'tb_decision.positive_values' are not options of its item")
    if scheme.rating is not None and (
        scheme.rating not in keys or scheme.item(scheme.rating).type != "scale"
    ):
        raise SchemeError("'rating' must name a scale item")



# ---- answers and marks ------------------------------------------------------------------


def validate_answers(scheme: Scheme, answers: Any, *, partial: bool = False) -> dict[str, Any]:
    """Normalised answers, or SchemeError naming the first item that does not fit.
    ``partial``: required items may be missing (an adjudication answers only the ties)."""
    if not isinstance(answers, dict):
        raise SchemeError("answers must be an object keyed by item")
    unknown = set(answers) - {i.key for i in scheme.items}
    if unknown:
        raise SchemeError(f"unknown item(s): {', '.join(sorted(unknown))}")
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


def validate_marks(scheme: Scheme, marks: Any, *, columns: int, rows: int) -> list[dict]:
    """Lesion marks in image pixel coordinates, labelled from the scheme."""
    check_mark_count(marks)
    if marks and scheme.mark_labels is None:
        raise SchemeError("this scheme takes no lesion marks")
    allowed = {o.value for o in scheme.mark_labels or ()}
    clean = []
    for n, mark in enumerate(marks, 1):
        if not isinstance(mark, dict):
            raise SchemeError(f"mark {n} is not an object")
        finding, shape, geo = mark.get("finding"), mark.get("shape"), mark.get("geometry")
        if finding not in allowed:
            raise SchemeError(f"mark {n}: {finding!r} is not a finding of this scheme")
        if shape not in MARK_SHAPES or not isinstance(geo, dict):
            raise SchemeError(f"mark {n}: shape must be one of {', '.join(MARK_SHAPES)}")
        clean_mark: dict[str, Any] = {
            "finding": finding,
            "shape": shape,
            "geometry": _validate_geometry(shape, geo, columns, rows, n),
        }
        if mark.get("confidence") is not None:
            confidence = mark["confidence"]
            if (not isinstance(confidence, int | float) or isinstance(confidence, bool)
                    or not 0 <= confidence <= 100):
                raise SchemeError(f"mark {n}: confidence must be between 0 and 100")
            clean_mark["confidence"] = confidence
        clean.append(clean_mark)
    return clean


def check_mark_count(marks: Any) -> None:
    """The limits on a case's marks as a whole (each mark is checked by validate_marks)."""
    if not isinstance(marks, list):
        raise SchemeError("marks must be a list")
    if len(marks) > MAX_MARKS:
        raise SchemeError(f"a case takes at most {MAX_MARKS} marks")
    if sum(_vertices(mark) for mark in marks) > MAX_MARK_VERTICES:
        raise SchemeError(f"the marks of a case have at most {MAX_MARK_VERTICES} polygon "
                          "points in all")


def _vertices(mark: Any) -> int:
    geo = mark.get("geometry") if isinstance(mark, dict) else None
    points = geo.get("points") if isinstance(geo, dict) else None
    return len(points) if isinstance(points, list) else 0


def _validate_geometry(shape: str, geo: dict, columns: int, rows: int, n: int) -> dict:
    def num(key: str, low: float, high: float) -> float:
        value = geo.get(key)
        if (not isinstance(value, int | float) or isinstance(value, bool)
                or not low <= value <= high):
            raise SchemeError(f"mark {n}: {key} must be a number within the image")
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
        raise SchemeError(f"mark {n}: a polygon needs 3 to {MAX_POLYGON_POINTS} points")
    clean = []
    for point in points:
        if (
            not isinstance(point, list | tuple)
            or len(point) != 2
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in point)
            or not (0 <= point[0] <= columns and 0 <= point[1] <= rows)
        ):
            raise SchemeError(f"mark {n}: polygon points must be [x, y] within the image")
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
