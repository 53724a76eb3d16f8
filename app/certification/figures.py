"""The distribution of readers' exam sensitivity and specificity per clinic, as a PNG."""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Sequence

import numpy as np
from flask_babel import force_locale, gettext
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import blended_transform_factory
from PIL import Image, ImageDraw, ImageFont

from app.i18n import current_language

ClinicScores = tuple[str, Sequence[float], Sequence[float]]  # label, sensitivities, specificities

BLUE, RED, GREY = "#1f5f8b", "#a4262c", "#333333"
ROW_INCHES = 0.28
LABEL_INCHES_PER_CHAR = 0.062  # DejaVu Sans at 8 pt, generously
# The dashboard's column is about 1080 px at 1280 px (less on a tablet, where the page scales
# the image down): the PNG is drawn 1000 px wide and the clinic names share that width.
DPI = 100
WIDTH_INCHES = 10.0
MAX_LABEL_INCHES = 3.2
DOT_SIZE = 16  # points², about 5 px across at DPI: one reader is one visible dot
ROW_SPREAD = 0.26  # readers of a row spread over ±this, so equal scores are separate dots
LABEL_POINTS = 8
CLINIC_LABEL = "clinic-label"  # gid of the clinic names' texts, which the PNG stamps itself


def _fit_label(label: str, chars: int) -> str:
    return label if len(label) <= chars else label[: chars - 1].rstrip() + "…"


def _spread(n: int) -> np.ndarray:
    """Vertical offsets of n readers in a row: all different, so readers with the same score
    are as many dots as readers; in a fixed shuffled order, so height says nothing about the
    value (sorted offsets would draw a misleading slope)."""
    if n <= 1:
        return np.zeros(n)
    return np.linspace(-ROW_SPREAD, ROW_SPREAD, n)[np.random.default_rng(n).permutation(n)]


def _tukey_boxes(rows: Sequence[tuple[float, Sequence[float]]]) -> tuple[list, list, list]:
    """Boxes (quartiles), whiskers (to the furthest value within 1.5 IQR) and medians of
    each row, as polygons and segments. Drawn as three collections rather than with
    ``Axes.boxplot``, which makes six artists per box: a hundred clinics then take seconds."""
    boxes, whiskers, medians = [], [], []
    for y, values in rows:
        v = np.asarray(values, dtype=float)
        q1, median, q3 = np.percentile(v, [25, 50, 75])
        iqr = q3 - q1
        low = v[v >= q1 - 1.5 * iqr].min()
        high = v[v <= q3 + 1.5 * iqr].max()
        h = 0.3
        boxes.append([(q1, y - h), (q3, y - h), (q3, y + h), (q1, y + h)])
        whiskers += [[(low, y), (q1, y)], [(q3, y), (high, y)],
                     [(low, y - h / 2), (low, y + h / 2)], [(high, y - h / 2), (high, y + h / 2)]]
        medians.append([(median, y - h), (median, y + h)])
    return boxes, whiskers, medians


def clinic_distribution_figure(clinics: Sequence[ClinicScores], title: str) -> bytes:
    """The figure of :func:`clinic_distribution` as a PNG, 1000 px wide. The same scores
    give the same PNG: it is drawn once and kept (per process, the last few), as drawing a
    hundred clinics' names costs most of a second (matplotlib lays out and rasterises each
    label) while the scores change only when an exam ends or a certificate is decided."""
    frozen = tuple((label, tuple(map(float, sens)), tuple(map(float, spec)))
                   for label, sens, spec in clinics)
    return _png(frozen, title, current_language())


# Keyed by the scores themselves (never out of date) and by the language of its words.
@functools.lru_cache(maxsize=16)
def _png(clinics: tuple[tuple[str, tuple[float, ...], tuple[float, ...]], ...],
         title: str, language: str) -> bytes:
    with force_locale(language):
        fig = clinic_distribution(clinics, title)
    # The clinic names are most of the drawing: matplotlib lays out and rasterises each
    # label glyph by glyph (~5 ms a label, 0.6 s for 117 clinics). They are hidden from
    # matplotlib and written with Pillow's FreeType text on the rendered image instead, at
    # the same place, font and size (~0.3 ms a label).
    labels = [t for t in fig.texts + fig.axes[0].texts if t.get_gid() == CLINIC_LABEL]
    for text in labels:
        text.set_visible(False)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")  # opaque
    _stamp_labels(image, labels, fig.dpi)
    buffer = io.BytesIO()
    # Fast zlib level: a large figure otherwise spends a fifth of its time compressing.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@functools.lru_cache(maxsize=4)
def _label_font(dpi: float) -> ImageFont.FreeTypeFont:
    """matplotlib's own font file (DejaVu Sans) at the labels' size in pixels."""
    path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"))
    return ImageFont.truetype(path, LABEL_POINTS * dpi / 72)


