"""A security key in software: real WebAuthn registration ("none" attestation) and assertion
responses, signed with an EC P-256 key (cryptography), as a browser would post them.

It answers the options JSON the portal hands the browser, so the tests exercise the whole
of py_webauthn's checking (client data, RP id hash, flags, COSE key, ECDSA signature), not a
stand-in for it. Knobs let a test make the answers a faulty or hostile client would send.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_USER_PRESENT = 0x01
FLAG_USER_VERIFIED = 0x04
FLAG_ATTESTED_DATA = 0x40


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftKey:
    """One credential on one authenticator; ``counter`` is its signature counter (a key that
    keeps none stays at 0 with ``counting=False``)."""

    counting: bool = True
    counter: int = 0
    transports: tuple[str, ...] = ("usb",)
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps({
            1: 2,  # kty: EC2
            3: -7,  # alg: ES256
            -1: 1,  # crv: P-256
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        })

    def _next_counter(self) -> int:
        if self.counting:
            self.counter += 1
        return self.counter

    def register(self, options: dict[str, Any], origin: str, *, rp_id: str | None = None,
                 challenge: bytes | None = None, kind: str = "webauthn.create",
                 flags: int = FLAG_USER_PRESENT) -> str:
        """The JSON a browser posts after navigator.credentials.create(options)."""
        rp = rp_id or options["rp"]["id"]
        client_data = json.dumps({
            "type": kind,
            "challenge": b64url(challenge) if challenge else options["challenge"],
            "origin": origin,
            "crossOrigin": False,
        }).encode()
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([flags | FLAG_ATTESTED_DATA])
            + struct.pack(">I", self._next_counter())
            + bytes(16)  # AAGUID: none given
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self.cose_public_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps({
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": list(self.transports),
            },
            "clientExtensionResults": {},
        })

    def sign(self, options: dict[str, Any], origin: str, *, rp_id: str | None = None,
             challenge: bytes | None = None, counter: int | None = None,
             flags: int = FLAG_USER_PRESENT, signer: SoftKey | None = None) -> str:
        """The JSON a browser posts after navigator.credentials.get(options); ``signer``
        signs with another key's private key (a forged answer)."""
        rp = rp_id or options["rpId"]
        client_data = json.dumps({
            "type": "webauthn.get",
            "challenge": b64url(challenge) if challenge else options["challenge"],
            "origin": origin,
            "crossOrigin": False,
        }).encode()
        count = self._next_counter() if counter is None else counter
        auth_data = (
            hashlib.sha256(rp.encode()).digest() + bytes([flags]) + struct.pack(">I", count)
        )
        signature = (signer or self).private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return json.dumps({
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": None,
            },
            "clientExtensionResults": {},
        })
