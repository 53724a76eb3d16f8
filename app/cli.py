"""Command line: ``flask --app app <group> <command>`` and the ``cxr-academy`` script."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from flask_babel import gettext
from sqlalchemy import func, select
from werkzeug.serving import run_simple

from app.auth.invitations import Invitation, issue_invitation
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.auth.second_factor import encrypt_all_secrets, reset_second_factor
from app.auth.services import (
    AccountError,
    create_clinic,
    create_user,
    find_clinic,
    find_user,
    set_active,
    set_password,
    update_user,
)
from app.cases.reasons import translate_reason
from app.cli_language import localise_commands
from app.extensions import db
from app.jobs.models import Job

ROLE_HELP = "one of: " + ", ".join(r.value for r in Role) + " (repeat for several)"


def _job_failure(job: Job) -> str:
    """Why a job the command waited for did not end well, in the environment's language."""
    return translate_reason(job.error) or gettext("job %(number)s ended %(status)s",
                                                  number=job.id, status=job.status)


def _fail(exc: AccountError) -> click.ClickException:
    db.session.rollback()
    return click.ClickException(str(exc))


users = click.Group("users", help="Manage user accounts.")
clinics = click.Group("clinics", help="Manage clinics (panel sites).")


@users.command("create")
@click.option("--email", required=True)
@click.option("--name", "full_name", required=True, help="Full name as shown on certificates.")
@click.option("--role", "roles", multiple=True, required=True, help=ROLE_HELP)
@click.option("--clinic", help="Clinic id or name.")
@click.option("--username", help="Defaults to the part of the e-mail before @.")
@click.option(
    "--country",
    "countries",
    multiple=True,
    help="Programme lead: a country in scope (ISO code, repeatable).",
)
@click.option("--all-countries", is_flag=True, help="Programme lead: every country.")
@click.option(
    "--password",
    "password_mode",
    type=click.Choice(["invite", "generate"]),
    default="invite",
    show_default=True,
    help="invite: print an invitation link; generate: print a random password.",
)
@with_appcontext
def users_create(
    email: str,
    full_name: str,
    roles: tuple[str, ...],
    clinic: str | None,
    username: str | None,
    countries: tuple[str, ...],
    all_countries: bool,
    password_mode: str,
) -> None:
    """Create a user account."""
    generate = password_mode == "generate"  # noqa: S105  (an option value)
    password = secrets.token_urlsafe(12) if generate else None
    try:
        clinic_row = find_clinic(clinic) if clinic else None
        user = create_user(
            email=email,
            full_name=full_name,
            roles=roles,
            clinic=clinic_row,
            username=username,
            password=password,
            lead_countries=countries,
            lead_all_countries=all_countries,
        )
    except AccountError as exc:
        raise _fail(exc) from None
    click.echo(gettext("created user %(name)s (id %(id)s)", name=user.username, id=user.id))
    if password:
        click.echo(gettext("password: %(password)s", password=password))
    else:
        _echo_invitation(issue_invitation(user), user)


def _echo_invitation(invitation: Invitation, user: User) -> None:
    click.echo(gettext("invitation link: %(link)s", link=invitation.link))
    if invitation.emailed:
        click.echo(gettext("sent by e-mail to %(email)s", email=user.email))
    elif invitation.mail_error:
        click.echo(gettext("the e-mail could not be sent (%(error)s); pass the link on",
                           error=invitation.mail_error),
                   err=True)


@users.command("list")
@with_appcontext
def users_list() -> None:
    """List user accounts."""
    for user in db.session.scalars(select(User).order_by(User.username)):
        roles = ",".join(sorted(r.value for r in user.roles))
        clinic = user.clinic.name if user.clinic else "-"
        state = "active" if user.active else "inactive"
        click.echo(f"{user.id}\t{user.username}\t{user.email}\t{roles}\t{clinic}\t{state}")


