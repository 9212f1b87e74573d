"""lab.actions: definitions, versions, environments, and running them (the seed's Actions)."""

from __future__ import annotations

import asyncio
import base64

import pytest
import yaml

import promptlab as pl
from promptlab.actions import request_input
from tests.conftest import sim_requests

SEED_SYSTEM = "You are a helpful writing assistant."
SEED_PROMPT = ("Review this content and make the following changes:\n{{task}}\n"
               "If no changes, do not output anything and explain why.\n======\n{{content}}")
SEED_INPUT = {"task": "Correct any grammar or spelling mistakes.",
              "content": "Machine lerning is a branch of AI. It learns from data."}


@pytest.fixture
def writer(lab):
    return lab.actions.create("writer", system=SEED_SYSTEM, prompt=SEED_PROMPT, model="sim:extractive",
                              temperature=0.2, max_tokens=256)


# -- definitions ------------------------------------------------------------------------------


def test_create_exposes_guid_version_and_variables(writer):
    assert writer.name == "writer" and writer.version == 1
    assert len(writer.guid) == 36 and writer.version_guid != writer.guid
    assert writer.variables == ["task", "content"]
    assert writer.temperature == 0.2 and writer.max_tokens == 256
    assert writer.environments == ["Production"]


def test_update_makes_a_new_immutable_version(lab, writer):
    v2 = lab.actions.update("writer", temperature=0.7)
    assert v2.version == 2 and v2.temperature == 0.7 and v2.prompt == SEED_PROMPT
    assert lab.actions.get("writer").version == 1  # Production keeps v1 until v2 is deployed
    assert lab.actions.update("writer", max_tokens=99, deploy="Production").version == 3
    assert lab.actions.get("writer").version == 3
    assert lab.actions.get("writer", version=1).temperature == 0.2  # v1 unchanged
    assert v2.version_guid != writer.version_guid and v2.guid == writer.guid
    assert [a.version for a in lab.actions.versions("writer")] == [1, 2, 3]


def test_actions_are_addressed_by_name_guid_or_version_guid(lab, writer):
    lab.actions.update("writer", temperature=0.9, deploy="Production")
    assert lab.actions.get(writer.guid).version == 2
    assert lab.actions.get(writer.version_guid).version == 1  # a version GUID pins its version
    assert [a.name for a in lab.actions.list()] == ["writer"]


def test_unknown_action_and_bad_fields_are_clear_errors(lab, writer):
    with pytest.raises(pl.NotFoundError, match="no action 'nope'.*writer"):
        lab.actions.get("nope")
    with pytest.raises(pl.ConfigError, match="already exists"):
        lab.actions.create("writer", prompt="x")
    with pytest.raises(pl.ConfigError, match="temperature"):
        lab.actions.create("hot", prompt="x", temperature=5)
    with pytest.raises(pl.ConfigError, match="unknown action field"):
        lab.actions.update("writer", temprature=0.1)
    with pytest.raises(pl.TemplateSyntaxError):
        lab.actions.create("broken", prompt="{{ unclosed")
    assert [a.name for a in lab.actions.list()] == ["writer"]


def test_environments_route_to_their_deployed_version(lab, writer):
    lab.actions.update("writer", system="Be concise.", deploy="Preview")
    assert lab.actions.get("writer").version == 1  # Production untouched
    assert lab.actions.get("writer", environment="preview").version == 2  # case-insensitive
    preview = lab.actions.prompt("writer", SEED_INPUT, environment="Preview")
    production = lab.actions.prompt("writer", SEED_INPUT)
    assert (preview.action_version, preview.environment) == (2, "Preview")
    assert (production.action_version, production.environment) == (1, "Production")
    lab.actions.deploy("writer", version=2, environment="Production")
    assert lab.actions.get("writer").version == 2
    lab.actions.deploy("writer", version=1, environment="eu-canary")  # custom environment
    assert lab.actions.get("writer", environment="eu-canary").version == 1
    with pytest.raises(pl.NotFoundError, match="Staging"):
        lab.actions.prompt("writer", SEED_INPUT, environment="Staging")


