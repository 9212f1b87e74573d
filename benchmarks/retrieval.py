"""Retrieval quality and speed of promptlab context libraries.

Quality: recall@1/@3/@5 and MRR@10 of BM25, embeddings (all-MiniLM-L6-v2 int8, offline) and
hybrid (reciprocal rank fusion) on the labelled Larkspur help-center set in data/retrieval/
(90 articles, 51 queries, 9 of them with a tenant metadata filter). Recall@k counts the
relevant articles found in the top k; MRR is the mean of 1/rank of the first relevant one.

Speed: search latency (p50/p95, end to end through ``lab.contexts.search``, including the
store's revision check) over N synthetic chunks (default 100,000) with BM25, without and
with a metadata filter, against a baseline measured in the same run on the same chunks: a
brute-force Python scan counting query-token overlap per chunk (what a hand-written search
would do). Ratios are baseline / promptlab, so higher is better.

    .venv/bin/python benchmarks/retrieval.py                 # everything (~2-3 minutes)
    .venv/bin/python benchmarks/retrieval.py --chunks 20000  # a quicker speed run
    .venv/bin/python benchmarks/retrieval.py --skip-speed    # quality only
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import promptlab as pl  # noqa: E402
from promptlab.contexts.embeddings import embeddings_available  # noqa: E402
from promptlab.contexts.filters import compile_filter  # noqa: E402

DATA = ROOT / "data" / "retrieval"


def load_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# -- quality -------------------------------------------------------------------------------


def ranked_documents(results: list[dict]) -> list[str]:
    seen: list[str] = []
    for result in results:
        doc = result["record"]["document_id"]
        if doc not in seen:
            seen.append(doc)
    return seen


def quality(lab: pl.Lab, modes: list[str]) -> dict[str, dict[str, float]]:
    queries = load_jsonl(DATA / "queries.jsonl")
    table = {}
    for mode in modes:
        recalls = {1: [], 3: [], 5: []}
        reciprocal = []
        leaks = 0
        for q in queries:
            results = lab.contexts.search("help", q["query"], top_k=10, mode=mode,
                                          metadata_filter=q.get("filter"))
            ranked = ranked_documents(results)
            relevant = set(q["relevant"])
            for k in recalls:
                recalls[k].append(len(relevant & set(ranked[:k])) / len(relevant))
            rank = next((i for i, d in enumerate(ranked, 1) if d in relevant), None)
            reciprocal.append(1 / rank if rank else 0.0)
            if q.get("filter"):
                check = compile_filter(q["filter"])
                leaks += sum(not check(r["record"]["metadata"]) for r in results)
        table[mode] = {"recall@1": statistics.mean(recalls[1]), "recall@3": statistics.mean(recalls[3]),
                       "recall@5": statistics.mean(recalls[5]), "MRR@10": statistics.mean(reciprocal),
                       "filter leaks": leaks}
    return table


# -- speed ---------------------------------------------------------------------------------

TOKEN = re.compile(r"\w\w+")


def synthetic_corpus(n_chunks: int, seed: int = 7) -> tuple[list[dict], list[str]]:
    """Documents of ~5 chunks each, words drawn from a Zipf-like distribution over a
    20,000-word vocabulary (like natural text), 50 tenants."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20000)]
    weights = [1 / (i + 1) ** 1.07 for i in range(len(vocab))]
    cumulative = []
    total = 0.0
    for w in weights:
        total += w
        cumulative.append(total)

    def words(n: int) -> list[str]:
        return rng.choices(vocab, cum_weights=cumulative, k=n)

    docs = []
    per_doc = 5
    for d in range(n_chunks // per_doc):
        # five paragraphs of ~55 words: each becomes one chunk at chunk_size=400
        paragraphs = [" ".join(words(55)) + "." for _ in range(per_doc)]
        docs.append({"id": f"d{d}", "text": "\n\n".join(paragraphs),
                     "metadata": {"tenant": f"t{d % 50}", "year": 2015 + d % 10}})
    mid = vocab[200:5000]  # query words: neither stop-word-frequent nor unseen
    queries = [" ".join(rng.sample(mid, 3)) for _ in range(400)]
    return docs, queries


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return p50 * 1000, p95 * 1000


def timed(fn, items) -> list[float]:
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - start)
    return out


