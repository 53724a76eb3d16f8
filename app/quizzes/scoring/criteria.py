"""Pass criteria: each ``Criterion`` checked against an attempt's metrics, with the reason for
a fail. An attempt passes when every criterion holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.quizzes.scoring.inputs import Criterion
from app.quizzes.scoring.jsonsafe import finite

#: Keeps 0.9 from failing "minimum 0.9" through floating-point rounding.
TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class CriterionResult:
    metric: str
    minimum: float | None
    maximum: float | None
    value: float | None
    passed: bool
    reason: str | None  # why it failed; None when passed

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "minimum": finite(self.minimum),
            "maximum": finite(self.maximum),
            "value": finite(self.value),
            "passed": self.passed,
            "reason": self.reason,
        }


def lookup(
    name: str, metrics: Mapping[str, float | None], per_finding: Mapping[str, Mapping[str, Any]]
) -> tuple[float | None, str | None]:
    """(value, reason it is None) for a metric name; KeyError when unknown."""
    if name in metrics:
        return metrics[name], None
    kind, _, finding = name.partition(":")
    if kind in ("finding_sensitivity", "finding_specificity") and finding in per_finding:
        value = per_finding[finding][kind.removeprefix("finding_")]
        why = (
            f"no reference case has {finding!r}"
            if kind == "finding_sensitivity"
            else f"every reference case has {finding!r}"
        )
        return value, why
    raise KeyError(name)


def check(
    criterion: Criterion,
    metrics: Mapping[str, float | None],
    undefined: Mapping[str, str],
    per_finding: Mapping[str, Mapping[str, Any]],
) -> CriterionResult:
    """Pass or fail one criterion, with the reason for a fail."""

    def result(value: float | None, reason: str | None) -> CriterionResult:
        return CriterionResult(
            criterion.metric, criterion.minimum, criterion.maximum, value, reason is None, reason
        )

    try:
        value, why = lookup(criterion.metric, metrics, per_finding)
    except KeyError:
        return result(None, f"unknown metric {criterion.metric!r}")
    if value is None:
        reason = undefined.get(criterion.metric) or why or "no data"
        return result(None, f"not defined: {reason}")
    shown = f"{value:d}" if isinstance(value, int) else f"{value:.3f}"  # counts vs fractions
    if criterion.minimum is not None and value < criterion.minimum - TOLERANCE:
        return result(
            value, f"{criterion.metric} {shown} is below the minimum {criterion.minimum:g}"
        )
    if criterion.maximum is not None and value > criterion.maximum + TOLERANCE:
        return result(
            value, f"{criterion.metric} {shown} is above the maximum {criterion.maximum:g}"
        )
    return result(value, None)
