"""Hostile requests against every route of the panel (issue 16 item 1): the values an attacker tries
(huge integers, dates at the ends of the calendar, long and special text, control characters, NUL
bytes, deep JSON) in path variables, in the parameters the code reads and in uploaded files, by GET and
POST (with a valid CSRF token), logged in as an admin and as a viewer.

Routes come from `app.url_map` and parameter names from the source when a run starts, so routes added
later are fuzzed too. Used by tests/hardening/test_fuzz.py (bounded) and benchmarks/fuzz.py.
"""

from __future__ import annotations

import inspect
import io
import random
import re
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from flask import Flask, g, got_request_exception
from flask.testing import FlaskClient
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from werkzeug.routing import Rule
from wtforms.fields.core import UnboundField

from app.auth.models import User
from app.auth.services import create_local_user, set_password
from app.auth.sessions import WebSession
from app.extensions import db
from app.panda.sandbox import attach_sandbox
from pandasim import SimConfig, create_simulator, serve_in_thread
from tests.helpers import csrf_token

APP_DIR = Path(__file__).resolve().parents[2] / "app"
PASSWORD = "fuzz-password-1234"
VISITOR_ADDRESS = "127.0.0.9"  # the visitors' own logins: never throttled by the fuzzed ones

HUGE_IDS = (str(2**63), "9" * 5_000, str(2**64))
SHORT: tuple[str, ...] = (
    str(2**63), str(2**64), str(-(2**63) - 1), "1e309", "-0", "0x10", "1_000", "²", "NaN", "-1", "0",
    "9999-12-31", "0001-01-01", "0000-00-00", "2026-02-30", "99999-01-01", "9999-12-31T23:59:59",
    "", " ", "\x00", "a\x00b", "\r\nSet-Cookie: fuzz=1", "/\r\n/evil.example", "%", "%_%_%",
    "'; DROP TABLE task; --", "<script>alert(1)</script>", "{{7*7}}", "../../../../etc/passwd",
    "//evil.example/", "http://[::1", "javascript:alert(1)", "\u202eevil", "ü" * 100, "\x7f\x1b[2J",
    '{"taskName": "x"}', "null", "true", "[]", "{}", '{"a": [1, {"b": null}]}',
)  # fmt: skip
LONG: tuple[str, ...] = (
    "%_" * 30_000,  # a LIKE pattern SQLite finds too complex
    "x" * 60_000,
    "9" * 5_000,  # beyond int()'s digit limit
    "[" * 5_000 + "]" * 5_000,  # deeper than the parsers' recursion
    '{"a": ' * 5_000 + "1" + "}" * 5_000,
)
HOSTILE = SHORT + LONG
LONG_NAMES = 6
_INT_CONVERTERS = ("IntegerConverter", "IdConverter")
_READ_NAME = re.compile(r"""\.get(?:list)?\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']""")
_LITERAL = re.compile(r"""["']([a-z_][a-z0-9_]*)["']""")
_FORM_CLASS = re.compile(r"\b([A-Z]\w*Form)\b")
_FIELD_NAME = re.compile(r"""^\s*([a-z_][a-z0-9_]*)\s*=\s*\w*Field\(""", re.MULTILINE)
UPLOAD_NAMES = ("manifest", "document", "file")


@contextmanager
def simulated_panda(app: Flask) -> Iterator[None]:
    """The panel's PanDA is the simulator served on loopback, as in sandbox mode: the routes that
    call PanDA, and /healthz, answer as they do in production."""
    running = serve_in_thread(create_simulator(SimConfig(seed=16, time_scale=0.0)))
    attach_sandbox(app, running)
    try:
        yield
    finally:
        running.stop()


def parameter_names() -> list[str]:
    """Every name the code reads from a request or declares as a form field (read from the source, so
    that new views add theirs), plus the usual suspects."""
    names = {"page", "per_page", "next", "q", "id", "ids", "task", "bunch", "after", "user", "since", "until"}
    for path in APP_DIR.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        names.update(_READ_NAME.findall(text))
        names.update(_FIELD_NAME.findall(text))
    return sorted(names - {"csrf_token"})


