"""Control charts of QC discrepancies: a Bernoulli CUSUM per reader and funnel-plot limits.

Pure module (numpy/scipy, no Flask or database), used through ``app.qc.measures``.

**CUSUM.** Each QC read is a Bernoulli trial: 1 when it is a (major) discrepancy. The chart
is the log-likelihood-ratio CUSUM of Steiner, Cook, Farewell & Treasure (2000) without risk
adjustment (Grigg & Farewell 2004 review it): it tests the target rate p0 against the rate
p1 whose **odds are R times** the target's (R = 2: discrepancies doubling in odds), so a
read adds ``W = y ln R - ln(1 - p0 + R p0)`` and ``S_t = max(0, S_{t-1} + W_t)``. A signal
is ``S_t >= h``; the chart restarts at 0 after a signal, so a reader who stays off target
signals again. We chose this form over a plain "observed minus expected" CUSUM because its
weights are those of the sequential probability ratio test, the most sensitive to that
odds ratio for a given false-alarm rate (Moustakides 1986).

**The decision interval h** is not a constant: the same h gives very different false-alarm
rates at p0 = 2 % and at p0 = 20 %. So h is chosen for a stated **in-control average run
length** (ARL0: reads, on average, between false alarms of a reader exactly on target;
``DEFAULT_IN_CONTROL_ARL``). The chart runs on a grid, as Reynolds & Stoumbos (1999) do
for the Bernoulli CUSUM: the down-step is exactly a whole number of cells and the up-step is
rounded to a whole number of at least ``_UP_CELLS`` cells (so it moves by < 0.3 %). On that
grid the absorbing Markov chain of Brook & Evans (1972) gives the **exact** ARL of the chart
as run (a chart run with unrounded weights drifts from its computed ARL by several per cent:
the rounding errors add up over the up-steps), and h is the smallest grid value whose
in-control ARL reaches the target. The out-of-control ARL (at p1) is reported with it, so a
page can say "on target: a false alarm every ~1,000 reads; at doubled odds: a signal after
~N reads".

**Funnel limits** (Spiegelhalter 2005, "Funnel plots for comparing institutional
performance", Stat Med 24:1185, section 3.2 and appendix A.1.1): **exact binomial limits
with interpolation**, not the normal approximation, because QC counts are small and rates
low, where the normal limits are badly off (and go below 0). For the p-quantile:
``r_p`` is the smallest r with ``F(r) >= p``, ``alpha = (F(r_p) - p) / (F(r_p) - F(r_p - 1))``
and the limit is ``(r_p - alpha) / n``; F is the binomial CDF at the target rate. The
interpolation makes the limits a smooth curve in n instead of a staircase. 95 % limits use
p = 0.025 and 0.975, 99.8 % limits p = 0.001 and 0.999.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

#: Reads between false alarms of a reader exactly on target. 1,000 QC reads is ~4 years of
#: a reader whose 20 reads a month are re-read: a lead is rarely sent after noise.
DEFAULT_IN_CONTROL_ARL = 1000.0
#: The shift the chart is tuned to detect: the odds of a discrepancy doubled.
DEFAULT_ODDS_RATIO = 2.0
FUNNEL_LEVELS = (0.95, 0.998)
_UP_CELLS = 200  # grid cells in one up-step of the Markov chain (the rounding precision)


@dataclass(frozen=True)
class CusumDesign:
    """A chart tuned to a target rate. It runs on a grid of ``step``: a discrepancy adds
    ``up_cells``, a concordant read takes ``down_cells`` away, it signals at ``h_cells``.
    Counting in whole cells makes the stated run lengths exact for the chart as run (and
    no floating-point sum decides a signal); the weights differ from the exact
    log-likelihood ratios by less than 0.3 % (``_UP_CELLS``)."""

    target: float  # p0
    odds_ratio: float  # R
    step: float
    up_cells: int
    down_cells: int
    h_cells: int
    in_control_arl: float  # ARL at p0 for this h
    out_of_control_arl: float  # ARL at p1 (``shifted_rate``)

    @property
    def h(self) -> float:
        return self.h_cells * self.step

    @property
    def discrepancy_weight(self) -> float:
        return self.up_cells * self.step

    @property
    def concordant_weight(self) -> float:
        return -self.down_cells * self.step

    @property
    def shifted_rate(self) -> float:
        """p1: the rate whose odds are R times the target's."""
        return shifted_rate(self.target, self.odds_ratio)


