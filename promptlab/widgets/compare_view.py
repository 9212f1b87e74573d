"""The compare grid: a thin ipywidgets view over :class:`CompareController`.

Every control calls one controller method (which writes to the store) and then re-draws the
parts of the grid that method changed. Rows fill in from a background thread that polls the
store while the run is going.
"""

from __future__ import annotations

import html
import itertools
import threading
from typing import Any, Callable

import ipywidgets as widgets

from ..errors import ConfigError, PromptlabError
from .controllers import SIDES, CompareController, CompareRow
from .style import chip, css_block, guard, text_color

_ids = itertools.count(1)

CHART_WIDTH, CHART_HEIGHT = 470, 250


def _html(value: str = "", cls: str | None = None, **layout: Any) -> widgets.HTML:
    w = widgets.HTML(value=value, layout=widgets.Layout(**layout))
    if cls:
        w.add_class(cls)
    return w


def _button(description: str, cls: str, tooltip: str = "", width: str = "auto", icon: str = "") -> widgets.Button:
    b = widgets.Button(description=description, tooltip=tooltip, icon=icon,
                       layout=widgets.Layout(width=width, flex="0 0 auto"))
    b.add_class(cls)
    return b


def _select(button: widgets.Button, selected: bool) -> None:
    if selected:
        button.add_class("pl-selected")
    else:
        button.remove_class("pl-selected")


class _SideView:
    """One variant's card in a row: header, output, thumbs, issue tag, correction."""

    def __init__(self, grid: "CompareView", row: CompareRow, which: str):
        ctl = grid.controller
        self.grid, self.which, self.position = grid, which, row.position
        label = row.side(which).label
        self.header = _html(f"<div class='pl-card-head'>{chip(label, ctl.colors[which])}"
                            f"<span>{html.escape(ctl.titles[which])}</span></div>")
        self.output = _html(cls="pl-output", width="100%")
        self.meta = _html(cls="pl-meta")
        self.up = _button("Good", "pl-thumb-up", f"{label}'s answer is good (saved at once)", icon="thumbs-up")
        self.down = _button("Bad", "pl-thumb-down", f"{label}'s answer is bad (saved at once)",
                            icon="thumbs-down")
        self.issue = widgets.Dropdown(options=[("issue tag…", "")] + [(t, t) for t in ctl.issue_tags],
                                      value="", layout=widgets.Layout(width="150px"))
        self.issue.add_class("pl-issue")
        self.correction = widgets.Textarea(placeholder=f"What {label} should have said…",
                                           layout=widgets.Layout(width="auto", flex="1 1 auto", height="54px"))
        self.correction.add_class("pl-correction")
        self.save = _button("Save correction", "pl-save-correction", "Save the correction to the store")
        self._quiet = False

        self.up.on_click(guard(grid, lambda _: self._rate("Positive")))
        self.down.on_click(guard(grid, lambda _: self._rate("Negative")))
        self.save.on_click(guard(grid, lambda _: self._correct()))
        self.issue.observe(guard(grid, self._tag), names="value")
        self.correction.observe(self._edited, names="value")

        self.box = widgets.VBox([
            self.header, self.output, self.meta,
            widgets.HBox([self.up, self.down, self.issue], layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.correction, self.save], layout=widgets.Layout(align_items="flex-start")),
        ], layout=widgets.Layout(width="38%", padding="0 6px 6px 6px", margin="0 4px"))
        self.box.add_class(f"pl-side-{which}")
        self.box.add_class("pl-card")
        self.update(row)

    # handlers -----------------------------------------------------------------------------------
    def _rate(self, rating: str) -> None:
        self.grid.controller.rate(self.position, self.which, rating)  # the grid redraws through its on_feedback listener

    def _correct(self) -> None:
        self.grid.controller.correct(self.position, self.which, self.correction.value)  # the grid redraws through its on_feedback listener

    def _tag(self, change: dict) -> None:
        if self._quiet or not change["new"]:
            return
        self.grid.controller.tag(self.position, self.which, change["new"])  # the grid redraws through its on_feedback listener

    def _edited(self, change: dict) -> None:
        if not self._quiet:
            self._show_saved(self.grid.controller.row(self.position).side(self.which).correction)

    # drawing ------------------------------------------------------------------------------------
    def _show_saved(self, saved: str | None) -> None:
        is_saved = saved is not None and self.correction.value == saved
        self.save.description = "Saved ✓" if is_saved else "Save correction"
        self.save.button_style = "success" if is_saved else ""
        _select(self.save, is_saved)

    def update(self, row: CompareRow) -> None:
        state = row.side(self.which)
        if state.status == "pending":
            note = "generating…" if self.grid.controller.running else "not generated (the run is incomplete)"
            self.output.value = f"<div class='pl-out pl-pending'>{note}</div>"
        elif state.status == "error":
            self.output.value = f"<div class='pl-out pl-error'>error: {html.escape(state.error or '')}</div>"
        else:
            self.output.value = f"<div class='pl-out'>{html.escape(state.output or '')}</div>"
        facts = []
        if state.latency_ms is not None:
            facts.append("cached" if state.cached else f"{state.latency_ms:,.0f} ms")
        if state.tokens is not None:
            facts.append(f"{state.tokens} tokens")
        if state.cost_usd:
            facts.append(f"${state.cost_usd:.4f}")
        self.meta.value = " · ".join(facts)
        for control in (self.up, self.down, self.issue, self.correction, self.save):
            control.disabled = not state.ready
        self.up.button_style = "success" if state.rating == "Positive" else ""
        self.down.button_style = "danger" if state.rating == "Negative" else ""
        _select(self.up, state.rating == "Positive")
        _select(self.down, state.rating == "Negative")
        self._quiet = True
        try:
            if state.issue and state.issue not in [v for _, v in self.issue.options]:
                self.issue.options = list(self.issue.options) + [(state.issue, state.issue)]
            self.issue.value = state.issue or ""
            _select(self.issue, bool(state.issue))
            if state.correction is not None and not self.correction.value:
                self.correction.value = state.correction
        finally:
            self._quiet = False
        self._show_saved(state.correction)


