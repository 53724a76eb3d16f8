"""Image storage on a local (or shared, mounted) filesystem.

Each image gets a random key and a folder holding its de-identified DICOM and derivatives.
Folders are assembled in a staging area on the same filesystem and moved into place in one
rename, so a failed import never leaves a half-written image behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

# The files of one image; nothing else is ever written into an image folder.
DICOM_FILE = "image.dcm"
THUMBNAIL_FILE = "thumbnail.jpg"
PREVIEW_FILE = "preview.jpg"
DISPLAY_FILE = "display.jpg"  # full resolution, default display
APPROX_FILE = "approx16.j2c"  # 16-bit, lossy HTJ2K codestream
EXACT_FILE = "exact16.jls"  # 16-bit, lossless JPEG-LS
# The exact data of images stored before JPEG-LS (lossless HTJ2K codestream), served until
# `cases rebuild-derivatives` replaces it.
LEGACY_EXACT_FILE = "exact16.j2c"
# The 16-bit PNG of images stored before HTJ2K; `cases rebuild-derivatives` replaces it.
LEGACY_FULL_FILE = "full.png"
# What an image stored or rebuilt today has; backups and restores also carry legacy files.
CURRENT_FILES = (DICOM_FILE, THUMBNAIL_FILE, PREVIEW_FILE, DISPLAY_FILE, APPROX_FILE,
                 EXACT_FILE)
LEGACY_FILES = (LEGACY_EXACT_FILE, LEGACY_FULL_FILE)
FILES = (*CURRENT_FILES, *LEGACY_FILES)


class DerivativeBytes(Protocol):
    """What make_derivatives produces (and ingest's ProcessedImage carries)."""

    @property
    def thumbnail_jpeg(self) -> bytes: ...
    @property
    def preview_jpeg(self) -> bytes: ...
    @property
    def display_jpeg(self) -> bytes: ...
    @property
    def approx_htj2k(self) -> bytes: ...
    @property
    def exact16(self) -> bytes: ...


def derivative_files(derived: DerivativeBytes) -> dict[str, bytes]:
    """The derivative files of one image by file name: one list for ingest, redaction and
    rebuilds, so none of them forgets a file."""
    return {
        THUMBNAIL_FILE: derived.thumbnail_jpeg,
        PREVIEW_FILE: derived.preview_jpeg,
        DISPLAY_FILE: derived.display_jpeg,
        APPROX_FILE: derived.approx_htj2k,
        EXACT_FILE: derived.exact16,
    }


def derivative_sizes(derived: DerivativeBytes) -> dict[str, int]:
    """Bytes per derivative as CaseImage.sizes keeps them; "exact" says the viewer may ask
    for the HTJ2K and exact files (images without it have the legacy PNG as "full")."""
    return {
        "thumbnail": len(derived.thumbnail_jpeg),
        "preview": len(derived.preview_jpeg),
        "display": len(derived.display_jpeg),
        "approx": len(derived.approx_htj2k),
        "exact": len(derived.exact16),
    }


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging_root = root / ".staging"

    def folder(self, key: str) -> Path:
        if not key.isalnum():  # keys are ours (hex); refuse anything path-like
            raise ValueError("invalid storage key")
        return self.root / key[:2] / key

    def new_stage(self) -> StagedImage:
        """A staging folder for a new image that outlives one call: the import hands it to
        the sandboxed child that writes the files, and commits or discards it later."""
        self.staging_root.mkdir(parents=True, exist_ok=True)
        staged = StagedImage(self, secrets.token_hex(16))
        staged.path.mkdir(mode=0o700)
        return staged

    @contextmanager
    def stage(self) -> Iterator[StagedImage]:
        """A staging folder for a new image; removed unless ``commit`` moved it into place."""
        self.staging_root.mkdir(parents=True, exist_ok=True)
        staged = StagedImage(self, secrets.token_hex(16))
        staged.path.mkdir(mode=0o700)
        try:
            yield staged
        finally:
            shutil.rmtree(staged.path, ignore_errors=True)

    def read(self, key: str, name: str) -> bytes:
        if name not in FILES:
            raise ValueError("unknown image file")
        return (self.folder(key) / name).read_bytes()

    def path(self, key: str, name: str) -> Path:
        if name not in FILES:
            raise ValueError("unknown image file")
        return self.folder(key) / name

    def replace(self, key: str, files: dict[str, bytes]) -> None:
        """Overwrite some files of an existing image, each in one atomic rename."""
        folder = self.folder(key)
        for name, data in files.items():
            if name not in FILES:
                raise ValueError("unknown image file")
            tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, folder / name)

    def remove(self, key: str, name: str) -> None:
        """Remove one file of an existing image, if it is there."""
        self.path(key, name).unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        shutil.rmtree(self.folder(key), ignore_errors=True)

    def keys(self) -> list[str]:
        """Every stored image key (for consistency checks and tests)."""
        if not self.root.exists():
            return []
        return sorted(
            p.name
            for shard in self.root.iterdir()
            if shard.is_dir() and shard.name != ".staging"
            for p in shard.iterdir()
            if p.is_dir()
        )


def write_image_file(folder: Path, name: str, data: bytes) -> None:
    """One file of a staged image (the sandboxed child writes them where the import says)."""
    if name not in FILES:
        raise ValueError("unknown image file")
    (folder / name).write_bytes(data)


class StagedImage:
    def __init__(self, store: ImageStore, key: str) -> None:
        self.store = store
        self.key = key
        self.path = store.staging_root / key

    def write(self, name: str, data: bytes) -> None:
        write_image_file(self.path, name, data)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def commit(self) -> None:
        target = self.store.folder(self.key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, target)


def image_store() -> ImageStore:
    # Flask is imported here: the sandbox's children use this module's file names and
    # write_image_file without loading the web application.
    from flask import current_app

    return ImageStore(Path(current_app.config["IMAGE_STORAGE_PATH"]))
