"""Typed, frozen settings loaded from instance/config.toml and PRODPANEL_* environment variables.

Every key has a default here and is documented in instance/config.example.toml. An unknown key or a
value of the wrong type stops start-up with a message naming the key and the expected type.

Environment variables: PRODPANEL_<KEY> for top-level keys, PRODPANEL_<SECTION>__<KEY> for a section
(e.g. PRODPANEL_PANDA__URL). Lists are comma-separated or JSON; tables are JSON.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import current_app

from app.paths import ensure_private_dir


class ConfigError(Exception):
    """A configuration problem the operator must fix; the message names the key."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"  # address `prodpanel serve` listens on
    port: int = 5000  # port `prodpanel serve` listens on
    threads: int = 8  # waitress worker threads
    base_url: str = (
        ""  # public URL when behind a proxy, e.g. https://prodpanel.jinr.ru (https => Secure cookies)
    )
    trusted_proxy: str = ""  # address of a reverse proxy whose X-Forwarded-* headers are trusted


@dataclass(frozen=True)
class AuthSettings:
    local_accounts: bool = True  # allow username/password accounts kept by the panel
    login_attempts: int = 5  # failed logins allowed per client and username within login_window_s
    login_window_s: int = 300  # window of the login rate limit, seconds
    session_idle_minutes: int = 120  # a session unused this long ends
    session_max_hours: int = 12  # a session ends this long after login, used or not


@dataclass(frozen=True)
class IamSettings:
    issuer: str = ""  # SPD-IAM issuer URL, e.g. https://spd-iam.jinr.ru/ ("" = IAM login off)
    client_id: str = ""  # the panel's IAM client id (must be in PanDA's secondary_ids)
    client_secret: str = ""  # the panel's IAM client secret (prefer the environment variable)
    scopes: str = "openid profile email offline_access"  # scopes asked at login
    groups_claim: str = "groups"  # claim holding the user's groups (groups or wlcg.groups)
    role_map: dict[str, str] = field(  # IAM group -> panel role; the highest matching role wins
        default_factory=lambda: {
            "spd/production/admin": "admin",
            "spd/production": "manager",
            "spd": "viewer",
        }
    )
    extra_scopes: str = ""  # added to scopes, e.g. "wlcg wlcg.groups" for a WLCG-profile VO
    login_prompt: str = "consent"  # OIDC prompt at login ("consent": offline_access gives a refresh token)
    login_tokens_for_panda: bool = True  # send the login's ID tokens to PanDA (client in secondary_ids)
    device_client_id: str = ""  # client for device-code linking, e.g. PanDA's IAM client ("" = client_id)
    device_client_secret: str = ""  # its secret ("" = public client)
    device_audience: str = ""  # audience asked in the device flow ("" = none)
    exchange_audience: str = ""  # RFC 8693 token exchange to this audience before calling PanDA ("" = off)
    exchange_scopes: str = "openid profile"  # scopes asked in the token exchange
    refresh_leeway_s: int = 120  # refresh an ID token this many seconds before it expires
    refresh_token_days: int = 30  # refresh-token lifetime assumed when IAM does not say (IAM default: 30)
    http_timeout_s: float = 10.0  # timeout of each call to IAM
    rp_logout: bool = True  # offer IAM's RP-initiated logout after the panel's logout
    login_rate_limit: int = 20  # SPD-IAM login starts and callbacks allowed per client address within auth.login_window_s
    sandbox_token_lifetime_s: int = 3600  # lifetime of the sandbox ID tokens of the built-in simulator

    @property
    def enabled(self) -> bool:
        """IAM login is offered once an issuer and the panel's client id are configured."""
        return bool(self.issuer and self.client_id)


@dataclass(frozen=True)
class PandaSettings:
    url: str = ""  # PanDA server base URL, e.g. https://pandaserver.jinr.ru:25443 ("" = built-in simulator)
    vo: str = "spd"  # virtual organisation sent in the Origin header
    role: str = "production"  # role sent in the Origin header (Origin: <vo>.<role>)
    transport: str = "auto"  # "auto" (probe /api/v1, then legacy), "v1" or "legacy" (/server/panda/)
    connect_timeout_s: float = 5.0  # seconds to establish a connection to PanDA
    read_timeout_s: float = 30.0  # seconds to wait for a reply; a write that times out is never resent
    retries: int = 2  # extra attempts for reads and for requests PanDA never received
    retry_backoff_s: float = 0.5  # first pause between attempts, doubled on each further attempt
    verify: bool = True  # check PanDA's TLS certificate (false: tests only; every page then shows a warning)
    ca_bundle: str = ""  # CA certificates for PanDA's certificate: a file, or a directory such as /etc/grid-security/certificates ("" = the system store)
    proxy: str = ""  # HTTP(S) proxy for PanDA, e.g. http://proxy.jinr.ru:3128 ("" = direct; *_PROXY env vars are ignored)
    production_group: str = "spd/production"  # IAM group that carries the production role (named in refusals)
    sim_seed: int = 1  # sandbox simulator: seed of lifecycles, sizes and faults
    sim_time_scale: float = 60.0  # sandbox simulator: simulated seconds per real second
    sim_version: str = "1.0"  # sandbox simulator: the panda-server it emulates, "1.0" (API v1) or "0.8" (legacy API only)
    sim_state_path: str = "panda-sim.sqlite3"  # sandbox simulator state: SQLite file (relative = in the instance folder; "" = in memory)


