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

from flask import current_app

# The files of one image; nothing else is ever written into an image folder.
DICOM_FILE = "image.dcm"
THUMBNAIL_FILE = "thumbnail.jpg"
PREVIEW_FILE = "preview.jpg"
FULL_FILE = "full.png"
FILES = (DICOM_FILE, THUMBNAIL_FILE, PREVIEW_FILE, FULL_FILE)


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging_root = root / ".staging"

    def folder(self, key: str) -> Path:
        if not key.isalnum():  # keys are ours (hex); refuse anything path-like
            raise ValueError("invalid storage key")
        return self.root / key[:2] / key

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


class StagedImage:
    def __init__(self, store: ImageStore, key: str) -> None:
        self.store = store
        self.key = key
        self.path = store.staging_root / key

    def write(self, name: str, data: bytes) -> None:
        if name not in FILES:
            raise ValueError("unknown image file")
        (self.path / name).write_bytes(data)

    def commit(self) -> None:
        target = self.store.folder(self.key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, target)


def image_store() -> ImageStore:
    return ImageStore(Path(current_app.config["IMAGE_STORAGE_PATH"]))
