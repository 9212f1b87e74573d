"""Export throughput and peak memory: ``lab.data.export(kind="feedback")`` on 1,000,000 rows.

    .venv/bin/python benchmarks/export.py               # 1,000,000 feedback rows (SQLite)
    .venv/bin/python benchmarks/export.py --rows 100000 # a quicker run

Builds a SQLite store with N generations and N feedback rows (bulk inserts through the store),
then measures, each in a fresh subprocess so that neither the build nor another measurement
counts towards its peak RSS (``ru_maxrss``):

- ``import``: Python + promptlab + an open Lab, nothing exported (the floor);
- ``export jsonl`` / ``export parquet``: ``lab.data.export(path, kind="feedback")``;
- ``naive``: the usual notebook way, ``pandas.read_sql`` of the same join, then ``to_json``.

Prints rows/s and peak RSS of each, and the naive/promptlab ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH = 20_000
SYSTEM = "You are a helpful writing assistant."
TASKS = ["Correct any grammar or spelling mistakes.", "Make it shorter.", "Make it friendlier."]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build(db: Path, rows: int) -> float:
    import promptlab as pl
    from promptlab.store import new_guid

    start = time.perf_counter()
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with pl.Lab(db) as lab:
        action = lab.actions.create("writer", system=SYSTEM, prompt="Review:\n{{task}}\n======\n{{content}}",
                                    model="sim:extractive")
        for first in range(0, rows, BATCH):
            gens, feedback = [], []
            for i in range(first, min(rows, first + BATCH)):
                task = TASKS[i % 3]
                content = f"Machine lerning is a branch of AI number {i}. It learns from data."
                created = t0 + timedelta(milliseconds=i)
                guid = new_guid()
                gens.append(dict(
                    guid=guid, status="done", action_guid=action.guid, action_name="writer", action_version=1,
                    environment="Production", input={"task": task, "content": content},
                    messages=[{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": f"Review:\n{task}\n======\n{content}"}],
                    output=f"Machine learning is a branch of AI number {i}.", model="sim:extractive",
                    params={"temperature": 0.2}, prompt_tokens=40, completion_tokens=12, cost_usd=0.0,
                    latency_ms=12.5, finish_reason="stop", cached=False, streaming=False,
                    ext_user_id=f"user-{i % 100}", created_at=created, finished_at=created))
                feedback.append(dict(
                    guid=new_guid(), generation_guid=guid, rating="Positive" if i % 3 else "Negative",
                    correction=f"Machine learning, a branch of AI ({i})." if i % 10 == 0 else None,
                    issue="Vague" if i % 7 == 0 else None, source="human", ext_user_id=f"reviewer-{i % 5}",
                    created_at=created + timedelta(seconds=1)))
            lab.store.bulk_insert_generations(gens)
            lab.store.insert_feedback(feedback)
    return time.perf_counter() - start


def child(mode: str, db: Path, out: Path) -> dict:
    """Runs in a fresh interpreter; returns what it measured."""
    import promptlab as pl

    lab = pl.Lab(db)
    result = {"mode": mode, "rows": 0, "seconds": 0.0}
    start = time.perf_counter()
    if mode in ("jsonl", "parquet"):
        result["rows"] = lab.data.export(out, kind="feedback").rows
    elif mode == "naive":
        import pandas as pd
        import sqlalchemy as sa

        from promptlab.store import schema
        from promptlab.store.feedback import feedback

        g = schema.generations
        query = (sa.select(feedback, g.c.action_name, g.c.action_version, g.c.environment, g.c.model,
                           g.c.input, g.c.messages, g.c.output)
                 .join(g, g.c.guid == feedback.c.generation_guid).order_by(feedback.c.id))
        with lab.store.engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        frame.to_json(out, orient="records", lines=True, date_format="iso")
        result["rows"] = len(frame)
    result["seconds"] = time.perf_counter() - start
    lab.close()
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def measure(mode: str, db: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", mode, "--db", str(db), "--out", str(out)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="reuse or create this SQLite file (default: a temp dir)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.db, args.out)))
        return

    workdir = Path(tempfile.mkdtemp(prefix="promptlab-bench-"))
    db = args.db or workdir / "bench.db"
    try:
        if not db.exists():
            seconds = build(db, args.rows)
            print(f"built {args.rows:,} generations + {args.rows:,} feedback rows in {seconds:.1f} s "
                  f"({2 * args.rows / seconds:,.0f} rows/s inserted)")
        print(f"store: SQLite, {db.stat().st_size / 2**20:,.0f} MB; python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs")
        runs = [measure("import", db, workdir / "none"),
                measure("jsonl", db, workdir / "feedback.jsonl"),
                measure("parquet", db, workdir / "feedback.parquet"),
                measure("naive", db, workdir / "naive.jsonl")]
        labels = {"import": "import + open Lab (floor)", "jsonl": "lab.data.export jsonl",
                  "parquet": "lab.data.export parquet", "naive": "pandas.read_sql + to_json"}
        print(f"{'':28}{'rows':>11}{'seconds':>10}{'rows/s':>11}{'peak RSS':>12}")
        for r in runs:
            rate = f"{r['rows'] / r['seconds']:,.0f}" if r["rows"] else "-"
            print(f"{labels[r['mode']]:28}{r['rows']:>11,}{r['seconds']:>10.1f}{rate:>11}"
                  f"{r['peak_rss_mb']:>9,.0f} MB")
        floor, jsonl, parquet, naive = runs
        over = {r["mode"]: r["peak_rss_mb"] - floor["peak_rss_mb"] for r in runs}
        print(f"peak RSS above the floor: export jsonl +{over['jsonl']:,.0f} MB, export parquet "
              f"+{over['parquet']:,.0f} MB, naive +{over['naive']:,.0f} MB")
        print(f"naive / lab.data.export jsonl: peak RSS x{naive['peak_rss_mb'] / jsonl['peak_rss_mb']:.1f}, "
              f"time x{naive['seconds'] / jsonl['seconds']:.2f}; "
              f"naive / export parquet: peak RSS x{naive['peak_rss_mb'] / parquet['peak_rss_mb']:.1f}, "
              f"time x{naive['seconds'] / parquet['seconds']:.2f}")
        sizes = {p.name: p.stat().st_size / 2**20 for p in workdir.glob("*.jsonl")}
        sizes.update({p.name: p.stat().st_size / 2**20 for p in workdir.glob("*.parquet")})
        print("files:", ", ".join(f"{name} {mb:,.0f} MB" for name, mb in sorted(sizes.items())))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
