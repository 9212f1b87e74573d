"""Call API: HTTP targets, request builders that cannot leave them, response handling, failures.

The API is an ``httpx2.MockTransport`` that records every request (so "nothing was sent" is a
count, not a timing), plus one real Starlette app served by uvicorn on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx2
import pytest

from promptlab.errors import (
    AuthenticationError,
    ConfigError,
    InvalidInputError,
    ProviderServerError,
    ProviderTimeoutError,
)
from promptlab.flows import CallAPI, ExecuteLogic, HttpTarget, Rule, send_message
from promptlab.flows.http import prepare_request, resolve_path, response_dict


class FakeAPI:
    """Records requests; answers from ``routes`` (path -> (status, json or text))."""

    def __init__(self):
        self.requests: list[httpx2.Request] = []
        self.routes: dict[str, tuple[int, object]] = {}
        self.raise_error: Exception | None = None

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if self.raise_error is not None:
            raise self.raise_error
        status, body = self.routes.get(request.url.path, (404, {"error": "no route"}))
        if isinstance(body, str):
            return httpx2.Response(status, text=body)
        return httpx2.Response(status, json=body)


@pytest.fixture
def api():
    return FakeAPI()


@pytest.fixture
def crm(api):
    return HttpTarget("crm", "https://crm.example.com/api/v1", headers={"Authorization": "Bearer s3cret"},
                      params={"tenant": "t1"}, transport=httpx2.MockTransport(api))


def order_request(context):
    return {"method": "GET", "path": f"/orders/{context['derivedData']['lastCustomerMessage']}",
            "params": {"fields": "status"}, "headers": {"Accept": "application/json"}}


def order_response(response, context):
    return {"actions": [send_message(f"Order status: {response['body']['status']}")]}


def report(context):
    e = context["error"]
    return {"actions": [send_message(f"{e['type']}|{e.get('statusCode')}|{e['errorClass']}")]}


# -- pure: paths stay inside the target -------------------------------------------------------


@pytest.mark.parametrize("path, url", [
    (None, "https://crm.example.com/api/v1"),
    ("", "https://crm.example.com/api/v1"),
    ("/orders/42", "https://crm.example.com/api/v1/orders/42"),
    ("orders/42/", "https://crm.example.com/api/v1/orders/42/"),
    ("a/./b/../c", "https://crm.example.com/api/v1/a/c"),
    ("users/@me", "https://crm.example.com/api/v1/users/@me"),
    ("search/a b", "https://crm.example.com/api/v1/search/a%20b"),
])
def test_paths_resolve_under_the_base_url(crm, path, url):
    assert str(resolve_path(crm, path)) == url


@pytest.mark.parametrize("path, why", [
    ("https://evil.example/x", "absolute URL"),
    ("http:evil.example", "absolute URL"),
    ("javascript:alert(1)", "absolute URL"),
    ("//evil.example/x", "another host"),
    ("../admin", "climbs above"),
    ("/a/../../admin", "climbs above"),
    ("%2e%2e/admin", "percent-encoded"),
    ("%2F%2Fevil.example", "percent-encoded"),
    ("..\\admin", "backslash"),
    ("orders?id=1", "params"),
    ("orders#frag", "params"),
    ("orders/\r\nHost: evil", "control characters"),
])
def test_paths_that_leave_the_target_are_refused(crm, path, why):
    with pytest.raises(InvalidInputError, match=why) as info:
        resolve_path(crm, path)
    assert "HTTP target 'crm'" in str(info.value)


def test_request_shape_is_checked(crm):
    ok = prepare_request(crm, {"method": "post", "path": "/x", "body": {"a": 1}})
    assert ok.method == "POST" and ok.body == {"a": 1}
    with pytest.raises(InvalidInputError, match=r"unknown key\(s\) \['url'\].*belongs to the HTTP target"):
        prepare_request(crm, {"url": "https://evil.example/"})
    with pytest.raises(InvalidInputError, match="method must be one of"):
        prepare_request(crm, {"method": "TRACE"})
    with pytest.raises(InvalidInputError, match="header 'Authorization' is not allowed"):
        prepare_request(crm, {"headers": {"Authorization": "Bearer mine"}})
    with pytest.raises(InvalidInputError, match="header 'Host' is not allowed"):
        prepare_request(crm, {"headers": {"Host": "evil.example"}})
    with pytest.raises(InvalidInputError, match="must return a dict"):
        prepare_request(crm, "GET /")


def test_targets_are_validated_and_hide_credentials():
    target = HttpTarget("t", "https://x.example/", headers={"Authorization": "Bearer s3cret"})
    assert "s3cret" not in repr(target)
    with pytest.raises(ConfigError, match="absolute http"):
        HttpTarget("t", "ftp://x.example")
    with pytest.raises(ConfigError, match="credentials in headers"):
        HttpTarget("t", "https://user:pw@x.example")
    with pytest.raises(ConfigError, match="query or fragment"):
        HttpTarget("t", "https://x.example/?key=1")
    with pytest.raises(ConfigError, match="timeout"):
        HttpTarget("t", "https://x.example", timeout=0)


def test_response_dict_parses_json_or_keeps_text():
    assert response_dict(httpx2.Response(201, json={"a": 1}))["body"] == {"a": 1}
    text = response_dict(httpx2.Response(200, text="plain words"))
    assert text["statusCode"] == 200 and text["body"] == "plain words"
    assert response_dict(httpx2.Response(200, text="{not json"))["body"] == "{not json"


# -- the behavior -----------------------------------------------------------------------------


def test_call_api_success_with_code(lab, api, crm):
    api.routes["/api/v1/orders/42"] = (200, {"status": "shipped"})
    seen_contexts = []

    def remember(context):
        seen_contexts.append(context)
        return None

    from promptlab.flows import CallFunction

    flow = lab.flows.create("f", [
        CallAPI("lookup", target="crm", request_builder=order_request, response_handler=order_response,
                typing_indicator=True, on_success="after"),
        CallFunction("after", function=remember),
    ], targets=[crm])

    result = flow.run_turn("c1", "42")

    assert result.actions[0] == {"action": "startTyping"}
    assert result.answer == "Order status: shipped"
    [request] = api.requests
    assert request.url.host == "crm.example.com" and request.url.path == "/api/v1/orders/42"
    assert dict(request.url.params) == {"fields": "status", "tenant": "t1"}
    assert request.headers["authorization"] == "Bearer s3cret"  # added by the target
    [entry] = result.context["apiResults"]
    assert entry["targetId"] == "crm" and entry["request"] == order_request(result.context)
    assert entry["response"] == {"statusCode": 200, "headers": entry["response"]["headers"],
                                 "body": {"status": "shipped"}}
    # credentials never reach functions, results, the trace or the store
    assert "s3cret" not in json.dumps(seen_contexts) + json.dumps(result.context)
    assert "s3cret" not in json.dumps(result.trace.to_list())
    assert "s3cret" not in lab.flows.turns().to_json(date_format="iso")


def test_api_results_accumulate_in_order_and_clear_per_turn(lab, api, crm):
    api.routes["/api/v1/orders/1"] = (200, {"status": "a"})
    api.routes["/api/v1/orders/2"] = (200, {"status": "b"})

    def second(context):
        return {"method": "GET", "path": "/orders/2"}

    flow = lab.flows.create("f", [
        CallAPI("one", target="crm", request_builder=lambda context: {"path": "/orders/1"}, on_success="two"),
        CallAPI("two", target="crm", request_builder=second),
    ], targets=[crm])
    first = flow.run_turn("c1", "x")
    assert [r["response"]["body"]["status"] for r in first.context["apiResults"]] == ["a", "b"]
    again = flow.run_turn("c1", "y")
    assert len(again.context["apiResults"]) == 2 and len(api.requests) == 4


def test_request_builder_cannot_reach_another_host(lab, api, crm):
    # The customer's message becomes the path: whatever it says, only the target can be reached.
    attempts = ["https://evil.example/steal", "//evil.example/steal", "../../../steal", "%2e%2e/steal",
                "http:evil.example", "a/../../steal"]
    flow = lab.flows.create("f", [
        CallAPI("call", target="crm", on_fail=report,
                request_builder=lambda context: {"path": context["derivedData"]["lastCustomerMessage"]}),
    ], targets=[crm])
    for i, path in enumerate(attempts):
        result = flow.run_turn(f"c{i}", path)
        assert result.answer == "blocked|None|InvalidInputError", path
        assert result.trace.of("blocked")
    assert api.requests == []  # nothing was ever sent
    api.routes["/api/v1/@evil.example"] = (200, {"ok": True})
    flow.run_turn("c-ok", "@evil.example")  # userinfo-looking text stays a path segment
    assert [r.url.host for r in api.requests] == ["crm.example.com"]


def test_unhandled_escape_attempt_raises(lab, api, crm):
    flow = lab.flows.create("f", [CallAPI("call", target="crm",
                                          request_builder=lambda context: {"path": "https://evil.example/"})],
                            targets=[crm])
    with pytest.raises(InvalidInputError, match="absolute URL"):
        flow.run_turn("c1", "x")
    assert api.requests == []


def test_targets_must_be_configured_on_the_flow(lab, crm):
    with pytest.raises(ConfigError, match="unknown HTTP target 'billing'; configured: \\['crm'\\]"):
        lab.flows.create("f", [CallAPI("call", target="billing", request_builder=order_request)], targets=[crm])


def test_non_2xx_status_runs_on_fail_with_status_code(lab, api, crm):
    api.routes["/api/v1/orders/9"] = (503, {"error": "down"})
    flow = lab.flows.create("f", [CallAPI("call", target="crm", request_builder=order_request,
                                          response_handler=order_response, on_fail=report,
                                          on_success=send_message("unreachable"))], targets=[crm])
    result = flow.run_turn("c1", "9")
    assert result.answer == "http_status|503|ProviderServerError"
    assert result.context["apiResults"][0]["response"]["statusCode"] == 503  # still accumulated


def test_failures_without_on_fail_raise_promptlab_errors(lab, api, crm):
    api.routes["/api/v1/orders/1"] = (401, {"error": "who are you"})
    flow = lab.flows.create("f", [CallAPI("call", target="crm", request_builder=order_request)], targets=[crm])
    with pytest.raises(AuthenticationError, match="GET https://crm.example.com/api/v1/orders/1 answered 401"):
        flow.run_turn("c1", "1")
    api.routes["/api/v1/orders/2"] = (500, "oops")
    with pytest.raises(ProviderServerError):
        flow.run_turn("c1", "2")


def test_timeouts_and_connection_errors_run_on_fail(lab, api, crm):
    flow = lab.flows.create("f", [CallAPI("call", target="crm", request_builder=order_request, on_fail=report,
                                          timeout=0.5)], targets=[crm])
    api.raise_error = httpx2.ReadTimeout("slow")
    assert flow.run_turn("c1", "1").answer == "timeout|None|ProviderTimeoutError"
    api.raise_error = httpx2.ConnectError("refused")
    assert flow.run_turn("c2", "1").answer == "connection|None|ProviderConnectionError"
    assert len(api.requests) == 2


def test_response_handler_errors_run_on_fail(lab, api, crm):
    api.routes["/api/v1/orders/1"] = (200, "not json at all")
    flow = lab.flows.create("f", [CallAPI("call", target="crm", request_builder=order_request,
                                          response_handler=order_response, on_fail=report)], targets=[crm])
    assert flow.run_turn("c1", "1").answer == "function|None|TypeError"


def test_request_builder_errors_run_on_fail_without_sending(lab, api, crm):
    def broken(context):
        return {"method": "GET", "path": "/x", "headers": {"Authorization": "mine"}}

    flow = lab.flows.create("f", [CallAPI("call", target="crm", request_builder=broken, on_fail=report)],
                            targets=[crm])
    assert flow.run_turn("c1", "1").answer == "function|None|InvalidInputError"
    assert api.requests == []


def test_without_code_the_context_is_posted_and_actions_come_back(lab, api, crm):
    api.routes["/api/v1/assistant"] = (200, {"actions": [{"action": "sendMessage", "message": {"text": "from api"}}]})
    flow = lab.flows.create("f", [CallAPI("call", target="crm", path="/assistant")], targets=[crm])
    result = flow.run_turn("c1", "hello")
    assert result.answer == "from api"
    [request] = api.requests
    body = json.loads(request.content)
    assert request.method == "POST" and body["derivedData"]["lastCustomerMessage"] == "hello"
    assert "botSession" not in body and result.context["apiResults"] == []  # no accumulation without code


def test_wait_for_customer_response_rests_at_the_call(lab, api, crm):
    api.routes["/api/v1/orders/1"] = (200, {"status": "packed"})
    flow = lab.flows.create("f", [
        ExecuteLogic("start", rules="lookup"),
        CallAPI("lookup", target="crm", request_builder=order_request, response_handler=order_response,
                wait_for_response=True),
    ], targets=[crm])
    first = flow.run_turn("c1", "1")
    assert first.location == "lookup" and first.trace.behaviors == ["start", "lookup"]
    second = flow.run_turn("c1", "1")
    assert second.trace.behaviors == ["lookup"]  # resumed where it waited


# -- a real server on loopback -------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_server():
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def order(request):
        return JSONResponse({"status": f"order {request.path_params['id']} is on its way",
                             "auth": request.headers.get("authorization")})

    app = Starlette(routes=[Route("/api/orders/{id}", order)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/api"
    server.should_exit = True
    thread.join(timeout=10)


def test_call_api_against_a_local_http_server(lab, live_server):
    target = HttpTarget("orders", live_server, headers={"Authorization": "Bearer live"})

    def handle(response, context):
        assert response["body"]["auth"] == "Bearer live"
        return {"actions": [send_message(response["body"]["status"])]}

    flow = lab.flows.create("live", [CallAPI("call", target="orders", request_builder=order_request,
                                             response_handler=handle)], targets=[target])
    assert flow.run_turn("c1", "77").answer == "order 77 is on its way"


def test_call_api_timeout_against_a_server_that_does_not_answer(lab):
    # A listening socket that never accepts: the connection waits until the client gives up.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)
    port = sock.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))  # fill the backlog
    try:
        target = HttpTarget("slow", f"http://127.0.0.1:{port}", timeout=0.2)
        flow = lab.flows.create("slow", [CallAPI("call", target="slow", request_builder=order_request,
                                                 on_fail=Rule("error.type in ['timeout', 'connection']",
                                                              then=send_message("gave up")))],
                                targets=[target])
        assert flow.run_turn("c1", "1").answer == "gave up"
    finally:
        filler.close()
        sock.close()


def test_timeout_error_type_without_handler(lab, api, crm):
    api.raise_error = httpx2.ConnectTimeout("slow connect")
    flow = lab.flows.create("f", [CallAPI("call", target="crm", request_builder=order_request)], targets=[crm])
    with pytest.raises(ProviderTimeoutError, match="timed out"):
        flow.run_turn("c1", "1")
