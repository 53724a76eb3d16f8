"""PACS endpoints an administrator configures. Credentials are stored encrypted under
FIELD_ENCRYPTION_KEYS (kept outside the database), so a database copy, backup or export does
not reveal them, and they are never shown back."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db_types import UTCDateTime, utcnow
from app.extensions import db


class PacsKind(StrEnum):
    DICOMWEB = "dicomweb"
    DIMSE = "dimse"

    @property
    def label(self) -> str:
        return {"dicomweb": "DICOMweb (QIDO-RS / WADO-RS)",
                "dimse": "DIMSE (C-ECHO / C-FIND / C-GET)"}[self.value]


class PacsEndpoint(db.Model):  # type: ignore[name-defined]
    __tablename__ = "pacs_endpoint"
    __table_args__ = (
        CheckConstraint("kind IN ('dicomweb', 'dimse')", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    # DICOMweb: the service's base URL (e.g. https://pacs.example.org/dicom-web).
    url: Mapped[str] = mapped_column(String(500), default="")
    # DIMSE: the PACS's address and AE title, and the AE title the portal calls from.
    host: Mapped[str] = mapped_column(String(255), default="")
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    called_ae: Mapped[str] = mapped_column(String(16), default="")
    calling_ae: Mapped[str] = mapped_column(String(16), default="")
    # {"username": ..., "password": ...} as JSON, encrypted (app.field_encryption).
    credentials_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(timezone=True), default=utcnow)

    @property
    def pacs_kind(self) -> PacsKind:
        return PacsKind(self.kind)

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)

    @property
    def where(self) -> str:
        """The address shown in lists (no credentials: they are never part of it)."""
        if self.kind == PacsKind.DICOMWEB:
            return self.url
        return f"{self.called_ae}@{self.host}:{self.port}"
