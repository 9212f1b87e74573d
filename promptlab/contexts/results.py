"""Format search results into prompt text (pure): the seed's ``format_search_results``.

A search result is ``{"record": {...}, "distance": float}``; a template names record fields
(``{title}``, ``{text}``), metadata keys (``{tenant-id}``) or ``{distance}``, in Python
``str.format`` syntax (single braces, format specs allowed: ``{distance:.2f}``).

Two call shapes:

>>> format_search_results(results, "{title} - {body}")                     # a list of results
>>> format_search_results("kb", "{title} - {body}", search_results=acc)    # accumulated searches

``acc`` is the Search behavior's accumulation: a list of invocations, each
``{"resource": <name>, "results": [...]}`` in the order they ran; the results of every
invocation against that resource are formatted, in order.
"""

from __future__ import annotations

import string
from typing import Any, Iterable, Mapping, Sequence

from ..errors import InvalidInputError, NotFoundError

_RESOURCE_KEYS = ("resource", "context", "name")


def format_search_results(results: Any, template: str = "{title} - {body}", separator: str = "\n",
                          *, search_results: Sequence[Mapping[str, Any]] | None = None) -> str:
    """Join one formatted line per search result, best first.

    ``results``: a list of search results, a list of search invocations (dicts with a
    ``results`` list), or a resource name together with ``search_results=``. Fields are looked
    up in the record, then in its metadata, then ``distance``; a missing field raises
    ``InvalidInputError`` naming it and the fields available.

    >>> format_search_results([{"record": {"title": "Refunds", "body": "Five days."},
    ...                         "distance": 0.2}])
    'Refunds - Five days.'
    """
    if not isinstance(template, str):
        raise InvalidInputError(f"template must be a string, not {type(template).__name__}")
    if not isinstance(separator, str):
        raise InvalidInputError(f"separator must be a string, not {type(separator).__name__}")
    fields = template_fields(template)
    items = _select(results, search_results)
    lines = []
    for i, result in enumerate(items):
        values = result_values(result, i)
        missing = [f for f in fields if f not in values]
        if missing:
            raise InvalidInputError(
                f"search result {i} has no field {missing[0]!r} for template {template!r}; "
                f"available: {sorted(k for k in values if k != 'metadata')}")
        lines.append(template.format_map(values))
    return separator.join(lines)


def template_fields(template: str) -> list[str]:
    """Names used by a ``str.format`` template; positional and attribute/index fields are
    refused (a template must not reach into Python objects)."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidInputError(f"invalid template {template!r}: {exc}") from None
    for _literal, name, spec, _conversion in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise InvalidInputError(f"template {template!r} uses a positional field; name it, "
                                    "e.g. {text}")
        if "." in name or "[" in name:
            raise InvalidInputError(f"template field {{{name}}} must be a plain field name "
                                    "(no '.' or '[')")
        if spec and "{" in spec:
            raise InvalidInputError(f"template {template!r}: nested fields are not supported")
        names.append(name)
    return names


def result_values(result: Any, position: int = 0) -> dict[str, Any]:
    """The names a template can use for one result: metadata, then record fields, distance."""
    if not isinstance(result, Mapping) or not isinstance(result.get("record"), Mapping):
        raise InvalidInputError(f"search result {position} must be a dict with a 'record' dict, "
                                f"got {_preview(result)}")
    record = result["record"]
    metadata = record.get("metadata")
    values: dict[str, Any] = dict(metadata) if isinstance(metadata, Mapping) else {}
    values.update(record)
    if "distance" in result:
        values.setdefault("distance", result["distance"])
    return values


def _select(results: Any, search_results: Sequence[Mapping[str, Any]] | None) -> list[Any]:
    if isinstance(results, str):
        if search_results is None:
            raise InvalidInputError(
                f"format_search_results({results!r}, ...) names a resource: pass the accumulated "
                "searches as search_results=[{'resource': ..., 'results': [...]}, ...], or pass a "
                "list of results instead of a name")
        invocations = [inv for inv in _invocations(search_results) if _resource(inv) == results]
        if not invocations:
            searched = sorted({str(_resource(inv)) for inv in _invocations(search_results)})
            raise NotFoundError("search results for resource", results,
                                f"searched: {searched}" if searched else "no searches ran")
        return [r for inv in invocations for r in inv["results"]]
    if search_results is not None:
        raise InvalidInputError("search_results= goes with a resource name as the first argument")
    if isinstance(results, Mapping) or not isinstance(results, Iterable):
        raise InvalidInputError(f"results must be a list of search results, got {_preview(results)}")
    results = list(results)
    if results and all(isinstance(r, Mapping) and "results" in r and "record" not in r for r in results):
        return [item for inv in _invocations(results) for item in inv["results"]]
    return results


def _invocations(search_results: Any) -> list[Mapping[str, Any]]:
    if isinstance(search_results, (str, Mapping)) or not isinstance(search_results, Iterable):
        raise InvalidInputError("search_results must be a list of search invocations")
    out = []
    for i, inv in enumerate(search_results):
        if not isinstance(inv, Mapping) or not isinstance(inv.get("results"), list):
            raise InvalidInputError(f"search_results[{i}] must be a dict with a 'results' list")
        out.append(inv)
    return out


def _resource(invocation: Mapping[str, Any]) -> Any:
    return next((invocation[k] for k in _RESOURCE_KEYS if k in invocation), None)


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


__all__ = ["format_search_results", "template_fields", "result_values"]
