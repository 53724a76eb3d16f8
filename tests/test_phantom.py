"""Synthetic phantoms (app.cases.phantom) and the DICOM builder (app.cases.dicom_build)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import (
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
)

from app.cases import dicom_build
from app.cases.dicom_build import dataset_bytes, dx_dataset, png_to_pixels
from app.cases.phantom import (
    FINDING_LABELS,
    FINDINGS,
    MAX_STORED,
    Mark,
    Phantom,
    lung_mask,
    make_phantom,
    mark_mask,
)

# Half the default size keeps the suite fast; the geometry scales with the size.
SIZE = 512
SEEDS = (7, 2024)
MARGIN = 3  # pixels of tolerance around a mark (rasterisation, antialiasing)

EXPECTED_SHAPE = {
    "infiltrate": "polygon",
    "cavitary_lesion": "ellipse",
    "nodule": "ellipse",
    "pleural_effusion": "polygon",
    "hilar_adenopathy": "ellipse",
    "miliary": "polygon",
    "fibrosis": "polygon",
    "calcified_nodule": "ellipse",
}


@pytest.fixture(scope="module", params=SEEDS)
def seed(request: pytest.FixtureRequest) -> int:
    return request.param


@pytest.fixture(scope="module")
def normal(seed: int) -> Phantom:
    return make_phantom(seed, size=SIZE)


@pytest.fixture(scope="module", params=FINDINGS)
def abnormal(request: pytest.FixtureRequest, seed: int) -> tuple[str, Phantom]:
    return request.param, make_phantom(seed, (request.param,), size=SIZE)


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Square dilation with numpy only (shifted ORs)."""
    out = mask.copy()
    for _ in range(pixels):
        grown = out.copy()
        grown[1:, :] |= out[:-1, :]
        grown[:-1, :] |= out[1:, :]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def marks_union(marks: tuple[Mark, ...], shape: tuple[int, int]) -> np.ndarray:
    union = np.zeros(shape, dtype=bool)
    for mark in marks:
        union |= mark_mask(mark, shape)
    return union


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


# --------------------------------------------------------------------------- phantom


def test_same_inputs_give_identical_phantoms() -> None:
    first = make_phantom(11, ("cavitary_lesion", "pleural_effusion"), size=SIZE)
    again = make_phantom(11, ("cavitary_lesion", "pleural_effusion"), size=SIZE)
    assert np.array_equal(first.pixels, again.pixels)
    assert first.marks == again.marks
    assert (first.sex, first.age_years, first.description) == (
        again.sex,
        again.age_years,
        again.description,
    )


def test_order_of_findings_does_not_matter() -> None:
    one = make_phantom(12, ("nodule", "fibrosis"), size=SIZE)
    other = make_phantom(12, ("fibrosis", "nodule"), size=SIZE)
    assert np.array_equal(one.pixels, other.pixels)
    assert one.marks == other.marks


def test_different_seeds_differ() -> None:
    one = make_phantom(1, ("nodule",), size=SIZE)
    other = make_phantom(2, ("nodule",), size=SIZE)
    assert not np.array_equal(one.pixels, other.pixels)
    assert one.marks != other.marks


def test_pixels_are_12_bit_monochrome2(normal: Phantom) -> None:
    pixels = normal.pixels
    assert pixels.dtype == np.uint16
    assert pixels.shape == (SIZE, SIZE)
    assert int(pixels.max()) <= MAX_STORED == 4095
    assert pixels.std() > 300  # a real image, not a flat field


def test_lungs_are_darker_than_the_mediastinum(normal: Phantom) -> None:
    lungs = lung_mask(normal.seed, SIZE)
    mid = slice(int(0.47 * SIZE), int(0.53 * SIZE))
    mediastinum = normal.pixels[int(0.3 * SIZE) : int(0.7 * SIZE), mid]
    assert 0.12 < lungs.mean() < 0.35  # two lung fields of a plausible size
    assert normal.pixels[lungs].mean() < mediastinum.mean() - 600
    # Outside the body (upper corners) is darker still.
    assert normal.pixels[:10, :10].mean() < normal.pixels[lungs].mean()


def test_normal_phantom_describes_itself(normal: Phantom) -> None:
    assert normal.marks == ()
    assert normal.description.startswith("Synthetic phantom")
    assert "normal" in normal.description
    assert normal.sex in ("M", "F")
    assert 18 <= normal.age_years <= 75


def test_default_size_and_pixel_spacing() -> None:
    phantom = make_phantom(3)
    assert phantom.pixels.shape == (1024, 1024)
    assert phantom.pixel_spacing_mm == pytest.approx(0.4)
    assert make_phantom(3, size=2048).pixel_spacing_mm == pytest.approx(0.2)


