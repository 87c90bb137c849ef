"""Warnings (never refusals) for a task definition: an unknown request, paths missing from the catalog.

Called by the task form's validation; a requests service that is down only turns into a warning
that says so, and nothing the user typed is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.prodrequests import current
from app.prodrequests.catalog import unknown_path_warnings
from app.prodrequests.errors import RequestNotFound, RequestsServiceError

if TYPE_CHECKING:
    from app.tasks.specs import TaskDefinition


def definition_warnings(definition: TaskDefinition) -> list[str]:
    warnings = unknown_path_warnings(definition.exec_path, definition.container_path)
    request_id = definition.request_id
    if request_id is None or request_id <= 0 or not current.service_url():
        return warnings  # no request, a malformed id (an error already), or no service to ask
    try:
        current.fetch_request(request_id)
    except RequestNotFound:
        warnings.append(f"request {request_id} does not exist on the requests service")
    except RequestsServiceError as exc:
        warnings.append(f"request {request_id} could not be checked: {exc.message}")
    return warnings
