"""Configuration layers, the generated secret key and a side-effect-free factory."""

from __future__ import annotations

import os
import stat

import pytest

from app import create_app
from app.config import normalise_database_url


def test_defaults_use_sqlite_in_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("CXR_ACADEMY_SQLALCHEMY_DATABASE_URI", raising=False)
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/cxr_academy.sqlite3"
    assert app.instance_path == str(tmp_path)


def test_factory_has_no_side_effects_beyond_the_secret_keys(tmp_path):
    create_app({"INSTANCE_PATH": str(tmp_path)})
    # No database, no image folder: only the generated keys.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deid_secret", "field_key",
                                                          "secret_key"]
    create_app({"INSTANCE_PATH": str(tmp_path / "other"), "SECRET_KEY": "given",
                "DEID_SECRET": "given too",
                "FIELD_ENCRYPTION_KEYS": ["given as well, and 32 characters long"]})
    assert not (tmp_path / "other").exists()


def test_secret_key_is_generated_once_and_private(tmp_path):
    first = create_app({"INSTANCE_PATH": str(tmp_path)}).config["SECRET_KEY"]
    second = create_app({"INSTANCE_PATH": str(tmp_path)}).config["SECRET_KEY"]
    assert first == second
    assert len(first) >= 64
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    other = create_app({"INSTANCE_PATH": str(tmp_path / "elsewhere")}).config["SECRET_KEY"]
    assert other != first


def test_instance_config_file_and_environment_override_defaults(tmp_path, monkeypatch):
    (tmp_path / "config.py").write_text(
        'PASSWORD_MIN_LENGTH = 14\nSQLALCHEMY_DATABASE_URI = "sqlite:///from-file.db"\n'
    )
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["PASSWORD_MIN_LENGTH"] == 14
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///from-file.db"

    monkeypatch.setenv("CXR_ACADEMY_PASSWORD_MIN_LENGTH", "16")
    monkeypatch.setenv("CXR_ACADEMY_SQLALCHEMY_DATABASE_URI", "postgresql://u@db.example/cxr")
    app = create_app({"INSTANCE_PATH": str(tmp_path)})
    assert app.config["PASSWORD_MIN_LENGTH"] == 16
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db.example/cxr"

    app = create_app({"INSTANCE_PATH": str(tmp_path), "PASSWORD_MIN_LENGTH": 20})
    assert app.config["PASSWORD_MIN_LENGTH"] == 20


def test_postgres_urls_use_psycopg3():
    assert normalise_database_url("postgres://a@h/d") == "postgresql+psycopg://a@h/d"
    assert normalise_database_url("postgresql://a@h/d") == "postgresql+psycopg://a@h/d"
    assert normalise_database_url("postgresql+psycopg://a@h/d") == "postgresql+psycopg://a@h/d"
    assert normalise_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_production_cookie_and_proxy_settings(tmp_path):
    app = create_app({"INSTANCE_PATH": str(tmp_path), "SESSION_COOKIE_SECURE": True,
                      "TRUSTED_PROXY_COUNT": 1, "SECRET_KEY": "k"})
    client = app.test_client()
    response = client.get("/auth/login")
    assert "Secure" in response.headers["Set-Cookie"]
    forwarded = client.get("/auth/login", headers={"X-Forwarded-Proto": "https"})
    assert "max-age" in forwarded.headers["Strict-Transport-Security"]


@pytest.mark.postgres
def test_postgresql_connections_run_without_jit(postgres_base_url, tmp_path):
    from sqlalchemy import text

    from app.extensions import db
    from tests.conftest import base_config
    from tests.realservers import create_database

    url = create_database(postgres_base_url, "cxr_jit")
    for setting, expected in ((False, "off"), (True, "on")):
        app = create_app({**base_config(url, tmp_path / "instance"), "POSTGRES_JIT": setting})
        with app.app_context():
            assert db.session.scalar(text("SHOW jit")) == expected
            db.session.remove()
            db.engine.dispose()


@pytest.mark.parametrize("value", ["cxr.example.org", "ftp://cxr.example.org", "https://",
                                   "https://cxr.example.org/?next=x", "javascript:alert(1)"])
def test_public_base_url_must_be_an_http_address(tmp_path, value):
    with pytest.raises(ValueError, match="PUBLIC_BASE_URL must be the portal's public"):
        create_app({"INSTANCE_PATH": str(tmp_path), "PUBLIC_BASE_URL": value})


def test_public_base_url_keeps_its_path_without_the_trailing_slash(tmp_path):
    app = create_app({"INSTANCE_PATH": str(tmp_path),
                      "PUBLIC_BASE_URL": " https://cxr.example.org/academy/ "})
    assert app.config["PUBLIC_BASE_URL"] == "https://cxr.example.org/academy"
