"""Synthetic PA chest radiographs ("phantoms") for the demo case library.

Everything here is made up: a simple thorax built from smooth shapes (body, lungs, heart,
spine, ribs, clavicles, vessels) plus simulated TB-pattern lesions. No patient data is
involved, so the demo library can ship without any licensing or privacy question. The
images say they are synthetic in their description and DICOM metadata, never as burned-in
text (the portal treats burned-in text as something to redact).

Each lesion is rendered so that it lies entirely inside its reference mark: ellipse
lesions fade to zero at the ellipse, and irregular lesions get a polygon computed from
the pixels they actually change. Trainee marks can then be scored against exact regions.

Pixel coordinates follow DICOM (PS3.3 C.10.5.1.2): x to the right, y down, the top-left
corner of the top-left pixel is (0, 0), so pixel (row r, column c) has its centre at
(c + 0.5, r + 0.5). The image is a PA view: the patient's right is on the image left.

Values are in "density" units while building (0 = air, ~1 = full soft-tissue thickness),
roughly the log-exposure domain of a processed radiograph, so layers simply add up; they
are mapped to 12-bit MONOCHROME2 stored values (bright = dense) at the end.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FINDINGS = (
    "infiltrate",
    "cavitary_lesion",
    "nodule",
    "pleural_effusion",
    "hilar_adenopathy",
    "miliary",
    "fibrosis",
    "calcified_nodule",
)

# The matching DS-3030 section 3 wording (see DOMAIN.md). All but the calcified nodule
# suggest TB (smears and cultures needed); a calcified nodule is a Class B finding that
# does not.
FINDING_LABELS = {
    "infiltrate": "Infiltrate or consolidation",
    "cavitary_lesion": "Cavitary lesion",
    "nodule": "Nodule(s) or mass with poorly defined margins",
    "pleural_effusion": "Pleural effusion",
    "hilar_adenopathy": "Hilar/mediastinal adenopathy",
    "miliary": "Miliary findings",
    "fibrosis": "Reticular markings suggestive of fibrosis",
    "calcified_nodule": "Calcified pulmonary nodule(s)",
}

MARK_SHAPES = ("ellipse", "rectangle", "polygon", "point")
MIN_SIZE = 256
MAX_SIZE = 4096
FIELD_OF_VIEW_MM = 409.6  # 0.2 mm pixels at 2048 px, a common DR detector pitch
BITS_STORED = 12
MAX_STORED = (1 << BITS_STORED) - 1

# How many times a finding may appear in one phantom: one lesion per side for the
# lateralised ones, a single diffuse miliary pattern, a few focal lesions.
_MAX_COUNT = {"pleural_effusion": 2, "hilar_adenopathy": 2, "fibrosis": 2, "miliary": 1}
_MAX_FOCAL = 4

# Independent random streams: the normal anatomy and the noise never depend on which
# findings are requested, so a lesion changes only the pixels inside its mark.
_STREAM_ANATOMY = 0
_STREAM_NOISE = 1
_STREAM_LESION = 100

# Mapping from density units to stored values.
_OFFSET = 180.0
_GAIN = 2450.0
_NOISE_SD = 14.0


@dataclass(frozen=True)
class Mark:
    """A reference lesion region in image pixel coordinates (see the module docstring)."""

    finding: str
    shape: str
    geometry: dict

    def to_json(self) -> dict:
        """Plain JSON-ready dict (deep copy, Python numbers only)."""
        geometry = {
            key: [list(point) for point in value] if key == "points" else value
            for key, value in self.geometry.items()
        }
        return {"finding": self.finding, "shape": self.shape, "geometry": geometry}


@dataclass(frozen=True)
class Phantom:
    pixels: np.ndarray
    marks: tuple[Mark, ...]
    seed: int
    sex: str
    age_years: int
    pixel_spacing_mm: float
    description: str


# --------------------------------------------------------------------------- helpers


def _smoothstep(edge0: float, edge1: float, x: np.ndarray | float) -> np.ndarray:
    """Hermite step from 0 at edge0 to 1 at edge1 (edge0 > edge1 gives a falling step)."""
    t = np.clip((np.asarray(x, dtype=np.float32) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _blur5(a: np.ndarray) -> np.ndarray:
    """Binomial [1 4 6 4 1]/16 blur on both axes (sigma ~1 px), edges replicated."""
    out = a
    for axis in (0, 1):
        p = np.pad(out, [(2, 2) if ax == axis else (0, 0) for ax in (0, 1)], mode="edge")
        n = out.shape[axis]

        def s(k: int, p: np.ndarray = p, axis: int = axis, n: int = n) -> np.ndarray:
            return p[k : k + n] if axis == 0 else p[:, k : k + n]

        out = (s(0) + 4 * s(1) + 6 * s(2) + 4 * s(3) + s(4)) * np.float32(1 / 16)
    return out.astype(np.float32, copy=False)


def _wide_blur(a: np.ndarray, sigma_px: float) -> np.ndarray:
    """Large blur done cheaply: box-downsample, binomial blur, bilinear upsample."""
    h, w = a.shape
    factor = max(1, int(sigma_px / 2))
    small = Image.fromarray(a.astype(np.float32), "F").resize(
        (max(1, w // factor), max(1, h // factor)), Image.Resampling.BOX
    )
    blurred = _blur5(_blur5(np.asarray(small, dtype=np.float32)))
    big = Image.fromarray(blurred, "F").resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(big, dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, grid: int, shape: tuple[int, int]) -> np.ndarray:
    """Smooth random field in [0, 1]: a small random grid upsampled bicubically."""
    coarse = rng.random((grid, grid), dtype=np.float32)
    big = Image.fromarray(coarse, "F").resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(big, dtype=np.float32), 0.0, 1.0)


def _closed_spline(ctrl: np.ndarray, per_segment: int = 16) -> np.ndarray:
    """Closed Catmull-Rom curve through the control points, as an (N, 2) polyline."""
    p0, p1 = np.roll(ctrl, 1, axis=0), ctrl
    p2, p3 = np.roll(ctrl, -1, axis=0), np.roll(ctrl, -2, axis=0)
    t = np.linspace(0.0, 1.0, per_segment, endpoint=False)[:, None, None]
    pts = 0.5 * (
        2 * p1
        + (p2 - p0) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
        + (3 * p1 - p0 - 3 * p2 + p3) * t**3
    )
    return pts.transpose(1, 0, 2).reshape(-1, 2)


def _polygon_patch(points: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Even-odd fill of a polygon sampled at pixel centres, over rows y0:y1, cols x0:x1."""
    h, w = y1 - y0, x1 - x0
    if h <= 0 or w <= 0:
        return np.zeros((max(h, 0), max(w, 0)), dtype=bool)
    xa, ya = points[:, 0], points[:, 1]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    yc = (np.arange(y0, y1) + 0.5)[:, None]
    crosses = (ya <= yc) != (yb <= yc)
    dy = np.where(yb != ya, yb - ya, 1.0)
    xi = xa + (yc - ya) / dy * (xb - xa)
    # A crossing at xi toggles "inside" for every pixel whose centre j + 0.5 lies right of it.
    first = np.clip(np.floor(xi - 0.5).astype(np.int64) + 1 - x0, 0, w)
    rows = np.broadcast_to(np.arange(h)[:, None], xi.shape)
    flat = rows[crosses] * (w + 1) + first[crosses]
    toggles = np.bincount(flat, minlength=h * (w + 1)).reshape(h, w + 1)
    return (np.cumsum(toggles, axis=1)[:, :w] % 2).astype(bool)


