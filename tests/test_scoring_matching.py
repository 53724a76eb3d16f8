"""Crediting marks to lesions by a maximum matching: each mark to at most one lesion, each
lesion once, the most lesions and then the highest total rating, whatever the order of the
reference marks or of the trainee's marks."""

from __future__ import annotations

import itertools
import random

import pytest

from app.quizzes.scoring import NL_TAKEN, Lesion, Mark, localise, score_attempt
from tests.test_scoring import ellipse, point, read, truth


def test_maximum_matching_credits_both_lesions_where_greedy_credited_one() -> None:
    # A large lesion A and a small one B inside it. The 90 mark lies in both, the 50 mark in
    # A only. A greedy pass gave the 90 mark the first lesion in reference order (A) and
    # left the 50 mark with nothing: 1 lesion of 2. Matching gives 90 -> B, 50 -> A.
    big = ellipse("A", 1, "nodule", 100, 100, 40, 40)
    small = ellipse("B", 1, "nodule", 125, 100, 8, 8)
    both = point(1, "nodule", 125, 100, 90)
    only_big = point(1, "nodule", 75, 100, 50)
    for lesions in ((big, small), (small, big)):
        for marks in ((both, only_big), (only_big, both)):
            result = localise(truth(1, True, lesions=lesions), read(1, True, marks=marks))
            assert (result.ll, result.nl) == (2, 0)
            credited = {lesion.lesion_id: lesion.rating for lesion in result.lesions}
            assert credited == {"A": 50.0, "B": 90.0}


def test_the_highest_total_rating_wins_when_marks_compete() -> None:
    # One lesion, three marks inside it: the 80 mark is credited, the others are NLs.
    lesion = ellipse("L", 1, "nodule", 100, 100, 20, 20)
    marks = (point(1, "nodule", 95, 100, 30), point(1, "nodule", 105, 100, 80),
             point(1, "nodule", 100, 95, 60))
    result = localise(truth(1, True, lesions=(lesion,)), read(1, True, marks=marks))
    assert [m.status for m in result.marks] == ["NL", "LL", "NL"]
    assert {m.reason for m in result.marks if m.status == "NL"} == {NL_TAKEN}
    assert result.lesions[0].rating == 80.0


def test_more_lesions_before_a_higher_total() -> None:
    # The 100 mark is in A and B, the 1 mark in A only. Crediting 100 -> A alone would be the
    # single highest rating, but two lesions (100 -> B, 1 -> A) is the maximum matching.
    a = ellipse("A", 1, "nodule", 100, 100, 30, 30)
    b = ellipse("B", 1, "nodule", 120, 100, 8, 8)
    marks = (point(1, "nodule", 120, 100, 100), point(1, "nodule", 80, 100, 1))
    result = localise(truth(1, True, lesions=(a, b)), read(1, True, marks=marks))
    assert result.ll == 2


# ---- property: order never matters, and the result is a maximum matching ------------------


def random_case(rng: random.Random) -> tuple[list[Lesion], list[Mark]]:
    """Up to 4 lesions and 4 marks on two images, crowded so that regions overlap."""
    lesions = [
        Lesion(f"L{n}", rng.choice([1, 2]), rng.choice(["a", "b"]), "ellipse",
               {"cx": rng.choice([40, 50, 60]), "cy": 50, "rx": rng.choice([5, 15, 25]),
                "ry": rng.choice([10, 20])},
               rng.choice([None, 1.0, 3.0]))
        for n in range(rng.randint(1, 4))
    ]
    if any(lesion.weight is None for lesion in lesions):
        lesions = [Lesion(x.id, x.image_id, x.finding, x.shape, x.geometry) for x in lesions]
    marks = [
        point(rng.choice([1, 2]), rng.choice(["a", "b"]), rng.choice([35, 45, 50, 55, 65]),
              rng.choice([45, 50, 60]), rng.choice([10, 20, 20, 50, 90]))
        for _ in range(rng.randint(0, 4))
    ]
    return lesions, marks


def brute_force(lesions: list[Lesion], marks: list[Mark]) -> tuple[int, float]:
    """(most lesions credited, highest total rating among those) over every assignment."""
    from app.quizzes.scoring import findings_match, mark_position, point_in_lesion

    def eligible(m: Mark, lesion: Lesion) -> bool:
        return (m.image_id == lesion.image_id and findings_match(m.finding, lesion.finding, None)
                and point_in_lesion(lesion, *mark_position(m)))

    best = (0, 0.0)
    slots: list[int | None] = [*range(len(lesions))]
    for choice in itertools.product([None, *slots], repeat=len(marks)):
        used = [j for j in choice if j is not None]
        if len(used) != len(set(used)):
            continue
        if any(j is not None and not eligible(marks[i], lesions[j])
               for i, j in enumerate(choice)):
            continue
        total = sum(float(marks[i].confidence) for i, j in enumerate(choice) if j is not None)
        best = max(best, (len(used), total))
    return best


def figures(lesions: list[Lesion], marks: list[Mark]) -> tuple:
    normal = (truth(99, False), read(99, False, marks=(point(7, "a", 1, 1, 20),)))
    attempt = score_attempt([(truth(1, True, lesions=tuple(lesions)),
                              read(1, True, marks=tuple(marks))), normal])
    case = attempt.cases[0].localisation
    return (case.ll, case.nl, sorted((x.lesion_id, x.rating or -1.0) for x in case.lesions),
            attempt.metrics["afroc"], attempt.metrics["wafroc"])


@pytest.mark.parametrize("seed", range(300))
def test_crediting_is_a_maximum_matching_whatever_the_order(seed: int) -> None:
    rng = random.Random(seed)
    lesions, marks = random_case(rng)
    result = localise(truth(1, True, lesions=tuple(lesions)), read(1, True, marks=tuple(marks)))
    most, total = brute_force(lesions, marks)
    assert result.ll == most
    assert sum(m.rating for m in result.marks if m.status == "LL") == pytest.approx(total)
    expected = figures(lesions, marks)
    for _ in range(4):
        shuffled_lesions, shuffled_marks = lesions[:], marks[:]
        rng.shuffle(shuffled_lesions)
        rng.shuffle(shuffled_marks)
        got = figures(shuffled_lesions, shuffled_marks)
        assert got[:3] == expected[:3]
        # The FOMs: summing the same weights in another order may differ in the last bit.
        assert got[3:] == pytest.approx(expected[3:], abs=1e-12)
