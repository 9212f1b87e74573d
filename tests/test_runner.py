"""The experiment runner under the simulator's injected faults: counts, never wall time."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import httpx2
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
from tests.conftest import served_simulator, sim_requests
from tests.faulty_servers import FaultyServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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


# -- truthful statuses, fail fast, breaker, leases, interrupts -----------------------------------


def test_a_variant_whose_first_cells_all_miss_a_variable_stops_the_run_with_the_cause(lab):
    lab.actions.create("writer", prompt="{{task}}\n======\n{{content}}", model="sim:extractive")
    lab.actions.create("ok", prompt="{{message}}", model="sim:extractive")
    exp = lab.experiments.create("wrong-columns", action_a="writer", action_b="ok")
    with pytest.raises(pl.RunFailedError, match=r"first 5 cells of variant A all failed with MissingVariablesError"
                                                r".*dataset's columns are: message") as failure:
        lab.experiments.run(exp, ROWS * 10, concurrency=4, progress=False)
    run = lab.experiments.get_run(failure.value.run_guid)
    assert isinstance(failure.value.cause, pl.MissingVariablesError)
    assert run.status == "failed" and "MissingVariablesError" in run.status_detail
    assert len(run.cells()) < 40  # it stopped within the first few cells, not after all 240
    errors = run.errors()
    assert list(errors.columns) == ["variant", "error_type", "count", "example"]
    assert errors.iloc[0].error_type == "MissingVariablesError" and "'task'" in errors.iloc[0].example
    summary = run.summary()
    assert "MissingVariablesError" in summary.loc["A", "error_causes"]
    assert "Every cell of A failed" in str(run.significance())


@pytest.mark.parametrize("problem", ["missing key", "unknown model"])
def test_deterministic_provider_errors_stop_the_run_early(lab, server, problem, monkeypatch):
    if problem == "missing key":
        monkeypatch.delenv("NO_SUCH_KEY_ENV", raising=False)
        lab.providers.register("keyed", base_url="http://rec.local/v1", api_key_env="NO_SUCH_KEY_ENV",
                               http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(server.handler)))
        model, cause = "keyed:m", pl.AuthenticationError
    else:
        server.status = 404
        lab.providers.register("rec", base_url="http://rec.local/v1", api_key="k",
                               http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(server.handler)))
        model, cause = "rec:no-such-model", pl.ProviderRequestError
    lab.actions.create("a", prompt="{{message}}", model=model)
    lab.actions.create("b", prompt="{{message}}", model="sim:echo")
    exp = lab.experiments.create("det", action_a="a", action_b="b")
    with pytest.raises(pl.RunFailedError, match="first 5 cells of variant A") as failure:
        lab.experiments.run(exp, ROWS * 10, concurrency=2, progress=False)
    assert isinstance(failure.value.cause, cause)
    assert len(server.bodies) < 10  # stopped before sending more
    assert lab.experiments.get_run(failure.value.run_guid).status == "failed"


def test_a_run_with_some_failed_cells_is_done_with_errors_and_says_why(lab):
    exp = make_experiment(lab)
    rows = ROWS[:6] + [{"other": "no message here"}]
    run = lab.experiments.run(exp, rows, concurrency=4, progress=False)
    assert run.status == "done_with_errors"
    assert "2 of 14 cells failed: 1 x MissingVariablesError (A); 1 x MissingVariablesError (B)" in run.status_detail
    assert run.summary().loc["A", "errors"] == 1


def test_resume_without_evaluators_scores_with_the_recorded_ones(lab):
    exp = make_experiment(lab)
    first = lab.experiments.start(exp, ROWS, evaluators=[pl.evaluators.contains("refund"),
                                                         pl.evaluators.length(max_words=200)])
    lab.experiments.run(exp, resume=first, shard=(0, 2), progress=False,
                        evaluators=[pl.evaluators.contains("refund"), pl.evaluators.length(max_words=200)])
    run = lab.experiments.run(exp, resume=first, progress=False)  # no evaluators passed
    assert run.status == "done"
    scored = lab.store.run_feedback(run.guid)
    assert len(scored) == 2 * len(run.cells())  # every cell has both scores
    assert {f["evaluator"] for f in scored} == {"contains:refund", "length:words<=200"}


def test_resume_names_a_custom_evaluator_it_cannot_rebuild(lab):
    exp = make_experiment(lab)

    def polite(output, row):
        return "please" in output.lower()

    run = lab.experiments.start(exp, ROWS, evaluators=[polite])
    with pytest.raises(pl.ConfigError, match="evaluator 'polite'.*pass it again"):
        lab.experiments.run(exp, resume=run, progress=False)
    with pytest.raises(pl.ConfigError, match="was not scored by"):
        lab.experiments.run(exp, resume=run, progress=False, evaluators=[polite, pl.evaluators.contains("x")])
    done = lab.experiments.run(exp, resume=run, progress=False, evaluators=[polite])
    assert done.status == "done" and len(lab.store.run_feedback(run.guid)) == len(done.cells())


def test_resume_true_continues_the_latest_unfinished_run_or_starts_one(lab):
    exp = make_experiment(lab)
    first = lab.experiments.start(exp, ROWS)
    assert lab.experiments.latest_unfinished(exp).guid == first.guid
    again = lab.experiments.run(exp, resume=True, progress=False)
    assert again.guid == first.guid and again.status == "done"
    assert lab.experiments.latest_unfinished(exp) is None
    fresh = lab.experiments.run(exp, ROWS, resume=True, progress=False)
    assert fresh.guid != first.guid and fresh.status == "done"


def test_a_live_run_cannot_be_resumed_twice_and_a_killed_ones_lease_is_taken_over(lab):
    exp = make_experiment(lab)
    run = lab.experiments.start(exp, ROWS)
    other = "elsewhere:123:abcd"  # another machine's live process
    lab.store.acquire_run_lease(run.guid, "*", other, ttl=60)
    lab.store.update_run(run.guid, status="running")
    assert run.status == "running"
    with pytest.raises(pl.RunInProgressError, match="another live process .*elsewhere:123") as busy:
        lab.experiments.run(exp, resume=run, progress=False)
    assert busy.value.owner == other and busy.value.run_guid == run.guid
    with pytest.raises(pl.RunInProgressError):
        lab.experiments.run(exp, resume=run, shard=(0, 2), progress=False)  # shards conflict with "*"
    lab.store.release_run_lease(run.guid, "*", other)
    # A process of this machine that no longer exists holds it: the lease is stale at once.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lab.store.acquire_run_lease(run.guid, "*", f"{socket.gethostname()}:{dead.stdout.strip()}:x", ttl=60)
    assert run.status == "interrupted" and "stopped without finishing" in run.status_detail
    done = lab.experiments.run(exp, resume=run, progress=False)
    assert done.status == "done" and lab.store.live_run_leases(run.guid) == []


def test_two_processes_resuming_one_run_call_the_provider_once_per_cell(db_url, tmp_path):
    with served_simulator("--latency-ms", "100") as (base, _):
        with pl.Lab(db_url) as lab:
            lab.providers.register("served", base_url=base + "/v1")
            lab.actions.create("a", prompt="{{m}}", model="served:echo")
            lab.actions.create("b", prompt="B {{m}}", model="served:echo")
            exp = lab.experiments.create("twice", action_a="a", action_b="b")
            run = lab.experiments.start(exp, [{"m": str(i)} for i in range(60)])
        script = textwrap.dedent(f"""
            import os, sys, time
            import promptlab as pl
            gate = {str(tmp_path / "go")!r}
            while not os.path.exists(gate):
                time.sleep(0.01)
            with pl.Lab({db_url!r}) as lab:
                lab.providers.register("served", base_url={base + "/v1"!r})
                try:
                    lab.experiments.run("twice", resume={run.guid!r}, concurrency=4, progress=False)
                    print("ran")
                except pl.RunInProgressError as exc:
                    print("busy", exc.owner)
        """)
        procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, cwd=REPO) for _ in range(2)]
        (tmp_path / "go").touch()
        outcomes = []
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err[-3000:]
            outcomes.append(out.split()[0])
        assert sorted(outcomes) == ["busy", "ran"]
        served = httpx2.get(base + "/sim/stats").json()
        assert served["requests"] == 120  # every cell's provider call happened once
        with pl.Lab(db_url) as lab:
            again = lab.experiments.get_run(run.guid)
            assert again.status == "done" and len(again.cells()) == 120
            assert lab.store.count_generations() == 120


def test_sigint_mid_run_stops_sending_within_a_second_and_resume_finishes_exactly_once(tmp_path):
    db = tmp_path / "sigint.db"
    with served_simulator("--latency-ms", "200") as (base, _):
        script = textwrap.dedent(f"""
            import promptlab as pl
            lab = pl.Lab({str(db)!r})
            lab.providers.register("served", base_url={base + "/v1"!r})
            lab.actions.create("a", prompt="{{{{m}}}}", model="served:echo")
            lab.actions.create("b", prompt="B {{{{m}}}}", model="served:echo")
            exp = lab.experiments.create("k", action_a="a", action_b="b")
            run = lab.experiments.start(exp, [{{"m": str(i)}} for i in range(300)])
            print(run.guid, flush=True)
            try:
                lab.experiments.run(exp, resume=run, concurrency=8, progress=False)
            except KeyboardInterrupt:
                print("interrupted", lab.experiments.get_run(run.guid).status, flush=True)
            lab.close()
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=REPO)
        run_guid = proc.stdout.readline().strip()
        with pl.Lab(db) as lab:
            deadline = time.monotonic() + 60
            while len(lab.store.cell_statuses(run_guid)) < 40:  # real progress first
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
                time.sleep(0.02)
            signalled_at = time.time()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
            assert "interrupted interrupted" in out, err[-3000:]
            stats = httpx2.get(base + "/sim/stats").json()
            assert stats["last_request_at"] <= signalled_at + 1.0  # nothing sent a second after Ctrl-C
            interrupted = lab.experiments.get_run(run_guid)
            assert interrupted.status == "interrupted"
            recorded = len(interrupted.cells())
            assert 40 <= recorded < 600
            before = stats["requests"]
            lab.providers.register("served", base_url=base + "/v1")
            run = lab.experiments.run("k", resume=run_guid, concurrency=16, progress=False)
            cells = run.cells()
            assert run.status == "done" and len(cells) == 600 and cells.cell_key.is_unique
            assert set(cells.attempts) == {1}  # no finished cell redone
            assert lab.store.count_generations() == 600
            assert httpx2.get(base + "/sim/stats").json()["requests"] - before == 600 - recorded