def route_names(app: Flask, rule: Rule) -> list[str]:
    """The names a route's view reads, most direct first: identifiers quoted in its source, then the
    fields of the forms its module uses (long values go only to a few of these: a request body over
    500 kB makes the test client spool it to a file it never closes)."""
    view = inspect.unwrap(app.view_functions[rule.endpoint])
    direct = sorted(set(_LITERAL.findall(inspect.getsource(view))))
    fields: set[str] = set()
    module = inspect.getmodule(view)
    for form_name in set(_FORM_CLASS.findall(inspect.getsource(module))) if module else ():
        form = getattr(module, form_name, None)
        if isinstance(form, type):
            fields.update(n for n in dir(form) if isinstance(getattr(form, n, None), UnboundField))
    ordered = [*direct, *sorted(fields - set(direct)), "q", "page", "next"]
    return [name for name in dict.fromkeys(ordered) if name != "csrf_token"][:LONG_NAMES]


def routes(app: Flask) -> list[tuple[Rule, str]]:
    """(rule, method) for every route but the static files, GET and POST."""
    found = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint != "static":
            found.extend((rule, method) for method in sorted((rule.methods or set()) & {"GET", "POST"}))
    return found


def build_path(rule: Rule, values: dict[str, str]) -> str:
    """The rule's path with raw (quoted) values in its variables, as an attacker would type it."""
    path = rule.rule
    for name in rule._converters:
        path = re.sub(rf"<(?:[^<>:]+:)?{name}>", quote(values[name], safe=""), path, count=1)
    return path


def int_variables(rule: Rule) -> dict[str, bool]:
    """Variable name -> whether it is an integer variable."""
    return {name: type(conv).__name__ in _INT_CONVERTERS for name, conv in rule._converters.items()}


def hostile_values() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HOSTILE),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.dates().map(str),
        st.text(max_size=40),
        st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=8),
        st.recursive(
            st.none() | st.integers() | st.text(max_size=5),
            lambda inner: st.lists(inner) | st.dictionaries(st.text(max_size=3), inner),
            max_leaves=8,
        ).map(repr),
    )


@dataclass(frozen=True)
class Request:
    path_values: dict[str, str]
    params: dict[str, str]
    upload: str | None = None


class Visitor:
    """A logged-in test client for one role; logs in again (with a new client) when a fuzzed request
    ended its session or changed its account (logout, end sessions, disable, role, password)."""

    def __init__(self, app: Flask, role: str) -> None:
        self.app, self.role, self.username = app, role, f"fuzz-{role}"
        self.user_id = create_local_user(self.username, PASSWORD, role=role).id
        db.session.commit()
        self.log_in()

    def log_in(self) -> None:
        """Put the account back as it was (a fuzzed request may have changed its password, role or
        state) and log in with a new client."""
        user = db.session.get(User, self.user_id)
        assert user is not None
        set_password(user, PASSWORD)
        db.session.execute(update(User).where(User.id == self.user_id).values(role=self.role, active=True))
        db.session.commit()
        self.client: FlaskClient = self.app.test_client()
        g.pop("csrf_token", None)
        response = self.client.post(
            "/login",
            data={"csrf_token": csrf_token(self.client), "username": self.username, "password": PASSWORD},
            environ_base={"REMOTE_ADDR": VISITOR_ADDRESS},
        )
        assert response.status_code == 302, f"{self.role} could not log in again: {response.status_code}"
        g.pop("csrf_token", None)
        self.token = csrf_token(self.client, "/")

    def still_in(self) -> bool:
        db.session.expire_all()
        user = db.session.get(User, self.user_id)
        sessions = db.session.scalar(select(func.count()).where(WebSession.user_id == self.user_id))
        db.session.rollback()
        return bool(user and user.active and user.role == self.role and not user.must_change_password and sessions)


