"""Start-up cost of a command: what a process loads before it does any work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def loaded(code: str, tmp_path: Path, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``code``."""
    script = f"{code}\nimport sys\nprint(sorted(m for m in {modules!r} if m in sys.modules))"
    env = {**os.environ, "CXR_ACADEMY_INSTANCE_PATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return eval(out.strip().splitlines()[-1])  # noqa: S307 (our own printed list)


def test_the_application_loads_without_matplotlib_or_scipy_optimize(tmp_path):
    # Figures are drawn by a few pages only; the matching of marks by some scoring only.
    code = "from app import create_app\ncreate_app()"
    assert loaded(code, tmp_path, ("matplotlib", "scipy.optimize")) == []


def test_the_sandbox_loads_the_imaging_modules_without_the_application(tmp_path):
    # What the sandbox's server preloads: every import command waits for it once.
    code = "import app.cases.processing, app.cases.sandbox"
    assert loaded(code, tmp_path, ("flask", "sqlalchemy", "matplotlib", "app.models")) == []
