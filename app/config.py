"""Typed, frozen settings loaded from instance/config.toml and PRODPANEL_* environment variables.

Every key has a default here, the rules its value must follow (ranges, choices, regular expressions,
files) and a doc line; instance/config.example.toml is generated from them. An unknown key, a value of
the wrong type or one breaking a rule stops start-up with a one-line message naming the key.

Environment variables: PRODPANEL_<KEY> for top-level keys, PRODPANEL_<SECTION>__<KEY> for a section
(e.g. PRODPANEL_PANDA__URL). Lists are comma-separated or JSON; tables are JSON.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import os
import re
import secrets
import string
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.auth.roles import ROLES
from app.paths import ensure_private_dir


class ConfigError(Exception):
    """A configuration problem the operator must fix; the message names the key."""


@dataclass(frozen=True)
class Rule:
    """A constraint on a key's value beyond its type, checked at load and shown in the example file."""

    describe: str
    problem: Callable[[Any, Path], str | None]  # (value, instance folder) -> what is wrong, or None


def at_least(low: float) -> Rule:
    return Rule(f">= {low}", lambda v, _: None if v >= low else f"must be at least {low}, got {v!r}")


def above(low: float) -> Rule:
    return Rule(f"> {low}", lambda v, _: None if v > low else f"must be more than {low}, got {v!r}")


def between(low: int, high: int) -> Rule:
    return Rule(
        f"{low}..{high}", lambda v, _: None if low <= v <= high else f"must be {low}..{high}, got {v!r}"
    )


def one_of(*choices: str) -> Rule:
    """The value (each item of a list, each value of a table) must be one of `choices`."""
    listed = ", ".join(json.dumps(c) for c in choices)

    def problem(value: Any, _: Path) -> str | None:
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
        wrong = [v for v in items if v not in choices]
        return f"must be one of {listed}, got {json.dumps(wrong[0])}" if wrong else None

    return Rule(f"one of {listed}", problem)


def placeholders(*names: str) -> Rule:
    """A str.format pattern using only the placeholders `names`."""

    def problem(value: str, _: Path) -> str | None:
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            return f"not a valid pattern ({exc}): {value!r}"
        unknown = sorted(used - set(names))
        return f"unknown placeholder {{{unknown[0]}}} in {value!r}" if unknown else None

    return Rule("placeholders " + " ".join(f"{{{n}}}" for n in names), problem)


def _regex_problem(value: str, _: Path) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"not a valid regular expression ({exc}): {value!r}"
    return None


def _url_problem(value: str, _: Path) -> str | None:
    try:
        parts = urlsplit(value)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        return f"not a valid URL ({exc}): {value!r}"
    if value and (parts.scheme not in {"http", "https"} or not parts.netloc):
        return f"must be an http:// or https:// URL (or empty), got {value!r}"
    return None


def _file_problem(value: str, instance_dir: Path) -> str | None:
    if value and not (instance_dir / value).is_file():  # an absolute value replaces instance_dir
        return f"no such file: {instance_dir / value}"
    return None


_DATABASES = ("sqlite", "postgresql", "postgres")


def _database_url_problem(value: str, _: Path) -> str | None:
    """The panel runs on SQLite and PostgreSQL only (its migrations and locks are written for those)."""
    if not value:
        return None
    try:
        url = make_url(value)
    except ArgumentError as exc:
        return f"not a database URL ({exc}): {make_url_safe(value)}"
    if url.get_backend_name() not in _DATABASES:
        return f"must be a sqlite:/// or postgresql:// URL (or empty), got {url.get_backend_name()}://…"
    return None


def make_url_safe(value: str) -> str:
    """A database URL as it may appear in messages: without its password."""
    try:
        return make_url(value).render_as_string(hide_password=True)
    except ArgumentError:
        return value.split("@")[-1]


