"""The playground: a thin ipywidgets view over :class:`PlaygroundController`.

Two configs side by side, variable inputs generated from the templates (re-generated as the
prompt text changes), Run streams both outputs, and "Save as new version" writes one.
"""

from __future__ import annotations

import html
import itertools
import threading
from typing import Any

import ipywidgets as widgets

from .. import charts
from ..errors import PromptlabError
from .controllers import SIDES, PlaygroundController
from .style import chip, css_block, guard

_ids = itertools.count(1)


class _ConfigView:
    def __init__(self, view: "PlaygroundView", which: str, color: str):
        ctl = view.controller
        config = ctl.configs[which]
        self.view, self.which = view, which
        base = ctl.base[which]
        self.header = widgets.HTML(f"<div class='pl-card-head'>{chip(which.upper(), color)}"
                                   f"<span class='pl-base'>from {html.escape(base.name)} v{base.version}</span></div>")
        wide = widgets.Layout(width="98%")
        self.system = widgets.Textarea(value=config.system, description="system", layout=wide,
                                       placeholder="System message (optional)")
        self.prompt = widgets.Textarea(value=config.prompt, description="prompt",
                                       layout=widgets.Layout(width="98%", height="90px"),
                                       placeholder="Prompt template, e.g. Summarise {{text}}")
        self.model = widgets.Text(value=config.model, description="model", layout=wide)
        self.temperature = widgets.FloatSlider(
            value=config.temperature if config.temperature is not None else 1.0, min=0.0, max=2.0,
            step=0.05, description="temperature", readout_format=".2f", layout=wide)
        self.max_tokens = widgets.BoundedIntText(value=config.max_tokens or 0, min=0, max=1_000_000,
                                                 description="max tokens", layout=wide,
                                                 tooltip="0: the provider's default")
        for w in (self.system, self.prompt, self.model, self.temperature, self.max_tokens):
            w.style.description_width = "90px"
        self.output = widgets.HTML(layout=widgets.Layout(width="98%", min_height="80px"))
        self.output.add_class("pl-output")
        self.meta = widgets.HTML()
        self.meta.add_class("pl-meta")
        self.save = widgets.Button(description=f"Save {which.upper()} as new version", icon="save",
                                   layout=widgets.Layout(width="auto"))
        self.save.add_class(f"pl-save-{which}")
        self.save.on_click(guard(view, lambda _: view.save(which)))
        self.system.observe(guard(view, lambda c: self._set(system=c["new"])), names="value")
        self.prompt.observe(guard(view, lambda c: self._set(prompt=c["new"])), names="value")
        self.model.observe(guard(view, lambda c: self._set(model=c["new"].strip())), names="value")
        self.temperature.observe(guard(view, lambda c: self._set(temperature=c["new"])), names="value")
        self.max_tokens.observe(guard(view, lambda c: self._set(max_tokens=c["new"] or None)), names="value")
        self.box = widgets.VBox([self.header, self.system, self.prompt, self.model, self.temperature,
                                 self.max_tokens, widgets.HTML("<div class='pl-var'><span>output</span></div>"),
                                 self.output, self.meta, self.save],
                                layout=widgets.Layout(width="50%", padding="4px 8px", margin="0 4px"))
        self.box.add_class("pl-card")
        self.box.add_class(f"pl-side-{which}")
        self.show_output("", None)

    def _set(self, **changes: Any) -> None:
        self.view.controller.set(self.which, **changes)
        self.view.variables_changed()

    def show_output(self, text: str, state: str | None) -> None:
        cls = {"error": "pl-out pl-error", None: "pl-out pl-pending"}.get(state, "pl-out")
        body = html.escape(text) if text or state else "press Run"
        self.output.value = f"<div class='{cls}'>{body}</div>"


