"""lab.data: exports of every kind and format (parsed back field by field), filters, constant
memory, the secret scan, and dataset import. Tests using ``lab`` run on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import itertools
import json
import tracemalloc
from pathlib import Path

import httpx2
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import promptlab as pl
import promptlab.data as data_module
from promptlab.data import COLUMNS, Dataset
from promptlab.store import new_guid, utcnow

FORMATS = ("jsonl", "csv", "parquet")


def read_export(path: Path, kind: str) -> list[dict]:
    """An export file back as dicts, nested columns decoded (CSV: strings, '' as None)."""
    json_columns = {name for name, type_, _ in COLUMNS[kind] if type_ == "json"}
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if path.suffix == ".csv":
        with open(path, newline="") as handle:
            rows = [{k: (v if v != "" else None) for k, v in r.items()} for r in csv.DictReader(handle)]
    else:
        rows = pq.read_table(path).to_pylist()
    return [{k: json.loads(v) if k in json_columns and v is not None else v for k, v in r.items()}
            for r in rows]


# -- the round trip: run -> feedback -> export ----------------------------------------------------


@pytest.fixture
def rated(rec_lab, server):
    """Generations of one action with feedback covering every finetune/preference rule."""
    lab = rec_lab
    counter = itertools.count(1)
    server.reply = lambda body: f"answer {next(counter)}"
    lab.actions.create("qa", system="Be brief.", prompt="Q: {{q}}", model="rec:m")

    def ask(q, **kw):
        return lab.actions.prompt("qa", {"q": q}, **kw)

    g = {"a1": ask("A"), "a2": ask("A"), "b": ask("B"), "c": ask("C"), "d": ask("D", ext_user_id="u-9")}
    server.status = 500
    with pytest.raises(pl.ProviderServerError):
        ask("E")
    server.status = 200
    [g["failed"]] = lab.generations.list(status="error")
    g["f"] = ask("F")

    fb = lab.feedback
    fb.log(g["a1"].guid, rating="Positive", issue="Tone")
    fb.log(g["a2"].guid, rating=1)                                       # negative, no correction
    fb.log(g["b"].guid, rating="Negative", correction="B is b.", issue="Incorrect")
    fb.log(g["c"].guid, rating=2)
    fb.log(g["c"].guid, rating="negative", ext_user_id="u-2")            # latest wins: negative
    fb.log(g["failed"].guid, rating="Positive")                          # errors are never exported
    fb.log(g["f"].guid, score=1.0, evaluator="exact_match", source="evaluator")
    fb.log(g["f"].guid, rating=True, comment="good")
    fb.prefer(g["d"].guid, g["c"].guid, winner="a")
    fb.prefer(g["a1"].guid, g["a2"].guid, winner="tie")                  # ties are skipped
    fb.prefer(g["b"].guid, g["f"].guid, winner="b")
    return lab, g


def messages(q: str, answer: str | None = None) -> list[dict]:
    out = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Q: {q}"}]
    return out + ([{"role": "assistant", "content": answer}] if answer is not None else [])


@pytest.mark.parametrize("fmt", FORMATS)
def test_finetune_export_has_corrections_and_positives_only(rated, tmp_path, fmt):
    lab, g = rated
    result = lab.data.export(tmp_path / f"ft.{fmt}", kind="finetune")
    assert (result.rows, result.kind, result.format, result.path) == (3, "finetune", fmt, tmp_path / f"ft.{fmt}")
    assert read_export(result.path, "finetune") == [
        {"messages": messages("A", g["a1"].msg)},     # positive: its output
        {"messages": messages("B", "B is b.")},       # negative with a correction: the correction
        {"messages": messages("F", g["f"].msg)},      # rating=True alongside an evaluator score
    ]
    if fmt == "jsonl":  # exactly OpenAI's chat fine-tuning line format
        assert all(set(json.loads(line)) == {"messages"} for line in result.path.read_text().splitlines())


@pytest.mark.parametrize("fmt", FORMATS)
def test_preferences_export_pairs_pairwise_choices_and_opposite_ratings(rated, tmp_path, fmt):
    lab, g = rated
    result = lab.data.export(tmp_path / f"prefs.{fmt}", kind="preferences")
    assert read_export(result.path, "preferences") == [
        {"prompt": messages("D"), "chosen": g["d"].msg, "rejected": g["c"].msg, "chosen_guid": g["d"].guid,
         "rejected_guid": g["c"].guid, "origin": "pairwise", "action": "qa"},
        {"prompt": messages("F"), "chosen": g["f"].msg, "rejected": g["b"].msg, "chosen_guid": g["f"].guid,
         "rejected_guid": g["b"].guid, "origin": "pairwise", "action": "qa"},
        {"prompt": messages("A"), "chosen": g["a1"].msg, "rejected": g["a2"].msg, "chosen_guid": g["a1"].guid,
         "rejected_guid": g["a2"].guid, "origin": "ratings", "action": "qa"},
    ]
    assert result.rows == 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_feedback_export_joins_each_entry_with_its_generation(rated, tmp_path, fmt):
    lab, g = rated
    result = lab.data.export(tmp_path / f"fb.{fmt}", kind="feedback")
    rows = read_export(result.path, "feedback")
    assert result.rows == len(rows) == 8
    assert [r["rating"] for r in rows] == ["Positive", "Negative", "Negative", "Positive", "Negative",
                                           "Positive", None, "Positive"]
    by_guid = {gen.guid: gen for gen in g.values()}
    for row in rows:
        gen = by_guid[row["generation_guid"]]
        assert row["output"] == gen.msg and row["messages"] == gen.messages and row["input"] == gen.input
        assert (row["action"], row["model"], row["environment"]) == ("qa", "rec:m", "Production")
        assert row["generation_status"] == gen.status
    evaluator_row = rows[6]
    assert (evaluator_row["source"], evaluator_row["evaluator"]) == ("evaluator", "exact_match")
    assert float(evaluator_row["score"]) == 1.0
    assert rows[2]["correction"] == "B is b." and rows[2]["issue"] == "Incorrect"
    assert rows[4]["ext_user_id"] == "u-2"
    assert set(rows[0]) == {name for name, _t, _k in COLUMNS["feedback"]}


def test_generations_export_carries_the_latest_human_verdict(rated, tmp_path):
    lab, g = rated
    rows = {r["guid"]: r for r in read_export(lab.data.export(tmp_path / "g.jsonl", kind="generations").path,
                                               "generations")}
    assert len(rows) == 7
    assert (rows[g["c"].guid]["rating"], rows[g["b"].guid]["correction"]) == ("Negative", "B is b.")
    assert rows[g["f"].guid]["rating"] == "Positive" and rows[g["d"].guid]["rating"] is None
    assert rows[g["failed"].guid]["status"] == "error" and rows[g["failed"].guid]["error_type"] == "ProviderServerError"
    assert rows[g["a1"].guid]["messages"] == messages("A") and rows[g["a1"].guid]["input"] == {"q": "A"}
    df = lab.data.to_pandas(kind="generations")
    assert list(df.columns) == [name for name, _t, _k in COLUMNS["generations"]] and len(df) == 7
    schema = pq.read_schema(lab.data.export(tmp_path / "g.parquet", kind="generations").path)
    assert schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert (schema.field("prompt_tokens").type, schema.field("cached").type) == (pa.int64(), pa.bool_())


# -- filters --------------------------------------------------------------------------------------


def test_export_filters(rated, tmp_path):
    lab, g = rated
    v2 = lab.actions.update("qa", system="Be very brief.", deploy="Preview")
    preview = lab.actions.prompt("qa", {"q": "A"}, environment="preview")
    lab.feedback.log(preview.guid, rating="Positive")
    lab.store.update_generation(g["b"].guid, {"experiment_guid": "exp-1"})

    def guids(kind="generations", **filters):
        return [r.get("guid") or r.get("chosen_guid") for r in lab.data.rows(kind, **filters)]

    assert guids(version=v2.version) == guids(environment="Preview") == [preview.guid]
    assert guids(action="qa") == guids(action=v2.guid) and len(guids(action="qa")) == 8
    assert guids(action="nope") == []
    assert guids(experiment="exp-1") == [g["b"].guid]
    assert guids(ext_user_id="u-9") == [g["d"].guid]
    assert guids(rating="negative") == [g["a2"].guid, g["b"].guid, g["c"].guid]
    assert guids(rating=[1, 2], status="done") == guids(rating=["Negative", "Positive"], status="done")
    assert guids(status="error") == [g["failed"].guid]
    since = g["d"].created_at.isoformat()
    assert guids(since=since, until=g["f"].created_at) == [g["d"].guid, g["failed"].guid]
    assert guids(since=g["f"].created_at.replace(tzinfo=None)) == [g["f"].guid, preview.guid]  # naive = UTC

    feedback_rows = list(lab.data.rows("feedback", ext_user_id="u-2"))  # the feedback's own user
    assert [r["generation_guid"] for r in feedback_rows] == [g["c"].guid]
    assert [r["evaluator"] for r in lab.data.rows("feedback", source="evaluator")] == ["exact_match"]
    assert len(list(lab.data.rows("feedback", rating="Positive", version=1))) == 4
    ft = lab.data.export(tmp_path / "ft.jsonl", kind="finetune", environment="Preview")
    assert read_export(ft.path, "finetune") == [{"messages": [
        {"role": "system", "content": "Be very brief."}, {"role": "user", "content": "Q: A"},
        {"role": "assistant", "content": preview.msg}]}]
    assert guids("preferences", ext_user_id="u-9") == [g["d"].guid]   # either side of a pair
    assert guids("finetune", rating="Negative") == [None]              # finetune rows carry no guid


def test_bad_export_requests_are_clear_errors_and_write_nothing(lab, tmp_path):
    cases = [
        (dict(path=tmp_path / "x.jsonl", kind="everything"), pl.ConfigError, "unknown export kind 'everything'"),
        (dict(path=tmp_path / "x.jsonl", kind="feedback", format="xlsx"), pl.ConfigError, "unknown export format"),
        (dict(path=tmp_path / "x.txt", kind="feedback"), pl.ConfigError, "cannot tell the format.*x.txt"),
        (dict(path=tmp_path / "x.csv", kind="preferences", rating="Positive"), pl.ConfigError,
         r"unknown filter\(s\) \['rating'\] for kind='preferences'"),
        (dict(path=tmp_path / "x.csv", kind="feedback", colour="red"), pl.ConfigError, "colour"),
        (dict(path=tmp_path / "x.csv", kind="feedback", rating="meh"), pl.InvalidInputError, "invalid rating"),
        (dict(path=tmp_path / "x.csv", kind="feedback", version="two"), pl.InvalidInputError, "version"),
        (dict(path=tmp_path / "x.csv", kind="feedback", since="last week"), pl.InvalidInputError, "since="),
        (dict(path=tmp_path / "no" / "x.csv", kind="feedback"), pl.ConfigError, "folder.*does not exist"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            lab.data.export(**kwargs)
    assert list(tmp_path.iterdir()) == [] or all(p.name == "lab.db" or p.name.startswith("lab.db-")
                                                 for p in tmp_path.iterdir())
    with pytest.raises(pl.ConfigError, match="unknown export kind"):
        lab.data.to_pandas(kind="rows")


def test_format_argument_overrides_the_suffix_and_empty_exports_have_headers(lab, tmp_path):
    result = lab.data.export(tmp_path / "dump.data", kind="feedback", format="CSV")
    assert (result.rows, result.format) == (0, "csv")
    assert result.path.read_text().splitlines() == [",".join(n for n, _t, _k in COLUMNS["feedback"])]
    empty = lab.data.export(tmp_path / "empty.parquet", kind="generations")
    assert pq.read_table(empty.path).num_rows == 0
    assert pq.read_table(empty.path).schema.names == [n for n, _t, _k in COLUMNS["generations"]]


# -- streaming ----------------------------------------------------------------------------------


def _bulk_feedback(lab, n: int) -> None:
    now = utcnow()
    text = "x" * 1500  # ~1.5 KB of output per row, so buffering every row would show
    for start in range(0, n, 1000):
        gens = [dict(guid=new_guid(), status="done", action_name="bulk", action_version=1,
                     environment="Production", input={"q": i}, messages=[{"role": "user", "content": f"q{i}"}],
                     output=text, model="sim:echo", cached=False, streaming=False, created_at=now)
                for i in range(start, min(n, start + 1000))]
        lab.store.bulk_insert_generations(gens)
        lab.store.insert_feedback([dict(guid=new_guid(), generation_guid=r["guid"], rating="Positive",
                                        source="human", created_at=now) for r in gens])


def _export_peak(lab, path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        result = lab.data.export(path, kind="feedback")
        return result.rows, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_export_memory_does_not_grow_with_the_number_of_rows(lab, tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "BATCH_SIZE", 200)
    _bulk_feedback(lab, 1000)
    small_rows, small_peak = _export_peak(lab, tmp_path / "small.jsonl")
    _bulk_feedback(lab, 5000)
    big_rows, big_peak = _export_peak(lab, tmp_path / "big.jsonl")
    assert (small_rows, big_rows) == (1000, 6000)
    # Six times the rows (~9 MB of output text) must not need six times the memory.
    assert big_peak < small_peak * 1.5 + 512 * 1024, (small_peak, big_peak)
    assert big_peak < 4 * 1024 * 1024


# -- no secrets -----------------------------------------------------------------------------------

ENV_KEY = "sk-test-SECRET-9f8e7d"
OTHER_KEY = "sk-other-SECRET-1234"
SECRET_MARKERS = (ENV_KEY, OTHER_KEY, "SECRET", "Authorization", "authorization", "Bearer")


def test_no_secret_reaches_the_store_or_any_export(db_url, tmp_path, monkeypatch, server):
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    seen_auth: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        auth = request.headers.get("authorization", "")
        seen_auth.append(auth)
        if b"leak" in request.content:  # a server that echoes the key in its error message
            return httpx2.Response(401, json={"error": {"message": f"Incorrect API key provided: "
                                                        f"{auth.removeprefix('Bearer ')}",
                                                        "type": "invalid_request_error"}})
        return server.handler(request)

    def client():
        return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))

    counter = itertools.count(1)
    server.reply = lambda body: f"answer {next(counter)}"  # distinct outputs, so pairs are exported

    with pl.Lab(db_url) as lab:
        lab.providers.register("openai", base_url="http://openai.local/v1", api_key_env="OPENAI_API_KEY",
                               max_retries=0, http_client=client())
        lab.providers.register("keyed", base_url="http://keyed.local/v1", api_key=OTHER_KEY,
                               max_retries=0, http_client=client())
        lab.actions.create("env-keyed", prompt="{{q}}", model="gpt-4o-mini")   # bare name: openai
        lab.actions.create("inline-keyed", prompt="{{q}}", model="keyed:m")
        session = lab.sessions.create(action="env-keyed", ext_user_id="u-1")
        runs = [lab.actions.prompt("env-keyed", "hello", session=session.guid, cache=True),
                lab.actions.prompt("env-keyed", "hello", cache=True),
                lab.actions.prompt("inline-keyed", "hello"),
                lab.actions.prompt("inline-keyed", "hello", streaming=True).wait()]
        for action in ("env-keyed", "inline-keyed"):
            with pytest.raises(pl.AuthenticationError) as err:
                lab.actions.prompt(action, "leak")
            assert "SECRET" not in str(err.value)
        assert f"Bearer {ENV_KEY}" in seen_auth and f"Bearer {OTHER_KEY}" in seen_auth  # keys were used
        for run in runs:
            lab.feedback.log(run.guid, rating="Positive", correction="fine", issue="Tone", comment="ok")
        lab.feedback.log(runs[2].guid, rating="Negative")
        lab.feedback.prefer(runs[0].guid, runs[2].guid, winner="a")

        results = [lab.data.export(tmp_path / f"{kind}.{fmt}", kind=kind)
                   for kind in data_module.KINDS for fmt in FORMATS]
        assert all(r.rows > 0 for r in results)
        files = [r.path for r in results]
        dumped = {name: lab.store.dump_table(name) for name in lab.store.table_names()}
        assert dumped["generations"] and dumped["feedback"] and dumped["preferences"]
        assert any("Incorrect API key" in (r["error"] or "") for r in dumped["generations"])

    for name, rows in dumped.items():
        text = repr(rows)
        for marker in SECRET_MARKERS:
            assert marker not in text, f"{marker!r} found in table {name}"
    raw_files = files + ([p for p in tmp_path.glob("lab.db*")] if db_url.startswith("sqlite") else [])
    for path in raw_files:
        content = path.read_bytes()
        for marker in SECRET_MARKERS:
            assert marker.encode() not in content, f"{marker!r} found in {path.name}"


# -- dataset import -------------------------------------------------------------------------------

ROWS = [{"question": "What is 2+2?", "expected": "4"}, {"question": "Capital of France?", "expected": "Paris"}]


def test_import_dataset_reads_every_format_and_in_memory_data(lab, tmp_path):
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n\n")
    (tmp_path / "d.json").write_text(json.dumps(ROWS))
    (tmp_path / "d.csv").write_text("\ufeffquestion,expected\n\"What is 2+2?\",4\nCapital of France?,Paris\n")
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
    for name in ("d.jsonl", "d.json", "d.csv", "d.parquet"):
        ds = lab.data.import_dataset(tmp_path / name)
        assert isinstance(ds, Dataset) and ds.rows == ROWS and len(ds) == 2, name
        assert ds.columns == ["question", "expected"] and ds.has_expected
        assert ds.source.endswith(name)
    from_list = lab.data.import_dataset([{"topic": "ML"}, {"topic": "AI"}])
    assert list(from_list) == [{"topic": "ML"}, {"topic": "AI"}] and not from_list.has_expected
    frame = pd.DataFrame({"topic": ["ML", "AI"], "expected": ["x", float("nan")]})
    assert lab.data.import_dataset(frame).rows == [{"topic": "ML", "expected": "x"}, {"topic": "AI", "expected": None}]
    assert lab.data.import_dataset(from_list) is from_list
    assert lab.data.import_dataset(str(tmp_path / "d.csv")).to_pandas().equals(pd.DataFrame(ROWS))
    multiline = tmp_path / "m.csv"
    multiline.write_text('content,expected\n"line one\nline two",ok\n')
    assert lab.data.import_dataset(multiline).rows == [{"content": "line one\nline two", "expected": "ok"}]


@pytest.mark.parametrize("name, content, row, message", [
    ("bad.jsonl", '{"q": 1}\n{"q": 2}\n["not", "an", "object"]\n', 3, "must be an object"),
    ("bad.jsonl", '{"q": 1}\n{"q": 2\n', 2, "not valid JSON"),
    ("bad.jsonl", '{"q": 1}\n\n"just a string"\n', 3, "got str"),
    ("bad.csv", "q,expected\na,b\nc,d,e\n", 2, "3 fields, but the header has 2"),
    ("bad.csv", "q,expected\na,b\n\nc\n", 2, "1 fields"),
    ("bad.json", '[{"q": 1}, 7]', 2, "got int"),
    ("empty.jsonl", "", None, "has no rows"),
    ("empty.csv", "", None, "has no rows"),
    ("header-only.csv", "q,expected\n", None, "has no rows"),
    ("blank.jsonl", "\n\n", None, "has no rows"),
    ("dup.csv", "q,q\n1,2\n", None, "distinct, non-empty column names"),
])
def test_malformed_datasets_name_the_row(lab, tmp_path, name, content, row, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(pl.InvalidInputError, match=message) as err:
        lab.data.import_dataset(tmp_path / name)
    assert err.value.row == row
    if row is not None:
        assert str(err.value).startswith(f"row {row}:")


def test_dataset_sources_that_cannot_be_read(lab, tmp_path):
    with pytest.raises(pl.ConfigError, match="use a .csv/.json/.jsonl"):
        lab.data.import_dataset(tmp_path / "d.xlsx")
    with pytest.raises(pl.ConfigError, match="not found.*missing.csv"):
        lab.data.import_dataset(tmp_path / "missing.csv")
    with pytest.raises(pl.ConfigError, match="not int"):
        lab.data.import_dataset(42)
    with pytest.raises(pl.InvalidInputError) as err:
        lab.data.import_dataset([{"q": 1}, "two"])
    assert err.value.row == 2
    with pytest.raises(pl.InvalidInputError, match="no rows"):
        lab.data.import_dataset([])
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(pl.InvalidInputError, match="not a readable Parquet file"):
        lab.data.import_dataset(tmp_path / "junk.parquet")
    (tmp_path / "latin.csv").write_bytes("q\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(pl.InvalidInputError, match="not UTF-8"):
        lab.data.import_dataset(tmp_path / "latin.csv")


def test_exporting_to_a_folder_is_a_clear_error(lab, tmp_path):
    (tmp_path / "out.jsonl").mkdir()
    with pytest.raises(pl.ConfigError, match="is a folder, not a file"):
        lab.data.export(tmp_path / "out.jsonl", kind="generations")