REGEX = Rule("a regular expression", _regex_problem)
DATABASE_URL = Rule('"" or a sqlite:/// or postgresql:// URL', _database_url_problem)
HTTP_URL = Rule('"" or an http(s) URL', _url_problem)
EXISTING_FILE = Rule('"" or an existing file', _file_problem)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def setting(default: Any, doc: str, *rules: Rule) -> Any:
    """A configuration key: its default, the line that documents it in config.example.toml and the
    rules its value must follow (checked at load)."""
    metadata = {"doc": doc, "rules": rules}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class ServerSettings:
    host: str = setting("127.0.0.1", "address `prodpanel serve` listens on")
    port: int = setting(5000, "port `prodpanel serve` listens on", between(0, 65535))
    threads: int = setting(8, "waitress worker threads (per process)", at_least(1))
    processes: int = setting(
        1,
        "processes serving requests on the same port; the first also runs the background jobs "
        "(more than 1: a shared instance on a multi-core host)",
        between(1, 64),
    )
    base_url: str = setting(
        "",
        "public URL when behind a proxy, e.g. https://prodpanel.jinr.ru (https => Secure cookies)",
        HTTP_URL,
    )
    trusted_proxy: str = setting("", "address of a reverse proxy whose X-Forwarded-* headers are trusted")


@dataclass(frozen=True)
class AuthSettings:
    local_accounts: bool = setting(True, "allow username/password accounts kept by the panel")
    login_attempts: int = setting(
        5, "failed logins allowed per client and username within login_window_s", at_least(1)
    )
    login_attempts_per_address: int = setting(
        10,
        "failed logins allowed per client address, whatever the usernames, within login_window_s "
        "(behind a reverse proxy set server.trusted_proxy, or all clients share one budget)",
        at_least(1),
    )
    login_window_s: int = setting(300, "window of the login rate limit, seconds", at_least(1))
    session_idle_minutes: int = setting(120, "a session unused this long ends", at_least(1))
    session_max_hours: int = setting(12, "a session ends this long after login, used or not", at_least(1))


@dataclass(frozen=True)
class IamSettings:
    issuer: str = setting(
        "", 'SPD-IAM issuer URL, e.g. https://spd-iam.jinr.ru/ ("" = IAM login off)', HTTP_URL
    )
    client_id: str = setting("", "the panel's IAM client id (must be in PanDA's secondary_ids)")
    client_secret: str = setting("", "the panel's IAM client secret (prefer the environment variable)")
    scopes: str = setting("openid profile email offline_access", "scopes asked at login")
    groups_claim: str = setting("groups", "claim holding the user's groups (groups or wlcg.groups)")
    role_map: dict[str, str] = setting(
        {"spd/production/admin": "admin", "spd/production": "manager", "spd": "viewer"},
        "IAM group -> panel role; the highest matching role wins",
        one_of(*ROLES),
    )
    extra_scopes: str = setting("", 'added to scopes, e.g. "wlcg wlcg.groups" for a WLCG-profile VO')
    login_prompt: str = setting(
        "consent", 'OIDC prompt at login ("consent": offline_access gives a refresh token)'
    )
    login_tokens_for_panda: bool = setting(
        True, "send the login's ID tokens to PanDA (client in secondary_ids)"
    )
    device_client_id: str = setting(
        "", 'client for device-code linking, e.g. PanDA\'s IAM client ("" = client_id)'
    )
    device_client_secret: str = setting("", 'its secret ("" = public client)')
    device_audience: str = setting("", 'audience asked in the device flow ("" = none)')
    exchange_audience: str = setting(
        "", 'RFC 8693 token exchange to this audience before calling PanDA ("" = off)'
    )
    exchange_scopes: str = setting("openid profile", "scopes asked in the token exchange")
    refresh_leeway_s: int = setting(
        120,
        "refresh an ID token this many seconds before it expires (at most half its lifetime)",
        at_least(0),
    )
    refresh_token_days: int = setting(
        30, "refresh-token lifetime assumed when IAM does not say (IAM default: 30)", at_least(1)
    )
    http_timeout_s: float = setting(10.0, "timeout of each call to IAM", above(0))
    rp_logout: bool = setting(True, "offer IAM's RP-initiated logout after the panel's logout")
    login_rate_limit: int = setting(
        20,
        "failed SPD-IAM logins (callbacks) allowed per client address within auth.login_window_s",
        at_least(1),
    )
    login_start_limit: int = setting(
        300, "SPD-IAM login starts allowed per client address within auth.login_window_s", at_least(1)
    )
    sandbox_token_lifetime_s: int = setting(
        3600, "lifetime of the sandbox ID tokens of the built-in simulator", at_least(60)
    )

    @property
    def enabled(self) -> bool:
        """IAM login is offered once an issuer and the panel's client id are configured."""
        return bool(self.issuer and self.client_id)


