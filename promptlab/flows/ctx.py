"""Helpers for flow functions, bound to the context of the function being called.

The seed's Python runtime offers ``quiq.ctx``; promptlab offers the same helpers here, and as
``promptlab.flows.quiq.ctx`` so the seed's code runs unchanged::

    from promptlab.flows import quiq

    def build_answer(llm, context):
        kb = quiq.ctx.format_search_results('my-search-resource', "{title} - {body}")
        ...

They read the context given to the current function call (a function running outside a flow
gets a ConfigError). Pure reads: nothing here changes the flow.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator, Mapping

from ..contexts.results import format_search_results as _format
from ..errors import ConfigError
from .logic import get_path as _get_path

_current: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "promptlab_flow_context", default=None)


@contextlib.contextmanager
def bound(context: Mapping[str, Any]) -> Iterator[None]:
    """Make ``context`` the one these helpers read, for the duration of a function call (the
    flow engine wraps every user function in it)."""
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


def get_context() -> Mapping[str, Any]:
    """The context of the flow function being called."""
    context = _current.get()
    if context is None:
        raise ConfigError("promptlab.flows.ctx helpers only work inside a function called by a flow "
                          "(prompt builder, completion handler, Call Function, ...)")
    return context


def format_search_results(resource: str, template: str = "{title} - {body}", separator: str = "\n") -> str:
    """Format every accumulated search result of ``resource`` with ``template`` (``str.format``
    fields of the record: ``{title}``, ``{text}``, metadata keys, ``{distance}``), one per line.

    >>> quiq.ctx.format_search_results('my-search-resource', "{title} - {body}")
    """
    return _format(resource, template, separator, search_results=get_context().get("searchResults") or [])


def search_results(resource: str | None = None) -> list[dict[str, Any]]:
    """Accumulated search invocations (of ``resource`` only, when given), in order."""
    found = list(get_context().get("searchResults") or [])
    return [inv for inv in found if resource is None or inv.get("resource") == resource]


def api_results(target: str | None = None) -> list[dict[str, Any]]:
    """Accumulated Call API results (of HTTP target ``target`` only, when given), in order."""
    found = list(get_context().get("apiResults") or [])
    return [r for r in found if target is None or r.get("targetId") == target]


def get_field(path: str, default: Any = None) -> Any:
    """A context field by dotted path (``"session.rephrased"``), or ``default``."""
    return _get_path(get_context(), path, default)


__all__ = ["get_context", "format_search_results", "search_results", "api_results", "get_field"]
