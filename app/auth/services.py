"""Account use cases: one function each, shared by the web pages and the command line.

Every function validates before it writes, records an audit event and commits; on bad
input it raises ``AccountError`` with a message for the person who typed it and leaves
the database untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pycountry
from email_validator import EmailNotValidError, validate_email
from flask import current_app, has_request_context
from flask_babel import get_locale, gettext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.audit.security_log import identifier_hash
from app.audit.services import record
from app.auth.links import LinkPurpose, mark_link_used
from app.auth.models import Clinic, LeadCountry, User, UserRole
from app.auth.password_policy import password_problem
from app.auth.passwords import hash_password, needs_rehash, verify_password
from app.auth.roles import Role
from app.auth.sessions import end_all_sessions
from app.auth.sign_in_throttle import clear_for_user, user_for_identifier
from app.db_types import utcnow
from app.extensions import db
from app.user_errors import UserError

_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")


class AccountError(UserError):
    """Bad input to an account operation; the message is meant for the user."""


def _flush_or_conflict(message: str) -> None:
    """Write pending rows; a unique constraint hit by a concurrent request (after our own
    check passed) becomes a clear error instead of a 500."""
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise AccountError(message) from None


# ---- validation -----------------------------------------------------------------------


def normalise_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise AccountError(gettext("invalid e-mail address %(email)s: %(reason)s",
                                   email=repr(email), reason=exc)) from None


def normalise_country(code: str) -> str:
    code = code.strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise AccountError(gettext("unknown country code %(code)s; use ISO 3166-1 alpha-2, e.g. KE",
                                   code=repr(code)))
    return code


def country_name(code: str) -> str:
    """The country's name in the reader's language (CLDR's names for French and Spanish;
    the ISO list's common English names in English, as before)."""
    locale = get_locale() if has_request_context() else None
    if locale is not None and locale.language != "en":
        translated = locale.territories.get(code.upper())
        if translated:
            return str(translated)
    country = pycountry.countries.get(alpha_2=code)
    return getattr(country, "common_name", None) or (country.name if country else code)


def parse_roles(values: Iterable[str | Role]) -> set[Role]:
    roles: set[Role] = set()
    for value in values:
        try:
            roles.add(value if isinstance(value, Role) else Role.parse(value))
        except ValueError as exc:
            raise AccountError(str(exc)) from None
    return roles


def check_password_policy(password: str, username: str, email: str, full_name: str = "") -> None:
    """The one password rule (app.auth.password_policy) for every way a password is set."""
    problem = password_problem(
        password,
        min_length=current_app.config["PASSWORD_MIN_LENGTH"],
        username=username,
        email=email,
        full_name=full_name,
    )
    if problem is not None:
        raise AccountError(problem)


def _username_from_email(email: str) -> str:
    base = re.sub(r"[^a-z0-9._-]", "", email.split("@", 1)[0].lower())
    base = (base or "user").ljust(3, "0")[:56]
    candidate, n = base, 1
    while db.session.scalar(select(User.id).where(User.username == candidate)) is not None:
        n += 1
        candidate = f"{base}{n}"
    return candidate


# ---- clinics --------------------------------------------------------------------------


def create_clinic(name: str, city: str, country_code: str) -> Clinic:
    name, city = name.strip(), city.strip()
    if not name or not city:
        raise AccountError(gettext("a clinic needs a name and a city"))
    country = normalise_country(country_code)
    if db.session.scalar(select(Clinic.id).where(func.lower(Clinic.name) == name.lower())):
        raise AccountError(gettext("a clinic named %(name)s already exists", name=repr(name)))
    clinic = Clinic(name=name, city=city, country_code=country)
    db.session.add(clinic)
    _flush_or_conflict(gettext("a clinic named %(name)s already exists", name=repr(name)))
    record("clinic.create", object_type="clinic", object_id=clinic.id, name=name, country=country)
    db.session.commit()
    return clinic


def find_clinic(ref: str) -> Clinic:
    """A clinic by id or by name (case-insensitive)."""
    ref = ref.strip()
    clinic = db.session.get(Clinic, int(ref)) if ref.isdigit() else None
    if clinic is None:
        clinic = db.session.scalar(select(Clinic).where(func.lower(Clinic.name) == ref.lower()))
    if clinic is None:
        raise AccountError(gettext("no clinic %(ref)s", ref=repr(ref)))
    return clinic


# ---- users ----------------------------------------------------------------------------


def find_user(ref: str) -> User:
    """A user by id, user name or e-mail."""
    ref = ref.strip().lower()
    user = db.session.get(User, int(ref)) if ref.isdigit() else None
    if user is None:
        user = db.session.scalar(select(User).where((User.username == ref) | (User.email == ref)))
    if user is None:
        raise AccountError(gettext("no user %(ref)s", ref=repr(ref)))
    return user


def create_user(
    *,
    email: str,
    full_name: str,
    roles: Iterable[str | Role],
    clinic: Clinic | None = None,
    username: str | None = None,
    password: str | None = None,
    lead_countries: Iterable[str] = (),
    lead_all_countries: bool = False,
) -> User:
    """Create an account. Without ``password`` the user sets one through an invitation."""
    email = normalise_email(email)
    full_name = full_name.strip()
    if not full_name:
        raise AccountError(gettext("a user needs a full name"))
    role_set = parse_roles(roles)
    if not role_set:
        raise AccountError(gettext("a user needs at least one role"))
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise AccountError(gettext("a user with e-mail %(email)s already exists", email=email))
    if username:
        username = username.strip().lower()
        if not _USERNAME_RE.match(username):
            raise AccountError(gettext(
                "a user name has 3-64 characters: lower-case letters, digits, '.', '_' or '-'"))
        if db.session.scalar(select(User.id).where(User.username == username)) is not None:
            raise AccountError(gettext("the user name %(name)s is taken", name=repr(username)))
    else:
        username = _username_from_email(email)
    countries = sorted({normalise_country(c) for c in lead_countries})
    _check_lead_scope(role_set, countries, lead_all_countries)
    if password is not None:
        check_password_policy(password, username, email, full_name)

    user = User(
        email=email,
        username=username,
        full_name=full_name,
        clinic=clinic,
        active=True,
        lead_all_countries=lead_all_countries,
        role_links=[UserRole(role=r.value) for r in sorted(role_set)],
        lead_country_links=[LeadCountry(country_code=c) for c in countries],
    )
    if password is not None:
        user.password_hash = hash_password(password)
    db.session.add(user)
    _flush_or_conflict(f"a user with e-mail {email} or user name {username!r} already exists")
    record(
        "user.create",
        object_type="user",
        object_id=user.id,
        username=username,
        roles=sorted(r.value for r in role_set),
        clinic_id=clinic.id if clinic else None,
    )
    db.session.commit()
    return user


def _check_lead_scope(roles: set[Role], countries: list[str], all_countries: bool) -> None:
    if Role.PROGRAMME_LEAD in roles and not countries and not all_countries:
        raise AccountError(gettext(
            "a programme lead needs countries in scope (or all countries)"))


def update_user(
    user: User,
    *,
    roles: Iterable[str | Role],
    clinic: Clinic | None,
    lead_countries: Iterable[str],
    lead_all_countries: bool,
    full_name: str | None = None,
) -> User:
    """Change roles, clinic and programme-lead scope in one audited step."""
    role_set = parse_roles(roles)
    if not role_set:
        raise AccountError(gettext("a user needs at least one role"))
    countries = sorted({normalise_country(c) for c in lead_countries})
    _check_lead_scope(role_set, countries, lead_all_countries)
    if full_name is not None and not full_name.strip():
        raise AccountError(gettext("a user needs a full name"))

    old_roles = sorted(r.value for r in user.roles)
    new_roles = sorted(r.value for r in role_set)
    if Role.ADMIN in user.roles and Role.ADMIN not in role_set:
        _keep_an_administrator(user)
    if old_roles != new_roles:
        keep = [link for link in user.role_links if link.role in new_roles]
        have = {link.role for link in keep}
        user.role_links = keep + [UserRole(role=r) for r in new_roles if r not in have]
        record(
            "user.roles", object_type="user", object_id=user.id, before=old_roles, after=new_roles
        )
    new_scope = (lead_all_countries, countries)
    old_scope = (user.lead_all_countries, user.lead_countries)
    if new_scope != old_scope:
        keep_c = [link for link in user.lead_country_links if link.country_code in countries]
        have_c = {link.country_code for link in keep_c}
        user.lead_country_links = keep_c + [
            LeadCountry(country_code=c) for c in countries if c not in have_c
        ]
        user.lead_all_countries = lead_all_countries
        record(
            "user.scope",
            object_type="user",
            object_id=user.id,
            before={"all": old_scope[0], "countries": old_scope[1]},
            after={"all": lead_all_countries, "countries": countries},
        )
    if (clinic.id if clinic else None) != user.clinic_id:
        record(
            "user.clinic",
            object_type="user",
            object_id=user.id,
            before=user.clinic_id,
            after=clinic.id if clinic else None,
        )
        user.clinic = clinic
    if full_name is not None and full_name.strip() != user.full_name:
        user.full_name = full_name.strip()
        record("user.rename", object_type="user", object_id=user.id)
    db.session.commit()
    return user


def set_active(user: User, active: bool) -> User:
    """Deactivate (ending every session at once) or reactivate an account."""
    if user.active == active:
        return user
    if not active and Role.ADMIN in user.roles:
        _keep_an_administrator(user)
    user.active = active
    if not active:
        end_all_sessions(user)
    record("user.activate" if active else "user.deactivate", object_type="user", object_id=user.id)
    db.session.commit()
    return user


def _keep_an_administrator(leaving: User) -> None:
    """Refuse to remove the last active administrator: nobody could manage accounts."""
    others = db.session.scalar(
        select(func.count(User.id))
        .join(UserRole)
        .where(UserRole.role == Role.ADMIN.value, User.active, User.id != leaving.id)
    )
    if not others:
        raise AccountError(gettext(
            "this is the last active administrator; make another one first"))


def set_password(user: User, password: str, *, via: str) -> None:
    """Set a new password from an invitation or reset link (``via`` names the link's
    purpose, which is then used up) or the command line. Like any password reset it ends
    the user's existing sessions."""
    check_password_policy(password, user.username, user.email, user.full_name)
    user.password_hash = hash_password(password)
    end_all_sessions(user)
    clear_for_user(user)  # a new password is the way out of a sign-in lock
    link = LinkPurpose(via) if via in {p.value for p in LinkPurpose} else None
    if link is not None:
        mark_link_used(user, link)
    # Through a link the (anonymous) actor is the account's owner themself.
    actor = user if link is not None else None
    record("user.password", object_type="user", object_id=user.id, actor=actor, via=via)
    db.session.commit()


def change_password(user: User, current: str, new: str) -> None:
    if not verify_password(user.password_hash, current):
        raise AccountError(gettext("the current password is wrong"))
    check_password_policy(new, user.username, user.email, user.full_name)
    user.password_hash = hash_password(new)
    end_all_sessions(user, keep_current=True)  # other devices must sign in again
    clear_for_user(user)
    record("user.password", object_type="user", object_id=user.id, via="change")
    db.session.commit()


def password_matches(user: User | None, identifier: str, password: str, *,
                     commit: bool = True) -> bool:
    """Whether ``user`` (found from ``identifier``) is active and this is their password.

    A failure is audited (never saying which part was wrong) and committed unless the caller
    commits it with more; nothing else is written. An unknown identifier costs the same
    hashing time as a real account.
    """
    ok = verify_password(user.password_hash if user else None, password)
    if ok and user is not None and user.active:
        return True
    # A name that matches no account may be a password typed into the wrong box: the log
    # keeps only a keyed hash of it (equal names, equal hashes: probing still shows).
    typed = identifier.strip().lower()[:64]
    if user is not None:
        record("login.failed", object_type="user", object_id=user.id, username=typed)
    else:
        record("login.failed", object_type="user", username_hash=identifier_hash(typed))
    if commit:
        db.session.commit()
    return False


def note_sign_in(user: User, password: str) -> None:
    """A right password was given: keep its hash current (the caller commits)."""
    if needs_rehash(user.password_hash or ""):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()


def authenticate(identifier: str, password: str) -> User | None:
    """The active user with this user name or e-mail and password, else None.

    Failures are audited; the caller records the sign-in, which may still need its second
    step. (Sign-in through the page goes through app.auth.sign_in, which also counts
    failures per account.)
    """
    user = user_for_identifier(identifier)
    if not password_matches(user, identifier, password) or user is None:
        return None
    note_sign_in(user, password)
    return user
