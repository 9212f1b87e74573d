"""The offline simulator: pure answer rules, the ASGI app through the real openai client, and the
`promptlab sim serve` command as a real local server."""

from __future__ import annotations

import asyncio
import json

import anyio
import httpx2
import openai
import pytest

from promptlab.errors import ConfigError
from promptlab.providers.sim import create_app
from promptlab.providers.sim import models as sim_models
from promptlab.providers.sim.models import judge, respond, resolve_model, stream_pieces
from tests.conftest import served_simulator

STORE_POLICY = """Our store opens at 9am on weekdays.
Refunds are accepted within 30 days of purchase with a receipt.
Shipping is free on orders over $50. Gift cards cannot be refunded.
We are closed on public holidays."""


def ask(system: str | None, user: str) -> list[dict]:
    messages = [{"role": "system", "content": system}] if system is not None else []
    return messages + [{"role": "user", "content": user}]


QUESTION = f"Answer the customer's question from the policy.\n=====\n{STORE_POLICY}\nQuestion: Can I get a refund after two weeks?"


# --------------------------------------------------------------------------- pure rules


def test_extractive_is_a_deterministic_function_of_the_request():
    messages = ask("You are a support agent.", QUESTION)
    first = respond("extractive", messages, temperature=0.7, seed=3)
    again = respond("extractive", [dict(m) for m in messages], temperature=0.7, seed=3)
    assert first == again


def test_extractive_answers_from_the_prompts_own_content():
    text = respond("extractive", ask(None, QUESTION), temperature=0).text
    assert "Refunds are accepted within 30 days of purchase with a receipt." in text
    # A different question picks a different sentence of the same document.
    other = respond("extractive", ask(None, QUESTION.replace(
        "Can I get a refund after two weeks?", "When does the store open?")), temperature=0).text
    assert "opens at 9am" in other and "Refunds are accepted" not in other


def test_two_system_messages_without_cues_give_different_answers():
    a = respond("extractive", ask("You help customers of a hardware shop.", QUESTION), temperature=0).text
    b = respond("extractive", ask("Stay on topic at all times.", QUESTION), temperature=0).text
    assert a != b


def test_style_cues_change_the_answer_visibly():
    concise = respond("extractive", ask("Be concise.", QUESTION), temperature=0).text
    detailed = respond("extractive", ask("Give a detailed answer.", QUESTION), temperature=0).text
    assert len(concise) < len(detailed)

    bullets = respond("extractive", ask("Answer in bullet points.", QUESTION), temperature=0).text
    assert sum(line.startswith("- ") for line in bullets.splitlines()) == 3

    as_json = json.loads(respond("extractive", ask("Reply in JSON.", QUESTION), temperature=0).text)
    assert "Refunds are accepted" in as_json["answer"]

    formal = respond("extractive", ask("Write formally.", QUESTION), temperature=0).text
    assert formal.startswith("Dear customer,")

    upset = QUESTION + "\nMy parcel arrived damaged and I am frustrated."
    friendly = respond("extractive", ask("Be friendly and empathetic.", upset), temperature=0).text
    assert friendly.startswith("I'm sorry to hear that.")
    hours = "When do you open?\n===\nOur store opens at 9am on weekdays. We are closed on public holidays."
    assert respond("extractive", ask("Be warm.", hours), temperature=0).text.startswith(
        "Thanks for reaching out!")

    two = respond("extractive", ask("Answer in two sentences.", QUESTION), temperature=0).text
    assert two.count(".") >= 2 and "In summary" not in two
    assert respond("extractive", ask("Summarize it.", QUESTION), temperature=0).text.startswith("In summary")


def test_temperature_zero_ignores_seed_and_temperature_samples_repeatably():
    messages = ask("You are a support agent.", QUESTION)
    greedy = {respond("extractive", messages, temperature=0, seed=s).text for s in range(8)}
    assert len(greedy) == 1

    sampled = [respond("extractive", messages, temperature=1.2, seed=s).text for s in range(8)]
    assert len(set(sampled)) > 1
    assert sampled == [respond("extractive", messages, temperature=1.2, seed=s).text for s in range(8)]

    repeats = {respond("extractive", messages, temperature=1.2, seed=0, repeat=r).text for r in range(8)}
    assert len(repeats) > 1


def test_model_suffix_selects_the_same_kind_as_a_distinct_variant():
    assert resolve_model("extractive-v2") == "extractive"
    assert resolve_model("judge-strict") == "judge"
    assert resolve_model("echo") == "echo"
    assert resolve_model("extractive-") is None and resolve_model("gpt-4o") is None
    messages = ask("You are a support agent.", QUESTION)
    assert respond("extractive-v2", messages, temperature=0).text != respond("extractive", messages, temperature=0).text
    with pytest.raises(ValueError, match="gpt-4o"):
        respond("gpt-4o", messages)


