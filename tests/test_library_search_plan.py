"""The case library's search reads each filter's cases from an index, for its page and for
its count: no filter but "none" makes the database go through every case of the library
(SQLite's query plans; bench/bench_library_search.py times it over 50,000 cases)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from app.cases.services import LibraryFilter, library_query
from app.extensions import db
from tests.conftest import sqlite_only

FILTERS = {
    "status": LibraryFilter(status="in_review"),
    "finding": LibraryFilter(finding="miliary"),
    "classification": LibraryFilter(classification="abnormal_tb"),
    "tb": LibraryFilter(tb=True),
    "difficulty": LibraryFilter(difficulty="hard"),
    "tag": LibraryFilter(tag="Teaching"),
    "source": LibraryFilter(source="site03"),
    "pixel review pending": LibraryFilter(review_needed=True),
    "combined": LibraryFilter(status="published", tb=True, finding="nodule", tag="x"),
}


def _plan(statement) -> list[str]:
    sql = str(statement.compile(db.engine, compile_kwargs={"literal_binds": True}))
    return [row[-1] for row in db.session.execute(text("EXPLAIN QUERY PLAN " + sql))]


@sqlite_only
@pytest.mark.parametrize("name", FILTERS)
def test_each_library_filter_reads_its_cases_from_an_index(app, name):
    query = library_query(FILTERS[name])
    page = query.limit(50)
    count = select(func.count()).select_from(query.order_by(None).subquery())
    for statement in (page, count):
        plan = _plan(statement)
        # "SCAN teaching_case" alone: every row of the library read.
        assert not any(step.strip() == "SCAN teaching_case" for step in plan), plan
        assert not any(step.startswith("CORRELATED") for step in plan), plan
