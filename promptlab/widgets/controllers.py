"""The plain-Python controllers behind the notebook widgets. No ipywidgets here.

A controller holds the state a widget shows and does everything a click does: each feedback
control writes to the store at once (``lab.feedback.log`` / ``lab.feedback.prefer``), so a dead
kernel loses nothing. The views in ``compare.py`` / ``playground.py`` only wire widgets to these
methods, and tests drive the methods directly::

    ctl = CompareController.from_actions(lab, "reply-concise", "reply-detailed", tickets)
    ctl.generate()                             # or ctl.start() and ctl.refresh() as cells arrive
    ctl.rate(0, "a", "Positive"); ctl.prefer(1, "b"); ctl.correct(2, "a", "Better answer")
    ctl.progress_text()                        # 'rated 3/6'
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .. import charts
from ..errors import ConfigError, InvalidInputError, NotFoundError, PromptlabError

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from ..actions import Action
    from ..experiments import Experiment, ExperimentRun
    from ..feedback import FeedbackRecord, Preference
    from ..generations import Generation
    from ..lab import Lab

SIDES = ("a", "b")
PENDING, DONE, ERROR = "pending", "done", "error"


# -- compare ------------------------------------------------------------------------------------


async def _signalling(coro: Any, started: threading.Event, finished: threading.Event) -> Any:
    """``await coro``, then set ``finished`` however it ended (cancelled included): the end of
    its cleanup, which a cancelled concurrent future does not wait for."""
    started.set()
    try:
        return await coro
    finally:
        finished.set()


@dataclass
class SideState:
    """One variant's output in a grid row, and the human feedback on it (latest wins)."""

    label: str
    generation: str | None = None
    status: str = PENDING  # pending (not generated yet) | done | error
    output: str | None = None
    error: str | None = None
    latency_ms: float | None = None
    tokens: int | None = None
    cost_usd: float | None = None
    cached: bool = False
    rating: str | None = None
    correction: str | None = None
    issue: str | None = None

    @property
    def ready(self) -> bool:
        """Whether there is a generation to give feedback on."""
        return self.generation is not None


@dataclass
class CompareRow:
    """One input of the dataset (one repeat of it) with both variants' outputs."""

    position: int  # 0-based place in the grid
    row_index: int
    repeat: int
    inputs: dict[str, Any]
    expected: Any
    a: SideState
    b: SideState
    preference: str | None = None  # "a", "b" or "tie"
    version: int = 0  # grows with every change, so a view can tell what it has not drawn yet

    def side(self, which: str) -> SideState:
        return self.a if which == "a" else self.b

    @property
    def rated(self) -> bool:
        """A thumb on either side or a preference between them."""
        return self.preference is not None or self.a.rating is not None or self.b.rating is not None


@dataclass(frozen=True)
class Progress:
    rows: int
    rated_rows: int
    positive: int
    negative: int
    prefer_a: int
    prefer_b: int
    ties: int
    outputs: int
    outputs_done: int


def _experiment_for(lab: "Lab", action_a: str, action_b: str, experiment: Any) -> "Experiment":
    """The experiment comparing the two actions: the one named ``experiment`` (or
    ``"compare: A vs B"``) when it exists and compares these actions, else a new one."""
    from ..experiments import Experiment

    if isinstance(experiment, Experiment):
        exp = experiment
    else:
        name = experiment or f"compare: {action_a} vs {action_b}"
        if not isinstance(name, str):
            raise ConfigError(f"experiment must be a name, a GUID or an Experiment, not {type(name).__name__}")
        try:
            exp = lab.experiments.get(name)
        except NotFoundError:
            if experiment is not None and _looks_like_guid(name):
                raise
            return lab.experiments.create(name, action_a=action_a, action_b=action_b)
    wanted = [lab.actions.get(action_a, version="latest").guid, lab.actions.get(action_b, version="latest").guid]
    have = [v.action_guid for v in exp.variants[:2]]
    if have != wanted:
        raise ConfigError(f"experiment {exp.name!r} compares {[v.action for v in exp.variants]}, not "
                          f"[{action_a!r}, {action_b!r}]; pass experiment=<another name>")
    return exp


def _looks_like_guid(text: str) -> bool:
    return len(text) == 36 and text.count("-") == 4


