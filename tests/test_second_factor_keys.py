"""Authenticator keys at rest: encrypted under keys kept outside the database (ASVS V2.8.2,
V6.2.1, V6.4.1, V6.4.2), so a copy of the database or of a backup makes no codes; the keys
rotate; a key no configured key opens is refused with what to do, never a server error."""

from __future__ import annotations

import stat
import tarfile

import pyotp
import pytest
from flask_migrate import downgrade, upgrade
from freezegun import freeze_time
from sqlalchemy import text

from app import MIGRATIONS_DIR, create_app
from app.auth.roles import Role
from app.extensions import db
from tests.conftest import TOTP_SECRET, base_config
from tests.forms import submit_form
from tests.test_second_factor import T0, TOTP, code_step, enrol_page_secret, password_step

KEY_1 = "first-field-key-0123456789abcdef-0123456789"
KEY_2 = "second-field-key-fedcba9876543210-fedcba98"


def stored_row(user_id: int) -> dict:
    """The row as a copy of the database holds it, read past the models."""
    row = db.session.execute(text("SELECT * FROM user_second_factor WHERE user_id = :u"),
                             {"u": user_id}).mappings().one()
    db.session.commit()
    return dict(row)


def assert_not_in_clear(user_id: int, secret: str) -> None:
    row = stored_row(user_id)
    for value in row.values():
        assert secret not in str(value), row


def signs_in_with_a_code(client, username: str, at) -> int:
    with freeze_time(at):
        password_step(client, username)
        return code_step(client, pyotp.TOTP(TOTP_SECRET).now()).status_code