@dataclass(frozen=True)
class TaskSettings:
    step_types: list[str] = field(default_factory=lambda: ["SIM", "RECO"])  # step types offered in forms
    campaign_prefixes: list[str] = field(
        default_factory=lambda: ["", "TEST_S1-"]
    )  # allowed before PROD<yyyy>-<nnn>
    production_prefix: str = "PROD"  # production ids are <campaign prefix><production_prefix><yyyy>-<nnn>
    number_digits: int = 3  # zero-padded digits of the production number
    task_name_pattern: str = "{production}.{step}"  # task names; placeholders {production} {step}
    bunch_suffix: str = ".{n}"  # appended to the names of bunch members 1..N
    dataset_pattern: str = "{scope}.{tag}.{production}.{step}.{version}"  # output dataset names
    tag_strip_regex: str = r"\.V\d+$"  # removed from the exec path's last component to get the physics tag
    scope_regex: str = "[A-Za-z0-9_]+"  # allowed dataset scopes
    default_scope: str = "MC2025_S1"  # scope suggested in new task forms
    cvmfs_roots: list[str] = field(
        default_factory=lambda: ["/cvmfs/spd.jinr.ru/"]
    )  # exec/container paths must be under one
    container_regex: str = r"[^\s]+\.sif"  # container paths must match this (after the CVMFS root check)
    clouds: list[str] = field(default_factory=lambda: ["JINR"])  # clouds offered in task forms
    data_disks: list[str] = field(default_factory=lambda: ["JINR_DATADISK"])  # output destinations offered
    request_id_regex: str = r"[1-9]\d{0,8}"  # well-formed production request ids (spd-requests)
    max_bunch_size: int = 1000  # most tasks one bunch may launch
    template_file: str = ""  # TOML overriding app/panda/templates/taskparams.toml ("" = SPD defaults; relative = instance folder)
    dispatch_deadline_s: float = 600.0  # a background dispatch of one bunch stops after this many seconds
    reconcile_grace_s: float = 900.0  # an unanswered submit not visible in PanDA after this long is reported failed (resendable)


@dataclass(frozen=True)
class Settings:
    instance_dir: Path = Path("instance")  # not a config key: resolved by app.paths
    database_url: str = ""  # SQLAlchemy URL; "" = SQLite file prodpanel.sqlite3 in the instance folder
    secret_key: str = ""  # Flask secret; from PRODPANEL_SECRET_KEY or generated into instance/secret_key
    token_key: bytes = b""  # 32-byte token-encryption key; PRODPANEL_TOKEN_KEY (base64) or instance/token_key
    log_level: str = "INFO"  # DEBUG, INFO, WARNING, ERROR
    server: ServerSettings = field(default_factory=ServerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    iam: IamSettings = field(default_factory=IamSettings)
    panda: PandaSettings = field(default_factory=PandaSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url or f"sqlite:///{self.instance_dir / 'prodpanel.sqlite3'}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

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
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    for key in data:
        if key in _NOT_IN_FILE:
            raise ConfigError(
                f"{key}: may not be set in config.toml; use PRODPANEL_{key.upper()} or the instance file"
            )
    _merge_env(data, env)
    values = _build(Settings, data, prefix="")
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
    return path.read_text().strip()


def _merge_env(data: dict[str, Any], env: typing.Mapping[str, str]) -> None:
    """Overlay PRODPANEL_* variables (as raw strings, typed later) onto the file's data."""
    sections = {f.name for f in dataclasses.fields(Settings) if _is_section(f)}
    for name, raw in env.items():
        if not name.startswith("PRODPANEL_") or name in {
            "PRODPANEL_INSTANCE",
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


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
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
            kwargs[key] = _build(hints[key], value, prefix=f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(f"{prefix}{key}", hints[key], value)
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
    """instance/config.example.toml, generated from the dataclasses above and their trailing comments."""
    import inspect

    def comments(cls: type) -> dict[str, str]:
        found = {}
        for line in inspect.getsource(cls).splitlines():
            name, _, rest = line.strip().partition(":")
            if "#" in rest and name.isidentifier():
                found[name] = rest.split("#", 1)[1].strip()
        return found

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
        notes = comments(cls)
        instance = cls()
        for f in dataclasses.fields(cls):
            if f.name in _NOT_IN_FILE or _is_section(f):
                continue
            lines.append(f"# {notes.get(f.name, '')}".rstrip())
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
            out += ["", *section(f.default_factory, f.name)]
    return "\n".join(out) + "\n"
