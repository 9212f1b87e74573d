"""format_search_results (promptlab.contexts.results): both call shapes and clear errors."""

from __future__ import annotations

import pytest

from promptlab.contexts import format_search_results
from promptlab.errors import InvalidInputError, NotFoundError

RESULTS = [
    {"record": {"id": "a#0", "document_id": "a", "text": "Refunds take five days.",
                "title": "Refunds", "body": "Refunds take five days.",
                "metadata": {"tenant-id": "aa882", "year": 2024}}, "distance": 0.25},
    {"record": {"id": "b#0", "document_id": "b", "text": "Invoices are monthly.",
                "title": "Invoices", "body": "Invoices are monthly.",
                "metadata": {"tenant-id": "aa882", "year": 2023}}, "distance": 0.5},
]


def test_seed_template_over_results():
    assert format_search_results(RESULTS, "{title} - {body}") == (
        "Refunds - Refunds take five days.\nInvoices - Invoices are monthly.")


def test_default_template_is_the_seeds():
    assert format_search_results(RESULTS).startswith("Refunds - Refunds take five days.")


def test_metadata_distance_format_specs_and_separator():
    text = format_search_results(RESULTS, "[{tenant-id}/{year}] {text} ({distance:.2f})", "\n---\n")
    assert text == ("[aa882/2024] Refunds take five days. (0.25)\n---\n"
                    "[aa882/2023] Invoices are monthly. (0.50)")


def test_record_fields_win_over_metadata_keys():
    results = [{"record": {"text": "t", "title": "record", "metadata": {"title": "meta"}},
                "distance": 0.1}]
    assert format_search_results(results, "{title}") == "record"


def test_empty_results_give_empty_text():
    assert format_search_results([], "{text}") == ""


def test_missing_key_names_it_and_the_available_keys():
    with pytest.raises(InvalidInputError) as info:
        format_search_results(RESULTS, "{title} - {summary}")
    message = str(info.value)
    assert "'summary'" in message
    assert "available: ['body', 'distance', 'document_id', 'id', 'tenant-id', 'text', 'title', 'year']" in message


@pytest.mark.parametrize("template, fragment", [
    ("{}", "positional"),
    ("{0}", "positional"),
    ("{text.__class__}", "plain field name"),
    ("{metadata[year]}", "plain field name"),
    ("{text", "invalid template"),
    ("{text:{width}}", "nested"),
    (3, "template must be a string"),
])
def test_bad_templates(template, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        format_search_results(RESULTS, template)


def test_accumulated_searches_by_resource_name():
    accumulated = [
        {"resource": "kb", "results": RESULTS[:1]},
        {"resource": "catalog", "results": [{"record": {"title": "Widget", "body": "Blue"},
                                             "distance": 0.1}]},
        {"resource": "kb", "results": RESULTS[1:]},
    ]
    assert format_search_results("kb", "{title}", search_results=accumulated) == "Refunds\nInvoices"
    assert format_search_results("catalog", "{title} - {body}",
                                 search_results=accumulated) == "Widget - Blue"
    # a list of invocations without a name: all of them, in order
    assert format_search_results(accumulated, "{title}") == "Refunds\nWidget\nInvoices"


def test_resource_name_errors():
    with pytest.raises(InvalidInputError, match="pass the accumulated searches"):
        format_search_results("kb", "{title}")
    with pytest.raises(NotFoundError, match="searched: \\['catalog'\\]"):
        format_search_results("kb", "{title}", search_results=[{"resource": "catalog", "results": []}])
    with pytest.raises(InvalidInputError, match="must be a dict with a 'results' list"):
        format_search_results("kb", "{title}", search_results=[{"resource": "kb"}])
    with pytest.raises(InvalidInputError, match="goes with a resource name"):
        format_search_results(RESULTS, "{title}", search_results=[])


def test_malformed_results():
    with pytest.raises(InvalidInputError, match="search result 1 must be a dict with a 'record'"):
        format_search_results([RESULTS[0], {"text": "no record"}], "{text}")
    with pytest.raises(InvalidInputError, match="must be a list of search results"):
        format_search_results(RESULTS[0], "{text}")
