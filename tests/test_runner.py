"""The experiment runner under the simulator's injected faults: counts, never wall time."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import promptlab as pl
from promptlab.experiments.runner import (
    AdaptiveLimiter,
    Cell,
    cells_to_run,
    in_shard,
    plan_cells,
    split_row,
    validate_shard,
)
from tests.conftest import sim_requests

ROWS = [{"message": f"Order {i} arrived damaged and I would like a refund.", "expected": "refund"}
        for i in range(12)]


def make_experiment(lab, b_extra=None, a_extra=None):
    lab.actions.create("a", system="Be concise.", prompt="Customer: {{message}}", model="sim:extractive",
                       extra_body=a_extra)
    lab.actions.create("b", system="Be warm and empathetic.", prompt="Customer: {{message}}",
                       model="sim:extractive", extra_body=b_extra)
    return lab.experiments.create("exp", action_a="a", action_b="b")


# -- pure parts --------------------------------------------------------------------------------


def test_plan_cells_orders_by_row_and_shards_partition_the_cells():
    cells = list(plan_cells(3, ["A", "B"], 2))
    assert len(cells) == 12 and cells[0] == Cell(0, "A", 0) and cells[1] == Cell(0, "B", 0)
    keys = {c.key for c in cells}
    shards = [{c.key for c in plan_cells(3, ["A", "B"], 2, shard=(k, 3))} for k in range(3)]
    assert set().union(*shards) == keys and sum(map(len, shards)) == len(keys)
    assert in_shard("5:A:0", (1, 4)) == in_shard("5:A:0", (1, 4))  # stable
    with pytest.raises(pl.ConfigError):
        validate_shard((3, 3))


def test_cells_to_run_skips_done_and_reruns_only_failures():
    cells = [Cell(i, "A", 0) for i in range(4)]
    statuses = {"0:A:0": "done", "1:A:0": "error"}
    assert [c.row_index for c in cells_to_run(iter(cells), statuses, resume=True, retry_errors=False)] == [2, 3]
    assert [c.row_index for c in cells_to_run(iter(cells), statuses, resume=True, retry_errors=True)] == [1, 2, 3]


def test_split_row_separates_expected_fields():
    assert split_row({"q": "x", "expected": "y"}) == ({"q": "x"}, "y")
    assert split_row({"q": "x", "expected_contains": "a"}) == ({"q": "x"}, {"expected_contains": "a"})


async def test_adaptive_limiter_halves_once_per_burst_and_recovers():
    now = [0.0]
    limiter = AdaptiveLimiter(16, cooldown=1.0, clock=lambda: now[0])
    limiter.on_rate_limited()
    limiter.on_rate_limited()  # same burst: one cut
    assert limiter.limit == 8 and limiter.cuts == 1
    now[0] = 2.0
    limiter.on_rate_limited()
    assert limiter.limit == 4
    for _ in range(200):
        limiter.on_success()
    assert limiter.limit == 16 and limiter.lowest == 4


# -- runs against the simulator -------------------------------------------------------------------


def test_run_covers_every_cell_and_logs_generations(lab):
    exp = make_experiment(lab)
    run = lab.experiments.run(exp, ROWS, repeats=2, concurrency=4, progress=False)
    assert run.status == "done"
    cells = run.cells()
    assert len(cells) == len(ROWS) * 2 * 2 and set(cells.status) == {"done"}
    assert lab.store.count_generations() == len(cells) == sim_requests(lab)
    frame = run.to_pandas()
    assert len(frame) == len(ROWS) * 2 and {"output_A", "output_B", "message", "expected"} <= set(frame)
    # repeats resample: the simulator folds the repeat index into its choice
    first = frame[frame.row == 0]
    assert first.output_B.nunique() >= 1 and (frame.output_A != frame.output_B).all()


def test_retry_after_is_honoured(lab):
    # every cell's first attempt is answered 429 with Retry-After 0.01 s; the second succeeds
    exp = make_experiment(lab, b_extra={"sim": {"error_rate": 1.0, "fail_times": 1, "retry_after": 0.01}})
    run = lab.experiments.run(exp, ROWS, concurrency=4, progress=False)
    stats = lab.providers.sim_app.state.stats
    assert set(run.cells().status) == {"done"}
    assert stats.by_status[429] == len(ROWS) and stats.requests == 3 * len(ROWS)
    assert run.stats.rate_limited == len(ROWS) and run.stats.retries == len(ROWS)


class RateLimitedAtFirst:
    """A provider (the real interface) that answers 429 to its first ``failures`` requests."""

    name = "flaky"

    def __init__(self, failures: int):
        self.failures = failures
        self.calls = 0

    async def complete(self, request):
        from promptlab.providers.base import Completion, Usage

        self.calls += 1
        number = self.calls
        await asyncio.sleep(0)  # let other requests interleave, as on a real network
        if number <= self.failures:
            raise pl.RateLimitError("slow down", provider=self.name, retry_after=0.001)
        return Completion(text="ok", model=request.model, usage=Usage(3, 1), latency_ms=1.0)

    def stream(self, request):  # pragma: no cover - the runner does not stream by default
        raise NotImplementedError

    async def aclose(self):
        pass


def test_adaptive_backoff_cuts_concurrency_and_recovers(lab):
    fake = RateLimitedAtFirst(failures=30)
    lab.providers.register("flaky", provider=fake)
    lab.actions.create("a", prompt="{{message}}", model="flaky:m")
    lab.actions.create("b", prompt="Q: {{message}}", model="flaky:m")
    exp = lab.experiments.create("backoff", action_a="a", action_b="b")
    run = lab.experiments.run(exp, [{"message": f"question {i}"} for i in range(150)], concurrency=8,
                              progress=False)
    assert set(run.cells().status) == {"done"}
    assert run.stats.rate_limited == 30 and fake.calls == 300 + 30
    assert run.stats.concurrency_lowest < 8  # it backed off
    assert run.stats.concurrency_final == 8  # and climbed back once the 429s stopped


def test_errors_are_isolated_per_cell(lab):
    exp = make_experiment(lab, b_extra={"sim": {"server_error_rate": 1.0}})
    rows = ROWS[:4] + [{"expected": "no message variable here"}]
    run = lab.experiments.run(exp, rows, concurrency=4, max_attempts=2, progress=False)
    cells = run.cells().set_index("cell_key")
    assert (cells.loc[[f"{i}:A:0" for i in range(4)], "status"] == "done").all()
    assert (cells.loc[[f"{i}:B:0" for i in range(5)], "status"] == "error").all()
    assert cells.loc["4:A:0", "error_type"] == "MissingVariablesError"
    assert cells.loc["0:B:0", "error_type"] == "ProviderServerError"
    summary = run.summary()
    assert summary.loc["A", "errors"] == 1 and summary.loc["B", "errors"] == 5
    assert run.status == "done_with_errors"
    assert "6 of 10 cells failed" in run.status_detail


def test_unreachable_provider_fails_fast(lab):
    # port 9 on loopback: nothing listens, the connection is refused at once
    lab.providers.register("down", base_url="http://127.0.0.1:9/v1", api_key="k")
    lab.actions.create("a", prompt="{{message}}", model="down:m")
    lab.actions.create("b", prompt="{{message}}", model="down:m")
    exp = lab.experiments.create("down", action_a="a", action_b="b")
    rows = [{"message": str(i)} for i in range(200)]
    with pytest.raises(pl.RunFailedError, match="first .* requests .* all failed to connect") as failure:
        lab.experiments.run(exp, rows, concurrency=4, progress=False)
    assert isinstance(failure.value.cause, pl.ProviderConnectionError)
    [run] = lab.experiments.runs(exp)
    assert run.status == "failed" and failure.value.run_guid == run.guid
    assert "failed to connect" in run.status_detail
    assert lab.store.count_generations() < 20  # it stopped instead of failing 400 cells


def test_retry_errors_reruns_only_failed_cells(lab):
    exp = make_experiment(lab, b_extra={"sim": {"server_error_rate": 1.0, "fail_times": 1}})
    first = lab.experiments.run(exp, ROWS, concurrency=4, max_attempts=1, progress=False)
    assert (first.cells().status == "error").sum() == len(ROWS)
    before = sim_requests(lab)
    again = lab.experiments.run(exp, resume=first, retry_errors=True, max_attempts=1, progress=False)
    assert sim_requests(lab) - before == len(ROWS)  # only B's failed cells went out again
    cells = again.cells()
    assert again.guid == first.guid and set(cells.status) == {"done"} and len(cells) == 2 * len(ROWS)
    assert set(cells[cells.variant == "B"].attempts) == {2}


def test_shards_of_one_run_never_duplicate_a_cell(lab):
    exp = make_experiment(lab)
    run = lab.experiments.start(exp, ROWS, repeats=2)
    lab.experiments.run(exp, resume=run, shard=(0, 2), progress=False)
    half = lab.experiments.get_run(run.guid)
    assert half.status == "interrupted" and "cells not run yet (this process ran shard 0/2)" in half.status_detail
    lab.experiments.run(exp, resume=run, shard=(1, 2), progress=False)
    lab.experiments.run(exp, resume=run, shard=(0, 2), progress=False)  # repeated shard: no-op
    cells = run.cells()
    assert len(cells) == len(ROWS) * 4 and cells.cell_key.is_unique
    assert lab.store.count_generations() == len(ROWS) * 4 and run.status == "done"


def test_resume_after_sigkill_has_no_duplicate_and_no_missing_cell(tmp_path):
    db = tmp_path / "kill.db"
    script = textwrap.dedent(f"""
        import promptlab as pl
        lab = pl.Lab({str(db)!r}, sim_options={{"latency_ms": 20}})
        lab.actions.create("a", prompt="{{{{m}}}}", model="sim:echo")
        lab.actions.create("b", prompt="B {{{{m}}}}", model="sim:echo")
        exp = lab.experiments.create("k", action_a="a", action_b="b")
        run = lab.experiments.start(exp, [{{"m": str(i)}} for i in range(300)])
        print(run.guid, flush=True)
        lab.experiments.run(exp, resume=run, concurrency=4, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    run_guid = proc.stdout.readline().strip()
    with pl.Lab(db) as lab:
        deadline = time.monotonic() + 60
        while len(lab.store.cell_statuses(run_guid)) < 100:  # wait for real progress, bounded
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        recorded = len(lab.store.cell_statuses(run_guid))
        assert 100 <= recorded < 600
        run = lab.experiments.run("k", resume=run_guid, concurrency=8, progress=False)
        cells = run.cells()
        assert len(cells) == 600 and cells.cell_key.is_unique and set(cells.status) == {"done"}
        assert set(cells.attempts) == {1}
        assert lab.store.count_generations() == 600  # nothing logged twice


async def test_arun_works_from_a_running_loop(lab):
    exp = make_experiment(lab)
    run = await lab.experiments.arun(exp, ROWS[:3], progress=False)
    assert len(run.cells()) == 6
    await asyncio.sleep(0)
