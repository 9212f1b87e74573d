"""`promptlab serve` as real processes on loopback.

- The seed's curl examples (run action, multi-modal run, feedback) run unchanged except for the
  host and the key, against a gateway started in a subprocess.
- A bounded load test: three gateway processes (one `--workers 2`, one single) on one PostgreSQL
  store take a few thousand concurrent requests; afterwards the rows counted equal the requests sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

import promptlab as pl
from promptlab.gateway import ApiKeys

SEED_HOST = "https://api.klu.ai"
SEED_ACTION = "6942f034-6872-4eed-9bb3-7e3bf18e5743"

# The seed's multi-modal example, verbatim.
SEED_MULTIMODAL = """curl --location 'https://api.klu.ai/v1/actions/' \\
--header 'Content-Type: application/json' \\
--header 'Authorization: Bearer YOUR_API_KEY' \\
--data '{
"action": "6942f034-6872-4eed-9bb3-7e3bf18e5743",
"input": "",
"messages": [
{
"role": "user",
"content": "What is in this image?",
"files": [
"https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/Gfp-wisconsin-madison-the-nature-boardwalk.jpg/2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg"
]
}
]
}'"""

# The seed's "Run Action" request and "Save Feedback" call, in the same curl form (ratings 1/2 as
# the seed says direct API calls use; the feedback example posts to the returned feedback_url).
SEED_RUN = """curl --location 'https://api.klu.ai/v1/actions/' \\
--header 'Content-Type: application/json' \\
--header 'Authorization: Bearer YOUR_API_KEY' \\
--data '{
"action": "6942f034-6872-4eed-9bb3-7e3bf18e5743",
"input": "Write a sentence about Machine Learning."
}'"""

