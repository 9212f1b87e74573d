"""Experiment-runner throughput against the simulator served by uvicorn in another process.

Two regimes, each measured in the same run as a naive baseline (AsyncOpenAI + an asyncio
semaphore, no logging, no retries logic, no evaluators):

  (a) latency-bound: N=2,000 requests at concurrency 50 against 200 ms (ideal N/C x latency = 8 s)
  (b) CPU-bound:     N=5,000 requests at concurrency 100 against 50 ms (ideal 2.5 s; on 2 cores
                     the client's CPU is the limit)

promptlab's figure includes writing every generation and cell to a SQLite store. CPU ms per
request is this process's user+system CPU divided by N (the server is another process).

    .venv/bin/python benchmarks/runner_throughput.py [--quick]
    .venv/bin/python benchmarks/runner_throughput.py --memory    # 100k-row run, peak RSS
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

import httpx2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(latency_ms: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "promptlab.cli", "sim", "serve", "--port", str(port),
                             "--latency-ms", str(latency_ms)], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"{url}/models", timeout=1).status_code == 200:
                return proc, url
        except httpx2.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the simulator did not start")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rows(n: int) -> list[dict]:
    return [{"message": f"Ticket {i}: my order arrived late and the box was damaged."} for i in range(n)]


async def naive(url: str, n: int, concurrency: int) -> float:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="sim", max_retries=0,
                                http_client=httpx2.AsyncClient(limits=httpx2.Limits(max_connections=concurrency)))
    semaphore = asyncio.Semaphore(concurrency)

    async def one(row: dict) -> str:
        async with semaphore:
            response = await client.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "Customer: " + row["message"]}])
            return response.choices[0].message.content

    started = time.perf_counter()
    await asyncio.gather(*(one(r) for r in rows(n)))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


def promptlab_run(url: str, n: int, concurrency: int, db: str) -> float:
    import promptlab as pl

    with pl.Lab(db) as lab:
        lab.providers.register("bench", base_url=url, api_key="sim")
        lab.actions.create("a", prompt="Customer: {{message}}", model="bench:echo")
        lab.actions.create("b", prompt="Customer: {{message}}", model="bench:echo-b")
        experiment = lab.experiments.create("bench", action_a="a", action_b="b")
        started = time.perf_counter()
        run = lab.experiments.run(experiment, rows(n // 2), concurrency=concurrency, progress=False)
        elapsed = time.perf_counter() - started
        logged = lab.store.count_generations(status="done")
        assert logged == n, f"expected {n} logged generations, found {logged}"
        assert run.status == "done"
    return elapsed


def regime(name: str, n: int, concurrency: int, latency_ms: float) -> None:
    proc, url = start_server(latency_ms)
    try:
        ideal = n / concurrency * latency_ms / 1000
        asyncio.run(naive(url, min(200, n), concurrency))  # warm up server and imports
        cpu0 = cpu_seconds()
        base = asyncio.run(naive(url, n, concurrency))
        base_cpu = (cpu_seconds() - cpu0) / n * 1000
        with tempfile.TemporaryDirectory() as tmp:
            cpu0 = cpu_seconds()
            ours = promptlab_run(url, n, concurrency, os.path.join(tmp, "bench.db"))
            ours_cpu = (cpu_seconds() - cpu0) / n * 1000
    finally:
        proc.terminate()
        proc.wait()
    print(f"\n({name}) N={n} concurrency={concurrency} latency={latency_ms:.0f} ms  ideal={ideal:.2f} s")
    print(f"  naive AsyncOpenAI+semaphore, no logging : {base:6.2f} s  {base / ideal:5.2f}x ideal  "
          f"{base_cpu:5.2f} CPU ms/request")
    print(f"  promptlab runner, every generation logged: {ours:6.2f} s  {ours / ideal:5.2f}x ideal  "
          f"{ours_cpu:5.2f} CPU ms/request")
    print(f"  promptlab / naive wall time: {ours / base:.2f}x   CPU per request: {ours_cpu / base_cpu:.2f}x")


def memory_run(n_rows: int) -> None:
    """A 100k-row run (200k cells) in a child process, printing its peak RSS."""
    code = f"""
import resource, tempfile, os, time, promptlab as pl
with tempfile.TemporaryDirectory() as tmp:
    lab = pl.Lab(os.path.join(tmp, 'm.db'))
    lab.actions.create('a', prompt='{{{{m}}}}', model='sim:echo')
    lab.actions.create('b', prompt='B {{{{m}}}}', model='sim:echo')
    exp = lab.experiments.create('m', action_a='a', action_b='b')
    t = time.perf_counter()
    run = lab.experiments.run(exp, [{{'m': f'row {{i}} ' * 8}} for i in range({n_rows})], concurrency=64, progress=False)
    print(f'{{time.perf_counter() - t:.1f}}', lab.store.count_generations(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    lab.close()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    seconds, generations, rss_mb = out
    base = subprocess.run([sys.executable, "-c", "import resource, promptlab, pandas, openai, httpx2, sqlalchemy;"
                          "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    print(f"\n(memory) {n_rows:,} rows x 2 variants = {generations} generations logged in {seconds} s "
          f"(in-process simulator)")
    print(f"  peak RSS {rss_mb} MB (target < 300 MB); baseline: the same imports alone {base} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a tenth of the requests")
    parser.add_argument("--memory", action="store_true", help="only the 100k-row memory run")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    if args.memory:
        memory_run(100_000 // scale)
        return
    regime("a: latency-bound", 2000 // scale, 50, 200)
    regime("b: CPU-bound", 5000 // scale, 100, 50)


if __name__ == "__main__":
    main()
