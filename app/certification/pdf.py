"""The certificate as an A4 PDF with a QR code of its public verification address."""

from __future__ import annotations

import io

import qrcode
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from app.certification.models import Certificate
from app.certification.services import EXPIRED, REVOKED, status


def status_stamp(certificate: Certificate) -> str | None:
    """"REVOKED on …" or "EXPIRED on …" for a certificate that is no longer valid, else None:
    printed across the page and in its text, so a print-out cannot pass as valid."""
    state = status(certificate)
    if state == REVOKED and certificate.revoked_at is not None:
        return f"REVOKED on {certificate.revoked_at:%d %B %Y}"
    if state == EXPIRED:
        return f"EXPIRED on {certificate.expires_at:%d %B %Y}"
    return None


def certificate_pdf(certificate: Certificate, verify_url: str) -> bytes:
    buffer = io.BytesIO()
    # Uncompressed page streams: the text stays searchable by simple tools (and tests).
    pdf = canvas.Canvas(buffer, pagesize=A4, pageCompression=0)
    pdf.setTitle(f"CXR Academy certificate {certificate.code}")
    width, height = A4
    pdf.setFont("Helvetica-Bold", 24)
    pdf.drawCentredString(width / 2, height - 45 * mm, "CXR Academy")
    pdf.setFont("Helvetica", 14)
    pdf.drawCentredString(width / 2, height - 57 * mm, "Certificate of competence")
    pdf.setFont("Helvetica-Bold", 20)
    pdf.drawCentredString(width / 2, height - 85 * mm, certificate.holder_name)
    pdf.setFont("Helvetica", 13)
    pdf.drawCentredString(width / 2, height - 97 * mm, "has met the requirements of")
    pdf.setFont("Helvetica-Bold", 15)
    pdf.drawCentredString(width / 2, height - 109 * mm, certificate.programme.title)
    pdf.setFont("Helvetica", 12)
    lines = [
        f"Issued {certificate.issued_at:%d %B %Y} · valid until {certificate.expires_at:%d %B %Y}",
        f"CME/CPD credits: {certificate.cme_hours:g} hours" if certificate.cme_hours else "",
        f"Verification code: {certificate.code}",
        f"Verify at: {verify_url}",
    ]
    y = height - 130 * mm
    for line in filter(None, lines):
        pdf.drawCentredString(width / 2, y, line)
        y -= 8 * mm
    image = qrcode.make(verify_url, box_size=8, border=2)
    png = io.BytesIO()
    image.save(png)
    png.seek(0)
    size = 45 * mm
    pdf.drawImage(ImageReader(png), (width - size) / 2, y - size - 5 * mm, size, size)
    pdf.setFont("Helvetica", 9)
    pdf.drawCentredString(
        width / 2,
        20 * mm,
        "Scan the code or open the address above to "
        "check that this certificate is valid, expired or revoked.",
    )
    stamp = status_stamp(certificate)
    if stamp:
        _stamp(pdf, stamp)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _stamp(pdf: canvas.Canvas, stamp: str) -> None:
    width, height = A4
    pdf.saveState()
    pdf.setFillColorRGB(0.75, 0, 0)
    pdf.setFont("Helvetica-Bold", 14)
    pdf.drawCentredString(width / 2, height - 25 * mm, f"NOT VALID: {stamp}")
    # Across the page, translucent enough to leave the certificate legible beneath.
    pdf.setFillAlpha(0.35)
    pdf.translate(width / 2, height / 2)
    pdf.rotate(45)
    pdf.setFont("Helvetica-Bold", 44)
    pdf.drawCentredString(0, 0, stamp)
    pdf.restoreState()
