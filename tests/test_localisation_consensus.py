"""Consensus lesions: several experts' outlines of one lesion are one reference lesion.

The rule (app/quizzes/scoring/consensus.py): two outlines on the same image whose findings
are the same or compatible are one lesion when the centre of either lies inside the other
(a point outline is a disc of the point tolerance); lesions are the connected groups of
that relation."""

from __future__ import annotations

import random

import pytest

from app.quizzes.scoring import (
    Lesion,
    consensus_lesions,
    localise,
    outlines_overlap,
    score_attempt,
)
from tests.test_scoring import ellipse, point, read, truth

COMPATIBLE = {"tb_lesion": {"infiltrate", "nodule"}}


def rect(lesion_id: str, image_id: int, finding: str, x, y, w, h) -> Lesion:
    return Lesion(lesion_id, image_id, finding, "rectangle",
                  {"x": x, "y": y, "width": w, "height": h})


def dot(lesion_id: str, image_id: int, finding: str, x, y, radius=(10.0, 10.0)) -> Lesion:
    return Lesion(lesion_id, image_id, finding, "point", {"x": x, "y": y}, point_radius=radius)


def test_two_experts_outlining_one_lesion_make_one_lesion() -> None:
    # Two outlines of one infiltrate, neither byte-identical to the other.
    first = ellipse("0", 1, "infiltrate", 100, 100, 30, 20)
    second = ellipse("1", 1, "infiltrate", 110, 104, 28, 22)
    merged = consensus_lesions([first, second], COMPATIBLE)
    assert len(merged) == 1
    assert [o.source for o in merged[0].outlines] == ["0", "1"]
    # One trainee mark inside both: the lesion is found once, LLF and AFROC are 1.0.
    pairs = [
        (truth(1, True, findings={"infiltrate"}, lesions=merged),
         read(1, True, marks=(point(1, "infiltrate", 105, 102, 80),))),
        (truth(2, False), read(2, False)),
    ]
    attempt = score_attempt(pairs)
    assert attempt.metrics["lesion_localisation_sensitivity"] == 1.0
    assert attempt.metrics["afroc"] == 1.0 and attempt.metrics["wafroc"] == 1.0
    unmerged = score_attempt([(truth(1, True, lesions=(first, second)), pairs[0][1]), pairs[1]])
    assert unmerged.metrics["lesion_localisation_sensitivity"] == 0.5  # what merging fixes
    assert unmerged.metrics["afroc"] == 0.75


def test_a_mark_inside_any_member_outline_localises_the_lesion() -> None:
    first = ellipse("0", 1, "infiltrate", 100, 100, 30, 30)
    second = ellipse("1", 1, "infiltrate", 120, 100, 30, 30)
    [lesion] = consensus_lesions([first, second], None)
    only_in_second = point(1, "infiltrate", 145, 100, 70)
    result = localise(truth(1, True, lesions=(lesion,)), read(1, True, marks=(only_in_second,)))
    assert result.ll == 1
    assert result.lesions[0].outlines == ("0", "1")


