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


# What a page or command loads when it needs it, never with the application: every web
# worker and every command would pay for it at start (together over a second of CPU).
LOADED_WHEN_USED = (
    "pydicom", "PIL", "imagecodecs", "app.cases.processing", "app.cases.pixels",  # the sandbox
    "webauthn", "OpenSSL",  # security keys
    "reportlab",  # certificate PDFs
    "qrcode",  # the second factor's enrolment page
    "numpy",  # scoring an attempt, item analysis (the quiz pages import the scoring's types)
    "alembic", "flask_migrate",  # the db commands, demo and the migrations only
)


def test_the_application_loads_no_imaging_pdf_or_security_key_library(tmp_path):
    code = "from app import create_app\ncreate_app()"
    assert loaded(code, tmp_path, LOADED_WHEN_USED) == []


def test_cases_import_parses_in_the_sandbox_without_loading_the_imaging_modules(tmp_path):
    """The command's own process reads the file, hands it over and stores the result; only
    the sandbox's children (forked from a server that preloads them) decode and encode."""
    from tests.dicom_factory import cr_dataset, to_bytes

    image = tmp_path / "one.dcm"
    image.write_bytes(to_bytes(cr_dataset(64, 48, bits_stored=12, seed=5)))
    env = {**os.environ, "CXR_ACADEMY_INSTANCE_PATH": str(tmp_path),
           "CXR_ACADEMY_JOB_QUEUE_URL": "immediate", "PYTHONPATH": str(ROOT)}
    command = "import sys\nfrom app.cli import main\nsys.argv = ['cxr-academy', {args}]\n"
    run = "try:\n    main()\nexcept SystemExit as stop:\n    assert not stop.code, stop.code\n"
    subprocess.run([sys.executable, "-c", command.format(args="'db', 'upgrade'") + run],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    script = (command.format(args=f"'cases', 'import', {str(image)!r}") + run
              + f"print(sorted(m for m in {LOADED_WHEN_USED!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True, timeout=300).stdout
    assert "1 imported" in out
    assert out.strip().splitlines()[-1] == "[]"


def test_the_sandbox_loads_the_imaging_modules_without_the_application(tmp_path):
    # What the sandbox's server preloads: every import command waits for it once.
    code = "import app.cases.sandbox_server, app.cases.sandbox"
    assert loaded(code, tmp_path, ("flask", "sqlalchemy", "matplotlib", "app.models")) == []


def test_a_sandboxed_child_does_not_load_the_main_module_again(tmp_path):
    """multiprocessing would run the main module (the cxr-academy script, gunicorn, a
    worker: the whole application) again in every child: seconds per file parsed."""
    marker = tmp_path / "loaded-again"
    script = tmp_path / "main.py"
    script.write_text(
        "import pathlib\n"
        "if __name__ != '__main__':\n"
        f"    pathlib.Path({str(marker)!r}).write_text(__name__)\n"
        "from app.cases.sandbox import run_limited\n"
        "if __name__ == '__main__':\n"
        "    print(run_limited(len, (b'abc',), timeout=60, memory_bytes=0))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the sandbox's server imports from here
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert out.strip() == "3"
    assert not marker.exists()


def test_a_server_warms_the_figures_up_in_a_thread_and_keeps_no_figure(tmp_path):
    """The server (app.wsgi) loads matplotlib and its font in a thread at start, so that
    the programme dashboard's first figure does not pay for it; it draws no figure of
    anyone's scores, and create_app (the commands) still loads none of it."""
    code = ("from app.wsgi import create_server_app\n"
            "app = create_server_app()\n"
            "thread = app.extensions['warm_up']\n"
            "thread.join(120)\n"
            "assert not thread.is_alive()\n"
            "from app.certification.figures import _png\n"
            "assert _png.cache_info().currsize == 0, _png.cache_info()\n"
            "from matplotlib import font_manager\n"
            "assert font_manager.fontManager is not None")
    assert loaded(code, tmp_path, ("matplotlib", "matplotlib.backends.backend_agg",
                                   "matplotlib.ft2font")) == [
        "matplotlib", "matplotlib.backends.backend_agg", "matplotlib.ft2font"]