def test_marks_carry_the_finding_and_shape(abnormal: tuple[str, Phantom]) -> None:
    finding, phantom = abnormal
    expected = 2 if finding == "miliary" else 1  # miliary: one mark per lung
    assert len(phantom.marks) == expected
    for mark in phantom.marks:
        assert mark.finding == finding
        assert mark.shape == EXPECTED_SHAPE[finding]
    assert phantom.description.startswith("Synthetic phantom")
    assert "normal" not in phantom.description


def test_lesion_changes_pixels_only_inside_its_marks(
    abnormal: tuple[str, Phantom], normal: Phantom
) -> None:
    _, phantom = abnormal
    change = np.abs(phantom.pixels.astype(np.int32) - normal.pixels.astype(np.int32))
    assert change.max() > 100  # the lesion is visible
    inside = dilate(marks_union(phantom.marks, change.shape), MARGIN)
    assert change[inside].sum() >= 0.99 * change.sum()


def test_marks_fit_their_lesions_tightly(abnormal: tuple[str, Phantom], normal: Phantom) -> None:
    finding, phantom = abnormal
    changed = phantom.pixels != normal.pixels
    union = marks_union(phantom.marks, changed.shape)
    lesion_box, mark_box = bounding_box(changed), bounding_box(union)
    # A miliary mark is the lung field: no nodule need fall in the very tip of an apex.
    slack = (0.05 if finding == "miliary" else 0.03) * SIZE
    assert all(abs(a - b) <= slack for a, b in zip(lesion_box, mark_box, strict=True))


def test_marks_lie_inside_the_image(abnormal: tuple[str, Phantom]) -> None:
    _, phantom = abnormal
    for mark in phantom.marks:
        g = mark.geometry
        if mark.shape == "ellipse":
            xs, ys = [g["cx"] - g["rx"], g["cx"] + g["rx"]], [g["cy"] - g["ry"], g["cy"] + g["ry"]]
        else:
            xs = [p[0] for p in g["points"]]
            ys = [p[1] for p in g["points"]]
        assert min(xs) >= 0 and max(xs) <= SIZE
        assert min(ys) >= 0 and max(ys) <= SIZE


def test_lesions_lie_in_the_lung_fields(abnormal: tuple[str, Phantom]) -> None:
    finding, phantom = abnormal
    lungs = dilate(lung_mask(phantom.seed, SIZE), MARGIN)
    for mark in phantom.marks:
        if mark.shape == "ellipse":
            cx, cy = mark.geometry["cx"], mark.geometry["cy"]
            assert lungs[int(cy), int(cx)], f"{finding} centred outside the lungs"
        else:
            region = mark_mask(mark, lungs.shape)
            assert lungs[region].mean() >= 0.8, f"{finding} mostly outside the lungs"
    if finding == "miliary":
        sides = sorted(np.mean([p[0] for p in m.geometry["points"]]) for m in phantom.marks)
        assert sides[0] < SIZE / 2 < sides[1]  # one mark per lung


def test_several_findings_in_one_phantom() -> None:
    findings = ("cavitary_lesion", "pleural_effusion", "nodule", "calcified_nodule", "infiltrate")
    phantom = make_phantom(5, findings, size=SIZE)
    normal = make_phantom(5, size=SIZE)
    assert sorted(m.finding for m in phantom.marks) == sorted(findings)
    masks = [mark_mask(m, phantom.pixels.shape) for m in phantom.marks]
    assert sum(m.sum() for m in masks) == np.logical_or.reduce(masks).sum()  # no overlap
    change = np.abs(phantom.pixels.astype(np.int32) - normal.pixels.astype(np.int32))
    inside = dilate(np.logical_or.reduce(masks), MARGIN)
    assert change[inside].sum() >= 0.99 * change.sum()


def test_a_finding_may_repeat() -> None:
    phantom = make_phantom(8, ("nodule", "nodule"), size=SIZE)
    assert [m.finding for m in phantom.marks] == ["nodule", "nodule"]
    assert phantom.marks[0] != phantom.marks[1]


def test_mark_json_is_plain_data() -> None:
    phantom = make_phantom(9, ("fibrosis", "nodule"), size=SIZE)
    for mark in phantom.marks:
        data = mark.to_json()
        assert json.loads(json.dumps(data)) == data
        assert set(data) == {"finding", "shape", "geometry"}
        assert Mark(**data) == mark
        assert data["finding"] in FINDING_LABELS


