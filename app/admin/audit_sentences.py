"""The audit log in words: a label per action and a sentence per event.

Events keep machine-readable details (ids, role keys, before/after values); this module
turns them into what an administrator reads, with names instead of ids where the named
row still exists. Actions added later without a sentence here still read as "Key: value"
phrases rather than raw dictionaries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext, ngettext
from flask_babel import lazy_gettext as _l

from app.audit.models import AuditEvent
from app.i18n import N_

ACTION_LABELS: dict[str, Any] = {
    "login": _l("Signed in"),
    "login.failed": _l("Sign-in refused"),
    "logout": _l("Signed out"),
    "session.ended": _l("Session ended by time"),
    "user.create": _l("Account created"),
    "user.invite": _l("Invitation link made"),
    "user.roles": _l("Roles changed"),
    "user.scope": _l("Programme-lead countries changed"),
    "user.clinic": _l("Clinic changed"),
    "user.rename": _l("Name changed"),
    "user.activate": _l("Account reactivated"),
    "user.deactivate": _l("Account deactivated"),
    "user.password": _l("Password set"),
    "password_reset.request": _l("Password reset asked for"),
    "second_factor.enrol": _l("Second factor set up"),
    "login.password": _l("Password accepted"),
    "second_factor.failed": _l("Second-factor code refused"),
    "second_factor.locked": _l("Second factor locked after too many wrong codes"),
    "second_factor.recovery_code": _l("Recovery code used"),
    "second_factor.reset": _l("Second factor reset"),
    "second_factor.recovery_codes_regenerated": _l("Recovery codes replaced"),
    "second_factor.replacement_started": _l("Authenticator replacement started"),
    "second_factor.replaced": _l("Authenticator replaced"),
    "second_factor.disable_refused": _l("Turning off two-step sign-in refused"),
    "second_factor.disabled": _l("Two-step sign-in turned off"),
    "second_factor.key_added": _l("Security key added"),
    "second_factor.key_removed": _l("Security key removed"),
    "second_factor.key_refused": _l("Security key refused"),
    "clinic.create": _l("Clinic added"),
    "cases.import": _l("Cases imported"),
    "case.create": _l("Case added"),
    "job.create": _l("Job queued"),
    "job.finish": _l("Job ended"),
    "job.cancel": _l("Job cancelled"),
    "case.update": _l("Case details edited"),
    "case.status": _l("Case status changed"),
    "case.read": _l("Reference read saved"),
    "case.redact": _l("Pixels blacked out"),
    "case.pixel_review": _l("Pixel review finished"),
    "exercise.create": _l("Exercise created"),
    "attempt.start": _l("Attempt started"),
    "attempt.submit": _l("Attempt submitted"),
    "attempt.abandon": _l("Attempt abandoned"),
    "attempt.timed_out": _l("Attempt timed out"),
    "programme.create": _l("Programme created"),
    "programme.update": _l("Programme changed"),
    "certificate.issue": _l("Certificate issued"),
    "certificate.exception": _l("Certificate granted by exception"),
    "certificate.revoke": _l("Certificate revoked"),
    "certificate.reinstate": _l("Certificate reinstated"),
    "scheme.add": _l("Reporting scheme added"),
    "qc.import": _l("QC records imported"),
    "qc.promote": _l("QC study promoted to the library"),
    "qc.flag.open": _l("Reader flagged by quality control"),
    "qc.flag.decide": _l("Quality-control flag decided"),
}

OBJECT_LABELS: dict[str, Any] = {
    "user": _l("User"),
    "clinic": _l("Clinic"),
    "case": _l("Case"),
    "certificate": _l("Certificate"),
    "programme": _l("Programme"),
    "exercise": _l("Exercise"),
    "attempt": _l("Attempt"),
    "scheme": _l("Reporting scheme"),
    "import": _l("Import"),
    "qc_import_batch": _l("QC import"),
    "qc_record": _l("QC record"),
    "qc_flag": _l("Quality-control flag"),
}


def humanise(key: str) -> str:
    """``pixel_review`` -> ``Pixel review``; ``case.status`` -> ``Case status``."""
    words = key.replace(".", " ").replace("_", " ").replace("-", " ").split()
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def action_label(action: str) -> str:
    label = ACTION_LABELS.get(action)
    return str(label) if label is not None else humanise(action)


def object_type_label(object_type: str) -> str:
    label = OBJECT_LABELS.get(object_type)
    return str(label) if label is not None else humanise(object_type)


@dataclass
class Names:
    """Display names of the rows an event page refers to, loaded in one query per kind."""

    users: dict[int, str] = field(default_factory=dict)
    clinics: dict[int, str] = field(default_factory=dict)
    programmes: dict[int, str] = field(default_factory=dict)
    country: Callable[[str], str] = str

    def clinic(self, clinic_id: Any) -> str:
        if clinic_id is None:
            return gettext("no clinic (central staff)")
        return self.clinics.get(_int(clinic_id)) or gettext("clinic %(id)s", id=clinic_id)

    def programme(self, programme_id: Any) -> str:
        return (self.programmes.get(_int(programme_id))
                or gettext("programme %(id)s", id=programme_id))


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _role_labels(values: Iterable[Any]) -> str:
    from app.auth.roles import ROLE_LABELS, Role

    labels = []
    for value in values:
        try:
            labels.append(str(ROLE_LABELS[Role(str(value))]).lower())
        except ValueError:
            labels.append(humanise(str(value)).lower())
    return ", ".join(labels) or gettext("none")


def _value(value: Any) -> str:
    if value is None:
        return gettext("none")
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, Mapping):
        return "; ".join(f"{humanise(str(k)).lower()} {_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value) or gettext("none")
    return str(value)


def _phrases(detail: Mapping[str, Any]) -> str:
    """Details no sentence knows: "Key: value" phrases, never a raw dictionary."""
    parts = [gettext("%(key)s: %(value)s", key=humanise(str(k)), value=_value(v))
             for k, v in detail.items()]
    return ". ".join(parts) + ("." if parts else "")


def _scope(scope: Any, names: Names) -> str:
    if not isinstance(scope, Mapping):
        return _value(scope)
    if scope.get("all"):
        return gettext("all countries")
    countries = [names.country(str(c)) for c in scope.get("countries") or []]
    return ", ".join(countries) or gettext("none")


def _change(before: Any, after: Any) -> str:
    return f"{_value(before)} → {_value(after)}"


# Plain English here (the event's details name them); translated where shown.
_PASSWORD_VIA = {
    "invitation": N_("Set the password with an invitation link."),
    "password_reset": N_("Reset the password with an e-mailed link; every session ended."),
    "change": N_("Changed the password; other devices were signed out."),
    "cli": N_("Set the password from the command line; every session ended."),
}


def describe(event: AuditEvent, names: Names) -> str:
    """One or two sentences saying what happened, without the actor (shown beside it), in
    the reader's language: the stored details stay keys and values."""
    d: Mapping[str, Any] = event.detail or {}
    a = event.action
    sentence = _SENTENCES.get(a)
    if sentence is not None:
        try:
            return sentence(d, names)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass  # an older event with other details: fall back to plain phrases
    return _phrases(d)


