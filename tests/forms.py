"""Submitting the forms a page renders, the way a browser does.

A test of a page's action fetches the page, picks one of its forms (by the text of the
submit button, a CSS selector, or its action), changes only controls the form really has, the
way a user could (typing at most ``maxlength`` characters into an editable box, ticking a box
or choosing an option the page offers, picking files for a file input), and posts what a
browser would post: every named, enabled control in document order (hidden fields, checked
boxes and radios, selected options, text areas, file parts) plus the clicked button's own name
and value, to the form's (or the button's) action with its method. A field the page does not
render cannot be posted, so a broken template fails the test instead of being papered over by a
hand-written body.

Hidden fields may be set too: pages set them from script (lesion marks, redaction rectangles),
and a test stands in for that script. A form that renders one single-valued name twice (two
hidden or text fields, where the server reads only the first) is refused outright: that is how
the case status buttons once posted an empty status before the button's own.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup, Tag
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

Upload = tuple[IO[bytes], str]
Value = str | int | float | bool | None | Upload | Iterable[str | int | Upload]

_NOT_FIELDS = ("submit", "image", "button", "reset")

# What a browser lets these boxes hold (HTML's value sanitization): anything else becomes "".
_TYPED_VALUES = {
    "number": re.compile(r"-?(\d+(\.\d+)?|\.\d+)([eE][-+]?\d+)?"),
    "date": re.compile(r"\d{4,}-\d{2}-\d{2}"),
    "datetime-local": re.compile(r"\d{4,}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?"),
    "time": re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?"),
}


class FormNotFound(AssertionError):
    """The page has no such form, field or choice: a browser could not send this."""


class FieldRefused(FormNotFound):
    """The field exists but a user could not give it this value."""


def page_forms(html: str) -> list[Tag]:
    return list(BeautifulSoup(html, "html.parser").find_all("form"))


def _kind(control: Tag) -> str:
    if control.name != "input":
        return str(control.name)
    return str(control.get("type") or "text").lower()


def _buttons(form: Tag) -> list[Tag]:
    return [b for b in form.find_all(["button", "input"])
            if (b.name == "button" and (b.get("type") or "submit").lower() == "submit")
            or (b.name == "input" and _kind(b) in ("submit", "image"))]


def _button_text(button: Tag) -> str:
    text = button.get_text(" ", strip=True) if button.name == "button" else button.get("value", "")
    return " ".join(str(text).split())


def find_form(html: str, *, button: str | None = None, selector: str | None = None,
              action: str | None = None) -> tuple[Tag, Tag | None]:
    """The form (and its submit button) with a button labelled ``button``, matching
    ``selector``, or whose action ends with ``action``; exactly one must match."""
    soup = BeautifulSoup(html, "html.parser")
    forms = soup.select(selector) if selector else soup.find_all("form")
    found: list[tuple[Tag, Tag | None]] = []
    for form in forms:
        target = str(form.get("action", ""))
        if action is not None and not (target.endswith(action)
                                       or target.split("?")[0].endswith(action)):
            continue
        buttons = _buttons(form)
        if button is None:
            found.append((form, buttons[0] if buttons else None))
            continue
        found += [(form, b) for b in buttons if _button_text(b) == button]
    if len(found) != 1:
        labels = [[_button_text(b) for b in _buttons(f)] for f in soup.find_all("form")]
        raise FormNotFound(
            f"{len(found)} forms match button={button!r} selector={selector!r} "
            f"action={action!r}; the page's forms have buttons {labels}")
    return found[0]


def _is_multipart(form: Tag) -> bool:
    return str(form.get("enctype", "")).lower() == "multipart/form-data"


def form_fields(form: Tag, submitter: Tag | None = None,
                uploads: Mapping[int, list[Upload]] | None = None) -> list[tuple[str, Any]]:
    """The (name, value) pairs a browser would send for ``form`` submitted by ``submitter``;
    file inputs send the files chosen for them in ``uploads`` (keyed by ``id(control)``)."""
    pairs: list[tuple[str, Any]] = []
    for control in form.find_all(["input", "select", "textarea", "button"]):
        name = control.get("name")
        if not name or control.has_attr("disabled"):
            continue
        kind = _kind(control)
        if control.name == "button" or kind in _NOT_FIELDS:
            if control is submitter:
                pairs.append((name, str(control.get("value", ""))))
        elif kind in ("checkbox", "radio"):
            if control.has_attr("checked"):
                pairs.append((name, str(control.get("value", "on"))))
        elif kind == "file":
            chosen = (uploads or {}).get(id(control), [])
            if not _is_multipart(form):
                # Without multipart encoding a browser sends only the file's name.
                pairs += [(name, filename) for _, filename in chosen]
            else:
                # No file chosen: the browser still sends an empty, nameless part.
                pairs += [(name, f) for f in chosen] or [(name, (io.BytesIO(b""), ""))]
        elif control.name == "textarea":
            pairs.append((name, control.get_text()))
        elif control.name == "select":
            options = control.find_all("option")
            chosen_options = [o for o in options if o.has_attr("selected")]
            if not chosen_options and options and not control.has_attr("multiple"):
                chosen_options = options[:1]
            pairs += [(name, _option_value(o)) for o in chosen_options]
        else:
            pairs.append((name, str(control.get("value", ""))))
    return pairs


def shadowed_names(form: Tag, submitter: Tag | None = None) -> list[str]:
    """Names the form sends more than once from single-valued controls (text, hidden, single
    selects, and the clicked button): the server's form reads the first value and never sees
    the others."""
    counts = Counter(
        str(c.get("name")) for c in form.find_all(["input", "select", "textarea"])
        if c.get("name") and not c.has_attr("disabled")
        and _kind(c) not in (*_NOT_FIELDS, "checkbox", "radio", "file")
        and not (c.name == "select" and c.has_attr("multiple")))
    if submitter is not None and submitter.get("name"):
        counts[str(submitter.get("name"))] += 1
    return sorted(name for name, n in counts.items() if n > 1)


def _option_value(option: Tag) -> str:
    return str(option.get("value", option.get_text()))


def _as_list(value: Value) -> list[Any]:
    if value is None or value is False:
        return []
    if isinstance(value, tuple) and len(value) == 2 and hasattr(value[0], "read"):
        return [value]  # one upload
    if isinstance(value, (list, tuple, set)):
        return list(value)
    return [value]


def _set_choices(form: Tag, name: str, controls: list[Tag], value: Value) -> None:
    new = ([str(controls[0].get("value", "on"))] if value is True
           else [str(v) for v in _as_list(value)])
    if all(_kind(c) in ("checkbox", "radio") for c in controls):
        offered = [str(c.get("value", "on")) for c in controls]
        if any(_kind(c) == "radio" for c in controls) and len(new) > 1:
            raise FieldRefused(f"{name!r} is a radio group: one choice at most, not {new}")
        unknown = [v for v in new if v not in offered]
        if unknown:
            raise FieldRefused(f"{name!r} offers no choice {unknown} (it has {offered})")
        for control in controls:
            if str(control.get("value", "on")) in new:
                control["checked"] = ""
            elif control.has_attr("checked"):
                del control["checked"]
        return
    (select,) = controls
    options = select.find_all("option")
    offered = [_option_value(o) for o in options if not o.has_attr("disabled")]
    unknown = [v for v in new if v not in offered]
    if unknown:
        raise FieldRefused(f"{name!r} offers no choice {unknown} (it has {offered})")
    if not select.has_attr("multiple") and len(new) != 1:
        raise FieldRefused(f"{name!r} is a single choice: give exactly one value, not {new}")
    for option in options:
        if _option_value(option) in new and not option.has_attr("disabled"):
            option["selected"] = ""
        elif option.has_attr("selected"):
            del option["selected"]


def _set_text(name: str, controls: list[Tag], value: Value) -> None:
    values = [value] if not isinstance(value, (list, tuple)) else list(value)
    if len(values) != len(controls):
        raise FieldRefused(
            f"the form has {len(controls)} controls named {name!r}; give one value per "
            f"control (a browser sends them all, in document order), not {len(values)}")
    for control, one in zip(controls, values, strict=True):
        text = "" if one is None or one is False else str(one)
        if control.has_attr("readonly"):
            raise FieldRefused(f"{name!r} is read-only: a user cannot change it")
        limit = control.get("maxlength")
        if limit is not None and str(limit).isdigit() and len(text) > int(str(limit)):
            raise FieldRefused(
                f"{name!r} takes at most {limit} characters; a user cannot type {len(text)}")
        pattern = _TYPED_VALUES.get(_kind(control))
        if text and pattern is not None and not pattern.fullmatch(text):
            raise FieldRefused(f"{name!r} is a {_kind(control)} box: it cannot hold {text!r}")
        if control.name == "textarea":
            control.string = text
        else:
            control["value"] = text


def _set_files(form: Tag, name: str, controls: list[Tag], value: Value,
               uploads: dict[int, list[Upload]]) -> None:
    if len(controls) != 1:
        raise FieldRefused(f"the form has {len(controls)} file inputs named {name!r}")
    (control,) = controls
    files = _as_list(value)
    if len(files) > 1 and not control.has_attr("multiple"):
        raise FieldRefused(f"{name!r} takes one file, not {len(files)}")
    uploads[id(control)] = files


def fill(form: Tag, values: Mapping[str, Value]) -> dict[int, list[Upload]]:
    """Change the controls of ``form`` in place, as a user typing, ticking, choosing or picking
    files would: a list sets every value of a multi-valued field, None or False clears it,
    True ticks a single check box. Returns the files chosen per file input."""
    uploads: dict[int, list[Upload]] = {}
    for name, value in values.items():
        controls = [c for c in form.find_all(["input", "select", "textarea"], attrs={"name": name})
                    if _kind(c) not in _NOT_FIELDS]
        if not controls:
            raise FormNotFound(f"the form has no field named {name!r}")
        if any(c.has_attr("disabled") for c in controls):
            raise FieldRefused(f"{name!r} is disabled: a browser does not send it")
        kinds = {_kind(c) for c in controls}
        if kinds <= {"checkbox", "radio"} or kinds == {"select"}:
            _set_choices(form, name, controls, value)
        elif kinds == {"file"}:
            _set_files(form, name, controls, value, uploads)
        elif kinds & {"checkbox", "radio", "select", "file"}:
            raise FieldRefused(f"{name!r} names controls of different kinds: {sorted(kinds)}")
        else:
            _set_text(name, controls, value)
    return uploads


def submit_form(client: FlaskClient, page: str, *, button: str | None = None,
                selector: str | None = None, action: str | None = None,
                fields: Mapping[str, Value] | None = None, **kwargs: Any):
    """GET ``page``, then submit one of its forms as a browser would; returns the response
    to the submission (redirects not followed unless follow_redirects=True is given)."""
    response = client.get(page)
    assert response.status_code == 200, f"{page} answered {response.status_code}"
    return submit_html(client, response.get_data(as_text=True), page, button=button,
                       selector=selector, action=action, fields=fields, **kwargs)


def submission(html: str, page: str, *, button: str | None = None, selector: str | None = None,
               action: str | None = None, fields: Mapping[str, Value] | None = None
               ) -> tuple[str, str, MultiDict[str, Any]]:
    """The (method, path, body) a browser would send for a form of ``html`` at URL ``page``."""
    form, submitter = find_form(html, button=button, selector=selector, action=action)
    shadowed = shadowed_names(form, submitter)
    if shadowed:
        raise FormNotFound(f"the form renders {shadowed} more than once; a server reading the "
                           "first value never sees the others")
    uploads = fill(form, fields or {})
    if uploads and not _is_multipart(form):
        raise FieldRefused("the form is not multipart/form-data: a browser would send only "
                           "the names of the chosen files")
    pairs = form_fields(form, submitter, uploads)
    target = (submitter.get("formaction") if submitter is not None else None) \
        or form.get("action") or page
    url = urlsplit(urljoin(f"http://localhost{page}", str(target)))
    path = url.path + (f"?{url.query}" if url.query else "")
    method = str((submitter.get("formmethod") if submitter is not None else None)
                 or form.get("method") or "get").lower()
    return method, path, MultiDict(pairs)


def submit_html(client: FlaskClient, html: str, page: str, *, button: str | None = None,
                selector: str | None = None, action: str | None = None,
                fields: Mapping[str, Value] | None = None, **kwargs: Any):
    """Submit a form of already fetched ``html`` (the page at URL ``page``)."""
    method, path, data = submission(html, page, button=button, selector=selector,
                                    action=action, fields=fields)
    if method == "post":
        return client.post(path, data=data, **kwargs)
    # A GET form replaces the action's query string with the form's fields.
    return client.get(path.split("?")[0], query_string=data, **kwargs)