def test_yaml_action_files_round_trip_and_validate(lab, writer, tmp_path):
    path = lab.actions.save("writer", tmp_path / "writer.yaml")
    spec = yaml.safe_load(open(path))
    assert spec["system"] == SEED_SYSTEM and spec["temperature"] == 0.2
    spec["temperature"] = 0.5
    (tmp_path / "writer.yaml").write_text(yaml.safe_dump(spec))
    assert lab.actions.load(tmp_path / "writer.yaml").version == 2
    spec["name"] = "writer-copy"
    (tmp_path / "copy.yaml").write_text(yaml.safe_dump(spec))
    assert lab.actions.load(tmp_path / "copy.yaml").version == 1

    (tmp_path / "bad.yaml").write_text("name: bad\nprompt: hi\nmax_tokens: -3\ncolour: red\n")
    with pytest.raises(pl.ConfigError) as err:
        lab.actions.load(tmp_path / "bad.yaml")
    assert "max_tokens" in str(err.value) and "colour" in str(err.value) and "bad.yaml" in str(err.value)
    assert lab.store.find_action("bad") is None


# -- running ----------------------------------------------------------------------------------


def test_prompt_returns_the_seed_response_and_logs_one_row(lab, writer):
    r = lab.actions.prompt("writer", SEED_INPUT, ext_user_id="elon-alt@x.ai")
    assert r.msg and r.status == "done" and r.streaming is False and r.cached is False
    assert r.feedback_url == f"/v1/data/{r.guid}"  # no gateway configured: gateway-relative
    assert r.usage["total_tokens"] == r.usage["prompt_tokens"] + r.usage["completion_tokens"] > 0
    assert r.cost_usd == 0.0 and r.latency_ms > 0
    assert (r.model, r.action_version, r.environment) == ("sim:extractive", 1, "Production")
    row = lab.generations.get(r.guid)
    assert row.msg == r.msg and row.ext_user_id == "elon-alt@x.ai" and row.input == SEED_INPUT
    assert row.messages[0] == {"role": "system", "content": SEED_SYSTEM}
    assert "Correct any grammar" in row.messages[1]["content"]
    assert lab.store.count_generations() == 1


def test_feedback_url_points_at_a_configured_gateway(tmp_path):
    with pl.Lab(tmp_path / "g.db", gateway_url="https://gw.example/") as lab:
        lab.actions.create("a", prompt="{{x}}", model="sim:echo")
        r = lab.actions.prompt("a", "hi")
        assert r.feedback_url == f"https://gw.example/v1/data/{r.guid}"
        assert lab.generations.get(r.guid).feedback_url == r.feedback_url


def test_feedback_url_is_never_none_and_the_gateway_url_may_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMPTLAB_GATEWAY_URL", raising=False)
    with pl.Lab(tmp_path / "g.db") as lab:
        lab.actions.create("a", prompt="{{x}}", model="sim:echo")
        for r in (lab.actions.prompt("a", "hi"), lab.actions.prompt("a", "hi", streaming=True),
                  lab.actions.prompt("a", "hi", async_mode=True)):
            assert r.feedback_url == f"/v1/data/{r.guid}"
        assert all(g.feedback_url == f"/v1/data/{g.guid}" for g in lab.generations.list())
    monkeypatch.setenv("PROMPTLAB_GATEWAY_URL", "https://gw.example.com/promptlab")
    with pl.Lab(tmp_path / "g.db") as lab:
        r = lab.actions.prompt("a", "hi")
        assert r.feedback_url == f"https://gw.example.com/promptlab/v1/data/{r.guid}"
    with pytest.raises(pl.ConfigError, match="http"):
        pl.Lab(tmp_path / "g.db", gateway_url="gw.example.com")


