from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext, ngettext
from flask_login import current_user
from sqlalchemy.orm import joinedload
from werkzeug.wrappers import Response

from app.auth.decorators import roles_required
from app.cases import image_grants
from app.cases.access import can_view_case
from app.cases.candidates import candidate_reads
from app.cases.forms import (
    NOTE_FIELDS,
    ActionForm,
    CaseDetailsForm,
    RedactionForm,
    ReferenceReadForm,
    SchemeForm,
    StatusForm,
    UploadForm,
)
from app.cases.ingest import ImportOptions
from app.cases.models import Case, CaseImage, CaseStatus, ReadKind, ReferenceRead
from app.cases.reads import (
    marks_to_redisplay,
    my_read,
    read_scheme,
    reference_for,
    save_read,
    save_reference_read,
)
from app.cases.services import (
    LIBRARY_ROLES,
    TRANSITIONS,
    CaseError,
    LibraryFilter,
    change_status,
    complete_pixel_review,
    library_query,
    parse_status,
    parse_tags,
    redact_image,
    update_details,
)
from app.cases.storage import (
    APPROX_FILE,
    DISPLAY_FILE,
    EXACT_FILE,
    LEGACY_EXACT_FILE,
    LEGACY_FULL_FILE,
    PREVIEW_FILE,
    THUMBNAIL_FILE,
    image_store,
)
from app.extensions import db
from app.i18n import current_language
from app.jobs.case_import import start_upload_import
from app.jobs.lifecycle import JobError
from app.schemes.errors import SchemeError
from app.schemes.readform import answers_from_form
from app.schemes.registry import IMAGE_QUALITY, add_scheme, all_schemes
from app.uploads import large_upload
from app.viewer.services import read_payload

# Per kind, the files that may hold it, the first present served.
IMAGE_FILES: dict[str, tuple[tuple[str, str], ...]] = {
    "thumbnail": ((THUMBNAIL_FILE, "image/jpeg"),),
    "preview": ((PREVIEW_FILE, "image/jpeg"),),
    "display": ((DISPLAY_FILE, "image/jpeg"),),
    # HTJ2K codestreams: the media type registered for them (RFC 9828).
    "approx": ((APPROX_FILE, "image/jphc"),),
    # JPEG-LS: DICOMweb's media type for it (PS3.18); images stored before JPEG-LS have a
    # lossless HTJ2K stream until rebuilt. The viewer tells them apart by their first bytes.
    "exact": ((EXACT_FILE, "image/jls"), (LEGACY_EXACT_FILE, "image/jphc")),
    "full": ((LEGACY_FULL_FILE, "image/png"),),  # images stored before HTJ2K, until rebuilt
}

bp = Blueprint("cases", __name__, url_prefix="/cases")


def _case_or_404(case_id: int) -> Case:
    case = db.session.get(Case, case_id)
    if case is None:
        abort(404, description=gettext("There is no case %(number)s.", number=case_id))
    return case


@bp.route("/")
@roles_required(*LIBRARY_ROLES)
def index() -> str:
    tb = request.args.get("tb")
    flt = LibraryFilter(
        status=request.args.get("status") or None,
        finding=request.args.get("finding") or None,
        classification=request.args.get("classification") or None,
        tb={"yes": True, "no": False}.get(tb or ""),
        difficulty=request.args.get("difficulty") or None,
        tag=request.args.get("tag") or None,
        source=request.args.get("source") or None,
        review_needed=request.args.get("review") == "1",
    )
    page = db.paginate(library_query(flt), per_page=current_app.config["CASES_PAGE_SIZE"],
                       error_out=False)
    query_args = {k: v for k, v in request.args.items() if k != "page"}
    schemes = all_schemes()
    language = current_language()
    findings = sorted({(o.value, o.label_in(language))
                       for s in schemes.values() for o in s.mark_labels or ()})
    return render_template("cases/index.html", page=page, flt=flt, statuses=list(CaseStatus),
                           query_args=query_args, findings=findings)


