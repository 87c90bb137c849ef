"""One log format, with the request id, and a filter that keeps tokens out of the logs."""

import logging
import re

from flask import g, has_request_context

from app.tokens.jwtutil import JWT_SHAPE

# Authorization header values and token fields (JWTs anywhere: app.tokens.jwtutil.JWT_SHAPE).
_AUTH = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer\s+)?[^\s'\",}]+")
_TOKEN_FIELD = re.compile(r"(?i)((?:access|refresh|id)_token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+")

FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"


def mask_secrets(text: str) -> str:
    text = JWT_SHAPE.sub("<jwt>", text)
    text = _AUTH.sub(lambda m: m.group(1) + "<redacted>", text)
    return _TOKEN_FIELD.sub(lambda m: m.group(1) + "<redacted>", text)


class SecretMaskingFilter(logging.Filter):
    """Renders the message with its arguments, then masks anything token-shaped; adds the request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        record.msg, record.args = mask_secrets(message), None
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def configure_logging(level: str = "INFO") -> None:
    """Install the panel's handler on the root logger (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in root.handlers:
        if getattr(handler, "_prodpanel", False):
            return
    handler = logging.StreamHandler()
    handler._prodpanel = True
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(SecretMaskingFilter())
    root.addHandler(handler)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
