"""The backup file: one uncompressed .tar holding the database snapshot, the image store's
files and ``manifest.json`` (format, portal version, Alembic revision, database kind,
creation time and a SHA-256 checksum per file).

A single file is easy to move and to keep; uncompressed because the images are already
JPEG/PNG and a compressor would only cost time. The file is written owner-only (0600) under a
temporary name and renamed into place when complete: backups hold password hashes and the
audit log, and a half-written one never looks like a backup.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from app.cases.storage import FILES
from app.user_errors import UserError

FORMAT = "cxr-academy-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE_DIR = "database"
IMAGES_DIR = "images"
CHUNK = 1024 * 1024

# images/<first two characters of the key>/<key>/<file>: the image store's own layout.
_IMAGE_MEMBER = re.compile(r"images/([0-9a-zA-Z]{2})/([0-9a-zA-Z]+)/([a-z0-9.]+)")


class BackupError(UserError):
    """A backup or restore refused or failed, with the reason for the operator."""


def image_member(key: str, name: str) -> str:
    return f"{IMAGES_DIR}/{key[:2]}/{key}/{name}"


def parse_image_member(name: str) -> tuple[str, str] | None:
    """(key, file name) of an image member, or None when the name is not one."""
    match = _IMAGE_MEMBER.fullmatch(name)
    if not match or match.group(2)[:2] != match.group(1) or match.group(3) not in FILES:
        return None
    return match.group(2), match.group(3)


class _HashingReader(io.RawIOBase):
    """Reads through a file, hashing what passes, so each file is read once when archived."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data


class ArchiveWriter:
    """Builds the backup under a temporary name beside ``path``; ``finish`` renames it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._tar = tarfile.open(  # noqa: SIM115  (closed by finish or abort)
            fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)
        self.files: dict[str, dict[str, Any]] = {}

    def add_file(self, name: str, source: Path) -> None:
        with source.open("rb") as fh:
            stat = os.fstat(fh.fileno())  # of the file opened: a rename cannot swap it
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), 0o600
            reader = _HashingReader(fh)
            self._tar.addfile(info, reader)
        self.files[name] = {"sha256": reader.digest.hexdigest(), "size": info.size}

    def finish(self, manifest: dict[str, Any]) -> None:
        data = json.dumps({**manifest, "files": self.files}, indent=2, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = len(data), 0o600, int(manifest["created_at_epoch"])
        self._tar.addfile(info, io.BytesIO(data))
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        with contextlib.suppress(OSError, tarfile.TarError):
            self._tar.close()
        self._file.close()
        self.partial.unlink(missing_ok=True)


@dataclass
class Unpacked:
    """A backup extracted into a private folder and checked against its manifest."""

    root: Path
    manifest: dict[str, Any]
    database_member: str = ""
    images: dict[str, list[str]] = field(default_factory=dict)  # key -> file names

    def path(self, member: str) -> Path:
        return self.root / member


def _safe_name(name: str) -> str | None:
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(p in ("", ".", "..") for p in path.parts):
        return None
    return str(path)


def unpack(archive: Path, into: Path, database_members: dict[str, str]) -> Unpacked:
    """Extract ``archive`` into the empty folder ``into`` and verify every file against the
    manifest (size and SHA-256); refuse, naming the file, on any difference."""
    if not archive.exists():
        raise BackupError(f"{archive}: no such backup file")
    if not archive.is_file():
        raise BackupError(f"{archive} is not a file (a backup is a single .tar file)")
    digests: dict[str, tuple[str, int]] = {}
    try:
        with tarfile.open(archive, mode="r:") as tar:
            for member in tar:
                name = _safe_name(member.name)
                if name is None or not member.isfile():
                    raise BackupError(f"{archive} holds an unexpected entry {member.name!r} "
                                      "(not a backup made by this portal)")
                if name in digests:
                    raise BackupError(f"{archive} holds {name} twice")
                target = into / name
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                digest, size = hashlib.sha256(), 0
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                digests[name] = (digest.hexdigest(), size)
    except (tarfile.TarError, EOFError) as exc:
        raise BackupError(f"{archive} is not a readable backup (damaged or not a .tar "
                          f"file: {exc})") from None
    return _check_manifest(archive, into, digests, database_members)


def _check_manifest(archive: Path, into: Path, digests: dict[str, tuple[str, int]],
                    database_members: dict[str, str]) -> Unpacked:
    if MANIFEST not in digests:
        raise BackupError(f"{archive} has no {MANIFEST} (not a backup made by this portal, "
                          "or cut short)")
    try:
        manifest = json.loads((into / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        assert isinstance(files, dict)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise BackupError(f"{archive}: {MANIFEST} is not a readable manifest") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{archive} is not a CXR Academy backup")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"{archive} is in backup format {manifest.get('format_version')!r}; "
                          f"this portal reads format {FORMAT_VERSION}")
    unpacked = Unpacked(into, manifest)
    for name in sorted(set(digests) - {MANIFEST} - set(files)):
        raise BackupError(f"{archive}: {name} is not listed in the manifest")
    for name, expected in sorted(files.items()):
        if name not in digests:
            raise BackupError(f"{archive}: {name} is listed in the manifest but missing")
        sha256, size = digests[name]
        if not isinstance(expected, dict) or expected.get("size") != size:
            raise BackupError(f"{archive}: {name} does not match the manifest (size differs)")
        if expected.get("sha256") != sha256:
            raise BackupError(f"{archive}: {name} does not match the manifest "
                              "(SHA-256 checksum differs)")
        if (image := parse_image_member(name)) is not None:
            unpacked.images.setdefault(image[0], []).append(image[1])
        elif name == database_members.get(str(manifest.get("database"))):
            unpacked.database_member = name
        else:
            raise BackupError(f"{archive}: unexpected file {name}")
    if not unpacked.database_member:
        raise BackupError(f"{archive} holds no database snapshot")
    return unpacked