def speed(lab: pl.Lab, n_chunks: int, n_queries: int, n_baseline: int) -> dict:
    docs, queries = synthetic_corpus(n_chunks)
    lab.contexts.create("synthetic", chunk_size=400, overlap=0)
    start = time.perf_counter()
    for i in range(0, len(docs), 5000):
        lab.contexts.add("synthetic", docs[i:i + 5000])
    add_s = time.perf_counter() - start
    chunks = lab.contexts.get("synthetic").chunks
    start = time.perf_counter()
    lab.contexts.search("synthetic", queries[0], top_k=5)  # loads chunks, builds the index
    build_s = time.perf_counter() - start
    for warm in queries[-10:]:  # first-call costs (allocator, caches) are not search latency
        lab.contexts.search("synthetic", warm, top_k=5)

    tenant = {"tenant": "t7"}
    # A different filter for every query, so none is served from the filter-mask cache.
    pairs = [(a, b) for a in range(50) for b in range(a + 1, 50)]
    ranged = [{"tenant": {"$in": [f"t{a}", f"t{b}"]}, "year": {"$gte": 2018}}
              for a, b in pairs[:n_queries]]
    q = queries[1:n_queries + 1]
    plain = timed(lambda s: lab.contexts.search("synthetic", s, top_k=5), q)
    filtered = timed(lambda s: lab.contexts.search("synthetic", s, top_k=5, metadata_filter=tenant), q)
    varied = timed(lambda i: lab.contexts.search("synthetic", q[i], top_k=5,
                                                 metadata_filter=ranged[i]), range(len(q)))

    # Baseline: the same chunks, tokenised once up front (not timed), scanned per query.
    rows = lab.store.context_snapshot(lab.contexts.get("synthetic").guid)
    meta = {d["guid"]: d["metadata"] for d in rows["documents"]}
    chunk_tokens = [(set(TOKEN.findall(c["text"].lower())), meta[c["document_guid"]]) for c in rows["chunks"]]

    def scan(query: str, predicate=None):
        terms = set(TOKEN.findall(query.lower()))
        scored = ((len(terms & tokens), i) for i, (tokens, m) in enumerate(chunk_tokens)
                  if predicate is None or predicate(m))
        return heapq.nlargest(5, (s for s in scored if s[0] > 0))

    base_q = q[:n_baseline]
    base_plain = timed(scan, base_q)
    tenant_check = compile_filter(tenant)
    base_filtered = timed(lambda s: scan(s, tenant_check), base_q)
    return {"chunks": chunks, "add_s": add_s, "build_s": build_s, "queries": len(q),
            "baseline_queries": len(base_q),
            "bm25": percentiles(plain), "bm25+tenant filter": percentiles(filtered),
            "bm25+new filter each": percentiles(varied),
            "baseline": percentiles(base_plain), "baseline+tenant filter": percentiles(base_filtered)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--baseline-queries", type=int, default=30)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp, pl.Lab(os.path.join(tmp, "bench.db")) as lab:
        if not args.skip_quality:
            have_embeddings = embeddings_available()
            lab.contexts.create("help", index="hybrid" if have_embeddings else "bm25")
            lab.contexts.add("help", load_jsonl(DATA / "documents.jsonl"))
            modes = ["bm25"] + (["embeddings", "hybrid"] if have_embeddings else [])
            table = quality(lab, modes)
            n_queries = len(load_jsonl(DATA / "queries.jsonl"))
            print(f"Retrieval quality on data/retrieval ({lab.contexts.get('help').documents} "
                  f"documents, {n_queries} queries)")
            print(f"{'mode':<12}{'recall@1':>10}{'recall@3':>10}{'recall@5':>10}{'MRR@10':>10}"
                  f"{'filter leaks':>14}")
            for mode, row in table.items():
                print(f"{mode:<12}{row['recall@1']:>10.3f}{row['recall@3']:>10.3f}"
                      f"{row['recall@5']:>10.3f}{row['MRR@10']:>10.3f}{row['filter leaks']:>14d}")
            if not have_embeddings:
                print("(embeddings and hybrid skipped: pip install 'jupyter-promptlab[embeddings]')")
            print()
        if not args.skip_speed:
            result = speed(lab, args.chunks, args.queries, args.baseline_queries)
            print(f"Search latency over {result['chunks']:,} synthetic chunks (BM25, top_k=5, "
                  f"{result['queries']} queries; baseline {result['baseline_queries']} queries)")
            print(f"  add: {result['add_s']:.1f} s, first search (load + index build): "
                  f"{result['build_s']:.1f} s")
            print(f"{'':<26}{'p50 ms':>10}{'p95 ms':>10}{'p50 speed-up':>14}")
            pairs = [("bm25", "baseline"), ("bm25+tenant filter", "baseline+tenant filter"),
                     ("bm25+new filter each", "baseline+tenant filter")]
            for name, base in pairs:
                p50, p95 = result[name]
                ratio = result[base][0] / p50
                print(f"  {name:<24}{p50:>10.2f}{p95:>10.2f}{ratio:>13.0f}x")
            for name in ("baseline", "baseline+tenant filter"):
                p50, p95 = result[name]
                print(f"  {name:<24}{p50:>10.2f}{p95:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
