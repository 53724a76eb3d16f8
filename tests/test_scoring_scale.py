"""One rating scale for FROC (0-100, the mark confidence) and a physical point tolerance."""

from __future__ import annotations

import math

import pytest

from app.quizzes.scoring import (
    MARK_RATING_SCALE,
    POINT_TOLERANCE_MM,
    Lesion,
    likelihood_to_mark_rating,
    localise,
    mark_rating,
    point_in_lesion,
    point_tolerance_px,
    score_attempt,
)
from tests.test_scoring import ellipse, point, read, truth


@pytest.mark.parametrize(
    ("value", "low", "high", "expected"),
    [(1, 1, 5, 0.0), (3, 1, 5, 50.0), (5, 1, 5, 100.0), (4, 1, 5, 75.0), (0, 0, 10, 0.0),
     (7, 0, 10, 70.0), (60, 0, 100, 60.0),
     # outside the scale (never stored: answers are validated) is clipped to it
     (9, 1, 5, 100.0), (-2, 1, 5, 0.0)],
)
def test_likelihood_to_mark_rating(value, low, high, expected) -> None:
    assert likelihood_to_mark_rating(value, low, high) == pytest.approx(expected)


@pytest.mark.parametrize(("value", "low", "high"), [(3, 5, 5), (3, 5, 1), (math.nan, 1, 5),
                                                    (math.inf, 1, 5)])
def test_likelihood_to_mark_rating_refuses_bad_input(value, low, high) -> None:
    with pytest.raises(ValueError):
        likelihood_to_mark_rating(value, low, high)


def test_mark_rating_is_the_confidence_else_the_converted_likelihood_else_mid_scale() -> None:
    assert MARK_RATING_SCALE == (0.0, 100.0)
    with_confidence = point(1, "nodule", 1, 1, 35)
    without = point(1, "nodule", 1, 1)
    assert mark_rating(with_confidence, read(1, True, rating=5), (1, 5)) == 35.0
    assert mark_rating(without, read(1, True, rating=5), (1, 5)) == 100.0
    assert mark_rating(without, read(1, True, rating=2), (1, 5)) == 25.0
    assert mark_rating(without, read(1, True), (1, 5)) == 50.0
    assert mark_rating(without, read(1, True, rating=2), None) == 50.0  # no scale: not usable


def test_froc_ratings_are_on_one_scale_across_cases() -> None:
    # A false mark at confidence 60 on a normal case; a lesion marked without a confidence on
    # a case rated 4 of 5 (= 75 on the mark scale). Mixing scales ranked the lesion at 4,
    # below the false mark: AFROC 0. On one scale the lesion ranks above it: AFROC 1.
    lesion = ellipse("L", 1, "nodule", 100, 100, 20, 20)
    pairs = [
        (truth(1, True, findings={"nodule"}, lesions=(lesion,)),
         read(1, True, rating=4, marks=(point(1, "nodule", 100, 100),))),
        (truth(2, False), read(2, False, rating=2, marks=(point(2, "nodule", 50, 50, 60),))),
    ]
    attempt = score_attempt(pairs, rating_scale=(1, 5))
    assert attempt.cases[0].localisation.lesions[0].rating == 75.0
    assert attempt.metrics["afroc"] == 1.0


def test_point_tolerance_is_10_mm_from_the_pixel_spacing() -> None:
    assert POINT_TOLERANCE_MM == 10.0
    # PixelSpacing is (row spacing, column spacing): rows are 0.2 mm apart, columns 0.1 mm.
    assert point_tolerance_px((0.2, 0.1), columns=3000) == pytest.approx((100.0, 50.0))
    assert point_tolerance_px((0.5, 0.5), columns=3000) == pytest.approx((20.0, 20.0))


def test_point_tolerance_without_spacing_assumes_a_43_cm_wide_image() -> None:
    # No spacing: the image is taken to span the 43 cm of a standard chest detector.
    assert point_tolerance_px(None, columns=2150) == pytest.approx((50.0, 50.0))
    assert point_tolerance_px(None, columns=430) == pytest.approx((10.0, 10.0))
    with pytest.raises(ValueError):
        point_tolerance_px(None, columns=0)
    with pytest.raises(ValueError):
        point_tolerance_px((0.0, 0.1), columns=100)


def test_two_images_of_different_spacing_take_different_pixel_tolerances() -> None:
    # The same point lesion and a mark 30 px away: inside 10 mm at 0.2 mm/px (50 px), outside
    # at 0.5 mm/px (20 px).
    fine = Lesion("F", 1, "nodule", "point", {"x": 100, "y": 100},
                  point_radius=point_tolerance_px((0.2, 0.2), columns=2000))
    coarse = Lesion("C", 2, "nodule", "point", {"x": 100, "y": 100},
                    point_radius=point_tolerance_px((0.5, 0.5), columns=2000))
    assert point_in_lesion(fine, 130, 100)
    assert not point_in_lesion(coarse, 130, 100)
    marks = (point(1, "nodule", 130, 100, 50), point(2, "nodule", 130, 100, 50))
    result = localise(truth(1, True, lesions=(fine, coarse)), read(1, True, marks=marks))
    assert [x.hit for x in result.lesions] == [True, False]