def test_the_stored_key_is_not_the_base32_secret_and_codes_still_verify(client, make_user):
    trainer = make_user(Role.TRAINER)  # enrolled with TOTP_SECRET
    assert_not_in_clear(trainer.id, TOTP_SECRET)
    assert signs_in_with_a_code(client, trainer.username, T0) == 302

    # Set up through the page: the key shown to the user is not what the database holds,
    # before the code confirms it and after.
    admin = make_user(Role.ADMIN, second_factor=False)
    other = client.application.test_client()
    password_step(other, admin.username)
    secret = enrol_page_secret(other.get("/auth/second-factor").get_data(as_text=True))
    assert_not_in_clear(admin.id, secret)
    done = submit_form(other, "/auth/second-factor", button="Turn on",
                       fields={"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200
    assert_not_in_clear(admin.id, secret)


def test_a_backup_holds_no_key_in_clear(app, make_user, tmp_path):
    for n in range(3):
        make_user(Role.TRAINER, username=f"trainer{n}")
    archive = tmp_path / "portal.tar"
    result = app.test_cli_runner().invoke(args=["backup", str(archive)])
    assert result.exit_code == 0, result.output
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile():
                assert TOTP_SECRET.encode() not in tar.extractfile(member).read(), member.name


def test_a_new_secret_key_keeps_every_second_factor(app, client, make_user):
    trainer = make_user(Role.TRAINER)
    app.config["SECRET_KEY"] = "a-rotated-session-signing-key-0123456789"
    assert signs_in_with_a_code(client, trainer.username, T0) == 302


def test_keys_rotate_new_first_then_the_old_one_is_dropped(app, client, make_user):
    app.config["FIELD_ENCRYPTION_KEYS"] = [KEY_1]
    trainer = make_user(Role.TRAINER)
    under_key_1 = stored_row(trainer.id)["encrypted_secret"]

    # A new key first: the old one still decrypts.
    app.config["FIELD_ENCRYPTION_KEYS"] = [KEY_2, KEY_1]
    assert signs_in_with_a_code(client, trainer.username, T0) == 302
    result = app.test_cli_runner().invoke(args=["users", "encrypt-2fa-keys"])
    assert result.exit_code == 0, result.output
    assert "Encrypted 1 second factor(s) under the current key; 0 already were." in result.output
    under_key_2 = stored_row(trainer.id)["encrypted_secret"]
    assert under_key_2 != under_key_1
    again = app.test_cli_runner().invoke(args=["users", "encrypt-2fa-keys"])
    assert "Encrypted 0 second factor(s) under the current key; 1 already were." in again.output

    # The old key dropped: everything was re-encrypted, so nothing is lost.
    app.config["FIELD_ENCRYPTION_KEYS"] = [KEY_2]
    fresh = client.application.test_client()
    assert signs_in_with_a_code(fresh, trainer.username, T0.replace(minute=5)) == 302
    assert_not_in_clear(trainer.id, TOTP_SECRET)


def test_a_key_no_configured_key_opens_is_refused_with_what_to_do(app, client, make_user):
    from app.auth.second_factor import new_recovery_codes

    app.config["FIELD_ENCRYPTION_KEYS"] = [KEY_1]
    trainer = make_user(Role.TRAINER)
    [recovery, *_] = new_recovery_codes(trainer)
    db.session.commit()
    app.config["FIELD_ENCRYPTION_KEYS"] = [KEY_2]  # the portal lost KEY_1

    with freeze_time(T0):
        password_step(client, trainer.username)
        refused = code_step(client, TOTP.now())
        assert refused.status_code == 409
        page = refused.get_data(as_text=True)
        assert "Ask your administrator to reset your second factor" in page
        assert 'role="alert"' in page
        # Not signed in; a recovery code needs no key and still works.
        assert client.get("/cases/").status_code == 302
        assert code_step(client, recovery).status_code == 302
        security = client.get("/account/security").get_data(as_text=True)
        assert 'data-testid="second-factor-unreadable"' in security

    # The command line names the account it cannot re-encrypt.
    result = app.test_cli_runner().invoke(args=["users", "encrypt-2fa-keys"])
    assert result.exit_code == 1 and trainer.username in result.output
    assert "reset-2fa" in result.output and "Traceback" not in result.output

    # An administrator's reset lets the user set up a new one under the current key.
    reset = app.test_cli_runner().invoke(args=["users", "reset-2fa", trainer.username])
    assert reset.exit_code == 0, reset.output
    fresh = client.application.test_client()
    password_step(fresh, trainer.username)
    assert "Turn on" in fresh.get("/auth/second-factor").get_data(as_text=True)


def test_an_unconfirmed_key_under_a_lost_key_is_simply_replaced(app, client, make_user):
    app.config["FIELD_ENCRYPTION_KEYS"] = [KEY_1]
    admin = make_user(Role.ADMIN, second_factor=False)
    password_step(client, admin.username)
    first = enrol_page_secret(client.get("/auth/second-factor").get_data(as_text=True))
    app.config["FIELD_ENCRYPTION_KEYS"] = [KEY_2]
    page = client.get("/auth/second-factor")
    assert page.status_code == 200
    second = enrol_page_secret(page.get_data(as_text=True))
    assert second != first
    done = submit_form(client, "/auth/second-factor", button="Turn on",
                       fields={"code": pyotp.TOTP(second).now()})
    assert done.status_code == 200


def test_a_key_left_in_clear_by_an_offline_migration_is_encrypted_at_first_use(
        client, make_user):
    trainer = make_user(Role.TRAINER)
    db.session.execute(text("UPDATE user_second_factor SET encrypted_secret = :s "
                            "WHERE user_id = :u"), {"s": TOTP_SECRET, "u": trainer.id})
    db.session.commit()
    assert signs_in_with_a_code(client, trainer.username, T0) == 302
    assert_not_in_clear(trainer.id, TOTP_SECRET)


def test_the_command_encrypts_keys_left_in_clear(app, make_user):
    users = [make_user(Role.TRAINER) for _ in range(2)]
    for user in users:
        db.session.execute(text("UPDATE user_second_factor SET encrypted_secret = :s "
                                "WHERE user_id = :u"), {"s": TOTP_SECRET, "u": user.id})
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["users", "encrypt-2fa-keys"])
    assert result.exit_code == 0, result.output
    assert "Encrypted 2 second factor(s)" in result.output
    for user in users:
        assert_not_in_clear(user.id, TOTP_SECRET)


def test_the_migration_encrypts_existing_keys_and_the_downgrade_decrypts_them(
        app, client, make_user, capfd):
    trainer = make_user(Role.TRAINER)
    user_id, username = trainer.id, trainer.username
    db.session.remove()
    try:
        _migrate_down_and_up(app, client, capfd, user_id, username)
    finally:  # later tests share this database: leave it at the head whatever happened
        db.session.remove()
        upgrade(directory=str(MIGRATIONS_DIR))


# The revision just before the one that encrypts the keys.
BEFORE_ENCRYPTION = "a3c5e7f9b1d2"


def _migrate_down_and_up(app, client, capfd, user_id: int, username: str) -> None:
    downgrade(directory=str(MIGRATIONS_DIR), revision=BEFORE_ENCRYPTION)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT secret FROM user_second_factor")).scalar() == (
            TOTP_SECRET)
    upgrade(directory=str(MIGRATIONS_DIR))
    assert_not_in_clear(user_id, TOTP_SECRET)
    assert signs_in_with_a_code(client, username, T0) == 302

    # A key the portal cannot decrypt stops the downgrade, naming the user.
    app.config["FIELD_ENCRYPTION_KEYS"] = [KEY_2]
    db.session.remove()
    downgrade(directory=str(MIGRATIONS_DIR), revision="a3f7c9e1d2b4")  # later steps first
    db.session.remove()
    with pytest.raises(SystemExit):
        downgrade(directory=str(MIGRATIONS_DIR), revision=BEFORE_ENCRYPTION)
    assert f"the second factor of user {user_id} cannot be decrypted" in capfd.readouterr().err
    db.session.remove()
    assert db.session.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
        "a3f7c9e1d2b4")  # nothing changed
    assert stored_row(user_id)["encrypted_secret"] != TOTP_SECRET


