"""pl.widgets: the controllers (no ipywidgets) and a smoke test of each real ipywidgets view.

Controllers are driven through their methods and checked against what the store holds (read
back through lab.feedback / lab.generations / run.to_pandas, not through the controller).
The view tests build the real widgets, call ``button.click()`` / set values as the browser
would, and assert the feedback rows.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

import promptlab as pl
from promptlab import charts
from promptlab.widgets import CompareController, PlaygroundController, compare, playground

PROMPT = "Reply to this customer's message.\n======\n{{customer_message}}"
TICKETS = [
    {"ticket_id": f"T-{i}", "product": product, "customer_message": message, "expected_contains": key}
    for i, (product, message, key) in enumerate([
        ("Nimbus Drive", "I was charged twice this month. Please refund one payment.", "charged twice"),
        ("Brewster Kettle", "My kettle arrived with a cracked lid. I want a replacement.", "cracked"),
        ("Pathfinder Pro", "The reset email never arrives. I checked my spam folder.", "reset email"),
        ("LedgerLite", "Exports to CSV lose the decimal separator. Fix it please.", "decimal"),
        ("Cozy Nest Bedding", "The duvet shrank after one wash at 30 degrees.", "shrank"),
    ], start=1)
]


@pytest.fixture
def actions(lab):
    lab.actions.create("concise", model="sim:extractive", prompt=PROMPT,
                       system="You are a support agent for {{product}}. Be concise.")
    lab.actions.create("detailed", model="sim:extractive", prompt=PROMPT,
                       system="You are a support agent for {{product}}. Be friendly and answer in detail.")
    return lab


@pytest.fixture
def ctl(actions):
    return CompareController.from_actions(actions, "concise", "detailed", TICKETS, page_size=2).generate(timeout=60)


def guid(run, row, label):
    frame = run.to_pandas().set_index("row")
    return frame.loc[row, f"generation_{label}"]


# -- compare controller -------------------------------------------------------------------------


def test_controllers_do_not_import_ipywidgets():
    code = ("import sys, promptlab.widgets.controllers, promptlab.widgets; "
            "print([m for m in ('ipywidgets', 'plotly.graph_objects') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_from_actions_records_a_run_and_fills_rows_from_the_store(actions):
    lab = actions
    ctl = CompareController.from_actions(lab, "concise", "detailed", TICKETS)
    assert [r.a.status for r in ctl.rows] == ["pending"] * 5 and not ctl.complete
    with pytest.raises(pl.InvalidInputError, match="row 0: A's output has not arrived yet"):
        ctl.rate(0, "a", "Positive")
    ctl.generate(timeout=60)
    assert ctl.complete
    frame = ctl.run.to_pandas()
    assert [r.a.output for r in ctl.rows] == frame.output_A.tolist()
    assert [r.b.output for r in ctl.rows] == frame.output_B.tolist()
    assert [r.inputs["ticket_id"] for r in ctl.rows] == [t["ticket_id"] for t in TICKETS]
    assert ctl.rows[0].expected == {"expected_contains": "charged twice"}
    assert ctl.rows[0].a.output != ctl.rows[0].b.output  # the two system messages differ
    assert ctl.titles == {"a": "concise v1 · sim:extractive", "b": "detailed v1 · sim:extractive"}
    assert ctl.colors == {"a": charts.palette(["A", "B"])["A"], "b": charts.palette(["A", "B"])["B"]}
    exp = lab.experiments.get("compare: concise vs detailed")
    assert ctl.run.experiment_guid == exp.guid and [v.action for v in exp.variants] == ["concise", "detailed"]
    # a second grid over the same actions reuses the experiment, with a run of its own
    again = CompareController.from_actions(lab, "concise", "detailed", TICKETS[:2])
    assert again.run.experiment_guid == exp.guid and again.run.guid != ctl.run.guid
    assert len(again.rows) == 2


def test_an_experiment_name_naming_other_actions_is_refused(actions):
    lab = actions
    lab.actions.create("other", model="sim:extractive", prompt="{{customer_message}}")
    lab.experiments.create("mine", action_a="concise", action_b="other")
    with pytest.raises(pl.ConfigError, match="'mine' compares \\['concise', 'other'\\]"):
        CompareController.from_actions(lab, "concise", "detailed", TICKETS, experiment="mine")
    named = CompareController.from_actions(lab, "concise", "detailed", TICKETS, experiment="tone check")
    assert lab.experiments.get("tone check").guid == named.run.experiment_guid


def test_rows_fill_in_as_cells_arrive(actions):
    lab = actions
    ctl = CompareController.from_actions(lab, "concise", "detailed", TICKETS)
    exp = ctl.run.experiment_guid
    lab.experiments.run(exp, resume=ctl.run.guid, shard=(0, 2), progress=False)  # about half the cells
    statuses = lab.store.cell_statuses(ctl.run.guid)
    changed = ctl.refresh()
    assert changed == sorted({int(key.split(":")[0]) for key in statuses})
    done = {(r.position, w) for r in ctl.rows for w in "ab" if r.side(w).status == "done"}
    assert done == {(int(k.split(":")[0]), k.split(":")[1].lower()) for k in statuses}
    assert 0 < ctl.progress().outputs_done == len(statuses) < 10
    assert ctl.refresh() == []  # nothing new
    ctl.generate(timeout=60)
    assert ctl.complete and ctl.progress().outputs_done == 10


def test_every_control_writes_to_the_store_at_once(ctl):
    lab, run = ctl.lab, ctl.run
    ctl.rate(0, "a", "Positive")
    ctl.rate(0, "B", 1)  # the HTTP API's spelling; the variant's label works as a side
    ctl.prefer(1, "b")
    ctl.correct(2, "a", "Sorry about the reset email: here is a new link.")
    ctl.tag(2, "b", "too long")
    assert lab.feedback.ratings([guid(run, 0, "A"), guid(run, 0, "B")]) == {
        guid(run, 0, "A"): "Positive", guid(run, 0, "B"): "Negative"}
    [pref] = lab.feedback.preferences()
    assert (pref.generation_a, pref.generation_b, pref.winner) == (guid(run, 1, "A"), guid(run, 1, "B"), "b")
    assert lab.feedback.latest(guid(run, 2, "A"))["correction"] == "Sorry about the reset email: here is a new link."
    assert lab.feedback.latest(guid(run, 2, "B"))["issue"] == "Too long"
    assert ctl.rows[2].b.issue == "Too long" and ctl.rows[0].b.rating == "Negative"
    assert ctl.progress_text() == "rated 2/5"  # rows 0 (thumbs) and 1 (preference)
    p = ctl.progress()
    assert (p.positive, p.negative, p.prefer_a, p.prefer_b, p.ties) == (1, 1, 0, 1, 0)
    # the run's summary sees the same (latest wins when a rating changes)
    ctl.rate(0, "a", "Negative")
    summary = run.summary()
    assert summary.loc["A", "rated"] == 1 and summary.loc["A", "positive_rate"] == 0.0
    assert summary.loc["B", "wins"] == 1 and summary.loc["A", "losses"] == 1


def test_user_is_recorded_on_feedback(actions):
    ctl = CompareController.from_actions(actions, "concise", "detailed", TICKETS[:1], user="ana").generate(timeout=60)
    ctl.rate(0, "a", "Positive")
    ctl.prefer(0, "tie")
    assert [f.ext_user_id for f in actions.feedback.list()] == ["ana"]
    assert [p.ext_user_id for p in actions.feedback.preferences()] == ["ana"]


def test_bad_feedback_is_refused_and_nothing_is_written(ctl):
    lab = ctl.lab
    with pytest.raises(pl.InvalidInputError, match="correction must not be empty"):
        ctl.correct(0, "a", "   ")
    with pytest.raises(pl.InvalidInputError, match="unknown issue tag 'Boring'"):
        ctl.tag(0, "a", "Boring")
    with pytest.raises(pl.InvalidInputError, match="invalid rating 'meh'"):
        ctl.rate(0, "a", "meh")
    with pytest.raises(pl.InvalidInputError, match="invalid side 'c'"):
        ctl.rate(0, "c", "Positive")
    with pytest.raises(pl.InvalidInputError, match="no row 7: the grid has rows 0 to 4"):
        ctl.rate(7, "a", "Positive")
    with pytest.raises(pl.InvalidInputError, match="invalid winner 'both'"):
        ctl.prefer(0, "both")
    assert lab.feedback.list() == [] and lab.feedback.preferences() == []
    assert ctl.progress_text() == "rated 0/5"


def test_reopening_a_run_shows_the_stored_feedback_without_running(ctl):
    lab, run = ctl.lab, ctl.run
    ctl.rate(0, "a", "Positive")
    ctl.correct(0, "b", "Better answer")
    ctl.tag(0, "b", "Vague")
    # stored the other way round (B's generation first, "a" wins = B wins): shown as "b"
    lab.feedback.prefer(guid(run, 3, "B"), guid(run, 3, "A"), winner="a")
    generations = lab.store.count_generations()
    again = CompareController(lab, run.guid)
    assert lab.store.count_generations() == generations and again.complete
    row0 = again.rows[0]
    assert (row0.a.rating, row0.b.correction, row0.b.issue) == ("Positive", "Better answer", "Vague")
    assert again.rows[3].preference == "b" and again.rows[1].preference is None
    assert again.progress_text() == "rated 2/5"


def test_labels_pick_two_variants_of_a_larger_run(actions):
    lab = actions
    lab.actions.create("third", model="sim:extractive", prompt=PROMPT, system="Answer in one word.")
    exp = lab.experiments.create("three", variants={"A": "concise", "B": "detailed", "C": "third"})
    run = lab.experiments.run(exp, TICKETS[:2], progress=False)
    ctl = CompareController(lab, run, labels=["A", "C"])
    assert (ctl.label_a, ctl.label_b) == ("A", "C")
    assert ctl.colors["b"] == charts.palette(["A", "B", "C"])["C"]
    assert [r.b.output for r in ctl.rows] == run.to_pandas().output_C.tolist()
    ctl.prefer(0, "C")
    assert lab.feedback.preferences()[0].generation_b == guid(run, 0, "C")
    with pytest.raises(pl.ConfigError, match="two different variants of the run"):
        CompareController(lab, run, labels=["A", "D"])
    with pytest.raises(pl.ConfigError, match="page_size must be a positive integer"):
        CompareController(lab, run, page_size=0)


def test_repeats_give_one_row_per_input_and_repeat(actions):
    ctl = CompareController.from_actions(actions, "concise", "detailed", TICKETS[:2], repeats=2).generate(timeout=60)
    assert [(r.row_index, r.repeat) for r in ctl.rows] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(r.a.ready and r.b.ready for r in ctl.rows)


def test_pages(ctl):
    assert (ctl.n_pages, ctl.page) == (3, 0)
    assert [r.position for r in ctl.page_rows()] == [0, 1]
    assert ctl.page_text() == "page 1 of 3 · rows 1–2 of 5"
    assert ctl.prev_page() is False
    assert ctl.next_page() and ctl.next_page() and not ctl.next_page()
    assert [r.position for r in ctl.page_rows()] == [4] and ctl.page_text() == "page 3 of 3 · rows 5–5 of 5"
    ctl.set_page(1)
    assert [r.position for r in ctl.page_rows()] == [2, 3]
    with pytest.raises(pl.InvalidInputError, match="no page 3"):
        ctl.set_page(3)


def test_messages_are_the_rendered_prompt(ctl):
    messages = ctl.messages(1, "b")
    assert messages[0] == {"role": "system",
                           "content": "You are a support agent for Brewster Kettle. Be friendly and answer in detail."}
    assert messages[-1]["content"].endswith(TICKETS[1]["customer_message"])


def test_figures_follow_the_stored_feedback(ctl):
    ratings, pairwise = ctl.figures()
    assert [a.text for a in ratings.layout.annotations] == ["no ratings yet"]
    ctl.rate(0, "a", "Positive")
    ctl.rate(1, "a", "Positive")
    ctl.rate(1, "b", "Negative")
    ctl.prefer(2, "a")
    ratings, pairwise = ctl.figures()
    counts = {trace.name: dict(zip(trace.x, trace.y)) for trace in ratings.data}
    assert counts == {"Positive": {"A": 2, "B": 0}, "Negative": {"A": 0, "B": 1}}
    assert ratings.layout.yaxis.dtick == 1
    assert "#0072B2" in ratings.layout.xaxis.ticktext[0]  # A's tick in A's colour
    outcomes = {trace.name: dict(zip(trace.y, trace.x)) for trace in pairwise.data}
    assert outcomes["wins"] == {"A": 1, "B": 0} and outcomes["losses"] == {"A": 0, "B": 1}


# -- playground controller ----------------------------------------------------------------------


@pytest.fixture
def writer(lab):
    lab.actions.create("writer", model="sim:extractive", system="You are a careful editor.",
                       prompt="Fix this {{kind}}:\n{{text}}", temperature=0.2, max_tokens=200)
    return lab


def test_playground_variables_follow_the_templates(writer):
    pg = PlaygroundController(writer, "writer")
    assert pg.variables == ["kind", "text"]
    assert pg.set("b", system="You edit for {{audience}}.") == ["kind", "text", "audience"]
    pg.set("b", prompt="Fix: {{text")  # mid-typing: keeps the last good variables, says why
    assert pg.variables == ["kind", "text", "audience"]
    assert pg.errors["b"] and "syntax" in pg.errors["b"] and pg.errors["a"] is None
    pg.set("b", prompt="Fix: {{text}}")
    assert pg.variables == ["kind", "text", "audience"] and pg.errors["b"] is None
    with pytest.raises(pl.ConfigError, match="unknown playground field"):
        pg.set("a", top_k=3)


def test_playground_runs_both_sides_streaming_and_logs_them(writer):
    lab = writer
    pg = PlaygroundController(lab, "writer")
    pg.set("b", system="You are a careful editor. Be friendly and answer in detail.", temperature=0.9)
    pg.set_input("kind", "sentence")
    pg.set_input("text", "Teh cat sat on teh mat. It was happy.")
    seen: dict[str, list[str]] = {"a": [], "b": []}
    results = pg.run(timeout=30, on_delta=lambda side, text: seen[side].append(text))
    for side in "ab":
        generation = results[side].generation
        assert results[side].error is None and generation.msg
        assert seen[side][-1] == generation.msg  # streamed up to the whole text
        assert all(generation.msg.startswith(part) for part in seen[side])
        stored = lab.generations.get(generation.guid)
        assert stored.metadata == {"playground": side.upper(), "draft": True} and stored.streaming
        assert stored.action == "writer" and stored.msg == generation.msg
    a, b = (lab.generations.get(results[s].generation.guid) for s in "ab")
    assert a.messages[0]["content"] == "You are a careful editor."
    assert b.messages[0]["content"].endswith("Be friendly and answer in detail.")
    assert (a.params["temperature"], b.params["temperature"]) == (0.2, 0.9)
    assert a.messages[1]["content"] == "Fix this sentence:\nTeh cat sat on teh mat. It was happy."
    assert a.msg != b.msg


def test_playground_refuses_bad_configs_before_any_call(writer):
    lab = writer
    pg = PlaygroundController(lab, "writer")
    before = lab.store.count_generations()
    pg.set_input("kind", "word")
    pg.set_input("text", "Teh cat.")
    pg.set("b", temperature=3.0)
    with pytest.raises(pl.ConfigError, match="config B.*temperature"):
        pg.start()
    pg.set("b", temperature=0.5, max_tokens=0)
    with pytest.raises(pl.ConfigError, match="config B.*max_tokens"):
        pg.start()
    pg.set("b", max_tokens=None, prompt="Fix {{ text")
    with pytest.raises(pl.TemplateSyntaxError):
        pg.start()
    pg.set("b", prompt="", system="")
    with pytest.raises(pl.ConfigError, match="config B needs a prompt or a system message"):
        pg.start()
    assert lab.store.count_generations() == before  # nothing ran, not even side A


def test_playground_save_writes_a_new_version(writer):
    lab = writer
    pg = PlaygroundController(lab, "writer")
    pg.set("b", prompt="Proofread this {{kind}}:\n{{text}}", max_tokens=None, temperature=0.7)
    saved = pg.save("b", note="from the playground")
    assert saved.version == 2 and saved.note == "from the playground"
    stored = lab.actions.get("writer", version="latest")
    assert stored.prompt == "Proofread this {{kind}}:\n{{text}}" and stored.system == "You are a careful editor."
    assert stored.params == {"temperature": 0.7}  # max tokens cleared
    assert lab.actions.get("writer").version == 1  # Production still serves v1 until deployed
    pg.set("a", system="")
    assert pg.save("a", deploy="Production").system is None
    assert lab.actions.get("writer").version == 3


def test_playground_names_an_input_never_filled_in(writer):
    lab = writer
    pg = PlaygroundController(lab, "writer")
    pg.set_input("kind", "word")
    before = lab.store.count_generations()
    with pytest.raises(pl.MissingVariablesError, match="'text'"):
        pg.start()
    assert lab.store.count_generations() == before
    pg.set_input("text", "")  # typed empty on purpose: rendered as empty
    assert pg.run(timeout=30)["a"].generation.messages[-1]["content"] == "Fix this word:\n"


# -- views: the real ipywidgets, clicked -------------------------------------------------------


def test_feedback_written_from_code_shows_in_the_grid(actions):
    grid = compare(actions, "concise", "detailed", TICKETS, page_size=2, background=False)
    assert "rated 0/5" in grid.progress.value
    grid.controller.rate(0, "a", "Positive")
    grid.controller.prefer(1, "b")
    assert "rated 2/5" in grid.progress.value  # the header, as after clicks
    assert grid._row_views[0].sides["a"].up.button_style == "success"
    assert "pl-selected" in grid._row_views[1].prefer["b"]._dom_classes
    ratings_chart, pairwise_chart = grid.charts
    assert {t.name: list(t.y) for t in ratings_chart.data}["Positive"] == [1, 0]
    assert {t.name: list(t.x) for t in pairwise_chart.data}["wins"] == [0, 1]


def test_compare_view_buttons_write_feedback(actions):
    lab = actions
    grid = compare(lab, "concise", "detailed", TICKETS, page_size=2, background=False)
    assert repr(grid) == "Compare(5 rows: A concise v1 · sim:extractive | B detailed v1 · sim:extractive)"
    run = grid.run
    row0, row1 = (grid._row_views[i] for i in (0, 1))
    assert "generating" not in row0.sides["a"].output.value
    assert row0.sides["a"].up.disabled is False

    row0.sides["a"].up.click()
    row0.sides["b"].down.click()
    row1.prefer["b"].click()
    row1.sides["a"].correction.value = "A better reply."
    row1.sides["a"].save.click()
    row1.sides["b"].issue.value = "Vague"

    assert lab.feedback.ratings([guid(run, 0, "A"), guid(run, 0, "B")]) == {
        guid(run, 0, "A"): "Positive", guid(run, 0, "B"): "Negative"}
    assert [(p.generation_a, p.winner) for p in lab.feedback.preferences()] == [(guid(run, 1, "A"), "b")]
    assert lab.feedback.latest(guid(run, 1, "A"))["correction"] == "A better reply."
    assert lab.feedback.latest(guid(run, 1, "B"))["issue"] == "Vague"
    # what was chosen is visible
    assert row0.sides["a"].up.button_style == "success" and "pl-selected" in row0.sides["a"].up._dom_classes
    assert row0.sides["b"].down.button_style == "danger" and row0.sides["b"].up.button_style == ""
    assert "pl-selected" in row1.prefer["b"]._dom_classes and "pl-selected" not in row1.prefer["a"]._dom_classes
    assert row1.prefer["b"].style.button_color == charts.palette(["A", "B"])["B"]
    assert row1.sides["a"].save.description == "Saved ✓"
    row1.sides["a"].correction.value = "A better reply, edited."
    assert row1.sides["a"].save.description == "Save correction"  # unsaved edit shows
    assert "rated 2/5" in grid.progress.value
    # the live charts were updated in place
    ratings_chart, pairwise_chart = grid.charts
    assert {t.name: list(t.y) for t in ratings_chart.data} == {"Positive": [1, 0], "Negative": [0, 1]}
    assert not ratings_chart.layout.annotations
    assert {t.name: list(t.x) for t in pairwise_chart.data}["wins"] == [0, 1]

    # an error is shown in the grid, and nothing is written
    row0.sides["a"].correction.value = ""
    row0.sides["a"].save.click()
    assert "correction must not be empty" in grid.message.value
    assert lab.feedback.latest(guid(run, 0, "A"))["correction"] is None

    # the prompt on demand
    row0.show_prompt.value = True
    assert "Be concise." in row0.prompt.children[0].value and "in detail" in row0.prompt.children[1].value

    # pages
    grid.next.click()
    assert [box for box in grid.rows.children] == [grid._row_views[2].box, grid._row_views[3].box]
    assert "page 2 of 3" in grid.page_label.value and grid.prev.disabled is False

    # reopened later: the stored choices are shown
    again = compare(lab, run)
    first = again._row_views[0]
    assert first.sides["a"].up.button_style == "success" and first.sides["b"].down.button_style == "danger"
    assert again._row_views[1].sides["b"].issue.value == "Vague"
    assert again._row_views[1].sides["a"].correction.value == "A better reply."
    assert "pl-selected" in again._row_views[1].prefer["b"]._dom_classes


def test_compare_view_fills_rows_in_the_background(rec_lab, server):
    """The grid shows up before any output exists, and its poller fills the rows in."""
    lab = rec_lab
    gate, _ = gated_actions(lab, server)
    grid = compare(lab, "slow-a", "slow-b", TICKETS[:3], page_size=5)
    outputs = lambda: [view.sides[w].output.value for view in grid._row_views.values() for w in "ab"]
    assert grid.controller.running and grid._poller.is_alive()
    assert len(outputs()) == 6 and all("generating…" in o for o in outputs())
    assert grid._row_views[0].sides["a"].up.disabled and "outputs 0/6" in grid.progress.value

    lab.engine.loop.call_soon_threadsafe(gate.set)
    grid.controller.future.result(timeout=60)
    grid._poller.join(timeout=60)  # the poller's last pass, not view.wait(), drew the rows
    assert not grid._poller.is_alive()
    assert [o for o in outputs() if "generating" in o] == []
    assert "echo: A: I was charged twice" in grid._row_views[0].sides["a"].output.value
    assert grid._row_views[0].sides["a"].up.disabled is False
    assert "outputs 6/6" in grid.progress.value and grid.outputs.value == 6


def test_compare_view_argument_errors(actions):
    with pytest.raises(pl.ConfigError, match="needs both actions and a dataset"):
        compare(actions, "concise", "detailed")
    with pytest.raises(pl.NotFoundError):
        compare(actions, "concise", "nosuch", TICKETS)


def test_playground_view_runs_and_saves(writer):
    lab = writer
    view = playground(lab, "writer")
    assert repr(view) == "Playground(writer: A v1 | B v1, variables ['kind', 'text'])"
    assert list(view._input_widgets) == ["kind", "text"]
    view._input_widgets["kind"].value = "sentence"
    view._input_widgets["text"].value = "Teh cat sat. It purred."
    view.sides["b"].prompt.value = "Proofread the {{kind}} for {{audience}}:\n{{text}}"
    assert list(view._input_widgets) == ["kind", "text", "audience"]
    assert view._input_widgets["kind"].value == "sentence"  # typed values survive
    view._input_widgets["audience"].value = "children"
    view.sides["a"].temperature.value = 0.6
    view.run_button.click()
    view.wait(timeout=30)
    texts = {w: view.sides[w].output.value for w in "ab"}
    generations = lab.generations.list(action="writer")
    assert len(generations) == 2
    for g in generations:
        assert g.msg and g.msg.replace("'", "&#x27;") in texts[g.metadata["playground"].lower()]
    by_side = {g.metadata["playground"]: g for g in generations}
    assert by_side["A"].params["temperature"] == 0.6
    assert "children" in by_side["B"].messages[-1]["content"]
    assert "ms" in view.sides["a"].meta.value and view.run_button.disabled is False

    view.sides["b"].save.click()
    assert lab.actions.get("writer", version="latest").prompt == "Proofread the {{kind}} for {{audience}}:\n{{text}}"
    assert "saved B as writer v2" in view.message.value

    view.sides["a"].prompt.value = "Fix {{ text"  # mid-typing: said at once, and Run refuses
    assert "A: template syntax error" in view.message.value
    view.run_button.click()
    assert "syntax error" in view.message.value and len(lab.generations.list(action="writer")) == 2


def test_reopening_an_incomplete_run_says_so_and_can_finish_it(actions):
    lab = actions
    ctl = CompareController.from_actions(lab, "concise", "detailed", TICKETS)
    lab.experiments.run(ctl.run.experiment_guid, resume=ctl.run.guid, shard=(0, 3), progress=False)
    grid = compare(lab, ctl.run, page_size=5)
    outputs = lambda: [v.sides[w].output.value for v in grid._row_views.values() for w in "ab"]
    missing = sum("not generated (the run is incomplete)" in o for o in outputs())
    assert missing == 10 - len(lab.store.cell_statuses(ctl.run.guid)) > 0
    grid.controller.start()
    grid.follow()
    grid.wait(timeout=60)
    assert not any("not generated" in o or "generating" in o for o in outputs())
    assert len(lab.store.cell_statuses(ctl.run.guid)) == 10


def gated_actions(lab, server):
    """Actions slow-a / slow-b on a provider whose every call waits for ``gate`` (an asyncio
    Event to set on promptlab's loop); ``seen`` lists the requests that arrived."""
    import asyncio

    import httpx2

    gate, seen = asyncio.Event(), []

    async def gated(request):
        seen.append(request)
        await gate.wait()
        return server.handler(request)

    lab.providers.register("gated", base_url="http://gated.local/v1", api_key="k", max_retries=0,
                           http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(gated)))
    lab.actions.create("slow-a", model="gated:m", prompt="A: {{customer_message}}")
    lab.actions.create("slow-b", model="gated:m", prompt="B: {{customer_message}}")
    return gate, seen


def test_stop_cancels_the_background_fill_and_start_resumes_it(rec_lab, server):
    lab = rec_lab
    gate, seen = gated_actions(lab, server)
    grid = compare(lab, "slow-a", "slow-b", TICKETS[:4], page_size=5)
    for _ in range(500):
        if len(seen) >= 2:
            break
        time.sleep(0.01)
    assert grid.controller.running and grid.stop_button.layout.display is None
    grid.stop_button.click()
    assert not grid.controller.running and grid.run.status == "interrupted"
    assert "Stopped" in grid.message.value
    sent = len(seen)
    assert grid.controller.future.cancelled() and sent <= 8  # the fill's task has ended: no sender left
    lab.engine.loop.call_soon_threadsafe(gate.set)
    grid.controller.start().result(timeout=60)
    grid.wait(60)
    assert grid.run.status == "done" and grid.controller.progress().outputs == 8
