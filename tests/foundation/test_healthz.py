from sqlalchemy import text

from tests.helpers import run_job


def test_healthz_reports_database_migrations_and_panda(client):
    body = client.get("/healthz").get_json()
    assert body["database"]["ok"] and body["migrations"]["ok"]
    assert body["migrations"]["current"] == body["migrations"]["head"]
    # No PanDA URL and no simulator started (tests do not run `serve`): reported, with the reason.
    assert body["panda"]["ok"] is False and "no sandbox simulator running" in body["panda"]["error"]


def test_healthz_is_503_when_the_schema_lags_behind(client, db):
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001_foundation'"))
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded" and body["migrations"] == {
        "ok": False,
        "current": "0001_foundation",
        "head": body["migrations"]["head"],
    }


def test_healthz_is_503_when_a_registered_check_fails(app, client):
    app.extensions["health_checks"]["broker"] = lambda: {"ok": False, "error": "down"}
    response = client.get("/healthz")
    assert response.status_code == 503 and response.get_json()["broker"] == {"ok": False, "error": "down"}


def test_healthz_asks_panda_at_most_once_a_minute(app, client, settings_factory):
    """The PanDA part is the last check's answer; only a check older than a minute probes again."""
    import dataclasses
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from app.panda.services import HEALTH_MAX_AGE_S

    hits = []

    class Alive(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            hits.append(self.path)
            body = json.dumps({"success": True, "message": "", "data": None}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Alive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app.config["SETTINGS"] = settings_factory(panda={"url": f"http://127.0.0.1:{server.server_port}"})
        first = client.get("/healthz").get_json()["panda"]
        probes = len(hits)
        assert first["ok"] is True and probes >= 1
        assert [client.get("/healthz").get_json()["panda"] for _ in range(3)] == [first] * 3
        assert len(hits) == probes  # answered from the last check
        last = app.extensions["panda_health"]
        app.extensions["panda_health"] = dataclasses.replace(last, at=last.at - HEALTH_MAX_AGE_S - 1)
        assert client.get("/healthz").get_json()["panda"]["ok"] is True
        assert len(hits) > probes  # a minute later: checked again
        probes = len(hits)
        run_job("panda-health")  # the scheduler's job checks in the background ...
        assert len(hits) > probes
        probes = len(hits)
        assert client.get("/healthz").get_json()["panda"]["ok"] is True
        assert len(hits) == probes  # ... and /healthz shows its answer
    finally:
        server.shutdown()
        server.server_close()
