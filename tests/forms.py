"""Submitting the forms a page renders, the way a browser does.

A test of a page's action fetches the page, picks one of its forms (by the text of the
submit button, or a CSS selector), fills only fields the form really has, and posts what a
browser would post: every named, enabled control in document order (hidden fields, checked
boxes and radios, selected options, text areas) plus the clicked button's own name and value,
to the form's action with its method. A field the page does not render cannot be posted, so a
broken template fails the test instead of being papered over by a hand-written body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

from bs4 import BeautifulSoup, Tag
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

Value = str | int | float | bool | None | Iterable[str | int]


class FormNotFound(AssertionError):
    pass


def page_forms(html: str) -> list[Tag]:
    return list(BeautifulSoup(html, "html.parser").find_all("form"))


def _buttons(form: Tag) -> list[Tag]:
    return [b for b in form.find_all(["button", "input"])
            if (b.name == "button" and (b.get("type") or "submit").lower() == "submit")
            or (b.name == "input" and (b.get("type") or "").lower() in ("submit", "image"))]


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
        if action is not None and not str(form.get("action", "")).endswith(action):
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


def form_fields(form: Tag, submitter: Tag | None = None) -> list[tuple[str, str]]:
    """The (name, value) pairs a browser would send for ``form`` submitted by ``submitter``."""
    pairs: list[tuple[str, str]] = []
    for control in form.find_all(["input", "select", "textarea", "button"]):
        name = control.get("name")
        if not name or control.has_attr("disabled"):
            continue
        if control.name == "input":
            kind = (control.get("type") or "text").lower()
            if kind in ("submit", "image", "button", "reset"):
                if control is submitter:
                    pairs.append((name, str(control.get("value", ""))))
                continue
            if kind in ("checkbox", "radio"):
                if control.has_attr("checked"):
                    pairs.append((name, str(control.get("value", "on"))))
                continue
            if kind == "file":
                continue
            pairs.append((name, str(control.get("value", ""))))
        elif control.name == "button":
            if control is submitter:
                pairs.append((name, str(control.get("value", ""))))
        elif control.name == "textarea":
            pairs.append((name, control.get_text()))
        else:  # select
            options = control.find_all("option")
            chosen = [o for o in options if o.has_attr("selected")]
            if not chosen and options and not control.has_attr("multiple"):
                chosen = options[:1]
            pairs += [(name, str(o.get("value", o.get_text()))) for o in chosen]
    return pairs


def _allowed(form: Tag, name: str) -> Tag:
    control = form.find(["input", "select", "textarea"], attrs={"name": name})
    if control is None:
        raise FormNotFound(f"the form has no field named {name!r}")
    return control


def fill(form: Tag, pairs: list[tuple[str, str]],
         values: Mapping[str, Value]) -> list[tuple[str, str]]:
    """Replace the values of fields the form renders, as a user typing, ticking or choosing
    would. A list sets every value of a multi-valued field; None or False clears it."""
    for name, value in values.items():
        control = _allowed(form, name)
        if isinstance(value, (list, tuple, set)):
            new = [str(v) for v in value]
        elif value is None or value is False:
            new = []
        elif value is True:
            new = [str(control.get("value", "on"))]
        else:
            new = [str(value)]
        if control.name == "select" or (control.get("type") or "").lower() in ("checkbox",
                                                                                  "radio"):
            offered = ({str(o.get("value", o.get_text())) for o in control.find_all("option")}
                       if control.name == "select" else
                       {str(c.get("value", "on")) for c in form.find_all(
                           "input", attrs={"name": name})})
            unknown = [v for v in new if v not in offered]
            if unknown:
                raise FormNotFound(f"{name!r} offers no choice {unknown} (it has {offered})")
        at = next((n for n, (k, _) in enumerate(pairs) if k == name), len(pairs))
        pairs = [p for p in pairs if p[0] != name]
        pairs[at:at] = [(name, v) for v in new]
    return pairs


def submit_form(client: FlaskClient, page: str, *, button: str | None = None,
                selector: str | None = None, action: str | None = None,
                fields: Mapping[str, Value] | None = None, **kwargs: Any):
    """GET ``page``, then submit one of its forms as a browser would; returns the response
    to the submission (redirects not followed unless follow_redirects=True is given)."""
    response = client.get(page)
    assert response.status_code == 200, f"{page} answered {response.status_code}"
    return submit_html(client, response.get_data(as_text=True), page, button=button,
                       selector=selector, action=action, fields=fields, **kwargs)


def submit_html(client: FlaskClient, html: str, page: str, *, button: str | None = None,
                selector: str | None = None, action: str | None = None,
                fields: Mapping[str, Value] | None = None, **kwargs: Any):
    """Submit a form of already fetched ``html`` (the page at URL ``page``)."""
    form, submitter = find_form(html, button=button, selector=selector, action=action)
    pairs = fill(form, form_fields(form, submitter), fields or {})
    target = (submitter.get("formaction") if submitter is not None else None) \
        or form.get("action") or page
    url = urlsplit(urljoin(f"http://localhost{page}", str(target)))
    path = url.path + (f"?{url.query}" if url.query else "")
    method = str((submitter.get("formmethod") if submitter is not None else None)
                 or form.get("method") or "get").lower()
    data = MultiDict(pairs)
    if method == "post":
        return client.post(path, data=data, **kwargs)
    return client.get(path, query_string=data, **kwargs)
