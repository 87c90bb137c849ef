import logging
import re
from pathlib import Path

import pytest

from app.audit.models import AuditEvent
from app.audit.services import record
from app.logsetup import SecretMaskingFilter, mask_secrets
from app.panda.client import strip_secrets
from app.tokens.jwtutil import JWT_SHAPE

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBhcnQ"


def test_record_outside_a_request_has_no_request_data(app, db, make_user):
    user = make_user("viewer")
    event = record("user.created", target="x", details={"k": 1}, user=user)
    db.session.commit()
    stored = db.session.get(AuditEvent, event.id)
    assert stored.username == user.username and stored.details == {"k": 1}
    assert stored.request_id == "" and stored.at.tzinfo is not None


def test_audit_page_filters_and_pages(client, login_as, db):
    admin = login_as("admin")
    for i in range(60):
        record("panda.kill", target=f"task {i}", outcome="ok" if i % 2 else "failed", user=admin)
    record("login.failed", target="mallory", outcome="failed", user=None)
    db.session.commit()
    page = client.get("/audit/?action=panda.&outcome=failed").get_data(as_text=True)
    assert "task 58" in page and "task 59" not in page and "mallory" not in page
    assert '<option value="failed" selected>' in page and '<option value="ok">' in page
    assert "30 in all" not in page  # 30 rows fit on one page: no pager
    first = client.get("/audit/").get_data(as_text=True)
    assert "Older" in first and "in all" in first
    older = re.search(r'rel="next" href="([^"]*)"', first)[1].replace("&amp;", "&")
    second = client.get(older).get_data(as_text=True)
    assert "task 0" in second or "mallory" in second or "login.ok" in second
    assert client.get("/audit/?user=nobody").get_data(as_text=True).count("No events match") == 1
    bad = client.get("/audit/?since=yesterday").get_data(as_text=True)
    assert "since: use YYYY-MM-DD" in bad


def test_audit_events_are_append_only_in_the_ui(app):
    methods = {
        m for rule in app.url_map.iter_rules() if rule.endpoint.startswith("audit.") for m in rule.methods
    }
    assert methods <= {"GET", "HEAD", "OPTIONS"}


def test_mask_secrets():
    text = f"calling with Authorization: Bearer {JWT} and id_token={JWT} refresh_token='abc.def'"
    masked = mask_secrets(text)
    assert JWT not in masked and "abc.def" not in masked
    assert "<jwt>" in masked or "<redacted>" in masked


def test_logging_filter_masks_arguments_and_exceptions(caplog):
    logger = logging.getLogger("prodpanel.test")
    handler_filter = SecretMaskingFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        logger.warning("token was %s", JWT)
        try:
            raise ValueError(f"bad token {JWT}")
        except ValueError:
            logger.exception("failed")
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert JWT not in caplog.text
    assert "<jwt>" in caplog.text


UNSIGNED_JWT = "eyJhbGciOiJub25lIn0.e30."  # alg "none", empty claims: short parts, no signature


@pytest.mark.parametrize("token", [JWT, UNSIGNED_JWT])
def test_logs_and_panda_call_records_mask_the_same_jwts(token):
    text = f"PanDA said: token {token} rejected"
    assert JWT_SHAPE.search(text).group() == token
    assert token not in mask_secrets(text)
    assert token not in strip_secrets(text)
    assert token not in strip_secrets({"message": [text]})["message"][0]


def test_one_jwt_pattern_in_the_code():
    root = Path(__file__).resolve().parents[2] / "app"
    defining = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if re.search(r"re\.compile\(r?[\"']eyJ", path.read_text(encoding="utf-8"))
    )
    assert defining == ["tokens/jwtutil.py"], "use app.tokens.jwtutil.JWT_SHAPE"
