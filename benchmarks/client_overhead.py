"""Client CPU per chat-completion request: the openai SDK vs its raw-response mode vs a bare
httpx2 POST, against the simulator served by uvicorn in another process (latency 0).

Why: it is the measurement behind the runner's lean request path (OpenAIProvider.complete_lean).

    .venv/bin/python benchmarks/client_overhead.py
"""

from __future__ import annotations

import asyncio
import json
import resource
import time

import httpx2
import openai

from runner_throughput import start_server

N = 1000
MESSAGES = [{"role": "user", "content": "Customer: Ticket 1: my order arrived late and the box was damaged."}]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main(url: str) -> None:
    client = openai.AsyncOpenAI(base_url=url, api_key="sim", max_retries=0)
    bare_client = httpx2.AsyncClient(base_url=url, headers={"Authorization": "Bearer sim"})
    semaphore = asyncio.Semaphore(50)

    async def sdk() -> str:
        async with semaphore:
            response = await client.chat.completions.create(model="echo", messages=MESSAGES)
            return response.choices[0].message.content

    async def raw() -> str:
        async with semaphore:
            response = await client.chat.completions.with_raw_response.create(model="echo", messages=MESSAGES)
            return json.loads(response.http_response.content)["choices"][0]["message"]["content"]

    async def bare() -> str:
        async with semaphore:
            response = await bare_client.post("/chat/completions", json={"model": "echo", "messages": MESSAGES})
            return response.json()["choices"][0]["message"]["content"]

    results = {}
    for name, call in [("sdk", sdk), ("raw", raw), ("bare", bare)] * 2:  # second round counts
        await asyncio.gather(*(call() for _ in range(100)))  # warm up
        before, started = cpu(), time.perf_counter()
        await asyncio.gather(*(call() for _ in range(N)))
        results[name] = ((cpu() - before) / N * 1000, time.perf_counter() - started)
    base = results["sdk"][0]
    for name, (ms, seconds) in results.items():
        print(f"{name:5s} {ms:5.2f} CPU ms/request  {ms / base:4.2f}x the SDK  ({seconds:.2f} s for {N})")
    await client.close()
    await bare_client.aclose()


if __name__ == "__main__":
    server, server_url = start_server(0)
    try:
        asyncio.run(main(server_url))
    finally:
        server.terminate()
        server.wait()
