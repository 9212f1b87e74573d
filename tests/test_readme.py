"""The README's Python blocks run as written, and what their comments claim is true.

Every ```python block of README.md is executed, in order, in one namespace (as a reader pasting
them into one notebook would), in a fresh working directory with a fresh store and a copy of
``data/``. Offline: the tour uses ``sim:`` models; registering a provider and defining an action
on it do not call the network.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DATASET = ROOT / "data" / "support_tickets.jsonl"

FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return [(m.group(1).lower(), m.group(2)) for m in FENCE.finditer(text)]


def python_blocks(text: str) -> list[str]:
    return [body for lang, body in fenced_blocks(text) if lang in ("python", "py")]


def test_readme_starts_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    blocks = fenced_blocks(text)
    assert blocks, "README.md has no fenced blocks"
    lang, body = blocks[0]
    assert lang == "bash", f"the README's first block must be the bash set-up commands, not {lang!r}"
    commands = [line.split("#", 1)[0].strip() for line in body.splitlines() if line.split("#", 1)[0].strip()]
    assert commands == ["make demo", "make test"], commands
    # nothing but the title comes before it
    before = text[: text.index("```")]
    assert [line for line in before.splitlines() if line.strip()] == ["# promptlab"]


def test_readme_python_blocks_run_and_their_comments_hold(tmp_path, monkeypatch):
    text = README.read_text(encoding="utf-8")
    blocks = python_blocks(text)
    assert len(blocks) >= 2, "expected the 30-second tour and the provider example"
    assert "data/support_tickets.jsonl" in blocks[0]

    shutil.copytree(ROOT / "data", tmp_path / "data", ignore_dangling_symlinks=True)
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "readme.db"
    monkeypatch.setenv("PROMPTLAB_DB", f"sqlite:///{db}")
    monkeypatch.delenv("PROMPTLAB_MODEL", raising=False)
    for name in ("OPENAI_API_KEY", "OLLAMA_KEY"):  # the README needs no key
        monkeypatch.delenv(name, raising=False)

    source = "\n".join(blocks)
    ns: dict = {"__name__": "__readme__"}
    try:
        exec(compile(source, str(README), "exec"), ns)
        _check_claims(ns, tmp_path)
    finally:
        lab = ns.get("lab")
        if lab is not None:
            lab.close()


def _check_claims(ns: dict, tmp_path: Path) -> None:
    pl, lab, r, run = ns["pl"], ns["lab"], ns["r"], ns["run"]

    # the store is $PROMPTLAB_DB, in the temporary directory
    assert (tmp_path / "readme.db").exists()
    assert not (tmp_path / "promptlab.db").exists()

    # the first generation: a real answer with its figures
    assert isinstance(r.msg, str) and r.msg.strip()
    assert r.guid and r.usage and r.usage["total_tokens"] > 0
    assert r.cost_usd is not None and r.latency_ms is not None

    # "version 1, serving Production"; "version 2"; "Preview serves v2, Production still v1"
    assert [a.version for a in lab.actions.versions("reply")] == [1, 2]
    assert lab.actions.get("reply", environment="Production").version == 1
    assert lab.actions.get("reply", environment="Preview").version == 2
    assert lab.actions.get("reply").version == 1  # the default environment is Production
    v1, v2 = (lab.actions.get("reply", version=n) for n in (1, 2))
    assert v1.system != v2.system and v1.prompt == v2.prompt and v1.model == v2.model

    # the feedback was logged as written (the run's evaluator scores are feedback too, source="evaluator")
    feedback = lab.feedback.to_pandas()
    human = feedback[feedback["source"] == "human"]
    assert len(human) == 1
    assert human.iloc[0]["generation"] == r.guid
    assert human.iloc[0]["rating"] == "Positive" and human.iloc[0]["issue"] == "Too short"

    # the experiment compares the two versions: A runs v1 (Production), B runs v2 (Preview)
    exp = ns["exp"]
    assert {v.label: (v.action, v.environment) for v in exp.variants} == {
        "A": ("reply", "Production"), "B": ("reply", "Preview")}
    assert run.status == "done", (run.status, run.status_detail)
    variants = run.config["variants"]
    assert variants["A"]["action"] == variants["B"]["action"] == "reply"
    assert (variants["A"]["version"], variants["B"]["version"]) == (1, 2)
    cells = run.cells()
    used = cells.groupby("variant")["action_version"].unique().to_dict()
    assert {k: list(v) for k, v in used.items()} == {"A": [1], "B": [2]}
    assert (cells["status"] == "done").all()

    # "the dataset's columns: ticket_id, product, customer_message, and expected_contains"
    rows = [json.loads(line) for line in DATASET.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert {tuple(row) for row in rows} == {("ticket_id", "product", "customer_message", "expected_contains")}
    assert run.n_rows == len(rows)

    summary = run.summary()
    assert list(summary.index) == ["A", "B"]
    assert summary["n"].tolist() == [len(rows), len(rows)]
    assert summary["errors"].tolist() == [0, 0]
    assert run.errors().empty
    evaluator = "contains_any:{expected_contains}"
    assert evaluator in summary.columns
    assert summary[evaluator].notna().all()
    verdict = run.significance()
    assert isinstance(verdict.verdict, str) and verdict.verdict
    assert pl.charts.evaluator_means(run) is not None

    # the files the tour writes
    report = tmp_path / "report.html"
    assert report.is_file() and report.stat().st_size > 1000
    assert "warmth" in report.read_text(encoding="utf-8")
    lines = (tmp_path / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1, "only the Positive-rated generation qualifies for fine-tuning"
    messages = json.loads(lines[0])["messages"]
    assert messages[-1] == {"role": "assistant", "content": r.msg}
    assert messages[0] == {"role": "system", "content": "You are a support agent."}

    # the provider example: an action on a registered endpoint, defined without calling it
    local = lab.actions.get("local")
    assert local.model == "ollama:llama3" and local.version == 1