def _user_create(d: Mapping[str, Any], names: Names) -> str:
    roles = _role_labels(d["roles"])
    if d.get("clinic_id"):
        return gettext("Created the account %(username)s with the roles %(roles)s at %(clinic)s.",
                       username=d["username"], roles=roles, clinic=names.clinic(d["clinic_id"]))
    return gettext("Created the account %(username)s with the roles %(roles)s (central staff).",
                   username=d["username"], roles=roles)


def _key_refused(detail: Mapping[str, Any]) -> str:
    reason = detail.get("reason")
    if reason == "counter":
        return gettext("A security key's signature counter went back (%(given)s after "
                       "%(stored)s): a copied key? The sign-in was refused.",
                       given=detail.get("given"), stored=detail.get("stored"))
    if reason == "another account's key":
        return gettext("Offered another account's security key at the second step; refused.")
    return gettext("A security key's answer was refused: %(reason)s", reason=reason)


def _login_failed(d: Mapping[str, Any], names: Names) -> str:
    typed = d.get("username") or ""
    if typed:
        return gettext("Refused a sign-in as “%(name)s”: wrong user name or password, or a "
                       "deactivated account.", name=typed)
    if d.get("username_hash"):
        return gettext("Refused a sign-in with a name that matches no account (kept as keyed "
                       "hash %(hash)s…: the same name gives the same hash).",
                       hash=d["username_hash"][:12])
    return gettext("Refused a sign-in without a user name.")


