from sqlalchemy import text


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
