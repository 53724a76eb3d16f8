"""The certificate as an A4 PDF with a QR code of its public verification address, in its
holder's language with the English beside it (an officer in the receiving country reads
English), like the public verification page."""

from __future__ import annotations

import io
from datetime import datetime

import qrcode
from babel.dates import format_date
from flask_babel import force_locale, gettext
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

from app.certification.models import Certificate
from app.certification.services import EXPIRED, REVOKED, status
from app.i18n import DEFAULT_LANGUAGE, language_of

ENGLISH_GREY = 0.35  # the English beside a translated line: smaller and grey, still legible


def _day(moment: datetime, language: str) -> str:
    """A date as the language writes it; English keeps the certificate's day-month-year
    ("04 March 2027"), read alike on both sides of the Atlantic."""
    if language == DEFAULT_LANGUAGE:
        return format_date(moment.date(), "dd MMMM y", locale="en")
    return format_date(moment.date(), "long", locale=language)


def status_stamp(certificate: Certificate, language: str = DEFAULT_LANGUAGE) -> str | None:
    """"REVOKED on …" or "EXPIRED on …" (in ``language``) for a certificate that is no
    longer valid, else None: printed across the page and in its text, so a print-out cannot
    pass as valid."""
    state = status(certificate)
    with force_locale(language):
        if state == REVOKED and certificate.revoked_at is not None:
            return gettext("REVOKED on %(date)s", date=_day(certificate.revoked_at, language))
        if state == EXPIRED:
            return gettext("EXPIRED on %(date)s", date=_day(certificate.expires_at, language))
    return None


def _lines(certificate: Certificate, verify_url: str, language: str) -> dict[str, str]:
    """The certificate's words in ``language`` (run once for the holder's, once for English)."""
    with force_locale(language):
        cme = (gettext("CME/CPD credits: %(hours)s hours", hours=f"{certificate.cme_hours:g}")
               if certificate.cme_hours else "")
        return {
            "title": gettext("Certificate of competence"),
            "met": gettext("has met the requirements of"),
            "dates": gettext("Issued %(issued)s · valid until %(expires)s",
                             issued=_day(certificate.issued_at, language),
                             expires=_day(certificate.expires_at, language)),
            "cme": cme,
            # Labels: the code and the address read alike in every language (one line).
            "code": gettext("Verification code"),
            "verify": gettext("Verify at"),
            "scan": gettext("Scan the code or open the address above to check that this "
                            "certificate is valid, expired or revoked."),
        }


def certificate_pdf(certificate: Certificate, verify_url: str) -> bytes:
    language = language_of(certificate.user)
    own = _lines(certificate, verify_url, language)
    english = own if language == DEFAULT_LANGUAGE else _lines(certificate, verify_url,
                                                               DEFAULT_LANGUAGE)
    buffer = io.BytesIO()
    # Uncompressed page streams: the text stays searchable by simple tools (and tests).
    pdf = canvas.Canvas(buffer, pagesize=A4, pageCompression=0)
    pdf.setTitle(f"CXR Academy certificate {certificate.code}")
    width, height = A4
    centre = width / 2

    def both(key: str, y: float, font: str, size: float, gap: float = 5 * mm) -> float:
        """The line in the holder's language at ``y``, the English just below it when it
        differs; returns where the next line goes."""
        pdf.setFont(font, size)
        pdf.drawCentredString(centre, y, own[key])
        if english[key] == own[key]:
            return y
        pdf.saveState()
        pdf.setFillGray(ENGLISH_GREY)
        pdf.setFont("Helvetica-Oblique", max(size - 3, 7))
        pdf.drawCentredString(centre, y - gap, english[key])
        pdf.restoreState()
        return y - gap

    pdf.setFont("Helvetica-Bold", 24)
    pdf.drawCentredString(centre, height - 45 * mm, "CXR Academy")
    both("title", height - 57 * mm, "Helvetica", 14)
    pdf.setFont("Helvetica-Bold", 20)
    pdf.drawCentredString(centre, height - 85 * mm, certificate.holder_name)
    both("met", height - 97 * mm, "Helvetica", 13)
    pdf.setFont("Helvetica-Bold", 15)
    pdf.drawCentredString(centre, height - 112 * mm, certificate.programme.title)
    y = height - 130 * mm
    for key in ("dates", "cme"):
        if own[key]:
            y = both(key, y, "Helvetica", 12) - 8 * mm
    for key, value in (("code", certificate.code), ("verify", verify_url)):
        label = english[key] if own[key] == english[key] else f"{own[key]} / {english[key]}"
        pdf.setFont("Helvetica", 12)
        pdf.drawCentredString(centre, y, f"{label}: {value}")
        y -= 8 * mm
    image = qrcode.make(verify_url, box_size=8, border=2)
    png = io.BytesIO()
    image.save(png)
    png.seek(0)
    size = 45 * mm
    pdf.drawImage(ImageReader(png), (width - size) / 2, y - size - 5 * mm, size, size)
    both("scan", 24 * mm, "Helvetica", 9, gap=4 * mm)
    stamp = status_stamp(certificate, language)
    if stamp:
        english_stamp = status_stamp(certificate) if language != DEFAULT_LANGUAGE else None
        _stamp(pdf, _banner(stamp, language), stamp,
               _banner(english_stamp, DEFAULT_LANGUAGE) if english_stamp else None,
               english_stamp)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _banner(stamp: str, language: str) -> str:
    with force_locale(language):
        return gettext("NOT VALID: %(stamp)s", stamp=stamp)


def _stamp(pdf: canvas.Canvas, banner: str, stamp: str, english_banner: str | None,
           english_stamp: str | None) -> None:
    width, height = A4
    pdf.saveState()
    pdf.setFillColorRGB(0.75, 0, 0)
    pdf.setFont("Helvetica-Bold", 14)
    pdf.drawCentredString(width / 2, height - 22 * mm, banner)
    if english_banner:
        pdf.setFont("Helvetica-Bold", 11)
        pdf.drawCentredString(width / 2, height - 28 * mm, english_banner)
    # Across the page, translucent enough to leave the certificate legible beneath.
    pdf.setFillAlpha(0.35)
    pdf.translate(width / 2, height / 2)
    pdf.rotate(45)
    pdf.setFont("Helvetica-Bold", 44 if english_stamp is None else 36)
    pdf.drawCentredString(0, 0, stamp)
    if english_stamp:
        pdf.drawCentredString(0, -42, english_stamp)
    pdf.restoreState()