def _reset_request(d: Mapping[str, Any], names: Names) -> str:
    if not d["matched"]:
        if d.get("identifier_hash"):  # what was typed is kept as a keyed hash only
            return gettext("Asked for a password reset link for a name that matches no active "
                           "account (keyed hash %(hash)s…); nothing was sent.",
                           hash=d["identifier_hash"][:12])
        return gettext("Asked for a password reset link for “%(name)s”, which names no active "
                       "account; nothing was sent.", name=d.get("identifier", ""))
    if d.get("emailed"):
        return gettext("Asked for a password reset link; it was e-mailed.")
    return gettext("Asked for a password reset link; the e-mail could not be sent.")


def _certificate_issue(d: Mapping[str, Any], names: Names) -> str:
    programme = names.programme(d["programme"])
    exception, renews = bool(d.get("exception")), d.get("renews")
    if exception and renews:
        return gettext("Issued a certificate for %(programme)s by exception, renewing "
                       "certificate %(renews)s.", programme=programme, renews=renews)
    if exception:
        return gettext("Issued a certificate for %(programme)s by exception.",
                       programme=programme)
    if renews:
        return gettext("Issued a certificate for %(programme)s, renewing certificate "
                       "%(renews)s.", programme=programme, renews=renews)
    return gettext("Issued a certificate for %(programme)s.", programme=programme)


def _programme_update(d: Mapping[str, Any], names: Names) -> str:
    before, after = d.get("before") or {}, d.get("after") or {}
    changes = [
        f"{humanise(str(key)).lower()} {_change(before.get(key), after.get(key))}" for key in after
    ]
    if "description" in (d.get("changed") or []):
        changes.append(gettext("description edited"))
    if not changes:
        return gettext("Saved without changes.")
    return gettext("Changed %(changes)s.", changes="; ".join(changes))


def _redact(d: Mapping[str, Any], names: Names) -> str:
    count = len(d["rectangles"])
    return ngettext("Blacked out %(num)d rectangle on image %(image)s.",
                    "Blacked out %(num)d rectangles on image %(image)s.", count, image=d["image"])


def _pixel_review(d: Mapping[str, Any], names: Names) -> str:
    if d.get("via") == "case file":
        return gettext("Took over the pixel review by %(who)s (%(day)s) from the case file it "
                       "was loaded from.", who=d.get("reviewed_by"),
                       day=str(d.get("reviewed_at", ""))[:10])
    redacted = d.get("redacted_images") or []
    if not redacted:
        return gettext("Finished the pixel review: no burned-in text to remove.")
    return gettext("Finished the pixel review; redacted images: %(images)s.",
                   images=_value(redacted))


def _cases_import(d: Mapping[str, Any], names: Names) -> str:
    return ngettext(
        "Imported %(num)d case from %(source)s (%(duplicates)s duplicates, %(rejected)s refused).",
        "Imported %(num)d cases from %(source)s (%(duplicates)s duplicates, %(rejected)s "
        "refused).", int(d["imported"]), source=d["source"],
        duplicates=d.get("duplicates", 0), rejected=d.get("rejected", 0))


# Where QC records came from (QcImportBatch.source).
_QC_SOURCES = {
    "csv": N_("a CSV file"),
    "xlsx": N_("an Excel file"),
    "api": N_("the API"),
    "manual": N_("the entry form"),
}


def _qc_import(d: Mapping[str, Any], names: Names) -> str:
    source = _QC_SOURCES.get(str(d["source"]))
    return gettext("Imported QC records from %(source)s: %(created)s created, %(updated)s "
                   "updated, %(unchanged)s unchanged.",
                   source=gettext(source) if source else d["source"],
                   created=int(d["created"]), updated=int(d["updated"]),
                   unchanged=int(d["unchanged"]))
