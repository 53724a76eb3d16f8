"""The ongoing QC criterion and the QC error profile, against plain recomputations."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import pytest

from app.qc.criteria import (
    MET,
    NOT_ENOUGH,
    OUTSIDE,
    Criterion,
    ReadPair,
    error_profile,
    evaluate,
    findings_item,
    profile_from_json,
    profile_to_json,
)
from app.qc.measures import QcRead
from app.schemes.registry import builtin_schemes

SCHEME = builtin_schemes()["tb_screening"]
FINDINGS = SCHEME.item("findings").option_values()
SCHEMES = {(SCHEME.key, SCHEME.version): SCHEME}


def read(day: int, grade: str, order: int = 0) -> QcRead:
    return QcRead(reader=1, clinic=1, country="KE", read_date=date(2026, 1, 1) + timedelta(day),
                  primary_tb=None, qc_tb=None, grade=grade, order=order)


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_too_few_reads_are_not_enough_whatever_the_rate() -> None:
    result = evaluate([read(i, "3b") for i in range(4)], Criterion(0.05, 50, 5))
    assert (result.outcome, result.n, result.major, result.rate) == (NOT_ENOUGH, 4, 4, 1.0)


def test_exactly_at_the_maximum_is_met_one_more_is_outside() -> None:
    reads = [read(i, "3b" if i < 1 else "1") for i in range(20)]
    assert evaluate(reads, Criterion(0.05, 20, 20)).outcome == MET  # 1/20 = 5 %
    reads[5] = read(5, "3b")
    result = evaluate(reads, Criterion(0.05, 20, 20))
    assert (result.outcome, result.major, result.rate) == (OUTSIDE, 2, 0.1)
    assert result.ci == pytest.approx(wilson(2, 20))


def test_only_the_last_n_reads_by_date_count() -> None:
    # Old major discrepancies, then clean reads: the window sees only the clean ones.
    reads = [read(i, "3b") for i in range(10)] + [read(100 + i, "1") for i in range(10)]
    random.Random(1).shuffle(reads)
    result = evaluate(reads, Criterion(0.05, 10, 5))
    assert (result.outcome, result.n, result.major) == (MET, 10, 0)
    assert evaluate(reads, Criterion(0.05, 20, 5)).outcome == OUTSIDE


def test_only_major_grades_count() -> None:
    reads = [read(i, g) for i, g in enumerate(["2a", "2b", "3a", "1"] * 5)]
    assert evaluate(reads, Criterion(0.01, 20, 1)).major == 0
    assert evaluate(reads, Criterion(0.01, 20, 1), frozenset({"3a", "3b"})).major == 5


@pytest.mark.parametrize("bad", [(0, 10, 5), (1, 10, 5), (0.05, 10, 11), (0.05, 10, 0)])
def test_an_impossible_criterion_is_refused(bad: tuple[float, int, int]) -> None:
    with pytest.raises(ValueError):
        Criterion(*bad)


@pytest.mark.parametrize("seed", range(20))
def test_criterion_against_a_plain_recomputation(seed: int) -> None:
    rng = random.Random(seed)
    reads = [read(rng.randrange(400), rng.choice(["1", "1", "2a", "3a", "3b"]), order=i)
             for i in range(rng.randrange(0, 80))]
    criterion = Criterion(rng.choice([0.02, 0.05, 0.1, 0.3]), rng.randrange(1, 60), 1)
    criterion = Criterion(criterion.max_rate, criterion.last_n,
                          rng.randrange(1, criterion.last_n + 1))
    ordered = sorted(reads, key=lambda r: (r.read_date, r.order))
    window = ordered[max(0, len(ordered) - criterion.last_n):]
    major = len([r for r in window if r.grade == "3b"])
    result = evaluate(reads, criterion)
    assert (result.n, result.major) == (len(window), major)
    if len(window) < criterion.min_reads:
        assert result.outcome == NOT_ENOUGH
    else:
        assert result.outcome == (MET if major / len(window) <= criterion.max_rate + 1e-12
                                  else OUTSIDE)
        assert result.rate == pytest.approx(major / len(window))
        assert result.ci == pytest.approx(wilson(major, len(window)))


def pair(primary: list[str], qc: list[str]) -> ReadPair:
    return ReadPair(SCHEME.key, SCHEME.version,
                    {"classification": "abnormal_tb", "findings": primary},
                    {"classification": "abnormal_tb", "findings": qc})


def test_error_profile_counts_misses_and_over_calls_most_frequent_first() -> None:
    assert findings_item(SCHEME) == "findings"
    pairs = [pair([], ["infiltrate"]), pair(["nodule"], ["infiltrate", "nodule"]),
             pair(["cavitary_lesion"], []), pair(["infiltrate"], ["infiltrate"]),
             pair([], ["infiltrate", "cavitary_lesion"])]
    rows = error_profile(pairs, SCHEMES)
    assert [(r.finding, r.missed, r.over_called) for r in rows] == [
        ("infiltrate", 3, 0), ("cavitary_lesion", 1, 1)]
    assert rows[0].label == next(o.label for o in SCHEME.item("findings").options
                                 if o.value == "infiltrate")
    assert profile_from_json(profile_to_json(rows)) == rows


def test_records_of_an_unknown_scheme_count_for_nothing() -> None:
    unknown = ReadPair("no_such", 1, {"findings": ["x"]}, {"findings": []})
    assert error_profile([unknown], {("no_such", 1): None}) == []


@pytest.mark.parametrize("seed", range(10))
def test_error_profile_against_a_plain_recomputation(seed: int) -> None:
    rng = random.Random(seed)
    pairs = [pair(rng.sample(FINDINGS, rng.randrange(4)), rng.sample(FINDINGS, rng.randrange(4)))
             for _ in range(rng.randrange(60))]
    missed = {f: 0 for f in FINDINGS}
    over = {f: 0 for f in FINDINGS}
    for p in pairs:
        for f in FINDINGS:
            in_primary, in_qc = f in p.primary["findings"], f in p.qc["findings"]
            missed[f] += in_qc and not in_primary
            over[f] += in_primary and not in_qc
    rows = error_profile(pairs, SCHEMES)
    assert {r.finding: (r.missed, r.over_called) for r in rows} == {
        f: (missed[f], over[f]) for f in FINDINGS if missed[f] or over[f]}
    totals = [r.total for r in rows]
    assert totals == sorted(totals, reverse=True)
