"""The portal's roles. A user may hold several."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    TRAINEE_RADIOLOGIST = "trainee_radiologist"
    TRAINEE_RADIOGRAPHER = "trainee_radiographer"
    TRAINER = "trainer"
    PROGRAMME_LEAD = "programme_lead"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]

    @classmethod
    def parse(cls, value: str) -> Role:
        """Accept ``trainer``, ``Programme lead``, ``programme-lead``; reject anything else."""
        key = value.strip().lower().replace("-", "_").replace(" ", "_")
        try:
            return cls(key)
        except ValueError:
            known = ", ".join(r.value for r in cls)
            raise ValueError(f"unknown role {value!r}; choose from: {known}") from None


ROLE_LABELS: dict[Role, str] = {
    Role.TRAINEE_RADIOLOGIST: "Trainee radiologist",
    Role.TRAINEE_RADIOGRAPHER: "Trainee radiographer",
    Role.TRAINER: "Trainer",
    Role.PROGRAMME_LEAD: "Programme lead",
    Role.ADMIN: "Administrator",
}

TRAINEE_ROLES = frozenset({Role.TRAINEE_RADIOLOGIST, Role.TRAINEE_RADIOGRAPHER})