# -- deadlines and the circuit breaker against servers that misbehave ---------------------------------


def faulty_experiment(lab, server, name):
    """An A/B experiment whose two actions call ``server`` (a FaultyServer) as provider ``faulty``."""
    lab.providers.register("faulty", base_url=server.base_url, api_key="k")
    lab.actions.create("a", prompt="{{message}}", model="faulty:m")
    lab.actions.create("b", prompt="B {{message}}", model="faulty:m")
    return lab.experiments.create(name, action_a="a", action_b="b")


def test_cells_against_a_trickling_server_end_at_their_deadline_and_the_breaker_ends_the_run(lab):
    with FaultyServer("trickle", interval=1.0) as server:
        exp = faulty_experiment(lab, server, "trickle")
        started = time.monotonic()
        with pytest.raises(pl.RunFailedError, match="stopped answering") as failure:
            lab.experiments.run(exp, ROWS * 4, concurrency=4, attempt_timeout=0.5, cell_timeout=1.5,
                                max_attempts=3, progress=False,
                                breaker={"give_up_after": 2.0, "cooldown": 0.2})
        assert time.monotonic() - started < 30  # without deadlines: minutes per cell
        assert isinstance(failure.value.cause, pl.ProviderTimeoutError)
        run = lab.experiments.get_run(failure.value.run_guid)
        assert run.status == "failed" and "stopped answering" in run.status_detail
        cells = run.cells()
        assert set(cells.status) <= {"error"} and set(cells.error_type) <= {"ProviderTimeoutError"}
        assert len(cells) < 96  # the rest were never sent: resume runs them
        for g in lab.generations.list(run=run.guid, limit=None):
            assert (g.finished_at - g.created_at).total_seconds() < 1.5 + 5  # the cell deadline, plus slack