def test_compatible_findings_merge_and_incompatible_ones_do_not() -> None:
    infiltrate = ellipse("0", 1, "infiltrate", 100, 100, 30, 30)
    generic = ellipse("1", 1, "tb_lesion", 102, 100, 30, 30)
    effusion = ellipse("2", 1, "pleural_effusion", 101, 100, 30, 30)
    merged = consensus_lesions([infiltrate, generic, effusion], COMPATIBLE)
    assert sorted(tuple(o.source for o in x.outlines) for x in merged) == [("0", "1"), ("2",)]
    # Without the compatibility map nothing merges but identical findings.
    assert len(consensus_lesions([infiltrate, generic, effusion], None)) == 3
    # A trainee mark of any member's finding (or a compatible one) localises the lesion.
    lesion = next(x for x in merged if len(x.outlines) == 2)
    mark = point(1, "nodule", 100, 100, 50)  # nodule ~ tb_lesion (a member's finding)
    assert localise(truth(1, True, lesions=(lesion,)), read(1, True, marks=(mark,)),
                    COMPATIBLE).ll == 1


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        # centre of the small one inside the large one: one lesion
        (ellipse("0", 1, "nodule", 100, 100, 40, 40), ellipse("1", 1, "nodule", 130, 100, 5, 5),
         True),
        # overlapping edges, but neither centre inside the other: two lesions
        (ellipse("0", 1, "nodule", 100, 100, 20, 20), ellipse("1", 1, "nodule", 135, 100, 20, 20),
         False),
        # disjoint regions
        (rect("0", 1, "nodule", 0, 0, 10, 10), rect("1", 1, "nodule", 50, 50, 10, 10), False),
        # the same outline on two images of the case
        (ellipse("0", 1, "nodule", 100, 100, 20, 20), ellipse("1", 2, "nodule", 100, 100, 20, 20),
         False),
        # different, incompatible findings in the same place
        (ellipse("0", 1, "nodule", 100, 100, 20, 20),
         ellipse("1", 1, "pleural_effusion", 100, 100, 20, 20), False),
        # two points within the point tolerance (10 px here) / beyond it
        (dot("0", 1, "nodule", 100, 100), dot("1", 1, "nodule", 106, 108), True),
        (dot("0", 1, "nodule", 100, 100), dot("1", 1, "nodule", 108, 108), False),
        # a point inside a region
        (dot("0", 1, "nodule", 100, 100), rect("1", 1, "nodule", 80, 80, 60, 60), True),
        # a point just outside a small region whose centre is within the point's disc
        (dot("0", 1, "nodule", 100, 100), rect("1", 1, "nodule", 104, 96, 8, 8), True),
        # anisotropic pixels: the tolerance is 10 mm, wider in x than in y here
        (dot("0", 1, "nodule", 100, 100, (20.0, 5.0)),
         dot("1", 1, "nodule", 115, 100, (20.0, 5.0)), True),
        (dot("0", 1, "nodule", 100, 100, (20.0, 5.0)),
         dot("1", 1, "nodule", 100, 115, (20.0, 5.0)), False),
    ],
)
def test_overlap_rule(a: Lesion, b: Lesion, same: bool) -> None:
    assert outlines_overlap(a, b, COMPATIBLE) is same
    assert outlines_overlap(b, a, COMPATIBLE) is same
    assert len(consensus_lesions([a, b], COMPATIBLE)) == (1 if same else 2)


def test_groups_are_connected_through_a_shared_outline() -> None:
    # A and C do not overlap, but each overlaps B: the three experts drew one lesion.
    a = ellipse("0", 1, "nodule", 100, 100, 20, 20)
    b = ellipse("1", 1, "nodule", 115, 100, 20, 20)
    c = ellipse("2", 1, "nodule", 130, 100, 20, 20)
    assert not outlines_overlap(a, c, None)
    assert len(consensus_lesions([a, b, c], None)) == 1
    assert len(consensus_lesions([a, c], None)) == 2


def test_merging_does_not_depend_on_the_order_of_the_marks() -> None:
    rng = random.Random(7)
    outlines = [ellipse(str(n), rng.choice([1, 2]), rng.choice(["nodule", "tb_lesion"]),
                        rng.choice([50, 70, 90, 150]), 100, rng.choice([10, 25]), 20)
                for n in range(8)]
    expected = sorted(sorted(o.source for o in x.outlines)
                      for x in consensus_lesions(outlines, COMPATIBLE))
    for _ in range(10):
        rng.shuffle(outlines)
        got = sorted(sorted(o.source for o in x.outlines)
                     for x in consensus_lesions(outlines, COMPATIBLE))
        assert got == expected


def test_a_merged_lesion_keeps_the_weight_rule_and_is_credited_once() -> None:
    first = ellipse("0", 1, "nodule", 100, 100, 20, 20)
    second = ellipse("1", 1, "nodule", 104, 100, 20, 20)
    [lesion] = consensus_lesions([first, second], None)
    marks = (point(1, "nodule", 100, 100, 40), point(1, "nodule", 104, 100, 60))
    result = localise(truth(1, True, lesions=(lesion,)), read(1, True, marks=marks))
    assert (result.ll, result.nl) == (1, 1)
    assert result.lesions[0].rating == 60.0 and result.lesions[0].weight == 1.0