@dataclass(frozen=True)
class PandaSettings:
    url: str = setting(
        "",
        'PanDA server base URL, e.g. https://pandaserver.jinr.ru:25443 ("" = built-in simulator)',
        HTTP_URL,
    )
    vo: str = setting("spd", "virtual organisation sent in the Origin header")
    role: str = setting("production", "role sent in the Origin header (Origin: <vo>.<role>)")
    transport: str = setting(
        "auto",
        'protocol: "auto" probes /api/v1, then falls back to legacy /server/panda/ (servers before 1.0)',
        one_of("auto", "v1", "legacy"),
    )
    connect_timeout_s: float = setting(5.0, "seconds to establish a connection to PanDA", above(0))
    read_timeout_s: float = setting(
        30.0, "seconds to wait for a reply; a write that times out is never resent", above(0)
    )
    retries: int = setting(2, "extra attempts for reads and for requests PanDA never received", at_least(0))
    retry_backoff_s: float = setting(
        0.5, "first pause between attempts, doubled on each further attempt", at_least(0)
    )
    max_parallel_submits: int = setting(
        4, "task submissions in flight at once to the PanDA server (a bunch goes out this many at a time)",
        between(1, 64),
    )
    verify: bool = setting(
        True, "check PanDA's TLS certificate (false: tests only; every page then shows a warning)"
    )
    ca_bundle: str = setting(
        "",
        "CA certificates for PanDA's certificate: a file, or a directory such as "
        '/etc/grid-security/certificates ("" = the system store)',
    )
    proxy: str = setting(
        "",
        'HTTP(S) proxy for PanDA, e.g. http://proxy.jinr.ru:3128 ("" = direct; *_PROXY env vars are ignored)',
        HTTP_URL,
    )
    production_group: str = setting(
        "spd/production", "IAM group that carries the production role (named in refusals)"
    )
    bigpanda_task_url: str = setting(
        "",
        'link from the task tables to a task in BigPanDA, {id} = the PanDA task id, e.g. '
        'https://bigpanda.jinr.ru/task/{id}/ ("" = no link)',
        placeholders("id"),
        HTTP_URL,
    )
    sim_seed: int = setting(1, "sandbox simulator: seed of lifecycles, sizes and faults")
    sim_time_scale: float = setting(60.0, "sandbox simulator: simulated seconds per real second", at_least(0))
    sim_version: str = setting(
        "1.0",
        'sandbox simulator: the panda-server it emulates, "1.0" (API v1) or "0.8" (legacy API only)',
        one_of("1.0", "0.8"),
    )
    sim_state_path: str = setting(
        "panda-sim.sqlite3",
        'sandbox simulator state: SQLite file (relative = in the instance folder; "" = in memory)',
    )


@dataclass(frozen=True)
class TaskSettings:
    step_types: list[str] = setting(["SIM", "RECO"], "step types offered in forms")
    campaign_prefixes: list[str] = setting(["", "TEST_S1-"], "allowed before PROD<yyyy>-<nnn>")
    production_prefix: str = setting(
        "PROD", "production ids are <campaign prefix><production_prefix><yyyy>-<nnn>"
    )
    number_digits: int = setting(3, "zero-padded digits of the production number", between(1, 9))
    task_name_pattern: str = setting(
        "{production}.{step}",
        "task names",
        placeholders("production", "step"),
    )
    bunch_suffix: str = setting(".{n}", "appended to the names of bunch members 1..N", placeholders("n"))
    dataset_pattern: str = setting(
        "{scope}.{tag}.{production}.{step}.{version}",
        "output dataset names",
        placeholders("scope", "tag", "production", "step", "version"),
    )
    tag_strip_regex: str = setting(
        r"\.V\d+$", "removed from the exec path's last component to get the physics tag", REGEX
    )
    scope_regex: str = setting("[A-Za-z0-9_]+", "allowed dataset scopes", REGEX)
    default_scope: str = setting("MC2025_S1", "scope suggested in new task forms")
    cvmfs_roots: list[str] = setting(["/cvmfs/spd.jinr.ru/"], "exec/container paths must be under one")
    container_regex: str = setting(
        r"[^\s]+\.sif", "container paths must match this (after the CVMFS root check)", REGEX
    )
    clouds: list[str] = setting(["JINR"], "clouds offered in task forms")
    data_disks: list[str] = setting(["JINR_DATADISK"], "output destinations offered")
    request_id_regex: str = setting(
        r"[1-9]\d{0,8}", "well-formed production request ids (spd-requests)", REGEX
    )
    max_bunch_size: int = setting(1000, "most tasks one bunch may launch", at_least(1))
    template_file: str = setting(
        "",
        'TOML overriding app/panda/templates/taskparams.toml ("" = SPD defaults; relative = instance folder)',
        EXISTING_FILE,
    )
    reconcile_grace_s: float = setting(
        900.0,
        "an unanswered submit PanDA still does not show after this long, with no later task proving it "
        "absent, waits for a manager's decision (it is never resent on absence alone)",
        at_least(0),
    )
    unreachable_retry_s: float = setting(
        10.0,
        "a launch PanDA could not be reached for (nothing was sent) goes again after this long, "
        "doubled on each further try",
        above(0),
    )
    unreachable_retry_max_s: float = setting(
        300.0, "the longest wait between two tries of a launch while PanDA is unreachable", above(0)
    )
    max_total_events: int = setting(10**9, "most events one task may generate", at_least(1))
    max_events_per_job: int = setting(10**7, "most events one job may generate", at_least(1))
    max_jobs_per_task: int = setting(10**6, "most jobs one task may run", at_least(1))
    max_memory_mb: int = setting(64_000, "most memory per core a task may ask for, MB", at_least(1))
    max_walltime_s: int = setting(7 * 24 * 3600, "most walltime per job a task may ask for, s", at_least(1))


