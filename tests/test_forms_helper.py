"""The test helper that submits rendered forms posts what a browser would."""

from __future__ import annotations

import io

import pytest

from tests.forms import (
    FieldRefused,
    FormNotFound,
    fill,
    find_form,
    form_fields,
    shadowed_names,
    submission,
)

PAGE = """
<form method="post" action="/cases/1/status">
  <input type="hidden" name="csrf_token" value="t">
  <input type="hidden" name="status" value="">
  <button name="status" value="published">Publish</button>
  <button name="status" value="retired">Retire</button>
</form>
<form method="post" action="/other">
  <input name="title" value="old" maxlength="10">
  <input type="checkbox" name="shuffle" value="y" checked>
  <input type="checkbox" name="bank" value="y">
  <input type="radio" name="kind" value="practice">
  <input type="radio" name="kind" value="exam" checked>
  <select name="scheme"><option value="a">A</option><option value="b" selected>B</option></select>
  <select name="cases" multiple>
    <option value="1" selected>1</option><option value="2">2</option></select>
  <textarea name="notes">hello</textarea>
  <input name="off" value="x" disabled>
  <input name="link" value="https://x" readonly>
  <input type="number" name="hours" step="any">
  <input type="datetime-local" name="opens">
  <button type="submit">Save</button>
</form>
<form method="post" action="/upload" enctype="multipart/form-data">
  <input type="hidden" name="csrf_token" value="t">
  <input type="file" name="files" multiple>
  <input type="file" name="one">
  <button>Import</button>
</form>
<form method="get" action="/search?old=1"><input name="q"><button>Search</button></form>
<form method="post" action="/plain"><input type="file" name="f"><button>Send</button></form>
"""


def test_the_clicked_button_is_sent_after_the_fields_before_it():
    form, button = find_form(PAGE, button="Publish")
    assert form_fields(form, button) == [("csrf_token", "t"), ("status", ""),
                                          ("status", "published")]


def test_checked_controls_selected_options_and_text_areas_are_sent():
    form, button = find_form(PAGE, button="Save")
    assert form_fields(form, button) == [
        ("title", "old"), ("shuffle", "y"), ("kind", "exam"), ("scheme", "b"), ("cases", "1"),
        ("notes", "hello"), ("link", "https://x"), ("hours", ""), ("opens", "")]


def test_filled_values_are_sent_in_document_order():
    form, button = find_form(PAGE, button="Save")
    fill(form, {"notes": "bye", "bank": True, "cases": [1, 2], "shuffle": False,
                "kind": "practice", "title": "new"})
    assert form_fields(form, button) == [
        ("title", "new"), ("bank", "y"), ("kind", "practice"), ("scheme", "b"), ("cases", "1"),
        ("cases", "2"), ("notes", "bye"), ("link", "https://x"), ("hours", ""), ("opens", "")]


def test_only_rendered_fields_and_offered_choices_can_be_filled():
    form, _ = find_form(PAGE, button="Save")
    with pytest.raises(FormNotFound):
        fill(form, {"not_rendered": "x"})
    with pytest.raises(FieldRefused):
        fill(form, {"scheme": "c"})
    with pytest.raises(FieldRefused):
        fill(form, {"kind": ["practice", "exam"]})
    with pytest.raises(FieldRefused):
        fill(form, {"scheme": ["a", "b"]})
    with pytest.raises(FormNotFound):
        find_form(PAGE, button="Delete")


def test_what_a_user_cannot_type_is_refused():
    form, _ = find_form(PAGE, button="Save")
    with pytest.raises(FieldRefused, match="at most 10"):
        fill(form, {"title": "x" * 11})
    with pytest.raises(FieldRefused, match="read-only"):
        fill(form, {"link": "https://elsewhere"})
    with pytest.raises(FieldRefused, match="disabled"):
        fill(form, {"off": "y"})
    fill(form, {"hours": "-1.5e2", "opens": "2026-03-01T08:00"})
    for box, typed in (("hours", "nan"), ("hours", "two"), ("opens", "tomorrow")):
        with pytest.raises(FieldRefused, match="cannot hold"):
            fill(form, {box: typed})


def test_a_duplicated_field_cannot_be_collapsed_into_one_value():
    """The broken case status form rendered 'status' twice; a test filling 'status' must not
    hide that by sending one value where the browser sends two."""
    form, _ = find_form(PAGE.replace('<button name="status" value="published">',
                                     '<input type="hidden" name="status" value="published">'
                                     '<button>'), button="Publish")
    with pytest.raises(FieldRefused, match="2 controls named 'status'"):
        fill(form, {"status": "published"})


def test_a_form_that_renders_a_single_valued_name_twice_is_refused():
    """The case status form as it was: hidden_tag() rendered an empty 'status', then the
    template its own; the server read the empty one."""
    broken = """<form method="post" action="/cases/1/status">
      <input id="csrf_token" name="csrf_token" type="hidden" value="t">
      <input id="status" name="status" type="hidden" value="">
      <input type="hidden" name="status" value="published"><button>Publish</button></form>"""
    form, _ = find_form(broken, button="Publish")
    assert shadowed_names(form) == ["status"]
    with pytest.raises(FormNotFound, match="renders \\['status'\\] more than once"):
        submission(broken, "/cases/1", button="Publish")
    fixed = broken.replace('<input id="status" name="status" type="hidden" value="">', "")
    assert submission(fixed, "/cases/1", button="Publish")[2].getlist("status") == ["published"]
    # Likewise a button whose name a hidden field already carries.
    form, button = find_form(PAGE, button="Publish")
    assert shadowed_names(form, button) == ["status"]
    # Check boxes and multiple selects legitimately repeat a name.
    form, button = find_form(PAGE, button="Save")
    assert shadowed_names(form, button) == []


def test_files_go_to_multipart_forms_only_and_one_unless_multiple():
    files = [(io.BytesIO(b"a"), "a.dcm"), (io.BytesIO(b"b"), "b.dcm")]
    method, path, data = submission(PAGE, "/p", button="Import", fields={"files": files})
    assert (method, path) == ("post", "/upload")
    assert [name for name, _ in data.items(multi=True)] == ["csrf_token", "files", "files", "one"]
    assert [f[1] for f in data.getlist("files")] == ["a.dcm", "b.dcm"]
    assert data.getlist("one")[0][1] == ""  # no file chosen: an empty part, as browsers send
    with pytest.raises(FieldRefused, match="one file"):
        submission(PAGE, "/p", button="Import", fields={"one": files})
    with pytest.raises(FieldRefused, match="multipart"):
        submission(PAGE, "/p", button="Send", fields={"f": files[0]})


def test_get_forms_and_relative_actions():
    method, path, data = submission(PAGE, "/cases/", button="Search", fields={"q": "cavity"})
    assert (method, path, list(data.items())) == ("get", "/search?old=1", [("q", "cavity")])
    _, path, _ = submission(PAGE.replace('action="/plain"', 'action="../x"'), "/a/b/c",
                            button="Send")
    assert path == "/a/x"
