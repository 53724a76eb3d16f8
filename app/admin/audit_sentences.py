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

from app.audit.models import AuditEvent

ACTION_LABELS: dict[str, str] = {
    "login": "Signed in",
    "login.failed": "Sign-in refused",
    "logout": "Signed out",
    "session.ended": "Session ended by time",
    "user.create": "Account created",
    "user.invite": "Invitation link made",
    "user.roles": "Roles changed",
    "user.scope": "Programme-lead countries changed",
    "user.clinic": "Clinic changed",
    "user.rename": "Name changed",
    "user.activate": "Account reactivated",
    "user.deactivate": "Account deactivated",
    "user.password": "Password set",
    "password_reset.request": "Password reset asked for",
    "second_factor.enrol": "Second factor set up",
    "login.password": "Password accepted",
    "second_factor.failed": "Second-factor code refused",
    "second_factor.locked": "Second factor locked after too many wrong codes",
    "second_factor.recovery_code": "Recovery code used",
    "second_factor.reset": "Second factor reset",
    "second_factor.recovery_codes_regenerated": "Recovery codes replaced",
    "second_factor.replacement_started": "Authenticator replacement started",
    "second_factor.replaced": "Authenticator replaced",
    "second_factor.disable_refused": "Turning off two-step sign-in refused",
    "second_factor.disabled": "Two-step sign-in turned off",
    "second_factor.key_added": "Security key added",
    "second_factor.key_removed": "Security key removed",
    "second_factor.key_refused": "Security key refused",
    "clinic.create": "Clinic added",
    "cases.import": "Cases imported",
    "case.create": "Case added",
    "job.create": "Job queued",
    "job.finish": "Job ended",
    "job.cancel": "Job cancelled",
    "case.update": "Case details edited",
    "case.status": "Case status changed",
    "case.read": "Reference read saved",
    "case.redact": "Pixels blacked out",
    "case.pixel_review": "Pixel review finished",
    "exercise.create": "Exercise created",
    "attempt.start": "Attempt started",
    "attempt.submit": "Attempt submitted",
    "attempt.abandon": "Attempt abandoned",
    "attempt.timed_out": "Attempt timed out",
    "programme.create": "Programme created",
    "programme.update": "Programme changed",
    "certificate.issue": "Certificate issued",
    "certificate.exception": "Certificate granted by exception",
    "certificate.revoke": "Certificate revoked",
    "certificate.reinstate": "Certificate reinstated",
    "scheme.add": "Reporting scheme added",
}

OBJECT_LABELS: dict[str, str] = {
    "user": "User",
    "clinic": "Clinic",
    "case": "Case",
    "certificate": "Certificate",
    "programme": "Programme",
    "exercise": "Exercise",
    "attempt": "Attempt",
    "scheme": "Reporting scheme",
    "import": "Import",
}


def humanise(key: str) -> str:
    """``pixel_review`` -> ``Pixel review``; ``case.status`` -> ``Case status``."""
    words = key.replace(".", " ").replace("_", " ").replace("-", " ").split()
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action) or humanise(action)


def object_type_label(object_type: str) -> str:
    return OBJECT_LABELS.get(object_type) or humanise(object_type)


@dataclass
class Names:
    """Display names of the rows an event page refers to, loaded in one query per kind."""

    users: dict[int, str] = field(default_factory=dict)
    clinics: dict[int, str] = field(default_factory=dict)
    programmes: dict[int, str] = field(default_factory=dict)
    country: Callable[[str], str] = str

    def clinic(self, clinic_id: Any) -> str:
        if clinic_id is None:
            return "no clinic (central staff)"
        return self.clinics.get(_int(clinic_id), f"clinic {clinic_id}")

    def programme(self, programme_id: Any) -> str:
        return self.programmes.get(_int(programme_id), f"programme {programme_id}")


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
            labels.append(ROLE_LABELS[Role(str(value))].lower())
        except ValueError:
            labels.append(humanise(str(value)).lower())
    return ", ".join(labels) or "none"


