"""The admin's audit page."""

from datetime import UTC, datetime, timedelta

from flask import Blueprint, render_template, request

from app.audit.services import audit_query, known_outcomes
from app.auth.decorators import role_required
from app.extensions import db

bp = Blueprint("audit", __name__, url_prefix="/audit")


def _date(value: str):
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


@bp.get("/")
@role_required("admin")
def index():
    args = {
        k: request.args.get(k, "").strip() for k in ("action", "user", "outcome", "target", "since", "until")
    }
    since, until = _date(args["since"]), _date(args["until"])
    errors = [
        f"{k}: use YYYY-MM-DD" for k, v in (("since", since), ("until", until)) if args[k] and v is None
    ]
    query = audit_query(
        action=args["action"],
        username=args["user"],
        outcome=args["outcome"],
        target=args["target"],
        since=since,
        until=until + timedelta(days=1) if until else None,
    )
    page = db.paginate(query, per_page=50, error_out=False)
    return render_template("audit/index.html", page=page, args=args, errors=errors, outcomes=known_outcomes())
