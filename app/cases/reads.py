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
from app.cases.models import Case, CaseFinding, CaseImage, ReadKind, ReferenceRead
from app.extensions import db
from app.schemes.answers import (
    check_mark_count,
    consensus,
    tb_positive,
    validate_answers,
    validate_marks,
)
from app.schemes.errors import N_, SchemeError, phrase
from app.schemes.parts import Scheme
from app.schemes.registry import classification_item, get_scheme, is_image_quality
from app.validation import JSONRefused, loads_strict

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
    current = [r for r in case.current_reads if r.scheme_key == scheme.key]
    diagnostic = {r.scheme_key for r in case.current_reads if not is_image_quality(r.scheme_key)}
    if not is_image_quality(scheme.key) and diagnostic - {scheme.key}:
        raise SchemeError(
            N_("every diagnostic reference read of a case uses the same reporting scheme (this "
               "case's is %(scheme)s); an image-quality read may sit beside it"),
            scheme=sorted(diagnostic)[0])
    clean_answers = validate_answers(scheme, answers, partial=kind is ReadKind.ADJUDICATION)
    previous = next(
        (
            r
            for r in current
            if r.author_id == (author.id if author else None) and r.kind == kind.value
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




def my_read(case: Case, user: User, scheme_key: str) -> ReferenceRead | None:
    """``user``'s current expert read of the case in the scheme, if any."""
    return next((r for r in case.current_reads
                 if r.author_id == user.id and r.kind == ReadKind.EXPERT.value
                 and r.scheme_key == scheme_key), None)


def read_scheme(case: Case, requested: str | None) -> tuple[Scheme, bool]:
    """The scheme of a trainer's read of the case, and whether it is fixed (the trainer
    cannot choose another). Image quality when asked for (the version the case's reads use);
    otherwise the case's diagnostic scheme once it has one, else the one asked for."""
    if requested and is_image_quality(requested):
        existing = next((r for r in case.current_reads if r.scheme_key == requested), None)
        if existing is not None:
            return get_scheme(existing.scheme_key, existing.scheme_version), True
        return get_scheme(requested), True
    diagnostic = next((r for r in case.current_reads if not is_image_quality(r.scheme_key)),
                      None)
    if diagnostic is not None:
        return get_scheme(diagnostic.scheme_key, diagnostic.scheme_version), True
    return get_scheme(requested or "ds3030"), False


def parse_marks(text: object) -> list[Any] | None:
    """The read page's marks field (the viewer's marks as JSON): None when it is empty (the
    page could not start the viewer), which keeps the saved marks."""
    if text is None:
        return None
    if not isinstance(text, str):
        # Flask-WTF takes a JSON body as form data, so the field may hold any JSON value.
        raise SchemeError(N_("the marks field must be text (the viewer's marks as JSON)"))
    if not text.strip():
        return None
    try:
        marks = loads_strict(text)
    except JSONRefused as exc:
        raise SchemeError(N_("the marks sent are refused: %(reason)s"),
                          reason=phrase(exc.message, **exc.params)) from None
    except ValueError:
        raise SchemeError(N_("the marks sent are not valid JSON")) from None
    if not isinstance(marks, list):
        raise SchemeError(N_("marks must be a list"))
    return marks


def marks_to_redisplay(case: Case, scheme: Scheme, marks_field: str | None,
                       saved: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The marks to put back in the viewer when a read is refused (a required item left
    out): the ones just drawn when they are valid, so that no work is lost; else ``saved``."""
    try:
        marks = parse_marks(marks_field)
        return saved if marks is None else _validate_case_marks(case, scheme, marks)
    except SchemeError:
        return saved


def save_reference_read(case: Case, *, author: User, scheme: Scheme, answers: Any,
                        marks_field: str | None) -> ReferenceRead:
    """The one-page reference read: the scheme's answers and the lesion marks drawn beside
    them, validated together and stored as one new version (or nothing at all)."""
    return save_read(case, author=author, scheme=scheme, answers=answers,
                     marks=parse_marks(marks_field))


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
    return validate_marks_on_images(scheme, marks, {image.id: image for image in case.images})


def validate_marks_on_images(scheme: Scheme, marks: Any,
                             images: dict[int, CaseImage]) -> list[dict[str, Any]]:
    """Marks checked against the scheme and the image each names (one of ``images``, keyed
    by id): the one rule for reference reads and trainees' answers. Raises SchemeError."""
    check_mark_count(marks)
    clean = []
    for n, mark in enumerate(marks, 1):
        image_id = mark.get("image_id") if isinstance(mark, dict) else None
        # A JSON true would otherwise find image 1 (True == 1 as a key).
        image = (images.get(image_id)
                 if isinstance(image_id, int) and not isinstance(image_id, bool) else None)
        if image is None:
            raise SchemeError(N_("mark %(number)s must name one of this case's images"), number=n)
        [checked] = validate_marks(scheme, [mark], columns=image.columns, rows=image.rows)
        clean.append({"image_id": image.id, **checked})
    return clean


SchemeLookup = Callable[[str, int], Scheme]


def references_for(cases: Iterable[Case], scheme_key: str | None = None) -> dict[int, Reference]:
    """Each case's reference, by case id, with each scheme version looked up once: a
    trainer-made scheme is a database row, and looking it up per case would cost a
    statement per case. Load the cases with their reads (``selectinload(Case.reads)``) to
    keep the whole batch at a constant number of statements."""
    schemes = cache(get_scheme)
    return {case.id: reference_for(case, scheme_key, schemes=schemes) for case in cases}


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


def reference_scheme_keys(case: Case) -> list[str]:
    """The schemes the case has current reference reads in: its diagnostic one first, then
    image quality."""
    keys = list(dict.fromkeys(r.scheme_key for r in case.current_reads))
    return sorted(keys, key=is_image_quality)


def reference_for(case: Case, scheme_key: str | None = None, *,
                  schemes: SchemeLookup = get_scheme) -> Reference:
    """The case's reference in ``scheme_key``; without one, in the case's diagnostic scheme
    (or image quality when that is all it has)."""
    if scheme_key is None:
        keys = reference_scheme_keys(case)
        scheme_key = keys[0] if keys else None
    reads = [r for r in case.current_reads if r.scheme_key == scheme_key]
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
