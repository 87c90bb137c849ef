"""The admin's audit page."""

from flask import Blueprint, render_template, request

from app.audit.forms import AuditFilterForm
from app.audit.services import AUDIT_KEYS, audit_query, known_outcomes
from app.auth.decorators import role_required
from app.extensions import seek_paginate

bp = Blueprint("audit", __name__, url_prefix="/audit")


@bp.get("/")
@role_required("admin")
def index():
    form = AuditFilterForm(request.args)
    query = audit_query(
        action=form.value("action") or "", username=form.value("user") or "",
        outcome=form.value("outcome") or "", target=form.value("target") or "",
        since=form.value("since"), until=form.value("until"),
    )  # fmt: skip
    page = seek_paginate(query, AUDIT_KEYS, per_page=50)  # newest first
    return render_template(
        "audit/index.html", page=page, args=form.typed(), errors=form.messages(), outcomes=known_outcomes()
    )
