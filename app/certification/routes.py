from __future__ import annotations

from datetime import timedelta

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from werkzeug.wrappers import Response as WerkzeugResponse

from app.audit import security_log
from app.auth.decorators import roles_required
from app.auth.lead_scope import countries_in_scope
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.auth.services import country_name
from app.cases.forms import ActionForm
from app.certification import bp
from app.certification.dashboard import (
    STATE_LABELS,
    STATUS_FILTERS,
    Filters,
    clinic_rows,
    country_rows,
    exam_scores_by_clinic,
    programmes,
    reader_page,
    reader_rows,
    readers_csv,
    readers_xlsx,
    rows_csv,
    rows_xlsx,
)
from app.certification.forms import ReviewDecisionForm
from app.certification.history import programme_steps, reader_history
from app.certification.listing import CertificateFilters, certificate_query
from app.certification.models import Certificate, CertificateReview, Programme
from app.certification.notices import notices_for
from app.certification.reminder_jobs import start_reminders
from app.certification.reviews import (
    KEPT,
    OPEN,
    REVOKED,
    WITHDRAWN,
    decide,
    reviews_query,
    shortfall_reason,
)
from app.certification.services import (
    VALID,
    CertificationError,
    reinstate,
    revoke,
    status,
)
from app.certification.wording import status_word
from app.db_types import utcnow
from app.extensions import db
from app.jobs.routes import start_from_page
from app.qc.concordance import summaries_of_readers
from app.qc.scope import target_rate
from app.quizzes.services import CRITERIA_METRICS, expire_overdue_attempts
from app.urls import external_url
from app.validation import bounded_int

DECIDED_SHOWN = 50  # decided reviews listed below the open ones, newest first


def lead_scope() -> list[str] | None:
    return countries_in_scope(current_user)


def _programme_or_404(programme_id: int) -> Programme:
    programme = db.session.get(Programme, programme_id)
    if programme is None:
        abort(404, description=_("There is no such programme."))
    return programme


def _filters() -> Filters:
    try:
        return Filters.from_args(request.args)
    except CertificationError as exc:
        abort(exc.status, description=exc.sentence)


def _page_number() -> int:
    return bounded_int(request.args, "page", default=1) or 1


