"""How long ``run.significance()`` and ``run.analysis()`` take on a large run.

A run of N rows x 2 variants is written straight into a SQLite store (generations, cells and one
pass/fail and one continuous evaluator score each: what the runner writes, without calling a model), then timed:

- ``run.cells()``: reading the run's cells, the floor any analysis pays (the baseline);
- ``run.significance()``: the primary metric's verdict (paired exact McNemar on the rows, seeded
  paired bootstrap of 2,000 resamples);
- ``run.analysis()``: every metric (the evaluator, a continuous judge score, latency) with Holm.

    .venv/bin/python benchmarks/significance.py [--rows 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time

import promptlab as pl
from promptlab.feedback import feedback_row
from promptlab.store import new_guid, utcnow


def build(lab: pl.Lab, rows: int):
    lab.actions.create("a", prompt="{{q}}", model="sim:echo")
    lab.actions.create("b", prompt="B {{q}}", model="sim:echo")
    exp = lab.experiments.create("big", action_a="a", action_b="b")
    # The run records its evaluators as the runner does; the scores below are written under their names.
    evaluators = [pl.evaluators.json_valid(), pl.evaluators.length(max_words=10)]
    run = lab.experiments.start(exp, ({"q": f"question {i}"} for i in range(rows)), evaluators=evaluators)
    rnd = random.Random(1)
    now = utcnow()
    batch_generations, batch_cells, batch_scores = [], [], []
    for i in range(rows):
        for variant, share in (("A", 0.50), ("B", 0.52)):
            guid = new_guid()
            batch_generations.append(dict(guid=guid, status="done", action_name=variant.lower(), action_version=1,
                                          output="answer", model="sim:echo", latency_ms=rnd.gauss(300, 40),
                                          cost_usd=0.0, prompt_tokens=10, completion_tokens=5, run_guid=run.guid,
                                          experiment_guid=exp.guid, variant=variant, repeat=0, created_at=now))
            batch_cells.append(dict(run_guid=run.guid, cell_key=f"{i}:{variant}:0", row_index=i, variant=variant,
                                    repeat=0, status="done", generation_guid=guid, updated_at=now))
            batch_scores.append(feedback_row(guid, score=float(rnd.random() < share), evaluator="json_valid",
                                             source="evaluator"))
            batch_scores.append(feedback_row(guid, score=rnd.random(), evaluator="length:words<=10", source="evaluator"))
        if len(batch_cells) >= 20_000 or i == rows - 1:
            lab.store.record_cells(batch_generations, batch_cells, batch_scores)
            batch_generations, batch_cells, batch_scores = [], [], []
    lab.store.update_run(run.guid, status="done")
    return lab.experiments.get_run(run.guid)


def timed(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="promptlab-bench-")
    with pl.Lab(os.path.join(folder, "bench.db")) as lab:
        started = time.perf_counter()
        run = build(lab, args.rows)
        print(f"wrote a run of {args.rows:,} rows x 2 variants in {time.perf_counter() - started:.1f} s")
        cells = timed(run.cells, args.rounds)
        verdict = timed(run.significance, args.rounds)
        analysis = timed(run.analysis, args.rounds)
        print(f"run.cells()        {cells:6.2f} s   (baseline: reading the cells)")
        print(f"run.significance() {verdict:6.2f} s   {verdict / cells:4.2f}x the baseline")
        print(f"run.analysis()     {analysis:6.2f} s   {analysis / cells:4.2f}x the baseline")
        print(run.significance())


if __name__ == "__main__":
    main()
