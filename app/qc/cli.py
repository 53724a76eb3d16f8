"""``cxr-academy qc``: import QC re-read results, write the import template."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext
from flask_babel import gettext, ngettext

from app.qc.importing import ImportReport
from app.qc.models import DEFAULT_SCHEME

qc = click.Group("qc", help="QC re-read concordance: import the QC centre's results.")


def _user(ref: str | None):  # type: ignore[no-untyped-def]
    if ref is None:
        return None
    from app.auth.services import AccountError, find_user

    try:
        return find_user(ref)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None


def echo_report(report: ImportReport) -> None:
    """The per-row report: every problem (stderr) or the outcome counts."""
    for column in report.ignored_columns:
        click.echo(gettext("column %(column)s is not in the template: ignored, not stored",
                           column=column))
    if report.refused:
        for problem in report.problems:
            where = (gettext("row %(row)s", row=problem.row) if problem.row
                     else gettext("file"))
            if problem.field:
                where += f", {problem.field}"
            click.echo(f"{where}: {problem.text()}", err=True)
        click.echo(ngettext("Refused: %(num)s problem; nothing was imported.",
                            "Refused: %(num)s problems; nothing was imported.",
                            len(report.problems)), err=True)
        return
    for outcome in report.outcomes:
        if outcome.status == "duplicate":
            click.echo(gettext("row %(row)s: the same as row %(other)s, imported once",
                               row=outcome.row, other=outcome.same_as_row))
    click.echo(gettext("%(created)s created, %(updated)s updated, %(unchanged)s unchanged, "
                       "%(duplicate)s duplicate rows (import %(batch)s)",
                       created=report.count("created"), updated=report.count("updated"),
                       unchanged=report.count("unchanged"),
                       duplicate=report.count("duplicate"), batch=report.batch_id))


@qc.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--scheme", default=DEFAULT_SCHEME, show_default=True,
              help="The reporting scheme of rows that name none.")
@click.option("--as", "actor_ref", help="The user the import is recorded under.")
@with_appcontext
def qc_import(path: Path, scheme: str, actor_ref: str | None) -> None:
    """Import a CSV or XLSX file of QC re-reads (docs/qc-import.md). All rows or none:
    exit status 1 with the per-row report when any row is refused."""
    from app.qc.files import MAX_FILE_BYTES
    from app.qc.importing import import_file

    if path.stat().st_size > MAX_FILE_BYTES:  # said before reading it all into memory
        raise click.ClickException(gettext("the file is larger than %(limit)s MB",
                                           limit=MAX_FILE_BYTES // 1024**2))
    report = import_file(path.read_bytes(), path.name, actor=_user(actor_ref),
                         default_scheme=scheme)
    echo_report(report)
    if report.refused:
        raise SystemExit(1)


@qc.command("template")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--scheme", default=DEFAULT_SCHEME, show_default=True)
@with_appcontext
def qc_template(path: Path, scheme: str) -> None:
    """Write the import template (.csv or .xlsx, by the name's extension) with two example
    rows."""
    from app.qc.files import template_csv, template_xlsx
    from app.schemes.errors import SchemeError
    from app.schemes.registry import get_scheme

    try:
        chosen = get_scheme(scheme)
    except SchemeError as exc:
        raise click.ClickException(exc.text()) from None
    if path.suffix.lower() == ".xlsx":
        path.write_bytes(template_xlsx(chosen))
    else:
        path.write_text(template_csv(chosen), encoding="utf-8", newline="")
    click.echo(gettext("template written to %(path)s", path=str(path)))


@qc.command("flags")
@with_appcontext
def qc_flags() -> None:
    """Judge every reader against the ongoing QC criterion of each active programme now,
    flag those outside it (never twice while a flag is open), and print the counts."""
    from app.qc.flags import evaluate

    result = evaluate()
    click.echo(gettext("%(checked)s readers judged, %(opened)s flags opened, %(open)s already "
                       "open", checked=result.checked, opened=result.opened,
                       open=result.already_open))
