"""Command line: user and clinic administration, and the demo set-up."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.extensions import db
from tests.conftest import login, sign_out


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def test_users_create_with_invitation(app, make_clinic):
    clinic = make_clinic("Addis Panel Clinic", "Addis Ababa", "ET")
    result = run(app, "users", "create", "--email", "Reader.One@Example.org", "--name",
                 "Dr Reader One", "--role", "trainee_radiologist", "--clinic", "addis panel clinic")
    assert result.exit_code == 0, result.output
    assert "created user reader.one" in result.output
    assert "/auth/invitation/" in result.output
    user = db.session.scalar(select(User).where(User.username == "reader.one"))
    assert user.email == "reader.one@example.org"
    assert user.clinic_id == clinic.id
    assert user.password_hash is None


def test_users_create_with_generated_password_can_sign_in(app, client):
    result = run(app, "users", "create", "--email", "t@example.org", "--name", "T",
                 "--role", "Trainer", "--role", "admin", "--password", "generate")
    assert result.exit_code == 0, result.output
    password = result.output.split("password: ")[1].split()[0]
    # A trainer sets up the second factor at the first sign-in, then is signed in.
    signed_in = login(client, "t00", password)
    assert signed_in.status_code == 200
    assert "Your recovery codes" in signed_in.get_data(as_text=True)
    assert client.get("/cases/").status_code == 200


def test_users_create_bad_input_gives_clear_errors_and_writes_nothing(app, make_user):
    existing = make_user()
    cases = [
        (["--role", "surgeon"], "unknown role 'surgeon'"),
        (["--role", "trainer", "--email", existing.email], "already exists"),
        (["--role", "trainer", "--clinic", "Atlantis"], "no clinic 'Atlantis'"),
        (["--role", "programme_lead"], "needs countries in scope"),
        (["--role", "programme_lead", "--country", "ZZ"], "unknown country code 'ZZ'"),
        (["--role", "trainer", "--email", "not-an-email"], "invalid e-mail address"),
        (["--role", "trainer", "--username", "A B"], "a user name has 3-64 characters"),
    ]
    before = db.session.scalar(select(func.count(User.id)))
    for extra, message in cases:
        args = ["users", "create", "--name", "Someone"]
        if "--email" not in extra:
            args += ["--email", "someone@example.org"]
        result = run(app, *args, *extra)
        assert result.exit_code != 0, extra
        assert message in result.output, (extra, result.output)
        assert "Traceback" not in result.output
    assert db.session.scalar(select(func.count(User.id))) == before


def test_users_list_set_roles_deactivate_activate(app, make_user):
    user = make_user(Role.TRAINEE_RADIOGRAPHER, username="radiographer1")
    assert "radiographer1" in run(app, "users", "list").output
    result = run(app, "users", "set-roles", "radiographer1", "--role", "trainer")
    assert result.exit_code == 0, result.output
    assert "radiographer1: trainer" in result.output
    assert run(app, "users", "deactivate", user.email).exit_code == 0
    db.session.expire_all()
    assert not db.session.get(User, user.id).active
    assert run(app, "users", "invite", "radiographer1").exit_code != 0
    assert run(app, "users", "activate", str(user.id)).exit_code == 0
    assert "/auth/invitation/" in run(app, "users", "invite", "radiographer1").output
    missing = run(app, "users", "deactivate", "nobody")
    assert missing.exit_code != 0 and "no user 'nobody'" in missing.output
    bad_role = run(app, "users", "set-roles", "radiographer1", "--role", "king")
    assert bad_role.exit_code != 0 and "unknown role" in bad_role.output


def test_users_set_password(app, client, make_user):
    user = make_user()
    result = app.test_cli_runner().invoke(
        args=["users", "set-password", user.username], input="brand-new-pass\nbrand-new-pass\n")
    assert result.exit_code == 0, result.output
    assert login(client, user.username, "brand-new-pass").status_code == 302
    weak = app.test_cli_runner().invoke(
        args=["users", "set-password", user.username], input="short\nshort\n")
    assert weak.exit_code != 0 and "at least 12 characters" in weak.output


def test_clinics_create_and_list(app):
    result = run(app, "clinics", "create", "--name", "Lagos Clinic", "--city", "Lagos",
                 "--country", "ng")
    assert result.exit_code == 0, result.output
    assert "NG\tLagos\tLagos Clinic" in run(app, "clinics", "list").output
    again = run(app, "clinics", "create", "--name", "Lagos Clinic", "--city", "Lagos",
                "--country", "NG")
    assert again.exit_code != 0 and "already exists" in again.output
    bad = run(app, "clinics", "create", "--name", "X", "--city", "Y", "--country", "Narnia")
    assert bad.exit_code != 0 and "unknown country code" in bad.output
    assert db.session.scalar(select(func.count(Clinic.id))) == 1


def test_demo_seeds_once_and_never_resets(app, client):
    first = run(app, "demo", "--no-serve")
    assert first.exit_code == 0, first.output
    published = int(first.output.split("Case library: ")[1].split()[0])
    assert published >= 20
    passwords = {}
    for role in Role:
        line = next(li for li in first.output.splitlines() if li.strip().startswith(role.label))
        _, username, password = line.rsplit(maxsplit=2)
        passwords[username] = password
    assert len(passwords) == len(Role)
    users_before = db.session.scalar(select(func.count(User.id)))
    clinics_before = db.session.scalar(select(func.count(Clinic.id)))

    second = run(app, "demo", "--no-serve")
    assert second.exit_code == 0, second.output
    assert f"Case library: {published} published cases" in second.output
    from app.cases.models import Case
    from app.quizzes.models import Exercise

    every_exercise = db.session.scalars(select(Exercise).order_by(Exercise.id)).all()
    # Not duplicated by re-runs: the DS-3030 practice set and exam, the image-quality set.
    assert [(e.kind, e.scheme_key) for e in every_exercise] == [
        ("practice", "ds3030"), ("exam", "ds3030"), ("practice", "image_quality")]
    exercises = every_exercise[:2]
    assert "Demo peers: 13 trainees" in first.output and "Demo peers" not in second.output
    # A year of QC records for the programme's nine readers, imported once.
    assert "Demo QC records: 768 live reads" in first.output
    assert "Demo QC records" not in second.output
    from app.certification.models import Programme

    [programme] = db.session.scalars(select(Programme)).all()  # nor is the programme
    assert [(r.exercise_id, r.kind) for r in programme.requirements] == [
        (exercises[0].id, "practice"), (exercises[1].id, "exam"), (exercises[1].id, "renewal")]
    assert programme.eligible_roles == ["trainee_radiologist"]
    for exercise in exercises:
        decisions = [db.session.get(Case, link.case_id).reference_tb_positive
                     for link in exercise.cases]
        assert decisions.count(True) == decisions.count(False)
    for username, password in passwords.items():
        assert f"{username}" in second.output and password in second.output
    assert db.session.scalar(select(func.count(User.id))) == users_before
    assert db.session.scalar(select(func.count(Clinic.id))) == clinics_before

    for username, password in passwords.items():
        response = login(client, username, password)
        assert response.status_code == 302, username
        home = client.get(response.headers["Location"])
        assert home.status_code == 200, username
        assert "<h1>" in home.get_data(as_text=True)
        assert sign_out(client, response.headers["Location"]).status_code == 302

    secrets_file = Path(app.instance_path) / "demo-accounts.txt"
    assert stat.S_IMODE(os.stat(secrets_file).st_mode) == 0o600


def test_console_script_exposes_the_same_commands(tmp_path):
    script = Path(sys.executable).parent / "cxr-academy"
    env = {**os.environ, "CXR_ACADEMY_INSTANCE_PATH": str(tmp_path)}
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, env=env,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    for command in ("demo", "users", "clinics", "db"):
        assert f"  {command}" in result.stdout
    bad = subprocess.run([str(script), "users", "create", "--email", "a@b.org", "--name", "A",
                          "--role", "wizard"], capture_output=True, text=True, env=env,
                         timeout=60, check=False)
    assert bad.returncode != 0
    assert "unknown role 'wizard'" in bad.stderr


def test_quick_start_demo_serves_the_portal_on_127_0_0_1(tmp_path):
    """The README's quick start, minus the install: `cxr-academy demo --port N` on an empty
    instance folder creates the database, prints the accounts and serves the portal."""
    from tests.realservers import free_port

    port = free_port()
    script = Path(sys.executable).parent / "cxr-academy"
    env = {**os.environ, "CXR_ACADEMY_INSTANCE_PATH": str(tmp_path)}
    env.pop("CXR_ACADEMY_SQLALCHEMY_DATABASE_URI", None)
    server = subprocess.Popen([str(script), "demo", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body = _wait_for(f"http://127.0.0.1:{port}/auth/login", server)
        assert "<h1>Sign in</h1>" in body
        assert (tmp_path / "cxr_academy.sqlite3").exists()
        assert "demo-radiologist" in (tmp_path / "demo-accounts.txt").read_text()
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert f"http://localhost:{port}/" in output
    assert "demo-admin" in output


def _wait_for(url: str, server: subprocess.Popen) -> str:
    import time
    import urllib.request

    deadline = time.monotonic() + 240  # a shared CI machine can be several times slower
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (local URL)
                return response.read().decode()
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"demo server did not come up: {server.poll()}") from None
            time.sleep(0.2)


# ---- cases set-status / publish: the status buttons' rules from the command line ---------


def _draft_case(app, seed: int = 1):
    from app.cases.ingest import ImportOptions, Source, import_files
    from app.cases.models import Case
    from tests.dicom_factory import cr_dataset, to_bytes

    data = to_bytes(cr_dataset(seed=seed, rows=64, columns=48))
    summary = import_files([Source("a.dcm", lambda: data)], actor=None, options=ImportOptions())
    return db.session.get(Case, summary.results[0].case_id)


def _status_events(case_id: int):
    from app.audit.models import AuditEvent

    return db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "case.status",
                                 AuditEvent.object_id == str(case_id))
        .order_by(AuditEvent.id)).all()


def test_cases_set_status_follows_the_page_rules_and_is_audited(app, make_user):
    from app.cases.models import Case
    from app.cases.reads import save_read
    from app.cases.services import complete_pixel_review
    from app.schemes.registry import get_scheme

    trainer = make_user(Role.TRAINER)
    case = _draft_case(app)
    case.pixel_review_needed = True
    db.session.commit()

    moved = run(app, "cases", "set-status", str(case.id), "in_review")
    assert moved.exit_code == 0, moved.output
    assert moved.output == f"case {case.id}: draft -> in review\n"

    # Publishing needs what the Publish button needs: a reference read, then a pixel review.
    no_read = run(app, "cases", "publish", str(case.id))
    assert no_read.exit_code == 1
    assert no_read.output == "Error: a case needs a reference read before it is published\n"
    save_read(case, author=trainer, scheme=get_scheme("ds3030"),
              answers={"overall": "normal"})
    not_reviewed = run(app, "cases", "publish", str(case.id))
    assert not_reviewed.exit_code == 1 and "complete the pixel review" in not_reviewed.output
    complete_pixel_review(case, actor=trainer)

    published = run(app, "cases", "publish", str(case.id), "--by", trainer.username)
    assert published.exit_code == 0, published.output
    assert published.output == f"case {case.id}: in review -> published\n"
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == "published"
    assert db.session.get(Case, case.id).published_at is not None

    events = _status_events(case.id)
    assert [(e.detail["before"], e.detail["after"]) for e in events] == [
        ("draft", "in_review"), ("in_review", "published")]
    assert events[0].actor is None and events[0].detail["via"] == "command line"
    assert events[1].actor_id == trainer.id and events[1].detail["via"] == "command line"


def test_cases_set_status_bad_input_is_one_line_and_changes_nothing(app, make_user):
    from app.cases.models import Case

    case = _draft_case(app)
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    former = make_user(Role.TRAINER)
    former.active = False
    db.session.commit()
    cases = [
        (("set-status", "999", "in_review"), "Error: there is no case 999\n"),
        (("set-status", "case-1", "in_review"), "Error: there is no case 'case-1'\n"),
        (("set-status", str(case.id), "lost"),
         "Error: unknown case status 'lost': use one of draft, in_review, published, "
         "retired\n"),
        (("set-status", str(case.id), "retired"),
         "Error: a draft case cannot become retired (it can become: in review)\n"),
        (("set-status", str(case.id), "draft"), f"Error: case {case.id} is already draft\n"),
        (("publish", str(case.id)),
         "Error: a draft case cannot become published (it can become: in review)\n"),
        (("set-status", str(case.id), "in_review", "--by", "nobody"),
         "Error: no user 'nobody'\n"),
        (("set-status", str(case.id), "in_review", "--by", trainee.username),
         f"Error: {trainee.username} may not change case statuses (trainers and "
         "administrators only)\n"),
        (("publish", str(case.id), "--by", former.username),
         f"Error: {former.username} is deactivated\n"),
    ]
    for args, message in cases:
        result = run(app, "cases", *args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output == message, args
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == "draft"
    assert _status_events(case.id) == []


def test_the_demo_links_to_the_port_it_serves_unless_an_address_is_configured():
    from app.config import DefaultConfig
    from app.demo import demo_public_url

    assert demo_public_url(DefaultConfig.PUBLIC_BASE_URL, 8080) == "http://localhost:8080"
    assert demo_public_url(DefaultConfig.PUBLIC_BASE_URL, 5000) == "http://localhost:5000"
    assert demo_public_url("https://cxr.example.org", 8080) == "https://cxr.example.org"