def _mark_patch(mark: Mark, shape: tuple[int, int]) -> tuple[int, int, np.ndarray]:
    """Rasterise a mark (pixel centres inside it) over its clipped bounding box."""
    rows, cols = shape
    g = mark.geometry
    if mark.shape == "ellipse":
        box = (g["cx"] - g["rx"], g["cy"] - g["ry"], g["cx"] + g["rx"], g["cy"] + g["ry"])
    elif mark.shape == "rectangle":
        box = (g["x"], g["y"], g["x"] + g["width"], g["y"] + g["height"])
    elif mark.shape == "polygon":
        pts = np.asarray(g["points"], dtype=np.float64)
        box = (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
    elif mark.shape == "point":
        box = (g["x"], g["y"], g["x"] + 1, g["y"] + 1)
    else:
        raise ValueError(f"unknown mark shape {mark.shape!r}")
    x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x1, y1 = min(cols, math.ceil(box[2]) + 1), min(rows, math.ceil(box[3]) + 1)
    if x1 <= x0 or y1 <= y0:
        return y0, x0, np.zeros((0, 0), dtype=bool)
    xc = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5
    yc = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5
    if mark.shape == "ellipse":
        inside = ((xc - g["cx"]) / g["rx"]) ** 2 + ((yc - g["cy"]) / g["ry"]) ** 2 <= 1.0
    elif mark.shape == "rectangle":
        inside = (xc >= box[0]) & (xc < box[2]) & (yc >= box[1]) & (yc < box[3])
    elif mark.shape == "polygon":
        inside = _polygon_patch(pts, y0, y1, x0, x1)
    else:  # a point covers the pixel it falls in
        inside = (np.floor(xc) == math.floor(g["x"])) & (np.floor(yc) == math.floor(g["y"]))
    return y0, x0, inside


def mark_mask(mark: Mark, shape: tuple[int, int]) -> np.ndarray:
    """Boolean image of the pixels whose centres lie inside the mark."""
    out = np.zeros(shape, dtype=bool)
    y0, x0, patch = _mark_patch(mark, shape)
    out[y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]] = patch
    return out


def _enclosing_polygon(support: np.ndarray, y0: int, x0: int, step: int) -> list[list[float]]:
    """A polygon containing every True pixel of ``support`` (placed at row y0, col x0).

    The support is cut into vertical strips ``step`` columns wide; each strip contributes
    its highest and lowest pixel edge. A vertex on a strip boundary takes the more
    extreme value of its two strips, so the straight edge across a strip never cuts into
    it: the polygon contains the lesion while staying within a few pixels of it.
    """
    cols = np.flatnonzero(support.any(axis=0))
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    bounds = [*range(c0, c1, step), c1]
    tops: list[float] = []
    bottoms: list[float] = []
    for a, b in itertools.pairwise(bounds):
        rows = np.flatnonzero(support[:, a:b].any(axis=1))
        tops.append(float(rows[0]) if rows.size else math.inf)
        bottoms.append(float(rows[-1] + 1) if rows.size else -math.inf)
    # Empty strips (a gap between two patches) take the extent of the others.
    tops, bottoms = _fill_gaps(tops, min), _fill_gaps(bottoms, max)
    # Boundary k sits between strips k - 1 and k (the outer boundaries have one strip).
    top_v = [min(tops[max(k - 1, 0)], tops[min(k, len(tops) - 1)]) for k in range(len(bounds))]
    bot_v = [
        max(bottoms[max(k - 1, 0)], bottoms[min(k, len(tops) - 1)]) for k in range(len(bounds))
    ]
    upper = [[float(x0 + x), float(y0 + y)] for x, y in zip(bounds, top_v, strict=True)]
    lower = [[float(x0 + x), float(y0 + y)] for x, y in zip(bounds, bot_v, strict=True)]
    return upper + lower[::-1]


def _fill_gaps(values: list[float], pick: Callable[[list[float]], float]) -> list[float]:
    """Replace infinite entries (empty strips) by the extreme of the finite ones."""
    finite = [v for v in values if math.isfinite(v)]
    extreme = pick(finite)
    return [v if math.isfinite(v) else extreme for v in values]


# --------------------------------------------------------------------------- anatomy


@dataclass(frozen=True)
class _Lung:
    side: str  # the patient's side: "right" is on the image left in a PA view
    outward: int  # -1 if lateral is towards smaller x (image left), +1 otherwise
    outline: np.ndarray  # (N, 2) pixel coordinates
    mask: np.ndarray  # bool, full image
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the mask
    hilum: tuple[float, float]
    dome: tuple[float, float]  # top of the hemidiaphragm


@dataclass(frozen=True)
class _Geometry:
    size: int
    lungs: tuple[_Lung, _Lung]
    body_half_width: float  # normalised
    heart: tuple[float, float, float, float]  # cx, cy, rx, ry normalised
    rib_spacing: float  # normalised
    first_rib: float


@dataclass(frozen=True)
class _Anatomy:
    geometry: _Geometry
    density: np.ndarray
    presence: np.ndarray  # antialiased lung mask, 0..1
    air: np.ndarray  # density removed by lung air (positive)
    vessels: np.ndarray  # density added by pulmonary vessels
    sex: str
    age_years: int


# Lung outlines as closed control polygons in normalised (u, v) image coordinates,
# clockwise from the apex. Right lung (image left): lateral wall, sharp costophrenic
# angle, diaphragm dome, right heart border, superior vena cava. Left lung: mirror image
# with the aortic knob, pulmonary trunk, and left ventricle bulging into it.
_RIGHT_LUNG = (
    (0.300, 0.118), (0.355, 0.128), (0.420, 0.175), (0.448, 0.260), (0.452, 0.340),
    (0.440, 0.420), (0.432, 0.500), (0.418, 0.580), (0.422, 0.660), (0.436, 0.742),
    (0.395, 0.722), (0.340, 0.705), (0.275, 0.712), (0.210, 0.742), (0.168, 0.786),
    (0.152, 0.806), (0.145, 0.760), (0.140, 0.640), (0.146, 0.500), (0.162, 0.360),
    (0.192, 0.235), (0.240, 0.150),
)  # fmt: skip
_LEFT_LUNG = (
    (0.700, 0.122), (0.762, 0.152), (0.810, 0.238), (0.840, 0.362), (0.856, 0.500),
    (0.862, 0.640), (0.858, 0.770), (0.850, 0.818), (0.832, 0.798), (0.790, 0.757),
    (0.730, 0.732), (0.684, 0.742), (0.672, 0.690), (0.648, 0.600), (0.612, 0.520),
    (0.598, 0.450), (0.585, 0.400), (0.580, 0.365), (0.597, 0.325), (0.578, 0.285),
    (0.560, 0.250), (0.572, 0.175), (0.640, 0.128),
)  # fmt: skip
_HILA = ((0.418, 0.455), (0.592, 0.430))
_DOMES = ((0.320, 0.703), (0.725, 0.730))