@dataclass(frozen=True)
class CusumChart:
    design: CusumDesign
    values: tuple[float, ...]  # S_t after each read
    signals: tuple[int, ...]  # indices (0-based) of the reads where S_t >= h

    @property
    def signalled(self) -> bool:
        return bool(self.signals)


def _check_rate(p0: float, odds_ratio: float) -> None:
    if not 0 < p0 < 1:
        raise ValueError("the target rate must be between 0 and 1 (exclusive)")
    if odds_ratio <= 1:
        raise ValueError("the odds ratio to detect must be above 1")


def shifted_rate(p0: float, odds_ratio: float) -> float:
    odds = odds_ratio * p0 / (1 - p0)
    return odds / (1 + odds)


def cusum_weights(p0: float, odds_ratio: float = DEFAULT_ODDS_RATIO) -> tuple[float, float]:
    """(W for a discrepancy, W for a concordant read) of the log-likelihood-ratio CUSUM:
    ln(p1/p0) and ln((1 - p1)/(1 - p0))."""
    _check_rate(p0, odds_ratio)
    down = math.log(1 - p0 + odds_ratio * p0)
    return math.log(odds_ratio) - down, -down


def _grid(p0: float, odds_ratio: float) -> tuple[float, int, int]:
    """(cell width, cells of the up-step, cells of the down-step): the down-step is exact,
    the up-step at least _UP_CELLS cells, so rounding it moves it by < 0.5/_UP_CELLS."""
    up, down = cusum_weights(p0, odds_ratio)
    down_cells = max(1, math.ceil(_UP_CELLS * -down / up))
    step = -down / down_cells
    return step, round(up / step), down_cells


def _arl_cells(cells: int, p: float, up: int, down: int) -> float:
    """ARL from 0 of the chart k -> k + up (prob p) or max(0, k - down), which signals at
    k >= cells: (I - Q) L = 1 over the transient states 0..cells-1 (Brook & Evans)."""
    if p <= 0:
        return math.inf
    import numpy as np
    from scipy.sparse import csr_matrix, identity  # type: ignore[import-untyped]
    from scipy.sparse.linalg import spsolve  # type: ignore[import-untyped]

    states = np.arange(cells)
    rises = states + up
    keep = rises < cells  # an up-step to h or past it leaves the chain (the signal)
    q = csr_matrix(
        (np.concatenate([np.full(int(keep.sum()), p), np.full(cells, 1 - p)]),
         (np.concatenate([states[keep], states]),
          np.concatenate([rises[keep], np.maximum(states - down, 0)]))),
        shape=(cells, cells))
    lengths = spsolve((identity(cells, format="csr") - q).tocsc(), np.ones(cells))
    return float(np.atleast_1d(lengths)[0])


def cusum_arl(design: CusumDesign, rate: float) -> float:
    """Average run length (reads to a signal, from S = 0) of the chart when the true
    discrepancy rate is ``rate``."""
    if not 0 <= rate <= 1:
        raise ValueError("the rate must be between 0 and 1")
    return _arl_cells(design.h_cells, rate, design.up_cells, design.down_cells)


