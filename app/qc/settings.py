"""A programme's QC settings: the target major-discrepancy rate and the ongoing criterion
("major-discrepancy rate <= x over the last n QC reads, at least m reads": all three or
none). Changing the criterion judges the programme's readers against it at once."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from flask_babel import gettext

from app.audit.services import record
from app.auth.models import User
from app.certification.models import Programme
from app.certification.services import CertificationError
from app.extensions import db
from app.qc.scope import MAX_LAST


@dataclass(frozen=True)
class QcSettings:
    """Rates as fractions (0.05 for 5 %); None where not set."""

    target_rate: float | None = None
    max_rate: float | None = None
    last_n: int | None = None
    min_reads: int | None = None

    @classmethod
    def of(cls, programme: Programme) -> QcSettings:
        return cls(programme.qc_target_rate, programme.qc_max_rate, programme.qc_last_n,
                   programme.qc_min_reads)


def check(settings: QcSettings) -> None:
    """Refuse settings that cannot be used, with the reason (CertificationError, 400)."""
    if settings.target_rate is not None and not 0 < settings.target_rate < 1:
        raise CertificationError(gettext(
            "the QC target rate must be more than %(low)s %% and less than %(high)s %%",
            low=0, high=100))
    criterion = (settings.max_rate, settings.last_n, settings.min_reads)
    if all(value is None for value in criterion):
        return
    if any(value is None for value in criterion):
        raise CertificationError(gettext(
            "the ongoing QC criterion needs all three numbers (the rate, the last n QC reads "
            "and the least number of reads) or none"))
    max_rate, last_n, min_reads = float(settings.max_rate or 0), int(settings.last_n or 0), \
        int(settings.min_reads or 0)
    if not 0 < max_rate < 1:
        raise CertificationError(gettext(
            "the criterion's major-discrepancy rate must be more than %(low)s %% and less "
            "than %(high)s %%", low=0, high=100))
    if not 1 <= last_n <= MAX_LAST:
        raise CertificationError(gettext(
            "the number of last QC reads must be from 1 to %(most)s", most=MAX_LAST))
    if not 1 <= min_reads <= last_n:
        raise CertificationError(gettext(
            "the least number of QC reads must be from 1 to the number of last QC reads"))


def set_qc_settings(programme: Programme, settings: QcSettings, *,
                    actor: User | None) -> None:
    """Store checked settings (audited as a programme change); when the criterion changed,
    the programme's readers are judged against the new one (flags opened, none closed)."""
    check(settings)
    before = QcSettings.of(programme)
    if before == settings:
        return
    names = {"target_rate": "qc_target_rate", "max_rate": "qc_max_rate",
             "last_n": "qc_last_n", "min_reads": "qc_min_reads"}
    old, new = asdict(before), asdict(settings)
    changed = [names[key] for key in names if old[key] != new[key]]
    for key, column in names.items():
        setattr(programme, column, new[key])
    record("programme.update", actor=actor, object_type="programme", object_id=programme.id,
           changed=changed, before={names[k]: old[k] for k in names if names[k] in changed},
           after={names[k]: new[k] for k in names if names[k] in changed})
    db.session.commit()
    if (before.max_rate, before.last_n, before.min_reads) != (
            settings.max_rate, settings.last_n, settings.min_reads):
        from app.qc.flags import evaluate

        evaluate()
