"""The execution seam (lab.engine): the caller's event loop is never blocked, deadlines are
total (trickled bytes, keep-alives and hangs cannot stretch a call), and a cancelled or
interrupted call stops sending and is logged."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import promptlab as pl
from tests.faulty_servers import FaultyServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CpuClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock is the thread's CPU time.

    asyncio's debug mode reports every callback that ran longer than ``slow_callback_duration``
    by this clock. Measured in CPU time of the caller's thread, a report means promptlab code did
    that much work on the caller's loop; a busy CI machine (wall time stretched by other
    processes) cannot cause one. Only safe for code that sets no timers on this loop: promptlab
    awaits futures and worker threads there, never ``sleep``.
    """

    def time(self) -> float:
        return time.thread_time()


def run_on_cpu_clock_loop(coro, caplog) -> list[str]:
    """Run ``coro`` on a CpuClockLoop in debug mode; returns the slow-callback reports (> 50 ms)."""
    loop = CpuClockLoop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.05
    try:
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            loop.run_until_complete(coro)
    finally:
        loop.close()
    return [r.getMessage() for r in caplog.records if r.name == "asyncio" and "took" in r.getMessage()]


def test_aprompt_with_a_cold_10k_chunk_context_never_blocks_the_callers_loop(tmp_path, caplog):
    lab = pl.Lab(tmp_path / "kb.db")
    try:
        lab.contexts.create("kb")
        lab.contexts.add("kb", [{"text": f"Article {i}: the {['refund', 'shipping', 'warranty'][i % 3]} policy "
                                         f"number {i} says customers may act within {i % 30} days.",
                                 "metadata": {"n": i}} for i in range(10_000)])
        lab.actions.create("rag", prompt="Context:\n{{context}}\n\nQuestion: {{question}}", model="sim:extractive",
                           context={"name": "kb", "variable": "context", "top_k": 3})
        # A new Lab: its retrieval index is cold and is built inside the first aprompt.
        lab.close()
        lab = pl.Lab(tmp_path / "kb.db")

        async def main():
            generation = await lab.actions.aprompt("rag", {"question": "What is the refund policy?"})
            assert generation.status == "done" and "refund" in generation.msg.lower()
            return generation

        reports = run_on_cpu_clock_loop(main(), caplog)
        assert reports == []
        [row] = lab.generations.list()
        assert row.status == "done"
    finally:
        lab.close()


def test_arun_of_1000_cells_never_blocks_the_callers_loop(tmp_path, caplog):
    with pl.Lab(tmp_path / "run.db") as lab:
        lab.actions.create("a", prompt="Short answer: {{q}}", model="sim:extractive")
        lab.actions.create("b", prompt="Long answer: {{q}}", model="sim:extractive")
        exp = lab.experiments.create("big", action_a="a", action_b="b")
        rows = [{"q": f"Question number {i} about a late parcel", "expected": "parcel"} for i in range(500)]

        async def main():
            return await lab.experiments.arun(exp, rows, concurrency=32, progress=False,
                                              evaluators=[pl.evaluators.contains("parcel")])

        reports = run_on_cpu_clock_loop(main(), caplog)
        assert reports == []
        [run] = lab.experiments.runs(exp)
        assert run.status == "done" and len(run.cells()) == 1000


