"""Result figures as PNG bytes (matplotlib, headless Agg backend)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on a server; must precede pyplot
import matplotlib.pyplot as plt
from flask_babel import gettext
from matplotlib.figure import Figure

from app.quizzes.wording import format_value


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def roc_points(truth: Sequence[bool], ratings: Sequence[float]) -> list[tuple[float, float]]:
    """Empirical ROC operating points (FPR, TPR), one per distinct rating threshold."""
    positives = sum(truth)
    negatives = len(truth) - positives
    points = [(0.0, 0.0)]
    for threshold in sorted(set(ratings), reverse=True):
        tp = sum(1 for t, r in zip(truth, ratings, strict=True) if t and r >= threshold)
        fp = sum(1 for t, r in zip(truth, ratings, strict=True) if not t and r >= threshold)
        points.append((fp / negatives if negatives else 0.0, tp / positives if positives else 0.0))
    if points[-1] != (1.0, 1.0):
        points.append((1.0, 1.0))
    return points


def roc_figure(truth: Sequence[bool], ratings: Sequence[float], auc: float | None,
               operating_point: tuple[float, float] | None) -> bytes:
    return figure_png(roc_plot(truth, ratings, auc, operating_point))


def roc_plot(truth: Sequence[bool], ratings: Sequence[float], auc: float | None,
             operating_point: tuple[float, float] | None) -> Figure:
    """The ROC curve with the trainee's operating point. Constrained layout keeps the axis
    labels inside the figure (the PNG is also cropped to what is drawn)."""
    fig, ax = plt.subplots(figsize=(4.2, 4.2), layout="constrained")
    if truth and 0 < sum(truth) < len(truth):
        xs, ys = zip(*roc_points(truth, ratings), strict=True)
        label = gettext("your ROC (AUC %(auc)s)", auc=format_value("auc", auc)) \
            if auc is not None else gettext("your ROC")
        ax.plot(xs, ys, marker="o", markersize=3, color="#1f5f8b", label=label)
    else:
        ax.text(0.5, 0.5, gettext("not enough positive and\nnegative cases for ROC"), ha="center",
                va="center", color="#5b6675")
    if operating_point is not None:
        ax.plot([operating_point[0]], [operating_point[1]], marker="*", markersize=12,
                color="#a4262c", linestyle="none", label=gettext("your sputum decisions"))
    ax.plot([0, 1], [0, 1], linestyle=":", color="#999999", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(gettext("1 - specificity (false-positive fraction)"))
    ax.set_ylabel(gettext("sensitivity (true-positive fraction)"))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    return fig


def learning_figure(points: Sequence[tuple[int, float]], label: str) -> bytes:
    fig, ax = plt.subplots(figsize=(4.8, 3.0), layout="constrained")
    if points:
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, [y * 100 for y in ys], marker="o", color="#1f5f8b")
        ax.set_xticks(list(xs))
    ax.set_ylim(0, 100)
    ax.set_xlabel(gettext("attempt"))
    ax.set_ylabel(gettext("%(measure)s (%%)", measure=label))
    ax.grid(alpha=0.3)
    return figure_png(fig)