class _RowView:
    def __init__(self, grid: "CompareView", row: CompareRow):
        ctl = grid.controller
        self.grid, self.position = grid, row.position
        self.drawn = -1
        self.inputs = _html(self._inputs_html(row), cls="pl-inputs", width="24%")
        self.sides = {which: _SideView(grid, row, which) for which in SIDES}
        self.prefer = {
            "a": _button(f"◀ {ctl.label_a} better", "pl-prefer-a", f"{ctl.label_a}'s answer is better"),
            "tie": _button("Tie", "pl-prefer-tie", "Both are as good"),
            "b": _button(f"{ctl.label_b} better ▶", "pl-prefer-b", f"{ctl.label_b}'s answer is better"),
        }
        for winner, button in self.prefer.items():
            button.on_click(guard(grid, lambda _, w=winner: self._prefer(w)))
        self.show_prompt = widgets.ToggleButton(description="Show prompt", icon="eye",
                                                tooltip="Show the rendered messages sent to each model",
                                                layout=widgets.Layout(width="140px"))
        self.show_prompt.add_class("pl-show-prompt")
        self.show_prompt.observe(guard(grid, self._toggle_prompt), names="value")
        self.prompt = widgets.HBox([], layout=widgets.Layout(display="none", width="100%"))
        self.prompt.add_class("pl-prompt")
        title = _html(f"<span class='pl-row-no'>#{row.position + 1}</span>")
        footer = widgets.HBox(
            [title, self.show_prompt, _html(width="auto", flex="1"), *self.prefer.values()],
            layout=widgets.Layout(align_items="center", margin="4px 0 0 0"))
        self.box = widgets.VBox(
            [widgets.HBox([self.inputs, self.sides["a"].box, self.sides["b"].box]), footer, self.prompt],
            layout=widgets.Layout(padding="8px 4px", margin="0 0 6px 0"))
        self.box.add_class("pl-row")
        self.box.add_class(f"pl-row-{row.position}")
        self.update(row)

    @staticmethod
    def _inputs_html(row: CompareRow) -> str:
        parts = [f"<div class='pl-var'><span>{html.escape(str(k))}</span>{html.escape(str(v))}</div>"
                 for k, v in row.inputs.items()]
        expected = row.expected if isinstance(row.expected, dict) else (
            {} if row.expected is None else {"expected": row.expected})
        parts += [f"<div class='pl-var pl-expected'><span>{html.escape(str(k))}</span>"
                  f"{html.escape(str(v))}</div>" for k, v in expected.items()]
        if row.repeat:
            parts.append(f"<div class='pl-var'><span>repeat</span>{row.repeat}</div>")
        return "".join(parts)

    def _prefer(self, winner: str) -> None:
        self.grid.controller.prefer(self.position, winner)  # the grid redraws through its on_feedback listener

    def _toggle_prompt(self, change: dict) -> None:
        if not change["new"]:
            self.prompt.layout.display = "none"
            return
        ctl = self.grid.controller
        panes = []
        for which in SIDES:
            row = ctl.row(self.position)
            if row.side(which).ready:
                body = "".join(f"<div class='pl-msg'><span>{html.escape(m['role'])}</span>"
                               f"{html.escape(_content_text(m.get('content')))}</div>"
                               for m in ctl.messages(self.position, which))
            else:
                body = "<i>not generated yet</i>"
            pane = _html(f"<div class='pl-prompt-head'>{chip(row.side(which).label, ctl.colors[which])}"
                         f" prompt</div>{body}", width="50%")
            pane.add_class(f"pl-prompt-{which}")
            panes.append(pane)
        self.prompt.children = panes
        self.prompt.layout.display = "flex"

    def update(self, row: CompareRow) -> None:
        self.drawn = row.version  # read first: a change while drawing is drawn next time
        for which in SIDES:
            self.sides[which].update(row)
        ready = row.a.ready and row.b.ready
        ctl = self.grid.controller
        for winner, button in self.prefer.items():
            button.disabled = not ready
            chosen = row.preference == winner
            _select(button, chosen)
            color = ctl.colors.get(winner, "#666666")
            button.style.button_color = color if chosen else None
            button.style.text_color = text_color(color) if chosen else None
            button.style.font_weight = "bold" if chosen else ""


