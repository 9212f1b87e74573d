"""An action's context binding (promptlab.contexts.binding): defaults and validation."""

from __future__ import annotations

import pytest

from promptlab.contexts.binding import Binding, parse_binding
from promptlab.errors import ConfigError


def test_defaults():
    assert parse_binding({"name": "kb"}) == Binding(name="kb", top_k=3, variable="context",
                                                    query=None, template="{text}",
                                                    separator="\n\n", mode=None)


def test_a_bare_name_is_accepted():
    assert parse_binding("kb").name == "kb"


def test_explicit_values_and_none_means_default():
    binding = parse_binding({"name": "kb", "top_k": 5, "variable": "docs", "query": "question",
                             "template": "{title}: {text}", "separator": "\n", "mode": "hybrid",
                             })
    assert (binding.top_k, binding.variable, binding.query, binding.mode) == (5, "docs", "question", "hybrid")
    assert parse_binding({"name": "kb", "top_k": None}).top_k == 3


@pytest.mark.parametrize("binding, fragment", [
    (None, "must be a dict"),
    (["kb"], "must be a dict"),
    ({}, "needs 'name'"),
    ({"name": " "}, "needs 'name'"),
    ({"name": "kb", "k": 3}, "unknown key(s) ['k']"),
    ({"name": "kb", "top_k": 0}, "top_k must be an integer from 1 to 100"),
    ({"name": "kb", "top_k": 101}, "top_k"),
    ({"name": "kb", "top_k": True}, "top_k"),
    ({"name": "kb", "top_k": 2.5}, "top_k"),
    ({"name": "kb", "variable": "my context"}, "variable must be a template variable name"),
    ({"name": "kb", "query": "1st"}, "query must be a template variable name"),
    ({"name": "kb", "query": "context"}, "query and variable are both 'context'"),
    ({"name": "kb", "template": 5}, "template must be a string"),
    ({"name": "kb", "mode": "dense"}, "mode must be one of"),
])
def test_invalid_bindings_name_the_action_and_field(binding, fragment):
    with pytest.raises(ConfigError) as info:
        parse_binding(binding, "support")
    assert fragment in str(info.value)
    assert "'support'" in str(info.value)
