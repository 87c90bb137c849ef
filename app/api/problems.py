"""Errors as RFC 9457 problem details (``application/problem+json``): a type, a title, the HTTP
status, a sentence (``detail``) and, for invalid input, one entry per field (``errors``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Response, json, request
from werkzeug.exceptions import HTTPException

MEDIA_TYPE = "application/problem+json"
API_PREFIX = "/api/"


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    step: int | None = None  # a chain's step (1-based); None for a task's or the chain's own field

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass
class ApiProblem(Exception):
    """Raised anywhere under /api/v1/ to answer with a problem document."""

    status: int
    title: str
    detail: str = ""
    kind: str = ""  # the problem type's last part: urn:prodpanel:problem:<kind>
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    keeps_work: bool = (
        False  # commit what the request flushed (a refusal's audit event), see app/transaction.py
    )

    def __post_init__(self) -> None:
        super().__init__(self.detail or self.title)


def invalid(errors: Iterable[FieldError], detail: str = "the request has invalid fields") -> ApiProblem:
    return ApiProblem(422, "Invalid input", detail, "validation", list(errors))


def field_errors(errors: Mapping[str, str | list[str]]) -> list[FieldError]:
    """FieldErrors from the services' and forms' ``{field: message(s)}``."""
    out = []
    for name, messages in errors.items():
        for message in [messages] if isinstance(messages, str) else messages:
            out.append(FieldError(name, str(message)))
    return out


def problem_response(problem: ApiProblem) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:prodpanel:problem:{problem.kind}" if problem.kind else "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail or problem.title,
        "instance": request.path,
    }
    if problem.errors:
        body["errors"] = [e.as_dict() for e in problem.errors]
    body.update(problem.extra)
    response = Response(json.dumps(body), status=problem.status, mimetype=MEDIA_TYPE)
    response.headers.update(problem.headers)
    return response


def wants_problem() -> bool:
    """Errors of API paths are problem documents, whatever raised them (routing, CSRF, a bug)."""
    return request.path.startswith(API_PREFIX)


def from_http_error(exc: HTTPException) -> Response:
    code = exc.code or 500
    detail = exc.description or exc.name
    if code == 400 and "CSRF" in detail:
        detail = (
            "CSRF token missing or wrong: send X-CSRFToken with the session's token, or use a bearer token"
        )
    allowed = getattr(exc, "valid_methods", None)  # a 405's methods
    headers = {"Allow": ", ".join(allowed)} if allowed else {}
    return problem_response(ApiProblem(code, exc.name, detail, headers=headers))


def internal_error() -> Response:
    return problem_response(
        ApiProblem(500, "Internal error", "something went wrong on our side; it was logged")
    )