@dataclass(frozen=True)
class SyncSettings:
    enabled: bool = setting(True, "`serve` keeps the tasks' PanDA status, progress and accounting fresh")
    interval_s: float = setting(60.0, "seconds between two sync cycles", at_least(5))
    max_calls_per_cycle: int = setting(
        25, "most PanDA calls one cycle makes (the rest waits for the next cycle)", at_least(2)
    )
    max_tasks_per_call: int = setting(
        5000, "most tasks one bulk listing asks PanDA for (n_tasks)", between(10, 100_000)
    )
    overlap_s: float = setting(
        300.0, "a modified-since listing starts this much before the previous one (clock skew)", at_least(0)
    )
    backoff_max_s: float = setting(
        900.0, "while PanDA is unreachable the sync retries after 2, 4, 8 … cycles, at most this", at_least(5)
    )
    accounting_per_cycle: int = setting(
        5, "final tasks whose job descriptions one cycle reads (walltime, events, sizes)", at_least(0)
    )
    identity: str = setting(
        "",
        'panel username whose token the sync uses for every task ("" = each task\'s owner)',
    )
    page_refresh_s: float = setting(
        10.0, "open task pages re-read the stored PanDA state of active rows this often", at_least(1)
    )


@dataclass(frozen=True)
class QueueSettings:
    enabled: bool = setting(False, "`serve` reads JEDI's task-status messages from a STOMP broker")
    host: str = setting("127.0.0.1", "STOMP broker host")
    port: int = setting(61613, "STOMP broker port", between(1, 65535))
    user: str = setting("", "broker user")
    password: str = setting("", "broker password (prefer PRODPANEL_QUEUE__PASSWORD)")
    vhost: str = setting("/", "virtual host, sent as STOMP's host header (RabbitMQ's default is /)")
    destination: str = setting(
        "/topic/jedi_taskstatus",
        "where JEDI's task_status messages are published for the panel (never JEDI's own queue)",
    )
    use_ssl: bool = setting(False, "TLS to the broker")
    reconnect_max_s: float = setting(300.0, "longest pause between two reconnection attempts", at_least(1))


@dataclass(frozen=True)
class SchedulerSettings:
    enabled: bool = setting(
        True, "`serve` runs the background jobs (launches, sync, bulk actions …); off: none of them runs"
    )
    threads: int = setting(4, "threads the background jobs share (one job never runs twice at once)", between(1, 32))
    dispatch_interval_s: float = setting(5.0, "seconds between two looks for due launches", at_least(1))
    reconcile_interval_s: float = setting(
        30.0, "seconds between two look-ups of launches whose submit got no answer", at_least(5)
    )
    accounting_interval_s: float = setting(
        300.0, "seconds between two runs of the final accounting (job descriptions of final tasks)", at_least(10)
    )
    bulk_interval_s: float = setting(
        30.0, "seconds between two looks for bulk-action items left pending (starting one wakes it)", at_least(1)
    )
    token_refresh_interval_s: float = setting(
        300.0, "seconds between two refreshes of the tokens of soon-due launches' owners", at_least(10)
    )
    token_refresh_ahead_min: float = setting(
        30.0, "owners of launches due within this many minutes get their token refreshed ahead", at_least(1)
    )
    session_purge_interval_s: float = setting(
        600.0, "seconds between two purges of expired login sessions", at_least(10)
    )


