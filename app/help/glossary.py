"""The glossary's terms: the anchor of each on /help/glossary and its name.

Templates link a term to its definition with the ``term`` macro (help/_term.html), which
calls ``glossary_url``: an unknown key fails when the page renders, so a link can never
point at a definition that does not exist."""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask_babel import lazy_gettext as _l

# key (the anchor on the glossary page) -> the term as the glossary names it
TERMS: dict[str, Any] = {  # lazy: each in the reader's language
    "sensitivity": _l("Sensitivity"),
    "specificity": _l("Specificity"),
    "ppv-npv": _l("PPV, NPV and accuracy"),
    "kappa": _l("Cohen's kappa"),
    "pabak": _l("PABAK"),
    "weighted-kappa": _l("Weighted kappa"),
    "roc-auc": _l("ROC AUC"),
    "afroc": _l("AFROC and wAFROC (JAFROC)"),
    "localisation": _l("Localisation (LL and NL marks)"),
    "discrepancy-grade": _l("Discrepancy grade (RADPEER-style)"),
    "peer-percentile": _l("Peer percentile"),
    "wilson-ci": _l("Wilson confidence interval"),
    "delong-ci": _l("DeLong confidence interval"),
    "unanswered": _l("Unanswered cases"),
    "facility-index": _l("Facility index"),
    "discrimination-index": _l("Discrimination index"),
    "discriminative-efficiency": _l("Discriminative efficiency"),
    "cronbach-alpha": _l("Cronbach's alpha (KR-20)"),
    "certificate-renewal": _l("Certificate renewal"),
    "certificate-verification": _l("Certificate verification"),
}


class UnknownGlossaryTerm(KeyError):
    """A template linked to a glossary term the glossary does not define."""


def glossary_url(key: str) -> str:
    """The address of ``key``'s definition on the glossary page."""
    if key not in TERMS:
        raise UnknownGlossaryTerm(f"no glossary term {key!r}; known: {', '.join(TERMS)}")
    return url_for("help.glossary", _anchor=key)
