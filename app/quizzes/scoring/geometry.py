"""Plane geometry of marks and reference regions, in image pixel coordinates.

Shapes (app/schemes/answers.py, ``MARK_SHAPES``): point {x, y}; ellipse {cx, cy, rx,
ry}; rectangle {x, y, width, height}; polygon {points: [[x, y], ...]}.

A reference **point** is not a region: it counts as found within a tolerance of
``POINT_TOLERANCE_MM`` (10 mm) around it, converted to pixels with the image's pixel
spacing (``point_tolerance_px``). With anisotropic pixels the 10 mm disc is an ellipse in
pixels. An image without a usable pixel spacing is taken to be ``DETECTOR_WIDTH_MM`` (43 cm,
the standard 43 x 43 cm / 17-inch chest detector) wide, so the tolerance is
10/430 = 2.3 % of the image width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: A reference point counts as found within this distance of it.
POINT_TOLERANCE_MM = 10.0

#: Width assumed for an image without a pixel spacing (a 43 cm chest detector).
DETECTOR_WIDTH_MM = 430.0

#: Last-resort point tolerance in pixels, for callers that know nothing of the image (the
#: portal always gives ``Lesion.point_radius``; see results.truth_for).
POINT_LESION_RADIUS = 10.0

#: Tolerance, in pixels, for "on the edge counts as inside" with float coordinates.
EDGE_TOLERANCE = 1e-6


def point_tolerance_px(
    spacing_mm: tuple[float, float] | None, columns: int
) -> tuple[float, float]:
    """(x, y) radius in pixels of the 10 mm point tolerance on one image.

    ``spacing_mm`` is DICOM's (row spacing, column spacing): the distance between the
    centres of adjacent rows (vertical) and of adjacent columns (horizontal), in mm.
    Without it the image is taken to be 43 cm wide. ValueError for a spacing that is not
    positive, or no spacing and no width."""
    if spacing_mm is not None:
        row, column = (float(v) for v in spacing_mm)
        if not (row > 0 and column > 0 and math.isfinite(row + column)):
            raise ValueError("the pixel spacing must be two positive numbers")
        return POINT_TOLERANCE_MM / column, POINT_TOLERANCE_MM / row
    if columns <= 0:
        raise ValueError("without a pixel spacing the image width is needed")
    radius = POINT_TOLERANCE_MM * columns / DETECTOR_WIDTH_MM
    return radius, radius


def region_centre(shape: str, geometry: Mapping[str, Any]) -> tuple[float, float]:
    """Where a mark or region points: the point itself, or the centre of the shape.

    Polygons use the area centroid (shoelace formula), or the mean of the vertices when the
    area is ~0. The centroid of a strongly concave polygon can lie outside it: a mark is
    judged by that point all the same, so trainees are told marks are scored by centre."""
    geo = geometry
    if shape == "point":
        return float(geo["x"]), float(geo["y"])
    if shape == "ellipse":
        return float(geo["cx"]), float(geo["cy"])
    if shape == "rectangle":
        return float(geo["x"]) + float(geo["width"]) / 2, float(geo["y"]) + float(geo["height"]) / 2
    return _polygon_centroid(geo["points"])


def _polygon_centroid(points: Sequence[Sequence[float]]) -> tuple[float, float]:
    area2 = cx = cy = 0.0
    n = len(points)
    for i in range(n):
        x0, y0 = points[i]
        x1, y1 = points[(i + 1) % n]
        cross = x0 * y1 - x1 * y0
        area2 += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    if abs(area2) < 1e-12:
        return (
            sum(float(p[0]) for p in points) / n,
            sum(float(p[1]) for p in points) / n,
        )
    return cx / (3 * area2), cy / (3 * area2)


def in_region(
    shape: str,
    geometry: Mapping[str, Any],
    x: float,
    y: float,
    point_radius: tuple[float, float] | None = None,
) -> bool:
    """Is (x, y) inside the region? The boundary counts as inside.

    A point region is the ellipse of ``point_radius`` around it; without one, a disc of
    ``geometry["r"]`` or else ``POINT_LESION_RADIUS`` pixels."""
    geo = geometry
    eps = EDGE_TOLERANCE
    if shape == "ellipse":
        return _in_ellipse(float(geo["cx"]), float(geo["cy"]), abs(float(geo["rx"])),
                           abs(float(geo["ry"])), x, y)
    if shape == "rectangle":
        x0, y0 = float(geo["x"]), float(geo["y"])
        x1, y1 = x0 + float(geo["width"]), y0 + float(geo["height"])
        return (
            min(x0, x1) - eps <= x <= max(x0, x1) + eps
            and min(y0, y1) - eps <= y <= max(y0, y1) + eps
        )
    if shape == "point":
        if point_radius is None:
            radius = float(geo.get("r", POINT_LESION_RADIUS))
            return math.hypot(x - float(geo["x"]), y - float(geo["y"])) <= radius + eps
        return _in_ellipse(float(geo["x"]), float(geo["y"]), point_radius[0], point_radius[1],
                           x, y)
    return _in_polygon(geo["points"], x, y)


def _in_ellipse(cx: float, cy: float, rx: float, ry: float, x: float, y: float) -> bool:
    if rx == 0 or ry == 0:
        return False
    dx, dy = x - cx, y - cy
    # Scale the tolerance with the radii so that an edge point passes for any size.
    return (dx / rx) ** 2 + (dy / ry) ** 2 <= 1 + 2 * EDGE_TOLERANCE / min(rx, ry) + 1e-12


def _in_polygon(points: Sequence[Sequence[float]], x: float, y: float) -> bool:
    """Even-odd ray casting, with an explicit on-edge test first (ray casting alone gets
    edge points right only half the time)."""
    n = len(points)
    inside = False
    for i in range(n):
        x0, y0 = float(points[i][0]), float(points[i][1])
        x1, y1 = float(points[(i + 1) % n][0]), float(points[(i + 1) % n][1])
        if _on_segment(x0, y0, x1, y1, x, y):
            return True
        if (y0 > y) != (y1 > y):
            x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
            if x < x_cross:
                inside = not inside
    return inside


def _on_segment(x0: float, y0: float, x1: float, y1: float, x: float, y: float) -> bool:
    eps = EDGE_TOLERANCE
    if not (min(x0, x1) - eps <= x <= max(x0, x1) + eps):
        return False
    if not (min(y0, y1) - eps <= y <= max(y0, y1) + eps):
        return False
    length = math.hypot(x1 - x0, y1 - y0)
    if length == 0:
        return math.hypot(x - x0, y - y0) <= eps
    # Distance from the line = |cross product| / length.
    return abs((x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)) <= eps * length
