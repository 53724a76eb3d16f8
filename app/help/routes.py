"""Help pages, open to everyone (signed in or not): nothing on them is private."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template
from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from app.help.glossary import TERMS, glossary_url

bp = Blueprint("help", __name__, url_prefix="/help")
bp.add_app_template_global(glossary_url, "glossary_url")

# /help/<guide> -> (title, who it is for)
GUIDES: dict[str, tuple[Any, Any]] = {
    "radiologist": (_l("Guide for trainee radiologists"), _l("Trainee radiologists")),
    "radiographer": (_l("Guide for trainee radiographers"), _l("Trainee radiographers")),
    "trainer": (_l("Guide for trainers"), _l("Trainers")),
    "lead": (_l("Guide for programme leads"), _l("Programme leads")),
    "admin": (_l("Guide for administrators"), _l("Administrators")),
}


@bp.route("/")
def index() -> str:
    return render_template("help/index.html", guides=GUIDES)


@bp.route("/glossary")
def glossary() -> str:
    return render_template("help/glossary.html", terms=TERMS, guides=GUIDES)


@bp.route("/<guide>")
def guide(guide: str) -> str:
    if guide not in GUIDES:
        abort(404, description=gettext("There is no such help page."))
    title, _ = GUIDES[guide]
    return render_template(f"help/{guide}.html", title=title, guides=GUIDES)