def test_string_input_fills_the_single_variable_or_becomes_the_user_message(rec_lab, server):
    rec_lab.actions.create("one", prompt="Write about {{topic}}", model="rec:m")
    rec_lab.actions.create("none", system="You are terse.", model="rec:m")
    rec_lab.actions.create("two", prompt="{{a}} {{b}}", model="rec:m")
    assert rec_lab.actions.prompt("one", "Machine Learning.").msg == "echo: Write about Machine Learning."
    assert rec_lab.actions.prompt("none", "Write a sentence.").msg == "echo: Write a sentence."
    with pytest.raises(pl.InvalidInputError, match=r"\['a', 'b'\]"):
        rec_lab.actions.prompt("two", "just a string")


def test_missing_variables_fail_before_any_call_and_leave_an_error_row(lab, writer):
    with pytest.raises(pl.MissingVariablesError) as err:
        lab.actions.prompt("writer", {"task": "Fix it"})
    assert err.value.missing == ["content"]
    assert sim_requests(lab) == 0
    [row] = lab.generations.list()
    assert row.status == "error" and row.error_type == "MissingVariablesError" and "content" in row.error
    assert row.input == {"task": "Fix it"}


def test_extra_variables_are_ignored(rec_lab, server):
    rec_lab.actions.create("one", prompt="About {{topic}}", model="rec:m")
    assert rec_lab.actions.prompt("one", {"topic": "X", "unused": "Y"}).msg == "echo: About X"


def test_cache_hit_makes_no_request_and_costs_nothing(rec_lab, server):
    rec_lab.actions.create("a", prompt="Q: {{q}}", model="rec:m")
    first = rec_lab.actions.prompt("a", "hello", cache=True)
    second = rec_lab.actions.prompt("a", "hello", cache=True)
    assert len(server.bodies) == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.msg == first.msg and second.cost_usd == 0.0 and second.usage == first.usage
    rec_lab.actions.prompt("a", "hello")  # cache=False always calls
    rec_lab.actions.prompt("a", "other", cache=True)  # different rendered prompt: a miss
    assert len(server.bodies) == 3
    assert rec_lab.store.count_generations() == 4 and rec_lab.store.count_generations(cached=True) == 1


def test_cache_key_covers_params_and_errors_are_never_cached(rec_lab, server):
    rec_lab.actions.create("a", prompt="Q: {{q}}", model="rec:m", temperature=0.1)
    rec_lab.actions.prompt("a", "x", cache=True)
    rec_lab.actions.update("a", temperature=0.9, deploy="Production")
    rec_lab.actions.prompt("a", "x", cache=True)
    assert len(server.bodies) == 2  # a different temperature is a different request
    server.status = 500
    with pytest.raises(pl.ProviderServerError):
        rec_lab.actions.prompt("a", "y", cache=True)
    server.status = 200
    assert rec_lab.actions.prompt("a", "y", cache=True).cached is False
    assert len(server.bodies) == 4


def test_cache_entries_expire_after_the_ttl(tmp_path, server):
    import httpx2

    with pl.Lab(tmp_path / "ttl.db", cache_ttl=0) as lab:
        lab.providers.register("rec", base_url="http://rec.local/v1", api_key="k", max_retries=0,
                               http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(server.handler)))
        lab.actions.create("a", prompt="{{q}}", model="rec:m")
        lab.actions.prompt("a", "x", cache=True)
        assert lab.actions.prompt("a", "x", cache=True).cached is False
        assert len(server.bodies) == 2


def test_provider_500_is_a_clear_error_and_the_generation_is_logged(rec_lab, server):
    rec_lab.actions.create("a", prompt="{{q}}", model="rec:m")
    server.status = 500
    with pytest.raises(pl.ProviderServerError) as err:
        rec_lab.actions.prompt("a", "boom")
    assert err.value.status_code == 500 and err.value.provider == "rec"
    [row] = rec_lab.generations.list()
    assert row.status == "error" and row.error_type == "ProviderServerError" and row.msg is None
    assert row.messages == [{"role": "user", "content": "boom"}]