def test_max_tokens_truncates_with_finish_reason_length():
    messages = ask(None, QUESTION)
    full = respond("extractive", messages, temperature=0)
    assert full.finish_reason == "stop" and full.completion_tokens > 5
    cut = respond("extractive", messages, temperature=0, max_tokens=5)
    assert cut.finish_reason == "length"
    assert cut.completion_tokens == 5
    assert full.text.startswith(cut.text) and cut.text != full.text
    assert cut.prompt_tokens == full.prompt_tokens == sim_models.prompt_tokens(messages)


def test_stop_sequence_cuts_before_it():
    out = respond("echo", ask(None, "one two STOP three"), stop=["STOP"])
    assert out.text == "one two " and out.finish_reason == "stop"


def test_echo_returns_last_user_text_and_counts_images():
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]},
    ]
    out = respond("echo", messages)
    assert out.text == "What is in this picture?"
    # 1 + 1 + 6 text tokens, plus the flat per-image charge.
    assert out.prompt_tokens == 8 + sim_models.IMAGE_TOKENS
    assert "1 image received" in respond("extractive", messages).text


def test_tokenizer_and_stream_pieces():
    assert sim_models.tokenize("Hi, there!") == ["Hi", ",", "there", "!"]
    for text in ["", "  lead", "a  b\n\nc ", "Dear customer,\n\n- x\n- y.", '{"score": 5}']:
        assert "".join(stream_pieces(text)) == text
    assert stream_pieces("a b") == ["a ", "b"]


def test_judge_scores_good_answers_above_bad_ones():
    def score(answer: str, reference: str | None = "Refunds are accepted within 30 days.") -> dict:
        prompt = f"Question: Can I return an item?\nAnswer: {answer}\n"
        if reference is not None:
            prompt += f"Reference: {reference}\n"
        verdict = json.loads(judge(ask("You are a strict grader.", prompt)))
        assert set(verdict) == {"score", "reason"}
        assert isinstance(verdict["score"], int) and 0 <= verdict["score"] <= 100
        return verdict

    good, bad = score("Yes: refunds are accepted within 30 days."), score("The sky is blue.")
    assert good["score"] == 100 and bad["score"] == 0
    assert "missing" in bad["reason"]
    # No reference: the question's keywords decide.
    assert score("You can return it.", reference=None)["score"] > score("No idea.", reference=None)["score"]
    # Headings are case-insensitive and synonyms work.
    lower = json.loads(judge(ask(None, "input: capital of France?\nresponse: Paris is the capital of France.\nexpected: Paris")))
    assert lower["score"] == 100


def test_judge_claim_evidence_and_malformed_prompts_never_crash():
    supported = json.loads(judge(ask(None, "Claim: The store opens at 9am.\nEvidence: " + STORE_POLICY)))
    unsupported = json.loads(judge(ask(None, "Claim: The store sells bicycles.\nEvidence: " + STORE_POLICY)))
    assert supported["score"] > unsupported["score"]
    for prompt in ["", "just some words", "Answer:", "Reference: x\n\nAnswer:   "]:
        verdict = json.loads(judge(ask(None, prompt)))
        assert 0 <= verdict["score"] <= 100
    assert json.loads(judge([]))["score"] == 0


# --------------------------------------------------------------------------- in-process app


@pytest.fixture
def sim_app():
    return create_app()


def make_client(app, **kwargs) -> openai.AsyncOpenAI:
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app))
    return openai.AsyncOpenAI(api_key="sim", base_url="http://sim/v1", http_client=http, **kwargs)


@pytest.fixture
async def client(sim_app):
    c = make_client(sim_app)
    yield c
    await c.close()


async def test_completion_has_the_openai_shape(client, sim_app):
    messages = ask("You are a support agent.", QUESTION)
    resp = await client.chat.completions.create(model="extractive", messages=messages, temperature=0)
    assert resp.id.startswith("chatcmpl-sim-")
    assert resp.object == "chat.completion" and resp.model == "extractive"
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == respond("extractive", messages, temperature=0).text
    assert choice.finish_reason == "stop"
    assert resp.usage.prompt_tokens == sim_models.prompt_tokens(messages)
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens

    cut = await client.chat.completions.create(model="extractive", messages=messages, temperature=0,
                                               max_completion_tokens=4)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 4
    assert sim_app.state.stats.requests == 2 and sim_app.state.stats.by_status == {200: 2}


