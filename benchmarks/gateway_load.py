"""HTTP gateway throughput and latency against the simulator, with a baseline from the same run.

Three measurements, each N requests at concurrency C from one httpx2 async load generator on
loopback:

  baseline   the same chat request straight to `promptlab sim serve` (1 process): the cost of an
             HTTP hop to an OpenAI-compatible server, with no auth, no store, no templates
  run        POST /v1/actions/ to `promptlab serve --workers W` (in-process `sim:` model): bearer
             key check, template rendering, the model call, and the generation row committed to
             the store before each answer
  feedback   POST /v1/feedback on those generations (key check + one validated insert)

The store is a throwaway PostgreSQL server (as in tests/pg.py) when its binaries are installed,
else a SQLite file; `--db URL` picks one. Everything runs on this machine (2 cores here), so the
load generator competes with the servers for CPU in every measurement alike.

    .venv/bin/python benchmarks/gateway_load.py [--requests 3000] [--concurrency 32] [--workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import httpx2

PROMPT = "Summarize this support ticket in one sentence: {{ticket}}"
TICKET = "Ticket {i}: my order arrived late and the box was damaged; I would like a refund or a replacement."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} not ready after {timeout} s")


@contextlib.contextmanager
def process(args: list[str], ready_url: str):
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(proc, ready_url)
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def throwaway_store(db: str | None):
    """A store URL: --db as given, else a temporary PostgreSQL server, else a SQLite file."""
    if db:
        yield db
        return
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    root = tempfile.mkdtemp(prefix="promptlab-bench-")
    if not bins:
        yield f"sqlite:///{root}/bench.db"
        shutil.rmtree(root, ignore_errors=True)
        return
    bin_dir = os.path.dirname(bins[-1])
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = os.path.join(root, "data"), free_port()
    subprocess.run(as_user + [f"{bin_dir}/initdb", "-D", data, "--auth=trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run(as_user + [f"{bin_dir}/pg_ctl", "-D", data, "-l", f"{root}/pg.log", "-w", "-o",
                              f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200",
                              "start"], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


async def hammer(n: int, concurrency: int, request) -> tuple[float, list[float], dict[int, int]]:
    """Send n requests (request(client, i) -> response) at most `concurrency` at a time."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(limits=limits, timeout=120) as client:
        queue = iter(range(n))

        async def worker() -> None:
            for i in queue:
                started = time.perf_counter()
                response = await request(client, i)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        await request(client, -1)  # warm the connection pool and the servers' first-use paths
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies, statuses


def report(name: str, n: int, elapsed: float, latencies: list[float], statuses: dict[int, int]) -> float:
    q = statistics.quantiles(latencies, n=100)
    rps = n / elapsed
    print(f"{name:<10} {rps:>8.0f} req/s   p50 {q[49]:>7.1f} ms   p95 {q[94]:>7.1f} ms   statuses {statuses}")
    return rps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--db", default=None, help="store URL (default: a throwaway PostgreSQL, else SQLite)")
    parser.add_argument("--quick", action="store_true", help="500 requests")
    args = parser.parse_args()
    n = 500 if args.quick else args.requests

    import promptlab as pl
    from promptlab.gateway import ApiKeys

    with throwaway_store(args.db) as db:
        with pl.Lab(db) as lab:
            lab.actions.create("bench", prompt=PROMPT, model="sim:extractive")
            _, token = ApiKeys(lab.store).create("bench", ["run", "feedback"])
            messages = lambda i: lab.actions.get_action_prompt("bench", {"ticket": TICKET.format(i=i)})  # noqa: E731
            bodies = [messages(i) for i in range(n)]
            safe_url = lab.store.safe_url
        print(f"gateway load: {n} requests at concurrency {args.concurrency}; gateway workers: {args.workers}; "
              f"store: {safe_url.split('://')[0]}; cores: {os.cpu_count()}")

        sim_port = free_port()
        sim_url = f"http://127.0.0.1:{sim_port}/v1"
        with process([sys.executable, "-m", "promptlab.cli", "sim", "serve", "--port", str(sim_port)],
                     f"{sim_url}/models"):
            async def direct(client, i):
                return await client.post(f"{sim_url}/chat/completions",
                                         json={"model": "extractive", "messages": bodies[max(i, 0)]})

            baseline = report("baseline", n, *asyncio.run(hammer(n, args.concurrency, direct)))

        gw_port = free_port()
        gw_url = f"http://127.0.0.1:{gw_port}"
        headers = {"Authorization": f"Bearer {token}"}
        guids: list[str] = []
        with process([sys.executable, "-m", "promptlab.cli", "serve", "--port", str(gw_port), "--db", db,
                      "--workers", str(args.workers), "--no-access-log"], f"{gw_url}/v1/health"):
            time.sleep(2.0)  # let every worker finish starting, not only the first that answers

            async def run(client, i):
                r = await client.post(f"{gw_url}/v1/actions/", headers=headers,
                                      json={"action": "bench", "input": {"ticket": TICKET.format(i=i)}})
                if i >= 0:
                    guids.append(r.json()["guid"])
                return r

            gateway = report("run", n, *asyncio.run(hammer(n, args.concurrency, run)))

            async def feedback(client, i):
                return await client.post(f"{gw_url}/v1/feedback", headers=headers,
                                         json={"guid": guids[max(i, 0)], "rating": 1 + i % 2})

            report("feedback", n, *asyncio.run(hammer(n, args.concurrency, feedback)))

        with pl.Lab(db) as lab:
            logged = lab.store.count_generations(action="bench")
            rated = len(lab.feedback.list())
        print(f"rows: {logged} generations (expected {n + 1}), {rated} feedback (expected {n + 1})")
        print(f"gateway run throughput = {gateway / baseline:.2f} x the direct simulator baseline")


if __name__ == "__main__":
    main()
