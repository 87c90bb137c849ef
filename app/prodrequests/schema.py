"""A production request as the panel knows it, whatever spd-requests calls its fields.

The JSON form (``ProductionRequest.to_json()``, also what the README documents):

    {
      "id": 42,                          # the request's number on spd-requests (positive integer)
      "title": "J/psi -> mu mu at 27 GeV",
      "physics_group": "Charmonia",
      "requester": "Artem Petrosyan",    # display name (or username) of who asked
      "status": "approved",              # one of STATUSES; an unknown word is kept as sent, lower-case
      "generator": "Pythia8",            # "" when not given
      "physics_tag": "jpsi-P8-spdroot417.27GeV",   # "" when not given; the tag of the output datasets
      "energy_gev": 27.0,                # centre-of-mass energy; null when not given
      "events_requested": 10000000,      # non-negative integer
      "software_version": "spdroot-4.1.7",         # "" when not given; a version or an image name
      "container_path": "/cvmfs/spd.jinr.ru/images/spdroot-4.1.7.sif",        # "" when not given
      "exec_path": "/cvmfs/spd.jinr.ru/production/MC/jpsi-P8-spdroot417.27GeV.V01",  # "" when not given
      "comments": "",
      "created_at": "2025-02-01T10:30:00+00:00",   # ISO 8601, UTC
      "updated_at": "2025-02-04T15:30:00+00:00"
    }

``app/prodrequests/mapping.py`` builds these from the service's replies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

# The panel's status words, in the order a request goes through them.
STATUSES = ("new", "approved", "in_progress", "on_hold", "done", "rejected")


@dataclass(frozen=True)
class ProductionRequest:
    id: int
    title: str
    physics_group: str
    requester: str
    status: str
    generator: str
    physics_tag: str
    energy_gev: float | None
    events_requested: int
    software_version: str
    container_path: str
    exec_path: str
    comments: str
    created_at: datetime
    updated_at: datetime

    @property
    def label(self) -> str:
        """How forms and lists name the request: "#42 J/psi -> mu mu at 27 GeV"."""
        return f"#{self.id} {self.title}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["updated_at"] = self.updated_at.isoformat()
        return data