@bp.route("/upload", methods=["GET", "POST"])
@large_upload("CASE_UPLOAD_MAX_BYTES", *LIBRARY_ROLES)
@roles_required(*LIBRARY_ROLES)
def upload() -> Response | str | tuple[str, int]:
    form = UploadForm()
    if request.method == "GET" and request.args.get("allow_no_meta") == "1":
        # The import report's "import again" link: the option the refused files need.
        form.allow_no_meta.data = True
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("cases/upload.html", form=form), status
    try:
        job = start_upload_import(
            request.files.getlist(form.files.name),
            actor=current_user,
            options=ImportOptions(source=form.source.data or "upload",
                                  licence=form.licence.data or "",
                                  exam_bank=bool(form.exam_bank.data),
                                  allow_no_meta=bool(form.allow_no_meta.data)),
        )
    except JobError as exc:
        form.files.errors = [*form.files.errors, str(exc)]
        return render_template("cases/upload.html", form=form), 400
    # The import runs on a worker; its page shows the files as they are done.
    return redirect(url_for("jobs.detail", job_id=job.id), 303)


@bp.route("/<int:case_id>", methods=["GET", "POST"])
@roles_required(*LIBRARY_ROLES)
def detail(case_id: int) -> Response | tuple[str, int]:
    case = _case_or_404(case_id)
    initial = {
        "difficulty": case.difficulty or "", "tags": ", ".join(case.tags),
        **{name: case.notes_by_language.get(language, "")
           for language, name in NOTE_FIELDS.items()},
        "source": case.source,
        "licence": case.licence, "exam_bank": case.exam_bank,
    }
    form = CaseDetailsForm(data=initial if request.method == "GET" else None)
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                update_details(
                    case,
                    difficulty=form.difficulty.data or None,
                    tags=parse_tags(form.tags.data or ""),
                    teaching_notes={language: form[name].data or ""
                                    for language, name in NOTE_FIELDS.items()},
                    source=form.source.data or "",
                    licence=form.licence.data or "",
                    exam_bank=bool(form.exam_bank.data),
                    actor=current_user,
                )
            except CaseError as exc:
                db.session.rollback()
                form.form_errors.append(exc.sentence)
                status = exc.status
            else:
                flash(gettext("Saved."), "success")
                return redirect(url_for("cases.detail", case_id=case.id))
        else:
            status = 400
    return render_template(
        "cases/detail.html", case=case, form=form, status_form=StatusForm(),
        action_form=ActionForm(), transitions=TRANSITIONS[case.status_enum],
        reference=reference_for(case), quality=reference_for(case, IMAGE_QUALITY),
        candidates=candidate_reads(case),
    ), status


@bp.route("/<int:case_id>/status", methods=["POST"])
@roles_required(*LIBRARY_ROLES)
def set_status(case_id: int) -> Response:
    case = _case_or_404(case_id)
    form = StatusForm()
    try:
        target = parse_status(form.status.data or "")
    except CaseError as exc:
        abort(400, description=exc.sentence)
    try:
        change_status(case, target, actor=current_user)
    except CaseError as exc:
        abort(409, description=exc.sentence)
    flash(gettext("%(title)s is now %(status)s.", title=case.title, status=target.label),
          "success")
    return redirect(url_for("cases.detail", case_id=case.id))


@bp.route("/<int:case_id>/review", methods=["GET"])
@roles_required(*LIBRARY_ROLES)
def pixel_review(case_id: int) -> str:
    case = _case_or_404(case_id)
    return render_template("cases/pixel_review.html", case=case, form=RedactionForm(),
                           action_form=ActionForm())


