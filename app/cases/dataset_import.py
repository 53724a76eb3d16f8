"""``flask --app app cases import-dataset``: public TB collections through the normal ingest.

Each PNG becomes a DICOM Secondary Capture image (converted inside the import sandbox, since
the PNG is untrusted too), then takes the same path as an uploaded DICOM file. The
collection's label becomes an imported reference read in the TB screening scheme, its boxes
become lesion marks and its reading text the teaching note. Cases stay drafts until a trainer
has reviewed and published them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from app.cases.dataset_readers import DatasetEntry, read_dataset
from app.cases.dicom_build import dataset_bytes, dx_dataset, png_to_pixels
from app.cases.ingest import FileResult, ImportOptions, ImportSummary, Source, import_files
from app.cases.models import Case
from app.cases.reads import save_read
from app.cases.sandbox import Rejected, run_limited, too_large
from app.extensions import db
from app.schemes.parts import Scheme
from app.schemes.registry import get_scheme

SCHEME = "tb_screening"
SOURCES = {"nlm": "NLM TB chest X-ray sets", "tbx11k": "TBX11K"}
LICENCES = {
    "nlm": "National Library of Medicine (NIH) TB chest X-ray sets (Jaeger et al. 2014). "
           "Research use; do not redistribute outside your organisation without NLM's "
           "agreement; attribute the source.",
    "tbx11k": "TBX11K (Liu et al., CVPR 2020). Terms stated with the release: "
              "CC BY-NC-SA 2.0 (non-commercial); cite the paper.",
}
CLASSIFICATION = {"tb": "abnormal_tb", "normal": "normal", "sick": "abnormal_not_tb"}
LIKELIHOOD = {"tb": 5, "normal": 1, "sick": 2}


@dataclass(frozen=True)
class PngMeta:
    sex: str | None
    age_years: int | None


def png_to_dicom(data: bytes, meta: PngMeta) -> bytes:
    """Runs in the sandbox: decode the PNG (size checked from its header first) and wrap the
    pixels, unchanged, in a Secondary Capture DICOM file."""
    try:
        pixel_array, bits = png_to_pixels(data)
        ds = dx_dataset(pixel_array, bits_stored=bits, sex=meta.sex, age_years=meta.age_years,
                        secondary_capture=True)
    except ValueError as exc:
        raise Rejected(str(exc)) from None
    return dataset_bytes(ds)


def _source(entry: DatasetEntry) -> Source:
    cfg = current_app.config
    limit = int(cfg["INGEST_FILE_MAX_BYTES"])

    def read() -> bytes:
        data = entry.image.read_bytes() if entry.image.stat().st_size <= limit else None
        if data is None:
            raise Rejected(too_large(limit))
        age = entry.age_years if entry.age_years is not None and entry.age_years < 150 else None
        return run_limited(png_to_dicom, (data, PngMeta(entry.sex, age)),
                           timeout=float(cfg["INGEST_TIME_LIMIT"]),
                           memory_bytes=int(cfg["INGEST_MEMORY_LIMIT"]))

    return Source(entry.name, read)


def import_dataset(fmt: str, root: Path) -> ImportSummary:
    scheme = get_scheme(SCHEME)
    options = ImportOptions(source=SOURCES[fmt], licence=LICENCES[fmt])
    summary = ImportSummary()
    for entry in read_dataset(fmt, root):
        if isinstance(entry, tuple):
            summary.results.append(FileResult(entry[0], "rejected", reason=entry[1]))
            continue
        [result] = import_files([_source(entry)], actor=None, options=options).results
        summary.results.append(result)
        if result.status == "imported" and result.case_id is not None:
            _add_reference(db.session.get(Case, result.case_id), entry, scheme)
    return summary


def _add_reference(case: Case, entry: DatasetEntry, scheme: Scheme) -> None:
    image = case.images[0]
    marks = []
    if entry.boxes and entry.box_space:
        sx = image.columns / entry.box_space[0]
        sy = image.rows / entry.box_space[1]
        for box in entry.boxes:
            marks.append({
                "image_id": image.id, "finding": "tb_lesion", "shape": "rectangle",
                "geometry": {"x": round(box.x * sx, 1), "y": round(box.y * sy, 1),
                             "width": round(box.width * sx, 1),
                             "height": round(box.height * sy, 1)},
            })
    answers = {"classification": CLASSIFICATION[entry.label],
               "tb_likelihood": LIKELIHOOD[entry.label]}
    if marks:
        answers["findings"] = ["tb_lesion"]
    case.teaching_notes = entry.reading
    save_read(case, author=None, scheme=scheme, answers=answers, marks=marks)