def _value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return "; ".join(f"{humanise(str(k)).lower()} {_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value) or "none"
    return str(value)


def _phrases(detail: Mapping[str, Any]) -> str:
    """Details no sentence knows: "Key: value" phrases, never a raw dictionary."""
    parts = [f"{humanise(str(k))}: {_value(v)}" for k, v in detail.items()]
    return ". ".join(parts) + ("." if parts else "")


def _scope(scope: Any, names: Names) -> str:
    if not isinstance(scope, Mapping):
        return _value(scope)
    if scope.get("all"):
        return "all countries"
    countries = [names.country(str(c)) for c in scope.get("countries") or []]
    return ", ".join(countries) or "none"


def _change(before: Any, after: Any) -> str:
    return f"{_value(before)} → {_value(after)}"


_PASSWORD_VIA = {
    "invitation": "Set the password with an invitation link.",
    "password_reset": "Reset the password with an e-mailed link; every session ended.",
    "change": "Changed the password; other devices were signed out.",
    "cli": "Set the password from the command line; every session ended.",
}


def describe(event: AuditEvent, names: Names) -> str:
    """One or two sentences saying what happened, without the actor (shown beside it)."""
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
    where = f" at {names.clinic(d['clinic_id'])}" if d.get("clinic_id") else " (central staff)"
    return f"Created the account {d['username']} with the roles {_role_labels(d['roles'])}{where}."


def _key_refused(detail: Mapping[str, Any]) -> str:
    reason = detail.get("reason")
    if reason == "counter":
        return (f"A security key's signature counter went back ({detail.get('given')} after "
                f"{detail.get('stored')}): a copied key? The sign-in was refused.")
    if reason == "another account's key":
        return "Offered another account's security key at the second step; refused."
    return f"A security key's answer was refused: {reason}"


def _login_failed(d: Mapping[str, Any], names: Names) -> str:
    typed = d.get("username") or ""
    if typed:
        return (f"Refused a sign-in as “{typed}”: wrong user name or password, or a "
                "deactivated account.")
    if d.get("username_hash"):
        return ("Refused a sign-in with a name that matches no account (kept as keyed hash "
                f"{d['username_hash'][:12]}…: the same name gives the same hash).")
    return "Refused a sign-in without a user name."


def _reset_request(d: Mapping[str, Any], names: Names) -> str:
    if not d["matched"]:
        if d.get("identifier_hash"):  # what was typed is kept as a keyed hash only
            return ("Asked for a password reset link for a name that matches no active account "
                    f"(keyed hash {d['identifier_hash'][:12]}…); nothing was sent.")
        return (
            f"Asked for a password reset link for “{d.get('identifier', '')}”, which names no "
            "active account; nothing was sent."
        )
    if d.get("emailed"):
        return "Asked for a password reset link; it was e-mailed."
    return "Asked for a password reset link; the e-mail could not be sent."


def _certificate_issue(d: Mapping[str, Any], names: Names) -> str:
    text = f"Issued a certificate for {names.programme(d['programme'])}"
    if d.get("exception"):
        text += " by exception"
    if d.get("renews"):
        text += f", renewing certificate {d['renews']}"
    return text + "."


def _programme_update(d: Mapping[str, Any], names: Names) -> str:
    before, after = d.get("before") or {}, d.get("after") or {}
    changes = [
        f"{humanise(str(key)).lower()} {_change(before.get(key), after.get(key))}" for key in after
    ]
    if "description" in (d.get("changed") or []):
        changes.append("description edited")
    return "Changed " + "; ".join(changes) + "." if changes else "Saved without changes."


def _redact(d: Mapping[str, Any], names: Names) -> str:
    count = len(d["rectangles"])
    return f"Blacked out {count} rectangle{'s' if count != 1 else ''} on image {d['image']}."


def _pixel_review(d: Mapping[str, Any], names: Names) -> str:
    if d.get("via") == "case file":
        return (f"Took over the pixel review by {d.get('reviewed_by')} "
                f"({str(d.get('reviewed_at', ''))[:10]}) from the case file it was loaded from.")
    redacted = d.get("redacted_images") or []
    if not redacted:
        return "Finished the pixel review: no burned-in text to remove."
    return f"Finished the pixel review; redacted images: {_value(redacted)}."


def _cases_import(d: Mapping[str, Any], names: Names) -> str:
    return (
        f"Imported {d['imported']} case{'s' if d['imported'] != 1 else ''} from {d['source']} "
        f"({d.get('duplicates', 0)} duplicates, {d.get('rejected', 0)} refused)."
    )


_SESSION_ENDED = {
    "idle": "Signed out by the portal after a time without activity.",
    "expired": "Signed out by the portal: the session reached its longest lifetime.",
}


_Sentence = Callable[[Mapping[str, Any], Names], str]

_SENTENCES: dict[str, _Sentence] = {
    "login": lambda d, n: (
        f"Signed in (second factor: {d['second_factor']})." if d.get("second_factor")
        else "Signed in."
    ),
    "logout": lambda d, n: "Signed out.",
    "session.ended": lambda d, n: _SESSION_ENDED.get(str(d.get("reason")), "The session ended."),
    "login.failed": _login_failed,
    "user.create": _user_create,
    "user.invite": lambda d, n: (
        "Made an invitation link and e-mailed it."
        if d["emailed"]
        else "Made an invitation link to pass on (not e-mailed)."
    ),
    "user.roles": lambda d, n: (
        f"Changed roles: {_role_labels(d['before'])} → {_role_labels(d['after'])}."
    ),
    "user.scope": lambda d, n: (
        f"Changed programme-lead countries: {_scope(d['before'], n)} → {_scope(d['after'], n)}."
    ),
    "user.clinic": lambda d, n: f"Moved from {n.clinic(d['before'])} to {n.clinic(d['after'])}.",
    "user.rename": lambda d, n: "Changed the full name.",
    "user.activate": lambda d, n: "Reactivated the account.",
    "user.deactivate": lambda d, n: "Deactivated the account and ended its sessions.",
    "user.password": lambda d, n: _PASSWORD_VIA[d["via"]],
    "password_reset.request": _reset_request,
    "second_factor.enrol": lambda d, n: "Set up an authenticator app and recovery codes.",
    "login.password": lambda d, n: "Gave the right password; the second step was asked for.",
    "second_factor.failed": lambda d, n: "Entered a wrong second-factor code.",
    "second_factor.recovery_code": lambda d, n: (
        f"Signed in with a recovery code ({d.get('remaining', '?')} left)."
        if d.get("purpose", "sign-in") == "sign-in" else
        f"Used a recovery code to {d['purpose']} ({d.get('remaining', '?')} left)."
    ),
    "second_factor.recovery_codes_regenerated": lambda d, n: (
        "Made new recovery codes; the old ones no longer work."
    ),
    "second_factor.replacement_started": lambda d, n: (
        "Confirmed a code to move the second factor to a new authenticator app."
    ),
    "second_factor.replaced": lambda d, n: (
        "Moved the second factor to a new authenticator app; the old one's codes no longer "
        "work and the account's other sessions ended."
    ),
    "second_factor.disable_refused": lambda d, n: (
        "Gave a wrong password when turning off two-step sign-in."
    ),
    "second_factor.disabled": lambda d, n: (
        "Turned off two-step sign-in; its recovery codes were removed."
    ),
    "second_factor.reset": lambda d, n: (
        "Reset the second factor and ended the account's sessions; it is set up again at "
        "the next sign-in."
    ),
    "second_factor.key_added": lambda d, n: f"Added the security key “{d['name']}”.",
    "second_factor.key_removed": lambda d, n: f"Removed the security key “{d['name']}”.",
    "second_factor.key_refused": lambda d, n: _key_refused(d),
    "clinic.create": lambda d, n: f"Added the clinic {d['name']} ({n.country(d['country'])}).",
    "cases.import": _cases_import,
    "case.create": lambda d, n: f"Added the case from {d['source']}.",
    "job.create": lambda d, n: f"Queued a {humanise(d['kind']).lower()} job.",
    "job.finish": lambda d, n: f"The job ended ({d['status']}) with {d.get('done', 0)} done.",
    "job.cancel": lambda d, n: "Cancelled the queued job.",
    "case.update": lambda d, n: "Edited the case details.",
    "case.status": lambda d, n: (
        f"Changed status: {humanise(d['before']).lower()} → {humanise(d['after']).lower()}."
    ),
    "case.read": lambda d, n: (
        f"Saved version {d['version']} of a {humanise(d['kind']).lower()} reference read "
        f"(scheme {d['scheme']})."
    ),
    "case.redact": _redact,
    "case.pixel_review": _pixel_review,
    "exercise.create": lambda d, n: (
        f"Created a {humanise(d['kind']).lower()} exercise of {d['cases']} cases."
    ),
    "attempt.start": lambda d, n: f"Started an attempt at exercise {d['exercise']}.",
    "attempt.submit": lambda d, n: "Submitted the attempt.",
    "attempt.abandon": lambda d, n: "Abandoned the attempt.",
    "attempt.timed_out": lambda d, n: "The time ran out; the attempt was submitted as it was.",
    "programme.create": lambda d, n: "Created the programme.",
    "programme.update": _programme_update,
    "certificate.issue": _certificate_issue,
    "certificate.exception": lambda d, n: (
        f"Granted the certificate by exception. Reason: {d['reason']}"
    ),
    "certificate.revoke": lambda d, n: f"Revoked the certificate. Reason: {d['reason']}",
    "certificate.reinstate": lambda d, n: f"Reinstated the certificate. Reason: {d['reason']}",
    "scheme.add": lambda d, n: "Added the reporting scheme.",
}


def object_label(event: AuditEvent, names: Names) -> str:
    if not event.object_type:
        return ""
    kind, ref = event.object_type, event.object_id or ""
    if kind == "user" and _int(ref) in names.users:
        return f"User {names.users[_int(ref)]}"
    if kind == "clinic" and _int(ref) in names.clinics:
        return f"Clinic {names.clinics[_int(ref)]}"
    if kind == "programme" and _int(ref) in names.programmes:
        return f"Programme {names.programmes[_int(ref)]}"
    return f"{object_type_label(kind)} {ref}".strip()
