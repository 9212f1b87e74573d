"""Metadata filters (promptlab.contexts.filters): every operator, MongoDB edge cases, invalid
filters, and a property: a tenant filter never lets another tenant's document through."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptlab.contexts.filters import compile_filter, filter_key, matches
from promptlab.errors import InvalidInputError

DOC = {"tenant-id": "aa882-bb873", "user-id": "00379-28829999a", "year": 2022, "score": 4.5,
       "tags": ["faq", "billing"], "public": True, "author": {"name": "Ada"}, "lang": "en"}


@pytest.mark.parametrize("flt, expected", [
    (None, True),
    ({}, True),
    # the seed's example: equality on many keys, all must hold
    ({"user-id": "00379-28829999a", "tenant-id": "aa882-bb873"}, True),
    ({"user-id": "00379-28829999a", "tenant-id": "other"}, False),
    ({"missing": "x"}, False),
    ({"year": {"$eq": 2022}}, True),
    ({"year": {"$eq": 2021}}, False),
    ({"year": {"$ne": 2021}}, True),
    ({"year": {"$ne": 2022}}, False),
    ({"missing": {"$ne": "x"}}, True),       # MongoDB: a missing field is "not equal"
    ({"lang": {"$in": ["en", "fr"]}}, True),
    ({"lang": {"$in": ["de", "fr"]}}, False),
    ({"lang": {"$nin": ["de", "fr"]}}, True),
    ({"lang": {"$nin": ["en"]}}, False),
    ({"missing": {"$nin": ["en"]}}, True),
    ({"missing": {"$in": ["en"]}}, False),
    ({"year": {"$gt": 2021}}, True),
    ({"year": {"$gt": 2022}}, False),
    ({"year": {"$gte": 2022}}, True),
    ({"year": {"$gte": 2023}}, False),
    ({"year": {"$lt": 2023}}, True),
    ({"year": {"$lt": 2022}}, False),
    ({"year": {"$lte": 2022}}, True),
    ({"year": {"$lte": 2021}}, False),
    ({"score": {"$gt": 4, "$lt": 5}}, True),  # several operators on one field: all hold
    ({"score": {"$gt": 4, "$lt": 4.2}}, False),
    ({"year": {"$gt": "2000"}}, False),       # number vs string never compares
    ({"lang": {"$gte": "de"}}, True),         # strings compare as strings (ISO dates sort)
    ({"missing": {"$lt": 10}}, False),
    ({"tags": "faq"}, True),                  # list field contains the value
    ({"tags": "sso"}, False),
    ({"tags": {"$in": ["sso", "billing"]}}, True),
    ({"tags": {"$nin": ["billing"]}}, False),
    ({"tags": {"$ne": "faq"}}, False),
    ({"tags": ["faq", "billing"]}, True),     # whole-list equality
    ({"public": True}, True),
    ({"public": 1}, False),                   # True is not 1
    ({"year": True}, False),
    ({"author.name": "Ada"}, True),           # dotted path into nested metadata
    ({"author.name": "Bob"}, False),
    ({"author": {"name": "Ada"}}, True),      # a plain dict value is equality with that dict
    ({"$and": [{"lang": "en"}, {"year": {"$gte": 2020}}]}, True),
    ({"$and": [{"lang": "en"}, {"year": {"$gte": 2023}}]}, False),
    ({"$or": [{"lang": "fr"}, {"year": 2022}]}, True),
    ({"$or": [{"lang": "fr"}, {"year": 2020}]}, False),
    ({"$or": [{"tenant-id": "x"}, {"$and": [{"public": True}, {"lang": "en"}]}]}, True),
    ({"lang": "en", "$or": [{"year": 1999}, {"score": {"$gte": 4}}]}, True),
    ({"lang": {"$eq": None}}, False),
    ({"missing": None}, False),
])
def test_operators(flt, expected):
    assert matches(DOC, flt) is expected


def test_none_value_matches_explicit_none_only():
    assert matches({"a": None}, {"a": None})
    assert not matches({}, {"a": None})


@pytest.mark.parametrize("flt, fragment", [
    ("tenant-id=aa882", "must be a dict"),
    (["tenant-id"], "must be a dict"),
    ({"$foo": 1}, "unknown operator '$foo'"),
    ({"year": {"$regex": "x"}}, "unknown operator '$regex'"),
    ({"$gte": 3}, "unknown operator '$gte' at this level"),
    ({"lang": {"$in": "en"}}, "$in needs a list"),
    ({"lang": {"$nin": 3}}, "$nin needs a list"),
    ({"year": {"$gt": [1, 2]}}, "$gt compares with a number or a string"),
    ({"year": {"$lte": None}}, "$lte compares with a number or a string"),
    ({"year": {"$gt": True}}, "$gt compares"),
    ({"$or": {"a": 1}}, "$or needs a non-empty list"),
    ({"$and": []}, "$and needs a non-empty list"),
    ({"$or": ["a"]}, "each $or item must be a dict"),
    ({"year": {"$gt": 1, "plain": 2}}, "do not mix operators"),
    ({1: "a"}, "keys must be strings"),
    ({"lang": {"$eq": object()}}, "cannot compare metadata with object"),
    ({"lang": {"$in": ["en", {1, 2}]}}, "cannot compare metadata with set"),
])
def test_invalid_filters_name_the_problem(flt, fragment):
    with pytest.raises(InvalidInputError) as info:
        compile_filter(flt)
    assert fragment in str(info.value)


def test_error_names_the_key_path():
    with pytest.raises(InvalidInputError) as info:
        compile_filter({"$or": [{"a": 1}, {"year": {"$in": 2020}}]})
    assert "metadata_filter['$or'][1]['year']['$in']" in str(info.value)


def test_filter_key_is_canonical():
    assert filter_key({"a": 1, "b": 2}) == filter_key({"b": 2, "a": 1})
    assert filter_key(None) == filter_key({})
    assert filter_key({"a": 1}) != filter_key({"a": "1"})


tenants = st.sampled_from(["aa882", "bb873", "cc001", "dd-9"])
metadata_values = st.one_of(st.integers(-5, 5), st.text(alphabet="ab-1", max_size=3), st.booleans(), st.none(),
                            st.lists(st.sampled_from(["aa882", "x"]), max_size=2))
documents = st.lists(st.fixed_dictionaries(
    {"tenant-id": tenants}, optional={"user-id": st.text(alphabet="ab-1", max_size=3), "other": metadata_values}),
    max_size=20)


@settings(max_examples=100, deadline=None)
@given(docs=documents, tenant=tenants, extra=st.one_of(
    st.none(), st.just({"user-id": {"$ne": ""}}), st.just({"$or": [{"other": 1}, {"other": {"$gte": 0}}]})))
def test_property_tenant_filter_never_admits_another_tenant(docs, tenant, extra):
    flt = {"tenant-id": tenant, **(extra or {})}
    predicate = compile_filter(flt)
    for doc in docs:
        if predicate(doc):
            assert doc["tenant-id"] == tenant


@settings(max_examples=50, deadline=None)
@given(docs=documents, tenant=tenants)
def test_property_in_is_the_or_of_equalities(docs, tenant):
    other = "bb873" if tenant != "bb873" else "aa882"
    via_in = compile_filter({"tenant-id": {"$in": [tenant, other]}})
    via_or = compile_filter({"$or": [{"tenant-id": tenant}, {"tenant-id": other}]})
    via_nin = compile_filter({"tenant-id": {"$nin": [tenant, other]}})
    for doc in docs:
        assert via_in(doc) == via_or(doc) == (not via_nin(doc))


# -- the whole-collection evaluator agrees with the per-document predicate ----------------------

scalars = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 1.0, -2.5]), st.sampled_from(["a", "b", "ab", ""]),
                    st.booleans(), st.none())
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.lists(st.lists(scalars, max_size=2), max_size=2),
                   st.dictionaries(st.sampled_from(["x", "y"]), scalars, max_size=2))
keys = st.sampled_from(["a", "b", "n.x"])
metadatas = st.lists(st.dictionaries(st.sampled_from(["a", "b", "n"]), values, max_size=3), max_size=15)
comparable = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -2.5]), st.sampled_from(["a", "b", "ab"]))
conditions = st.one_of(
    values,
    st.fixed_dictionaries({"$eq": values}), st.fixed_dictionaries({"$ne": values}),
    st.fixed_dictionaries({"$in": st.lists(values, max_size=3)}),
    st.fixed_dictionaries({"$nin": st.lists(values, max_size=3)}),
    st.dictionaries(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), comparable, min_size=1, max_size=2),
)
filters = st.recursive(
    st.dictionaries(keys, conditions, max_size=2),
    lambda inner: st.one_of(st.fixed_dictionaries({"$and": st.lists(inner, min_size=1, max_size=3)}),
                            st.fixed_dictionaries({"$or": st.lists(inner, min_size=1, max_size=3)})),
    max_leaves=5)


@settings(max_examples=300, deadline=None)
@given(docs=metadatas, flt=filters)
def test_property_mask_equals_predicate(docs, flt):
    from promptlab.contexts.filters import MetadataTable, compile_mask

    try:
        predicate = compile_filter(flt)
    except InvalidInputError:
        return  # e.g. a dict value mixing operators and keys; both paths refuse it the same way
    table = MetadataTable(docs)
    assert compile_mask(flt)(table).tolist() == [predicate(d) for d in docs]