@users.command("set-roles")
@click.argument("user_ref")
@click.option("--role", "roles", multiple=True, required=True, help=ROLE_HELP)
@click.option("--country", "countries", multiple=True)
@click.option("--all-countries", is_flag=True)
@with_appcontext
def users_set_roles(
    user_ref: str, roles: tuple[str, ...], countries: tuple[str, ...], all_countries: bool
) -> None:
    """Replace a user's roles (and programme-lead scope)."""
    try:
        user = find_user(user_ref)
        update_user(
            user,
            roles=roles,
            clinic=user.clinic,
            lead_countries=countries or user.lead_countries,
            lead_all_countries=all_countries or user.lead_all_countries,
        )
    except AccountError as exc:
        raise _fail(exc) from None
    click.echo(f"{user.username}: {', '.join(sorted(r.value for r in user.roles))}")


@users.command("deactivate")
@click.argument("user_ref")
@with_appcontext
def users_deactivate(user_ref: str) -> None:
    """Deactivate an account and end its sessions."""
    try:
        user = set_active(find_user(user_ref), False)
    except AccountError as exc:
        raise _fail(exc) from None
    click.echo(gettext("%(name)s deactivated", name=user.username))


@users.command("activate")
@click.argument("user_ref")
@with_appcontext
def users_activate(user_ref: str) -> None:
    """Reactivate an account."""
    try:
        user = set_active(find_user(user_ref), True)
    except AccountError as exc:
        raise _fail(exc) from None
    click.echo(gettext("%(name)s active", name=user.username))


@users.command("invite")
@click.argument("user_ref")
@with_appcontext
def users_invite(user_ref: str) -> None:
    """Print a fresh invitation (password-setting) link."""
    try:
        user = find_user(user_ref)
    except AccountError as exc:
        raise _fail(exc) from None
    if not user.active:
        raise click.ClickException(gettext("%(name)s is deactivated; activate it first",
                                           name=user.username))
    _echo_invitation(issue_invitation(user), user)


@users.command("reset-2fa")
@click.argument("user_ref", metavar="USERNAME")
@with_appcontext
def users_reset_2fa(user_ref: str) -> None:
    """Remove a user's second factor (lost phone): they set it up again at next sign-in."""
    try:
        user = find_user(user_ref)
    except AccountError as exc:
        raise _fail(exc) from None
    if not reset_second_factor(user):
        raise click.ClickException(gettext("%(name)s has no second factor to reset.",
                                           name=user.username))
    click.echo(gettext("Reset the second factor of %(name)s and ended their sessions; they set "
                       "it up again at their next sign-in.", name=user.username))


@users.command("encrypt-2fa-keys")
@with_appcontext
def users_encrypt_2fa_keys() -> None:
    """Encrypt every stored authenticator key under the first FIELD_ENCRYPTION_KEYS key:
    after a migration run offline, and after putting a new key first (then the old one may
    be dropped from the list)."""
    result = encrypt_all_secrets()
    click.echo(gettext("Encrypted %(rewritten)s second factor(s) under the current key; "
                       "%(current)s already were.", rewritten=result.rewritten,
                       current=result.current))
    if result.unreadable:
        raise click.ClickException(gettext(
            "%(count)s second factor(s) open with none of the configured keys (%(names)s): put "
            "the old key back in FIELD_ENCRYPTION_KEYS, or reset them with 'cxr-academy users "
            "reset-2fa USERNAME'.", count=len(result.unreadable),
            names=", ".join(result.unreadable)))


@users.command("set-password")
@click.argument("user_ref")
@click.password_option()
@with_appcontext
def users_set_password(user_ref: str, password: str) -> None:
    """Set a user's password (prompted): at least 12 characters, not a common password,
    not built from the user's name, user name or e-mail address."""
    try:
        set_password(find_user(user_ref), password, via="cli")
    except AccountError as exc:
        raise _fail(exc) from None
    click.echo(gettext("password set"))


@clinics.command("create")
@click.option("--name", required=True)
@click.option("--city", required=True)
@click.option("--country", required=True, help="ISO 3166-1 alpha-2 code, e.g. KE.")
@with_appcontext
def clinics_create(name: str, city: str, country: str) -> None:
    """Add a clinic."""
    try:
        clinic = create_clinic(name, city, country)
    except AccountError as exc:
        raise _fail(exc) from None
    click.echo(gettext("created clinic %(name)s (id %(id)s)", name=clinic.name, id=clinic.id))