def test_session_second_turn_sends_the_first_turn(rec_lab, server):
    rec_lab.actions.create("chat", system="You are a coach.", prompt="{{message}}", model="rec:m")
    s = rec_lab.sessions.create(action="chat", ext_user_id="elon@musk.net", name="About X")
    rec_lab.actions.prompt("chat", "Hi, I'm Ada.", session=s.guid)
    second = rec_lab.actions.prompt("chat", "What is my name?", session=s.guid)
    assert server.bodies[1]["messages"] == [
        {"role": "system", "content": "You are a coach."},
        {"role": "user", "content": "Hi, I'm Ada."},
        {"role": "assistant", "content": "echo: Hi, I'm Ada."},
        {"role": "user", "content": "What is my name?"},
    ]
    assert second.session == s.guid
    assert len(rec_lab.sessions.get(s.guid).messages) == 4
    assert [x.guid for x in rec_lab.sessions.list(ext_user_id="elon@musk.net")] == [s.guid]


def test_session_memory_window_limits_history(rec_lab, server):
    rec_lab.actions.create("chat", prompt="{{m}}", model="rec:m")
    s = rec_lab.sessions.create(action="chat", memory_window=2)
    for text in ("one", "two", "three"):
        rec_lab.actions.prompt("chat", text, session=s.guid)
    sent = [m["content"] for m in server.bodies[2]["messages"]]
    assert sent == ["two", "echo: two", "three"]
    with pytest.raises(pl.NotFoundError, match="session"):
        rec_lab.actions.prompt("chat", "x", session="no-such-session")


def test_streaming_yields_deltas_then_msg_is_whole(lab, writer):
    r = lab.actions.prompt("writer", SEED_INPUT, streaming=True)
    assert r.streaming is True
    deltas = list(r.stream)
    assert len(deltas) > 1 and "".join(deltas) == r.msg
    assert r.status == "done" and r.ttft_ms is not None
    plain = lab.actions.prompt("writer", SEED_INPUT)
    assert plain.msg == r.msg  # the simulator is deterministic
    row = lab.generations.get(r.guid)
    assert row.streaming and row.msg == r.msg and row.status == "done"


async def test_streaming_with_async_for(lab, writer):
    r = await lab.actions.aprompt("writer", SEED_INPUT, streaming=True)
    deltas = [d async for d in r.stream]
    assert "".join(deltas) == r.msg and r.msg


def test_async_mode_returns_at_once_then_reaches_done(lab, writer):
    r = lab.actions.prompt("writer", SEED_INPUT, async_mode=True)
    assert r.status == "pending" and r.msg is None
    assert lab.store.get_generation(r.guid)["status"] in ("pending", "done")
    done = lab.generations.wait(r.guid)
    assert done.status == "done" and done.msg


def test_async_mode_error_is_logged_on_the_generation(rec_lab, server):
    rec_lab.actions.create("a", prompt="{{q}}", model="rec:m")
    server.status = 500
    r = rec_lab.actions.prompt("a", "x", async_mode=True)
    done = rec_lab.generations.wait(r.guid)
    assert done.status == "error" and done.error_type == "ProviderServerError"


async def test_works_inside_a_running_event_loop(lab, writer):
    # Jupyter runs an event loop in the main thread; the sync API must still work there.
    asyncio.get_running_loop()
    r = lab.actions.prompt("writer", SEED_INPUT)
    a = await lab.actions.aprompt("writer", SEED_INPUT)
    many = await asyncio.gather(*(lab.actions.aprompt("writer", SEED_INPUT) for _ in range(5)))
    assert r.msg == a.msg == many[0].msg and lab.store.count_generations() == 7


