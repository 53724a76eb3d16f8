"""Limits every request meets at the edge, before a view or the database sees it, and the
loading of JSON bodies and query strings through their marshmallow schemas.

A number too large for the database (SQLite raises OverflowError past 64 bits), JSON nested
past Python's recursion limit, ``NaN``/``Infinity`` literals or a body of megabytes of marks
are answered here with a 4xx naming what is wrong, never a 500.

The edge limits are a few hand-written lines because they apply to every request, whatever
its route (integers in the URL and query string, JSON depth, size and non-finite numbers).
What a body or query string holds is described once, by a marshmallow schema that the JSON
API (/api/v1) and the JSON endpoints of the pages' scripts both load with: the pages answer
a refusal with 400 and one sentence (their scripts show ``message``), the API with 422 and
each refused field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from flask import Flask, abort, request
from flask.json.provider import DefaultJSONProvider
from flask_babel import lazy_gettext as _l
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError
from werkzeug.routing import IntegerConverter, Map

from app.i18n import N_

# The largest row id: the models' ids are Integer columns, 32-bit on PostgreSQL, where a
# larger number is refused by the database ("integer out of range", a 500) rather than
# matching nothing; SQLite's 64-bit ids get no larger in practice.
MAX_DB_INTEGER = 2**31 - 1
# Far past any listing the portal shows (thousands of readers, tens of thousands of events at
# a page size of 25-50); small enough that page * page size stays a valid OFFSET.
MAX_PAGE = 1_000_000
# The query parameters that are whole numbers, wherever they appear, and their upper bound.
QUERY_INTEGERS: dict[str, int] = {
    "page": MAX_PAGE,
    "per_page": 1_000,
    "programme": MAX_DB_INTEGER,
    "clinic": MAX_DB_INTEGER,
    "from": 100_000,  # a case position within an attempt
}
# An autosave body is at most ~100 kB even with every mark a polygon of the viewer's 200
# points; 2 MB leaves room for the largest scheme while refusing megabytes of marks.
MAX_JSON_BYTES = 2 * 1024 * 1024
# Answers nest three levels (answers -> criterion -> reason; marks -> geometry -> points ->
# [x, y]); 32 is far above that and far below Python's recursion limit.
MAX_JSON_DEPTH = 32
_TOO_DEEP = N_("the JSON is nested deeper than %(depth)s levels")
JSON_TOO_LARGE = f"A JSON body is at most {MAX_JSON_BYTES // 1024**2} MB."


class BoundedIntegerConverter(IntegerConverter):
    """``<int:...>`` in every route: a number past what the database holds cannot name a
    row, so such a URL is a 404 like any other unknown id (werkzeug's ``max``)."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = MAX_DB_INTEGER, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def bounded_int(args: Mapping[str, str], name: str, *, default: int | None = None,
                minimum: int = 1, maximum: int | None = None) -> int | None:
    """The whole number in ``args[name]``, ``default`` when absent or empty; a 400 naming
    the parameter and the range when it is anything else."""
    return _bounded(args.get(name), name, default=default, minimum=minimum, maximum=maximum)


def _bounded(value: str | None, name: str, *, default: int | None, minimum: int,
             maximum: int | None) -> int | None:
    text = (value or "").strip()
    if not text:
        return default
    top = maximum if maximum is not None else QUERY_INTEGERS.get(name, MAX_DB_INTEGER)
    # isascii: str.isdigit accepts digits such as "²" that int() refuses.
    if not (text.isascii() and text.isdigit()) or len(text) > 20 or not (
            minimum <= int(text) <= top):
        # Lazy: a page shows it in the reader's language, JSON in English (app.errors).
        abort(400, description=_l("The parameter '%(name)s' must be a positive whole number "
                                  "from %(minimum)s to %(top)s.", name=name, minimum=minimum,
                                  top=top))
    return int(text)


def _check_query_integers() -> None:
    """Only numbers too large are refused here, whatever the route: text, zero or negative
    numbers are each view's to judge (a listing shows its first page for ``page=abc``)."""
    for name in QUERY_INTEGERS.keys() & request.args.keys():
        top = QUERY_INTEGERS[name]
        for value in request.args.getlist(name):
            digits = value.strip().lstrip("+-")
            if digits.isascii() and digits.isdigit() and (len(digits) > 20 or int(digits) > top):
                abort(400, description=_l("The parameter '%(name)s' must be a whole number "
                                          "of at most %(top)s.", name=name, top=top))