@clinics.command("list")
@with_appcontext
def clinics_list() -> None:
    """List clinics."""
    for clinic in db.session.scalars(select(Clinic).order_by(Clinic.country_code, Clinic.name)):
        click.echo(f"{clinic.id}\t{clinic.country_code}\t{clinic.city}\t{clinic.name}")


@click.command("demo")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-serve", is_flag=True, help="Prepare the database and demo data, then stop.")
@with_appcontext
def demo(port: int, no_serve: bool) -> None:
    """Create or upgrade the database, add demo data, serve on 127.0.0.1."""
    from flask_migrate import upgrade

    from app import MIGRATIONS_DIR
    from app.demo import seed_demo, seed_demo_library

    if not Path(MIGRATIONS_DIR, "env.py").exists():
        raise click.ClickException(
            f"migrations not found at {MIGRATIONS_DIR}; install with 'pip install -e .'"
        )
    upgrade(directory=str(MIGRATIONS_DIR))
    accounts = seed_demo()
    click.echo(gettext("Loading the demo case library..."))
    library = seed_demo_library()
    refused = [r for r in library if r.status == "refused"]
    for result in refused:
        click.echo("  " + gettext("demo case %(file)s not loaded: %(reason)s",
                                  file=result.case_file, reason=result.reason), err=True)
    from app.cases.models import Case, CaseStatus

    published = db.session.scalar(
        select(func.count(Case.id)).where(Case.status == CaseStatus.PUBLISHED.value)
    )
    click.echo(gettext("Case library: %(count)s published cases", count=published))
    from app.demo_peers import seed_demo_peers

    peers = seed_demo_peers()
    if peers:
        click.echo(gettext("Demo peers: %(count)s trainees at the demo clinics with ended "
                           "attempts", count=peers))
    from app.qc.demo_records import seed_demo_qc

    qc_records = seed_demo_qc()
    if qc_records:
        click.echo(gettext("Demo QC records: %(count)s live reads of the demo readers "
                           "re-read by the QC centre", count=qc_records))
    click.echo("\n" + gettext("Demo accounts (user name / password):"))
    for account in accounts:
        password = account.password or gettext("(set earlier; see the instance folder)")
        click.echo(f"  {account.role.label:<22} {account.username:<20} {password}")
        if account.totp_secret:
            click.echo(f"  {'':<22} " + gettext("authenticator key: %(key)s",
                                                  key=account.totp_secret))
    click.echo(gettext("Trainer, programme-lead and administrator accounts sign in with a "
                       "second factor: add the authenticator key to an authenticator app."))
    click.echo("\n" + gettext("Passwords are also in %(path)s",
                              path=Path(current_app.instance_path) / "demo-accounts.txt"))
    if no_serve:
        return
    click.echo("\n" + gettext("CXR Academy: %(url)s  (Ctrl+C stops)",
                              url=f"http://localhost:{port}/") + "\n")
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    from app.demo import demo_public_url

    app.config["PUBLIC_BASE_URL"] = demo_public_url(app.config["PUBLIC_BASE_URL"], port)
    from app.demo import ExpiryWorker

    # No cron in a demo: exams past their time limit are ended by the server itself.
    expiry = ExpiryWorker(app).start()
    from app.jobs.queue import BackgroundWorker

    # One command for the demo: its imports run on a queue consumer in this process.
    jobs = BackgroundWorker(app).start()
    try:
        # run_simple, not app.run: Flask ignores app.run() inside its own command line.
        run_simple("127.0.0.1", port, app, threaded=True)
    finally:
        jobs.stop()
        expiry.stop()


cases = click.Group("cases", help="Manage the case library.")


@cases.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--allow-no-meta", is_flag=True,
              help="Also accept DICOM files without preamble and file meta (not Part 10).")