def _content_text(content: Any) -> str:
    if isinstance(content, list):  # multi-part (text + images)
        return " ".join(p.get("text", f"[{p.get('type')}]") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


class CompareView(widgets.VBox):
    """The grid: a header (labels, progress, live charts), one row per input, and pages.

    ``view.controller`` is the :class:`CompareController`; ``view.wait()`` blocks until every
    output has arrived (useful in scripts and tests).
    """

    def __init__(self, controller: CompareController, *, charts: bool = True, poll_seconds: float = 0.3):
        self.controller = ctl = controller
        self._poll_seconds = poll_seconds
        self._scope = f"pl-compare-{next(_ids)}"
        self._draw_lock = threading.RLock()
        self._poller: threading.Thread | None = None
        self._row_views: dict[int, _RowView] = {}

        style = _html(css_block(self._scope, ctl.colors))
        head = (f"<div class='pl-title'>{chip(ctl.label_a, ctl.colors['a'])}<b>{html.escape(ctl.titles['a'])}</b>"
                f"<span class='pl-vs'>vs</span>{chip(ctl.label_b, ctl.colors['b'])}"
                f"<b>{html.escape(ctl.titles['b'])}</b></div>")
        self.title = _html(head)
        self.progress = _html(cls="pl-progress")
        self.outputs = widgets.IntProgress(min=0, max=max(1, ctl.progress().outputs),
                                           layout=widgets.Layout(width="220px"))
        self.message = _html(cls="pl-message")
        self.stop_button = _button("Stop", "pl-stop", "Stop generating: nothing more is sent; finished outputs "
                                                      "stay", icon="stop")
        self.stop_button.on_click(guard(self, lambda _: self._stop()))
        self.charts: list[Any] = []
        if charts:
            import plotly.graph_objects as go

            try:
                self.charts = [go.FigureWidget(), go.FigureWidget()]
            except ImportError as exc:  # plotly's FigureWidget is an anywidget
                raise ConfigError(f"the grid's live charts need anywidget ({exc}): `pip install anywidget`, "
                                  "or pass charts=False") from None
            self.charts[0].add_class("pl-chart-ratings")
            self.charts[1].add_class("pl-chart-pairwise")
            self._draw_charts()
        self.rows = widgets.VBox([])
        self.prev = _button("◀ Prev", "pl-prev", "Previous page", width="90px")
        self.next = _button("Next ▶", "pl-next", "Next page", width="90px")
        self.page_label = _html(cls="pl-page")
        self.prev.on_click(guard(self, lambda _: self._turn(ctl.prev_page)))
        self.next.on_click(guard(self, lambda _: self._turn(ctl.next_page)))
        pager = widgets.HBox([self.prev, self.page_label, self.next],
                             layout=widgets.Layout(align_items="center", justify_content="center"))
        header = widgets.VBox([
            self.title,
            widgets.HBox([self.progress, self.outputs, self.stop_button],
                         layout=widgets.Layout(align_items="center")),
            widgets.HBox(self.charts),
            self.message,
        ])
        header.add_class("pl-header")
        super().__init__([style, header, pager, self.rows], layout=widgets.Layout(width="100%"))
        self.add_class("pl-compare")
        self.add_class(self._scope)
        self._draw_page()
        self._draw_progress()
        # Feedback written from code (grid.controller.rate(...)) updates the grid like a click does.
        ctl.on_feedback(lambda kind: self.feedback_changed(ratings=kind == "rating",
                                                           pairwise=kind == "preference"))
        self.follow()

    @property
    def run(self) -> Any:
        """The ExperimentRun shown (reopen it later with ``compare(lab, view.run)``)."""
        return self.controller.run

    def __repr__(self) -> str:
        ctl = self.controller
        return f"Compare({len(ctl.rows)} rows: {ctl.label_a} {ctl.titles['a']} | {ctl.label_b} {ctl.titles['b']})"

    # -- drawing --------------------------------------------------------------------------------
    def _draw_page(self) -> None:
        ctl = self.controller
        with self._draw_lock:
            views = []
            for row in ctl.page_rows():
                view = self._row_views.get(row.position)
                if view is None:
                    view = self._row_views[row.position] = _RowView(self, row)
                else:
                    view.update(row)
                views.append(view.box)
            self.rows.children = views
            self.page_label.value = f"<span class='pl-page-text'>{ctl.page_text()}</span>"
            self.prev.disabled = ctl.page == 0
            self.next.disabled = ctl.page + 1 >= ctl.n_pages

    def _draw_progress(self) -> None:
        p = self.controller.progress()
        ctl = self.controller
        self.progress.value = (
            f"<b class='pl-rated'>{ctl.progress_text()}</b> rows"
            f"<span class='pl-counts'> · <i class='fa fa-thumbs-up'></i> {p.positive} · "
            f"<i class='fa fa-thumbs-down'></i> {p.negative} · "
            f"{html.escape(ctl.label_a)} better {p.prefer_a} · tie {p.ties} · "
            f"{html.escape(ctl.label_b)} better {p.prefer_b}</span>"
            f"<span class='pl-counts'> · outputs {p.outputs_done}/{p.outputs}</span>")
        self.outputs.value = p.outputs_done
        self.outputs.bar_style = "success" if p.outputs_done == p.outputs else "info"

    def _draw_charts(self, ratings: bool = True, pairwise: bool = True) -> None:
        if not self.charts:
            return
        figures = self.controller.figures()
        for chart, figure, wanted in zip(self.charts, figures, (ratings, pairwise)):
            if not wanted:
                continue
            figure.update_layout(width=CHART_WIDTH, height=CHART_HEIGHT, margin=dict(l=50, r=20, t=50, b=40),
                                 title=dict(font=dict(size=14)), font=dict(size=12))
            for axis in (figure.layout.xaxis, figure.layout.yaxis):
                if axis.visible is None:
                    axis.visible = True
            if chart.layout.annotations and not figure.layout.annotations:
                chart.layout.annotations = ()  # ("no ratings yet") a relayout only drops what it names
            with chart.batch_update():
                chart.data = ()
                chart.add_traces(list(figure.data))
                chart.layout = figure.layout

    def feedback_changed(self, ratings: bool = False, pairwise: bool = False) -> None:
        """Called after a control wrote feedback: progress, charts, and clear the message."""
        self.message.value = ""
        self.sync()
        if ratings or pairwise:
            self._draw_charts(ratings=ratings, pairwise=pairwise)

    def show_error(self, exc: BaseException) -> None:
        kind = "" if isinstance(exc, PromptlabError) else f"{type(exc).__name__}: "
        self.message.value = f"<div class='pl-error'>⚠ {html.escape(kind + str(exc))}</div>"

    def _turn(self, step: Callable[[], bool]) -> None:
        if step():
            self._draw_page()

    # -- following a run ------------------------------------------------------------------------
    def sync(self) -> None:
        """Re-draw the rows of this page that changed since they were drawn, and the progress."""
        ctl = self.controller
        with self._draw_lock:
            for row in ctl.page_rows():
                view = self._row_views.get(row.position)
                if view is not None and view.drawn != row.version:
                    view.update(row)
        self._draw_progress()

    def follow(self) -> None:
        """Fill rows in from the store while the controller's run is going (a daemon thread)."""
        if self._poller is not None and self._poller.is_alive():
            return
        future = self.controller.future
        if future is None or future.done():
            self.stop_button.layout.display = "none"
            self.controller.refresh()
            self.sync()
            return
        self.stop_button.layout.display = None
        self._poller = threading.Thread(target=self._poll, args=(future,), name="promptlab-compare",
                                        daemon=True)
        self._poller.start()

    def _poll(self, future: Any) -> None:
        stop = threading.Event()
        while True:
            finished = future.done()
            try:
                self.controller.refresh()
                self.sync()
            except Exception as exc:  # never let a traceback land in an unrelated cell
                self.show_error(exc)
                return
            if finished:
                break
            stop.wait(self._poll_seconds)
        error = None if future.cancelled() else future.exception()
        if error is not None:
            self.show_error(error)
        self.stop_button.layout.display = "none"
        try:
            self._draw_charts()
        except Exception as exc:
            self.show_error(exc)

    def _stop(self) -> None:
        self.controller.stop()
        self.message.value = (f"Stopped: run {html.escape(self.run.guid)} is {html.escape(self.run.status)}; "
                              "its finished outputs are kept and controller.start() generates the rest.")

    def wait(self, timeout: float | None = None) -> "CompareView":
        """Block until every output has arrived and the grid shows it."""
        try:
            self.controller.wait(timeout)
        finally:
            if self._poller is not None:
                self._poller.join(timeout)
        self.sync()
        return self


__all__ = ["CompareView"]