def _winner(value: Any, label_a: str, label_b: str) -> str:
    """"a" / "b" / "tie" from any accepted spelling (also the variants' labels)."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("a", "b", "tie"):
            return text.lower()
        if text == label_a:
            return "a"
        if text == label_b:
            return "b"
    raise InvalidInputError(f"invalid winner {value!r}; accepted: 'a', 'b', 'tie', "
                            f"{label_a!r} or {label_b!r}")


class CompareController:
    """A side-by-side grid over an experiment run: rows, feedback, progress, pages, figures.

    ``run``: an ExperimentRun or its GUID. ``labels``: the two variants to compare (default the
    run's first two). ``user``: recorded as ``ext_user_id`` on every feedback row written.
    """

    def __init__(self, lab: "Lab", run: "ExperimentRun | str", *, labels: Sequence[str] | None = None,
                 page_size: int = 10, user: str | None = None):
        from ..experiments import ExperimentRun

        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ConfigError(f"page_size must be a positive integer, not {page_size!r}")
        if isinstance(run, str):
            run = lab.experiments.get_run(run)
        if not isinstance(run, ExperimentRun):
            raise ConfigError(f"run must be an ExperimentRun or its GUID, not {type(run).__name__}")
        labels = list(labels) if labels is not None else list(run.labels[:2])
        if len(labels) != 2 or labels[0] == labels[1] or any(x not in run.labels for x in labels):
            raise ConfigError(f"labels must name two different variants of the run {run.labels}, got {labels}")
        self.lab = lab
        self.run = run
        self.label_a, self.label_b = labels
        self.page_size = page_size
        self.user = user
        self.page = 0
        colors = charts.palette(run.labels)
        self.colors = {"a": colors[self.label_a], "b": colors[self.label_b]}
        variants = run.config.get("variants", {})
        self.titles = {side: self._title(variants.get(label, {}))
                       for side, label in (("a", self.label_a), ("b", self.label_b))}
        self._lock = threading.RLock()
        self._future: concurrent.futures.Future | None = None
        self._started, self._finished = threading.Event(), threading.Event()
        self._listeners: list[Callable[[str], None]] = []
        self.rows: list[CompareRow] = []
        for record in lab.store.run_rows(run.guid):
            for repeat in range(run.repeats):
                self.rows.append(CompareRow(
                    position=len(self.rows), row_index=record["row_index"], repeat=repeat,
                    inputs=dict(record.get("input") or {}), expected=record.get("expected"),
                    a=SideState(self.label_a), b=SideState(self.label_b)))
        self._by_key = {(r.row_index, r.repeat): r for r in self.rows}
        self.refresh()

    @classmethod
    def from_actions(cls, lab: "Lab", action_a: str, action_b: str, dataset: Any, *,
                     experiment: Any = None, repeats: int = 1, page_size: int = 10,
                     user: str | None = None) -> "CompareController":
        """Record a new run of ``action_a`` vs ``action_b`` over ``dataset`` (not run yet: call
        ``start()`` or ``generate()``). The experiment is reused when one by that name compares these
        two actions (default name ``"compare: <a> vs <b>"``), else created."""
        exp = _experiment_for(lab, action_a, action_b, experiment)
        run = lab.experiments.start(exp, dataset, repeats)
        return cls(lab, run, labels=exp.labels[:2], page_size=page_size, user=user)

    @staticmethod
    def _title(spec: Mapping[str, Any]) -> str:
        if not spec:
            return ""
        return f"{spec.get('action')} v{spec.get('version')} · {spec.get('model')}"

    def __repr__(self) -> str:
        return (f"<CompareController {len(self.rows)} rows: {self.label_a}={self.titles['a']!r} "
                f"vs {self.label_b}={self.titles['b']!r}>")

    # -- running ------------------------------------------------------------------------------

    def start(self, concurrency: int = 8, cache: bool = False) -> concurrent.futures.Future:
        """Generate the outputs the run does not have yet, in the background (on promptlab's
        event loop); returns the future of the run. ``refresh()`` picks up finished cells."""
        with self._lock:
            if self._future is not None and not self._future.done():
                return self._future
            coro = self.lab.experiments.arun(self.run.experiment_guid, resume=self.run.guid,
                                             concurrency=concurrency, cache=cache, progress=False)
            self._started, self._finished = threading.Event(), threading.Event()
            self._future = self.lab.engine.background(_signalling(coro, self._started, self._finished))
            return self._future

    def generate(self, timeout: float | None = None, **options: Any) -> "CompareController":
        """``start()`` and wait for every output; returns self."""
        self.start(**options)
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> "CompareController":
        """Wait for a started run to finish (re-raising its error), then refresh. Ctrl-C (a
        kernel interrupt) while waiting stops the run, as ``stop()`` does."""
        future = self._future
        if future is not None:
            try:
                future.result(timeout=timeout)
            except concurrent.futures.TimeoutError:
                raise TimeoutError(f"run {self.run.guid} not finished after {timeout} s") from None
            except concurrent.futures.CancelledError:
                pass  # stopped: the run is interrupted, its finished cells are kept
            except KeyboardInterrupt:
                self.stop()
                raise
        self.refresh()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop generating: in-flight requests are cancelled, nothing more is sent, finished
        outputs are kept and the run is ``interrupted`` (``start()`` resumes it)."""
        future = self._future
        if future is None or future.done():
            return
        future.cancel()
        # The future says "cancelled" at once; the run records "interrupted" and releases its
        # lease on promptlab's loop just after. Wait for that, so start() can resume it at once.
        # Once the loop has run one more step after the cancel, a fill that had not started never will.
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self.lab.engine.loop).result(timeout)
        if self._started.is_set():
            self._finished.wait(timeout)
        self.refresh()

    @property
    def future(self) -> concurrent.futures.Future | None:
        return self._future

    @property
    def running(self) -> bool:
        return self._future is not None and not self._future.done()

    def refresh(self) -> list[int]:
        """Read the run's cells from the store; returns the positions of rows that changed."""
        cells = self.lab.store.run_cells(self.run.guid)
        changed: set[int] = set()
        new_guids: list[str] = []
        with self._lock:
            for cell in cells:
                row = self._by_key.get((cell["row_index"], cell["repeat"]))
                which = {self.label_a: "a", self.label_b: "b"}.get(cell["variant"])
                if row is None or which is None:
                    continue
                side = row.side(which)
                status = DONE if cell["status"] == "done" else ERROR
                if (cell["generation_guid"], status, cell["output"]) == (side.generation, side.status, side.output):
                    continue
                if cell["generation_guid"] != side.generation:
                    new_guids.append(cell["generation_guid"])
                    side.rating = side.correction = side.issue = None
                side.generation = cell["generation_guid"]
                side.status = status
                side.output = cell["output"]
                side.error = cell["error"]
                side.latency_ms = cell["latency_ms"]
                side.cost_usd = cell["cost_usd"]
                side.cached = bool(cell["cached"])
                prompt, completion = cell["prompt_tokens"], cell["completion_tokens"]
                side.tokens = None if prompt is None and completion is None else (prompt or 0) + (completion or 0)
                row.version += 1
                changed.add(row.position)
        if new_guids:
            changed |= self._load_feedback(new_guids)
        return sorted(changed)

    def _load_feedback(self, guids: Sequence[str]) -> set[int]:
        """Stored human feedback and preferences on these generations (a reopened grid)."""
        latest = self.lab.store.latest_human_feedback(guids)
        preferences = sorted(self.lab.store.run_preferences(self.run.guid), key=lambda p: p["created_at"])
        changed: set[int] = set()
        with self._lock:
            by_pair = {}
            for row in self.rows:
                for which in SIDES:
                    side = row.side(which)
                    values = latest.get(side.generation) if side.generation else None
                    if values:
                        side.rating, side.correction, side.issue = (values["rating"], values["correction"],
                                                                    values["issue"])
                        row.version += 1
                        changed.add(row.position)
                if row.a.generation and row.b.generation:
                    by_pair[(row.a.generation, row.b.generation)] = (row, False)
                    by_pair[(row.b.generation, row.a.generation)] = (row, True)
            for pref in preferences:  # oldest first: the latest wins
                hit = by_pair.get((pref["generation_a"], pref["generation_b"]))
                if hit is None:
                    continue
                row, flipped = hit
                winner = pref["winner"]
                row.preference = {"a": "b", "b": "a"}.get(winner, winner) if flipped else winner
                row.version += 1
                changed.add(row.position)
        return changed

    # -- feedback: every call writes to the store at once ---------------------------------------

    def row(self, position: int) -> CompareRow:
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < len(self.rows):
            raise InvalidInputError(f"no row {position!r}: the grid has rows 0 to {len(self.rows) - 1}")
        return self.rows[position]

    def _which(self, side: Any) -> str:
        if isinstance(side, str):
            if side.lower() in SIDES:
                return side.lower()
            if side == self.label_a:
                return "a"
            if side == self.label_b:
                return "b"
        raise InvalidInputError(f"invalid side {side!r}; accepted: 'a', 'b', {self.label_a!r} or {self.label_b!r}")

    def _ready(self, position: int, side: Any) -> tuple[CompareRow, SideState]:
        row = self.row(position)
        state = row.side(self._which(side))
        if not state.ready:
            raise InvalidInputError(f"row {position}: {state.label}'s output has not arrived yet")
        return row, state

    def on_feedback(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(kind)`` after every feedback written through this controller
        (``"rating"``, ``"preference"``, ``"correction"``, ``"issue"``), from a control or from
        code, so a view shows it (its progress and charts) either way."""
        self._listeners.append(listener)

    def _changed(self, kind: str) -> None:
        for listener in list(self._listeners):
            listener(kind)

    def rate(self, position: int, side: Any, rating: Any) -> "FeedbackRecord":
        """Thumbs up/down on one side: ``rate(0, "a", "Positive")`` (or 2/1, True/False)."""
        _, state = self._ready(position, side)
        record = self.lab.feedback.log(state.generation, rating=rating, ext_user_id=self.user)
        with self._lock:
            state.rating = record.rating
            self.rows[position].version += 1
        self._changed("rating")
        return record

    def prefer(self, position: int, winner: Any) -> "Preference":
        """Which side is better on this row: ``"a"``, ``"b"`` or ``"tie"``."""
        row = self.row(position)
        which = _winner(winner, self.label_a, self.label_b)
        for state in (row.a, row.b):
            if not state.ready:
                raise InvalidInputError(f"row {position}: {state.label}'s output has not arrived yet")
        preference = self.lab.feedback.prefer(row.a.generation, row.b.generation, winner=which,
                                              ext_user_id=self.user)
        with self._lock:
            row.preference = preference.winner
            row.version += 1
        self._changed("preference")
        return preference

    def correct(self, position: int, side: Any, text: str) -> "FeedbackRecord":
        """Save a corrected output for one side (what it should have said)."""
        _, state = self._ready(position, side)
        record = self.lab.feedback.log(state.generation, correction=text, ext_user_id=self.user)
        with self._lock:
            state.correction = record.correction
            self.rows[position].version += 1
        self._changed("correction")
        return record

    def tag(self, position: int, side: Any, issue: str) -> "FeedbackRecord":
        """Tag one side with an issue from the lab's vocabulary (``issue_tags``)."""
        _, state = self._ready(position, side)
        record = self.lab.feedback.log(state.generation, issue=issue, ext_user_id=self.user)
        with self._lock:
            state.issue = record.issue
            self.rows[position].version += 1
        self._changed("issue")
        return record

    @property
    def issue_tags(self) -> list[str]:
        return self.lab.feedback.tags

    def messages(self, position: int, side: Any) -> list[dict[str, Any]]:
        """The rendered prompt (chat messages) that produced one side's output."""
        _, state = self._ready(position, side)
        return list(self.lab.generations.get(state.generation).messages or [])

    # -- progress and pages -------------------------------------------------------------------

    def progress(self) -> Progress:
        with self._lock:
            sides = [r.side(w) for r in self.rows for w in SIDES]
            prefs = [r.preference for r in self.rows]
            return Progress(
                rows=len(self.rows), rated_rows=sum(r.rated for r in self.rows),
                positive=sum(s.rating == "Positive" for s in sides),
                negative=sum(s.rating == "Negative" for s in sides),
                prefer_a=prefs.count("a"), prefer_b=prefs.count("b"), ties=prefs.count("tie"),
                outputs=len(sides), outputs_done=sum(s.status != PENDING for s in sides))

    def progress_text(self) -> str:
        """``"rated 12/40"``: rows with a thumb or a preference, of all rows."""
        p = self.progress()
        return f"rated {p.rated_rows}/{p.rows}"

    @property
    def complete(self) -> bool:
        p = self.progress()
        return p.outputs_done == p.outputs

    @property
    def n_pages(self) -> int:
        return max(1, math.ceil(len(self.rows) / self.page_size))

    def set_page(self, page: int) -> None:
        if isinstance(page, bool) or not isinstance(page, int) or not 0 <= page < self.n_pages:
            raise InvalidInputError(f"no page {page!r}: pages are 0 to {self.n_pages - 1}")
        self.page = page

    def next_page(self) -> bool:
        """Go to the next page; False when already on the last."""
        if self.page + 1 >= self.n_pages:
            return False
        self.page += 1
        return True

    def prev_page(self) -> bool:
        if self.page == 0:
            return False
        self.page -= 1
        return True

    def page_rows(self) -> list[CompareRow]:
        start = self.page * self.page_size
        return self.rows[start:start + self.page_size]

    def page_text(self) -> str:
        """``"page 1 of 4 · rows 1–10 of 40"``."""
        rows = self.page_rows()
        if not rows:
            return "no rows"
        return (f"page {self.page + 1} of {self.n_pages} · rows {rows[0].position + 1}–"
                f"{rows[-1].position + 1} of {len(self.rows)}")

    # -- figures --------------------------------------------------------------------------------

    def figures(self) -> "tuple[go.Figure, go.Figure]":
        """(thumbs up/down counts per variant, pairwise win/tie/loss) from the stored feedback."""
        ratings = charts.rating_distribution(self.run, title="Thumbs up / down per variant")
        counts = [sum(v or 0 for v in trace.y) for trace in ratings.data if trace.y is not None]
        # whole-number ticks: with a handful of ratings plotly would label 0.5, 1.5, ...
        ratings.update_yaxes(dtick=max(1, math.ceil(max(counts, default=0) / 5)), rangemode="tozero")
        pairwise = charts.pairwise(self.run.summary(), title="Which is better (A better / Tie / B better)")
        colors = charts.palette(self.run.labels)
        _color_ticks(ratings, "x", colors)
        _color_ticks(pairwise, "y", colors)
        return ratings, pairwise


def _color_ticks(fig: "go.Figure", axis: str, colors: Mapping[str, str]) -> None:
    """Write each variant's tick label in its colour, as in the grid's badges."""
    labels = list(colors)
    text = [f"<b><span style='color:{colors[x]}'>{x}</span></b>" for x in labels]
    update = fig.update_xaxes if axis == "x" else fig.update_yaxes
    update(tickmode="array", tickvals=labels, ticktext=text, tickfont=dict(size=14))


# -- playground ---------------------------------------------------------------------------------


@dataclass
class PlaygroundConfig:
    """One side of the playground: an editable copy of an action version's config."""

    system: str = ""
    prompt: str = ""
    model: str = ""
    temperature: float | None = None
    max_tokens: int | None = None

    @classmethod
    def from_action(cls, action: "Action") -> "PlaygroundConfig":
        return cls(system=action.system or "", prompt=action.prompt or "", model=action.model,
                   temperature=action.temperature, max_tokens=action.max_tokens)

    def fields(self) -> dict[str, Any]:
        """The action fields this config sets (empty texts mean "none")."""
        return dict(system=self.system or None, prompt=self.prompt or None, model=self.model,
                    temperature=self.temperature, max_tokens=self.max_tokens)


@dataclass
class PlaygroundResult:
    """A side's run in progress: its stream (deltas so far) and, when finished, the generation."""

    side: str
    stream: Any
    future: concurrent.futures.Future
    generation: "Generation | None" = None
    error: BaseException | None = None

    @property
    def text(self) -> str:
        return self.stream.text

    @property
    def done(self) -> bool:
        return self.future.done()

    def wait(self, timeout: float | None = None) -> "PlaygroundResult":
        try:
            self.generation = self.future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"side {self.side.upper()} not finished after {timeout} s") from None
        except PromptlabError as exc:
            self.error = exc
        return self