@dataclass
class Fuzzer:
    """Sends hostile requests and counts the answers; keeps one traceback per route that gave a 5xx."""

    app: Flask
    visitors: list[Visitor]
    names: list[str] = field(default_factory=parameter_names)
    statuses: Counter = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)  # "METHOD rule as ROLE" -> what and traceback

    def __post_init__(self) -> None:
        self._last_error = ""
        got_request_exception.connect(self._remember, self.app)

    def _remember(self, sender: Flask, exception: BaseException, **extra: object) -> None:
        self._last_error = "".join(traceback.format_exception(exception))[-3000:]

    def send(self, visitor: Visitor, rule: Rule, method: str, request: Request) -> int:
        path = build_path(rule, request.path_values)
        self._last_error = ""
        g.pop("csrf_token", None)
        if method == "GET":
            response = visitor.client.get(path, query_string=request.params)
        else:
            data: dict[str, object] = {**request.params, "csrf_token": visitor.token}
            if request.upload is not None:
                data.update({name: (io.BytesIO(request.upload.encode()), "fuzz.json") for name in UPLOAD_NAMES})
            response = visitor.client.post(path, data=data)
        status = response.status_code
        response.close()
        self.statuses[status] += 1
        if status >= 500:
            self.failures.setdefault(
                f"{method} {rule.rule} as {visitor.role}",
                f"{status} for {path[:120]!r} {_short(request.params)}\n{self._last_error}",
            )
        if method == "POST":
            for someone in self.visitors:
                if not someone.still_in():
                    someone.log_in()
        return status

    def sample_requests(self, rule: Rule, names: list[str]) -> list[Request]:
        """Three requests that together put every hostile value somewhere: huge ids in the path (and
        short hostile values in every parameter), then short values again shifted, and the long ones in
        the names the view reads (with a deep upload)."""
        variables = int_variables(rule)
        short = {name: SHORT[i % len(SHORT)] for i, name in enumerate(self.names)}
        shifted = {name: SHORT[(i + 7) % len(SHORT)] for i, name in enumerate(self.names)}
        long = {name: LONG[i % len(LONG)] for i, name in enumerate(names)}
        huge = {n: (HUGE_IDS[0] if is_int else "\r\n\x00%") for n, is_int in variables.items()}
        plain = {n: ("1" if is_int else "x") for n, is_int in variables.items()}
        return [Request(huge, short, SHORT[-1]), Request(plain, shifted, LONG[-1]), Request(plain, long, LONG[3])]

    def full_requests(self, rule: Rule, names: list[str]) -> Iterator[Request]:
        """Each hostile value on its own: in every path variable (an integer one gets 1 when the value
        is not a number) and in every parameter name (a long value only in the view's names)."""
        variables = int_variables(rule)
        for value in HOSTILE:
            numeric = value.lstrip("-").isdigit()
            path_values = {n: value if (numeric or not is_int) and value else "1" for n, is_int in variables.items()}
            yield Request(path_values, dict.fromkeys(self.names if value in SHORT else names, value), value)
        for huge in HUGE_IDS:
            yield Request({n: huge if is_int else "1" for n, is_int in variables.items()}, {})

    def run(self, full: bool = False, only: list[tuple[Rule, str]] | None = None) -> Iterator[int]:
        """Every route and method: the three sample requests as the first visitor (the admin, who
        gets furthest) and the first of them as the others; or (full) each value alone, as everyone."""
        for rule, method in routes(self.app) if only is None else only:
            names = route_names(self.app, rule)
            if full:
                plan = [(visitor, request) for request in self.full_requests(rule, names) for visitor in self.visitors]
            else:
                sample = self.sample_requests(rule, names)
                plan = [(self.visitors[0], request) for request in sample]
                plan += [(visitor, sample[0]) for visitor in self.visitors[1:]]
            for visitor, request in plan:
                yield self.send(visitor, rule, method, request)

    def random_request(self, rule: Rule, rng: random.Random) -> Request:
        """Like request_strategy, from a seeded generator (the benchmark runs outside hypothesis)."""

        def value() -> str:
            roll = rng.random()
            if roll < 0.6:
                return rng.choice(HOSTILE)
            if roll < 0.8:
                return str(rng.randint(-(2**70), 2**70))
            return "".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(0, 30)))

        path = {n: (rng.choice(["1", "2", value()]) if is_int else value() or "x") for n, is_int in int_variables(rule).items()}
        params = {rng.choice(self.names): value() for _ in range(rng.randint(0, 6))}
        return Request(path, params, value() if rng.random() < 0.3 else None)

    def request_strategy(self, rule: Rule) -> st.SearchStrategy[Request]:
        """Random path values, up to 6 random names with random hostile values, maybe an upload."""
        variables = int_variables(rule)
        path = st.fixed_dictionaries(
            {n: (st.sampled_from(["1", "2"]) | hostile_values()) if is_int else hostile_values().filter(bool)
             for n, is_int in variables.items()}
        )  # fmt: skip
        params = st.dictionaries(st.sampled_from(self.names), hostile_values(), max_size=6)
        return st.builds(Request, path, params, st.none() | hostile_values())


def _short(params: dict[str, str]) -> str:
    odd = {k: v for k, v in params.items() if v}
    return repr({k: (v if len(v) < 40 else f"{v[:20]}…({len(v)} chars)") for k, v in list(odd.items())[:8]})


def report(fuzzer: Fuzzer) -> str:
    lines = [f"{count:>7} x {status}" for status, count in sorted(fuzzer.statuses.items())]
    lines += [f"\n--- {key}\n{trace}" for key, trace in sorted(fuzzer.failures.items())]
    return "\n".join(lines)