@pytest.mark.parametrize(
    ("mark", "expected"),
    [
        (Mark("nodule", "rectangle", {"x": 2, "y": 3, "width": 4, "height": 5}), 20),
        (Mark("nodule", "polygon", {"points": [[2, 2], [6, 2], [6, 6], [2, 6]]}), 16),
        (Mark("nodule", "point", {"x": 4.2, "y": 7.9}), 1),
        (Mark("nodule", "ellipse", {"cx": 10, "cy": 10, "rx": 6, "ry": 3}), round(np.pi * 18)),
    ],
)
def test_mark_mask_covers_pixel_centres_inside(mark: Mark, expected: int) -> None:
    mask = mark_mask(mark, (20, 20))
    assert abs(int(mask.sum()) - expected) <= 2
    if mark.shape == "point":
        assert mask[7, 4]


@pytest.mark.parametrize(
    ("seed", "findings", "size"),
    [
        (1, ("tumour",), SIZE),
        (-1, (), SIZE),
        (1, (), 100),
        (1, (), 10_000),
        (1, ("miliary", "miliary"), SIZE),
        (1, ("pleural_effusion",) * 3, SIZE),
        (1, "nodule", SIZE),
    ],
)
def test_invalid_arguments_are_rejected(seed: int, findings: tuple[str, ...], size: int) -> None:
    with pytest.raises(ValueError):
        make_phantom(seed, findings, size=size)


# --------------------------------------------------------------------------- DICOM


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    return make_phantom(21, ("nodule",), size=SIZE)


def read(data: bytes) -> pydicom.FileDataset:
    return pydicom.dcmread(io.BytesIO(data))


def test_dx_dataset_round_trips_uint16(phantom: Phantom) -> None:
    ds = dx_dataset(
        phantom.pixels,
        bits_stored=12,
        pixel_spacing_mm=phantom.pixel_spacing_mm,
        sex=phantom.sex,
        age_years=45,
        window=(1800, 3000),
        synthetic=True,
    )
    data = dataset_bytes(ds)
    assert data[:128] == b"\0" * 128
    assert data[128:132] == b"DICM"
    back = read(data)
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert back.SOPClassUID == DigitalXRayImageStorageForPresentation
    assert back.file_meta.MediaStorageSOPClassUID == back.SOPClassUID
    assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID
    assert back.Modality == "DX"
    assert back.PatientAge == "045Y"
    assert back.PatientSex == phantom.sex
    assert back.PatientIdentityRemoved == "YES"
    assert back.BurnedInAnnotation == "NO"
    assert back.Manufacturer == "CXR Academy phantom"
    assert back.ViewPosition == "PA"
    spacing = [phantom.pixel_spacing_mm] * 2
    assert [float(v) for v in back.ImagerPixelSpacing] == spacing
    assert [float(v) for v in back.PixelSpacing] == spacing
    assert (float(back.WindowCenter), float(back.WindowWidth)) == (1800, 3000)
    assert (back.BitsAllocated, back.BitsStored, back.HighBit) == (16, 12, 11)
    assert (back.PixelRepresentation, back.SamplesPerPixel) == (0, 1)
    assert back.PhotometricInterpretation == "MONOCHROME2"
    assert back.pixel_array.dtype == np.uint16
    assert np.array_equal(back.pixel_array, phantom.pixels)


def test_dx_dataset_round_trips_uint8_with_odd_length() -> None:
    pixels = np.arange(15, dtype=np.uint8).reshape(3, 5) * 17
    back = read(dataset_bytes(dx_dataset(pixels, bits_stored=8)))
    assert back.BitsAllocated == 8
    assert np.array_equal(back.pixel_array, pixels)
    assert back.Manufacturer == ""
    assert "PatientAge" not in back
    assert "ImagerPixelSpacing" not in back
    # No window given: it spans the data.
    assert float(back.WindowWidth) >= int(pixels.max()) - int(pixels.min())


def test_dx_dataset_saves_to_a_file(tmp_path: Path, phantom: Phantom) -> None:
    ds = dx_dataset(phantom.pixels, bits_stored=12)
    path = tmp_path / "case.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert path.read_bytes() == dataset_bytes(ds)
    assert np.array_equal(pydicom.dcmread(path).pixel_array, phantom.pixels)


@pytest.mark.parametrize(("synthetic", "conversion"), [(True, "SYN"), (False, "WSD")])
def test_secondary_capture(synthetic: bool, conversion: str) -> None:
    pixels = np.full((8, 8), 200, dtype=np.uint8)
    ds = dx_dataset(pixels, bits_stored=8, secondary_capture=True, synthetic=synthetic)
    back = read(dataset_bytes(ds))
    assert back.SOPClassUID == SecondaryCaptureImageStorage
    assert back.Modality == "DX"
    assert back.ConversionType == conversion


def test_every_dataset_gets_fresh_uids(phantom: Phantom) -> None:
    one = dx_dataset(phantom.pixels, bits_stored=12)
    two = dx_dataset(phantom.pixels, bits_stored=12)
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID"):
        assert one[keyword].value != two[keyword].value
        assert pydicom.uid.UID(one[keyword].value).is_valid


