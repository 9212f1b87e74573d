"""The fault-test servers in tests/faulty_servers.py really misbehave as documented.

Raw clients only (httpx2, the openai SDK over httpx2, plain sockets); short intervals, and timing
is asserted only with generous bounds.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx2
import openai
import pytest

from tests.faulty_servers import FaultyServer

BODY = {"model": "m-1", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(autouse=True)
def no_lingering_threads():
    """Every test leaves the thread count as it found it: ``with`` joins the server thread."""
    before = threading.active_count()
    yield
    deadline = time.monotonic() + 2.0
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before, [t.name for t in threading.enumerate()]
    assert not [t for t in threading.enumerate() if t.name.startswith("FaultyServer")]


def raw_request(port: int, body: dict = BODY, path: str = "/v1/chat/completions") -> socket.socket:
    """Open a socket and send one complete HTTP/1.1 POST; the caller reads the answer."""
    payload = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    sock.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: test\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
    return sock


def read_answer(sock: socket.socket) -> bytes:
    """Read one HTTP answer framed by Content-Length (headers and body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(4096)
        assert piece, data
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        piece = sock.recv(4096)
        assert piece, data
        body += piece
    return head + b"\r\n\r\n" + body


# ------------------------------------------------------------------------------------------ ok

def test_ok_answers_valid_json_and_counts():
    with FaultyServer("ok") as srv:
        assert srv.base_url == f"http://127.0.0.1:{srv.port}/v1"
        with httpx2.Client(base_url=srv.base_url, timeout=5) as client:
            response = client.post("/chat/completions", json=BODY)
            missing = client.post("/nope", json=BODY)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        data = response.json()
        assert data["object"] == "chat.completion" and data["model"] == "m-1"
        assert data["choices"][0]["message"] == {"role": "assistant", "content": "ok"}
        assert data["choices"][0]["finish_reason"] == "stop"
        assert data["usage"] == {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        assert missing.status_code == 404
        assert srv.requests == 1  # the 404 is not a chat-completion request
        assert len(srv.request_times) == 1 and abs(srv.request_times[0] - time.time()) < 5
        assert srv.max_in_flight == 1 and srv.in_flight == 0


def test_ok_through_the_openai_sdk_plain_and_streamed():
    with FaultyServer("ok") as srv, httpx2.Client() as http:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", http_client=http, max_retries=0)
        reply = client.chat.completions.create(model="m-1", messages=BODY["messages"])
        assert reply.choices[0].message.content == "ok" and reply.usage.total_tokens == 2

        chunks = list(client.chat.completions.create(model="m-1", messages=BODY["messages"],
                                                     stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ok"
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert chunks[-1].usage.total_tokens == 2
        assert all(c.object == "chat.completion.chunk" and c.model == "m-1" for c in chunks)
        assert srv.requests == 2


def test_ok_stream_is_sse_ending_with_done():
    with FaultyServer("ok") as srv, httpx2.Client(base_url=srv.base_url, timeout=5) as client:
        with client.stream("POST", "/chat/completions", json={**BODY, "stream": True}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in response.iter_lines() if line]
        assert all(line.startswith("data: ") for line in lines)
        assert lines[-1] == "data: [DONE]"
        last = json.loads(lines[-2].removeprefix("data: "))
        assert last["choices"][0]["finish_reason"] == "stop" and last["usage"]["total_tokens"] == 2


def test_latency_delays_the_answer_and_concurrency_is_counted():
    with FaultyServer("ok", latency=0.5) as srv:
        started = time.monotonic()
        socks = [raw_request(srv.port) for _ in range(3)]  # three requests in flight at once
        for sock in socks:
            with sock:
                answer = read_answer(sock)
                assert answer.startswith(b"HTTP/1.1 200 OK") and b'"chat.completion"' in answer
        elapsed = time.monotonic() - started
        assert 0.5 <= elapsed < 5
        assert srv.requests == 3 and srv.max_in_flight == 3
        deadline = time.monotonic() + 2
        while srv.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.in_flight == 0


# ------------------------------------------------------------------------------------- trickle

@pytest.mark.parametrize("stream", [False, True])
def test_trickle_sends_first_bytes_but_not_the_body_in_time(stream):
    with FaultyServer("trickle", interval=0.05) as srv:
        # A per-read timeout far above the byte interval never fires ...
        with httpx2.Client(base_url=srv.base_url, timeout=httpx2.Timeout(5, read=0.5)) as client:
            with client.stream("POST", "/chat/completions", json={**BODY, "stream": stream}) as response:
                assert response.status_code == 200
                length = int(response.headers["content-length"])
                received = b""
                deadline = time.monotonic() + 0.3
                for piece in response.iter_raw():
                    received += piece
                    if time.monotonic() >= deadline:
                        break
        # ... yet after 0.3 s only a few bytes of the (valid) body have arrived.
        assert 0 < len(received) < length
        full = srv._body("m-1", stream)[0]
        assert len(full) == length and full.startswith(received)
        assert srv.requests == 1


# ----------------------------------------------------------------------------------- keepalive

@pytest.mark.parametrize("stream", [False, True])
def test_keepalive_sends_only_comments(stream):
    with FaultyServer("keepalive", interval=0.1) as srv:
        with httpx2.Client(base_url=srv.base_url, timeout=httpx2.Timeout(5, read=1.0)) as client:
            with client.stream("POST", "/chat/completions", json={**BODY, "stream": stream}) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                lines = []
                deadline = time.monotonic() + 0.8
                for line in response.iter_lines():
                    lines.append(line)
                    if time.monotonic() >= deadline:
                        break
        events = [line for line in lines if line]
        assert len(events) >= 3
        assert set(events) == {": keep-alive"}
        assert not any(line.startswith("data:") for line in lines)


# ---------------------------------------------------------------------------------------- hang

def test_hang_reads_the_request_and_never_answers():
    with FaultyServer("hang") as srv, httpx2.Client(base_url=srv.base_url, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(httpx2.ReadTimeout):
            client.post("/chat/completions", json=BODY)
        assert 0.25 <= time.monotonic() - started < 3
        assert srv.requests == 1


def test_exit_drops_hung_connections_promptly():
    with FaultyServer("hang") as srv:
        sock = raw_request(srv.port)
        deadline = time.monotonic() + 2
        while srv.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.in_flight == 1 and srv.requests == 1
        started = time.monotonic()
    assert time.monotonic() - started < 2  # leaving `with` did not wait for the hung request
    with sock:
        try:
            assert sock.recv(100) == b""  # closed without a single byte of answer
        except ConnectionResetError:
            pass


# ----------------------------------------------------------------------------------- die_after

def test_die_after_answers_n_then_refuses():
    with FaultyServer("die_after", n=2) as srv:
        with httpx2.Client(base_url=srv.base_url, timeout=2) as client:
            for _ in range(2):
                assert client.post("/chat/completions", json=BODY).json()["object"] == "chat.completion"
            with pytest.raises(httpx2.ConnectError):
                client.post("/chat/completions", json=BODY)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
        deadline = time.monotonic() + 2
        while not srv.dead and time.monotonic() < deadline:  # set just after the last answer
            time.sleep(0.01)
        assert srv.requests == 2 and srv.dead


def test_die_after_resets_other_open_connections():
    with FaultyServer("die_after", n=1) as srv:
        idle = socket.create_connection(("127.0.0.1", srv.port), timeout=2)  # open, no request yet
        deadline = time.monotonic() + 2
        while len(srv._conns) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        with raw_request(srv.port) as sock:
            answer = read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in answer
        with idle:
            try:
                assert idle.recv(100) == b""
            except ConnectionResetError:
                pass
        assert srv.dead
