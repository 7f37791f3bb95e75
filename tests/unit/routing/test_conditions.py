from __future__ import annotations

import pytest

from lockgate.gateway.conditions import ConditionError, MatchContext, compile_query

CTX = MatchContext(
    metadata={"tier": "pro", "level": "7", "region": "eu-west"},
    params={"model": "gpt-4o", "max_tokens": 500, "temperature": 0.2, "messages": [{"role": "user"}]},
    path="/v1/chat/completions",
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"metadata.tier": "pro"}, True),
        ({"metadata.tier": {"$eq": "free"}}, False),
        ({"metadata.tier": {"$ne": "free"}}, True),
        ({"metadata.missing": {"$ne": "x"}}, True),
        ({"metadata.missing": {"$eq": "x"}}, False),
        ({"metadata.level": {"$gt": 5}}, True),  # numeric string vs number: numbers
        ({"metadata.level": {"$lte": 6}}, False),
        ({"metadata.level": 7}, True),
        ({"params.max_tokens": {"$gte": 500, "$lt": 1000}}, True),
        ({"params.max_tokens": {"$gt": "400"}}, True),
        ({"params.temperature": {"$lt": 0.5}}, True),
        ({"params.model": {"$in": ["gpt-4o", "gpt-4.1"]}}, True),
        ({"params.model": {"$nin": ["gpt-4o"]}}, False),
        ({"params.messages.0.role": "user"}, True),
        ({"params.messages.5.role": "user"}, False),
        ({"metadata.region": {"$regex": "^eu-"}}, True),
        ({"params.max_tokens": {"$regex": "5"}}, False),  # regex only matches strings
        ({"url.pathname": {"$regex": "embeddings$"}}, False),
        ({"$or": [{"metadata.tier": "free"}, {"params.model": "gpt-4o"}]}, True),
        ({"$and": [{"metadata.tier": "pro"}, {"params.max_tokens": {"$gt": 1000}}]}, False),
        ({"metadata.tier": "pro", "params.model": "gpt-4o"}, True),
        ({"metadata.tier": {"$gt": "free"}}, True),  # two non-numeric strings: lexicographic
        ({"metadata.tier": True}, False),
    ],
)
def test_operators(query: dict, expected: bool) -> None:
    assert compile_query(query)(CTX) is expected


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ({"metadata.tier": {"$like": "p%"}}, "query.metadata.tier.$like"),
        ({"body.model": "x"}, "query.body.model"),
        ({"$or": "nope"}, "query.$or"),
        ({"$and": [{"metadata.a": {"$regex": "("}}]}, "query.$and.0.metadata.a.$regex"),
        ({"params.n": {"$in": 3}}, "query.params.n.$in"),
        ({"params.n": {"$gt": [1]}}, "query.params.n.$gt"),
        ({"$nor": []}, "query.$nor"),
        ({}, "query"),
    ],
)
def test_bad_queries_name_their_path(query: dict, path: str) -> None:
    with pytest.raises(ConditionError) as err:
        compile_query(query)
    assert err.value.path == path