def _limit_json_body() -> None:
    # Content-Length is checked here because the body stream, with the app-wide 16 MB limit,
    # is already set up by the CSRF check; json_body() counts what it reads as well.
    if request.is_json and (request.content_length or 0) > MAX_JSON_BYTES:
        abort(413, description=JSON_TOO_LARGE)


class JSONRefused(ValueError):
    """A JSON body that parses in Python but is refused: the sentence says why (English;
    ``message``, marked for translation, and ``params`` give it in another language)."""

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message % params if params else message)
        self.message = message
        self.params = params


def _refuse_constant(name: str) -> float:
    raise JSONRefused(N_("%(name)s is not a number JSON allows"), name=name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONRefused(N_("the number %(number)s is too large"), number=text[:20])
    return value


def _depth(value: Any) -> int:
    """The nesting depth, walked without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if level > MAX_JSON_DEPTH:
                break
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def loads_strict(text: str | bytes) -> Any:
    """JSON as the portal accepts it: finite numbers, at most MAX_JSON_DEPTH levels.
    ValueError (JSONRefused) with the reason otherwise."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise JSONRefused(_TOO_DEEP, depth=MAX_JSON_DEPTH) from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise JSONRefused(_TOO_DEEP, depth=MAX_JSON_DEPTH)
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """``request.get_json`` through loads_strict: a refused body is a ValueError, which
    Flask answers with 400 (or None with ``silent=True``)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads_strict(s)


def json_body() -> Any:
    """The request's JSON body, or a 400 with the reason it cannot be read."""
    if not request.is_json:
        abort(400, description="Send the body as JSON (Content-Type: application/json).")
    data = request.get_data(cache=True)
    if len(data) > MAX_JSON_BYTES:
        abort(413, description=JSON_TOO_LARGE)
    try:
        return loads_strict(data)
    except JSONRefused as exc:
        abort(400, description=f"The body is refused: {exc}.")
    except (ValueError, UnicodeDecodeError):
        abort(400, description="The body is not valid JSON.")


# ---- schemas -------------------------------------------------------------------------------


class StrictSchema(Schema):
    """A body or query string: a misspelt field is refused, not silently ignored."""

    class Meta:
        unknown = RAISE

    error_messages = {"type": "Send a JSON object.", "unknown": "This field is not known."}


def refused_fields(messages: Any) -> dict[str, Any]:
    """marshmallow's messages, one entry per refused field; a refusal of the whole body
    (``_schema``) is named "body"."""
    if not isinstance(messages, dict):
        return {"body": messages}
    return {("body" if field == "_schema" else str(field)): reason
            for field, reason in messages.items()}


def _sentences(reason: Any) -> str:
    if isinstance(reason, dict):  # a nested field: each of its parts
        return "; ".join(f"{key}: {_sentences(value)}" for key, value in reason.items())
    if isinstance(reason, list):
        return " ".join(_sentences(value) for value in reason)
    return str(reason)


def refusal_sentence(messages: Any) -> str:
    """One sentence naming each refused field and why, for a page's script to show."""
    parts = [f"{field}: {_sentences(reason)}"
             for field, reason in sorted(refused_fields(messages).items())]
    return "Not accepted. " + " ".join(parts)


def load_json_body(schema: Schema) -> dict[str, Any]:
    """The request's JSON body loaded by ``schema``; a 400 (413 when too large) with the
    reason otherwise. For the pages' scripts: the API's views load with flask-smorest."""
    try:
        return dict(schema.load(json_body()))
    except ValidationError as exc:
        abort(400, description=refusal_sentence(exc.normalized_messages()))


def load_query(schema: Schema) -> dict[str, Any]:
    """The query string loaded by ``schema``; a 400 with the reason. As the API's query
    strings (webargs): a name given twice counts once, a name not in the schema is left
    aside (a link may carry a cache-buster)."""
    try:
        return dict(schema.load(request.args.to_dict(), unknown=EXCLUDE))
    except ValidationError as exc:
        abort(400, description=refusal_sentence(exc.normalized_messages()))


def init_validation(app: Flask) -> None:
    """Before blueprints are registered: their ``<int:...>`` rules use the bounded
    converter."""
    app.url_map.converters["int"] = BoundedIntegerConverter
    app.json_provider_class = StrictJSONProvider
    app.json = StrictJSONProvider(app)
    app.before_request(_limit_json_body)
    app.before_request(_check_query_integers)