def design_cusum(p0: float, odds_ratio: float = DEFAULT_ODDS_RATIO,
                 in_control_arl: float = DEFAULT_IN_CONTROL_ARL,
                 h: float | None = None) -> CusumDesign:
    """The chart for target ``p0``. Given ``h``, that decision interval (rounded up to the
    grid); otherwise the smallest h whose in-control ARL is at least ``in_control_arl``
    (bisection: the ARL grows with h)."""
    step, up, down = _grid(p0, odds_ratio)
    if h is not None:
        if h <= 0:
            raise ValueError("h must be positive")
        cells = max(1, math.ceil(h / step - 1e-9))
    else:
        if in_control_arl < 1:
            raise ValueError("the in-control run length must be at least 1 read")
        low, cells = 1, up
        while _arl_cells(cells, p0, up, down) < in_control_arl:
            low, cells = cells, cells * 2
            if cells > 10_000_000:
                raise ValueError("no decision interval reaches that run length")
        while low < cells:
            middle = (low + cells) // 2
            if _arl_cells(middle, p0, up, down) >= in_control_arl:
                cells = middle
            else:
                low = middle + 1
    return CusumDesign(p0, odds_ratio, step, up, down, cells,
                       _arl_cells(cells, p0, up, down),
                       _arl_cells(cells, shifted_rate(p0, odds_ratio), up, down))


def bernoulli_cusum(outcomes: Sequence[bool], design: CusumDesign) -> CusumChart:
    """The chart over ``outcomes`` (True = a discrepancy), oldest first."""
    cells = 0
    values: list[float] = []
    signals: list[int] = []
    for t, event in enumerate(outcomes):
        cells = cells + design.up_cells if event else max(0, cells - design.down_cells)
        values.append(cells * design.step)
        if cells >= design.h_cells:
            signals.append(t)
            cells = 0  # restart: a reader still off target signals again
    return CusumChart(design, tuple(values), tuple(signals))


# ---- funnel plot ------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelLimits:
    n: int
    target: float
    lower95: float
    upper95: float
    lower998: float
    upper998: float


@dataclass(frozen=True)
class FunnelPoint:
    key: Hashable
    n: int
    events: int
    rate: float
    limits: FunnelLimits

    @property
    def outside95(self) -> str | None:
        """"above", "below" or None (inside the 95 % limits)."""
        return side_of_limits(self.rate, self.limits.lower95, self.limits.upper95)

    @property
    def outside998(self) -> str | None:
        return side_of_limits(self.rate, self.limits.lower998, self.limits.upper998)


def side_of_limits(rate: float, lower: float, upper: float) -> str | None:
    """'above' or 'below' the limits, or None inside them."""
    if rate > upper:
        return "above"
    if rate < lower:
        return "below"
    return None


def binomial_limit(target: float, n: int, p: float) -> float:
    """Spiegelhalter's interpolated exact binomial p-limit of a proportion out of n."""
    from scipy.stats import binom  # type: ignore[import-untyped]

    if n < 1:
        raise ValueError("a limit needs at least one read")
    if not 0 <= target <= 1 or not 0 < p < 1:
        raise ValueError("target in [0, 1] and p in (0, 1) are needed")
    r = float(binom.ppf(p, n, target))
    upper_cdf = float(binom.cdf(r, n, target))
    below_cdf = float(binom.cdf(r - 1, n, target)) if r >= 1 else 0.0
    alpha = (upper_cdf - p) / (upper_cdf - below_cdf) if upper_cdf > below_cdf else 0.0
    return min(1.0, max(0.0, (r - alpha) / n))


def funnel_limits(target: float, n: int) -> FunnelLimits:
    """95 % and 99.8 % limits at n reads around ``target``."""
    limits = [binomial_limit(target, n, p) for level in FUNNEL_LEVELS
              for p in ((1 - level) / 2, 1 - (1 - level) / 2)]
    return FunnelLimits(n, target, *limits)


def funnel_points(counts: dict[Hashable, tuple[int, int]],
                  target: float | None = None) -> tuple[float | None, list[FunnelPoint]]:
    """Funnel points of units given as ``{key: (events, n)}`` against ``target``, by default
    the pooled rate of all units (Spiegelhalter's choice when no external standard is set).
    Units with no reads are left out. Returns (target, points)."""
    used = {k: (e, n) for k, (e, n) in counts.items() if n > 0}
    if target is None:
        total = sum(n for _, n in used.values())
        if not total:
            return None, []
        target = sum(e for e, _ in used.values()) / total
    return target, [FunnelPoint(k, n, e, e / n, funnel_limits(target, n))
                    for k, (e, n) in used.items()]
