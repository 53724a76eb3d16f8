"""Help pages, open to everyone (signed in or not): nothing on them is private."""

from __future__ import annotations

from flask import Blueprint, abort, render_template

from app.help.glossary import TERMS, glossary_url

bp = Blueprint("help", __name__, url_prefix="/help")
bp.add_app_template_global(glossary_url, "glossary_url")

# /help/<guide> -> (title, who it is for)
GUIDES: dict[str, tuple[str, str]] = {
    "radiologist": ("Guide for trainee radiologists", "Trainee radiologists"),
    "radiographer": ("Guide for trainee radiographers", "Trainee radiographers"),
    "trainer": ("Guide for trainers", "Trainers"),
    "lead": ("Guide for programme leads", "Programme leads"),
    "admin": ("Guide for administrators", "Administrators"),
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
        abort(404, description="There is no such help page.")
    title, _ = GUIDES[guide]
    return render_template(f"help/{guide}.html", title=title, guides=GUIDES)