# -- deadlines ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["trickle", "keepalive", "hang"])
@pytest.mark.parametrize("streaming", [False, True])
def test_a_call_ends_at_its_deadline_whatever_the_server_does(tmp_path, mode, streaming):
    # trickle: one byte a second (a per-read timeout never fires; the body takes minutes);
    # keepalive: SSE comments forever; hang: never a byte.
    with FaultyServer(mode, interval=1.0 if mode == "trickle" else 0.2) as server, \
            pl.Lab(tmp_path / "d.db") as lab:
        lab.providers.register("faulty", base_url=server.base_url, api_key="k", timeout=1.0, max_retries=1)
        lab.actions.create("ask", prompt="{{q}}", model="faulty:m")
        started = time.monotonic()
        with pytest.raises(pl.ProviderTimeoutError, match=r"attempt deadline.*\(after 2 attempts\)"):
            r = lab.actions.prompt("ask", {"q": "hi"}, streaming=streaming)
            "".join(r.stream)  # a stream raises from its iteration
        elapsed = time.monotonic() - started
        # Two attempts of 1 s each plus a back-off; without total deadlines this took minutes.
        assert elapsed < 15
        assert server.requests == 2  # max_retries=1: exactly one retry, then the error
        [row] = lab.generations.list()
        assert row.status == "error" and row.error_type == "ProviderTimeoutError"


def test_the_call_deadline_bounds_all_attempts_together(tmp_path):
    with FaultyServer("hang") as server, pl.Lab(tmp_path / "d.db", call_timeout=1.5) as lab:
        lab.providers.register("faulty", base_url=server.base_url, api_key="k", timeout=1.0, max_retries=5)
        lab.actions.create("ask", prompt="{{q}}", model="faulty:m")
        started = time.monotonic()
        with pytest.raises(pl.ProviderTimeoutError, match="call deadline"):
            lab.actions.prompt("ask", {"q": "hi"})
        assert time.monotonic() - started < 10
        assert server.requests <= 2  # 1.5 s cannot hold six 1 s attempts


async def test_cancelling_aprompt_abandons_the_request_and_logs_it_interrupted(tmp_path):
    with FaultyServer("hang") as server, pl.Lab(tmp_path / "c.db") as lab:
        lab.providers.register("faulty", base_url=server.base_url, api_key="k", timeout=30, max_retries=3)
        lab.actions.create("ask", prompt="{{q}}", model="faulty:m")
        task = asyncio.ensure_future(lab.actions.aprompt("ask", {"q": "hi"}))
        for _ in range(500):
            if server.requests:
                break
            await asyncio.sleep(0.01)
        assert server.requests == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(500):  # the row is written by promptlab's loop, after the cancel
            rows = lab.generations.list()
            if rows and rows[0].status != "pending":
                break
            await asyncio.sleep(0.01)
        [row] = lab.generations.list()
        assert row.status == "error" and row.error_type == "Interrupted"
        await asyncio.sleep(0.3)
        assert server.requests == 1  # no retry after the cancel


def test_ctrl_c_during_prompt_stops_sending_and_logs_the_call(tmp_path):
    """A real SIGINT, as a kernel interrupt sends, to a process blocked in prompt()."""
    db = tmp_path / "i.db"
    with FaultyServer("hang") as server:
        script = textwrap.dedent(f"""
            import promptlab as pl
            lab = pl.Lab({str(db)!r})
            lab.providers.register("faulty", base_url={server.base_url!r}, api_key="k", timeout=60, max_retries=5)
            lab.actions.create("ask", prompt="{{{{q}}}}", model="faulty:m")
            try:
                lab.actions.prompt("ask", {{"q": "hi"}})
            except KeyboardInterrupt:
                [row] = lab.generations.list()
                print("interrupted", row.status, row.error_type, flush=True)
            lab.close()
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=REPO)
        deadline = time.monotonic() + 60
        while server.requests == 0:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert "interrupted error Interrupted" in out, err
        assert server.requests == 1


def test_planning_errors_reach_the_caller_before_any_request(tmp_path):
    with pl.Lab(tmp_path / "p.db") as lab:
        lab.actions.create("ask", prompt="{{q}} {{missing}}", model="sim:echo")
        with pytest.raises(pl.MissingVariablesError):
            lab.actions.prompt("ask", {"q": "hi"})
        assert lab.providers.sim_app.state.stats.requests == 0
        [row] = lab.generations.list()
        assert row.status == "error" and row.error_type == "MissingVariablesError"