@click.option("--source", default="import", show_default=True, help="Where the images come from.")
@click.option("--licence", default="", help="Licence or terms of use of the images.")
@click.option("--exam-bank", is_flag=True, help="Keep the new cases for exams only.")
@with_appcontext
def cases_import(paths: tuple[Path, ...], allow_no_meta: bool, source: str, licence: str,
                 exam_bank: bool) -> None:
    """Import DICOM files, folders (recursively) and .zip archives."""
    from app.cases.ingest import NOT_TRIED_REASON, ImportOptions
    from app.jobs.case_import import start_path_import
    from app.jobs.cli import job_items, wait_for_job

    # A job like an upload's: a worker (`cxr-academy worker`) imports, this command waits
    # with a progress bar; the job page and the administrators' job list show it too.
    job = start_path_import(
        list(paths), actor=None,
        options=ImportOptions(allow_no_meta=allow_no_meta, source=source, licence=licence,
                              exam_bank=exam_bank),
    )
    job = wait_for_job(job.id)
    items = job_items(job.id)
    for item, name in items:
        if item.status == "imported":
            note = " " + gettext("(pixel review needed)") if item.pixel_review_needed else ""
            click.echo(f"imported   {name} -> case {item.case_id}{note}")
        elif item.status == "duplicate":
            click.echo(f"duplicate  {name}: {translate_reason(item.reason)}")
        else:
            click.echo(f"refused    {name}: {translate_reason(item.reason)}", err=True)
    counts = {s: sum(1 for i, _ in items if i.status == s)
              for s in ("imported", "duplicate", "rejected")}
    click.echo(gettext("%(imported)s imported, %(duplicate)s duplicate, %(refused)s refused",
                       imported=counts["imported"], duplicate=counts["duplicate"],
                       refused=counts["rejected"]))
    if job.status != "done":
        click.echo(gettext("Job %(number)s %(status)s: %(error)s", number=job.id,
                           status=job.status, error=translate_reason(job.error)), err=True)
        raise SystemExit(1)
    stopped = any(i.reason == NOT_TRIED_REASON for i, _ in items)
    if stopped:
        click.echo(gettext("The import stopped: the image storage is full. The files imported "
                           "above are in the library; import the others again once there is "
                           "space."), err=True)
    if counts["rejected"] or not items:
        raise SystemExit(1)


def _set_case_status(case_ref: str, status: str, actor_ref: str | None) -> None:
    """The status buttons' service, from the command line: same rules, audited."""
    from app.cases.services import (
        LIBRARY_ROLES,
        CaseError,
        change_status,
        find_case,
        parse_status,
    )

    try:
        actor = find_user(actor_ref) if actor_ref else None
        if actor is not None and not actor.active:
            raise click.ClickException(gettext("%(name)s is deactivated", name=actor.username))
        if actor is not None and not actor.has_role(*LIBRARY_ROLES):
            raise click.ClickException(gettext(
                "%(name)s may not change case statuses (trainers and administrators only)",
                name=actor.username))
        case = find_case(case_ref)
        target = parse_status(status)
        before = case.status_enum
        change_status(case, target, actor=actor, via="command line")
    except (CaseError, AccountError) as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(f"case {case.id}: {before.label} -> {target.label}")


BY_HELP = ("User recorded as having made the change (a trainer or administrator); "
           "by default the audit log records the command line.")


@cases.command("set-status")
@click.argument("case_ref", metavar="CASE")
@click.argument("status", metavar="STATUS")
@click.option("--by", "actor_ref", metavar="USER", help=BY_HELP)
@with_appcontext
def cases_set_status(case_ref: str, status: str, actor_ref: str | None) -> None:
    """Move case CASE (its id) to STATUS: draft, in_review, published or retired.

    The rules of the case page's buttons apply: draft -> in_review -> published -> retired,
    back to draft from in_review or retired; publishing needs a reference read without open
    ties and, where burned-in text is possible, a completed pixel review."""
    _set_case_status(case_ref, status, actor_ref)


@cases.command("rebuild-derivatives")
@click.option("--all", "every", is_flag=True,
              help="Rebuild every image, not only those stored before the current derivatives.")
@click.option("--background", is_flag=True,
              help="Queue the rebuild as a job for a worker (`cxr-academy worker`) and return; "
                   "the jobs page shows its progress.")
