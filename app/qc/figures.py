"""The programme's QC figures as PNGs: the funnel plot of major-discrepancy rates and a
reader's CUSUM chart.

Each figure is built in two steps: a **series** (``funnel_series``, ``cusum_series``: the
numbers, every word already in the reader's language, no database and no drawing), then
the drawing of that series. Tests check the series; the PNG of a series is drawn once and
kept (per process, the last few), keyed by the series and the language.

Drawn without pyplot (no global figure state shared between a server's threads), in the
Okabe-Ito colours, which colour-blind readers tell apart; lines differ by style as well.
"""

from __future__ import annotations

import functools
import io
import textwrap
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from babel.dates import format_date
from babel.numbers import format_decimal, format_percent
from flask_babel import get_locale, gettext, ngettext
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from app.i18n import current_language
from app.qc.control import (
    DEFAULT_IN_CONTROL_ARL,
    DEFAULT_ODDS_RATIO,
    CusumDesign,
    bernoulli_cusum,
    design_cusum,
    side_of_limits,
)
from app.qc.measures import (
    KEYS,
    MAJOR_GRADES,
    QcRead,
    chronological,
    group_reads,
    select_reads,
)

# Okabe & Ito (2008), "Color universal design".
BLUE, VERMILION, ORANGE, GREEN, BLACK = "#0072B2", "#D55E00", "#E69F00", "#009E73", "#000000"
DPI = 100
FUNNEL_INCHES = (10.0, 6.2)
CUSUM_INCHES = (10.0, 5.0)
#: Units outside the 99.8 % limits named on the plot; more would cover it.
MAX_NAMED = 40
_LABEL_CHARS = 32
# Characters of a caption line: DejaVu Sans at 8 pt fills ~0.062 in a character, and the
# caption has ~9 in. Wrapped here: matplotlib's own wrapping measures it word by word
# (a sixth of a second).
_CAPTION_CHARS = 140
#: The limit curves are computed at every n up to this, then at as many n again.
EVERY_N_UPTO = 1000


# ---- numbers and words --------------------------------------------------------------------


def _locale() -> str:
    locale = get_locale()
    return str(locale) if locale is not None else "en"


def percent(value: float) -> str:
    """A proportion as a percentage in the reader's language, with as many decimals as it
    has (99.8 %, 5 %, 2.5 %)."""
    return format_percent(round(value, 6), locale=_locale(), decimal_quantization=False)


def _number(value: float, pattern: str = "#,##0.##") -> str:
    return format_decimal(value, format=pattern, locale=_locale())


def _fit(label: str) -> str:
    return label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1].rstrip() + "…"


# ---- funnel plot: the series --------------------------------------------------------------


@dataclass(frozen=True)
class LimitCurves:
    """The funnel's limits at each number of reads of ``ns`` (``curve_ns``: 1, 2, ... up
    to the largest unit's)."""

    ns: tuple[int, ...]
    lower95: tuple[float, ...]
    upper95: tuple[float, ...]
    lower998: tuple[float, ...]
    upper998: tuple[float, ...]


@dataclass(frozen=True)
class FunnelMarker:
    """One clinic or reader: ``events`` major discrepancies in ``n`` QC reads."""

    key: Hashable
    label: str
    n: int
    events: int
    rate: float
    outside95: str | None  # "above", "below" or None
    outside998: str | None


@dataclass(frozen=True)
class FunnelSeries:
    title: str
    x_label: str
    y_label: str
    target: float
    target_label: str
    limit95_label: str
    limit998_label: str
    points_label: str
    outlier_label: str
    caption: str
    empty_text: str | None  # set when there is no read to plot
    points: tuple[FunnelMarker, ...]
    curves: LimitCurves

    @property
    def outliers(self) -> tuple[FunnelMarker, ...]:
        return tuple(p for p in self.points if p.outside998)


def limit_curves(target: float, ns: Sequence[int]) -> LimitCurves:
    """``app.qc.control.funnel_limits`` at every n of ``ns``, computed for all of them at
    once: Spiegelhalter's interpolated exact binomial limits, ``(r_p - alpha) / n`` with
    ``r_p`` the smallest r where F(r) >= p and ``alpha = (F(r_p) - p) / (F(r_p) -
    F(r_p - 1))``, clipped to [0, 1]. The same arithmetic as ``binomial_limit``, which costs
    a dozen scipy calls per n: a funnel of a few thousand reads needs every n up to there."""
    from scipy.stats import binom  # type: ignore[import-untyped]

    n = np.asarray(ns, dtype=float)
    if n.size and n.min() < 1:
        raise ValueError("a limit needs at least one read")

    def limit(p: float) -> tuple[float, ...]:
        if not n.size:
            return ()
        r = binom.ppf(p, n, target)
        upper_cdf = binom.cdf(r, n, target)
        below_cdf = np.where(r >= 1, binom.cdf(r - 1, n, target), 0.0)
        gap = upper_cdf - below_cdf
        alpha = np.where(gap > 0, (upper_cdf - p) / np.where(gap > 0, gap, 1.0), 0.0)
        return tuple(float(v) for v in np.clip((r - alpha) / n, 0.0, 1.0))

    return LimitCurves(tuple(int(v) for v in ns), limit(0.025), limit(0.975),
                       limit(0.001), limit(0.999))


