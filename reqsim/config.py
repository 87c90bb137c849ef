"""Configuration of the requests-service simulator (plain dataclasses, no Flask)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Faults:
    """Fault injection for the API endpoints (not /_sim/): every call, or only the next `times` calls."""

    latency_ms: int = 0  # added before each answer
    http_status: int = 0  # answer with this HTTP status instead (e.g. 500, 503; 0 = normal)
    malformed_json: bool = False  # answer 200 with a body that is not JSON
    bad_schema: bool = False  # answer 200 with JSON whose requests lack fields and have wrong types
    times: int = -1  # how many calls the faults apply to (-1 = all, until changed)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class ReqSimConfig:
    """Everything the simulator needs; all fields have working defaults."""

    token: str = ""  # required as "Authorization: Token <token>" ("" = any caller is accepted)
    page_size: int = 20  # requests per page of the list, unless the caller asks for page_size
    max_page_size: int = 100
    faults: Faults = field(default_factory=Faults)
    admin_endpoints: bool = True  # expose /_sim/* (faults, add a request)
