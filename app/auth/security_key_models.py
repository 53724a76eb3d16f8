"""Security keys (WebAuthn credentials) as a second factor, and the one-time challenges of
their ceremonies."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db_types import UTCDateTime, utcnow
from app.extensions import db

# WebAuthn allows credential ids of up to 1023 bytes: 1364 characters in base64url.
CREDENTIAL_ID_MAX = 1364
KEY_NAME_MAX = 60


class SecurityKey(db.Model):  # type: ignore[name-defined]
    """A public-key credential a user registered from their security key (or a platform
    authenticator); only its public key is kept."""

    __tablename__ = "user_security_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    # base64url, as the browser names the credential; unique across accounts, so one key's
    # credential can never answer for two users.
    credential_id: Mapped[str] = mapped_column(String(CREDENTIAL_ID_MAX), unique=True)
    # COSE_Key bytes as the authenticator gave them at registration.
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # The authenticator's signature counter (unsigned 32 bits, so wider than Integer): a
    # counter that goes back means a cloned key (WebAuthn section 6.1.1).
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    # Comma-separated AuthenticatorTransport values ("usb,nfc"), handed back to the browser
    # so it can offer the right way to reach the key.
    transports: Mapped[str] = mapped_column(String(200), default="")
    name: Mapped[str] = mapped_column(String(KEY_NAME_MAX))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SecurityKeyChallenge(db.Model):  # type: ignore[name-defined]
    """The random challenge of one registration or sign-in ceremony. Kept here rather than
    in the signed session cookie, which a client could send again after the challenge was
    answered: deleting the row is what makes a challenge single use."""

    __tablename__ = "security_key_challenge"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(16))  # "register" or "sign_in"
    challenge: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
