"""The glossary's terms: the anchor of each on /help/glossary and its name.

Templates link a term to its definition with the ``term`` macro (help/_term.html), which
calls ``glossary_url``: an unknown key fails when the page renders, so a link can never
point at a definition that does not exist."""

from __future__ import annotations

from flask import url_for

# key (the anchor on the glossary page) -> the term as the glossary names it
TERMS: dict[str, str] = {
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "ppv-npv": "PPV, NPV and accuracy",
    "kappa": "Cohen's kappa",
    "pabak": "PABAK",
    "weighted-kappa": "Weighted kappa",
    "roc-auc": "ROC AUC",
    "afroc": "AFROC and wAFROC (JAFROC)",
    "localisation": "Localisation (LL and NL marks)",
    "discrepancy-grade": "Discrepancy grade (RADPEER-style)",
    "peer-percentile": "Peer percentile",
    "wilson-ci": "Wilson confidence interval",
    "delong-ci": "DeLong confidence interval",
    "unanswered": "Unanswered cases",
    "facility-index": "Facility index",
    "discrimination-index": "Discrimination index",
    "discriminative-efficiency": "Discriminative efficiency",
    "cronbach-alpha": "Cronbach's alpha (KR-20)",
    "certificate-renewal": "Certificate renewal",
    "certificate-verification": "Certificate verification",
}


class UnknownGlossaryTerm(KeyError):
    """A template linked to a glossary term the glossary does not define."""


def glossary_url(key: str) -> str:
    """The address of ``key``'s definition on the glossary page."""
    if key not in TERMS:
        raise UnknownGlossaryTerm(f"no glossary term {key!r}; known: {', '.join(TERMS)}")
    return url_for("help.glossary", _anchor=key)
