"""The axe helper fails on a page that breaks a WCAG A/AA rule and names what broke."""

from __future__ import annotations

from typing import Any

import pytest

from tests.axe import assert_no_axe_violations

pytestmark = pytest.mark.browser

GOOD = ('<!doctype html><html lang="en"><head><title>Fine</title></head><body><main>'
        '<h1>Fine</h1><label>Name <input type="text"></label></main></body></html>')
BAD = ('<!doctype html><html lang="en"><head><title>Broken</title></head><body><main>'
       '<h1>Broken</h1><fieldset><legend>Other (specify)</legend><input type="text"></fieldset>'
       '<p style="color:#eee;background:#1f6feb">pressed</p></main></body></html>')


def test_a_clean_page_passes(page: Any) -> None:
    page.set_content(GOOD)
    assert_no_axe_violations(page, "clean page")


def test_violations_are_listed_with_rule_impact_target_and_help(page: Any) -> None:
    page.set_content(BAD)
    with pytest.raises(AssertionError) as failure:
        assert_no_axe_violations(page, "broken page")
    message = str(failure.value)
    assert message.startswith("broken page: 2 axe violation(s)")
    assert "- label (critical): Form elements must have labels" in message
    assert "- color-contrast (serious)" in message
    assert "    input: Fix any of the following:" in message  # the element's selector
    assert "    p: Fix any of the following:" in message
