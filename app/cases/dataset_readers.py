"""Public TB chest X-ray collections a user has downloaded, read into import entries.

Layouts:
  nlm     NLM Shenzhen / Montgomery: ``CXR_png/*.png`` (or PNGs anywhere below the folder)
          and ``ClinicalReadings/<image stem>.txt``. The file name ends ``_1`` for TB
          manifestation and ``_0`` for normal (NLM convention); the reading gives sex and
          age and its text becomes the teaching note.
  tbx11k  TBX11K: ``imgs/{health,sick,tb}/*.png`` and ``annotations/xml/<stem>.xml``
          (Pascal VOC boxes in the original image's pixels, scaled here to the PNG).

Pure parsing (no Flask): the PNG pixels are decoded later, in the import sandbox.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from defusedxml import ElementTree

FORMATS = ("nlm", "tbx11k")
MAX_READING_BYTES = 64 * 1024


class DatasetError(ValueError):
    """The folder does not have the layout of the named collection."""


@dataclass(frozen=True)
class Box:
    label: str  # the collection's class name
    x: float
    y: float
    width: float
    height: float


@dataclass
class DatasetEntry:
    name: str  # the image file name (public collection ids, no patient data)
    image: Path
    label: str  # "tb", "normal" or "sick" (abnormal, not TB)
    sex: str | None = None
    age_years: int | None = None
    reading: str = ""
    boxes: list[Box] = field(default_factory=list)
    # Size the boxes refer to; the import scales them to the PNG's own size.
    box_space: tuple[int, int] | None = None


def read_dataset(fmt: str, root: Path) -> Iterator[DatasetEntry | tuple[str, str]]:
    """Entries, or (name, reason) for an image that cannot be used."""
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    yield from (_nlm(root) if fmt == "nlm" else _tbx11k(root))


# ---- NLM Shenzhen / Montgomery -------------------------------------------------------------

_NLM_NAME = re.compile(r"^(CHNCXR|MCUCXR)_\d{4}_([01])\.png$", re.IGNORECASE)
_SHENZHEN_HEAD = re.compile(r"^\s*(male|female)\s*,?\s*(\d{1,3})\s*(yrs?|years?|y)?", re.I)
_MONTGOMERY_SEX = re.compile(r"Patient's Sex:\s*([MF])", re.I)
_MONTGOMERY_AGE = re.compile(r"Patient's Age:\s*0*(\d{1,3})\s*Y", re.I)


def _nlm(root: Path) -> Iterator[DatasetEntry | tuple[str, str]]:
    readings = {p.stem.lower(): p for p in root.rglob("*.txt")}
    images = sorted(p for p in root.rglob("*.png") if not p.is_symlink())
    if not images:
        raise DatasetError("no PNG images found: expected the NLM layout (CXR_png/*.png)")
    for image in images:
        match = _NLM_NAME.match(image.name)
        if match is None:
            yield image.name, "not an NLM file name (CHNCXR_nnnn_0/1.png or MCUCXR_nnnn_0/1.png)"
            continue
        entry = DatasetEntry(image.name, image, "tb" if match.group(2) == "1" else "normal")
        reading_file = readings.get(image.stem.lower())
        if reading_file is not None:
            _apply_reading(entry, reading_file.read_bytes()[:MAX_READING_BYTES].decode(
                "utf-8", errors="replace"))
        yield entry


def _apply_reading(entry: DatasetEntry, text: str) -> None:
    text = text.replace("\r", "").strip()
    head = _SHENZHEN_HEAD.match(text)
    if head:  # Shenzhen: "male 35yrs" then the reading
        entry.sex = "M" if head.group(1).lower() == "male" else "F"
        entry.age_years = int(head.group(2))
        entry.reading = text[head.end():].strip()
        return
    sex, age = _MONTGOMERY_SEX.search(text), _MONTGOMERY_AGE.search(text)
    entry.sex = sex.group(1).upper() if sex else None
    entry.age_years = int(age.group(1)) if age else None
    lines = [ln for ln in text.splitlines() if not ln.lower().startswith("patient's")]
    entry.reading = "\n".join(lines).strip()


# ---- TBX11K --------------------------------------------------------------------------------

_TBX_FOLDERS = {"health": "normal", "sick": "sick", "tb": "tb"}


def _tbx11k(root: Path) -> Iterator[DatasetEntry | tuple[str, str]]:
    imgs = root / "imgs"
    if not imgs.is_dir():
        raise DatasetError("no imgs/ folder: expected the TBX11K layout (imgs/tb, imgs/health)")
    xml_files = {p.stem: p for p in root.rglob("*.xml")}
    found = False
    for folder, label in _TBX_FOLDERS.items():
        for image in sorted((imgs / folder).glob("*.png")) if (imgs / folder).is_dir() else []:
            found = True
            entry = DatasetEntry(image.name, image, label)
            xml = xml_files.get(image.stem)
            if xml is not None:
                try:
                    entry.boxes, entry.box_space = _voc_boxes(xml.read_bytes())
                except DatasetError as exc:
                    yield image.name, str(exc)
                    continue
            elif label == "tb":
                yield image.name, "a TB image without its annotations/xml file"
                continue
            yield entry
    if not found:
        raise DatasetError("no PNG images under imgs/health, imgs/sick or imgs/tb")


def _voc_boxes(data: bytes) -> tuple[list[Box], tuple[int, int]]:
    try:
        tree = ElementTree.fromstring(data)
        width = int(tree.findtext("size/width"))
        height = int(tree.findtext("size/height"))
        boxes = []
        for obj in tree.iter("object"):
            box = obj.find("bndbox")
            x0, y0 = float(box.findtext("xmin")), float(box.findtext("ymin"))
            x1, y1 = float(box.findtext("xmax")), float(box.findtext("ymax"))
            if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                raise DatasetError("an annotation box lies outside its image")
            boxes.append(Box(obj.findtext("name") or "", x0, y0, x1 - x0, y1 - y0))
    except DatasetError:
        raise
    except Exception as exc:  # malformed or hostile XML, missing fields
        raise DatasetError(f"the annotation XML could not be read ({type(exc).__name__})") from None
    return boxes, (width, height)
