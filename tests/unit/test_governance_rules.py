"""Periods, the admission estimate and the per-key rule index: pure functions, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.catalog import Catalog, count_chat_prompt
from lockgate.governance.estimate import prompt_upper_bound, token_estimate, worst_cost
from lockgate.governance.periods import all_fields, field_name, first_day, period_end
from lockgate.governance.rules import build_governance
from lockgate.governance.specs import parse_scope


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_periods_are_calendar_aligned_in_utc() -> None:
    at = ts("2025-06-04T23:59:59")  # a Wednesday
    assert all_fields(at) == ("a", "d:20250604", "w:20250602", "m:202506")
    assert field_name("day", ts("2025-06-05T00:00:00")) == "d:20250605"
    assert period_end("week", at) == ts("2025-06-09T00:00:00")
    assert period_end("month", ts("2025-12-31T12:00:00")) == ts("2026-01-01T00:00:00")
    assert period_end("none", at) is None
    assert first_day("month", at) == (datetime(2025, 6, 1) - datetime(1970, 1, 1)).days


@given(st.lists(st.text(min_size=0, max_size=200), min_size=1, max_size=6))
def test_body_bytes_bound_the_prompt_tokens(texts: list[str]) -> None:
    messages = [{"role": "user", "content": t} for t in texts]
    raw = orjson.dumps({"model": "gpt-4o-mini", "messages": messages})
    assert count_chat_prompt(messages, "gpt-4o-mini") <= prompt_upper_bound(raw)


def test_media_parts_add_an_allowance() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}
    raw = orjson.dumps({"messages": [{"role": "user", "content": [part]}]})
    assert prompt_upper_bound(raw) >= 2000 + len(raw)


def test_worst_cost_takes_the_dearest_target_and_counts_choices() -> None:
    catalog = Catalog.default()
    body: dict[str, Any] = {"model": "m", "messages": [], "max_tokens": 100}
    raw = orjson.dumps(body)
    mini = worst_cost(catalog, [("gpt-4o-mini", "openai")], raw, body)
    both = worst_cost(catalog, [("gpt-4o-mini", "openai"), ("o1", "openai")], raw, body)
    assert mini == pytest.approx((len(raw) * 0.15 + 100 * 0.60) / 1e6)
    assert both == pytest.approx((len(raw) * 15 + 100 * 60) / 1e6)
    three = worst_cost(catalog, [("gpt-4o-mini", "openai")], raw, {**body, "n": 3})
    assert three == pytest.approx((len(raw) * 0.15 + 300 * 0.60) / 1e6)
    assert worst_cost(catalog, [("no-such-model", "openai")], raw, body) == 0.0  # unpriced
    assert token_estimate(raw, body) == len(raw) + 100


def _row(**values: Any) -> dict[str, Any]:
    base = {"id": values["name"], "scope_value": None, "workspace_id": None}
    return {**base, **values}


def test_rules_are_folded_per_key_with_their_scopes() -> None:
    budgets = [
        _row(
            name="b-org",
            scope_type="org",
            scope_id=None,
            amount_usd=100,
            period="month",
            mode="hard",
            auto_revoke=False,
            alert_thresholds=[50],
            alert_webhook=None,
        ),
        _row(
            name="b-user",
            scope_type="metadata",
            scope_id="user",
            amount_usd=1,
            period="day",
            mode="soft",
            auto_revoke=False,
            alert_thresholds=[],
            alert_webhook=None,
        ),
    ]
    no_limits = dict.fromkeys(
        (
            "requests_per_minute",
            "requests_per_hour",
            "requests_per_day",
            "tokens_per_minute",
            "tokens_per_day",
            "concurrent",
        )
    )
    limits = [_row(name="l-key", scope_type="key", scope_id="k1", **{**no_limits, "requests_per_minute": 10})]
    policies = [
        _row(
            name="p-ws",
            scope_type="workspace",
            scope_id="w1",
            allowed_models=None,
            denied_models=["x"],
            max_tokens=None,
            max_n=None,
            temperature_min=None,
            temperature_max=None,
            required_metadata=None,
        )
    ]
    gov = build_governance(
        "o",
        [{"id": "w1"}, {"id": "w2"}],
        [{"id": "k1", "workspace_id": "w1"}, {"id": "k2", "workspace_id": "w2"}],
        budgets,
        limits,
        policies,
        workers=2,
    )
    k1 = gov.rules("k1", "w1")
    assert [(b.name, s) for b, s in k1.budgets] == [("b-org", "org:o")]
    assert k1.budgets[0][0].amount == 50  # approximate mode: half per worker
    assert [(r.name, s, r.windows[0].limit) for r, s in k1.limits] == [("l-key", "key:k1", 5)]
    assert [p.name for p in k1.policies] == ["p-ws"]
    k2 = gov.rules("k2", "w2")
    assert not k2.limits and not k2.policies and len(k2.budgets) == 1
    meta = gov.for_metadata({"user": "alice", "team": "t"})
    assert [(b.name, s) for b, s in meta.budgets] == [("b-user", "meta:user=alice")]
    assert gov.metadata_keys == frozenset({"user"})


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("org", ("org", None, None)),
        ("workspace:team-a", ("workspace", "team-a", None)),
        ("key:team-a/ci", ("key", "team-a/ci", None)),
        ("metadata:user", ("metadata", "user", None)),
        ("metadata:user=alice", ("metadata", "user", "alice")),
    ],
)
def test_scopes_parse(text: str, parsed: tuple[str, str | None, str | None]) -> None:
    assert parse_scope(text) == parsed


@pytest.mark.parametrize("text", ["", "org:x", "team:a", "workspace:", "metadata:=x", "metadata:user="])
def test_bad_scopes_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected|takes no value"):
        parse_scope(text)
