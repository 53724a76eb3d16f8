"""The per-clinic figure is drawn once for the same scores and drawn again when they
change (its PNG is kept keyed by the scores themselves)."""

from __future__ import annotations

import io

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