def test_files_and_messages_become_image_content_parts(rec_lab, server, tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    (tmp_path / "pic.png").write_bytes(png)
    rec_lab.actions.create("vision", system="Describe images.", model="rec:m")
    url = "https://upload.wikimedia.org/boardwalk.jpg"
    rec_lab.actions.prompt("vision", messages=[{"role": "user", "content": "What is in this image?",
                                                "files": [url]}])
    content = server.bodies[0]["messages"][1]["content"]
    assert content == [{"type": "text", "text": "What is in this image?"},
                       {"type": "image_url", "image_url": {"url": url}}]
    rec_lab.actions.prompt("vision", "And this one?", files=[tmp_path / "pic.png"])
    parts = server.bodies[1]["messages"][1]["content"]
    assert parts[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png).decode()


def test_get_action_prompt_formats_without_calling_a_model(lab, writer):
    messages = lab.actions.get_action_prompt("writer", SEED_INPUT)
    assert messages[0] == {"role": "system", "content": SEED_SYSTEM}
    assert messages[1]["content"].endswith(SEED_INPUT["content"])
    assert sim_requests(lab) == 0 and lab.store.count_generations() == 0


def test_costs_come_from_the_price_table_and_unknown_is_none(tmp_path, server):
    import httpx2

    with pl.Lab(tmp_path / "c.db", prices={"priced:*": {"input": 1.0, "output": 2.0}}) as lab:
        for name in ("priced", "unpriced"):
            lab.providers.register(name, base_url=f"http://{name}.local/v1", api_key="k", max_retries=0,
                                   http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(server.handler)))
        lab.actions.create("p", prompt="{{q}}", model="priced:m")
        lab.actions.create("u", prompt="{{q}}", model="unpriced:m")
        priced = lab.actions.prompt("p", "a b c")
        expected = (11 * 1.0 + priced.usage["completion_tokens"] * 2.0) / 1e6
        assert priced.cost_usd == pytest.approx(expected)
        assert lab.actions.prompt("u", "a b c").cost_usd is None


# -- few-shot messages ------------------------------------------------------------------------------

FEW_SHOT = [{"role": "user", "content": "Classify: the parcel is late"},
            {"role": "assistant", "content": "shipping"},
            {"role": "user", "content": "Classify: I was charged twice"},
            {"role": "assistant", "content": "billing"}]


@pytest.mark.parametrize("leading_system", [False, True])
def test_few_shot_messages_run_before_the_prompt(rec_lab, server, leading_system):
    messages = ([{"role": "system", "content": "Answer with one {{kind}} word."}] if leading_system else []) + FEW_SHOT
    rec_lab.actions.create("classify", messages=messages, prompt="Classify: {{text}}", model="rec:m")
    r = rec_lab.actions.prompt("classify", {"text": "my kettle is cracked", "kind": "lower-case"})
    assert r.status == "done" and r.msg == "echo: Classify: my kettle is cracked"
    sent = server.bodies[-1]["messages"]
    expected = ([{"role": "system", "content": "Answer with one lower-case word."}] if leading_system else [])
    assert sent == expected + FEW_SHOT + [{"role": "user", "content": "Classify: my kettle is cracked"}]