def test_monochrome1_is_marked_inverse() -> None:
    pixels = np.zeros((4, 4), dtype=np.uint16)
    back = read(dataset_bytes(dx_dataset(pixels, bits_stored=10, photometric="MONOCHROME1")))
    assert back.PhotometricInterpretation == "MONOCHROME1"
    assert back.PresentationLUTShape == "INVERSE"


@pytest.mark.parametrize(
    ("pixels", "kwargs"),
    [
        (np.zeros((4, 4), dtype=np.float32), {"bits_stored": 12}),
        (np.zeros((4, 4, 3), dtype=np.uint8), {"bits_stored": 8}),
        (np.full((4, 4), 4096, dtype=np.uint16), {"bits_stored": 12}),
        (np.zeros((4, 4), dtype=np.uint8), {"bits_stored": 12}),
        (np.zeros((4, 4), dtype=np.uint16), {"bits_stored": 17}),
        (np.zeros((4, 4), dtype=np.uint16), {"bits_stored": 12, "sex": "X"}),
        (np.zeros((4, 4), dtype=np.uint16), {"bits_stored": 12, "view": "OBLIQUE"}),
        (np.zeros((4, 4), dtype=np.uint16), {"bits_stored": 12, "window": (100, 0)}),
        (np.zeros((4, 4), dtype=np.uint16), {"bits_stored": 12, "photometric": "RGB"}),
        (np.zeros((4, 4), dtype=np.uint16), {"bits_stored": 12, "pixel_spacing_mm": 0}),
    ],
)
def test_dx_dataset_rejects_bad_input(pixels: np.ndarray, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        dx_dataset(pixels, **kwargs)


# --------------------------------------------------------------------------- PNG


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def handmade_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height but whose data is a few bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 11))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def ramp() -> np.ndarray:
    return (np.arange(48 * 64).reshape(48, 64) % 256).astype(np.uint8)


def test_png_8_bit_greyscale(ramp: np.ndarray) -> None:
    pixels, depth = png_to_pixels(png(ramp))
    assert depth == 8
    assert pixels.dtype == np.uint8
    assert np.array_equal(pixels, ramp)


def test_png_16_bit_greyscale() -> None:
    values = (np.arange(30 * 40).reshape(30, 40) * 53).astype(np.uint16)
    pixels, depth = png_to_pixels(png(values))
    assert depth == 16
    assert pixels.dtype == np.uint16
    assert np.array_equal(pixels, values)


@pytest.mark.parametrize("channels", [3, 4])
def test_png_rgb_with_equal_channels_becomes_greyscale(ramp: np.ndarray, channels: int) -> None:
    stacked = np.stack([ramp] * 3 + [np.full_like(ramp, 255)] * (channels - 3), axis=2)
    pixels, depth = png_to_pixels(png(stacked))
    assert depth == 8
    assert pixels.shape == ramp.shape
    assert np.array_equal(pixels, ramp)


def test_png_rgb_within_tolerance_is_accepted(ramp: np.ndarray) -> None:
    base = np.clip(ramp, 2, 253)
    rgb = np.stack([base - 1, base, base + 1], axis=2).astype(np.uint8)
    pixels, _ = png_to_pixels(png(rgb))
    assert np.array_equal(pixels, base)


def test_png_in_colour_is_rejected(ramp: np.ndarray) -> None:
    rgb = np.stack([ramp, ramp, ramp], axis=2)
    rgb[10:20, 10:20] = (255, 0, 0)  # a red annotation
    with pytest.raises(ValueError, match="colour"):
        png_to_pixels(png(rgb))


@pytest.mark.parametrize(
    "data",
    [b"", b"GIF89a" + b"\0" * 40, b"\xff\xd8\xff\xe0" + b"\0" * 40, b"not an image at all"],
)
def test_not_a_png_is_rejected(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a PNG"):
        png_to_pixels(data)


def test_truncated_png_is_rejected(ramp: np.ndarray) -> None:
    data = png(ramp)
    with pytest.raises(ValueError):
        png_to_pixels(data[: len(data) // 2])


@pytest.mark.parametrize(("width", "height"), [(7000, 10), (10, 7000)])
def test_oversized_png_is_rejected_from_its_header(
    monkeypatch: pytest.MonkeyPatch, width: int, height: int
) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the pixels must not be decoded")

    monkeypatch.setattr(dicom_build.Image, "open", no_decoding)
    with pytest.raises(ValueError, match="7000"):
        png_to_pixels(handmade_png(width, height))


def test_png_at_the_size_limit_passes_the_header_check() -> None:
    # The size check alone passes at 6000 a side; the hand-made data is then undecodable.
    with pytest.raises(ValueError, match="unreadable PNG"):
        png_to_pixels(handmade_png(6000, 10))
