"""QC concordance measures against independent computations: kappa and its standard error
from their definitions and from statsmodels, Wilson from the formula, funnel limits from
binomial sums, the CUSUM step by step and its run lengths by another method."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import cohens_kappa

from app.qc.control import (
    _UP_CELLS,
    bernoulli_cusum,
    binomial_limit,
    cusum_arl,
    cusum_weights,
    design_cusum,
    funnel_limits,
    funnel_points,
)
from app.qc.measures import (
    QC_GRADES,
    QcRead,
    decision_agreement,
    discrepancy_rate,
    funnel,
    kappa_standard_error,
    reader_cusum,
    select_reads,
    sensitivity_specificity,
    summaries_by,
    summarise,
)

Z = 1.959963984540054


def wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def random_reads(rng: random.Random, n: int, readers: int = 4) -> list[QcRead]:
    reads = []
    for i in range(n):
        qc = rng.random() < 0.3
        primary = qc if rng.random() < 0.8 else not qc
        grade = (rng.choice(["2b", "3b"]) if primary != qc
                 else rng.choice(["1", "1", "1", "2a", "3a"]))
        reader = rng.randrange(readers)
        reads.append(QcRead(reader=reader, clinic=f"clinic {reader % 2}",
                            country="KE" if reader % 2 else "PH",
                            read_date=date(2026, 1, 1) + timedelta(days=rng.randrange(300)),
                            primary_tb=primary, qc_tb=qc, grade=grade, order=i))
    return reads


def kappa_by_loop(a: list[bool], b: list[bool]) -> float:
    n = len(a)
    po = sum(1 for i in range(n) if a[i] == b[i]) / n
    pe = 0.0
    for label in (True, False):
        pe += (sum(1 for x in a if x == label) / n) * (sum(1 for y in b if y == label) / n)
    return (po - pe) / (1 - pe)


@pytest.mark.parametrize("seed", range(12))
def test_kappa_and_its_interval_match_the_definition_and_statsmodels(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(5, 400)
    pairs = [(rng.random() < 0.4, rng.random() < 0.4) for _ in range(n)]
    pairs = [(p, p if rng.random() < 0.6 else q) for p, q in pairs]
    # Both decisions occur on both sides, so chance agreement is below 1 and kappa defined.
    pairs += [(True, True), (False, False)]
    n = len(pairs)
    a, b = [p for p, _ in pairs], [q for _, q in pairs]
    result = decision_agreement(pairs)
    assert result.kappa == pytest.approx(kappa_by_loop(a, b), abs=1e-12)
    assert result.kappa == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    table = np.array([[sum(1 for p, q in pairs if p == x and q == y) for y in (True, False)]
                      for x in (True, False)])
    reference = cohens_kappa(table)  # Fleiss, Cohen & Everitt's variance
    assert result.kappa_se == pytest.approx(reference.std_kappa, rel=1e-9)
    low = max(-1.0, reference.kappa - Z * reference.std_kappa)
    assert result.kappa_ci == pytest.approx((low, min(1.0, reference.kappa_upp)), abs=1e-9)
    # PABAK = 2 po - 1, its interval the Wilson interval of po mapped the same way.
    agreed = sum(1 for p, q in pairs if p == q)
    assert result.pabak == pytest.approx(2 * agreed / n - 1)
    w = wilson(agreed, n)
    assert result.pabak_ci == pytest.approx((2 * w[0] - 1, 2 * w[1] - 1))


def test_kappa_standard_error_with_three_categories() -> None:
    # Three categories: the formula works for any labels, as statsmodels' does.
    table = np.array([[75, 1, 4], [5, 4, 1], [0, 0, 10]])
    a = [i for i in range(3) for j in range(3) for _ in range(table[i, j])]
    b = [j for i in range(3) for j in range(3) for _ in range(table[i, j])]
    assert kappa_standard_error(a, b) == pytest.approx(cohens_kappa(table).std_kappa)


def test_agreement_edge_cases() -> None:
    empty = decision_agreement([])
    assert empty.n == 0 and empty.kappa is None and empty.pabak is None
    assert empty.kappa_ci is None and empty.pabak_ci is None
    # All agree on one decision: kappa 0/0 is None, PABAK is 1 with a Wilson interval.
    same = decision_agreement([(False, False)] * 10)
    assert same.kappa is None and same.kappa_se is None and same.pabak == 1.0
    assert same.pabak_ci == pytest.approx((2 * wilson(10, 10)[0] - 1, 1.0))
    # All agree, both decisions present: kappa 1 with a zero standard error.
    perfect = decision_agreement([(True, True), (False, False)] * 5)
    assert perfect.kappa == pytest.approx(1.0) and perfect.kappa_se == pytest.approx(0.0)
    # n = 1, disagreeing: po = pe = 0, kappa 0 with a zero-width interval (noted).
    one = decision_agreement([(True, False)])
    assert one.kappa == 0.0 and one.kappa_se == 0.0 and one.pabak == -1.0
    day = date(2026, 1, 1)
    assert any("understates" in note for note in
               summarise([QcRead(1, 1, "KE", day, True, False, "3b")]).notes)


@pytest.mark.parametrize("seed", range(6))
def test_rates_sensitivity_and_specificity_on_random_reads(seed: int) -> None:
    rng = random.Random(seed)
    reads = random_reads(rng, rng.randrange(1, 200))
    major = discrepancy_rate(reads)
    k = sum(1 for r in reads if r.grade == "3b")
    assert (major.successes, major.n) == (k, len(reads))
    assert major.value == pytest.approx(k / len(reads))
    assert major.ci == pytest.approx(wilson(k, len(reads)))
    both = discrepancy_rate(reads, frozenset({"3a", "3b"}))
    assert both.successes == sum(1 for r in reads if r.grade.startswith("3"))
    sens, spec = sensitivity_specificity(reads)
    tp = sum(1 for r in reads if r.qc_tb and r.primary_tb)
    pos = sum(1 for r in reads if r.qc_tb)
    tn = sum(1 for r in reads if not r.qc_tb and not r.primary_tb)
    neg = len(reads) - pos
    assert (sens.successes, sens.n, spec.successes, spec.n) == (tp, pos, tn, neg)
    if pos:
        assert sens.ci == pytest.approx(wilson(tp, pos))
    else:
        assert sens.value is None and sens.ci is None


def test_a_primary_read_without_a_decision_counts_as_wrong() -> None:
    day = date(2026, 3, 1)
    reads = [QcRead(1, 1, "KE", day, None, True, "3b"), QcRead(1, 1, "KE", day, None, False, "1"),
             QcRead(1, 1, "KE", day, True, None, "1")]
    sens, spec = sensitivity_specificity(reads)
    assert (sens.successes, sens.n, spec.successes, spec.n) == (0, 1, 0, 1)
    summary = summarise(reads)
    assert summary.agreement.n == 0 and summary.notes


def test_summary_of_no_reads_and_of_one_read() -> None:
    empty = summarise([])
    assert empty.n == 0 and empty.major.value is None and empty.major.ci is None
    assert empty.sensitivity.value is None and empty.first_date is None
    assert empty.grades == dict.fromkeys(QC_GRADES, 0)
    assert empty.to_json()["major"]["value"] is None
    one = summarise([QcRead("r", "c", "KE", date(2026, 2, 3), True, False, "3b")])
    assert one.n == 1 and one.major.value == 1.0 and one.major.ci == pytest.approx(wilson(1, 1))
    assert one.specificity.value == 0.0 and one.sensitivity.value is None
    assert one.to_json()["first_date"] == "2026-02-03"


def test_period_last_n_and_groups() -> None:
    rng = random.Random(7)
    reads = random_reads(rng, 300)
    start, end = date(2026, 3, 1), date(2026, 6, 30)
    by_reader = summaries_by(reads, "reader", start=start, end=end, last=20)
    for reader, summary in by_reader.items():
        mine = sorted((r for r in reads if r.reader == reader and start <= r.read_date <= end),
                      key=lambda r: (r.read_date, r.order))[-20:]
        assert summary.n == len(mine)
        assert summary.major.successes == sum(1 for r in mine if r.grade == "3b")
        assert summary.first_date == mine[0].read_date and summary.last_date == mine[-1].read_date
    by_country = summaries_by(reads, "country")
    assert {k: s.n for k, s in by_country.items()} == {
        c: sum(1 for r in reads if r.country == c) for c in ("KE", "PH")}
    assert select_reads(reads, last=5) == sorted(reads, key=lambda r: (r.read_date, r.order))[-5:]
    with pytest.raises(ValueError):
        select_reads(reads, last=0)


# ---- funnel limits ----------------------------------------------------------------------


def binom_cdf(r: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(0, r + 1))


def spiegelhalter_limit(target: float, n: int, p: float) -> float:
    """Spiegelhalter 2005 appendix A.1.1, from binomial sums and a linear search."""
    r = 0
    while binom_cdf(r, n, target) < p:
        r += 1
    upper, below = binom_cdf(r, n, target), binom_cdf(r - 1, n, target) if r else 0.0
    alpha = (upper - p) / (upper - below)
    return min(1.0, max(0.0, (r - alpha) / n))


@pytest.mark.parametrize("seed", range(8))
def test_funnel_limits_are_spiegelhalters_interpolated_binomial_limits(seed: int) -> None:
    rng = random.Random(seed)
    target = rng.uniform(0.01, 0.4)
    for n in (1, 2, rng.randrange(3, 30), rng.randrange(30, 300)):
        limits = funnel_limits(target, n)
        expected = [spiegelhalter_limit(target, n, p) for p in (0.025, 0.975, 0.001, 0.999)]
        got = [limits.lower95, limits.upper95, limits.lower998, limits.upper998]
        assert got == pytest.approx(expected, abs=1e-9)
        assert limits.lower998 <= limits.lower95 <= target <= limits.upper95 <= limits.upper998


def test_funnel_limits_approach_the_normal_ones_for_many_reads() -> None:
    target, n = 0.1, 20000
    limits = funnel_limits(target, n)
    se = math.sqrt(target * (1 - target) / n)
    assert limits.upper95 == pytest.approx(target + Z * se, abs=se / 20)
    assert limits.lower998 == pytest.approx(target - 3.090232 * se, abs=se / 20)


def test_funnel_points_flag_units_outside_the_limits() -> None:
    target, points = funnel_points({"a": (30, 100), "b": (2, 100), "c": (0, 0)}, target=0.05)
    assert target == 0.05 and [p.key for p in points] == ["a", "b"]
    assert points[0].outside998 == "above" and points[1].outside95 is None
    pooled, _ = funnel_points({"a": (3, 10), "b": (1, 30)})
    assert pooled == pytest.approx(4 / 40)
    assert funnel_points({}) == (None, [])
    day = date(2026, 1, 1)
    reads = [QcRead(r, "c", "KE", day, True, True, g) for r, g in
             [(1, "3b"), (1, "1"), (2, "1"), (2, "3a")]]
    pooled, per_reader = funnel(reads, "reader")
    assert pooled == 0.25 and {p.key: p.events for p in per_reader} == {1: 1, 2: 0}
    with pytest.raises(ValueError):
        binomial_limit(0.1, 0, 0.5)


# ---- CUSUM --------------------------------------------------------------------------------


def test_cusum_weights_are_the_log_likelihood_ratio() -> None:
    p0, r = 0.05, 2.0
    p1 = r * p0 / (1 - p0) / (1 + r * p0 / (1 - p0))
    w1, w0 = cusum_weights(p0, r)
    assert w1 == pytest.approx(math.log(p1 / p0)) and w0 == pytest.approx(
        math.log((1 - p1) / (1 - p0)))
    design = design_cusum(p0)
    # The chart's grid weights stay within 0.5/_UP_CELLS of the exact ones.
    assert design.discrepancy_weight == pytest.approx(w1, rel=0.5 / _UP_CELLS + 1e-12)
    assert design.concordant_weight == pytest.approx(w0, rel=1e-12)
    assert design.shifted_rate == pytest.approx(p1)
    with pytest.raises(ValueError):
        design_cusum(0.0)
    with pytest.raises(ValueError):
        design_cusum(0.1, odds_ratio=1.0)


@pytest.mark.parametrize("seed", range(5))
def test_cusum_recomputed_step_by_step(seed: int) -> None:
    rng = random.Random(seed)
    design = design_cusum(rng.uniform(0.02, 0.3), in_control_arl=100)
    outcomes = [rng.random() < design.shifted_rate for _ in range(300)]
    chart = bernoulli_cusum(outcomes, design)
    s, values, signals = 0.0, [], []
    for t, y in enumerate(outcomes):
        s = max(0.0, s + (design.discrepancy_weight if y else design.concordant_weight))
        values.append(s)
        if s >= design.h - 1e-9:
            signals.append(t)
            s = 0.0
    assert chart.values == pytest.approx(values, abs=1e-9)
    assert chart.signals == tuple(signals)


def survival_arl(up: int, down: int, h: int, p: float) -> float:
    """ARL = sum over t of P(no signal by t), iterating the chart's state distribution."""
    state = {0: 1.0}
    total, alive = 0.0, 1.0
    while alive > 1e-13:
        total += alive
        nxt: dict[int, float] = {}
        for k, q in state.items():
            if k + up < h:
                nxt[k + up] = nxt.get(k + up, 0.0) + q * p
            nxt[max(0, k - down)] = nxt.get(max(0, k - down), 0.0) + q * (1 - p)
        state = nxt
        alive = sum(state.values())
    return total


