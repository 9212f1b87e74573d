"""promptlab's own cost per experiment cell, against a provider that answers instantly.

Why: with a real or simulated model most of a cell's CPU is the HTTP client and the server; this
isolates the runner and the execution seam (plan, deadlines, retries, limiter, breaker, batched
writes to a SQLite store). The provider is an in-process ``Provider`` object returning at once.

    .venv/bin/python benchmarks/runner_overhead.py [--rows 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time

import promptlab as pl
from promptlab.providers.base import Completion, Usage


class Instant:
    """Answers every request at once (one event-loop turn), like a model with no latency."""

    name = "instant"

    async def complete(self, request):
        await asyncio.sleep(0)
        return Completion(text="ok " + str(request.messages[-1]["content"])[:10], model=request.model,
                          usage=Usage(5, 2), finish_reason="stop", latency_ms=0.1)

    complete_lean = complete

    async def stream(self, request):
        yield await self.complete(request)

    async def aclose(self):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="promptlab-overhead-")
    with pl.Lab(f"sqlite:///{folder}/bench.db") as lab:
        lab.providers.register("instant", provider=Instant())
        lab.actions.create("a", prompt="Q {{q}}", model="instant:m")
        lab.actions.create("b", prompt="R {{q}}", model="instant:m")
        exp = lab.experiments.create("overhead", action_a="a", action_b="b")
        rows = [{"q": f"question {i}"} for i in range(args.rows)]
        cells = 2 * len(rows)
        print(f"runner overhead: {cells} cells per round, concurrency 100, SQLite store")
        for _ in range(args.rounds):
            before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            run = lab.experiments.run(exp, rows, concurrency=100, progress=False)
            after, elapsed = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            assert run.status == "done", run.status_detail
            print(f"  {cells / elapsed:7.0f} cells/s   {cpu / cells * 1e6:6.0f} CPU us/cell")


if __name__ == "__main__":
    main()