def test_the_key_lives_in_the_instance_folder_owner_only(tmp_path):
    config = {**base_config("sqlite://", tmp_path / "instance"), "FIELD_ENCRYPTION_KEYS": None}
    app = create_app(config)
    key_file = tmp_path / "instance" / "field_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert app.config["FIELD_ENCRYPTION_KEYS"] == [key_file.read_text().strip()]
    assert create_app(config).config["FIELD_ENCRYPTION_KEYS"] == app.config[
        "FIELD_ENCRYPTION_KEYS"]  # generated once
    assert app.config["FIELD_ENCRYPTION_KEYS"][0] != app.config["SECRET_KEY"]


@pytest.mark.parametrize(("value", "problem"), [
    (["too-short"], "key 1 is shorter than 32 characters"),
    ([KEY_1, "short"], "key 2 is shorter than 32 characters"),
    ([], "FIELD_ENCRYPTION_KEYS"),
    (" , ", "holds no key"),
    (42, "must be a list"),
])
def test_unusable_keys_stop_the_portal_from_starting_with_a_reason(tmp_path, value, problem):
    from app.field_encryption import FieldKeyError

    config = {**base_config("sqlite://", tmp_path / "instance"), "FIELD_ENCRYPTION_KEYS": value}
    if value == []:  # empty means "not set": the instance key file is used
        assert create_app(config).config["FIELD_ENCRYPTION_KEYS"]
        return
    with pytest.raises(FieldKeyError, match=problem):
        create_app(config)


def test_keys_from_an_environment_variable_are_a_list(tmp_path, monkeypatch):
    config = base_config("sqlite://", tmp_path / "i")
    del config["FIELD_ENCRYPTION_KEYS"]
    for value in (f'["{KEY_2}", "{KEY_1}"]', f"{KEY_2},{KEY_1}"):  # JSON, or separated
        monkeypatch.setenv("CXR_ACADEMY_FIELD_ENCRYPTION_KEYS", value)
        assert create_app(config).config["FIELD_ENCRYPTION_KEYS"] == [KEY_2, KEY_1]


# The warning reads the restored rows: SQLite alone.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_restore_without_the_field_key_says_which_second_factors_are_lost(
        app, make_user, tmp_path):
    make_user(Role.TRAINER, username="trainer1")
    archive = tmp_path / "portal.tar"
    assert app.test_cli_runner().invoke(args=["backup", str(archive)]).exit_code == 0
    for name, keys, warned in (("same", app.config["FIELD_ENCRYPTION_KEYS"], False),
                               ("other", [KEY_2], True)):
        target = create_app({**base_config(f"sqlite:///{tmp_path / name}.sqlite3",
                                           tmp_path / name), "FIELD_ENCRYPTION_KEYS": keys})
        with target.app_context():
            result = target.test_cli_runner().invoke(args=["restore", str(archive)])
            db.engine.dispose()
        assert result.exit_code == 0, result.output
        assert ("1 second factor(s) cannot be read" in result.output) is warned, result.output
        assert ("instance/field_key" in result.output) is warned


def test_the_cipher_authenticates_and_rotates():
    from app.field_encryption import (
        UndecryptableField,
        decrypt,
        encrypt,
        is_first_key,
        reencrypt,
    )

    token = encrypt([KEY_1], TOTP_SECRET)
    assert token != encrypt([KEY_1], TOTP_SECRET)  # a fresh IV each time
    assert decrypt([KEY_2, KEY_1], token) == TOTP_SECRET
    assert not is_first_key([KEY_2, KEY_1], token)
    rotated = reencrypt([KEY_2, KEY_1], token)
    assert is_first_key([KEY_2], rotated) and decrypt([KEY_2], rotated) == TOTP_SECRET
    tampered = token[:-8] + ("A" if token[-8] != "A" else "B") + token[-7:]
    for bad, keys in ((tampered, [KEY_1]), (token, [KEY_2]), ("not a token", [KEY_1]),
                      ("ünicode", [KEY_1])):
        with pytest.raises(UndecryptableField):
            decrypt(keys, bad)
        with pytest.raises(UndecryptableField):
            reencrypt(keys, bad)