SEED_FEEDBACK = """curl --location 'FEEDBACK_URL' \\
--header 'Content-Type: application/json' \\
--header 'Authorization: Bearer YOUR_API_KEY' \\
--data '{
"correction": "Machine Learning, a category of artificial intelligence, is a process where computers analyze data to learn patterns or behaviors, equipping them with the capability to make decisions independently, without someone having to write specific instructions for each task.",
"rating": 2,
"issue": "Vague"
}'"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(db: str, log_path: Path, *extra: str, timeout: float = 60.0, started: list | None = None):
    """`promptlab serve` on a free loopback port until the block ends; yields its base URL
    (``started`` receives the process, for a test that kills it)."""
    port = free_port()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "promptlab.cli", "serve", "--host", "127.0.0.1",
                                 "--port", str(port), "--db", db, *extra], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    if started is not None:
        started.append(proc)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"promptlab serve exited ({proc.returncode}):\n{log_path.read_text()}")
            try:
                if httpx2.get(f"{base}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"promptlab serve not ready after {timeout} s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # graceful: uvicorn finishes in-flight requests, workers close their Lab
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_curl(command: str) -> tuple[int, dict]:
    """Run a curl command line; without a curl binary, send the same request with httpx2."""
    if shutil.which("curl"):
        done = subprocess.run(["bash", "-c", command + " --silent --show-error --write-out '\\n%{http_code}'"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        body, status = done.stdout.rsplit("\n", 1)
        return int(status), json.loads(body)
    args = shlex.split(command.replace("\\\n", " "))
    url, headers, data = None, {}, None
    i = 1
    while i < len(args):
        if args[i] == "--header":
            name, value = args[i + 1].split(":", 1)
            headers[name.strip()] = value.strip()
            i += 2
        elif args[i] == "--data":
            data, i = args[i + 1], i + 2
        elif args[i] == "--location":
            i += 1
        else:
            url, i = args[i], i + 1
    response = httpx2.post(url, content=data.encode(), headers=headers, follow_redirects=True, timeout=60)
    return response.status_code, response.json()


def adapt(command: str, base: str, token: str) -> str:
    """Only the host and the key change."""
    return command.replace(SEED_HOST, base).replace("YOUR_API_KEY", token)


def test_the_seeds_curl_examples_work_against_promptlab_serve(tmp_path):
    db = f"sqlite:///{tmp_path / 'gateway.db'}"
    with pl.Lab(db) as lab:
        # Action names may be any GUID-like text, so the seed's action GUID resolves as written.
        lab.actions.create(SEED_ACTION, system="You are a helpful writing assistant.", model="sim:extractive")
        _, token = ApiKeys(lab.store).create("seed", ["run", "feedback"])
    log = tmp_path / "serve.log"
    with serving(db, log) as base:
        status, run = run_curl(adapt(SEED_RUN, base, token))
        assert status == 200, run
        assert run["streaming"] is False and "Machine Learning" in run["msg"]
        assert run["feedback_url"] == f"{base}/v1/data/{run['guid']}"

        status, image = run_curl(adapt(SEED_MULTIMODAL, base, token))
        assert status == 200, image
        assert "1 image received" in image["msg"] and image["feedback_url"].startswith(f"{base}/v1/data/")

        status, feedback = run_curl(adapt(SEED_FEEDBACK.replace("FEEDBACK_URL", run["feedback_url"]), base, token))
        assert status == 200, feedback
        assert (feedback["generation"], feedback["rating"], feedback["issue"]) == (run["guid"], "Positive", "Vague")

        status, refused = run_curl(adapt(SEED_RUN, base, token[:-2] + "xx"))
        assert status == 401 and refused["error"]["type"] == "unauthorized"

        # Streaming through a real server: server-sent events, the last one the whole response.
        with httpx2.stream("POST", f"{base}/v1/actions/", headers={"Authorization": f"Bearer {token}"},
                           json={"action": SEED_ACTION, "input": "Stream a sentence.", "streaming": True},
                           timeout=60) as streamed:
            assert streamed.headers["content-type"].startswith("text/event-stream")
            blocks = "".join(streamed.iter_text()).strip().split("\n\n")
        names = [b.split("\n")[0].removeprefix("event: ") for b in blocks]
        done = json.loads(blocks[-1].split("\n")[1].removeprefix("data: "))
        assert names[0] == "start" and names[-1] == "done" and "delta" in names
        assert done["streaming"] is True and "Stream a sentence." in done["msg"]
    with pl.Lab(db) as lab:
        assert lab.store.count_generations() == 3
        [stored] = lab.feedback.list(run["guid"])
        assert stored.rating == "Positive" and stored.correction.startswith("Machine Learning, a category")
        sent = lab.generations.get(image["guid"]).messages
        assert sent[-1]["content"][1]["type"] == "image_url"
    served = log.read_text()
    assert '"POST /v1/actions/ HTTP/1.1" 200' in served  # the access log is on...
    assert token.rsplit("_", 1)[1] not in served and "Bearer" not in served  # ...and never shows a key


def test_serve_refuses_bad_options_before_starting(tmp_path):
    from typer.testing import CliRunner

    from promptlab.cli import app as cli

    runner = CliRunner()
    missing = runner.invoke(cli, ["serve", "--db", str(tmp_path / "no" / "such" / "dir.db")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad_url = runner.invoke(cli, ["serve", "--db", str(tmp_path / "ok.db"), "--public-url", "gw.example.com"])
    assert bad_url.exit_code == 2 and "--public-url must be an http(s) URL" in bad_url.output


LOAD_RUNS = 2000
LOAD_FEEDBACK = 1000
CONCURRENCY = 32


async def _load(bases: list[str], token: str) -> tuple[list[int], list[str], list[int]]:
    limits = httpx2.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                  timeout=120) as client:
        async def run(i: int) -> tuple[int, str | None]:
            async with gate:
                r = await client.post(f"{bases[i % len(bases)]}/v1/actions/",
                                      json={"action": "load", "input": f"request number {i}", "extUserId": f"u{i % 50}"})
                return r.status_code, r.json().get("guid")

        runs = await asyncio.gather(*(run(i) for i in range(LOAD_RUNS)))
        guids = [guid for _, guid in runs]

        async def rate(i: int) -> int:
            async with gate:
                # Post to the other process than the one that generated it: the store is shared.
                r = await client.post(f"{bases[(i + 1) % len(bases)]}/v1/feedback",
                                      json={"guid": guids[i], "rating": 1 + i % 2})
                return r.status_code

        feedback = await asyncio.gather(*(rate(i) for i in range(LOAD_FEEDBACK)))
    return [status for status, _ in runs], guids, list(feedback)


def test_several_gateway_processes_on_postgresql_lose_nothing_under_load(pg_url, tmp_path):
    with pl.Lab(pg_url) as lab:
        lab.actions.create("load", prompt="{{text}}", model="sim:extractive")
        _, token = ApiKeys(lab.store).create("load", ["run", "feedback"])
    log = tmp_path / "serve.log"
    with serving(pg_url, log, "--workers", "2", "--no-access-log") as first, \
            serving(pg_url, log, "--no-access-log") as second:
        # Three gateway processes share the store (a worker may still be starting: wait, bounded).
        deadline = time.monotonic() + 60
        while log.read_text().count("Application startup complete") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.read_text().count("Application startup complete") == 3
        statuses, guids, feedback = asyncio.run(_load([first, second], token))
    assert statuses.count(200) == LOAD_RUNS, {s: statuses.count(s) for s in set(statuses)}
    assert feedback.count(200) == LOAD_FEEDBACK, {s: feedback.count(s) for s in set(feedback)}
    assert len(set(guids)) == LOAD_RUNS
    with pl.Lab(pg_url) as lab:
        assert lab.store.count_generations() == LOAD_RUNS
        assert lab.store.count_generations(status="done") == LOAD_RUNS
        rows = lab.feedback.list()
        assert len(rows) == LOAD_FEEDBACK
        assert {r.generation for r in rows} == set(guids[:LOAD_FEEDBACK])
        assert sum(r.rating == "Positive" for r in rows) == LOAD_FEEDBACK // 2


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_killed_gateway_leaves_no_generation_pending_after_restart(backend, tmp_path, request):
    db = request.getfixturevalue("pg_url") if backend == "postgresql" else f"sqlite:///{tmp_path / 'gw.db'}"
    with pl.Lab(db) as lab:
        lab.actions.create("slow", prompt="{{text}}", model="sim:echo", extra_body={"sim": {"latency_ms": 30_000}})
        _, token = ApiKeys(lab.store).create("kill", ["run"])
    headers = {"Authorization": f"Bearer {token}"}
    started: list = []
    with serving(db, tmp_path / "gw.log", "--workers", "2", started=started) as base:
        guids = [httpx2.post(f"{base}/v1/actions/", headers=headers, timeout=30,
                             json={"action": "slow", "input": f"row {i}", "async_mode": True}).json()["guid"]
                 for i in range(4)]
        with pl.Lab(db) as lab:
            assert {lab.generations.get(g).status for g in guids} == {"pending"}
        os.killpg(started[0].pid, signal.SIGKILL)  # the gateway and its workers, mid-generation
        started[0].wait()
    with serving(db, tmp_path / "gw2.log") as base:  # the restarted gateway recovers them
        rows = [httpx2.get(f"{base}/v1/data/{g}", headers=headers, timeout=30).json() for g in guids]
    assert {r["status"] for r in rows} == {"error"} and {r["error_type"] for r in rows} == {"Interrupted"}
