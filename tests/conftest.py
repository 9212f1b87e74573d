"""Shared fixtures: a Lab on each backend (a temporary SQLite file and a fresh PostgreSQL
database, see tests/pg.py), and a recording OpenAI-compatible fake.

The fake is a real ``OpenAIProvider`` whose httpx2 transport is a ``MockTransport``: the request
goes through the openai SDK exactly as it would to a server, and the test sees the JSON body.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

import promptlab as pl

pytest_plugins = ["tests.pg"]

BACKENDS = ["sqlite", "postgresql"]


class RecordingServer:
    """An OpenAI-compatible endpoint in a function: records bodies, answers by ``reply``."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.status = 200
        self.reply = lambda body: "echo: " + _last_user_text(body)

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.status != 200:
            return httpx2.Response(self.status, json={"error": {"message": "simulated failure",
                                                                "type": "server_error"}})
        text = self.reply(body)
        usage = {"prompt_tokens": 11, "completion_tokens": len(text.split()),
                 "total_tokens": 11 + len(text.split())}
        if body.get("stream"):
            chunks = [{"id": "c", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                       "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                      for piece in _pieces(text)]
            chunks.append({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            chunks.append({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                           "choices": [], "usage": usage})
            sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
            return httpx2.Response(200, content=sse.encode(), headers={"content-type": "text/event-stream"})
        return httpx2.Response(200, json={
            "id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": usage})


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def _last_user_text(body: dict) -> str:
    for message in reversed(body["messages"]):
        if message["role"] == "user":
            content = message["content"]
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
            return content
    return ""


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A fresh store URL on each backend (PostgreSQL is started only when a test needs it)."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'lab.db'}"


@pytest.fixture
def lab(db_url):
    with pl.Lab(db_url) as the_lab:
        yield the_lab


@pytest.fixture
def server():
    return RecordingServer()


@pytest.fixture
def rec_lab(lab, server):
    """A lab with provider ``rec`` answering through ``server`` (no retries)."""
    lab.providers.register("rec", base_url="http://rec.local/v1", api_key="test-key", max_retries=0,
                           http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(server.handler)))
    return lab


def sim_requests(lab) -> int:
    return lab.providers.sim_app.state.stats.requests


@contextlib.contextmanager
def served_simulator(*options: str):
    """``promptlab sim serve`` in a subprocess on a free port, with CLI ``options``
    (``"--latency-ms", "200"``); yields ``(base_url_without_v1, process)``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = Path(sys.executable).with_name("promptlab")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "promptlab.cli"]
    proc = subprocess.Popen(command + ["sim", "serve", "--host", "127.0.0.1", "--port", str(port), *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"promptlab sim serve exited early: {proc.stderr.read()}")
            try:
                if httpx2.get(base + "/v1/models", timeout=0.5).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("promptlab sim serve did not answer /v1/models within 15 s")
            time.sleep(0.05)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