async def test_streaming_joins_to_the_non_streamed_text(client, sim_app):
    messages = ask("Answer in bullet points, formally.", QUESTION)
    whole = await client.chat.completions.create(model="extractive", messages=messages, seed=7)
    stream = await client.chat.completions.create(model="extractive", messages=messages, seed=7,
                                                  stream=True, stream_options={"include_usage": True})
    deltas, finish, usage, roles = [], None, None, []
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            roles.append(choice.delta.role)
            if choice.delta.content:
                deltas.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert "".join(deltas) == whole.choices[0].message.content
    assert len(deltas) > 3 and roles[0] == "assistant"
    assert finish == "stop"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        whole.usage.prompt_tokens, whole.usage.completion_tokens, whole.usage.total_tokens)
    assert sim_app.state.stats.streamed == 1 and sim_app.state.stats.requests == 2


async def test_error_shapes(client, sim_app):
    with pytest.raises(openai.NotFoundError) as not_found:
        await client.chat.completions.create(model="gpt-4o", messages=ask(None, "hi"))
    error = not_found.value.body
    assert error["code"] == "model_not_found" and "gpt-4o" in error["message"]
    assert set(not_found.value.response.json()["error"]) == {"message", "type", "param", "code"}

    with pytest.raises(openai.BadRequestError) as empty:
        await client.chat.completions.create(model="echo", messages=[])
    assert empty.value.body["param"] == "messages"

    with pytest.raises(openai.BadRequestError) as n_two:
        await client.chat.completions.create(model="echo", messages=ask(None, "hi"), n=2)
    assert n_two.value.body["param"] == "n"

    with pytest.raises(openai.BadRequestError) as bad_sim:
        await client.chat.completions.create(model="echo", messages=ask(None, "hi"),
                                             extra_body={"sim": {"latency_ms": -1}})
    assert bad_sim.value.body["param"] == "sim.latency_ms"

    with pytest.raises(openai.BadRequestError) as typo:
        await client.chat.completions.create(model="echo", messages=ask(None, "hi"),
                                             extra_body={"sim": {"eror_rate": 1}})
    assert "eror_rate" in typo.value.body["message"]

    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=sim_app), base_url="http://sim") as raw:
        broken = await raw.post("/v1/chat/completions", content=b"{not json")
        missing = await raw.post("/v1/chat/completions", json={"model": "echo"})
        wrong_route = await raw.get("/v2/nothing")
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "messages"
    assert wrong_route.status_code == 404 and set(wrong_route.json()["error"]) == {"message", "type", "param", "code"}
    assert sim_app.state.stats.by_status == {404: 1, 400: 6}


async def test_fail_times_429_then_success_through_client_retries(sim_app):
    faults = {"sim": {"error_rate": 1.0, "fail_times": 2, "retry_after": 0.01}}
    client = make_client(sim_app, max_retries=3)
    try:
        resp = await client.chat.completions.create(model="echo", messages=ask(None, "hello"), extra_body=faults)
    finally:
        await client.close()
    assert resp.choices[0].message.content == "hello"
    stats = sim_app.state.stats
    assert stats.requests == 3 and stats.by_status == {429: 2, 200: 1}
    assert (stats.rate_limited, stats.ok) == (2, 1)


async def test_rate_limit_without_retries_carries_retry_after(sim_app):
    client = make_client(sim_app, max_retries=0)
    try:
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(
                model="echo", messages=ask(None, "hello"),
                extra_body={"sim": {"error_rate": 1.0, "fail_times": 2, "retry_after": 0.01}})
    finally:
        await client.close()
    headers = caught.value.response.headers
    assert headers["retry-after"] == "0.01" and headers["retry-after-ms"] == "10"
    assert caught.value.body["code"] == "rate_limit_exceeded"
    assert sim_app.state.stats.by_status == {429: 1}


async def test_server_errors_are_500_and_retried(sim_app):
    faults = {"sim": {"server_error_rate": 1.0, "fail_times": 1, "retry_after": 0.01}}
    strict = make_client(sim_app, max_retries=0)
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            await strict.chat.completions.create(model="echo", messages=ask(None, "x"), extra_body=faults)
        assert caught.value.status_code == 500
        # The attempt counter is per identical request: the second attempt of it succeeds.
        again = await strict.chat.completions.create(model="echo", messages=ask(None, "x"), extra_body=faults)
    finally:
        await strict.close()
    assert again.choices[0].message.content == "x"
    assert sim_app.state.stats.by_status == {500: 1, 200: 1}


