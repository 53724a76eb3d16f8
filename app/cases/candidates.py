"""Candidate reference reads as the case page shows them: whose each is and in which role.

Candidates come from outside the library (a QC study promoted to it, ``app.qc.promote``),
and only that area knows whose read each one was. It registers a describer here when it is
imported, so the case library never imports it (the library stays below the areas that
build on it: no import circle through the QC area's use of exercises).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from app.cases.models import Case

Describer = Callable[[Case], Sequence[Any]]

_describers: list[Describer] = []


def register_candidate_describer(describer: Describer) -> None:
    if describer not in _describers:
        _describers.append(describer)


def candidate_reads(case: Case) -> list[Any]:
    """The case's candidate reads as the first describer that knows them gives them."""
    for describer in _describers:
        found = list(describer(case))
        if found:
            return found
    return []
