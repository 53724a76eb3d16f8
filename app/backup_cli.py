"""``cxr-academy backup PATH`` and ``cxr-academy restore PATH``."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext
from flask_babel import gettext

from app.audit import security_log
from app.backup import BackupError, create_backup, restore_backup


@click.command("backup")
@click.argument("path", type=click.Path(path_type=Path))
@with_appcontext
def backup(path: Path) -> None:
    """Write the database and image store to PATH, a new .tar file (or a folder, to get a
    time-stamped file in it). Safe while the portal runs; the file is readable by its owner
    only: it holds password hashes and the audit log."""
    try:
        report = create_backup(path)
    except BackupError as exc:
        security_log.emit("export", outcome="failure", format="backup", export="backup",
                          reason=str(exc))
        raise click.ClickException(str(exc)) from None
    security_log.emit("export", outcome="success", format="backup", export="backup",
                      file=str(report.path), images=report.images)
    click.echo(gettext("backup written to %(path)s: %(database)s database (revision "
                       "%(revision)s), %(images)s images, %(files)s files, %(megabytes)s MB",
                       path=report.path, database=report.database,
                       revision=report.alembic_revision, images=report.images,
                       files=report.files, megabytes=f"{report.size / 1e6:.1f}"))
    if report.skipped_newer:
        click.echo(gettext("%(count)s images stored after the database snapshot were left out "
                           "(the next backup has them)", count=report.skipped_newer))
    for key in report.missing:
        click.echo(gettext("warning: image %(key)s is in the database but missing from the "
                           "image store", key=key), err=True)


@click.command("restore")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--replace-existing", is_flag=True,
              help="Replace a database and image store that are not empty (their content is "
                   "lost).")
@with_appcontext
def restore(path: Path, replace_existing: bool) -> None:
    """Restore the backup PATH into this instance, whose database and image store must be
    empty. Every file is checked against the backup's manifest first; on any failure
    nothing is changed."""
    try:
        report = restore_backup(path, replace_existing=replace_existing)
    except BackupError as exc:
        security_log.emit("backup.restore", outcome="failure", file=str(path), reason=str(exc))
        raise click.ClickException(str(exc)) from None
    security_log.emit("backup.restore", outcome="success", file=str(path),
                      replace_existing=replace_existing)
    click.echo(gettext("restored %(files)s files from a backup of %(created)s (portal "
                       "%(version)s): %(database)s database, %(images)s images",
                       files=report.files, created=report.created_at,
                       version=report.portal_version, database=report.database,
                       images=report.images))
    if not report.same_deid_secret:
        click.echo(gettext(
            "warning: this instance's de-identification secret (DEID_SECRET, "
            "instance/deid_secret) is not the backed-up portal's: images imported from now on "
            "get other replacement UIDs, pseudonyms and date shifts, so a new image of a "
            "stored study or patient is not linked to it. Copy the old secret into place "
            "before importing."), err=True)
    if report.unreadable_second_factors:
        click.echo(gettext(
            "warning: %(count)s second factor(s) cannot be read with this instance's "
            "FIELD_ENCRYPTION_KEYS: copy the backed-up portal's instance/field_key (or its "
            "FIELD_ENCRYPTION_KEYS) into place, or those users must have their second factor "
            "reset ('cxr-academy users reset-2fa USERNAME').",
            count=report.unreadable_second_factors), err=True)
    if report.alembic_revision != report.head_revision:
        click.echo(gettext("the database is at revision %(revision)s; run 'flask --app app db "
                           "upgrade' to bring it to this portal's schema",
                           revision=report.alembic_revision))

