"""An action's context binding: which context to search, with what, into which variable.

Stored with each action version as a dict::

    {"name": "kb",            # the context library (required)
     "top_k": 3,              # results to retrieve
     "variable": "context",   # the template variable that receives the formatted results
     "query": "question",     # the input variable to search with (default: see below)
     "template": "{text}",    # format_search_results template for each result
     "separator": "\\n\\n",     # between results
     "mode": None}            # bm25 | embeddings | hybrid; None: the context's own index

The default query is the first of the action's other variables that the input supplies, or
the plain-string input when the template has no other variable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ConfigError

DEFAULTS = {"top_k": 3, "variable": "context", "query": None, "template": "{text}",
            "separator": "\n\n", "mode": None}
KEYS = ("name", *DEFAULTS)
MODES = ("bm25", "embeddings", "hybrid")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Binding:
    name: str
    top_k: int = 3
    variable: str = "context"
    query: str | None = None
    template: str = "{text}"
    separator: str = "\n\n"
    mode: str | None = None


def parse_binding(binding: Any, action_name: str = "?") -> Binding:
    """Validate an action's ``context`` dict; ConfigError names the action and the field.

    >>> parse_binding({"name": "kb"}).top_k
    3
    """
    where = f"action {action_name!r} context binding"
    if isinstance(binding, str):
        binding = {"name": binding}
    if not isinstance(binding, Mapping):
        raise ConfigError(f"{where} must be a dict like {{'name': 'kb', 'top_k': 3}}, "
                          f"not {type(binding).__name__}")
    unknown = sorted(set(binding) - set(KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {list(KEYS)}")
    name = binding.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where} needs 'name': the context library to search")
    values = {**DEFAULTS, **{k: v for k, v in binding.items() if v is not None}}
    top_k = values["top_k"]
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 100:
        raise ConfigError(f"{where}: top_k must be an integer from 1 to 100, got {top_k!r}")
    for key in ("variable", "query"):
        value = values[key]
        if value is not None and (not isinstance(value, str) or not _IDENTIFIER.match(value)):
            raise ConfigError(f"{where}: {key} must be a template variable name, got {value!r}")
    if values["query"] is not None and values["query"] == values["variable"]:
        raise ConfigError(f"{where}: query and variable are both {values['query']!r}; the query "
                          "is an input variable, the variable receives the results")
    for key in ("template", "separator"):
        if not isinstance(values[key], str):
            raise ConfigError(f"{where}: {key} must be a string, got {values[key]!r}")
    if values["mode"] is not None and values["mode"] not in MODES:
        raise ConfigError(f"{where}: mode must be one of {list(MODES)}, got {values['mode']!r}")
    return Binding(name=name, top_k=top_k, variable=values["variable"], query=values["query"],
                   template=values["template"], separator=values["separator"], mode=values["mode"])


__all__ = ["Binding", "parse_binding", "MODES", "KEYS"]