@pytest.mark.parametrize(("p0", "arl0"), [(0.05, 50), (0.2, 100), (0.3, 30)])
def test_cusum_run_lengths_by_another_method(p0: float, arl0: float) -> None:
    design = design_cusum(p0, in_control_arl=arl0)
    exact = survival_arl(design.up_cells, design.down_cells, design.h_cells, p0)
    assert design.in_control_arl == pytest.approx(exact, rel=1e-6)
    assert design.in_control_arl >= arl0
    # h is the smallest grid value that reaches the run length.
    assert survival_arl(design.up_cells, design.down_cells, design.h_cells - 1, p0) < arl0
    shifted = survival_arl(design.up_cells, design.down_cells, design.h_cells,
                           design.shifted_rate)
    assert design.out_of_control_arl == pytest.approx(shifted, rel=1e-6)
    assert cusum_arl(design, 0.0) == math.inf


def test_cusum_in_control_run_length_by_simulation() -> None:
    design = design_cusum(0.1, in_control_arl=200)
    rng = np.random.default_rng(3)
    runs = 3000
    lengths = np.zeros(runs)
    for i in range(runs):
        # The chart as run, on simulated reads until its first signal.
        t, chart_values = 0, 0.0
        while True:
            t += 1
            event = rng.random() < 0.1
            chart_values = max(0.0, chart_values + (design.discrepancy_weight if event
                                                    else design.concordant_weight))
            if chart_values >= design.h - 1e-9:
                break
        lengths[i] = t
    error = lengths.std() / math.sqrt(runs)
    assert abs(lengths.mean() - design.in_control_arl) < 4 * error


def test_reader_cusum_on_records_and_a_given_h() -> None:
    day = date(2026, 1, 1)
    reads = [QcRead(1, 1, "KE", day + timedelta(days=i), True, True, "3b" if i % 3 == 0 else "1",
                    order=i) for i in range(30)]
    chart = reader_cusum(list(reversed(reads)), target=0.05, in_control_arl=200)
    assert len(chart.values) == 30 and chart.signalled  # a third are 3b against 5 %
    assert chart.values[0] == pytest.approx(chart.design.discrepancy_weight)
    none = reader_cusum([], target=0.05)
    assert none.values == () and not none.signalled
    fixed = design_cusum(0.05, h=4.0)
    assert fixed.h == pytest.approx(4.0, abs=fixed.step) and fixed.h >= 4.0 - 1e-9
    assert fixed.in_control_arl > design_cusum(0.05, h=2.0).in_control_arl