def _geometry(rng: np.random.Generator, size: int) -> _Geometry:
    """Lung outlines and landmarks for one phantom (small seeded variations)."""
    inspiration = rng.uniform(-0.018, 0.018)  # deeper breath: lower domes
    width = rng.uniform(0.97, 1.03)  # broader or narrower chest
    heart_scale = rng.uniform(0.95, 1.06)
    lungs = []
    for k, (ctrl, side, outward) in enumerate(
        ((_RIGHT_LUNG, "right", -1), (_LEFT_LUNG, "left", 1))
    ):
        pts = np.array(ctrl, dtype=np.float64)
        # Widen about the midline; stretch the bases with inspiration (apices stay put).
        pts[:, 0] = 0.5 + (pts[:, 0] - 0.5) * width
        pts[:, 1] += inspiration * np.clip((pts[:, 1] - 0.12) / 0.6, 0.0, 1.0)
        pts += rng.normal(0.0, 0.003, pts.shape)
        outline = _closed_spline(pts) * size
        x0, y0 = (np.floor(outline.min(axis=0)) - 1).astype(int)
        x1, y1 = (np.ceil(outline.max(axis=0)) + 2).astype(int)
        mask = np.zeros((size, size), dtype=bool)
        mask[y0:y1, x0:x1] = _polygon_patch(outline, y0, y1, x0, x1)
        hx, hy = _HILA[k]
        dx, dy = _DOMES[k]
        lungs.append(
            _Lung(
                side=side,
                outward=outward,
                outline=outline,
                mask=mask,
                box=(int(x0), int(y0), int(x1), int(y1)),
                hilum=((0.5 + (hx - 0.5) * width) * size, (hy + inspiration * 0.4) * size),
                dome=((0.5 + (dx - 0.5) * width) * size, (dy + inspiration) * size),
            )
        )
    return _Geometry(
        size=size,
        lungs=(lungs[0], lungs[1]),
        body_half_width=0.43 * width,
        heart=(0.548, 0.615 + inspiration * 0.8, 0.145 * heart_scale, 0.128 * heart_scale),
        rib_spacing=0.0655 + inspiration * 0.05,
        first_rib=0.118,
    )


def lung_mask(seed: int, size: int = 1024) -> np.ndarray:
    """The lung fields of the phantom ``make_phantom(seed, ..., size=size)`` (bool image)."""
    _check_seed_and_size(seed, size)
    geometry = _geometry(np.random.default_rng([seed, _STREAM_ANATOMY]), size)
    return geometry.lungs[0].mask | geometry.lungs[1].mask


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    return c[None, :], c[:, None]


