"""The gateway's HTTP API through httpx2's ASGI transport, on SQLite and PostgreSQL stores.

Requests go through the real app (routing, auth, validation, error mapping) into a real Lab whose
models are the in-process simulator (or the recording fake for provider failures).
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass

import httpx2
import pytest

import promptlab as pl
from promptlab.gateway import ApiKeys, create_app
from promptlab.providers.openai import LiveASGITransport

SEED_ACTION = "6942f034-6872-4eed-9bb3-7e3bf18e5743"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24


@dataclass
class Gateway:
    lab: pl.Lab
    app: object
    token: str


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_actions(lab: pl.Lab) -> None:
    lab.actions.create("writer", system="You are a helpful writing assistant.",
                       prompt="Review this content and make the following changes:\n{{task}}\n======\n{{content}}",
                       model="sim:extractive")
    lab.actions.create("ml", prompt="{{topic}}", model="sim:extractive")
    lab.actions.create("vision", system="You describe images.", model="sim:extractive")


@pytest.fixture
def gw(lab):
    make_actions(lab)
    _, token = ApiKeys(lab.store).create("tests", ["run", "feedback"])
    return Gateway(lab, create_app(lab), token)


@pytest.fixture
async def client(gw):
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=gw.app), base_url="http://gw.test",
                                  headers=bearer(gw.token)) as c:
        yield c


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        name = data = None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: "):])
        events.append((name, data))
    return events


# -- running actions ------------------------------------------------------------------------


async def test_run_action_returns_the_seed_shape_and_logs_the_generation(gw, client):
    r = await client.post("/v1/actions/", json={"action": "ml", "input": "Write a sentence about Machine Learning."})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["streaming"] is False and body["status"] == "done"
    assert "Machine Learning" in body["msg"]
    assert body["feedback_url"] == f"http://gw.test/v1/data/{body['guid']}"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"] > 0
    stored = gw.lab.generations.get(body["guid"])
    assert stored.msg == body["msg"] and stored.status == "done" and stored.action == "ml"


async def test_variables_environment_user_and_cache(gw, client):
    gw.lab.actions.update("writer", prompt="v2: {{task}} / {{content}}")
    gw.lab.actions.deploy("writer", version=2, environment="Preview")
    variables = {"task": "Correct any grammar or spelling mistakes.", "content": "Teh cat sat."}
    prod = (await client.post("/v1/actions/", json={"action": "writer", "input": variables})).json()
    preview = (await client.post("/v1/actions/", json={"action": "writer", "input": variables,
                                                       "environment": "Preview", "extUserId": "elon-alt@x.ai"})).json()
    assert (prod["action_version"], prod["environment"]) == (1, "Production")
    assert (preview["action_version"], preview["environment"]) == (2, "Preview")
    assert preview["ext_user_id"] == "elon-alt@x.ai"
    assert gw.lab.generations.get(preview["guid"]).ext_user_id == "elon-alt@x.ai"
    pinned = (await client.post("/v1/actions/", json={"action": "writer", "input": variables, "version": 2})).json()
    assert pinned["action_version"] == 2
    first = (await client.post("/v1/actions/", json={"action": "ml", "input": "cache me", "cache": True})).json()
    second = (await client.post("/v1/actions/", json={"action": "ml", "input": "cache me", "cache": True})).json()
    assert (first["cached"], second["cached"]) == (False, True) and first["msg"] == second["msg"]
    assert first["guid"] != second["guid"]


async def test_action_url_without_trailing_slash_and_by_guid(gw, client):
    guid = gw.lab.actions.get("ml").guid
    r = await client.post("/v1/actions", json={"action": guid, "input": "hello"})
    assert r.status_code == 200 and r.json()["action"] == "ml"


async def test_public_url_is_used_in_feedback_urls(gw):
    app = create_app(gw.lab, public_url="https://gw.example.com/")
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://internal:9",
                                  headers=bearer(gw.token)) as c:
        body = (await c.post("/v1/actions/", json={"action": "ml", "input": "x"})).json()
    assert body["feedback_url"] == f"https://gw.example.com/v1/data/{body['guid']}"


async def test_async_mode_answers_202_pending_then_the_data_point_is_done(gw, client):
    r = await client.post("/v1/actions/", json={"action": "ml", "input": "later", "async_mode": True})
    assert r.status_code == 202
    body = r.json()
    assert body["msg"] is None and body["status"] == "pending"
    assert gw.lab.store.generation_status(body["guid"]) is not None  # the row exists before the answer
    gw.lab.generations.wait(body["guid"], timeout=30)
    data = (await client.get(f"/v1/data/{body['guid']}")).json()
    assert data["status"] == "done" and "later" in data["msg"]


async def test_streaming_sends_start_deltas_and_done(gw, client):
    r = await client.post("/v1/actions/", json={"action": "ml", "input": "stream this please", "streaming": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    names = [name for name, _ in events]
    assert names[0] == "start" and names[-1] == "done" and set(names[1:-1]) == {"delta"} and len(names) > 3
    start, done = events[0][1], events[-1][1]
    assert start["guid"] == done["guid"] and start["feedback_url"].endswith(f"/v1/data/{done['guid']}")
    assert "".join(data["delta"] for name, data in events if name == "delta") == done["msg"]
    assert done["streaming"] is True and done["status"] == "done"
    assert gw.lab.generations.get(done["guid"]).msg == done["msg"]


async def test_streaming_is_delivered_as_it_is_generated(db_url):
    """Through a transport that does not buffer, the start event arrives while the row is pending."""
    with pl.Lab(db_url, sim_options={"token_latency_ms": 40}) as lab:
        make_actions(lab)
        _, token = ApiKeys(lab.store).create("t", ["run"])
        transport = LiveASGITransport(create_app(lab))
        async with httpx2.AsyncClient(transport=transport, base_url="http://gw.test", headers=bearer(token)) as c:
            async with c.stream("POST", "/v1/actions/", json={"action": "ml", "streaming": True,
                                                              "input": "one two three four five six"}) as r:
                text, chunks = "", r.aiter_text()
                async for chunk in chunks:
                    text += chunk
                    if "\n\n" in text:
                        break
                start = sse_events(text.split("\n\n")[0])[0][1]
                assert lab.store.generation_status(start["guid"]) == "pending"
                async for chunk in chunks:
                    text += chunk
        assert sse_events(text)[-1][0] == "done"
        assert lab.store.generation_status(start["guid"]) == "done"


async def test_provider_failure_is_502_with_the_promptlab_message(rec_lab, server):
    rec_lab.actions.create("flaky", prompt="{{q}}", model="rec:m1")
    _, token = ApiKeys(rec_lab.store).create("t", ["run"])
    server.status = 500
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(rec_lab)),
                                  base_url="http://gw.test", headers=bearer(token)) as c:
        r = await c.post("/v1/actions/", json={"action": "flaky", "input": "hi"})
        assert r.status_code == 502
        assert r.json()["error"]["type"] == "ProviderServerError" and "[rec]" in r.json()["error"]["message"]
        streamed = await c.post("/v1/actions/", json={"action": "flaky", "input": "hi", "streaming": True})
    events = sse_events(streamed.text)
    assert [name for name, _ in events] == ["start", "error"]
    assert events[1][1]["status"] == 502 and events[1][1]["error"]["type"] == "ProviderServerError"
    statuses = [g.status for g in rec_lab.generations.list()]
    assert statuses == ["error", "error"]  # both failures are logged


# -- multi-modal ----------------------------------------------------------------------------


async def test_the_seeds_multimodal_request(gw, client):
    url = ("https://upload.wikimedia.org/wikipedia/commons/thumb/d/dd/Gfp-wisconsin-madison-the-nature-boardwalk.jpg/"
           "2560px-Gfp-wisconsin-madison-the-nature-boardwalk.jpg")
    r = await client.post("/v1/actions/", json={
        "action": "vision", "input": "",
        "messages": [{"role": "user", "content": "What is in this image?", "files": [url]}]})
    assert r.status_code == 200, r.text
    assert "1 image received" in r.json()["msg"]
    sent = (await client.get(f"/v1/data/{r.json()['guid']}")).json()["messages"]
    assert sent[-1] == {"role": "user", "content": [{"type": "text", "text": "What is in this image?"},
                                                    {"type": "image_url", "image_url": {"url": url}}]}
    assert [m["role"] for m in sent] == ["system", "user"]  # "input": "" adds no empty message


async def test_files_as_base64_become_data_urls_and_paths_are_refused(gw, client, tmp_path):
    encoded = base64.b64encode(PNG).decode()
    r = await client.post("/v1/actions/", json={"action": "vision", "messages": [
        {"role": "user", "content": "look", "files": [encoded]}]})
    assert r.status_code == 200, r.text
    part = (await client.get(f"/v1/data/{r.json()['guid']}")).json()["messages"][-1]["content"][1]
    assert part["image_url"]["url"] == f"data:image/png;base64,{encoded}"
    secret_image = tmp_path / "server-side.png"
    secret_image.write_bytes(PNG)
    before = gw.lab.store.count_generations()
    r = await client.post("/v1/actions/", json={"action": "vision", "messages": [
        {"role": "user", "content": "look", "files": [str(secret_image)]}]})
    assert r.status_code == 422 and "is not an http(s) URL" in r.json()["error"]["message"]
    assert gw.lab.store.count_generations() == before


# -- validation and errors --------------------------------------------------------------------


@pytest.mark.parametrize("payload, where", [
    ({"input": "x"}, "'action' is required"),
    ({"action": "ml", "input": 5}, "body.input: must be a string or an object of variables"),
    ({"action": "ml", "input": "x", "streming": True}, "body.streming: Extra inputs are not permitted"),
    ({"action": "ml", "input": "x", "streaming": True, "async_mode": True}, "cannot both be true"),
    ({"action": "ml", "input": "x", "environment": "Preview", "version": 1}, "not both"),
    ({"action": "ml", "messages": [{"role": "robot", "content": "x"}]}, "body.messages.0.role"),
    ({"action": "ml", "extUserId": "a", "ext_user_id": "b"}, "disagree"),
    ({"action": "x" * 201}, "body.action: String should have at most 200 characters"),
])
async def test_invalid_run_requests_are_422_naming_the_field(client, payload, where):
    r = await client.post("/v1/actions/", json=payload)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["type"] == "validation_error"
    assert where in r.json()["error"]["message"]


async def test_promptlab_errors_map_to_4xx(gw, client):
    missing = await client.post("/v1/actions/", json={"action": "writer", "input": {"task": "only task"}})
    assert missing.status_code == 422 and missing.json()["error"]["type"] == "MissingVariablesError"
    assert "'content'" in missing.json()["error"]["message"]
    unknown = await client.post("/v1/actions/", json={"action": "nope", "input": "x"})
    assert unknown.status_code == 404 and "no action 'nope'" in unknown.json()["error"]["message"]
    no_session = await client.post("/v1/actions/", json={"action": "ml", "input": "x", "session": "s-1"})
    assert no_session.status_code == 404 and no_session.json()["error"]["type"] == "NotFoundError"
    not_deployed = await client.post("/v1/actions/", json={"action": "ml", "input": "x", "environment": "Staging"})
    assert not_deployed.status_code == 404 and "ml@Staging" in not_deployed.json()["error"]["message"]


async def test_malformed_bodies_are_4xx_not_5xx(client):
    for content in (b"{not json", b"[1, 2]", b"", b'{"action": "ml", "input": NaN}', b"null"):
        r = await client.post("/v1/actions/", content=content, headers={"content-type": "application/json"})
        assert r.status_code == 422, (content, r.text)
        assert r.json()["error"]["message"]
    deep = b'{"action": "ml", "input": {"a": ' + b"[" * 40 + b"]" * 40 + b"}}"
    r = await client.post("/v1/actions/", content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "nested more than" in r.json()["error"]["message"]
    assert (await client.get("/v1/nowhere")).status_code == 404
    assert (await client.get("/v1/nowhere")).json()["error"]["type"] == "not_found"


async def test_a_failing_database_is_a_503_whose_answer_and_log_carry_no_sql_or_values(gw, client, caplog):
    import sqlalchemy as sa

    with gw.lab.store.engine.begin() as conn:  # every generation write now fails in the database
        conn.execute(sa.text("ALTER TABLE generations RENAME TO generations_gone"))
    secret = "customer-secret-text-42"
    with caplog.at_level(logging.DEBUG):
        r = await client.post("/v1/actions/", json={"action": "ml", "input": {"topic": secret}})
    assert r.status_code == 503 and r.json()["error"]["type"] == "StoreError", r.text
    for text in (r.text, caplog.text):
        assert secret not in text and "INSERT" not in text.upper() and "[SQL" not in text
    assert "database write failed" in r.json()["error"]["message"]  # the driver's reason stays


async def test_oversized_bodies_are_413(client):
    big = {"action": "ml", "input": "x" * 1_100_000}
    r = await client.post("/v1/actions/", json=big)
    assert r.status_code == 413 and "limit is 1000000 bytes" in r.json()["error"]["message"]

    async def chunks():
        for _ in range(20):
            yield b" " * 100_000

    r = await client.post("/v1/actions/", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


# -- sessions ---------------------------------------------------------------------------------


async def test_sessions_carry_memory_across_runs(gw, client):
    r = await client.post("/v1/sessions", json={"action": "ml", "extUserId": "elon@musk.net",
                                                "name": "A conversation about X.com with Elon Musk"})
    assert r.status_code == 200, r.text
    session = r.json()
    assert session["ext_user_id"] == "elon@musk.net" and session["action"] == gw.lab.actions.get("ml").guid
    await client.post("/v1/actions/", json={"action": "ml", "input": "first turn", "session": session["guid"]})
    second = (await client.post("/v1/actions/", json={"action": "ml", "input": "second turn",
                                                       "session": session["guid"]})).json()
    assert second["session"] == session["guid"]
    sent = (await client.get(f"/v1/data/{second['guid']}")).json()["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["first turn", "second turn"]
    # The session's user goes with every generation of the session, as in the Python API.
    assert second["ext_user_id"] == "elon@musk.net"
    assert gw.lab.generations.get(second["guid"]).ext_user_id == "elon@musk.net"
    stored = (await client.get(f"/v1/sessions/{session['guid']}")).json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user", "assistant"]
    assert (await client.get("/v1/sessions/nope")).status_code == 404
    assert (await client.post("/v1/sessions", json={"action": "nope"})).status_code == 404


# -- feedback ---------------------------------------------------------------------------------


async def test_feedback_in_every_spelling_is_written_before_the_answer(gw, client):
    run = (await client.post("/v1/actions/", json={"action": "ml", "input": "rate me"})).json()
    guid = run["feedback_url"].rsplit("/", 1)[1]
    answers = [
        await client.post("/v1/feedback", json={"guid": guid, "rating": 2, "issue": "Vague",
                                                "correction": "Machine Learning is a category of AI."}),
        await client.post("/v1/feedback", json={"guid": guid, "rating": "Negative"}),
        await client.post("/v1/feedback", json={"data_guid": guid, "type": "rating", "value": 1}),
        await client.post(run["feedback_url"], json={"rating": "Positive", "extUserId": "u-9"}),
        await client.post(f"/v1/data/{guid}/feedback", json={"type": "correction", "value": "Better."}),
    ]
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert answers[0].json()["rating"] == "Positive" and answers[0].json()["generation"] == guid
    stored = gw.lab.feedback.list(guid)
    assert [(f.rating, f.correction, f.issue) for f in stored] == [
        ("Positive", "Machine Learning is a category of AI.", "Vague"), ("Negative", None, None),
        ("Negative", None, None), ("Positive", None, None), (None, "Better.", None)]
    assert stored[3].ext_user_id == "u-9"
    data = (await client.get(run["feedback_url"])).json()
    assert [f["guid"] for f in data["feedback"]] == [f.guid for f in stored]


@pytest.mark.parametrize("payload, status, text", [
    ({"guid": "no-such-generation", "rating": 2}, 404, "no generation 'no-such-generation'"),
    ({"rating": 2}, 422, "'guid'"),
    ({"guid": "G", "rating": 3}, 422, "body.rating"),
    ({"guid": "G", "issue": "Bad vibes"}, 422, "unknown issue tag 'Bad vibes'"),
    ({"guid": "G"}, 422, "at least one of rating"),
    ({"guid": "G", "type": "rating", "value": 5}, 422, "1 (negative) or 2 (positive)"),
    ({"guid": "G", "type": "rating"}, 422, "go together"),
    ({"guid": "G", "rating": 2, "type": "rating", "value": 1}, 422, "given twice"),
])
async def test_invalid_feedback_writes_nothing(gw, client, payload, status, text):
    guid = (await client.post("/v1/actions/", json={"action": "ml", "input": "x"})).json()["guid"]
    payload = {k: (guid if v == "G" else v) for k, v in payload.items()}
    r = await client.post("/v1/feedback", json=payload)
    assert r.status_code == status and text in r.json()["error"]["message"], r.text
    assert gw.lab.feedback.list() == []


async def test_feedback_url_and_body_must_agree(gw, client):
    guid = (await client.post("/v1/actions/", json={"action": "ml", "input": "x"})).json()["guid"]
    r = await client.post(f"/v1/data/{guid}/feedback", json={"guid": "other", "rating": 2})
    assert r.status_code == 422 and "URL names" in r.json()["error"]["message"]


# -- experiments and the formatted prompt -------------------------------------------------------


async def test_experiments_assign_sticky_variants_or_run_the_named_one(gw, client):
    gw.lab.actions.create("ml-b", prompt="B says: {{topic}}", model="sim:extractive")
    exp = gw.lab.experiments.create("tone", action_a="ml", action_b="ml-b", split=0.5)
    seen = {}
    for user in ("u1", "u2", "u3", "u4", "u5", "u6"):
        r = await client.post(f"/v1/experiments/{exp.guid}/prompt", json={"input": "hi", "extUserId": user})
        assert r.status_code == 200, r.text
        seen[user] = r.json()["variant"]
        assert r.json()["experiment"] == exp.guid
        again = (await client.post(f"/v1/experiments/{exp.guid}/prompt", json={"input": "hi", "extUserId": user})).json()
        assert again["variant"] == seen[user]  # sticky
    assert set(seen.values()) <= {"A", "B"}
    manual = (await client.post("/v1/actions/", json={"action": "ml-b", "input": "hi", "experiment": exp.guid,
                                                      "extUserId": next(u for u, v in seen.items() if v == "A")
                                                      if "A" in seen.values() else "u1"})).json()
    assert (manual["variant"], manual["action"], manual["experiment"]) == ("B", "ml-b", exp.guid)
    assigned = (await client.post("/v1/actions/", json={"input": "hi", "experiment": exp.guid, "extUserId": "u1"})).json()
    assert assigned["variant"] == seen["u1"]
    wrong = await client.post("/v1/actions/", json={"action": "writer", "input": "hi", "experiment": exp.guid})
    assert wrong.status_code == 422 and "not a variant" in wrong.json()["error"]["message"]
    assert (await client.post("/v1/experiments/nope/prompt", json={"input": "hi"})).status_code == 404
    logged = gw.lab.generations.list(experiment=exp.guid, limit=None)
    assert len(logged) == 14


async def test_formatted_prompt_matches_the_library(gw, client):
    variables = {"task": "Fix typos", "content": "Teh cat"}
    r = await client.post("/v1/actions/prompt", json={"action": "writer", "input": variables})
    assert r.status_code == 200, r.text
    assert r.json()["messages"] == gw.lab.actions.get_action_prompt("writer", variables)
    assert (r.json()["action"], r.json()["action_version"]) == ("writer", 1)
    before = gw.lab.store.count_generations()
    gw.lab.actions.create("ml-b", prompt="B says: {{topic}}", model="sim:extractive")
    exp = gw.lab.experiments.create("tone", action_a="ml", action_b="ml-b")
    r = await client.post("/v1/actions/prompt", json={"experiment": exp.guid, "input": {"topic": "France"}})
    assert r.json()["variant"] == "A" and r.json()["messages"][-1]["content"] == "France"
    assert gw.lab.store.count_generations() == before  # no model call, nothing logged
    missing = await client.post("/v1/actions/prompt", json={"action": "writer", "input": {"task": "x"}})
    assert missing.status_code == 422 and "'content'" in missing.json()["error"]["message"]


async def test_the_experiment_forms_match_the_library(gw, client):
    gw.lab.actions.create("ml-b", prompt="B says: {{topic}}", model="sim:extractive")
    exp = gw.lab.experiments.create("tone", action_a="ml", action_b="ml-b")
    for user in ("u1", "u2", "u3", "u4", "u5", "u6"):
        shown = (await client.post("/v1/actions/prompt", json={"experiment": exp.guid, "input": {"topic": "France"},
                                                               "extUserId": user})).json()
        assert shown["messages"] == gw.lab.actions.get_action_prompt(
            experiment_guid=exp.guid, input={"topic": "France"}, ext_user_id=user)
        ran = (await client.post("/v1/actions/", json={"experiment": exp.guid, "input": "France",
                                                       "extUserId": user})).json()
        library = gw.lab.actions.prompt(experiment=exp.guid, input="France", ext_user_id=user)
        assert ran["variant"] == library.variant == shown["variant"]
        assert ran["msg"] == library.msg


# -- access -----------------------------------------------------------------------------------


async def test_keys_are_required_and_scoped(gw):
    keys = ApiKeys(gw.lab.store)
    _, feedback_only = keys.create("widget", ["feedback"])
    _, run_only = keys.create("app", ["run"])
    revoked_record, revoked = keys.create("old", ["run", "feedback"])
    keys.revoke(revoked_record.id)
    _, admin = keys.create("ops", ["admin"])
    transport = httpx2.ASGITransport(app=gw.app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://gw.test") as c:
        run = {"action": "ml", "input": "x"}
        assert (await c.post("/v1/actions/", json=run)).status_code == 401
        no_key = await c.post("/v1/actions/", json=run)
        assert no_key.headers["www-authenticate"] == "Bearer" and "missing API key" in no_key.json()["error"]["message"]
        wrong_secret = gw.token[:-4] + ("AAAA" if not gw.token.endswith("AAAA") else "BBBB")
        for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer pl_nothing", f"Bearer {wrong_secret}",
                       f"Bearer {revoked}", gw.token):
            r = await c.post("/v1/actions/", json=run, headers={"Authorization": header})
            assert r.status_code == 401, header
        forbidden = await c.post("/v1/actions/", json=run, headers=bearer(feedback_only))
        assert forbidden.status_code == 403 and "lacks the 'run' scope" in forbidden.json()["error"]["message"]
        guid = (await c.post("/v1/actions/", json=run, headers=bearer(run_only))).json()["guid"]
        assert (await c.post("/v1/feedback", json={"guid": guid, "rating": 2},
                             headers=bearer(run_only))).status_code == 403
        assert (await c.post("/v1/feedback", json={"guid": guid, "rating": 2},
                             headers=bearer(feedback_only))).status_code == 200
        assert (await c.get(f"/v1/data/{guid}", headers=bearer(feedback_only))).status_code == 403
        assert (await c.post("/v1/actions/", json=run, headers=bearer(admin))).status_code == 200
        assert (await c.get("/v1/health")).json()["status"] == "ok"  # no key needed


async def test_every_documented_operation_but_health_demands_a_key(gw):
    doc = gw.app.openapi()
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=gw.app), base_url="http://gw.test") as c:
        for path, operations in doc["paths"].items():
            for method, operation in operations.items():
                url = path.replace("{guid}", "some-guid")
                r = await c.request(method.upper(), url, json={})
                if path == "/v1/health":
                    assert "security" not in operation and r.status_code == 200
                else:
                    assert operation["security"] == [{"bearerAuth": []}], path
                    assert r.status_code == 401, (method, path, r.status_code)


async def test_the_key_never_reaches_the_store_or_the_logs(gw, client, caplog):
    caplog.set_level(logging.DEBUG)
    secret = gw.token.rsplit("_", 1)[1]
    run = (await client.post("/v1/actions/", json={"action": "ml", "input": "x", "extUserId": "u"})).json()
    await client.post("/v1/feedback", json={"guid": run["guid"], "rating": 2})
    await client.post("/v1/sessions", json={"action": "ml"})
    await client.post("/v1/actions/", json={"action": "nope", "input": "x"})
    await client.post("/v1/actions/", json={"action": "ml"}, headers=bearer(gw.token[:-1] + "x"))
    for table in gw.lab.store.table_names():
        dumped = json.dumps(gw.lab.store.dump_table(table), default=str)
        assert secret not in dumped and gw.token not in dumped, table
    assert secret not in caplog.text
