"""axe-core in a Playwright page: WCAG 2.0 / 2.1 level A and AA checks of what the page
shows now (the vendored copy in tests/vendor/axe-core, see its README)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

AXE_JS = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")


@functools.cache
def _axe_source() -> str:
    return AXE_JS.read_text(encoding="utf-8")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """The violations axe finds in ``page`` (a Playwright page) against WCAG 2.0/2.1 A+AA."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        # The portal's Content-Security-Policy (script-src 'self') refuses a <script> tag
        # added by the test (page.add_script_tag); evaluating the source through the
        # DevTools protocol is outside the page's policy, which stays on for what it tests.
        page.evaluate(_axe_source() + "\n;undefined")
    result = page.evaluate(
        """tags => axe.run(document, {runOnly: {type: 'tag', values: tags},
                                      resultTypes: ['violations']})""",
        list(WCAG_TAGS),
    )
    return list(result["violations"])


def describe(violations: list[dict[str, Any]]) -> str:
    """One paragraph per violation: rule, impact, help, and each offending element."""
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation.get('impact')}): {violation['help']}"
                     f" [{violation.get('helpUrl', '')}]")
        for node in violation["nodes"]:
            target = " ".join(str(part) for part in node.get("target", []))
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            lines.append(f"    {target}: {summary}")
    return "\n".join(lines)


def assert_no_axe_violations(page: Any, context: str) -> None:
    """Fail, naming ``context`` and every violation, unless axe finds none on ``page``."""
    violations = axe_violations(page)
    assert not violations, (
        f"{context}: {len(violations)} axe violation(s) at {page.url}\n{describe(violations)}")