async def test_random_faults_are_repeatable_for_a_seed():
    async def failures(seed: int) -> list[int]:
        app = create_app(error_rate=0.5, seed=seed)
        client = make_client(app, max_retries=0)
        failed = []
        try:
            for i in range(24):
                try:
                    await client.chat.completions.create(model="echo", messages=ask(None, f"q{i}"))
                except openai.RateLimitError:
                    failed.append(i)
        finally:
            await client.close()
        assert app.state.stats.rate_limited == len(failed)
        return failed

    first = await failures(seed=5)
    assert 0 < len(first) < 24
    assert await failures(seed=5) == first
    assert await failures(seed=6) != first


async def test_timeout_fault_hangs_until_the_caller_gives_up(sim_app):
    client = make_client(sim_app, max_retries=0)
    try:
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.3):
                await client.chat.completions.create(
                    model="echo", messages=ask(None, "x"),
                    extra_body={"sim": {"timeout_rate": 1.0, "fail_times": 1, "hang_ms": 60_000}})
    finally:
        await client.close()
    assert sim_app.state.stats.timeouts == 1 and sim_app.state.stats.in_flight == 0


async def test_latency_is_non_blocking_so_many_requests_overlap():
    app = create_app(latency_ms=200)
    n = 2000
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://sim") as raw:
        body = {"model": "echo", "messages": ask(None, "ping")}
        responses = await asyncio.gather(*(raw.post("/v1/chat/completions", json=body) for _ in range(n)))
    assert all(r.status_code == 200 for r in responses)
    # Every request was inside its 200 ms sleep at the same time: nothing serialised them.
    assert app.state.stats.max_in_flight == n and app.state.stats.in_flight == 0


async def test_models_stats_and_reset(client, sim_app):
    listed = await client.models.list()
    assert [m.id for m in listed.data] == ["echo", "extractive", "judge"]
    assert all(m.owned_by == "promptlab-simulator" for m in listed.data)
    assert all("not a language model" in m.model_extra["description"] for m in listed.data)
    assert (await client.models.retrieve("extractive-v2")).id == "extractive-v2"

    await client.chat.completions.create(model="judge", messages=ask(None, "Answer: x\nReference: x"))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=sim_app), base_url="http://sim") as raw:
        stats = (await raw.get("/sim/stats")).json()
        assert stats["requests"] == 1 and stats["by_status"] == {"200": 1} and stats["streamed"] == 0
        assert (await raw.post("/sim/reset")).json()["requests"] == 0
    assert sim_app.state.stats.requests == 0 and sim_app.state.stats.by_status == {}


def test_create_app_rejects_bad_settings_naming_them():
    with pytest.raises(ConfigError, match="error_rate"):
        create_app(error_rate=1.5)
    with pytest.raises(ConfigError, match="latency_ms"):
        create_app(latency_ms=-3)


# --------------------------------------------------------------------------- acceptance: real server


@pytest.fixture(scope="module")
def served_sim():
    with served_simulator() as served:
        yield served


def test_served_simulator_works_with_the_official_sync_client(served_sim):
    base, proc = served_sim
    client = openai.OpenAI(base_url=base + "/v1", api_key="sim", max_retries=0)
    try:
        messages = ask("You are a patient support agent.", QUESTION)
        first = client.chat.completions.create(model="extractive", messages=messages, temperature=0.5, seed=1)
        text = first.choices[0].message.content
        assert "Refunds are accepted" in text

        stream = client.chat.completions.create(model="extractive", messages=messages, temperature=0.5,
                                                seed=1, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
        assert chunks[-1].usage.total_tokens == first.usage.total_tokens

        again = client.chat.completions.create(model="extractive", messages=messages, temperature=0.5, seed=1)
        assert again.choices[0].message.content == text

        other = client.chat.completions.create(
            model="extractive", messages=ask("Be brief and formal.", QUESTION), temperature=0.5, seed=1)
        assert other.choices[0].message.content != text
    finally:
        client.close()


def test_served_simulator_timeout_then_retry_succeeds(served_sim):
    base, _ = served_sim
    client = openai.OpenAI(base_url=base + "/v1", api_key="sim", max_retries=1, timeout=0.5)
    try:
        resp = client.chat.completions.create(
            model="echo", messages=ask(None, "slow"),
            extra_body={"sim": {"timeout_rate": 1.0, "fail_times": 1, "hang_ms": 2000}})
    finally:
        client.close()
    assert resp.choices[0].message.content == "slow"
    assert httpx2.get(base + "/sim/stats").json()["timeouts"] == 1


def test_cli_prints_where_it_serves_and_that_it_is_a_simulator(served_sim):
    _, proc = served_sim
    line = proc.stdout.readline()
    assert "simulator" in line and "not a language model" in line and "http://127.0.0.1:" in line