@bp.route("/images/<int:image_id>/redact", methods=["POST"])
@roles_required(*LIBRARY_ROLES)
def redact(image_id: int) -> Response:
    image = db.session.get(CaseImage, image_id)
    if image is None:
        abort(404, description=gettext("There is no image %(number)s.", number=image_id))
    form = RedactionForm()
    if not form.validate_on_submit():
        abort(400, description=gettext("Draw at least one rectangle to redact."))
    if form.confirm.data != "yes":
        abort(400, description=gettext(
            "Burning in cannot be undone: confirm it in the dialog first."))
    try:
        rects = _parse_rectangles(form.rectangles.data or "")
        redact_image(image, rects, actor=current_user)
    except CaseError as exc:
        abort(400, description=exc.sentence)
    flash(ngettext("%(num)s area redacted in the stored image.",
                   "%(num)s areas redacted in the stored image.", len(rects)), "success")
    return redirect(url_for("cases.pixel_review", case_id=image.case_id))


def _parse_rectangles(text: str) -> list[tuple[int, int, int, int]]:
    rects = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        numbers = part.split(",")
        if len(numbers) != 4 or not all(n.strip().lstrip("-").isdigit() for n in numbers):
            raise CaseError(gettext(
                "each rectangle needs four whole numbers: x, y, width, height"))
        x, y, w, h = (int(n) for n in numbers)
        rects.append((x, y, w, h))
    if not rects or len(rects) > 100:
        raise CaseError(gettext("draw between 1 and 100 rectangles"))
    return rects


@bp.route("/<int:case_id>/review/complete", methods=["POST"])
@roles_required(*LIBRARY_ROLES)
def pixel_review_done(case_id: int) -> Response:
    case = _case_or_404(case_id)
    complete_pixel_review(case, actor=current_user)
    flash(gettext("Pixel review recorded."), "success")
    return redirect(url_for("cases.detail", case_id=case.id))


@bp.route("/images/<int:image_id>/<kind>")
def image_file(image_id: int, kind: str) -> Response:
    """Image derivatives: cached for a year per version (the URL carries it), private to
    users allowed to see the case."""
    if kind not in IMAGE_FILES:
        abort(404, description=gettext("Unknown image representation."))
    if not current_user.is_authenticated:  # the user loader has checked the session
        abort(401, description=gettext("Sign in first."))
    grant = image_grants.remembered(current_user.id, image_id)
    if grant is None:
        # The image with its case in one statement (the access check reads the case; its
        # tags are loaded only if asked for): an exam page's browser asks for several
        # images per case, and the next few seconds' requests come from image_grants.
        image = db.session.get(CaseImage, image_id, options=[
            joinedload(CaseImage.case).lazyload(Case.tag_links)])
        if image is None or not can_view_case(current_user, image.case):
            # One answer for "missing" and "not yours": ids reveal nothing.
            abort(404, description=gettext("There is no such image."))
        grant = image_grants.remember(current_user.id, image_id, image.storage_key,
                                      image.etag, image.version,
                                      current_app.config["IMAGE_GRANT_SECONDS"])
    store = image_store()
    found = [(store.path(grant.storage_key, name), mimetype)
             for name, mimetype in IMAGE_FILES[kind]]
    found = [(path, mimetype) for path, mimetype in found if path.is_file()]
    if not found:
        # An image stored before HTJ2K has no HTJ2K files until its derivatives are
        # rebuilt, and a rebuilt one no PNG: the viewer asks only for what `sizes` lists.
        abort(404, description=gettext("This image has no %(kind)s data.", kind=kind))
    path, mimetype = found[0]
    response = send_file(path, mimetype=mimetype,
                         etag=grant.etag, conditional=True, max_age=0)
    current = request.args.get("v") == str(grant.version)
    response.headers["Cache-Control"] = (
        "private, max-age=31536000, immutable" if current else "private, no-cache"
    )
    return response


