"""Lists over unbounded sets count their rows up to a cap ("10 000+") and page on past it."""

from __future__ import annotations

import re
from html import unescape

from app import extensions
from app.audit.services import record


def test_the_audit_list_counts_up_to_the_cap_and_pages_on_past_it(client, login_as, db, monkeypatch):
    monkeypatch.setattr(extensions, "COUNT_CAP", 55)
    for i in range(120):
        record("task.create", target=f"T{i:03d}", user=None)
    db.session.commit()
    login_as("admin")
    html = unescape(client.get("/audit/").get_data(as_text=True))
    assert "55+ in all" in html and "120 in all" not in html
    second = unescape(client.get("/audit/?page=2").get_data(as_text=True))
    assert "T069" in second and 'page=3">Next' in second  # a full page past the cap: more may follow
    last = unescape(client.get("/audit/?page=3").get_data(as_text=True))
    assert "T000" in last and "T019" in last and re.search(r'page-item disabled">\s*<a class="page-link" href="[^"]*">Next', last)
