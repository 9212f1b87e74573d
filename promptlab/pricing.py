"""Token prices and the cost of a generation. Pure.

The shipped table is ``data/prices.yaml`` (USD per million tokens, keyed by ``provider:model``
with shell-style wildcards). Users override or extend it with ``Lab(prices={...})`` or a YAML
file named by ``$PROMPTLAB_PRICES``. A model that matches no entry costs ``None`` (unknown),
never 0, so unknown costs are never summed as free.
"""

from __future__ import annotations

import fnmatch
import os
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

import yaml

from .errors import ConfigError

Prices = Mapping[str, Mapping[str, float]]


@lru_cache(maxsize=1)
def default_prices() -> dict[str, dict[str, float]]:
    text = resources.files("promptlab").joinpath("_data/prices.yaml").read_text()
    return validate_prices(yaml.safe_load(text), "the shipped price table")


def validate_prices(table: Any, source: str) -> dict[str, dict[str, float]]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: a price table maps 'provider:model' to {{input, output}}")
    clean: dict[str, dict[str, float]] = {}
    for key, entry in table.items():
        if not isinstance(entry, Mapping) or not {"input", "output"} <= set(entry):
            raise ConfigError(f"{source}: entry {key!r} needs 'input' and 'output' (USD per 1M tokens)")
        try:
            clean[str(key)] = {"input": float(entry["input"]), "output": float(entry["output"])}
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: entry {key!r} has a non-numeric price") from exc
    return clean


def load_prices(overrides: Prices | None = None) -> dict[str, dict[str, float]]:
    """The shipped table, then ``$PROMPTLAB_PRICES``, then ``overrides`` (later wins)."""
    table = dict(default_prices())
    path = os.environ.get("PROMPTLAB_PRICES")
    if path:
        try:
            with open(path) as handle:
                table.update(validate_prices(yaml.safe_load(handle), path))
        except OSError as exc:
            raise ConfigError(f"cannot read $PROMPTLAB_PRICES file {path!r}: {exc}") from exc
    if overrides:
        table.update(validate_prices(overrides, "prices="))
    return table


def price_for(table: Prices, model: str) -> Mapping[str, float] | None:
    """The entry for ``provider:model``: an exact key first, then the longest matching pattern."""
    if model in table:
        return table[model]
    matches = [key for key in table if fnmatch.fnmatchcase(model, key)]
    return table[max(matches, key=len)] if matches else None


def cost_usd(table: Prices, model: str, prompt_tokens: int | None,
             completion_tokens: int | None) -> float | None:
    """Cost in USD, or None when the model's price (or the token count) is unknown.

    >>> cost_usd({"openai:gpt-4o-mini": {"input": 0.15, "output": 0.6}}, "openai:gpt-4o-mini", 1000, 500)
    0.00045
    """
    entry = price_for(table, model)
    if entry is None or prompt_tokens is None or completion_tokens is None:
        return None
    return round((prompt_tokens * entry["input"] + completion_tokens * entry["output"]) / 1e6, 10)