@bp.route("/<int:case_id>/read", methods=["GET", "POST"])
@roles_required(*LIBRARY_ROLES)
def read(case_id: int) -> Response | tuple[str, int]:
    """The signed-in trainer's expert read of the case on one page: the image with its
    marking tools beside the scheme's form, saved together (a new version on every save)."""
    case = _case_or_404(case_id)
    try:
        scheme, fixed = read_scheme(case, request.values.get("scheme"))
    except SchemeError as exc:
        abort(400, description=exc.text())
    form = ReferenceReadForm()
    mine = my_read(case, current_user, scheme.key)
    answers = mine.answers if mine else {}
    accepting = _candidate(case, scheme.key, request.args.get("candidate"))
    if accepting is not None and request.method == "GET":
        # Accepting a candidate read: the trainer's read starts from its answers.
        answers = dict(accepting.answers)
    marks = list(mine.marks) if mine else []
    status = 200
    if request.method == "POST" and form.validate_on_submit():
        answers = answers_from_form(scheme, request.form)
        try:
            save_reference_read(case, author=current_user, scheme=scheme, answers=answers,
                                marks_field=form.marks.data)
        except SchemeError as exc:
            db.session.rollback()
            form.form_errors.append(exc.sentence)
            status = 400
            marks = marks_to_redisplay(case, scheme, form.marks.data, marks)
        else:
            flash(gettext("Your read and its marks are saved."), "success")
            return redirect(url_for("cases.detail", case_id=case.id))
    elif request.method == "POST":
        status = 400
    return render_template("cases/read.html", case=case, scheme=scheme, answers=answers,
                           form=form, schemes=all_schemes(), fixed=fixed, mine=mine,
                           accepting=accepting,
                           payload=read_payload(case, scheme, marks)), status


def _candidate(case: Case, scheme_key: str, requested: str | None) -> ReferenceRead | None:
    """The case's current candidate read ``requested`` (an id) in the scheme, if any."""
    if not requested or not requested.isdigit():
        return None
    return next((r for r in case.current_reads if r.id == int(requested)
                 and r.kind == ReadKind.CANDIDATE.value and r.scheme_key == scheme_key), None)


@bp.route("/<int:case_id>/adjudicate", methods=["POST"])
@roles_required(*LIBRARY_ROLES)
def adjudicate(case_id: int) -> Response:
    case = _case_or_404(case_id)
    # The diagnostic reference, or (scheme=image_quality) the image-quality one.
    scheme_key = request.form.get("scheme") or None
    reference = reference_for(case, scheme_key)
    if reference.scheme is None or not reference.open_ties:
        abort(409, description=gettext("There is nothing to adjudicate on this case."))
    tied_items = {t.partition(":")[0] for t in reference.open_ties}
    answers = answers_from_form(reference.scheme, request.form, only=tied_items)
    missing = tied_items - set(answers) - {
        i.key for i in reference.scheme.items if i.type == "multi"
    }
    if missing:
        abort(400, description=gettext("Decide every tied item: %(items)s.",
                                       items=", ".join(sorted(missing))))
    for item in tied_items:
        answers.setdefault(item, [])  # a multi item with nothing ticked: the options are absent
    previous = next((r for r in case.current_reads if r.kind == ReadKind.ADJUDICATION.value
                     and r.scheme_key == reference.scheme.key), None)
    merged = {**(previous.answers if previous else {}), **answers}
    try:
        save_read(case, author=current_user, scheme=reference.scheme,
                  answers={k: v for k, v in merged.items() if v not in ([], None, "")},
                  kind=ReadKind.ADJUDICATION)
    except SchemeError as exc:
        db.session.rollback()
        abort(400, description=exc.text())
    flash(gettext("Adjudication saved."), "success")
    return redirect(url_for("cases.detail", case_id=case.id))


@bp.route("/schemes", methods=["GET", "POST"])
@roles_required(*LIBRARY_ROLES)
def schemes() -> tuple[str, int]:
    """Reporting schemes: the built-in ones and trainer-made ones added as JSON."""
    form = SchemeForm()
    status = 200
    if form.validate_on_submit():
        try:
            scheme = add_scheme(form.definition.data or "", actor=current_user)
        except SchemeError as exc:
            db.session.rollback()
            form.definition.errors = [exc.sentence]
            status = 400
        else:
            flash(gettext("Scheme %(name)s (%(ref)s) added.", name=scheme.name, ref=scheme.ref),
                  "success")
            form = SchemeForm(formdata=None)
    elif request.method == "POST":
        status = 400
    return render_template("cases/schemes.html", schemes=all_schemes(), form=form), status
