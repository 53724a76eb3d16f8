"""The per-clinic figure is drawn once for the same scores and drawn again when they
change (its PNG is kept keyed by the scores themselves)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from app.certification import figures

CLINICS = [("KE · Nairobi site", [0.5, 0.75, 1.0], [0.8, 0.9]),
           ("KE · Mombasa site", [0.25], [0.6, 0.7, 0.95])]


def test_the_same_scores_give_the_same_png_drawn_once(monkeypatch):
    drawn = []
    draw = figures.clinic_distribution

    def counting(clinics, title):
        drawn.append(title)
        return draw(clinics, title)

    monkeypatch.setattr(figures, "clinic_distribution", counting)
    title = "Cache test programme"
    first = figures.clinic_distribution_figure(CLINICS, title)
    again = figures.clinic_distribution_figure([(n, list(s), list(p)) for n, s, p in CLINICS],
                                               title)
    assert again == first and drawn == [title]
    changed = figures.clinic_distribution_figure(
        [*CLINICS[:1], ("KE · Mombasa site", [0.25, 0.5], [0.6])], title)
    assert changed != first and drawn == [title, title]
    assert Image.open(io.BytesIO(changed)).format == "PNG"


def _rows(count: int) -> list[tuple[str, list[float], list[float]]]:
    return [(f"KE · Clinic {i}", [0.5, 0.8], [0.6, 0.9]) for i in range(count)]


def test_clinic_names_are_not_laid_out_by_matplotlib_one_by_one(monkeypatch):
    """matplotlib's text drawing is most of a large figure's time: the number of texts it
    draws does not grow with the clinics (the names are written on the image at once)."""
    from matplotlib.backends.backend_agg import RendererAgg

    drawn: list[str] = []
    draw_text = RendererAgg.draw_text

    def counting(self, gc, x, y, s, *args, **kwargs):
        drawn.append(s)
        return draw_text(self, gc, x, y, s, *args, **kwargs)

    monkeypatch.setattr(RendererAgg, "draw_text", counting)
    figures.clinic_distribution_figure(_rows(3), "Three clinics")
    three = len(drawn)
    drawn.clear()
    figures.clinic_distribution_figure(_rows(30), "Thirty clinics")
    assert len(drawn) == three


def test_each_clinic_row_has_its_name_left_of_the_panels():
    png = figures.clinic_distribution_figure(_rows(12), "Named rows")
    image = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    fig = figures.clinic_distribution(_rows(12), "Named rows")
    left = int(fig.subplotpars.left * image.shape[1])
    labels = image[:, : left - 2]
    # Rows of dark pixels (text) in the label column: one band per clinic, at its row.
    dark_rows = np.flatnonzero((labels < 128).any(axis=1))
    bands = np.split(dark_rows, np.flatnonzero(np.diff(dark_rows) > 1) + 1)
    assert len(bands) == 12
    axes = fig.axes[0]
    for position, band in zip(range(12, 0, -1), bands, strict=True):
        y = image.shape[0] - axes.transData.transform((0, position))[1]
        assert band.min() <= y <= band.max()
