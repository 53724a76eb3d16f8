"""Reference reads: versioned expert reads of a case and the consensus that is the reference."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import update

from app.audit.services import record
from app.auth.models import User
from app.cases.models import Case, CaseFinding, ReadKind, ReferenceRead
from app.extensions import db
from app.schemes.definitions import (
    Scheme,
    SchemeError,
    consensus,
    tb_positive,
    validate_answers,
    validate_marks,
)
from app.schemes.registry import classification_item, get_scheme

# ---- reads ------------------------------------------------------------------------------


def save_read(
    case: Case,
    *,
    author: User | None,
    scheme: Scheme,
    answers: Any,
    marks: Any = None,
    kind: ReadKind = ReadKind.EXPERT,
) -> ReferenceRead:
    """Validate and store a new version of ``author``'s read; the previous one is kept as
    history. ``marks=None`` keeps the marks of the previous version."""
    current = case.current_reads
    others = [
        r for r in current
        if (r.author_id, r.kind, r.scheme_key) != (author.id if author else None, kind.value,
                                                    scheme.key)
    ]
    # One reference per audience: the radiologists' read in one scheme, and beside it the
    # radiographers' image-quality read.
    if any(r.scheme_key != scheme.key and _audience(r.scheme_key) == scheme.audience
           for r in others):
        raise SchemeError("every reference read of a case uses the same reporting scheme")
    clean_answers = validate_answers(scheme, answers, partial=kind is ReadKind.ADJUDICATION)
    previous = next(
        (
            r
            for r in current
            if r.author_id == (author.id if author else None) and r.kind == kind.value
            and r.scheme_key == scheme.key
        ),
        None,
    )
    if marks is None:
        clean_marks = previous.marks if previous else []
    else:
        clean_marks = _validate_case_marks(case, scheme, marks)
    version = 1
    if previous is not None:
        version = previous.version + 1
        db.session.execute(
            update(ReferenceRead).where(ReferenceRead.id == previous.id).values(current=False)
        )
    read = ReferenceRead(
        case=case,
        author=author,
        kind=kind.value,
        scheme_key=scheme.key,
        scheme_version=scheme.version,
        answers=clean_answers,
        marks=clean_marks,
        version=version,
        current=True,
    )
    db.session.add(read)
    db.session.flush()
    record(
        "case.read",
        actor=author,
        object_type="case",
        object_id=case.id,
        kind=kind.value,
        version=version,
        scheme=scheme.ref,
    )
    db.session.flush()
    db.session.expire(case, ["reads"])
    refresh_summary(case)
    db.session.commit()
    return read




def refresh_summary(case: Case) -> None:
    """Copy the reference's classification, decision and findings onto the case, where the
    library filters on them with indexes (50,000 cases do not fit a scan of JSON)."""
    reference = reference_for(case)
    findings: set[str] = set()
    classification = None
    if reference.scheme is not None:
        key = classification_item(reference.scheme)
        classification = reference.answers.get(key) if key else None
        label_item = reference.scheme.definition.get("mark_labels")
        value = reference.answers.get(label_item) if label_item else None
        findings = set(value if isinstance(value, list) else [value] if value else [])
    case.reference_classification = classification
    case.reference_tb_positive = reference.tb_positive
    keep = [link for link in case.finding_links if link.finding in findings]
    have = {link.finding for link in keep}
    case.finding_links = keep + [CaseFinding(finding=f) for f in sorted(findings - have)]


def _validate_case_marks(case: Case, scheme: Scheme, marks: Any) -> list[dict[str, Any]]:
    if not isinstance(marks, list):
        raise SchemeError("marks must be a list")
    images = {image.id: image for image in case.images}
    clean = []
    for n, mark in enumerate(marks, 1):
        image = images.get(mark.get("image_id")) if isinstance(mark, dict) else None
        if image is None:
            raise SchemeError(f"mark {n} must name one of this case's images")
        [checked] = validate_marks(scheme, [mark], columns=image.columns, rows=image.rows)
        clean.append({"image_id": image.id, **checked})
    return clean


SchemeLookup = Callable[[str, int], Scheme]


def references_for(cases: Iterable[Case],
                   scheme_key: str | None = None) -> dict[int, Reference]:
    """Each case's reference, by case id, with each scheme version looked up once: a
    trainer-made scheme is a database row, and looking it up per case would cost a
    statement per case. Load the cases with their reads (``selectinload(Case.reads)``) to
    keep the whole batch at a constant number of statements."""
    schemes = cache(get_scheme)
    return {case.id: reference_for(case, schemes=schemes, scheme_key=scheme_key)
            for case in cases}


@dataclass
class Reference:
    """The case's reference read: the experts' consensus with adjudicated ties.

    ``marks`` are the experts' (and the adjudicator's) lesion outlines whose finding is in
    the consensus read, each once. Outlines of one lesion by several experts stay separate
    here, so that the review can show each of them; scoring merges them into one reference
    lesion by its overlap rule (app/quizzes/scoring/consensus.py)."""

    scheme: Scheme | None
    answers: dict[str, Any] = field(default_factory=dict)
    marks: list[dict[str, Any]] = field(default_factory=list)
    open_ties: tuple[str, ...] = ()
    readers: int = 0
    tb_positive: bool | None = None

    @property
    def complete(self) -> bool:
        return self.scheme is not None and self.readers > 0 and not self.open_ties


def _audience(scheme_key: str) -> str:
    try:
        return get_scheme(scheme_key).audience
    except SchemeError:
        return "radiologist"


def reference_scheme_key(case: Case) -> str | None:
    """The scheme of the case's main reference: its radiologists' read (an image-quality
    read beside it is asked for by its scheme)."""
    keys = list(dict.fromkeys(r.scheme_key for r in case.current_reads
                              if r.kind == ReadKind.EXPERT.value))
    return next((k for k in keys if _audience(k) != "radiographer"), keys[0] if keys else None)


def side_references(case: Case) -> list[Reference]:
    """The case's references in schemes other than its main one (its image-quality read)."""
    main = reference_scheme_key(case)
    keys = dict.fromkeys(r.scheme_key for r in case.current_reads
                         if r.kind == ReadKind.EXPERT.value and r.scheme_key != main)
    return [reference_for(case, scheme_key=key) for key in keys]