def curve_ns(largest: int) -> list[int]:
    """Where the limit curves are computed: every n up to ``EVERY_N_UPTO`` (the limits
    step there, read by read), then ``EVERY_N_UPTO`` evenly spaced n up to ``largest``
    (beyond, they change by less than a pixel from one to the next)."""
    if largest <= EVERY_N_UPTO:
        return list(range(1, largest + 1))
    spaced = np.linspace(EVERY_N_UPTO, largest, EVERY_N_UPTO).round().astype(int)
    return sorted(set(range(1, EVERY_N_UPTO + 1)) | {int(n) for n in spaced})


def funnel_series(reads: Sequence[QcRead], by: str, target: float,
                  labels: Mapping[Hashable, str], title: str, *, last: int | None = None,
                  major_grades: frozenset[str] = MAJOR_GRADES) -> FunnelSeries:
    """Each clinic's or reader's (``by``) major-discrepancy rate against its number of QC
    reads (its ``last`` N reads when given), the limits around ``target`` at every n from
    1 to the largest unit's, and the words of the figure. ``labels`` names the units (a
    unit it does not name is shown by its key)."""
    if by not in ("clinic", "reader"):
        raise ValueError("the funnel plot is drawn per clinic or per reader")
    counts: dict[Hashable, list[int]] = {}  # key: [events, n]
    if last:  # each unit's last N reads: ordered per unit
        for key, group in group_reads(reads, by).items():
            chosen = select_reads(group, last=last)
            counts[key] = [sum(1 for r in chosen if r.grade in major_grades), len(chosen)]
    else:
        unit = KEYS[by]
        for read in reads:
            tally = counts.setdefault(unit(read), [0, 0])
            tally[0] += read.grade in major_grades
            tally[1] += 1
    largest = max((n for _, n in counts.values()), default=0)
    curves = limit_curves(target, curve_ns(largest))
    at = limit_curves(target, sorted({n for _, n in counts.values()}))
    index = {n: i for i, n in enumerate(at.ns)}
    points = []
    for key, (events, n) in counts.items():
        rate, i = events / n, index[n]
        points.append(FunnelMarker(
            key, labels.get(key, str(key)), n, events, rate,
            side_of_limits(rate, at.lower95[i], at.upper95[i]),
            side_of_limits(rate, at.lower998[i], at.upper998[i])))
    points.sort(key=lambda p: (p.label.casefold(), str(p.key)))
    units = (ngettext("%(num)d clinic", "%(num)d clinics", len(points)) if by == "clinic"
             else ngettext("%(num)d reader", "%(num)d readers", len(points)))
    outside = sum(1 for p in points if p.outside998)
    total = sum(p.n for p in points)
    caption = " ".join([
        ngettext("%(units)s, %(num)d QC read.", "%(units)s, %(num)d QC reads.", total,
                 units=units),
        gettext("A major discrepancy is graded %(grades)s.",
                grades=", ".join(sorted(major_grades))),
        ngettext("%(num)d outside the %(level)s limits.",
                 "%(num)d outside the %(level)s limits.", outside, level=percent(0.998)),
    ])
    if outside > MAX_NAMED:
        caption += " " + gettext("The %(named)d furthest from the target are named.",
                                 named=MAX_NAMED)
    return FunnelSeries(
        title=title,
        x_label=gettext("number of QC reads"),
        y_label=gettext("major-discrepancy rate (%)"),
        target=target,
        target_label=gettext("target %(rate)s", rate=percent(target)),
        limit95_label=gettext("%(level)s control limits", level=percent(0.95)),
        limit998_label=gettext("%(level)s control limits", level=percent(0.998)),
        points_label=gettext("clinic") if by == "clinic" else gettext("reader"),
        outlier_label=gettext("outside the %(level)s limits", level=percent(0.998)),
        caption=caption,
        empty_text=None if points else gettext("No QC reads in this period"),
        points=tuple(points),
        curves=curves,
    )


# ---- CUSUM chart: the series --------------------------------------------------------------