@with_appcontext
def cases_rebuild_derivatives(every: bool, background: bool) -> None:
    """Re-make the display derivatives (JPEGs, 16-bit HTJ2K and JPEG-LS) from each stored DICOM.

    Images stored before the HTJ2K derivatives show their preview and then their 16-bit PNG
    until this has run; those stored before the JPEG-LS exact data keep a lossless HTJ2K one
    (more bytes). Each image is committed on its own: an interrupted run keeps what
    it did, and running again goes on with the rest."""
    from app.cases.models import CaseImage
    from app.cases.rebuild import rebuild_derivatives

    if background:
        from app.jobs.derivatives_rebuild import start_derivatives_rebuild

        job = start_derivatives_rebuild(every=every, actor=None)
        click.echo(gettext("Job %(number)s queued: a worker rebuilds the images; the jobs "
                           "page shows its progress.", number=job.id))
        return

    count = db.session.scalar(select(func.count(CaseImage.id))) or 0
    with click.progressbar(length=count, label=gettext("Images")) as bar:
        summary = rebuild_derivatives(every=every, on_image=lambda _image: bar.update(1))
    click.echo(gettext("%(rebuilt)s image(s) rebuilt, %(skipped)s already current, "
                       "%(failed)s failed.", rebuilt=summary.rebuilt, skipped=summary.skipped,
                       failed=len(summary.failed)))
    for image_id, reason in summary.failed:
        click.echo("  " + gettext("image %(number)s: %(reason)s", number=image_id,
                                  reason=translate_reason(reason)), err=True)
    if summary.failed:
        raise SystemExit(1)


@cases.command("publish")
@click.argument("case_ref", metavar="CASE")
@click.option("--by", "actor_ref", metavar="USER", help=BY_HELP)
@with_appcontext
def cases_publish(case_ref: str, actor_ref: str | None) -> None:
    """Publish case CASE (in review): the same as ``set-status CASE published``."""
    _set_case_status(case_ref, "published", actor_ref)


@cases.command("import-dataset")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["nlm", "tbx11k"]))
@click.argument("path", type=click.Path(path_type=Path, exists=True, file_okay=False))
@with_appcontext
def cases_import_dataset(fmt: str, path: Path) -> None:
    """Import a downloaded public collection (nlm: Shenzhen/Montgomery; tbx11k)."""
    from app.cases.dataset_import import import_dataset
    from app.cases.dataset_readers import DatasetError

    try:
        summary = import_dataset(fmt, path)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    for result in summary.results:
        if result.status == "rejected":
            click.echo(f"refused    {result.name}: {translate_reason(result.reason)}", err=True)
        else:
            click.echo(f"{result.status:<10} {result.name} -> case {result.case_id}")
    click.echo(gettext("%(imported)s imported, %(duplicate)s duplicate, %(refused)s refused",
                       imported=summary.count("imported"), duplicate=summary.count("duplicate"),
                       refused=summary.count("rejected")))
    if summary.count("rejected"):
        raise SystemExit(1)


@cases.command("import-library")
@click.argument("folder", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--draft", is_flag=True, help="Leave the cases as drafts instead of publishing.")
@with_appcontext
def cases_import_library(folder: Path, draft: bool) -> None:
    """Load case files (a curated library exported by another installation)."""
    from app.cases.library_files import LibraryError, load_library

    try:
        results = load_library(folder, publish=not draft)
    except LibraryError as exc:
        raise click.ClickException(str(exc)) from None
    for result in results:
        if result.status == "refused":
            click.echo(f"refused  {result.case_file}: {result.reason}", err=True)
        else:
            note = f" ({result.reason})" if result.reason else ""
            click.echo(f"{result.status:<8} {result.case_file} -> case {result.case_id}{note}")
    loaded = sum(r.status == "loaded" for r in results)
    present = sum(r.status == "present" for r in results)
    refused = sum(r.status == "refused" for r in results)
    click.echo(gettext("%(loaded)s loaded, %(present)s already present, %(refused)s refused",
                       loaded=loaded, present=present, refused=refused))
    if refused:
        raise SystemExit(1)


@cases.command("export-library")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option("--status", default="published", show_default=True,
              type=click.Choice(["draft", "in_review", "published", "retired", "all"]))
@with_appcontext
def cases_export_library(folder: Path, status: str) -> None:
    """Write case files and de-identified images for exchange with another installation."""
    import zipfile

    from app.jobs.cli import wait_for_job
    from app.jobs.library_export import export_file, start_library_export

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(gettext(
            "cannot write to %(folder)s: %(cause)s", folder=folder,
            cause=exc.strerror or type(exc).__name__)) from None
    # A job like the export page's: a worker writes the export as a zip, this command waits
    # with a progress bar and unpacks it here.
    job = wait_for_job(start_library_export(status, actor=None,
                                            destination=str(folder)).id, unit="case")
    zipped = export_file(job)
    if job.status != "done" or zipped is None:
        raise click.ClickException(_job_failure(job))
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(folder)  # our own archive: case files and images, nothing else
    click.echo(gettext("%(count)s case files written to %(folder)s",
                       count=(job.summary or {}).get("cases", 0), folder=folder))


@cases.command("write-demo-library")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False),
                default=str(Path(__file__).resolve().parent.parent / "case_library"))
