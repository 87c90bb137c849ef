"""Configuration of the PanDA simulator (plain dataclasses, no Flask)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERSIONS = ("0.8", "1.0")  # panda-server 0.8.x: legacy API only; 1.0.x: API v1, legacy methods forbidden


@dataclass
class Faults:
    """Fault injection, deterministic per (seed, method, n-th call of the method since the faults were set)."""

    latency_ms: int = 0  # added to every PanDA call
    error_rate: float = 0.0  # share of calls answering HTTP 500 or success:false (half each)
    submit_timeout_rate: float = 0.0  # share of submits committed, then stalled and dropped
    stall_s: float = 5.0  # how long such a submit stalls before the connection is dropped
    reset_rate: float = 0.0  # share of calls whose connection is dropped without a reply
    methods: list[str] = field(default_factory=list)  # restrict faults to these method names ([] = all)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        return cls(**known)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Timings:
    """Simulated durations in simulated seconds (divided by the time scale in real time)."""

    pickup_s: float = 60.0  # DEFT 'waiting' -> JEDI 'registered' ("not found" window)
    refine_s: float = 30.0  # registered -> defined/pending
    generate_s: float = 60.0  # defined -> scouting/running
    command_delay_s: float = 60.0  # queued command -> executed by TaskCommando
    abort_s: float = 30.0  # toabort -> aborted, passed -> final, toretry -> ready ...
    job_walltime_s: float = 3600.0  # nominal walltime of one job (0.8-1.0 of it drawn per job)
    slots: int = 1000  # jobs of one task running at the same time
    n_scouts: int = 10  # scout jobs when the task does not skip scouting


@dataclass
class SimConfig:
    """Everything the simulator needs; all fields have working defaults."""

    seed: int = 1  # one seed makes lifecycles, sizes and faults reproducible
    time_scale: float = 1.0  # simulated seconds per real second (0 = clock moves only when advanced)
    version: str = "1.0"  # the panda-server emulated: "1.0" (API v1) or "0.8" (the legacy /server/panda/ API)
    issuer_url: str = ""  # external OIDC issuer ("" = embedded SimIssuer)
    ca_bundle: str = ""  # CA file trusted when fetching the issuer's discovery and keys ("" = system store)
    client_ids: tuple[str, ...] = ("prodpanel",)  # client ids of the VO auth config (aud accepted)
    secondary_ids: tuple[str, ...] = ()  # extra accepted client ids (e.g. the web app)
    # With an external issuer: client ids whose tokens the embedded issuer signs (a second auth
    # config, like a second VO's on panda-server), e.g. the panel's sandbox tokens for local accounts.
    local_client_ids: tuple[str, ...] = ()
    vo: str = "spd"
    roles: tuple[str, ...] = ("production",)  # roles with a <vo>.<role>_auth_config.json
    auto_roles: tuple[str, ...] = ()  # roles auto-selected when Origin carries no role
    production_dns: tuple[str, ...] = ()
    max_active_tasks_per_user: int | None = None  # MAX_ACTIVE_TASKS_PER_USER_<label> (code 10)
    job_failure_rate: float = 0.02  # share of jobs failing for good
    # taskName regex -> forced outcome (done, finished, failed, broken, exhausted)
    outcome_rules: dict[str, str] = field(
        default_factory=lambda: {
            r"simfail": "failed",
            r"simbroken": "broken",
            r"simpartial": "finished",
            r"simexhaust": "exhausted",
        }
    )
    timings: Timings = field(default_factory=Timings)
    faults: Faults = field(default_factory=Faults)
    state_path: str = ""  # SQLite file for the state ("" = in memory)
    admin_endpoints: bool = True  # expose /_sim/* (faults, clock, stats)
    sites: tuple[str, ...] = ("JINR_PROD", "JINR_PROD_2", "PNPI_PROD")
    # JEDI's task-status messages: a STOMP broker (stomp://user:password@host:port, "" = none), where to.
    mq_url: str = ""
    mq_destination: str = "/topic/jedi_taskstatus"
    mq_tick_s: float = 1.0  # with a broker, JEDI runs by itself: due transitions every this many s

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}, got {self.version!r}")
        if isinstance(self.faults, dict):
            self.faults = Faults.from_dict(self.faults)
        if isinstance(self.timings, dict):
            self.timings = Timings(**self.timings)
        self.client_ids = tuple(self.client_ids)
        self.secondary_ids = tuple(self.secondary_ids)
        self.local_client_ids = tuple(self.local_client_ids)
        self.roles = tuple(self.roles)
