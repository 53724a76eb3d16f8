"""The programme dashboard's figure of exam sensitivity and specificity per clinic: it fits
its column at 1280 px (no horizontal scroll) and draws what its caption says, one dot per
reader, visible even where readers share a score."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from PIL import Image

from app.auth.roles import Role
from app.certification.figures import clinic_distribution, clinic_distribution_figure
from bench.scale_data import Scale, populate
from tests.conftest import sign_in

NO_SCROLL = """() => {
  const s = document.scrollingElement;
  return { scroll: s.scrollWidth, client: s.clientWidth };
}"""


def _dots(fig) -> list[np.ndarray]:
    """The scatter offsets (one row per dot) of each panel, left to right."""
    out = []
    for ax in fig.axes:
        scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
        out.append(np.concatenate([c.get_offsets() for c in scatters]) if scatters
                   else np.empty((0, 2)))
    return out


def test_one_distinct_dot_per_reader_even_when_readers_share_a_score():
    clinics = [
        # Five readers with the same sensitivity and specificity: five dots, not one.
        ("KE · Nairobi site", [1.0] * 5, [0.8] * 5),
        # A reader without a specificity (no normal case read) has a sensitivity dot only.
        ("KE · Mombasa site", [0.5, 0.75, 0.75], [0.9, 0.6]),
        ("PE · Lima site", [0.25], [1.0]),
    ]
    fig = clinic_distribution(clinics, "Programme")
    sensitivity, specificity = _dots(fig)
    assert len(sensitivity) == 5 + 3 + 1
    assert len(specificity) == 5 + 2 + 1
    for dots in (sensitivity, specificity):
        assert len({(round(x, 6), round(y, 6)) for x, y in dots}) == len(dots)
    # Each dot stays in its clinic's row (the first clinic is at the top) and at its value.
    nairobi = sensitivity[np.abs(sensitivity[:, 1] - 3) < 0.35]
    assert len(nairobi) == 5 and np.allclose(nairobi[:, 0], 1.0)
    assert sorted(sensitivity[np.abs(sensitivity[:, 1] - 1) < 0.35][:, 0]) == [0.25]
    # Big enough to see at the page's scale: at least 4 px across.
    scatter = next(c for c in fig.axes[0].collections if isinstance(c, PathCollection))
    diameter_px = np.sqrt(scatter.get_sizes()[0]) * fig.dpi / 72
    assert diameter_px >= 4


def test_the_png_fits_a_desktop_column_whatever_the_clinic_names():
    long = "Hospital " + "very long clinic name " * 6
    png = clinic_distribution_figure([(long, [0.5, 0.9], [0.7, 0.8])], "A programme title")
    width, _ = Image.open(io.BytesIO(png)).size
    assert width <= 1000


@pytest.mark.browser
def test_dashboard_figure_fits_its_column_at_1280_px(browser, portal_url, make_user, app):
    data = populate(Scale(users=40, clinics=6, countries=3, attempts=200, certificates=20,
                          cases_per_exercise=6), seed=5, tag="d")
    lead = make_user(Role.PROGRAMME_LEAD, lead_all_countries=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        sign_in(page, portal_url, lead.username)
        page.goto(f"{portal_url}/certification/programmes/{data.programme_id}")
        figure = page.get_by_test_id("scores-figure")
        figure.scroll_into_view_if_needed()
        page.wait_for_function(
            "() => { const i = document.querySelector('[data-testid=scores-figure]');"
            " return i.complete && i.naturalWidth > 0; }"
        )
        sizes = page.evaluate(NO_SCROLL)
        assert sizes["scroll"] <= sizes["client"], sizes
        fit = page.evaluate("""() => {
            const img = document.querySelector('[data-testid=scores-figure]');
            const box = img.parentElement;
            const main = document.querySelector('main');
            return { img: img.getBoundingClientRect().width, box: box.clientWidth,
                     right: img.getBoundingClientRect().right,
                     mainRight: main.getBoundingClientRect().right,
                     natural: img.naturalWidth };
        }""")
        assert fit["img"] <= fit["box"] and fit["right"] <= fit["mainRight"], fit
        # Not blown up beyond its pixels either (a blurred figure is no better).
        assert fit["img"] <= fit["natural"], fit
    finally:
        context.close()
