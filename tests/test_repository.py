"""The newcomer path stays true: README commands, CI entry point, lint."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_command(section: str) -> str:
    readme = (ROOT / "README.md").read_text()
    part = readme.split(f"## {section}", 1)[1]
    match = re.search(r"```bash\n(.+?)\n```", part, re.S)
    assert match, f"no command in README section {section}"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command():
    command = _readme_command("Tests")
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_readme_quick_start_runs_the_demo():
    assert _readme_command("Quick start").endswith("cxr-academy demo")


def test_code_is_ruff_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_secrets_or_instance_data_are_tracked():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=False).stdout.split()
    assert "app/__init__.py" in tracked
    assert not [p for p in tracked if p.startswith("instance/") and p != "instance/README.md"]
    assert not [p for p in tracked if p.endswith((".sqlite3", ".dcm", "secret_key"))]