class PlaygroundController:
    """Two editable configs of one action, run side by side on the same inputs.

    Side ``a`` starts from the version deployed to ``environment`` (Production), side ``b``
    from the latest version (often the same). Runs are logged as generations of the action
    with ``metadata={"playground": "A"|"B", "draft": True}``; ``save`` writes a new version.
    """

    def __init__(self, lab: "Lab", action: str, *, environment: str | None = None):
        self.lab = lab
        latest = lab.actions.get(action, version="latest")
        try:
            deployed = lab.actions.get(action, environment=environment)
        except NotFoundError:
            deployed = latest
        self.name = latest.name
        self.base = {"a": deployed, "b": latest}
        self.configs = {"a": PlaygroundConfig.from_action(deployed), "b": PlaygroundConfig.from_action(latest)}
        self.inputs: dict[str, str] = {}
        self.results: dict[str, PlaygroundResult] = {}
        self._variables: list[str] = []
        self.errors: dict[str, str | None] = {"a": None, "b": None}
        self._update_variables()

    def _which(self, side: Any) -> str:
        if isinstance(side, str) and side.lower() in SIDES:
            return side.lower()
        raise InvalidInputError(f"invalid side {side!r}; accepted: 'a' or 'b'")

    def set(self, side: Any, **changes: Any) -> list[str]:
        """Change fields of one side's config; returns the template variables (re-read)."""
        which = self._which(side)
        known = {f.name for f in dataclasses.fields(PlaygroundConfig)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown playground field(s) {unknown}; known: {sorted(known)}")
        self.configs[which] = dataclasses.replace(self.configs[which], **changes)
        return self._update_variables()

    def _update_variables(self) -> list[str]:
        """Variables of both sides' templates, in order of first use. A side whose template does
        not parse (mid-typing) keeps its last good variables and reports the error."""
        from ..templates import ChatTemplate

        names: list[str] = []
        for which in SIDES:
            config, base = self.configs[which], self.base[which]
            try:
                found = ChatTemplate(system=config.system or None, prompt=config.prompt or None,
                                     messages=base.messages).variables
                bound = base.context.get("variable") if base.context else None
                found = [v for v in found if v != bound]
                self.errors[which] = None
            except PromptlabError as exc:
                self.errors[which] = str(exc)
                found = [v for v in self._variables if v not in names]
            names += [v for v in found if v not in names]
        self._variables = names
        return list(names)

    @property
    def variables(self) -> list[str]:
        return list(self._variables)

    def set_input(self, name: str, value: str) -> None:
        self.inputs[name] = value

    def action(self, side: Any) -> "Action":
        """The side's config as an (unsaved) action version, validated like ``actions.update``."""
        from ..actions import validate_version_fields

        which = self._which(side)
        base, config = self.base[which], self.configs[which]
        fields_ = {k: v for k, v in config.fields().items() if v is not None}
        clean = validate_version_fields(fields_, source=f"config {which.upper()}")
        if not clean.get("prompt") and not clean.get("system") and not base.messages:
            raise ConfigError(f"config {which.upper()} needs a prompt or a system message")
        self.lab.providers.parse(clean["model"])
        params = {k: v for k, v in base.params.items() if k not in ("temperature", "max_tokens")}
        params.update({k: clean[k] for k in ("temperature", "max_tokens") if k in clean})
        return dataclasses.replace(base, system=clean.get("system"), prompt=clean.get("prompt"),
                                   model=clean["model"], params=params)

    def start(self, sides: Sequence[str] = SIDES) -> dict[str, PlaygroundResult]:
        """Run the sides (both by default) on ``inputs`` with streaming, in the background.

        Raises before any call when a config or the inputs are invalid (a missing variable
        names itself)."""
        from ..generations import TokenStream

        which_sides = [self._which(s) for s in sides]
        # an input never filled in is missing (the template's error names it), not ""
        variables = {name: self.inputs[name] for name in self.variables if name in self.inputs}
        # check every config, then plan every call, before running anything: an error runs neither
        actions = {which: self.action(which) for which in which_sides}
        engine = self.lab.engine
        calls = {which: engine.plan_sync(action, variables, streaming=True, log_failure=False,
                                         metadata={"playground": which.upper(), "draft": True})
                 for which, action in actions.items()}
        started = {}
        for which, call in calls.items():
            stream = TokenStream()
            future = engine.background(engine.run(call, stream=stream))
            started[which] = PlaygroundResult(which, stream, future)
        self.results.update(started)
        return started

    def run(self, timeout: float | None = None,
            on_delta: Callable[[str, str], None] | None = None) -> dict[str, PlaygroundResult]:
        """Run both sides and wait. ``on_delta(side, text_so_far)`` is called as text streams in
        (from the calling thread, one side after the other)."""
        results = self.start()
        for which, result in results.items():
            if on_delta is not None:
                try:
                    for _ in result.stream:
                        on_delta(which, result.stream.text)
                except PromptlabError:
                    pass  # reported on the result by wait()
            result.wait(timeout)
        return results

    def save(self, side: Any, note: str | None = None, deploy: str | Sequence[str] | None = None) -> "Action":
        """Write the side's config as a new version of the action (``lab.actions.update``).

        Fields cleared in the config (an empty system message, no max tokens) are removed
        from the new version."""
        which = self._which(side)
        self.action(which)  # validate first, with the side named in the error
        action = self.lab.actions.update(self.name, note=note, deploy=deploy, **self.configs[which].fields())
        self.base[which] = action
        return action


__all__ = ["CompareController", "CompareRow", "SideState", "Progress", "PlaygroundController",
           "PlaygroundConfig", "PlaygroundResult"]