def _body(geo: _Geometry, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Soft tissue: neck, sloping shoulders, an elliptical chest and the arms at the sides."""
    off = np.abs(u - 0.5)
    neck = 0.62 * np.sqrt(np.clip(1.0 - (off / 0.078) ** 2, 0.0, 1.0))
    # Trapezius slope from the neck, then the shoulder rounding down into the arm.
    shoulder_top = 0.02 + 0.085 * _smoothstep(0.07, 0.36, off) ** 0.7
    shoulder_top = shoulder_top + 0.12 * _smoothstep(0.4, 0.58, off) ** 2
    below = _smoothstep(shoulder_top - 0.004, shoulder_top + 0.025, v)
    half = geo.body_half_width - 0.02 * _smoothstep(0.8, 1.0, v)
    chest = np.sqrt(np.sqrt(np.clip(1.0 - (off / half) ** 2, 0.0, 1.0))) * below
    chest *= 0.72 + 0.28 * _smoothstep(0.05, 0.25, v)
    arm_off = (off - geo.body_half_width - 0.05) / 0.1
    arms = 0.6 * np.sqrt(np.clip(1.0 - arm_off**2, 0.0, 1.0)) * below
    return np.maximum(np.maximum(neck, chest), arms).astype(np.float32)


def _lung_air(geo: _Geometry, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lung air as density removed, and the antialiased lung presence map.

    Air is thinner near the lung edges (the chest curves away) and at the apices, so the
    lungs darken gradually towards their centres and bases, but their edges stay crisp.
    """
    size = geo.size
    mask = (geo.lungs[0].mask | geo.lungs[1].mask).astype(np.float32)
    presence = _blur5(mask)
    depth = np.clip(_wide_blur(mask, 0.045 * size) * 1.5 - 0.1, 0.0, 1.0)
    vertical = 0.62 + 0.38 * _smoothstep(0.1, 0.5, v)
    air = 0.56 * presence * (0.3 + 0.7 * depth) * vertical
    return air.astype(np.float32), presence


def _heart(geo: _Geometry, u: np.ndarray, v: np.ndarray, presence: np.ndarray) -> np.ndarray:
    """Extra density of the heart where no lung overlaps it (its borders are the lungs')."""
    cx, cy, rx, ry = geo.heart
    r = np.sqrt(((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2)
    return (0.2 * _smoothstep(1.2, 0.7, r) * (1.0 - presence)).astype(np.float32)


def _trachea(geo: _Geometry, density: np.ndarray) -> None:
    """Air column of the trachea and the main bronchi (darker band in the mediastinum)."""
    size = geo.size
    carina = 0.36 * size
    # Pushed slightly to the right (image left) by the aortic arch.
    path = [(0.5 * size, 0.0), (0.496 * size, 0.24 * size), (0.5 * size, carina)]
    _add_path(density, path, 0.017 * size, -0.15)
    for lung in geo.lungs:
        hx, hy = lung.hilum
        end = (0.5 * size + 0.75 * (hx - 0.5 * size), carina + 0.75 * (hy - carina))
        _add_path(density, [(0.5 * size, carina - 0.01 * size), end], 0.0105 * size, -0.1)


def _add_path(img: np.ndarray, path: list[tuple[float, float]], half: float, amp: float) -> None:
    """Add a soft band of half-width ``half`` along a polyline, in place.

    Uses the distance to the nearest segment, so joints are not counted twice."""
    pts = np.array(path, dtype=np.float32)
    x0 = max(0, int(pts[:, 0].min() - half - 2))
    x1 = min(img.shape[1], int(pts[:, 0].max() + half + 3))
    y0 = max(0, int(pts[:, 1].min() - half - 2))
    y1 = min(img.shape[0], int(pts[:, 1].max() + half + 3))
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    dist = np.full((y1 - y0, x1 - x0), np.inf, dtype=np.float32)
    for a, b in itertools.pairwise(pts):
        ab = b - a
        t = np.clip(((xs - a[0]) * ab[0] + (ys - a[1]) * ab[1]) / float(ab @ ab), 0.0, 1.0)
        dist = np.minimum(dist, np.hypot(xs - a[0] - t * ab[0], ys - a[1] - t * ab[1]))
    img[y0:y1, x0:x1] += (amp * _smoothstep(1.0, 0.6, dist / half)).astype(np.float32)


def _spine(geo: _Geometry, density: np.ndarray) -> None:
    """Thoracic vertebral bodies with disc spaces and pedicles, seen through the heart."""
    size = geo.size
    x0, x1 = int(0.43 * size), int(0.57 * size)
    u = (np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5) / size
    v = (np.arange(size, dtype=np.float32)[:, None] + 0.5) / size
    half = 0.024 + 0.018 * v
    across = np.clip(1.0 - ((u - 0.5) / half) ** 2, 0.0, 1.0) ** 0.25
    phase = ((v - geo.first_rib + 0.01) / geo.rib_spacing) % 1.0
    along = _smoothstep(0.0, 0.1, phase) * _smoothstep(0.88, 0.76, phase)
    bodies = across * (0.55 + 0.45 * along)
    # Pedicles: small oval densities at the upper outer corners of each body.
    ped = np.zeros_like(bodies)
    for sign in (-1.0, 1.0):
        du = (u - 0.5 - sign * 0.75 * half) / 0.0065
        dv = (phase - 0.32) * geo.rib_spacing / 0.0095
        ped += _smoothstep(1.0, 0.5, np.hypot(du, dv))
    density[:, x0:x1] += (0.13 * bodies + 0.05 * ped).astype(np.float32)


def _open_spline(ctrl: np.ndarray, per_segment: int = 12) -> np.ndarray:
    """Open Catmull-Rom curve through the control points (end points repeated)."""
    padded = np.vstack([ctrl[:1], ctrl, ctrl[-1:]])
    p0, p1, p2, p3 = padded[:-3], padded[1:-2], padded[2:-1], padded[3:]
    t = np.linspace(0.0, 1.0, per_segment, endpoint=False)[:, None, None]
    pts = 0.5 * (
        2 * p1
        + (p2 - p0) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
        + (3 * p1 - p0 - 3 * p2 + p3) * t**3
    )
    return np.vstack([pts.transpose(1, 0, 2).reshape(-1, 2), ctrl[-1:]])


def _draw_bone(draw: ImageDraw.ImageDraw, curve: np.ndarray, width: float, value: float) -> None:
    """A bone as a thick curve with a brighter cortex: full width, then a dimmer core."""
    xy = [(float(x), float(y)) for x, y in curve]
    draw.line(xy, fill=value, width=max(1, round(width)), joint="curve")
    draw.line(xy, fill=0.8 * value, width=max(1, round(0.6 * width)), joint="curve")
    # Rounded ends rather than the square caps of a drawn line.
    for x, y in (xy[0], xy[-1]):
        r = 0.5 * width
        draw.ellipse((x - r, y - r, x + r, y + r), fill=0.9 * value)


def _bones(geo: _Geometry, rng: np.random.Generator, lungs: np.ndarray) -> np.ndarray:
    """Ribs (bow-shaped posterior arcs, fainter oblique anterior arcs) and clavicles.

    Each family is drawn on its own canvas because drawing overwrites: where a posterior
    and an anterior rib cross, their densities must add up, as on a radiograph.
    """
    size = geo.size
    canvases = [Image.new("F", (size, size), 0.0) for _ in range(3)]
    posterior, anterior, clavicles = (ImageDraw.Draw(c) for c in canvases)
    for sign in (-1.0, 1.0):
        for k in range(11):
            y0 = geo.first_rib + k * geo.rib_spacing + rng.normal(0, 0.0015)
            reach = (0.2, 0.29, 0.34)[k] if k < 3 else geo.body_half_width - 0.05
            s = reach / 0.38
            back = np.array(
                [(0.025, y0 + 0.004), (0.08 * s, y0 - 0.016), (0.16 * s, y0 - 0.028),
                 (0.24 * s, y0 - 0.024), (0.31 * s, y0 - 0.004), (0.36 * s, y0 + 0.03),
                 (reach, y0 + 0.07 * s)]
            )  # fmt: skip
            _draw_bone(posterior, _to_pixels(back, sign, size), 0.019 * size, 0.095)
            if k < 8:
                drop = 0.16 + 0.012 * k
                front = np.array(
                    [(reach, y0 + 0.07 * s), (reach - 0.025, y0 + 0.07 * s + 0.05 * drop),
                     (reach - 0.1, y0 + 0.07 * s + 0.45 * drop), (0.14 + 0.012 * k, y0 + drop)]
                )  # fmt: skip
                _draw_bone(anterior, _to_pixels(front, sign, size), 0.016 * size, 0.045)
        collar = np.array(
            [(0.04, 0.212), (0.1, 0.208), (0.18, 0.19), (0.26, 0.16), (0.33, 0.138), (0.38, 0.14)]
        )
        _draw_bone(clavicles, _to_pixels(collar, sign, size), 0.022 * size, 0.18)
    ribs = np.asarray(canvases[0], dtype=np.float32) + np.asarray(canvases[1], dtype=np.float32)
    # Processed radiographs compress the dense regions: ribs show well over the lungs but
    # fade over the heart and the abdomen.
    ribs *= 0.4 + 0.6 * np.clip(_wide_blur(lungs, 0.03 * size) * 1.6, 0.0, 1.0)
    return _blur5(_blur5(ribs + np.asarray(canvases[2], dtype=np.float32)))


def _to_pixels(points: np.ndarray, sign: float, size: int) -> np.ndarray:
    """(distance from the midline, height) in normalised units -> image pixels."""
    curve = _open_spline(points)
    return np.column_stack([(0.5 + sign * curve[:, 0]) * size, curve[:, 1] * size])


def _shoulders(geo: _Geometry, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Humeral heads in the upper corners and the faint blades of the scapulae."""
    out = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=np.float32)
    for sign in (-1.0, 1.0):
        cx = 0.5 + sign * (geo.body_half_width + 0.055)
        r = np.hypot((u - cx) / 0.06, (v - 0.165) / 0.065)
        out += 0.22 * np.sqrt(np.clip(1.0 - r * r, 0.0, 1.0)) + 0.05 * _smoothstep(1.0, 0.9, r)
        # Scapula: a soft wedge along the lateral chest wall, medial border outside the lungs.
        along = _smoothstep(0.14, 0.2, v) * _smoothstep(0.48, 0.3, v)
        edge = 0.5 + sign * (geo.body_half_width - 0.055 - 0.1 * (0.48 - v))
        across = _smoothstep(0.0, 0.015, sign * (u - edge))
        out += 0.05 * along * across
    return out


def _vessels(geo: _Geometry, rng: np.random.Generator, presence: np.ndarray) -> np.ndarray:
    """Bronchovascular markings: branching trees from each hilum, tapering outwards."""
    size = geo.size
    canvas = Image.new("F", (size, size), 0.0)
    draw = ImageDraw.Draw(canvas)
    segments: list[tuple[int, tuple[float, float, float, float], float, float]] = []
    for lung in geo.lungs:
        hx, hy = lung.hilum
        for base in (-115.0, -150.0, 175.0, 145.0, 115.0, 95.0):
            angle = base if lung.outward < 0 else 180.0 - base
            angle += rng.normal(0.0, 7.0)
            _grow(rng, segments, hx, hy, angle, 0.05 * size, 0.012 * size, 0)
    # Thick first, thin last: thin branches may overwrite the trunk they sprout from,
    # so draw the trunks after them.
    for _depth, xy, width, value in sorted(segments, key=lambda s: -s[0]):
        draw.line(xy, fill=value, width=max(1, round(width)))
    lines = _blur5(_blur5(_blur5(np.asarray(canvas, dtype=np.float32))))
    # Fine interstitial texture so the lungs are not flat between the vessels.
    texture = 0.025 * _smooth_noise(rng, max(8, size // 12), (size, size))
    return (lines + texture) * presence


def _grow(
    rng: np.random.Generator,
    out: list[tuple[int, tuple[float, float, float, float], float, float]],
    x: float,
    y: float,
    angle: float,
    length: float,
    width: float,
    depth: int,
) -> None:
    """Recursive binary branching with shrinking length and calibre."""
    if depth > 5:
        return
    rad = math.radians(angle)
    nx, ny = x + length * math.cos(rad), y + length * math.sin(rad)
    out.append((depth, (x, y, nx, ny), width, 0.16 * (0.7**depth)))
    for turn in (-1.0, 1.0):
        spread = turn * rng.uniform(12.0, 30.0)
        scale = rng.uniform(0.72, 0.88)
        _grow(rng, out, nx, ny, angle + spread, length * scale, width * 0.7, depth + 1)


def _breasts(size: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Breast shadows over the lower zones, each with a curved lower edge."""
    out = np.zeros((size, size), dtype=np.float32)
    for cx in (0.27, 0.73):
        r = np.sqrt(((u - cx) / 0.17) ** 2 + ((v - 0.66) / 0.12) ** 2)
        out += 0.09 * _smoothstep(1.0, 0.8, r) * _smoothstep(0.52, 0.64, v)
    return out


def _stomach_bubble(geo: _Geometry, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Gas in the gastric fundus under the left hemidiaphragm (flat fluid level below)."""
    dx, dy = geo.lungs[1].dome
    cx, cy = dx / geo.size - 0.01, dy / geo.size + 0.065
    r = np.sqrt(((u - cx) / 0.05) ** 2 + ((v - cy) / 0.028) ** 2)
    level = _smoothstep(cy + 0.012, cy + 0.006, v)
    return (-0.18 * _smoothstep(1.0, 0.75, r) * level).astype(np.float32)


def _anatomy(seed: int, size: int) -> _Anatomy:
    rng = np.random.default_rng([seed, _STREAM_ANATOMY])
    geo = _geometry(rng, size)
    sex = "F" if rng.random() < 0.5 else "M"
    age = int(rng.integers(18, 76))
    u, v = _grid(size)
    density = _body(geo, u, v)
    air, presence = _lung_air(geo, v)
    density -= air
    density += _heart(geo, u, v, presence)
    _trachea(geo, density)
    _spine(geo, density)
    density += _bones(geo, rng, presence)
    density += _shoulders(geo, u, v)
    vessels = _vessels(geo, rng, presence)
    density += vessels
    if sex == "F":
        density += _breasts(size, u, v)
    density += _stomach_bubble(geo, u, v)
    # Uneven exposure and processing: a gentle seeded low-frequency field.
    density *= 0.96 + 0.08 * _smooth_noise(rng, 5, (size, size))
    return _Anatomy(geo, density, presence, air, vessels, sex, age)


# --------------------------------------------------------------------------- lesions


@dataclass(frozen=True)
class _Lesion:
    mark: Mark
    y0: int
    x0: int
    patch: np.ndarray  # density added over rows y0.., columns x0..
    text: str


def _rounded(value: float) -> float:
    return round(float(value), 1)


def _ellipse_mark(finding: str, cx: float, cy: float, rx: float, ry: float) -> Mark:
    geometry = {"cx": _rounded(cx), "cy": _rounded(cy), "rx": _rounded(rx), "ry": _rounded(ry)}
    return Mark(finding, "ellipse", geometry)


def _ellipse_coords(mark: Mark, size: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Normalised radius and polar angle over the mark's bounding box."""
    g = mark.geometry
    y0, x0, inside = _mark_patch(mark, (size, size))
    xs = np.arange(x0, x0 + inside.shape[1], dtype=np.float32)[None, :] + 0.5
    ys = np.arange(y0, y0 + inside.shape[0], dtype=np.float32)[:, None] + 0.5
    ex, ey = (xs - g["cx"]) / g["rx"], (ys - g["cy"]) / g["ry"]
    return y0, x0, np.sqrt(ex * ex + ey * ey), np.arctan2(ey, ex)


def _zone(lung: _Lung, y: float) -> str:
    top, bottom = lung.box[1], lung.dome[1]
    third = (y - top) / max(bottom - top, 1.0)
    return "upper" if third < 1 / 3 else "middle" if third < 2 / 3 else "lower"


class _Placer:
    """Finds lesion positions inside the lungs that do not overlap earlier lesions."""

    def __init__(self, anatomy: _Anatomy) -> None:
        self.anatomy = anatomy
        self.size = anatomy.geometry.size
        self.taken: list[tuple[float, float, float, float]] = []

    def free(self, box: tuple[float, float, float, float]) -> bool:
        gap = 0.01 * self.size
        return all(
            box[2] + gap < t[0] or t[2] + gap < box[0] or box[3] + gap < t[1] or t[3] + gap < box[1]
            for t in self.taken
        )

    def take(self, box: tuple[float, float, float, float]) -> None:
        self.taken.append(box)

    def lung(self, rng: np.random.Generator) -> _Lung:
        return self.anatomy.geometry.lungs[int(rng.integers(0, 2))]

    def ellipse(
        self,
        rng: np.random.Generator,
        finding: str,
        radius: tuple[float, float],
        zones: tuple[float, float, float],
    ) -> tuple[Mark, _Lung]:
        """An ellipse mark inside one lung, in a zone drawn with the given odds."""
        size = self.size
        for _ in range(200):
            lung = self.lung(rng)
            r = rng.uniform(*radius) * size
            rx, ry = r * rng.uniform(0.85, 1.15), r * rng.uniform(0.85, 1.15)
            zone = int(rng.choice(3, p=zones))
            cx, cy = self.point_in_zone(rng, lung, zone)
            mark = _ellipse_mark(finding, cx, cy, rx, ry)
            box = (cx - rx, cy - ry, cx + rx, cy + ry)
            if self.free(box) and self.inside_lung(mark, lung, 0.97):
                self.take(box)
                return mark, lung
        raise RuntimeError(f"could not place {finding}")  # pragma: no cover - never seen

    def point_in_zone(
        self, rng: np.random.Generator, lung: _Lung, zone: int
    ) -> tuple[float, float]:
        """A random point of the lung in its upper (0), middle (1) or lower (2) third."""
        top, bottom = lung.box[1], lung.dome[1]
        third = (bottom - top) / 3
        y = rng.uniform(top + zone * third, top + (zone + 1) * third)
        row = np.flatnonzero(lung.mask[min(int(y), self.size - 1)])
        if row.size == 0:
            return lung.hilum
        return float(rng.uniform(row[0], row[-1] + 1)), float(y)

    def inside_lung(self, mark: Mark, lung: _Lung, fraction: float) -> bool:
        """Whether at least ``fraction`` of the mark's area lies in the lung."""
        y0, x0, inside = _mark_patch(mark, (self.size, self.size))
        lungs = lung.mask[y0 : y0 + inside.shape[0], x0 : x0 + inside.shape[1]]
        return inside.any() and (inside & lungs).sum() >= fraction * inside.sum()


def _nodule(rng: np.random.Generator, placer: _Placer) -> list[_Lesion]:
    """Fuzzy round opacity, 1-3 cm, slightly lobulated, with poorly defined margins."""
    mark, lung = placer.ellipse(rng, "nodule", (0.017, 0.032), (0.4, 0.35, 0.25))
    y0, x0, r, theta = _ellipse_coords(mark, placer.size)
    lobes = 1.0 + 0.07 * np.sin(3 * theta + rng.uniform(0, 2 * np.pi))
    core = np.exp(-2.6 * (r * lobes) ** 2)
    patch = rng.uniform(0.28, 0.36) * core * _smoothstep(1.0, 0.8, r)
    return [_Lesion(mark, y0, x0, patch.astype(np.float32), _where(lung, mark) + " nodule")]


def _calcified_nodule(rng: np.random.Generator, placer: _Placer) -> list[_Lesion]:
    """Small, very dense, sharply marginated round spot (calcified granuloma)."""
    mark, lung = placer.ellipse(rng, "calcified_nodule", (0.004, 0.0075), (0.3, 0.35, 0.35))
    y0, x0, r, _theta = _ellipse_coords(mark, placer.size)
    sphere = np.sqrt(np.clip(1.0 - (r / 0.9) ** 2, 0.0, 1.0))
    patch = rng.uniform(0.5, 0.65) * np.minimum(1.0, 1.6 * sphere)
    text = _where(lung, mark) + " calcified nodule"
    return [_Lesion(mark, y0, x0, patch.astype(np.float32), text)]


def _cavity(rng: np.random.Generator, placer: _Placer) -> list[_Lesion]:
    """Thick, irregular wall around a lucent (air-filled) centre, with a hazy rim."""
    mark, lung = placer.ellipse(rng, "cavitary_lesion", (0.022, 0.04), (0.8, 0.15, 0.05))
    y0, x0, r, theta = _ellipse_coords(mark, placer.size)
    inner = rng.uniform(0.42, 0.58) + 0.06 * np.sin(2 * theta + rng.uniform(0, 6.3))
    inner = inner + 0.04 * np.sin(5 * theta + rng.uniform(0, 6.3))
    wall = _smoothstep(inner - 0.07, inner + 0.05, r) * _smoothstep(1.0, 0.68, r)
    lucent = _smoothstep(inner, inner - 0.12, r)
    patch = rng.uniform(0.26, 0.34) * wall - 0.045 * lucent
    text = _where(lung, mark) + " cavitary lesion"
    return [_Lesion(mark, y0, x0, patch.astype(np.float32), text)]


def _hilar(rng: np.random.Generator, placer: _Placer) -> list[_Lesion]:
    """Lobulated enlargement of one hilum: a cluster of overlapping round nodes."""
    size = placer.size
    sides = [lung for lung in placer.anatomy.geometry.lungs if placer.free(_hilum_box(lung, size))]
    if not sides:
        raise ValueError("no free hilum left for hilar_adenopathy")
    lung = sides[int(rng.integers(0, len(sides)))]
    rx, ry = rng.uniform(0.034, 0.046) * size, rng.uniform(0.048, 0.062) * size
    cy = lung.hilum[1] + rng.uniform(-0.01, 0.015) * size
    row = np.flatnonzero(lung.mask[int(cy)])
    medial = float(row[-1] + 1) if lung.outward < 0 else float(row[0])
    cx = medial + lung.outward * 0.7 * rx
    mark = _ellipse_mark("hilar_adenopathy", cx, cy, rx, ry)
    placer.take((cx - rx, cy - ry, cx + rx, cy + ry))
    y0, x0, r, theta = _ellipse_coords(mark, size)
    ex, ey = r * np.cos(theta), r * np.sin(theta)
    nodes = np.zeros_like(r)
    # Nodes at the top, the bottom and the lateral side fill the mark; more at random.
    out = float(lung.outward)
    spots = [(0.0, -0.45), (0.0, 0.45), (0.45 * out, 0.0)]
    spots += [(rng.uniform(-0.3, 0.3), rng.uniform(-0.4, 0.4)) for _ in range(rng.integers(1, 3))]
    for nx, ny in spots:
        nr = rng.uniform(0.48, 0.56)
        d2 = ((ex - nx) ** 2 + (ey - ny) ** 2) / nr**2
        nodes += np.clip(1.0 - d2, 0.0, 1.0) ** 2
    solid = (1.0 - np.exp(-3.0 * nodes)) * _smoothstep(1.0, 0.8, r)
    # The nodes hide the vessels they overlie: replace that texture by their own density.
    vessels = _clip_patch(placer.anatomy.vessels, y0, x0, solid.shape)
    patch = (rng.uniform(0.26, 0.32) - 0.8 * vessels) * solid
    text = f"{lung.side} hilar adenopathy"
    return [_Lesion(mark, y0, x0, patch.astype(np.float32), text)]


def _hilum_box(lung: _Lung, size: int) -> tuple[float, float, float, float]:
    hx, hy = lung.hilum
    return (hx - 0.06 * size, hy - 0.06 * size, hx + 0.06 * size, hy + 0.07 * size)


def _polygon_lesion(
    finding: str,
    placer: _Placer,
    y0: int,
    x0: int,
    patch: np.ndarray,
    text: str,
    support: np.ndarray | None = None,
) -> _Lesion:
    """Wrap a rendered irregular lesion with the polygon that encloses it.

    The polygon encloses ``support`` (default: where the patch is not negligible); the
    patch is cut to zero outside it so that the mark holds the whole lesion."""
    patch = np.where(patch > 1e-4 * float(patch.max()), patch, 0.0).astype(np.float32)
    if support is None:
        support = patch > 0
    patch = np.where(support, patch, 0.0).astype(np.float32)
    step = max(4, placer.size // 128)
    points = _enclosing_polygon(support, y0, x0, step)
    mark = Mark(finding, "polygon", {"points": points})
    ys = [p[1] for p in points]
    xs = [p[0] for p in points]
    placer.take((min(xs), min(ys), max(xs), max(ys)))
    return _Lesion(mark, y0, x0, patch, text)


def _blob_field(
    rng: np.random.Generator, cx: float, cy: float, w: float, h: float, count: int
) -> tuple[int, int, np.ndarray]:
    """Sum of smooth compact blobs scattered in a w x h ellipse (a patchy opacity)."""
    centres = []
    for _ in range(count):
        a, rr = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 1))
        centres.append((cx + 0.5 * w * 0.6 * rr * np.cos(a), cy + 0.5 * h * 0.6 * rr * np.sin(a)))
    radii = rng.uniform(0.16, 0.34, count) * min(w, h)
    pad = float(radii.max()) + 2
    x0, y0 = int(cx - 0.3 * w - pad), int(cy - 0.3 * h - pad)
    x1, y1 = int(cx + 0.3 * w + pad) + 1, int(cy + 0.3 * h + pad) + 1
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    field = np.zeros((y1 - y0, x1 - x0), dtype=np.float32)
    for (bx, by), br in zip(centres, radii, strict=True):
        d2 = ((xs - bx) ** 2 + (ys - by) ** 2) / br**2
        field += np.clip(1.0 - d2, 0.0, 1.0) ** 2
    return y0, x0, field


def _infiltrate(rng: np.random.Generator, placer: _Placer) -> list[_Lesion]:
    """Soft, ill-defined, patchy (mottled) opacity, mostly in an upper zone."""
    size = placer.size
    for _ in range(200):
        lung = placer.lung(rng)
        w, h = rng.uniform(0.1, 0.16) * size, rng.uniform(0.08, 0.13) * size
        zone = int(rng.choice(3, p=(0.65, 0.25, 0.1)))
        cx, cy = placer.point_in_zone(rng, lung, zone)
        probe = _ellipse_mark("infiltrate", cx, cy, 0.5 * w, 0.5 * h)
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if placer.free(box) and placer.inside_lung(probe, lung, 0.9):
            break
    else:  # pragma: no cover - never seen
        raise RuntimeError("could not place infiltrate")
    y0, x0, field = _blob_field(rng, cx, cy, w, h, int(rng.integers(8, 13)))
    # Patchy and mottled: coarse and fine random modulation of a soft, ill-defined blob.
    mottle = 0.45 + 0.55 * _smooth_noise(rng, 6, field.shape)
    mottle *= 0.7 + 0.3 * _smooth_noise(rng, max(8, int(w) // 6), field.shape)
    presence = _clip_patch(placer.anatomy.presence, y0, x0, field.shape)
    patch = rng.uniform(0.3, 0.36) * (1.0 - np.exp(-1.5 * field)) * mottle * presence
    y0c, x0c, patch = _crop_to_image(y0, x0, patch, size)
    text = f"{lung.side} {_zone(lung, cy)} zone infiltrate"
    return [_polygon_lesion("infiltrate", placer, y0c, x0c, patch, text)]


def _fibrosis(rng: np.random.Generator, placer: _Placer) -> list[_Lesion]:
    """Coarse reticular and linear (scarring) opacities with some haze in an upper zone."""
    size = placer.size
    for _ in range(200):
        lung = placer.lung(rng)
        w, h = rng.uniform(0.1, 0.13) * size, rng.uniform(0.09, 0.12) * size
        top = lung.box[1]
        cy = top + rng.uniform(0.09, 0.15) * size
        row = np.flatnonzero(lung.mask[int(cy)])
        cx = 0.5 * (row[0] + row[-1] + 1) + rng.uniform(-0.02, 0.02) * size
        probe = _ellipse_mark("fibrosis", cx, cy, 0.5 * w, 0.5 * h)
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if placer.free(box) and placer.inside_lung(probe, lung, 0.85):
            break
    else:  # pragma: no cover - never seen
        raise RuntimeError("could not place fibrosis")
    x0, y0 = int(cx - w / 2) - 2, int(cy - h / 2) - 2
    pw, ph = int(w) + 5, int(h) + 5
    lines = _reticulum(rng, (ph, pw), (lung.hilum[0] - x0, lung.hilum[1] - y0), size)
    xs = np.arange(pw, dtype=np.float32)[None, :] + x0 + 0.5
    ys = np.arange(ph, dtype=np.float32)[:, None] + y0 + 0.5
    r = np.sqrt(((xs - cx) / (0.5 * w)) ** 2 + ((ys - cy) / (0.5 * h)) ** 2)
    envelope = np.clip(1.0 - r * r, 0.0, 1.0)
    haze = envelope * (0.5 + 0.5 * _smooth_noise(rng, 5, (ph, pw)))
    presence = _clip_patch(placer.anatomy.presence, y0, x0, (ph, pw))
    patch = (0.2 * lines * np.sqrt(envelope) + 0.07 * haze) * presence
    y0c, x0c, patch = _crop_to_image(y0, x0, patch, size)
    text = f"{lung.side} upper zone reticular (fibrotic) markings"
    return [_polygon_lesion("fibrosis", placer, y0c, x0c, patch, text)]


def _reticulum(
    rng: np.random.Generator, shape: tuple[int, int], hilum: tuple[float, float], size: int
) -> np.ndarray:
    """A fine irregular net (contour lines of a random field, which close into small
    polygons as reticulation does) crossed by a few coarser scar bands running towards
    the hilum, as fibrosis retracts the lung towards it."""
    ph, pw = shape
    field = _smooth_noise(rng, max(6, round(pw / (0.012 * size))), shape)
    net = np.exp(-(((field - 0.5) / 0.045) ** 2)) + np.exp(-(((field - 0.25) / 0.04) ** 2))
    canvas = Image.new("F", (pw, ph), 0.0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(3, 6))):
        x, y = rng.uniform(0.15, 0.85) * pw, rng.uniform(0.1, 0.7) * ph
        heading = math.atan2(hilum[1] - y, hilum[0] - x) + rng.normal(0.0, 0.25)
        length = rng.uniform(0.25, 0.5) * pw
        bend = rng.normal(0.0, 0.15)
        turns = heading + bend * np.linspace(0.0, 1.0, 6)
        steps = length * np.linspace(0.0, 1.0, 6)
        path = list(zip(x + steps * np.cos(turns), y + steps * np.sin(turns), strict=True))
        draw.line(path, fill=float(rng.uniform(0.7, 1.0)), width=max(1, round(0.004 * size)))
    scars = np.asarray(canvas, dtype=np.float32)
    return _blur5(_blur5(0.75 * net.astype(np.float32) + scars))


def _effusion(rng: np.random.Generator, placer: _Placer) -> list[_Lesion]:
    """Fluid at a lung base: the costophrenic angle and dome fade into a homogeneous
    opacity whose upper edge (meniscus) climbs the lateral chest wall."""
    size = placer.size
    anatomy = placer.anatomy
    sides = [lung for lung in anatomy.geometry.lungs if placer.free(_base_box(lung, size))]
    if not sides:
        raise ValueError("both lung bases already hold a lesion")
    lung = sides[int(rng.integers(0, len(sides)))]
    x0, _, x1, y1 = lung.box
    dome_x, dome_y = lung.dome
    small = rng.random() < 0.45
    lateral = x0 if lung.outward < 0 else x1
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
    from_wall = np.abs(xs - lateral)
    if small:
        # Fluid only in the lateral recess: a blunted costophrenic angle whose meniscus
        # rises steeply against the chest wall and stops before the dome's summit.
        level = dome_y + rng.uniform(0.015, 0.03) * size
        meniscus = level - rng.uniform(0.05, 0.08) * size * np.exp(-from_wall / (0.045 * size))
        span = abs(dome_x - lateral)
        across = _smoothstep(0.95 * span, 0.6 * span, from_wall)
        ramp = 0.014 * size
    else:
        # The dome is hidden; the upper edge is a concave curve, highest laterally, and
        # fades upwards as the fluid layer thins.
        level = dome_y - rng.uniform(0.0, 0.06) * size
        climb = rng.uniform(0.07, 0.11) * size
        meniscus = level - climb * (1.0 - np.clip(from_wall / (x1 - x0), 0.0, 1.0)) ** 2
        across = np.ones_like(from_wall)
        ramp = 0.03 * size
    y0 = max(0, int(meniscus.min() - 2))
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    fill = _smoothstep(0.0, ramp, ys - meniscus) * across
    region = (slice(y0, y1), slice(x0, x1))
    own = lung.mask[region] | (_blur5(lung.mask[region].astype(np.float32)) > 0)
    patch = (anatomy.air[region] - anatomy.vessels[region]) * fill * own
    patch = np.maximum(patch, 0.0)
    text = f"{'small ' if small else ''}{lung.side} pleural effusion"
    return [_polygon_lesion("pleural_effusion", placer, y0, x0, patch, text)]


def _base_box(lung: _Lung, size: int) -> tuple[float, float, float, float]:
    x0, _, x1, y1 = lung.box
    return (float(x0), lung.dome[1] - 0.17 * size, float(x1), float(y1))


def _miliary(rng: np.random.Generator, placer: _Placer) -> list[_Lesion]:
    """Innumerable tiny (1-3 mm) nodules evenly scattered through both lungs."""
    size = placer.size
    radius = rng.uniform(0.0022, 0.0032) * size
    amp = rng.uniform(0.075, 0.1)
    lesions = []
    for lung in placer.anatomy.geometry.lungs:
        x0, y0, x1, y1 = lung.box
        inside = np.flatnonzero(lung.mask[y0:y1, x0:x1])
        count = int(rng.integers(900, 1300))
        picks = rng.choice(inside, size=count, replace=False)
        cy = picks // (x1 - x0) + y0 + rng.uniform(0, 1, count)
        cx = picks % (x1 - x0) + x0 + rng.uniform(0, 1, count)
        radii = radius * rng.uniform(0.75, 1.25, count)
        strengths = amp * rng.uniform(0.7, 1.3, count)
        patch = _splat(cx, cy, radii, strengths, (y0, x0, y1, x1))
        presence = _clip_patch(placer.anatomy.presence, y0, x0, patch.shape)
        patch *= presence
        # The pattern fills the lung, so its mark is the lung field rather than the
        # outline of the scattered nodules (which would zigzag between them).
        lesion = _polygon_lesion("miliary", placer, y0, x0, patch, "", presence > 0.02)
        placer.taken.pop()  # diffuse: focal lesions may still sit among the nodules
        lesions.append(lesion)
    lesions[0] = replace(lesions[0], text="miliary nodules throughout both lungs")
    return lesions


def _splat(
    cx: np.ndarray,
    cy: np.ndarray,
    radii: np.ndarray,
    strengths: np.ndarray,
    box: tuple[int, int, int, int],
) -> np.ndarray:
    """Accumulate many tiny spherical nodules into a patch covering ``box``."""
    y0, x0, y1, x1 = box
    h, w = y1 - y0, x1 - x0
    k = math.ceil(radii.max()) + 1
    off = np.arange(-k, k + 1)
    px = np.floor(cx).astype(np.int64)[:, None, None] + off[None, None, :]
    py = np.floor(cy).astype(np.int64)[:, None, None] + off[None, :, None]
    d2 = ((px + 0.5 - cx[:, None, None]) ** 2 + (py + 0.5 - cy[:, None, None]) ** 2) / (
        radii[:, None, None] ** 2
    )
    values = strengths[:, None, None] * np.sqrt(np.clip(1.0 - d2, 0.0, 1.0))
    px, py = np.broadcast_arrays(px - x0, py - y0)
    keep = (px >= 0) & (px < w) & (py >= 0) & (py < h) & (values > 0)
    flat = py[keep] * w + px[keep]
    return np.bincount(flat, weights=values[keep], minlength=h * w).reshape(h, w).astype(np.float32)


def _clip_patch(image: np.ndarray, y0: int, x0: int, shape: tuple[int, int]) -> np.ndarray:
    """The window of ``image`` at (y0, x0) with the given shape, zero outside the image."""
    out = np.zeros(shape, dtype=np.float32)
    ya, xa = max(y0, 0), max(x0, 0)
    yb, xb = min(y0 + shape[0], image.shape[0]), min(x0 + shape[1], image.shape[1])
    if yb > ya and xb > xa:
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = image[ya:yb, xa:xb]
    return out


def _crop_to_image(y0: int, x0: int, patch: np.ndarray, size: int) -> tuple[int, int, np.ndarray]:
    ya, xa = max(y0, 0), max(x0, 0)
    yb, xb = min(y0 + patch.shape[0], size), min(x0 + patch.shape[1], size)
    return ya, xa, patch[ya - y0 : yb - y0, xa - x0 : xb - x0]


def _where(lung: _Lung, mark: Mark) -> str:
    return f"{lung.side} {_zone(lung, mark.geometry['cy'])} zone"


_RENDERERS = {
    "infiltrate": _infiltrate,
    "cavitary_lesion": _cavity,
    "nodule": _nodule,
    "pleural_effusion": _effusion,
    "hilar_adenopathy": _hilar,
    "miliary": _miliary,
    "fibrosis": _fibrosis,
    "calcified_nodule": _calcified_nodule,
}

# Placement order: the constrained, large lesions first so focal ones fit around them.
_PLACEMENT_ORDER = (
    "miliary",
    "pleural_effusion",
    "hilar_adenopathy",
    "fibrosis",
    "infiltrate",
    "cavitary_lesion",
    "nodule",
    "calcified_nodule",
)


# --------------------------------------------------------------------------- public API


def _check_seed_and_size(seed: int, size: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise ValueError(f"size must be an integer, not {size!r}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels, not {size}")


def _check_findings(findings: tuple[str, ...]) -> None:
    for finding in findings:
        if finding not in FINDINGS:
            raise ValueError(f"unknown finding {finding!r}; expected one of {', '.join(FINDINGS)}")
    for finding in set(findings):
        limit = _MAX_COUNT.get(finding, _MAX_FOCAL)
        if findings.count(finding) > limit:
            raise ValueError(f"at most {limit} x {finding} per phantom")


def make_phantom(seed: int, findings: tuple[str, ...] = (), *, size: int = 1024) -> Phantom:
    """A synthetic PA chest radiograph with the given findings (none: a normal chest).

    Deterministic for (seed, findings, size); the order of ``findings`` does not matter.
    A finding may repeat (e.g. two nodules). The lesions only change pixels inside their
    marks: the same seed without findings gives the identical image elsewhere.
    """
    _check_seed_and_size(seed, size)
    if isinstance(findings, str):
        raise ValueError("findings must be a tuple of finding names, not a string")
    findings = tuple(findings)
    _check_findings(findings)
    size, seed = int(size), int(seed)
    anatomy = _anatomy(seed, size)
    density = anatomy.density.copy()
    placer = _Placer(anatomy)
    lesions: list[_Lesion] = []
    for finding in _PLACEMENT_ORDER:
        for occurrence in range(findings.count(finding)):
            stream = [seed, _STREAM_LESION + FINDINGS.index(finding), occurrence]
            lesions.extend(_RENDERERS[finding](np.random.default_rng(stream), placer))
    for lesion in lesions:
        h, w = lesion.patch.shape
        density[lesion.y0 : lesion.y0 + h, lesion.x0 : lesion.x0 + w] += lesion.patch
    noise = np.random.default_rng([seed, _STREAM_NOISE]).standard_normal(
        (size, size), dtype=np.float32
    )
    stored = _OFFSET + _GAIN * density + _NOISE_SD * noise
    pixels = np.clip(np.rint(stored), 0, MAX_STORED).astype(np.uint16)
    order = {finding: k for k, finding in enumerate(FINDINGS)}
    marks = tuple(sorted((lesion.mark for lesion in lesions), key=lambda m: order[m.finding]))
    texts = [lesion.text for lesion in lesions if lesion.text]
    what = "; ".join(texts) if texts else "normal chest, no abnormality"
    return Phantom(
        pixels=pixels,
        marks=marks,
        seed=seed,
        sex=anatomy.sex,
        age_years=anatomy.age_years,
        pixel_spacing_mm=round(FIELD_OF_VIEW_MM / size, 6),
        description=f"Synthetic phantom (not a patient image): {what}",
    )


# --------------------------------------------------------------------------- technique faults

# Faults a radiographer is taught to see, applied to a finished phantom (image-quality
# teaching cases): what each one breaks in the image-quality scheme's terms.
FAULTS = {
    "apices_cut": "collimated too low: both lung apices are cut off (inclusion fails)",
    "overexposed": "overexposed: the lung fields are burnt out and their markings lost",
    "underexposed": "underexposed: a grey, noisy image; the vertebrae are not seen through "
                    "the heart",
}


def apply_fault(pixels: np.ndarray, fault: str, seed: int) -> np.ndarray:
    """``pixels`` (a phantom's stored values) as a radiograph with ``fault`` in its
    technique. Deterministic for (pixels, fault, seed)."""
    if fault not in FAULTS:
        raise ValueError(f"unknown technique fault {fault!r}: one of {', '.join(FAULTS)}")
    image = pixels.astype(np.float32)
    if fault == "apices_cut":
        # The collimator's shadow: no exposure above the field, so bright like bone.
        image[: round(image.shape[0] * 0.22), :] = MAX_STORED * 0.92
    elif fault == "overexposed":
        image = (image - 1100.0) * 0.8
    else:
        noise = np.random.default_rng([seed, 7]).standard_normal(image.shape, dtype=np.float32)
        image = 0.35 * image + 2300.0 + 55.0 * noise
    return np.clip(np.rint(image), 0, MAX_STORED).astype(np.uint16)


def burn_in_text(pixels: np.ndarray, lines: tuple[str, ...]) -> np.ndarray:
    """``pixels`` with ``lines`` burned into the top left corner, as a CR/DX unit prints a
    marker and the patient's details: what a pixel review must find and redact."""
    size = pixels.shape[0]
    layer = Image.new("L", (pixels.shape[1], size), 0)
    draw = ImageDraw.Draw(layer)
    font = ImageFont.load_default(size=max(12, size // 40))
    for n, line in enumerate(lines):
        draw.text((size // 40, size // 40 + n * size // 30), line, fill=255, font=font)
    text = np.asarray(layer) > 127
    out = pixels.copy()
    out[text] = MAX_STORED
    return out


def phantom_pixels(seed: int, findings: tuple[str, ...], size: int, fault: str | None = None,
                   burned_in: tuple[str, ...] = ()) -> tuple[Phantom, np.ndarray]:
    """The phantom and its stored pixels with the technique fault and burned-in text."""
    phantom = make_phantom(seed, findings, size=size)
    pixels = phantom.pixels
    if fault:
        pixels = apply_fault(pixels, fault, seed)
    if burned_in:
        pixels = burn_in_text(pixels, burned_in)
    return phantom, pixels
