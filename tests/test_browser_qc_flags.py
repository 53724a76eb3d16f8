"""End to end in Chromium: a lead opens the QC flags page from the certification dashboard,
assigns the suggested practice set to a flagged reader, and the reader finds it on their
training page (and no one else does)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from app.auth.models import User
from app.auth.roles import Role
from tests.conftest import sign_in
from tests.test_qc_flags import imported, library, qc_rows, world  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def test_lead_assigns_the_suggested_practice_set_and_the_reader_sees_it(
        app, portal_url: str, browser, world: dict[str, Any],  # noqa: F811
        library: dict[str, Any], make_user: Callable[..., User]) -> None:  # noqa: F811
    imported(qc_rows("amina", majors=5))
    make_user(Role.PROGRAMME_LEAD, username="lead.ke", countries=("KE",))

    lead = browser.new_context().new_page()
    lead.set_default_timeout(15_000)
    sign_in(lead, portal_url, "lead.ke")
    lead.goto(portal_url + "/certification/")
    lead.get_by_role("link", name="1 reader flagged by quality control").click()
    lead.wait_for_url("**/qc/flags")
    flag = lead.get_by_test_id("qc-flag").filter(has_text="Amina Otieno")
    for case in library["infiltrate"]:
        assert f"Case {case.id}" in flag.get_by_test_id("suggested-cases").inner_text()
    flag.get_by_label("Assign the suggested practice set").check()
    flag.get_by_label("Your reason (recorded in the audit log)").fill(
        "Misses infiltrates on live reads")
    flag.get_by_role("button", name="Record decision").click()
    lead.wait_for_url("**/qc/flags")
    assert re.search(r"Amina Otieno: the practice set .* is assigned", lead.content())
    assert "No reader in your countries is flagged." in lead.content()
    lead.context.close()

    reader = browser.new_context().new_page()
    reader.set_default_timeout(15_000)
    sign_in(reader, portal_url, "amina")
    reader.goto(portal_url + "/training/")
    row = reader.get_by_role("row").filter(has_text="Targeted practice for Amina Otieno")
    assert row.count() == 1
    reader.context.close()

    other = browser.new_context().new_page()
    other.set_default_timeout(15_000)
    sign_in(other, portal_url, "jose")
    other.goto(portal_url + "/training/")
    assert "Targeted practice" not in other.content()
    other.context.close()