@dataclass(frozen=True)
class ChainSettings:
    processing_types: list[str] = setting(
        ["MC production", "reprocessing"], "processing types offered in the chain form"
    )
    max_steps: int = setting(10, "most steps one chain may have", between(1, 50))


@dataclass(frozen=True)
class RequestsSettings:
    url: str = setting(
        "",
        'spd-requests base URL, e.g. https://spd-requests.jinr.ru ("" = built-in simulator)',
        HTTP_URL,
    )
    token: str = setting(
        "", 'API token sent as "Authorization: Token <token>" (prefer PRODPANEL_REQUESTS__TOKEN)'
    )
    connect_timeout_s: float = setting(3.0, "seconds to establish a connection to spd-requests", above(0))
    read_timeout_s: float = setting(10.0, "seconds to wait for each reply of spd-requests", above(0))
    verify_tls: bool = setting(True, "check spd-requests' TLS certificate")
    ca_bundle: str = setting("", 'CA bundle for spd-requests\' certificate ("" = system/certifi default)')
    proxy: str = setting(
        "", 'HTTP(S) proxy for spd-requests ("" = direct; *_PROXY env vars are ignored)', HTTP_URL
    )
    cache_s: int = setting(
        300, "requests fetched are shown this long before spd-requests is asked again", at_least(0)
    )
    retry_after_s: int = setting(
        30, "after a failed fetch spd-requests is left alone this long (Refresh asks at once)", at_least(0)
    )
    page_size: int = setting(20, "requests per page of the Requests list", between(5, 500))
    rescan_interval_s: float = setting(
        3600.0, "seconds between two scans of CVMFS for the path catalog (also once at start)", at_least(60)
    )


@dataclass(frozen=True)
class CatalogSettings:
    container_globs: list[str] = setting(
        ["/cvmfs/spd.jinr.ru/images/*.sif"],
        "container images offered in the task form (scanned when mounted)",
    )
    exec_globs: list[str] = setting(
        ["/cvmfs/spd.jinr.ru/production/MC/*"],
        "execution-file paths offered in the task form (scanned when mounted)",
    )
    version_regex: str = setting(
        r"(?i)spdroot\D*?(\d+(?:\.\d+)*?)(?=[-_]|\.[\d.]+gev|\.[a-z]|$)",
        "software version in a path's last component or a request's version (group 1; digits compared)",
        REGEX,
    )


@dataclass(frozen=True)
class StatsSettings:
    stalled_hours: float = setting(
        6.0, "an active task whose jobs have not moved for this many hours is flagged stalled", above(0)
    )
    token_warning_hours: float = setting(
        24.0, "alert when a scheduled launch's owner can no longer renew a token within this many hours", above(0)
    )
    alerts_interval_s: float = setting(300.0, "seconds between two evaluations of the alerts", at_least(10))


@dataclass(frozen=True)
class NotifySettings:
    smtp_host: str = setting("", 'SMTP server that sends alert e-mails ("" = no e-mail)')
    smtp_port: int = setting(25, "SMTP port", between(1, 65535))
    smtp_starttls: bool = setting(False, "upgrade the SMTP connection with STARTTLS")
    mail_from: str = setting("prodpanel@localhost", "sender address of alert e-mails")
    webhook_url: str = setting(
        "", 'Mattermost/Slack-compatible incoming webhook for alerts ("" = none)', HTTP_URL
    )
    timeout_s: float = setting(10.0, "seconds to wait for the SMTP server or the webhook", above(0))


@dataclass(frozen=True)
class ApiSettings:
    token_days: int = setting(90, "lifetime offered for a new personal API token, days", at_least(1))
    token_max_days: int = setting(366, "longest lifetime a personal API token may have, days", at_least(1))
    page_size: int = setting(50, "items per page of an API list unless per_page says otherwise", between(1, 500))
    max_page_size: int = setting(500, "most items one page of an API list may have", between(1, 5000))


