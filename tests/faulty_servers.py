"""Deliberately misbehaving OpenAI-compatible HTTP servers on 127.0.0.1, for fault tests.

Why: the in-process simulator (an ASGI app behind ``LiveASGITransport``) answers well or fails
cleanly, but it cannot reproduce what breaks timeouts, deadlines and circuit breakers in the
field: a server that trickles its body one byte at a time (every read succeeds, so a per-read
timeout never fires, yet the request never ends), one that sends only SSE keep-alive comments
forever, one that accepts a request and never answers, and one that dies after a few answers so
later connects are refused. These need a real socket, so each ``FaultyServer`` is a tiny HTTP/1.1
server written with the standard library only (asyncio, no framework), running its own event
loop in a background daemon thread.

Usage::

    with FaultyServer("trickle", interval=0.05) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x")
        ...
        assert srv.requests == 1

It answers ``POST /v1/chat/completions`` (JSON body with ``model``, ``messages`` and optionally
``"stream": true``); any other path gets a 404 JSON error, a body that is not JSON a 400. Modes:

``"ok"``
    A valid Chat Completions answer (content ``"ok"``), after ``latency`` seconds.
    With ``stream: true``: chunked SSE ``data: {chunk}`` events, the last chunk with
    ``finish_reason: "stop"`` and ``usage``, then ``data: [DONE]``.
``"trickle"``
    A valid 200 answer with ``Content-Length`` (for streams, the same SSE bytes as "ok"), but the
    body is written one byte at a time, ``interval`` seconds apart (default 1.0).
``"keepalive"``
    200 headers with ``Content-Type: text/event-stream`` (chunked framing), then only
    ``: keep-alive\\n\\n`` comment lines every ``interval`` seconds (default 0.5), forever, never
    a ``data:`` line; for streaming and non-streaming requests alike.
``"hang"``
    Reads the request and never answers; the connection stays open until the client closes it.
``"die_after"``
    Answers the first ``n`` requests (default 5) validly (after ``latency``), then dies. The
    listening socket closes as soon as the ``n``-th request is received (before any answer to it
    goes out), so later connects are refused; answers written from then on carry ``Connection:
    close``; once the first ``n`` are answered every other open connection is reset. A request
    beyond the ``n``-th on an already open connection is reset, unanswered (a client reusing an
    idle keep-alive connection at that moment sees a reset, not a refused connect). ``n=0``
    refuses from the start.

Counters (thread-safe, readable from the test thread): ``requests`` (chat-completion requests
whose headers were received), ``request_times`` (a copy of the ``time.time()`` of each request
start), ``in_flight`` and ``max_in_flight`` (requests received and not yet finished).

Leaving the ``with`` block stops the loop, resets every connection (so a client hung on the
server sees the connection drop instead of hanging teardown) and joins the thread.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from typing import Any

__all__ = ["FaultyServer", "MODES"]

MODES = ("ok", "trickle", "keepalive", "hang", "die_after")
_DEFAULT_INTERVAL = {"trickle": 1.0, "keepalive": 0.5}
_MAX_HEADER_BYTES = 64 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


class _Close(Exception):
    """End this connection (client gone, bad framing, or the server is dying)."""


class FaultyServer:
    """An OpenAI-compatible server on 127.0.0.1 that misbehaves as ``mode`` says (module doc).

    ``FaultyServer(mode="ok", *, interval=None, n=5, latency=0.0, content="ok")``; use it as a
    context manager, or call ``start()`` / ``stop()``. ``port`` and ``base_url``
    (``http://127.0.0.1:PORT/v1``) are set once started.
    """

    def __init__(self, mode: str = "ok", *, interval: float | None = None, n: int = 5,
                 latency: float = 0.0, content: str = "ok"):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        if n < 0:
            raise ValueError("n must be >= 0")
        self.mode = mode
        self.interval = float(_DEFAULT_INTERVAL.get(mode, 0.0) if interval is None else interval)
        self.n = n
        self.latency = float(latency)
        self.content = content
        self.host = "127.0.0.1"
        self.port: int | None = None

        self._lock = threading.Lock()
        self._requests = 0
        self._request_times: list[float] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._finished_first_n = 0  # die_after: of the first n requests, how many are done

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._server: asyncio.base_events.Server | None = None
        self._conns: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self._dead = False
        self._listening = True
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # ----------------------------------------------------------------- public surface

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    @property
    def request_times(self) -> list[float]:
        with self._lock:
            return list(self._request_times)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    @property
    def dead(self) -> bool:
        """True once a ``die_after`` server has died (just after its last answer is written)."""
        return self._dead

    def start(self) -> FaultyServer:
        if self._thread is not None:
            raise RuntimeError("already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self.host, 0))
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, args=(sock,), daemon=True,
                                        name=f"FaultyServer-{self.mode}-{self.port}")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("FaultyServer did not start within 10 s")
        if self._startup_error is not None:
            self._thread.join(5)
            raise RuntimeError("FaultyServer failed to start") from self._startup_error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and thread.is_alive():
            try:
                loop.call_soon_threadsafe(self._stop_event.set)
            except RuntimeError:  # loop already closed
                pass
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"FaultyServer thread did not stop within {timeout} s")
        self._thread = None

    def __enter__(self) -> FaultyServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self.port is not None else "not started"
        return f"<FaultyServer {self.mode} {where} requests={self.requests}>"

    # ----------------------------------------------------------------- event loop thread

    def _run(self, sock: socket.socket) -> None:
        try:
            asyncio.run(self._main(sock))
        except BaseException as exc:  # pragma: no cover - surfaced by start()
            if not self._ready.is_set():
                self._startup_error = exc
                self._ready.set()
        finally:
            sock.close()

    async def _main(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        try:
            self._server = await asyncio.start_server(self._on_connect, sock=sock,
                                                      limit=_MAX_HEADER_BYTES)
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        if self.mode == "die_after" and self.n == 0:
            self._die()
        try:
            await self._stop_event.wait()
        finally:
            self._server.close()
            tasks = list(self._conns)
            for task, writer in list(self._conns.items()):
                _reset(writer)
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2)
            except (asyncio.TimeoutError, Exception):
                pass

    def _stop_listening(self) -> None:
        """Close the listening socket: from now on connects are refused."""
        if self._listening:
            self._listening = False
            if self._server is not None:
                self._server.close()

    def _die(self) -> None:
        """die_after: stop listening and reset every open connection but the caller's.

        The caller's connection has just carried the last answer (sent with ``Connection:
        close``); its handler closes it gracefully, so an RST cannot discard that answer.
        """
        if self._dead:
            return
        self._dead = True
        self._stop_listening()
        current = asyncio.current_task()
        for task, writer in list(self._conns.items()):
            if task is not current:
                _reset(writer)
                task.cancel()

    # ----------------------------------------------------------------- one connection

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self._dead:
            _reset(writer)
            return
        self._conns[task] = writer
        graceful = False
        try:
            while await self._serve_one(reader, writer) and not self._dead:
                pass
            graceful = True
        except (_Close, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                OSError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.pop(task, None)
            if graceful:
                writer.transport.close()  # flushes what is buffered, then FIN
            else:
                writer.transport.abort()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; True to keep the connection open for the next one."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise _Close from exc
            return False  # clean EOF between requests
        method, path, version, headers = _parse_head(head)
        body = await _read_body(reader, headers)
        keep_alive = _keep_alive(version, headers)

        path_only = path.split("?", 1)[0].rstrip("/")
        if path_only != "/v1/chat/completions":
            await _send_json(writer, 404, _error("not found", "invalid_request_error"), keep_alive)
            return keep_alive
        if method != "POST":
            await _send_json(writer, 405, _error("method not allowed", "invalid_request_error"),
                             keep_alive)
            return keep_alive

        index = self._begin_request()
        if self.mode == "die_after" and index >= self.n:
            # The n-th request is in: stop listening before any answer goes out, so a client
            # that reads the n-th answer and connects again is refused, never half-served.
            self._stop_listening()
        try:
            try:
                payload = json.loads(body or b"null")
                if not isinstance(payload, dict):
                    raise ValueError("body is not a JSON object")
            except ValueError:
                await _send_json(writer, 400, _error("body must be a JSON object",
                                                      "invalid_request_error"), keep_alive)
                return keep_alive
            model = str(payload.get("model") or "unknown")
            stream = payload.get("stream") is True
            return await self._answer(index, writer, reader, model, stream, keep_alive)
        finally:
            self._end_request(index)

    def _begin_request(self) -> int:
        with self._lock:
            self._requests += 1
            self._request_times.append(time.time())
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            return self._requests

    def _end_request(self, index: int) -> None:
        with self._lock:
            self._in_flight -= 1
            first_n_done = False
            if self.mode == "die_after" and index <= self.n:
                self._finished_first_n += 1
                first_n_done = self._finished_first_n >= self.n
        if first_n_done:
            self._die()

    async def _answer(self, index: int, writer: asyncio.StreamWriter, reader: asyncio.StreamReader,
                      model: str, stream: bool, keep_alive: bool) -> bool:
        mode = self.mode
        if mode == "hang":
            # Never answer; keep reading so a client that gives up (closes) ends the connection.
            while await reader.read(65536):
                pass
            raise _Close
        if mode == "keepalive":
            await _write(writer, _head(200, [("Content-Type", "text/event-stream"),
                                             ("Cache-Control", "no-cache"),
                                             ("Transfer-Encoding", "chunked")], keep_alive))
            comment = b": keep-alive\n\n"
            frame = b"%x\r\n%s\r\n" % (len(comment), comment)
            while True:
                await _write(writer, frame)
                await asyncio.sleep(self.interval)
        if mode == "die_after" and (index > self.n or self._dead):
            # Beyond the n-th: reset this connection unanswered; the server dies (stops
            # listening, resets the rest) once the first n requests are done.
            _reset(writer)
            raise _Close
        if mode == "trickle":
            body, ctype = self._body(model, stream)
            await _write(writer, _head(200, [("Content-Type", ctype),
                                             ("Content-Length", str(len(body)))], keep_alive))
            for i in range(len(body)):
                if i:
                    await asyncio.sleep(self.interval)
                await _write(writer, body[i:i + 1])
            return keep_alive
        # "ok", and "die_after" within its first n requests
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if mode == "die_after" and not self._listening:
            keep_alive = False  # dying: tell the client not to reuse this connection
        if stream:
            await _write(writer, _head(200, [("Content-Type", "text/event-stream"),
                                             ("Cache-Control", "no-cache"),
                                             ("Transfer-Encoding", "chunked")], keep_alive))
            for event in self._sse_events(model):
                await _write(writer, b"%x\r\n%s\r\n" % (len(event), event))
            await _write(writer, b"0\r\n\r\n")
        else:
            body, ctype = self._body(model, False)
            await _write(writer, _head(200, [("Content-Type", ctype),
                                             ("Content-Length", str(len(body)))], keep_alive) + body)
        return keep_alive

    # ----------------------------------------------------------------- valid answers

    def _body(self, model: str, stream: bool) -> tuple[bytes, str]:
        if stream:
            return b"".join(self._sse_events(model)), "text/event-stream"
        return json.dumps(completion(model, self.content)).encode(), "application/json"

    def _sse_events(self, model: str) -> list[bytes]:
        return [b"data: " + json.dumps(chunk).encode() + b"\n\n"
                for chunk in completion_chunks(model, self.content)] + [b"data: [DONE]\n\n"]


# --------------------------------------------------------------------- payloads

USAGE = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}


def completion(model: str, content: str = "ok") -> dict:
    """A valid Chat Completions response object."""
    return {"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": dict(USAGE)}


def completion_chunks(model: str, content: str = "ok") -> list[dict]:
    """Valid ``chat.completion.chunk`` objects: the content, then a stop chunk carrying usage."""
    base = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 0, "model": model}
    return [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                              "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
         "usage": dict(USAGE)},
    ]


def _error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


# --------------------------------------------------------------------- HTTP/1.1 plumbing

def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise _Close
    method, path, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _Close
        headers[name.strip().lower()] = value.strip()
    return method.upper(), path, version.upper(), headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _Close from exc
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise _Close from exc
    if length < 0:
        raise _Close
    return await reader.readexactly(length) if length else b""


def _keep_alive(version: str, headers: dict[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection


def _head(status: int, headers: list[tuple[str, str]], keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send_json(writer: asyncio.StreamWriter, status: int, obj: dict, keep_alive: bool) -> None:
    body = json.dumps(obj).encode()
    await _write(writer, _head(status, [("Content-Type", "application/json"),
                                        ("Content-Length", str(len(body)))], keep_alive) + body)


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    if writer.transport.is_closing():
        raise _Close
    writer.write(data)
    await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close a connection with a TCP RST (SO_LINGER 0), dropping anything unsent."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()
