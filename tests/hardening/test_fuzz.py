"""No 5xx from input, over every route the app has when the test runs (issue 16 item 1): fixed requests
per route carrying every hostile value somewhere (as an admin; the first also as a viewer), then one
hypothesis-drawn request per route; GET and POST with a valid CSRF token, PanDA being the simulator.
benchmarks/fuzz.py sends each value alone, as both."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import Rule

from tests.hardening.fuzz import Fuzzer, Request, Visitor, report, routes, simulated_panda

EXAMPLES_PER_ROUTE = 1  # after the fixed four: ~600 requests, half a minute on an idle machine


@pytest.fixture
def fuzzer(app):
    app.testing = False  # an exception becomes the 500 a browser gets (and is recorded with its traceback)
    with simulated_panda(app):
        yield Fuzzer(app, [Visitor(app, "admin"), Visitor(app, "viewer")])


@pytest.mark.timeout(900)  # a loaded CI machine is several times slower
def test_every_route_answers_hostile_input_without_5xx(app, fuzzer):
    assert len(routes(app)) > 50  # the url_map was read
    assert {"page", "q", "next", "template_overrides", "cloned_from_task", "until"} <= set(fuzzer.names)
    sent = sum(1 for _ in fuzzer.run())
    for rule, method in routes(app):
        drawn_requests(fuzzer, rule, method)()
    assert sum(fuzzer.statuses.values()) > sent
    assert not fuzzer.failures, f"{len(fuzzer.failures)} route(s) answered 5xx:\n{report(fuzzer)}"


def drawn_requests(fuzzer: Fuzzer, rule: Rule, method: str):
    """A hypothesis test sending EXAMPLES_PER_ROUTE drawn requests to one route and method."""

    @settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.sampled_from(fuzzer.visitors), fuzzer.request_strategy(rule))
    def send(visitor: Visitor, request: Request) -> None:
        fuzzer.send(visitor, rule, method, request)

    return send