@dataclass(frozen=True)
class CusumSeries:
    title: str
    x_label: str
    y_label: str
    values: tuple[float, ...]  # the chart statistic after each QC read, oldest first
    signals: tuple[int, ...]  # 0-based indices of the reads where it reached h
    h: float
    h_label: str
    signal_label: str
    caption: str
    empty_text: str | None


@functools.lru_cache(maxsize=32)
def cusum_design(target: float, odds_ratio: float = DEFAULT_ODDS_RATIO,
                 in_control_arl: float = DEFAULT_IN_CONTROL_ARL) -> CusumDesign:
    """``design_cusum``, kept: choosing h solves Markov chains (most of a second), and a
    programme's readers share one target."""
    return design_cusum(target, odds_ratio, in_control_arl)


def warm_up(target: float = 0.05) -> float:
    """Design the CUSUM chart of ``target`` (by default that of a programme which sets
    none, ``app.qc.scope.DEFAULT_TARGET_RATE``) once, untimed by any request: a server
    calls it in a thread at start (app.wsgi). Returns the seconds it took."""
    started = time.perf_counter()
    cusum_design(target)
    return time.perf_counter() - started


def cusum_series(reads: Sequence[QcRead], target: float, title: str, *,
                 odds_ratio: float = DEFAULT_ODDS_RATIO,
                 in_control_arl: float = DEFAULT_IN_CONTROL_ARL,
                 major_grades: frozenset[str] = MAJOR_GRADES) -> CusumSeries:
    """One reader's CUSUM of major discrepancies (``measures.reader_cusum``) over ``reads``
    and the words of the figure: the caption states the target, the odds ratio the chart
    is tuned to, h and the run lengths."""
    design = cusum_design(target, odds_ratio, in_control_arl)
    ordered = chronological(reads)
    chart = bernoulli_cusum([r.grade in major_grades for r in ordered], design)
    caption = gettext(
        "Target rate %(target)s; tuned to detect the odds of a major discrepancy multiplied "
        "by %(odds)s (a rate of %(shifted)s); decision interval h = %(h)s. On target, a "
        "false signal every %(arl0)s QC reads on average; at %(shifted)s, a signal after "
        "%(arl1)s.", target=percent(target), odds=_number(odds_ratio),
        shifted=percent(round(design.shifted_rate, 4)), h=_number(design.h, "#,##0.00"),
        arl0=_number(design.in_control_arl, "#,##0"),
        arl1=_number(design.out_of_control_arl, "#,##0"))
    if ordered:
        caption = gettext("QC reads from %(first)s to %(last)s.",
                          first=format_date(ordered[0].read_date, locale=_locale()),
                          last=format_date(ordered[-1].read_date, locale=_locale())) + " " + caption
    return CusumSeries(
        title=title,
        x_label=gettext("QC reads, oldest first"),
        y_label=gettext("CUSUM of major discrepancies"),
        values=chart.values,
        signals=chart.signals,
        h=design.h,
        h_label=gettext("decision interval h = %(h)s", h=_number(design.h, "#,##0.00")),
        signal_label=ngettext("%(num)d signal", "%(num)d signals", len(chart.signals)),
        caption=caption,
        empty_text=None if ordered else gettext("No QC reads in this period"),
    )


# ---- drawing ------------------------------------------------------------------------------


def _empty(fig: Figure, text: str) -> None:
    fig.text(0.5, 0.55, text, ha="center", va="center", fontsize=13, color="#333333",
             bbox={"facecolor": "white", "edgecolor": "#999999", "boxstyle": "round,pad=0.6"})


