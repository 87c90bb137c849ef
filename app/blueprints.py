"""Blueprints registered by create_app(), as "module:attribute"; one line per domain."""

BLUEPRINTS: tuple[str, ...] = (
    "app.web.views:bp",
    "app.auth.views:bp",
    "app.auth.iam:bp",
    "app.tokens.views:bp",
    "app.audit.views:bp",
    "app.panda.views:bp",
    "app.tasks.views:bp",
    "app.prodrequests.views:bp",
)
