"""The body size limit middleware, driven as a plain ASGI app."""

from __future__ import annotations

import httpx2
import pytest

from promptlab.gateway.limits import BodyLimit


def echo_app():
    seen = {"calls": 0}

    async def app(scope, receive, send):
        seen["calls"] += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})

    return app, seen


async def post(app, content, headers=None):
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
        return await c.post("/", content=content, headers=headers)


async def test_bodies_up_to_the_limit_reach_the_app_whole():
    inner, seen = echo_app()
    r = await post(BodyLimit(inner, max_bytes=100), b"x" * 100)
    assert (r.status_code, r.text, seen["calls"]) == (200, "100", 1)


async def test_a_declared_length_over_the_limit_is_refused_without_calling_the_app():
    inner, seen = echo_app()
    r = await post(BodyLimit(inner, max_bytes=100), b"x" * 101)
    assert r.status_code == 413 and seen["calls"] == 0
    assert r.json()["error"] == {"type": "payload_too_large",
                                 "message": "request body too large (101 bytes): the limit is 100 bytes"}


async def test_a_chunked_body_is_counted_as_it_arrives():
    inner, seen = echo_app()

    async def chunks():
        for _ in range(5):
            yield b"x" * 30

    r = await post(BodyLimit(inner, max_bytes=100), chunks())
    assert r.status_code == 413 and seen["calls"] == 0

    async def small():
        for _ in range(3):
            yield b"x" * 30

    r = await post(BodyLimit(inner, max_bytes=100), small())
    assert (r.status_code, r.text) == (200, "90")


async def test_a_bad_content_length_is_400():
    inner, _ = echo_app()
    limited = BodyLimit(inner, max_bytes=100)
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await limited({"type": "http", "method": "POST", "headers": [(b"content-length", b"ten")]}, receive, send)
    assert sent[0]["status"] == 400


async def test_gets_pass_through_and_the_limit_must_be_positive():
    inner, seen = echo_app()
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=BodyLimit(inner, 1)), base_url="http://t") as c:
        assert (await c.get("/")).status_code == 200
    with pytest.raises(ValueError):
        BodyLimit(inner, 0)