@dataclass(frozen=True)
class Settings:
    instance_dir: Path = Path("instance")  # not a config key: resolved by app.paths
    database_url: str = setting(
        "", 'SQLAlchemy URL; "" = SQLite file prodpanel.sqlite3 in the instance folder', DATABASE_URL
    )
    secret_key: str = ""  # Flask secret; from PRODPANEL_SECRET_KEY or generated into instance/secret_key
    token_key: bytes = b""  # 32-byte token-encryption key; PRODPANEL_TOKEN_KEY (base64) or instance/token_key
    log_level: str = setting("INFO", "log messages of this level and above", one_of(*LOG_LEVELS))
    server: ServerSettings = field(default_factory=ServerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    iam: IamSettings = field(default_factory=IamSettings)
    panda: PandaSettings = field(default_factory=PandaSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    chains: ChainSettings = field(default_factory=ChainSettings)
    requests: RequestsSettings = field(default_factory=RequestsSettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    stats: StatsSettings = field(default_factory=StatsSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    api: ApiSettings = field(default_factory=ApiSettings)

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url or f"sqlite:///{self.instance_dir / 'prodpanel.sqlite3'}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @property
    def db_pool_size(self) -> int:
        """Database connections kept: one per waitress thread, per job thread and per parallel submit of
        the dispatch job, plus a margin for the rest (the PanDA call log, the sandbox simulators)."""
        return self.server.threads + self.scheduler.threads + self.panda.max_parallel_submits + 4

    @property
    def sandbox(self) -> bool:
        """No PanDA configured: the panel runs against its built-in simulator."""
        return not self.panda.url


# Keys that are not read from config.toml: secrets come from the environment or instance files.
_NOT_IN_FILE = {"instance_dir", "secret_key", "token_key"}


def get_settings() -> Settings:
    """The settings of the current Flask app."""
    return current_app.config["SETTINGS"]


def load_settings(instance_dir: Path, env: typing.Mapping[str, str] | None = None) -> Settings:
    """Read config.toml and the environment, generating missing secrets into the instance folder."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    path = instance_dir / "config.toml"
    if path.exists():
        try:
            data = tomllib.loads(_read_file(path))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    for key in data:
        if key in _NOT_IN_FILE:
            raise ConfigError(
                f"{key}: may not be set in config.toml; use PRODPANEL_{key.upper()} or the instance file"
            )
    _merge_env(data, env)
    values = _build(Settings, data, "", instance_dir)
    for name in ("secret_key", "token_key"):  # before either is generated: a refused start writes nothing
        if (instance_dir / name).exists():
            _read_file(instance_dir / name)
    secret_key = env.get("PRODPANEL_SECRET_KEY") or _secret_file(
        instance_dir / "secret_key", lambda: secrets.token_urlsafe(48)
    )
    token_key_b64 = env.get("PRODPANEL_TOKEN_KEY") or _secret_file(
        instance_dir / "token_key", lambda: base64.b64encode(secrets.token_bytes(32)).decode()
    )
    try:
        token_key = base64.b64decode(token_key_b64, validate=True)
    except ValueError as exc:
        raise ConfigError("token_key: expected base64 of 32 bytes") from exc
    if len(token_key) != 32:
        raise ConfigError("token_key: expected base64 of 32 bytes")
    return dataclasses.replace(values, instance_dir=instance_dir, secret_key=secret_key, token_key=token_key)


def _secret_file(path: Path, generate: typing.Callable[[], str]) -> str:
    if not path.exists():
        ensure_private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(generate())
    return _read_file(path).strip()


def _read_file(path: Path) -> str:
    """A configuration or key file's text; ConfigError naming it when it is a folder or unreadable."""
    if not path.is_file():
        raise ConfigError(f"{path.name}: {path} is not a regular file")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc


def _merge_env(data: dict[str, Any], env: typing.Mapping[str, str]) -> None:
    """Overlay PRODPANEL_* variables (as raw strings, typed later) onto the file's data."""
    sections = {f.name for f in dataclasses.fields(Settings) if _is_section(f)}
    for name, raw in env.items():
        if not name.startswith("PRODPANEL_") or name in {
            "PRODPANEL_INSTANCE",
            "PRODPANEL_DEBUG",
            "PRODPANEL_SECRET_KEY",
            "PRODPANEL_TOKEN_KEY",
        }:
            continue
        key = name.removeprefix("PRODPANEL_").lower()
        if "__" in key:
            section, sub = key.split("__", 1)
            if section not in sections:
                raise ConfigError(f"{name}: unknown section '{section}'")
            data.setdefault(section, {})[sub] = _EnvValue(raw)
        else:
            data[key] = _EnvValue(raw)


class _EnvValue(str):
    """A raw string from the environment, converted to the field's type when typed."""


def _is_section(f: dataclasses.Field) -> bool:
    return f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory)


def _build(cls: type, data: dict[str, Any], prefix: str, instance_dir: Path) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.')}: expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.name not in _NOT_IN_FILE}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{prefix}{key}: unknown key (see instance/config.example.toml)")
        f = known[key]
        if _is_section(f):
            kwargs[key] = _build(hints[key], value, f"{prefix}{key}.", instance_dir)
            continue
        kwargs[key] = _coerce(f"{prefix}{key}", hints[key], value)
        for rule in f.metadata["rules"]:
            problem = rule.problem(kwargs[key], instance_dir)
            if problem:
                raise ConfigError(f"{prefix}{key}: {problem}")
    return cls(**kwargs)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is None:
        return getattr(tp, "__name__", str(tp))
    return str(tp).replace("typing.", "")


def _coerce(key: str, tp: Any, value: Any) -> Any:
    if isinstance(value, _EnvValue):
        value = _from_env_string(key, tp, str(value))
    origin = typing.get_origin(tp)
    ok: bool
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif origin is list:
        (item,) = typing.get_args(tp)
        ok = isinstance(value, list) and all(isinstance(v, item) for v in value)
    elif origin is dict:
        _, item = typing.get_args(tp)
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, item) for k, v in value.items()
        )
    elif isinstance(tp, types.UnionType) or origin is typing.Union:
        ok = any(_matches(arg, value) for arg in typing.get_args(tp))
    else:
        ok = isinstance(value, tp)
    if not ok:
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def _matches(tp: Any, value: Any) -> bool:
    try:
        _coerce("", tp, value)
    except ConfigError:
        return False
    return True


def _from_env_string(key: str, tp: Any, raw: str) -> Any:
    try:
        if tp is bool:
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError
        if tp is int:
            return int(raw)
        if tp is float:
            return float(raw)
        origin = typing.get_origin(tp)
        if origin is list:
            stripped = raw.strip()
            return (
                json.loads(stripped)
                if stripped.startswith("[")
                else [p.strip() for p in raw.split(",") if p.strip()]
            )
        if origin is dict:
            return json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {raw!r} from the environment") from exc
    return raw


def render_example() -> str:
    """instance/config.example.toml, generated from the dataclasses above and their fields' docs."""

    def toml_value(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        if isinstance(value, list):
            return "[" + ", ".join(toml_value(v) for v in value) + "]"
        if isinstance(value, int | float):
            return repr(value)
        return json.dumps(value)

    def section(cls: type, header: str | None) -> list[str]:
        lines = [f"[{header}]"] if header else []
        instance = cls()
        for f in dataclasses.fields(cls):
            if f.name in _NOT_IN_FILE or _is_section(f):
                continue
            rules = "; ".join(rule.describe for rule in f.metadata["rules"])
            lines.append(f"# {f.metadata['doc']}" + (f" [{rules}]" if rules else ""))
            lines.append(f"# {f.name} = {toml_value(getattr(instance, f.name))}")
        return lines

    out = [
        "# prodpanel configuration: copy to instance/config.toml and uncomment what you change.",
        "# Every key is shown with its default. Environment variables override the file:",
        "# PRODPANEL_<KEY> for top-level keys, PRODPANEL_<SECTION>__<KEY> for keys of a section.",
        "# Secrets: PRODPANEL_SECRET_KEY and PRODPANEL_TOKEN_KEY (base64, 32 bytes), or the files",
        "# instance/secret_key and instance/token_key generated on first start.",
        "",
    ]
    out += section(Settings, None)
    for f in dataclasses.fields(Settings):
        if _is_section(f):
            out += ["", *section(typing.cast(type, f.default_factory), f.name)]
    return "\n".join(out) + "\n"