def reference_for(case: Case, *, schemes: SchemeLookup = get_scheme,
                  scheme_key: str | None = None) -> Reference:
    """The case's reference in ``scheme_key`` (by default, or when the case has no read in
    that scheme, its main one: the radiologists')."""
    reads = [r for r in case.current_reads if scheme_key and r.scheme_key == scheme_key]
    if not reads:
        key = reference_scheme_key(case)
        reads = [r for r in case.current_reads if r.scheme_key == key]
    experts = [r for r in reads if r.kind == ReadKind.EXPERT.value]
    if not experts:
        return Reference(scheme=None)
    scheme = schemes(experts[0].scheme_key, experts[0].scheme_version)
    agreed = consensus(scheme, [r.answers for r in experts])
    answers = dict(agreed.answers)
    ties = list(agreed.ties)
    adjudication = next((r for r in reads if r.kind == ReadKind.ADJUDICATION.value), None)
    if adjudication is not None:
        for key in list(ties):
            item_key, _, option = key.partition(":")
            if item_key in adjudication.answers:
                ties.remove(key)
                if option:
                    chosen = option in adjudication.answers[item_key]
                    values = [v for v in answers.get(item_key, []) if v != option]
                    answers[item_key] = values + ([option] if chosen else [])
                else:
                    answers[item_key] = adjudication.answers[item_key]
    findings = _consensus_findings(scheme, answers)
    marks = [
        m
        for r in (adjudication, *experts)
        if r
        for m in r.marks
        if findings is None or m["finding"] in findings
    ]
    return Reference(
        scheme=scheme,
        answers=answers,
        marks=_dedupe(marks),
        open_ties=tuple(ties),
        readers=len(experts),
        tb_positive=tb_positive(scheme, answers),
    )


def _consensus_findings(scheme: Scheme, answers: dict[str, Any]) -> set[str] | None:
    """Marks count for the reference only when their finding is in the consensus read."""
    label_item = scheme.definition.get("mark_labels")
    if not label_item:
        return None
    value = answers.get(label_item)
    return set(value if isinstance(value, list) else [value] if value else [])


def _dedupe(marks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Byte-identical outlines (a copied read) once; overlapping ones are merged later."""
    seen, unique = set(), []
    for mark in marks:
        key = json.dumps(mark, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(mark)
    return unique
