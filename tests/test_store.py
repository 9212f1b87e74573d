"""The store under feedback: tables and migrations on both backends, and several processes
writing generations and feedback into one store at once (nothing lost, nothing raised)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest
import sqlalchemy as sa

import promptlab as pl
from promptlab.store import Store, utcnow
from promptlab.store import migrations
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


def schema(engine) -> dict:
    """Every table's columns (name, type family, nullability) and indexes, as the database says."""
    inspector = sa.inspect(engine)
    return {table: ({(c["name"], type(c["type"]).__name__, c["nullable"]) for c in inspector.get_columns(table)},
                    {(i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)})
            for table in inspector.get_table_names() if table not in ("promptlab_schema", "promptlab_alembic")}


def test_a_store_written_by_the_first_promptlab_upgrades_to_exactly_the_new_schema_and_works(tmp_path):
    """tests/fixtures/store_v1.sqlite was written by promptlab's first release (commit 4310e00):
    an action, two generations, a session."""
    old = tmp_path / "old.db"
    shutil.copy(os.path.join(os.path.dirname(__file__), "fixtures", "store_v1.sqlite"), old)
    with pl.Lab(old) as lab:
        assert lab.actions.get("writer").version == 1 and len(lab.generations.list()) == 2
        assert lab.actions.prompt("writer", {"text": "after the upgrade"}).status == "done"
        exp = lab.experiments.create("e", action_a="writer", action_b="writer")
        assert lab.experiments.run(exp, [{"text": "a"}], progress=False).status == "done"
        lab.feedback.log(lab.generations.list()[0].guid, rating="Positive")
        upgraded = schema(lab.store.engine)
    with pl.Lab(tmp_path / "new.db") as fresh:
        assert schema(fresh.store.engine) == upgraded  # one path: new and old databases end alike


def test_every_migration_is_frozen_and_head_is_the_last(db_url):
    from alembic.script import ScriptDirectory
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", migrations.SCRIPTS)
    assert ScriptDirectory.from_config(config).get_current_head() == migrations.HEAD
    for path in glob.glob(os.path.join(migrations.SCRIPTS, "versions", "0*.py")):
        text = open(path).read()
        assert "promptlab" not in text.split('"""', 2)[2]  # DDL written out, no import of today's tables
    store = Store(db_url)
    try:
        with store.read() as conn:
            assert migrations.current_revision(conn) == migrations.HEAD
    finally:
        store.close()


def test_the_migrated_database_has_every_table_and_column_the_code_queries(db_url):
    """The frozen revisions and today's table definitions (promptlab/store/schema.py and friends)
    are written separately: a column added to one and not the other fails here."""
    from promptlab.store import schema as tables

    store = Store(db_url)
    try:
        inspector = sa.inspect(store.engine)
        for table in tables.metadata.sorted_tables:
            columns = {c["name"]: c for c in inspector.get_columns(table.name)}
            assert set(columns) == set(table.columns.keys()), table.name
            for column in table.columns:
                assert columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
    finally:
        store.close()


def test_a_database_from_a_newer_promptlab_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'future.db'}"
    Store(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE promptlab_alembic SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(pl.StoreError, match="newer than this promptlab"):
        Store(url)


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


WORKER = """
import json, os, sys, time
import promptlab as pl

url, worker, n, gate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def wait_for(name):  # bounded: the parent opens each gate once every worker has reported
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(gate, name)):
        if time.monotonic() > deadline:
            sys.exit(f"worker {worker}: gate {name} never opened")
        time.sleep(0.01)

print("ready", flush=True)
wait_for("open")  # all workers open and migrate the fresh store at the same moment
with pl.Lab(url) as lab:
    lab.actions.create(f"echo-{worker}", prompt="{{text}}", model="sim:echo")
    print("opened", flush=True)
    wait_for("log")  # then all log at once
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
print(json.dumps({"worker": worker, "guids": guids}), flush=True)
"""


def _expect_line(proc: subprocess.Popen, word: str) -> None:
    line = proc.stdout.readline().strip()
    if line != word:
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"a worker said {line!r} instead of {word!r}; stderr:\n{err[-3000:]}")


@pytest.mark.timeout(300)
def test_processes_logging_at_once_lose_nothing(db_url, tmp_path):
    """Plain worker processes (one n-item workload each), started together by gate files, so
    the test depends on nothing but the store."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, db_url, str(w), str(PER_WORKER), str(tmp_path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)
               for w in range(WORKERS)]
    try:
        for proc in workers:
            _expect_line(proc, "ready")
        (tmp_path / "open").touch()
        for proc in workers:
            _expect_line(proc, "opened")
        (tmp_path / "log").touch()
        results = []
        for proc in workers:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err[-3000:]  # no worker raised
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()

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


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://"])
def test_an_in_memory_store_works_from_every_thread_and_leaves_nothing(url):
    with pl.Lab(url) as lab:
        lab.actions.create("echo", prompt="{{text}}", model="sim:echo")
        assert lab.actions.prompt("echo", "hello").msg == "hello"  # promptlab's loop and io threads
        exp = lab.experiments.create("e", action_a="echo", action_b="echo")
        assert lab.experiments.run(exp, [{"text": "a"}, {"text": "b"}], progress=False).status == "done"
        path = lab.store.url.split("sqlite:///", 1)[-1] if "memory" not in lab.store.safe_url else \
            lab.store.safe_url.split("sqlite:///", 1)[-1]
    assert not os.path.exists(path)