def test_system_then_few_shot_messages_then_history_then_the_new_turn(rec_lab, server):
    rec_lab.actions.create("classify", system="Be brief.", messages=FEW_SHOT, prompt="Classify: {{text}}",
                           model="rec:m")
    session = rec_lab.sessions.create(action="classify")
    rec_lab.actions.prompt("classify", {"text": "first"}, session=session.guid)
    rec_lab.actions.prompt("classify", {"text": "second"}, session=session.guid)
    sent = server.bodies[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."} and sent[1:5] == FEW_SHOT
    assert sent[5:] == [{"role": "user", "content": "Classify: first"},
                        {"role": "assistant", "content": "echo: Classify: first"},
                        {"role": "user", "content": "Classify: second"}]
    assert rec_lab.sessions.history(session.guid)[0] == {"role": "user", "content": "Classify: first"}


def test_an_action_of_messages_only_runs_and_one_without_a_user_message_says_so(rec_lab, server):
    rec_lab.actions.create("only", messages=[{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "Summarize: {{text}}"}], model="rec:m")
    assert rec_lab.actions.prompt("only", {"text": "a long story"}).msg == "echo: Summarize: a long story"
    rec_lab.actions.create("mute", messages=[{"role": "system", "content": "Be brief."}], model="rec:m")
    with pytest.raises(pl.InvalidInputError, match="nothing to send"):
        rec_lab.actions.prompt("mute")
    assert rec_lab.actions.prompt("mute", "hello there").msg == "echo: hello there"


# -- the seed's spellings and the gateway's forms ----------------------------------------------

SEED_EXPERIMENT_INPUT = {"topic": "Machine Learning.", "task": "Help me build my first ML feature",
                         "content": "draft"}


@pytest.fixture
def tone(lab):
    lab.actions.create("writer", system="Be concise.", prompt="{{task}}: {{content}}", model="sim:echo")
    lab.actions.create("writer-v2", system="Be warm.", prompt="Topic {{topic}}. {{task}}", model="sim:echo")
    return lab.experiments.create("tone", action_a="writer", action_b="writer-v2", split=0.5)


def test_prompt_with_experiment_runs_the_variant_the_experiment_assigns(lab, tone):
    for i in range(12):
        user = f"user-{i}"
        r = lab.actions.prompt(input=SEED_EXPERIMENT_INPUT, experiment=tone.guid, ext_user_id=user)
        direct = lab.experiments.prompt(tone.guid, SEED_EXPERIMENT_INPUT, ext_user_id=user)
        assert (r.experiment, r.variant, r.action) == (tone.guid, direct.variant, direct.action)
        assert r.status == "done" and r.ext_user_id == user
    by_name = lab.actions.prompt(input=SEED_EXPERIMENT_INPUT, experiment="tone", ext_user_id="user-1")
    assert by_name.experiment == tone.guid
    # An action with the experiment: that variant (the seed's manual traffic control).
    manual = lab.actions.prompt("writer-v2", SEED_EXPERIMENT_INPUT, experiment=tone.guid, ext_user_id="user-3")
    assert (manual.variant, manual.action, manual.experiment) == ("B", "writer-v2", tone.guid)
    lab.actions.create("other", prompt="{{task}}", model="sim:echo")
    with pytest.raises(pl.InvalidInputError, match="not a variant"):
        lab.actions.prompt("other", SEED_EXPERIMENT_INPUT, experiment=tone.guid)
    with pytest.raises(pl.ConfigError, match="environment/version"):
        lab.actions.prompt("writer", SEED_EXPERIMENT_INPUT, experiment=tone.guid, environment="Preview")
    with pytest.raises(pl.ConfigError, match="name the action"):
        lab.actions.prompt(input=SEED_EXPERIMENT_INPUT)


async def test_aprompt_with_experiment_matches_prompt(lab, tone):
    r = await lab.actions.aprompt(input=SEED_EXPERIMENT_INPUT, experiment=tone.guid, ext_user_id="user-5")
    again = lab.actions.prompt(input=SEED_EXPERIMENT_INPUT, experiment=tone.guid, ext_user_id="user-5")
    assert r.experiment == tone.guid and r.variant == again.variant and r.msg == again.msg


def test_get_action_prompt_of_an_experiment_formats_the_assigned_variant(lab, tone):
    # The seed's example, with its spellings.
    messages = lab.actions.get_action_prompt(experiment_guid=tone.guid, input=SEED_EXPERIMENT_INPUT)
    # Without a user or session: the first variant, every time.
    assert messages == lab.actions.get_action_prompt("writer", SEED_EXPERIMENT_INPUT)
    for i in range(12):
        user = f"user-{i}"
        shown = lab.actions.get_action_prompt(experiment=tone.guid, input=SEED_EXPERIMENT_INPUT, ext_user_id=user)
        ran = lab.experiments.prompt(tone.guid, SEED_EXPERIMENT_INPUT, ext_user_id=user)
        assert shown == ran.messages  # what the user's variant sends
    assert lab.actions.get_action_prompt("writer-v2", SEED_EXPERIMENT_INPUT, experiment="tone") == \
        lab.actions.get_action_prompt("writer-v2", SEED_EXPERIMENT_INPUT)
    with pytest.raises(pl.ConfigError, match="disagree"):
        lab.actions.get_action_prompt(experiment="tone", experiment_guid="other", input=SEED_EXPERIMENT_INPUT)


def test_the_seeds_keyword_spellings_run_unchanged(lab, writer):
    # klu.actions.prompt(action=..., input=..., extUserId=...) and klu.sessions.create(extUserId=...)
    result = lab.actions.prompt(action=writer.guid, input=SEED_INPUT, extUserId="elon-alt@x.ai")
    assert result.ext_user_id == "elon-alt@x.ai" == lab.generations.get(result.guid).ext_user_id
    session = lab.sessions.create(action=writer.guid, extUserId="elon@musk.net",
                                  name="A conversation about X.com with Elon Musk")
    assert session.ext_user_id == "elon@musk.net"
    with pytest.raises(pl.InvalidInputError, match="disagree"):
        lab.actions.prompt(writer.guid, SEED_INPUT, ext_user_id="a", extUserId="b")


@pytest.mark.parametrize("how", ["messages", "files"])
def test_an_empty_input_next_to_messages_or_files_adds_no_empty_user_message(rec_lab, server, how, tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    (tmp_path / "pic.png").write_bytes(png)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}}
    rec_lab.actions.create("vision", system="Describe images.", model="rec:m")
    if how == "messages":  # the seed's multi-modal request: "input": "" and messages with files
        options = {"messages": [{"role": "user", "content": "What is in this image?", "files": [tmp_path / "pic.png"]}]}
        expected = {"role": "user", "content": [{"type": "text", "text": "What is in this image?"}, image]}
    else:  # the files are the user's message: no empty text part either
        options = {"files": [tmp_path / "pic.png"]}
        expected = {"role": "user", "content": [image]}
    want = [{"role": "system", "content": "Describe images."}, expected]
    assert rec_lab.actions.get_action_prompt("vision", "", **options) == want
    r = rec_lab.actions.prompt("vision", "", **options)
    assert server.bodies[-1]["messages"] == want and r.messages == want and r.input is None
    assert request_input("", messages=options.get("messages"), files=options.get("files")) is None
    assert request_input("", messages=None) == ""  # alone, an empty string is an input


async def test_every_action_method_has_an_async_twin(lab, writer, tmp_path):
    created = await lab.actions.acreate("second", prompt="Say {{x}}", model="sim:echo")
    assert created.version == 1 and (await lab.actions.aget("second")).guid == created.guid
    assert (await lab.actions.aupdate("second", temperature=0.3)).version == 2
    assert (await lab.actions.adeploy("second", version=2)).environments == ["Production"]
    assert [a.version for a in await lab.actions.aversions("second")] == [1, 2]
    assert {a.name for a in await lab.actions.alist()} == {"writer", "second"}
    path = await lab.actions.asave("second", tmp_path / "second.yaml")
    assert (await lab.actions.aload(path)).version == 3
    assert await lab.actions.aget_action_prompt("writer", SEED_INPUT) == lab.actions.get_action_prompt(
        "writer", SEED_INPUT)
    with pytest.raises(pl.NotFoundError):
        await lab.actions.aget("nope")
