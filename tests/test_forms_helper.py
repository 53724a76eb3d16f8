"""The test helper that submits rendered forms posts what a browser would."""

from __future__ import annotations

import pytest

from tests.forms import FormNotFound, fill, find_form, form_fields

PAGE = """
<form method="post" action="/cases/1/status">
  <input type="hidden" name="csrf_token" value="t">
  <input type="hidden" name="status" value="">
  <button name="status" value="published">Publish</button>
  <button name="status" value="retired">Retire</button>
</form>
<form method="post" action="/other">
  <input name="title" value="old">
  <input type="checkbox" name="shuffle" value="y" checked>
  <input type="checkbox" name="bank" value="y">
  <input type="radio" name="kind" value="practice">
  <input type="radio" name="kind" value="exam" checked>
  <select name="scheme"><option value="a">A</option><option value="b" selected>B</option></select>
  <select name="cases" multiple>
    <option value="1" selected>1</option><option value="2">2</option></select>
  <textarea name="notes">hello</textarea>
  <input name="off" value="x" disabled>
  <button type="submit">Save</button>
</form>
"""


def test_the_clicked_button_is_sent_after_the_fields_before_it():
    form, button = find_form(PAGE, button="Publish")
    assert form_fields(form, button) == [("csrf_token", "t"), ("status", ""),
                                          ("status", "published")]


def test_checked_controls_selected_options_and_text_areas_are_sent():
    form, button = find_form(PAGE, button="Save")
    assert form_fields(form, button) == [
        ("title", "old"), ("shuffle", "y"), ("kind", "exam"), ("scheme", "b"), ("cases", "1"),
        ("notes", "hello")]


def test_only_rendered_fields_and_offered_choices_can_be_filled():
    form, button = find_form(PAGE, button="Save")
    pairs = fill(form, form_fields(form, button), {"cases": [1, 2], "shuffle": False,
                                                    "kind": "practice"})
    assert ("cases", "2") in pairs and ("shuffle", "y") not in pairs
    assert ("kind", "practice") in pairs
    with pytest.raises(FormNotFound):
        fill(form, pairs, {"not_rendered": "x"})
    with pytest.raises(FormNotFound):
        fill(form, pairs, {"scheme": "c"})
    with pytest.raises(FormNotFound):
        find_form(PAGE, button="Delete")