def _stamp_labels(image: Image.Image, labels: Sequence[Text], dpi: float) -> None:
    """Write each hidden label where matplotlib would have: right-aligned at its anchor,
    centred vertically on its row (display coordinates start at the bottom, images at
    the top)."""
    draw = ImageDraw.Draw(image)
    font = _label_font(dpi)
    height = image.height
    for text in labels:
        x, y = text.get_transform().transform(text.get_position())
        draw.text((x, height - y), text.get_text(), fill="black", font=font, anchor="rm")


def clinic_distribution(clinics: Sequence[ClinicScores], title: str) -> Figure:
    """One row per clinic, two panels (sensitivity, specificity): a box of the readers'
    values with each reader drawn as a dot, so a clinic of three readers is not mistaken for
    a clinic of thirty (n is in the label). Built without pyplot: no global figure state
    shared between a server's threads, nothing to close."""
    counts = [f" (n={max(len(sens), len(spec))})" for _, sens, spec in clinics]
    axis_labels = {"sensitivity": gettext("sensitivity (latest exam per reader)"),
                   "specificity": gettext("specificity (latest exam per reader)")}
    rows = max(len(clinics), 1)
    longest = max((len(c[0]) + len(n) for c, n in zip(clinics, counts, strict=True)), default=10)
    label_inches = min(MAX_LABEL_INCHES, 0.3 + LABEL_INCHES_PER_CHAR * longest)
    chars = int((label_inches - 0.3) / LABEL_INCHES_PER_CHAR)
    # A long clinic name is shortened, never its reader count.
    labels = [_fit_label(c[0], chars - len(n)) + n for c, n in zip(clinics, counts, strict=True)]
    width, height = WIDTH_INCHES, 1.3 + ROW_INCHES * rows
    fig = Figure(figsize=(width, height), dpi=DPI)
    axes = fig.subplots(1, 2, sharey=True)
    # Fixed margins instead of bbox_inches="tight", which draws the whole figure twice.
    fig.subplots_adjust(left=label_inches / width, right=0.98, wspace=0.06,
                        bottom=0.75 / height, top=1 - 0.45 / height)
    positions = list(range(len(clinics), 0, -1))  # first clinic at the top
    for ax, column, name in ((axes[0], 1, "sensitivity"), (axes[1], 2, "specificity")):
        data = [list(c[column]) for c in clinics]
        boxes, whiskers, medians = _tukey_boxes(
            [(p, d) for p, d in zip(positions, data, strict=True) if d])
        ax.add_collection(PolyCollection(boxes, facecolors="#e8f0f6", edgecolors=BLUE,
                                         linewidths=0.8))
        ax.add_collection(LineCollection(whiskers, colors=BLUE, linewidths=0.8))
        ax.add_collection(LineCollection(medians, colors=RED, linewidths=1.6))
        # One scatter for all readers, for the same reason: a dot per reader who has a
        # value in this panel, spread within the clinic's row.
        xs = np.fromiter((v for values in data for v in values), dtype=float)
        ys = np.concatenate([p + _spread(len(values))
                             for p, values in zip(positions, data, strict=True)] or [[]])
        if xs.size:
            ax.scatter(xs, ys, s=DOT_SIZE, alpha=0.7, color=GREY, edgecolors="white",
                       linewidths=0.4, zorder=3)
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel(axis_labels[name])
        ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
    # Clinic names as plain texts: a hundred Tick objects (line, label, layout each) cost
    # more than the rest of the figure. Tagged, so the PNG can write them faster (_png).
    for ax in axes:
        ax.set_yticks([])
    to_labels = blended_transform_factory(axes[0].transAxes, axes[0].transData)
    for position, label in zip(positions, labels, strict=True):
        axes[0].text(-0.02, position, label, transform=to_labels, ha="right", va="center",
                     fontsize=LABEL_POINTS, gid=CLINIC_LABEL)
    axes[0].set_ylim(0.4, rows + 0.6)
    if not clinics:
        fig.text(0.5, 0.62, gettext("no exam results yet for these filters"), ha="center",
                 va="center", color="#5b6675")
    fig.suptitle(title, fontsize=10, y=1 - 0.1 / height, va="top")
    return fig


def warm_up() -> float:
    """Draw and encode a small figure once, untimed by any request: the first figure a
    process draws otherwise pays for importing matplotlib, loading its font list and the
    font itself, and building the text layout caches (most of half a second). A server
    calls it in a thread at start (app.wsgi), never the commands, which draw no figure.
    Returns the seconds it took."""
    started = time.perf_counter()
    _png.__wrapped__((("Warm-up clinic", (0.5, 0.9), (0.6, 0.8)),), "warm-up", "en")
    return time.perf_counter() - started
