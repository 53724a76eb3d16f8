"""Choosing an exercise's cases by rule, e.g. 40 cases, half TB-suggestive, at least five
each with a cavity, an effusion and adenopathy, 30/50/20 % easy/moderate/hard."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.cases.models import Case, CaseStatus
from app.i18n import N_
from app.quizzes.access import barred_case_ids
from app.quizzes.models import ExerciseKind
from app.quizzes.refusal import Refusal
from app.schemes.parts import Scheme
from app.schemes.registry import is_image_quality
from app.schemes.translations import SCHEME_LANGUAGES


class SelectionError(Refusal):
    """The library cannot satisfy the rule; the message says what is short."""


@dataclass(frozen=True)
class CaseRule:
    total: int
    tb_share: float | None = None  # fraction of TB-suggestive cases, e.g. 0.5
    min_per_finding: Mapping[str, int] = field(default_factory=dict)
    difficulty_mix: Mapping[str, float] = field(default_factory=dict)  # shares, sum <= 1
    # What the cases are for: a practice set never draws a case that is in an exam or the
    # exam bank, an exam never one that is in a practice set (access.barred_case_ids).
    kind: ExerciseKind = ExerciseKind.PRACTICE
    seed: int = 0
    # An image-quality exercise draws only cases with an image-quality reference read.
    image_quality: bool = False


def parse_pairs(text: str, *, integer: bool) -> dict[str, float]:
    """ "cavitary_lesion:5, pleural_effusion:5" -> {"cavitary_lesion": 5, ...}."""
    pairs: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition(":")
        try:
            number = int(value) if integer else float(value)
        except ValueError:
            number = None
        if not sep or not key.strip() or number is None or number < 0:
            raise SelectionError(N_("write %(part)s as name:number"), part=repr(part))
        pairs[key.strip()] = number
    return pairs


def findings_by_label(scheme: Scheme, text: str) -> dict[str, int]:
    """ "Cavitary lesion: 5" a line -> {"cavitary_lesion": 5}: trainers name findings as the
    scheme's labels show them, in any of the portal's languages (labels may hold commas; the
    count follows the last colon)."""
    labels = {" ".join(o.label_in(language).split()).casefold(): o.value
              for o in scheme.mark_labels or () for language in ("en", *SCHEME_LANGUAGES)}
    wanted: dict[str, int] = {}
    for line in filter(None, (line.strip() for line in text.splitlines())):
        label, sep, count = line.rpartition(":")
        if not sep or not label.strip() or not count.strip().isdigit():
            raise SelectionError(N_("write %(line)s as a finding and a number of cases, "
                                    "e.g. \"Cavitary lesion: 5\""), line=repr(line))
        key = labels.get(" ".join(label.split()).casefold())
        if key is None:
            known = "; ".join(o.label for o in scheme.mark_labels or ()) or "none"
            raise SelectionError(N_("%(label)s is not a finding of %(scheme)s (its findings: "
                                    "%(known)s)"), label=repr(label.strip()),
                                 scheme=scheme.name, known=known)
        wanted[key] = int(count)
    return wanted


def select_cases(rule: CaseRule, candidates: list[Case] | None = None) -> list[int]:
    if rule.total < 1:
        raise SelectionError(N_("the rule needs at least one case"))
    if rule.tb_share is not None and not 0 <= rule.tb_share <= 1:
        raise SelectionError(N_("the TB-suggestive share is between 0 and 1"))
    barred = barred_case_ids(ExerciseKind(rule.kind))
    pool = [c for c in (candidates if candidates is not None else _library())
            if c.id not in barred and c.status == CaseStatus.PUBLISHED.value]
    if rule.image_quality:
        pool = [c for c in pool if any(r.current and is_image_quality(r.scheme_key)
                                       for r in c.reads)]
    pool = [c for c in pool if c.reference_tb_positive is not None or rule.tb_share is None]
    rng = random.Random(rule.seed)  # noqa: S311 (a reproducible draw, not a secret)
    rng.shuffle(pool)
    chosen: list[Case] = []

    def findings(case: Case) -> set[str]:
        return {link.finding for link in case.finding_links}

    for finding, needed in rule.min_per_finding.items():
        have = sum(1 for c in chosen if finding in findings(c))
        extra = [c for c in pool if c not in chosen and finding in findings(c)]
        if have + len(extra) < needed:
            raise SelectionError(
                N_("only %(count)s published case(s) with %(finding)s (%(needed)s needed)"),
                count=have + len(extra), finding=repr(finding), needed=int(needed))
        chosen += extra[: max(0, int(needed) - have)]
    if len(chosen) > rule.total:
        raise SelectionError(N_("the finding minimums alone need %(count)s cases"),
                             count=len(chosen))

    remaining = [c for c in pool if c not in chosen]
    if rule.tb_share is not None:
        want_tb = round(rule.total * rule.tb_share)
        have_tb = sum(1 for c in chosen if c.reference_tb_positive)
        if have_tb > want_tb:
            raise SelectionError(
                N_("the finding minimums give %(count)s TB-suggestive cases, more than the "
                   "%(wanted)s asked for"), count=have_tb, wanted=want_tb)
        chosen += _fill(
            remaining,
            lambda c: bool(c.reference_tb_positive),
            want_tb - have_tb,
            rule,
            "TB-suggestive",
        )
        want_other = rule.total - len(chosen)
        chosen += _fill(
            [c for c in remaining if c not in chosen],
            lambda c: not c.reference_tb_positive,
            want_other,
            rule,
            "other",
        )
    else:
        chosen += _fill(remaining, lambda c: True, rule.total - len(chosen), rule, "")
    return [c.id for c in chosen]


def _fill(pool: list[Case], wanted, count: int, rule: CaseRule, what: str) -> list[Case]:
    """``count`` cases of ``pool`` that are ``wanted``, following the difficulty mix."""
    if count <= 0:
        return []
    candidates = [c for c in pool if wanted(c)]
    if len(candidates) < count:
        # "TB-suggestive", "other" or any: one whole sentence each, to translate.
        message = {"TB-suggestive": N_("only %(count)s TB-suggestive published case(s) left "
                                       "(%(needed)s needed)"),
                   "other": N_("only %(count)s other published case(s) left (%(needed)s "
                               "needed)")}.get(what, N_("only %(count)s published case(s) "
                                                        "left (%(needed)s needed)"))
        raise SelectionError(message, count=len(candidates), needed=count)
    picked: list[Case] = []
    for difficulty, share in rule.difficulty_mix.items():
        quota = round(count * share)
        of_level = [c for c in candidates if c.difficulty == difficulty and c not in picked]
        picked += of_level[:quota]
    picked += [c for c in candidates if c not in picked][: count - len(picked)]
    return picked[:count]


def _library() -> list[Case]:
    from app.extensions import db

    query = (
        select(Case)
        .options(selectinload(Case.finding_links), selectinload(Case.reads))
        .where(Case.status == CaseStatus.PUBLISHED.value)
        .order_by(Case.id)
    )
    return list(db.session.scalars(query))
