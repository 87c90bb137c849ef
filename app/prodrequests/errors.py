"""Errors of the requests-service client: each one a sentence a production manager can act on.

Pages show `message` next to the last data fetched (and its age); forms show it as a warning and keep
what the user typed.
"""

from __future__ import annotations


class RequestsServiceError(Exception):
    """Base class of every error the requests client raises; `message` is the human sentence."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ServiceNotConfigured(RequestsServiceError):
    """No [requests] url and no sandbox simulator running."""


class ServiceUnreachable(RequestsServiceError):
    """No connection could be made (DNS, refused, TLS)."""


class ServiceTimeout(RequestsServiceError):
    """The service did not answer in time."""


class ServiceHttpError(RequestsServiceError):
    """The service answered with an HTTP error status (5xx, or an unexpected 4xx)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ServiceAuthRefused(ServiceHttpError):
    """The service refused the panel's token (HTTP 401 or 403)."""


class RequestNotFound(RequestsServiceError):
    """The service does not know this request id."""


class MalformedReply(RequestsServiceError):
    """The reply is not JSON."""


class SchemaMismatch(RequestsServiceError):
    """The reply is JSON, but not shaped like requests (mapping.py must be adapted)."""
