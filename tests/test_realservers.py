"""Missing real components skip locally and fail under CXR_ACADEMY_REQUIRE_ALL=1."""

from __future__ import annotations

import pytest

from tests import realservers


def test_missing_component_skips_by_default(monkeypatch):
    monkeypatch.setattr(realservers, "REQUIRE_ALL", False)
    with pytest.raises(pytest.skip.Exception, match="no chromium here"):
        realservers.missing("no chromium here")


def test_missing_component_fails_when_all_are_required(monkeypatch):
    monkeypatch.setattr(realservers, "REQUIRE_ALL", True)
    with pytest.raises(pytest.fail.Exception, match="CXR_ACADEMY_REQUIRE_ALL=1"):
        realservers.missing("no chromium here")


def test_postgres_binaries_are_found_in_debian_layout(monkeypatch, tmp_path):
    bindir = tmp_path / "usr/lib/postgresql/15/bin"
    bindir.mkdir(parents=True)
    (bindir / "pg_ctl").touch()
    monkeypatch.setattr(realservers.shutil, "which", lambda name: None)
    monkeypatch.setattr(realservers.glob, "glob", lambda pattern: [str(bindir / "pg_ctl")])
    assert realservers.pg_bindir() == bindir


@pytest.mark.parametrize("require_all", [False, True])
def test_a_missing_redis_server_skips_or_fails(monkeypatch, tmp_path, require_all):
    monkeypatch.setattr(realservers, "REQUIRE_ALL", require_all)
    monkeypatch.setattr(realservers, "REDIS_SERVER", str(tmp_path / "no-redis-server"))
    expected = pytest.fail.Exception if require_all else pytest.skip.Exception
    with pytest.raises(expected, match="redis-server not found"), realservers.redis_server():
        pass


@pytest.mark.parametrize("require_all", [False, True])
def test_a_missing_gunicorn_skips_or_fails(monkeypatch, require_all):
    import sys

    monkeypatch.setattr(realservers, "REQUIRE_ALL", require_all)
    monkeypatch.setitem(sys.modules, "gunicorn", None)  # import gunicorn raises ImportError
    expected = pytest.fail.Exception if require_all else pytest.skip.Exception
    with pytest.raises(expected, match="gunicorn is not installed"):
        realservers.gunicorn_command("127.0.0.1:1", "app.wsgi:create_server_app()")
