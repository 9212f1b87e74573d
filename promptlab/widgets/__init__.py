"""Notebook widgets: thin ipywidgets views over plain-Python controllers.

    import promptlab as pl
    grid = pl.widgets.compare(lab, "reply-concise", "reply-detailed", tickets)   # runs A and B
    grid                                    # rate: 👍/👎 per side, A better / Tie / B better, ...
    pl.widgets.compare(lab, grid.run)       # reopen later: stored feedback shown, nothing re-run
    pl.widgets.playground(lab, "reply-concise")

Every control writes to the store the moment it is used. The controllers
(:class:`CompareController`, :class:`PlaygroundController`) hold all the logic and import no
ipywidgets; the views are built only when ``compare``/``playground`` are called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from .controllers import (
    CompareController,
    CompareRow,
    PlaygroundConfig,
    PlaygroundController,
    PlaygroundResult,
    Progress,
    SideState,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..lab import Lab
    from .compare_view import CompareView
    from .playground_view import PlaygroundView

__all__ = ["compare", "playground", "CompareController", "CompareRow", "SideState", "Progress",
           "PlaygroundController", "PlaygroundConfig", "PlaygroundResult"]


def compare(lab: "Lab", a: Any, b: str | None = None, dataset: Any = None, *, page_size: int = 10,
            experiment: Any = None, labels: Sequence[str] | None = None, repeats: int = 1,
            concurrency: int = 8, cache: bool = False, user: str | None = None,
            background: bool = True, charts: bool = True) -> "CompareView":
    """A side-by-side grid to rate two actions' outputs on a dataset.

    ``compare(lab, "writer", "writer-v2", dataset)`` records a new run of an experiment between
    the two actions (reusing the experiment named ``experiment``, default ``"compare: writer vs
    writer-v2"``, when it compares them) and generates the outputs in the background, filling
    rows as they arrive (``background=False`` waits for them first).

    ``compare(lab, run)`` opens an existing run (an ExperimentRun or its GUID) without re-running
    anything, showing the feedback already stored; ``labels`` picks two of its variants. Cells
    the run never finished show as not generated; ``view.controller.start(); view.follow()``
    generates them into the grid.

    ``user`` is stored as ``ext_user_id`` on the feedback. Returns the view; ``view.controller``
    is the :class:`CompareController`, ``view.run`` the ExperimentRun.
    """
    from ..errors import ConfigError
    from .compare_view import CompareView

    if b is None and dataset is None:
        controller = CompareController(lab, a, labels=labels, page_size=page_size, user=user)
    else:
        if b is None or dataset is None:
            raise ConfigError("compare(lab, action_a, action_b, dataset) needs both actions and a dataset; "
                              "compare(lab, run) opens an existing run")
        if labels is not None:
            raise ConfigError("labels= picks variants of an existing run; with two actions they are A and B")
        controller = CompareController.from_actions(lab, a, b, dataset, experiment=experiment, repeats=repeats,
                                                    page_size=page_size, user=user)
        controller.start(concurrency=concurrency, cache=cache)
        if not background:
            controller.wait()
    return CompareView(controller, charts=charts)


def playground(lab: "Lab", action: str, *, environment: str | None = None) -> "PlaygroundView":
    """Two editable configs of ``action`` side by side (system, prompt, model, temperature, max
    tokens), inputs for the templates' variables, Run (streams both outputs) and "Save as new
    version" (``lab.actions.update``). Side A starts from the version deployed to
    ``environment`` (Production), side B from the latest version."""
    from .playground_view import PlaygroundView

    return PlaygroundView(PlaygroundController(lab, action, environment=environment))