def funnel_figure(series: FunnelSeries) -> Figure:
    width, height = FUNNEL_INCHES
    fig = Figure(figsize=(width, height), dpi=DPI)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.08, right=0.98, top=1 - 0.5 / height, bottom=1.05 / height)
    fig.suptitle(series.title, fontsize=11, y=1 - 0.12 / height, va="top")
    ax.set_xlabel(series.x_label)
    ax.set_ylabel(series.y_label)
    ax.grid(color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ns = np.asarray(series.curves.ns, dtype=float)
    largest = float(ns[-1]) if ns.size else 10.0
    ax.axhline(series.target * 100, color=BLACK, linewidth=1.2)
    if ns.size:
        c = series.curves
        for values in (c.lower95, c.upper95):
            ax.plot(ns, np.asarray(values) * 100, color=BLUE, linestyle="--", linewidth=1.2)
        for values in (c.lower998, c.upper998):
            ax.plot(ns, np.asarray(values) * 100, color=VERMILION, linestyle=":", linewidth=1.6)
    inside = [p for p in series.points if not p.outside998]
    outside = [p for p in series.points if p.outside998]
    if inside:
        ax.scatter([p.n for p in inside], [p.rate * 100 for p in inside], s=18, color=BLUE,
                   alpha=0.6, edgecolors="white", linewidths=0.4, zorder=3)
    if outside:
        ax.scatter([p.n for p in outside], [p.rate * 100 for p in outside], s=46,
                   marker="D", color=VERMILION, edgecolors=BLACK, linewidths=0.6, zorder=4)
        named = sorted(outside, key=lambda p: -abs(p.rate - series.target))[:MAX_NAMED]
        for p in named:
            right = p.n > 0.7 * largest  # named on its left near the right edge
            ax.annotate(_fit(p.label), (p.n, p.rate * 100), xytext=(-6 if right else 6, 4),
                        textcoords="offset points", ha="right" if right else "left",
                        fontsize=8, color=BLACK, zorder=5)
    top = max([series.target * 2] + [p.rate for p in series.points]
              + ([max(series.curves.upper998[min(4, len(ns) - 1):] or (0.0,))]
                 if ns.size else []))
    # A little below 0 and beyond the largest n: a unit with no discrepancy (rate 0) is
    # drawn above the axis line, not hidden under it.
    ceiling = min(100.0, top * 100 * 1.08 + 0.5)
    ax.set_ylim(-0.025 * ceiling, ceiling)
    ax.set_xlim(0, largest * 1.04 + 1)
    handles = [
        Line2D([], [], color=BLACK, linewidth=1.2, label=series.target_label),
        Line2D([], [], color=BLUE, linestyle="--", linewidth=1.2, label=series.limit95_label),
        Line2D([], [], color=VERMILION, linestyle=":", linewidth=1.6,
               label=series.limit998_label),
        Line2D([], [], color=BLUE, marker="o", linestyle="", alpha=0.6,
               label=series.points_label),
        Line2D([], [], color=VERMILION, marker="D", markeredgecolor=BLACK, linestyle="",
               label=series.outlier_label),
    ]
    ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.9)
    fig.text(0.08, 0.2 / height, textwrap.fill(series.caption, _CAPTION_CHARS), fontsize=8,
             color="#333333")
    if series.empty_text:
        _empty(fig, series.empty_text)
    return fig


def cusum_figure(series: CusumSeries) -> Figure:
    width, height = CUSUM_INCHES
    fig = Figure(figsize=(width, height), dpi=DPI)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.08, right=0.98, top=1 - 0.5 / height, bottom=1.3 / height)
    fig.suptitle(series.title, fontsize=11, y=1 - 0.12 / height, va="top")
    ax.set_xlabel(series.x_label)
    ax.set_ylabel(series.y_label)
    ax.grid(color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    xs = np.arange(1, len(series.values) + 1)
    ax.axhline(series.h, color=VERMILION, linestyle="--", linewidth=1.4)
    handles = [Line2D([], [], color=VERMILION, linestyle="--", linewidth=1.4,
                      label=series.h_label)]
    if len(xs):
        ax.plot(xs, series.values, color=BLUE, linewidth=1.2,
                marker="o" if len(xs) <= 60 else None, markersize=3)
        handles.insert(0, Line2D([], [], color=BLUE, linewidth=1.2, label=series.y_label))
    if series.signals:
        ax.scatter([i + 1 for i in series.signals], [series.values[i] for i in series.signals],
                   s=60, marker="^", color=VERMILION, edgecolors=BLACK, linewidths=0.6,
                   zorder=4)
        handles.append(Line2D([], [], color=VERMILION, marker="^", markeredgecolor=BLACK,
                              linestyle="", label=series.signal_label))
    ax.set_xlim(0, max(len(xs), 10) + 1)
    ax.set_ylim(0, max([series.h * 1.25, *series.values]) * 1.05)
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)
    fig.text(0.08, 0.15 / height, textwrap.fill(series.caption, _CAPTION_CHARS), fontsize=8,
             color="#333333")
    if series.empty_text:
        _empty(fig, series.empty_text)
    return fig


def _encode(fig: Figure) -> bytes:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # fast zlib: most of it is white
    return buffer.getvalue()


def funnel_png(series: FunnelSeries) -> bytes:
    """The funnel plot as a PNG, 1000 px wide (kept: the same series, the same PNG)."""
    return _funnel_png(series, current_language())


def cusum_png(series: CusumSeries) -> bytes:
    """The CUSUM chart as a PNG, 1000 px wide (kept as the funnel's)."""
    return _cusum_png(series, current_language())


# Keyed by the series (its numbers and its words, so never out of date) and the language.
@functools.lru_cache(maxsize=16)
def _funnel_png(series: FunnelSeries, language: str) -> bytes:
    return _encode(funnel_figure(series))


@functools.lru_cache(maxsize=32)
def _cusum_png(series: CusumSeries, language: str) -> bytes:
    return _encode(cusum_figure(series))