_QC_FLAG_DECISIONS = {
    "assign_practice": N_("Assigned the suggested practice set (exercise %(exercise)s) to user "
                          "%(reader)s for %(programme)s. Reason: %(reason)s"),
    "keep_watching": N_("Kept watching user %(reader)s for %(programme)s. Reason: %(reason)s"),
    "dismiss": N_("Dismissed the QC flag of user %(reader)s for %(programme)s. Reason: "
                  "%(reason)s"),
}


def _qc_flag_decide(d: Mapping[str, Any], names: Names) -> str:
    template = _QC_FLAG_DECISIONS.get(d["decision"], _QC_FLAG_DECISIONS["dismiss"])
    return gettext(template, exercise=d.get("exercise"), reader=d["reader"],
                   programme=names.programme(d["programme"]), reason=d["reason"])


_SESSION_ENDED = {
    "idle": N_("Signed out by the portal after a time without activity."),
    "expired": N_("Signed out by the portal: the session reached its longest lifetime."),
}


def _recovery_code(d: Mapping[str, Any]) -> str:
    left = d.get("remaining", "?")
    if d.get("purpose", "sign-in") == "sign-in":
        return gettext("Signed in with a recovery code (%(left)s left).", left=left)
    return gettext("Used a recovery code to %(purpose)s (%(left)s left).",
                   purpose=d["purpose"], left=left)


_Sentence = Callable[[Mapping[str, Any], Names], str]