def cases_write_demo_library(folder: Path) -> None:
    """Regenerate the demo library's case files (after changing app/cases/demo_library.py)."""
    from app.cases.demo_library import write_demo_library

    click.echo(gettext("%(count)s case files written to %(folder)s",
                       count=len(write_demo_library(folder)), folder=folder))


@cases.command("add-scheme")
@click.argument("definition", type=click.File("r", encoding="utf-8"))
@with_appcontext
def cases_add_scheme(definition: click.utils.LazyFile) -> None:
    """Add a reporting scheme from its JSON definition file."""
    from app.schemes.errors import SchemeError
    from app.schemes.registry import add_scheme

    try:
        scheme = add_scheme(definition.read(), actor=None)
    except UnicodeDecodeError:
        raise click.ClickException(gettext("the definition file is not UTF-8 text")) from None
    except SchemeError as exc:
        db.session.rollback()
        raise click.ClickException(exc.text()) from None
    click.echo(gettext("added scheme %(ref)s: %(name)s", ref=scheme.ref, name=scheme.name))


@cases.command("schemes")
@with_appcontext
def cases_schemes() -> None:
    """List the reporting schemes."""
    from app.schemes.registry import all_schemes

    for scheme in all_schemes().values():
        click.echo(f"{scheme.ref}\t{scheme.audience}\t{scheme.name}")


quizzes = click.Group("quizzes", help="Exercises and attempts.")


@quizzes.command("create-exercise")
@click.option("--title", required=True)
@click.option("--kind", type=click.Choice(["practice", "exam"]), default="practice",
              show_default=True)
@click.option("--scheme", "scheme_key", default="ds3030", show_default=True)
@click.option("--case", "case_ids", type=int, multiple=True, required=True,
              help="A published case id (repeat for each case, in order).")
@click.option("--time-limit", type=int, help="Minutes (exams).")
@click.option("--max-attempts", type=int)
@click.option("--cooldown-hours", type=int, default=0, show_default=True)
@with_appcontext
def quizzes_create_exercise(title: str, kind: str, scheme_key: str, case_ids: tuple[int, ...],
                            time_limit: int | None, max_attempts: int | None,
                            cooldown_hours: int) -> None:
    """Create an exercise from published cases."""
    from app.quizzes.exercises import create_exercise
    from app.quizzes.services import AttemptError

    try:
        exercise = create_exercise(title=title, kind=kind, scheme_key=scheme_key,
                                   case_ids=case_ids, actor=None,
                                   time_limit_minutes=time_limit, max_attempts=max_attempts,
                                   cooldown_hours=cooldown_hours)
    except AttemptError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(gettext("created exercise %(id)s: %(title)s (%(count)s cases)", id=exercise.id,
                       title=exercise.title, count=len(case_ids)))


@quizzes.command("rescore")
@click.option("--exercise", "exercise_id", type=int, help="Only this exercise.")
@with_appcontext
def quizzes_rescore(exercise_id: int | None) -> None:
    """Re-score ended attempts against the current reference reads; certificates follow
    (new passes issued, certificates whose evidence no longer holds listed for review)."""
    from app.jobs.cli import wait_for_job
    from app.quizzes.models import Exercise
    from app.quizzes.rescoring_job import start_rescoring, summary_lines

    if exercise_id is not None and db.session.get(Exercise, exercise_id) is None:
        raise click.ClickException(gettext("there is no exercise %(id)s", id=exercise_id))
    # A job like the exercise page's button: a worker re-scores, this command waits.
    job = wait_for_job(start_rescoring(exercise_id, actor=None).id, unit="attempt")
    if job.status != "done" or job.summary is None:
        raise click.ClickException(_job_failure(job))
    for line in summary_lines(job.summary):
        click.echo(line)


