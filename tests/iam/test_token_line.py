"""The home page's token line tells the truth (against the real OpenID provider): what PanDA will accept
from the panel (the ID token, until its own expiry, not the refresh token's), what happens after
(refreshed until the refresh token ends, or log in again without one), and no date at all for a user
whose token PanDA refuses."""

from __future__ import annotations

import re
from html import unescape

from sqlalchemy import select

from app.auth.models import User
from app.tokens import services as vault
from app.tokens.models import UserToken
from tests.oidc_fixture import iam_login


def line(client) -> str:
    html = client.get("/").get_data(as_text=True)
    span = re.search(r'<span[^>]*id="token-validity"[^>]*>(.*?)</span>', html, re.S).group(1)
    return " ".join(unescape(re.sub(r"<[^>]+>", "", span)).split())


def grant_of(db, sub: str) -> UserToken:
    db.session.expire_all()
    user = db.session.scalar(select(User).where(User.sub == sub))
    return db.session.scalar(select(UserToken).where(UserToken.user_id == user.id))


def test_the_line_names_the_id_tokens_expiry_and_the_refresh_tokens_end(client, db, oidc_op, real_clock):
    assert iam_login(client, oidc_op, "alice").status_code == 302
    grant = grant_of(db, "alice")
    text = line(client)
    id_until = grant.id_token_expires_at.strftime("%Y-%m-%d %H:%M")
    refresh_until = grant.refresh_token_expires_at.strftime("%Y-%m-%d %H:%M")
    assert id_until != refresh_until  # an ID token lasts minutes, a refresh token days
    assert text.startswith(f"PanDA accepts your token until {id_until} UTC;")
    assert f"the panel then refreshes it by itself until {refresh_until} UTC" in text
    assert "log in with SPD-IAM again" in text
    assert "available until" not in text


def test_without_a_refresh_token_the_line_says_log_in_again(client, db, oidc_op, real_clock):
    assert iam_login(client, oidc_op, "alice").status_code == 302
    grant = grant_of(db, "alice")
    grant.refresh_token_sealed = None
    db.session.commit()
    text = line(client)
    until = grant.id_token_expires_at.strftime("%Y-%m-%d %H:%M")
    assert text == (
        f"PanDA accepts your token until {until} UTC; after that you must log in with SPD-IAM again "
        "(no refresh token was granted)."
    )
    real_clock.set(grant.id_token_expires_at)
    assert line(client).startswith("No PanDA token can be obtained for you now")


def test_no_date_is_shown_to_a_user_whose_token_panda_refuses(client, db, oidc_op, real_clock):
    assert iam_login(client, oidc_op, "alice").status_code == 302
    user = db.session.scalar(select(User).where(User.sub == "alice"))
    vault.record_panda_check(user, False, "PanDA does NOT grant the production role")
    db.session.commit()
    text = line(client)
    assert text.startswith("PanDA refuses your token: PanDA does NOT grant the production role")
    assert "until" not in text
    assert vault.panda_token_line(user).kind == "refused"