_SENTENCES: dict[str, _Sentence] = {
    "login": lambda d, n: (
        gettext("Signed in (second factor: %(factor)s).", factor=d["second_factor"])
        if d.get("second_factor") else gettext("Signed in.")
    ),
    "logout": lambda d, n: gettext("Signed out."),
    "session.ended": lambda d, n: gettext(
        _SESSION_ENDED.get(str(d.get("reason")), N_("The session ended."))),
    "login.failed": _login_failed,
    "user.create": _user_create,
    "user.invite": lambda d, n: (
        gettext("Made an invitation link and e-mailed it.")
        if d["emailed"]
        else gettext("Made an invitation link to pass on (not e-mailed).")
    ),
    "user.roles": lambda d, n: gettext(
        "Changed roles: %(before)s → %(after)s.",
        before=_role_labels(d["before"]), after=_role_labels(d["after"])),
    "user.scope": lambda d, n: gettext(
        "Changed programme-lead countries: %(before)s → %(after)s.",
        before=_scope(d["before"], n), after=_scope(d["after"], n)),
    "user.clinic": lambda d, n: gettext(
        "Moved from %(before)s to %(after)s.",
        before=n.clinic(d["before"]), after=n.clinic(d["after"])),
    "user.rename": lambda d, n: gettext("Changed the full name."),
    "user.activate": lambda d, n: gettext("Reactivated the account."),
    "user.deactivate": lambda d, n: gettext("Deactivated the account and ended its sessions."),
    "user.password": lambda d, n: gettext(_PASSWORD_VIA[d["via"]]),
    "password_reset.request": _reset_request,
    "second_factor.enrol": lambda d, n: gettext(
        "Set up an authenticator app and recovery codes."),
    "login.password": lambda d, n: gettext(
        "Gave the right password; the second step was asked for."),
    "second_factor.failed": lambda d, n: gettext("Entered a wrong second-factor code."),
    "second_factor.recovery_code": lambda d, n: _recovery_code(d),
    "second_factor.recovery_codes_regenerated": lambda d, n: gettext(
        "Made new recovery codes; the old ones no longer work."),
    "second_factor.replacement_started": lambda d, n: gettext(
        "Confirmed a code to move the second factor to a new authenticator app."),
    "second_factor.replaced": lambda d, n: gettext(
        "Moved the second factor to a new authenticator app; the old one's codes no longer "
        "work and the account's other sessions ended."),
    "second_factor.disable_refused": lambda d, n: gettext(
        "Gave a wrong password when turning off two-step sign-in."),
    "second_factor.disabled": lambda d, n: gettext(
        "Turned off two-step sign-in; its recovery codes were removed."),
    "second_factor.reset": lambda d, n: gettext(
        "Reset the second factor and ended the account's sessions; it is set up again at "
        "the next sign-in."),
    "second_factor.key_added": lambda d, n: gettext(
        "Added the security key “%(name)s”.", name=d["name"]),
    "second_factor.key_removed": lambda d, n: gettext(
        "Removed the security key “%(name)s”.", name=d["name"]),
    "second_factor.key_refused": lambda d, n: _key_refused(d),
    "clinic.create": lambda d, n: gettext(
        "Added the clinic %(name)s (%(country)s).", name=d["name"],
        country=n.country(d["country"])),
    "cases.import": _cases_import,
    "qc.import": _qc_import,
    "case.create": lambda d, n: gettext("Added the case from %(source)s.", source=d["source"]),
    "job.create": lambda d, n: gettext(
        "Queued a job: %(kind)s.", kind=humanise(d["kind"]).lower()),
    "job.finish": lambda d, n: gettext(
        "The job ended (%(status)s) with %(done)s done.", status=d["status"],
        done=d.get("done", 0)),
    "job.cancel": lambda d, n: gettext("Cancelled the queued job."),
    "case.update": lambda d, n: gettext("Edited the case details."),
    "case.status": lambda d, n: gettext(
        "Changed status: %(before)s → %(after)s.", before=humanise(d["before"]).lower(),
        after=humanise(d["after"]).lower()),
    "case.read": lambda d, n: gettext(
        "Saved version %(version)s of a reference read (%(kind)s, scheme %(scheme)s).",
        version=d["version"], kind=humanise(d["kind"]).lower(), scheme=d["scheme"]),
    "case.redact": _redact,
    "case.pixel_review": _pixel_review,
    "exercise.create": lambda d, n: gettext(
        "Created an exercise (%(kind)s) of %(cases)s cases.",
        kind=humanise(d["kind"]).lower(), cases=d["cases"]),
    "attempt.start": lambda d, n: gettext(
        "Started an attempt at exercise %(exercise)s.", exercise=d["exercise"]),
    "attempt.submit": lambda d, n: gettext("Submitted the attempt."),
    "attempt.abandon": lambda d, n: gettext("Abandoned the attempt."),
    "attempt.timed_out": lambda d, n: gettext(
        "The time ran out; the attempt was submitted as it was."),
    "programme.create": lambda d, n: gettext("Created the programme."),
    "programme.update": _programme_update,
    "certificate.issue": _certificate_issue,
    "certificate.exception": lambda d, n: gettext(
        "Granted the certificate by exception. Reason: %(reason)s", reason=d["reason"]),
    "certificate.revoke": lambda d, n: gettext(
        "Revoked the certificate. Reason: %(reason)s", reason=d["reason"]),
    "certificate.reinstate": lambda d, n: gettext(
        "Reinstated the certificate. Reason: %(reason)s", reason=d["reason"]),
    "scheme.add": lambda d, n: gettext("Added the reporting scheme."),
    "qc.promote": lambda d, n: gettext(
        "Started the import of the QC study from the PACS %(endpoint)s as a draft teaching "
        "case (job %(job)s), its primary and QC reads to be attached as candidate reference "
        "reads.", endpoint=d["endpoint"], job=d["job"]),
    "qc.flag.open": lambda d, n: gettext(
        "Flagged user %(reader)s for %(programme)s: major-discrepancy rate outside the "
        "ongoing criterion over %(n)s QC reads.", reader=d["reader"],
        programme=n.programme(d["programme"]), n=d["n"]),
    "qc.flag.decide": _qc_flag_decide,
}


def object_label(event: AuditEvent, names: Names) -> str:
    if not event.object_type:
        return ""
    kind, ref = event.object_type, event.object_id or ""
    if kind == "user" and _int(ref) in names.users:
        return gettext("User %(name)s", name=names.users[_int(ref)])
    if kind == "clinic" and _int(ref) in names.clinics:
        return gettext("Clinic %(name)s", name=names.clinics[_int(ref)])
    if kind == "programme" and _int(ref) in names.programmes:
        return gettext("Programme %(name)s", name=names.programmes[_int(ref)])
    return f"{object_type_label(kind)} {ref}".strip()