@quizzes.command("expire")
@with_appcontext
def quizzes_expire() -> None:
    """Time out attempts past their deadline (run it every minute from cron; pages that
    show an attempt end it too, and the demo server runs this itself)."""
    from app.quizzes.services import expire_overdue_attempts

    click.echo(gettext("%(count)s attempts timed out", count=expire_overdue_attempts()))


certs = click.Group("certs", help="Certification programmes and certificates.")


@certs.command("create-programme")
@click.option("--title", required=True)
@click.option("--exam", "exams", type=int, multiple=True, required=True,
              help="An exam exercise id that must be passed (repeatable).")
@click.option("--practice", "practices", type=int, multiple=True,
              help="A practice exercise id that must be completed (repeatable).")
@click.option("--renewal", "renewals", type=int, multiple=True,
              help="The recertification exam exercise id.")
@click.option("--role", "roles", multiple=True, help="An eligible role (repeatable).")
@click.option("--validity-days", type=int, default=730, show_default=True)
@click.option("--renewal-window-days", type=int, default=90, show_default=True)
@click.option("--cme-hours", type=float, default=0.0, show_default=True)
@with_appcontext
def certs_create_programme(title: str, exams: tuple[int, ...], practices: tuple[int, ...],
                           renewals: tuple[int, ...], roles: tuple[str, ...],
                           validity_days: int, renewal_window_days: int,
                           cme_hours: float) -> None:
    """Create a certification programme."""
    from app.certification.services import CertificationError, create_programme

    requirements = ([(e, "exam") for e in exams] + [(p, "practice") for p in practices]
                    + [(r, "renewal") for r in renewals])
    try:
        programme = create_programme(title=title, requirements=requirements,
                                     eligible_roles=roles, validity_days=validity_days,
                                     renewal_window_days=renewal_window_days,
                                     cme_hours=cme_hours)
    except (CertificationError, ValueError) as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    click.echo(gettext("created programme %(id)s: %(title)s", id=programme.id,
                       title=programme.title))


@certs.command("remind")
@with_appcontext
def certs_remind() -> None:
    """E-mail expiry reminders now (the workers also send them daily); each reminder goes
    out once."""
    from app.certification.reminder_jobs import start_reminders, summary_line
    from app.jobs.cli import wait_for_job
    from app.mail import mail_configured

    if not mail_configured():
        raise click.ClickException(gettext("no SMTP server is configured (MAIL_SERVER)"))
    job = wait_for_job(start_reminders(actor=None).id, unit="reminder")
    if job.status != "done" or job.summary is None:
        raise click.ClickException(_job_failure(job))
    click.echo(summary_line(job.summary))
    if job.summary["failed"]:
        raise SystemExit(1)


def register_cli(app: Flask) -> None:
    from app.backup_cli import backup, restore
    from app.jobs.cli import worker

    # The portal's own commands speak the environment's language (app.cli_language);
    # Flask's and Flask-Migrate's (run, shell, db) are left as they are.
    from app.qc.cli import qc

    ours = click.Group(commands=[users, clinics, cases, quizzes, certs, demo, worker, backup,
                                 restore, qc])
    localise_commands(ours)
    for command in ours.commands.values():
        app.cli.add_command(command)


def main() -> None:
    """The ``cxr-academy`` console script: the same commands as ``flask --app app``."""
    if sys.argv[1:3] == ["cases", "import"]:
        # The sandbox's server loads the imaging modules on another core while this process
        # loads the application, rather than after it, when the first file is parsed.
        from app.cases.sandbox import start_server

        start_server()
    from app import create_app

    FlaskGroup(create_app=create_app, name="cxr-academy", help="CXR Academy portal commands.")(
        prog_name="cxr-academy"
    )
