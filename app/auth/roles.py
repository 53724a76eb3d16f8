"""The portal's roles. A user may hold several."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l


class Role(StrEnum):
    TRAINEE_RADIOLOGIST = "trainee_radiologist"
    TRAINEE_RADIOGRAPHER = "trainee_radiographer"
    TRAINER = "trainer"
    PROGRAMME_LEAD = "programme_lead"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        """The role's name in the reader's language (English outside a request)."""
        return str(ROLE_LABELS[self])

    @classmethod
    def parse(cls, value: str) -> Role:
        """Accept ``trainer``, ``Programme lead``, ``programme-lead``; reject anything else."""
        key = value.strip().lower().replace("-", "_").replace(" ", "_")
        try:
            return cls(key)
        except ValueError:
            known = ", ".join(r.value for r in cls)
            raise ValueError(gettext("unknown role %(role)s; choose from: %(known)s",
                                     role=repr(value), known=known)) from None


ROLE_LABELS: dict[Role, Any] = {  # lazy: translated where shown
    Role.TRAINEE_RADIOLOGIST: _l("Trainee radiologist"),
    Role.TRAINEE_RADIOGRAPHER: _l("Trainee radiographer"),
    Role.TRAINER: _l("Trainer"),
    Role.PROGRAMME_LEAD: _l("Programme lead"),
    Role.ADMIN: _l("Administrator"),
}

TRAINEE_ROLES = frozenset({Role.TRAINEE_RADIOLOGIST, Role.TRAINEE_RADIOGRAPHER})