def test_a_provider_that_dies_mid_run_is_noticed_and_resume_finishes_on_a_live_one(lab):
    with FaultyServer("die_after", n=20) as server:
        exp = faulty_experiment(lab, server, "dies")
        rows = [{"message": f"row {i}"} for i in range(200)]
        started = time.monotonic()
        with pytest.raises(pl.RunFailedError, match="stopped answering") as failure:
            lab.experiments.run(exp, rows, concurrency=4, progress=False,
                                breaker={"give_up_after": 2.0, "cooldown": 0.2})
        assert time.monotonic() - started < 60
        run = lab.experiments.get_run(failure.value.run_guid)
        counts = lab.store.cell_counts(run.guid)
        assert counts.get("done", 0) == 20  # each answer recorded once
        assert sum(counts.values()) < 100  # it stopped instead of failing all 400 cells
        assert run.status == "failed" and "resume" in str(failure.value)
    with FaultyServer("ok") as healthy:
        lab.providers.register("faulty", base_url=healthy.base_url, api_key="k")
        done = lab.experiments.run(exp, resume=run, retry_errors=True, progress=False)
        assert done.status == "done" and len(done.cells()) == 400
        assert healthy.requests == 400 - 20  # the 20 answered cells were not redone


def test_bad_deadline_breaker_and_fail_fast_options_are_clear_errors(lab):
    exp = make_experiment(lab)
    for options, field in [({"attempt_timeout": 0}, "attempt_timeout"), ({"cell_timeout": -1}, "cell_timeout"),
                           ({"fail_fast_after": 0}, "fail_fast_after"), ({"breaker": {"threshold": 2}}, "breaker"),
                           ({"breaker": {"nope": 1}}, "nope")]:
        with pytest.raises(pl.ConfigError, match=field):
            lab.experiments.run(exp, ROWS, progress=False, **options)
    with pytest.raises(pl.NotFoundError, match="no run 'no-such-run'"):
        lab.experiments.run(exp, resume="no-such-run", progress=False)
    with pytest.raises(pl.ConfigError, match="no unfinished run .* pass a dataset"):
        lab.experiments.run(exp, resume=True, progress=False)
    with pytest.raises(pl.ConfigError, match="call_timeout"):
        pl.Lab(lab.store.url, call_timeout=0)
    assert lab.experiments.runs(exp) == []  # bad options recorded no run
