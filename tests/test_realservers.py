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
