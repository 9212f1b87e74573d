"""The store under feedback: tables and migrations on both backends, and several processes
writing generations and feedback into one store at once (nothing lost, nothing raised)."""

from __future__ import annotations

import concurrent.futures
import multiprocessing

import pytest
import sqlalchemy as sa

import promptlab as pl
from promptlab.store import Store, utcnow
from promptlab.store import feedback as feedback_area
from promptlab.store.migrations import latest_version

WORKERS = 4
PER_WORKER = 50


def test_feedback_tables_exist_on_a_fresh_store(db_url):
    store = Store(db_url)
    try:
        assert {"feedback", "preferences"} <= set(store.table_names())
        columns = {c["name"] for c in sa.inspect(store.engine).get_columns("feedback")}
        assert {"id", "guid", "generation_guid", "rating", "correction", "issue", "comment", "score",
                "evaluator", "source", "ext_user_id", "metadata", "created_at"} == columns
        indexes = {i["name"] for i in sa.inspect(store.engine).get_indexes("feedback")}
        assert "ix_feedback_generation_id" in indexes
        assert store.schema_version == latest_version()
    finally:
        store.close()


def test_migration_2_adds_the_feedback_tables_to_an_older_store(db_url):
    store = Store(db_url)
    with store.write() as conn:  # make it look like a store written before migration 2
        for table in reversed(feedback_area.TABLES):
            table.drop(conn)
        conn.execute(sa.delete(sa.table("promptlab_schema", sa.column("version")))
                     .where(sa.column("version") == 2))
    store.close()
    reopened = Store(db_url)
    try:
        assert {"feedback", "preferences"} <= set(sa.inspect(reopened.engine).get_table_names())
        with reopened.read() as conn:
            versions = conn.execute(sa.text("SELECT version FROM promptlab_schema ORDER BY version")).scalars()
            assert list(versions) == list(range(1, latest_version() + 1))
    finally:
        reopened.close()


def test_feedback_for_an_unknown_generation_is_refused_by_the_store(db_url):
    store = Store(db_url)
    try:
        with pytest.raises(pl.NotFoundError, match="no generation 'ghost'"):
            store.insert_feedback([dict(guid="f1", generation_guid="ghost", source="human", rating="Positive",
                                        created_at=utcnow())])
        assert store.count_feedback() == 0
    finally:
        store.close()


# -- concurrency ----------------------------------------------------------------------------------


def _worker(url: str, worker: int, n: int, barrier) -> dict:
    """One process: open the (fresh) store, then log n generations, n feedback rows, one batch of
    n evaluator scores and n // 10 preferences, as fast as it can, alongside the others."""
    barrier.wait()  # all processes open and migrate the fresh store at the same moment
    with pl.Lab(url) as lab:
        lab.actions.create(f"echo-{worker}", prompt="{{text}}", model="sim:echo")
        barrier.wait()
        guids = []
        for i in range(n):
            text = f"worker {worker} item {i}"
            r = lab.actions.prompt(f"echo-{worker}", text, ext_user_id=f"w{worker}")
            assert r.msg == text, (r.msg, text)
            lab.feedback.log(r.guid, rating="Positive" if i % 2 else 1, ext_user_id=f"w{worker}")
            guids.append(r.guid)
            if i % 10 == 9:
                lab.feedback.prefer(guids[-1], guids[-2], winner="a")
        lab.feedback.log_many([{"guid": g, "score": 0.5, "evaluator": "length", "source": "evaluator"}
                               for g in guids])
        return {"worker": worker, "guids": guids}


@pytest.mark.timeout(240)
def test_processes_logging_at_once_lose_nothing(db_url):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(WORKERS, timeout=120)
        with concurrent.futures.ProcessPoolExecutor(WORKERS, mp_context=ctx) as pool:
            futures = [pool.submit(_worker, db_url, w, PER_WORKER, barrier) for w in range(WORKERS)]
            results = [f.result(timeout=200) for f in futures]  # re-raises any worker's exception

    all_guids = [g for r in results for g in r["guids"]]
    assert len(all_guids) == len(set(all_guids)) == WORKERS * PER_WORKER
    with pl.Lab(db_url) as lab:
        assert lab.store.count_generations() == WORKERS * PER_WORKER
        assert lab.store.count_generations(status="done") == WORKERS * PER_WORKER
        assert lab.store.count_feedback(source="human") == WORKERS * PER_WORKER
        assert lab.store.count_feedback(source="evaluator") == WORKERS * PER_WORKER
        assert len(lab.feedback.preferences()) == WORKERS * (PER_WORKER // 10)
        assert sorted(a.name for a in lab.actions.list()) == [f"echo-{w}" for w in range(WORKERS)]
        for w in range(WORKERS):
            assert lab.store.count_generations(ext_user_id=f"w{w}") == PER_WORKER
            assert lab.store.count_feedback(ext_user_id=f"w{w}") == PER_WORKER
        ratings = lab.feedback.ratings(all_guids)
        assert set(ratings) == set(all_guids)
        assert sum(v == "Positive" for v in ratings.values()) == WORKERS * (PER_WORKER // 2)
        assert sum(1 for _ in lab.data.rows("feedback")) == 2 * WORKERS * PER_WORKER