class PlaygroundView(widgets.VBox):
    """Two configs side by side; ``view.controller`` is the :class:`PlaygroundController`."""

    def __init__(self, controller: PlaygroundController):
        self.controller = ctl = controller
        self._scope = f"pl-playground-{next(_ids)}"
        self._threads: list[threading.Thread] = []
        colors = charts.palette(["A", "B"])
        self.sides = {which: _ConfigView(self, which, colors[which.upper()]) for which in SIDES}
        self.inputs_box = widgets.VBox([])
        self.inputs_box.add_class("pl-inputs")
        self._input_widgets: dict[str, widgets.Textarea] = {}
        self.run_button = widgets.Button(description="Run both", icon="play", button_style="primary")
        self.run_button.add_class("pl-run")
        self.run_button.on_click(guard(self, lambda _: self.run()))
        self.message = widgets.HTML()
        self.message.add_class("pl-message")
        style = widgets.HTML(css_block(self._scope, {w: colors[w.upper()] for w in SIDES}))
        title = widgets.HTML(f"<div class='pl-title'>Playground · <b>{html.escape(ctl.name)}</b></div>")
        super().__init__([style, title, widgets.HBox([self.sides["a"].box, self.sides["b"].box]),
                          widgets.HTML("<b>Inputs</b>"), self.inputs_box, self.run_button, self.message])
        self.add_class("pl-playground")
        self.add_class(self._scope)
        self.variables_changed()

    def __repr__(self) -> str:
        ctl = self.controller
        return (f"Playground({ctl.name}: A v{ctl.base['a'].version} | B v{ctl.base['b'].version}, "
                f"variables {ctl.variables})")

    def show_error(self, exc: BaseException) -> None:
        kind = "" if isinstance(exc, PromptlabError) else f"{type(exc).__name__}: "
        self.message.value = f"<div class='pl-error'>⚠ {html.escape(kind + str(exc))}</div>"

    def variables_changed(self) -> None:
        """Re-generate the input boxes from the templates' variables, keeping typed values."""
        ctl = self.controller
        errors = [f"{w.upper()}: {e}" for w, e in ctl.errors.items() if e]
        self.message.value = ("<div class='pl-error'>⚠ " + html.escape("; ".join(errors)) + "</div>"
                              if errors else "")
        names = ctl.variables
        if list(self._input_widgets) == names:
            return
        for name in names:
            if name not in self._input_widgets:
                box = widgets.Textarea(value=ctl.inputs.get(name, ""), description=name,
                                       layout=widgets.Layout(width="98%", height="48px"))
                box.style.description_width = "140px"
                box.add_class(f"pl-input-{name}")
                box.observe(lambda c, n=name: ctl.set_input(n, c["new"]), names="value")
                self._input_widgets[name] = box
        self._input_widgets = {n: self._input_widgets[n] for n in names}
        self.inputs_box.children = list(self._input_widgets.values()) or [
            widgets.HTML("<i>the templates use no variables</i>")]

    def run(self) -> None:
        """Run both configs; outputs stream into their areas from background threads."""
        self.message.value = ""
        results = self.controller.start()
        self.run_button.disabled = True  # one run at a time: both areas show the same inputs
        for which, result in results.items():
            self.sides[which].show_output("", "running")
            self.sides[which].meta.value = "streaming…"
            thread = threading.Thread(target=self._follow, args=(which, result), daemon=True,
                                      name=f"promptlab-playground-{which}")
            self._threads.append(thread)
            thread.start()

    def _follow(self, which: str, result: Any) -> None:
        try:
            self._show(which, result)
        finally:
            if all(r.done for r in self.controller.results.values()):
                self.run_button.disabled = False

    def _show(self, which: str, result: Any) -> None:
        side = self.sides[which]
        try:
            for _ in result.stream:
                side.show_output(result.stream.text, "running")
        except Exception:
            pass  # the generation's error is reported below
        result.wait()
        if result.error is not None:
            side.show_output(str(result.error), "error")
            side.meta.value = ""
            return
        generation = result.generation
        side.show_output(generation.msg or "", "done")
        facts = [f"{generation.latency_ms:,.0f} ms" if generation.latency_ms is not None else None,
                 f"{generation.usage.get('total_tokens')} tokens" if generation.usage else None,
                 f"${generation.cost_usd:.4f}" if generation.cost_usd else None]
        side.meta.value = " · ".join(f for f in facts if f)

    def wait(self, timeout: float | None = None) -> "PlaygroundView":
        """Block until the last Run's outputs are shown."""
        for thread in self._threads:
            thread.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]
        return self

    def save(self, which: str) -> None:
        action = self.controller.save(which)
        side = self.sides[which]
        side.header.value = (f"<div class='pl-card-head'>{chip(which.upper(), charts.palette(['A', 'B'])[which.upper()])}"
                             f"<span class='pl-base'>from {html.escape(action.name)} v{action.version}</span></div>")
        self.message.value = (f"<div class='pl-saved'>saved {which.upper()} as {html.escape(action.name)} "
                              f"v{action.version}</div>")


__all__ = ["PlaygroundView"]