def spreadsheet_download(body: str | bytes, kind: str, name: str) -> Response:
    """A CSV or XLSX export as an attachment, written to the security log."""
    mimetype = ("text/csv" if kind == "csv" else
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
    security_log.emit("export", outcome="success", format=kind, export=name)
    return response


@bp.route("/programmes/<int:programme_id>")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def programme_dashboard(programme_id: int) -> Response | str:
    """Per clinic, filtered by country, clinic (the drill-down) and reader status; the
    readers behind the counts below, one page at a time."""
    programme = _programme_or_404(programme_id)
    filters = _filters()
    export = request.args.get("format")
    if export not in (None, "csv", "xlsx"):
        abort(400, description=_("The export format is csv or xlsx."))
    table = request.args.get("table", "clinics")
    if table not in ("clinics", "readers"):
        abort(400, description=_("The table to export is clinics or readers."))
    scope = lead_scope()
    if export and table == "readers":
        listed = reader_rows(programme, scope, filters)
        body = readers_csv(listed) if export == "csv" else readers_xlsx(listed, programme.title)
        return spreadsheet_download(body, export, f"programme-{programme.id}-readers")
    rows = clinic_rows(programme, scope, filters)
    if export:
        body = rows_csv(rows) if export == "csv" else rows_xlsx(rows, programme.title)
        return spreadsheet_download(body, export, f"programme-{programme.id}-clinics")
    readers = reader_page(programme, scope, filters, _page_number())
    qc = summaries_of_readers(scope, [r.user_id for r in readers.rows])
    clinic_query = select(Clinic).order_by(Clinic.country_code, Clinic.name)
    if scope is not None:
        clinic_query = clinic_query.where(Clinic.country_code.in_(scope))
    clinics = db.session.scalars(clinic_query).all()
    return render_template(
        "certification/programme.html", programme=programme, rows=rows, readers=readers,
        countries_summary=country_rows(rows),
        filters=filters, clinics=clinics, countries=sorted({c.country_code for c in clinics}),
        programmes=programmes(), country_name=country_name, state_labels=STATE_LABELS,
        status_filters=STATUS_FILTERS, qc=qc,
    )


@bp.route("/programmes/<int:programme_id>/scores.png")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def scores_png(programme_id: int) -> Response:
    """Readers' latest exam sensitivity and specificity per clinic, with the page's filters."""
    programme = _programme_or_404(programme_id)
    filters = _filters()
    clinics = exam_scores_by_clinic(programme, lead_scope(), filters)
    # Imported here: matplotlib costs every process start a third of a second otherwise.
    from app.certification.figures import clinic_distribution_figure

    png = clinic_distribution_figure(
        [(f"{c.country_code} · {c.name}", sens, spec) for c, sens, spec in clinics],
        programme.title,
    )
    response = Response(png, mimetype="image/png")
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.route("/readers/<int:user_id>")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def reader(user_id: int) -> str:
    """One reader's history: certificates, progress per programme, every attempt."""
    user = db.session.get(User, user_id)
    if user is None or not _scope_allows_user(user):
        abort(404, description=_("There is no such reader in your countries."))
    expire_overdue_attempts(user=user)  # an exam past its time shows with its result
    history = reader_history(user, page=_page_number())
    qc = summaries_of_readers(lead_scope(), [user.id]).get(user.id)
    return render_template("certification/reader.html", reader=user, history=history,
                           status=status, country_name=country_name, now=utcnow(), qc=qc,
                           qc_target=target_rate)


@bp.route("/")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def index() -> str:
    """Programme-lead dashboard: the clinics in the lead's countries."""
    query = (
        select(Clinic, func.count(User.id))
        .outerjoin(User, (User.clinic_id == Clinic.id) & User.active)
        .group_by(Clinic.id)
        .order_by(Clinic.country_code, Clinic.name)
    )
    all_countries = current_user.lead_all_countries or current_user.has_role(Role.ADMIN)
    if not all_countries:
        query = query.where(Clinic.country_code.in_(current_user.lead_countries))
    rows = db.session.execute(query).all()
    to_review = db.session.scalar(
        select(func.count()).select_from(reviews_query(lead_scope(), [OPEN]).subquery()))
    from app.qc.flags import open_count

    return render_template(
        "certification/index.html",
        rows=rows,
        to_review=to_review,
        qc_flags=open_count(lead_scope()),
        all_countries=all_countries,
        countries=[(c, country_name(c)) for c in current_user.lead_countries],
        country_name=country_name,
        programmes=programmes(),
    )


def _certificate_or_404(certificate_id: int) -> Certificate:
    certificate = db.session.get(Certificate, certificate_id)
    if certificate is None:
        abort(404, description=_("There is no such certificate."))
    return certificate


def _scope_allows_user(user: User) -> bool:
    scope = lead_scope()
    if scope is None:
        return True
    return user.clinic is not None and user.clinic.country_code in scope


def _lead_scope_allows(certificate: Certificate) -> bool:
    return _scope_allows_user(certificate.user)


@bp.route("/mine")
@login_required
def mine() -> str:
    """A trainee's programmes, progress towards each requirement, and certificates."""
    # An exam past its time limit counts (and may certify) the moment the trainee looks.
    expire_overdue_attempts(user=current_user)
    certificates = db.session.scalars(
        select(Certificate)
        .where(Certificate.user_id == current_user.id)
        .options(joinedload(Certificate.programme))
        .order_by(Certificate.issued_at.desc())
    ).all()
    current: dict[int, Certificate] = {}  # per programme, as services.current_certificate
    for c in certificates:
        best = current.get(c.programme_id)
        if c.revoked_at is None and (best is None or c.expires_at > best.expires_at):
            current[c.programme_id] = c
    rows = []
    for p, steps in programme_steps(current_user):
        held = current.get(p.id)
        valid = held is not None and status(held) == VALID
        # Renewal counts only in the window before expiry (services.issue_if_met).
        renewal_from = (held.expires_at - timedelta(days=p.renewal_window_days)
                        if held is not None and valid else None)
        rows.append((p, steps, held, renewal_from))
    under_review = set(db.session.scalars(
        select(CertificateReview.certificate_id).join(CertificateReview.certificate).where(
            Certificate.user_id == current_user.id, CertificateReview.state == OPEN)))
    # The reader's own QC concordance, every country: their live reads as the QC centre
    # re-read them, beside their test-set progress.
    qc = summaries_of_readers(None, [current_user.id]).get(current_user.id)
    return render_template("certification/mine.html", rows=rows, certificates=certificates,
                           status=status, now=utcnow(), notices=notices_for(current_user),
                           under_review=under_review, qc=qc)


@bp.route("/certificates")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def certificates() -> str:
    """Certificates in the lead's countries, filtered and one page at a time."""
    try:
        listing = CertificateFilters.from_args(request.args)
    except CertificationError as exc:
        abort(exc.status, description=exc.sentence)
    page = db.paginate(certificate_query(listing, lead_scope()), page=_page_number(),
                       per_page=int(current_app.config["CERTIFICATES_PAGE_SIZE"]),
                       error_out=False)
    clinic_query = select(Clinic).order_by(Clinic.country_code, Clinic.name)
    if (scope := lead_scope()) is not None:
        clinic_query = clinic_query.where(Clinic.country_code.in_(scope))
    return render_template("certification/certificates.html", page=page, listing=listing,
                           programmes=programmes(), clinics=db.session.scalars(clinic_query).all(),
                           status=status, action_form=ActionForm())


@bp.route("/certificates/<int:certificate_id>/<action>", methods=["POST"])
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def change(certificate_id: int, action: str) -> WerkzeugResponse:
    certificate = _certificate_or_404(certificate_id)
    if not _lead_scope_allows(certificate):
        abort(404, description=_("There is no such certificate."))
    reason = request.form.get("reason", "")
    try:
        if action == "revoke":
            revoke(certificate, reason=reason, actor=current_user)
        elif action == "reinstate":
            reinstate(certificate, reason=reason, actor=current_user)
        else:
            abort(404, description=_("Unknown action."))
    except CertificationError as exc:
        abort(exc.status, description=exc.sentence)
    flash(_("Certificate %(code)s: %(status)s.", code=certificate.code,
            status=status_word(status(certificate))), "success")
    # Back to the list page and filters the lead came from; only ever to that list.
    back = request.form.get("next", "")
    listing = url_for("certification.certificates")
    if not (back == listing or back.startswith(listing + "?")):
        back = listing
    return redirect(back)


@bp.route("/certificates/<int:certificate_id>.pdf")
@login_required
def pdf(certificate_id: int) -> Response:
    certificate = _certificate_or_404(certificate_id)
    own = certificate.user_id == current_user.id
    lead = current_user.has_role(Role.PROGRAMME_LEAD, Role.ADMIN) and _lead_scope_allows(
        certificate
    )
    if not own and not lead:
        abort(404, description=_("There is no such certificate."))
    url = external_url("verify.show", code=certificate.code)
    # reportlab is loaded by this page only, not with the application.
    from app.certification.pdf import certificate_pdf

    response = Response(certificate_pdf(certificate, url), mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'inline; filename="certificate-{certificate.code}.pdf"'
    )
    security_log.emit("export", outcome="success", format="pdf", export="certificate",
                      object_type="certificate", object_id=str(certificate.id))
    return response


def _render_reviews(form: ReviewDecisionForm, failed: int | None = None) -> str:
    scope = lead_scope()
    return render_template(
        "certification/reviews.html", form=form, failed=failed,
        open_reviews=db.session.scalars(reviews_query(scope, [OPEN])).all(),
        decided=db.session.scalars(
            reviews_query(scope, [REVOKED, KEPT, WITHDRAWN]).limit(DECIDED_SHOWN)).all(),
        status=status, labels=CRITERIA_METRICS, country_name=country_name,
        shortfall_reason=shortfall_reason,
    )


@bp.route("/reviews")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def reviews() -> str:
    """Certificates in the lead's countries whose evidence no longer meets the rule after
    re-scoring, with the figures before and after; revoke or keep each, with a reason."""
    return _render_reviews(ReviewDecisionForm(formdata=None))


@bp.route("/reviews/<int:review_id>", methods=["POST"])
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def decide_review(review_id: int) -> WerkzeugResponse | tuple[str, int]:
    review = db.session.get(CertificateReview, review_id)
    if review is None or not _lead_scope_allows(review.certificate):
        abort(404, description=_("There is no such review in your countries."))
    form = ReviewDecisionForm()
    if not form.validate_on_submit():
        return _render_reviews(form, failed=review_id), 400
    try:
        decided = decide(review, revoke=bool(form.revoke.data), reason=form.reason.data or "",
                         actor=current_user)
    except CertificationError as exc:
        abort(exc.status, description=exc.sentence)
    certificate = decided.certificate
    message = (_("Certificate %(code)s of %(holder)s: revoked; the holder is told.",
                 code=certificate.code, holder=certificate.holder_name)
               if decided.state == REVOKED else
               _("Certificate %(code)s of %(holder)s: kept; the holder is told.",
                 code=certificate.code, holder=certificate.holder_name))
    flash(message, "success")
    return redirect(url_for("certification.reviews"))


@bp.route("/reminders/send", methods=["POST"])
@roles_required(Role.ADMIN)
def send_reminders_now() -> WerkzeugResponse:
    """The jobs page's "Send reminders now": the day's reminders as a job, at once."""
    return start_from_page(lambda: start_reminders(actor=current_user))
