"""The strategy engine in-process: which target, in what order, how often, and why."""

from __future__ import annotations

from collections import Counter

import pytest

from lockgate.errors import BadRequest, TargetUnavailable, UpstreamError, UpstreamTimeout, UpstreamUnreachable
from tests.unit.routing.engine_kit import Kit, leaf

BREAKER = {"failure_threshold": 3, "cooldown_ms": 5000}


async def test_loadbalance_weights_hold_over_2000_requests() -> None:
    kit = Kit()
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [leaf("a", weight=0.7), leaf("b", weight=0.2), leaf("c", weight=0.1), leaf("d", weight=0)],
    }
    picked = Counter()
    for _ in range(2000):
        success, _call = await kit.run(config)
        picked[success.target.credential.name] += 1
    assert picked["d"] == 0
    for name, weight in (("a", 0.7), ("b", 0.2), ("c", 0.1)):
        assert picked[name] / 2000 == pytest.approx(weight, abs=0.035), picked


async def test_breaker_takes_a_failing_target_out_and_back_in() -> None:
    kit = Kit()
    config = {
        "strategy": {"mode": "loadbalance"},
        "circuit_breaker": BREAKER,
        "targets": [leaf("a"), leaf("b")],
    }
    kit.upstreams.set("a", 503)
    for _ in range(40):  # every request still succeeds: a failed draw moves on to b
        success, _call = await kit.run(config)
        assert success.target.credential.name == "b"
    assert kit.upstreams.calls["a"] == 3  # opened after 3 consecutive failures, then skipped
    kit.upstreams.set("a", 200)
    kit.clock.now += 4.9
    for _ in range(20):
        await kit.run(config)
    assert kit.upstreams.calls["a"] == 3  # still cooling down
    kit.clock.now += 0.2
    picked = Counter()
    for _ in range(200):
        success, _call = await kit.run(config)
        picked[success.target.credential.name] += 1
    assert kit.upstreams.calls["a"] == 3 + picked["a"] and 60 < picked["a"] < 140  # back in rotation


async def test_half_open_lets_exactly_one_probe_through() -> None:
    kit = Kit()
    breaker = _breaker(failure_threshold=1, cooldown_ms=1000)
    kit.health.failure("t", breaker)
    assert not kit.health.admit("t", breaker)
    kit.clock.now += 1.0
    assert kit.health.available("t", breaker)
    assert kit.health.admit("t", breaker)  # the probe
    assert not kit.health.admit("t", breaker) and not kit.health.available("t", breaker)
    kit.health.failure("t", breaker)  # the probe failed: open for another cooldown
    kit.clock.now += 0.5
    assert not kit.health.admit("t", breaker)
    kit.clock.now += 0.5
    assert kit.health.admit("t", breaker)
    kit.health.release("t")  # the probe was cancelled: another may go
    assert kit.health.admit("t", breaker)
    kit.health.success("t", 12.0, breaker)
    assert kit.health.admit("t", breaker) and kit.health.admit("t", breaker)  # closed


async def test_failure_ratio_opens_the_circuit() -> None:
    kit = Kit()
    breaker = _breaker(failure_threshold=100, failure_ratio=0.5, minimum_requests=10)
    for i in range(9):
        (kit.health.failure if i % 2 else kit.health.success)("t", *(() if i % 2 else (5.0,)), breaker)
    assert kit.health.admit("t", breaker)  # 9 requests: under the minimum
    kit.health.failure("t", breaker)  # 5 of 10 failed
    assert not kit.health.admit("t", breaker)


async def test_retries_then_success_and_the_backoff_is_jittered_and_growing() -> None:
    kit = Kit()
    kit.upstreams.set("a", lambda n: 503 if n <= 3 else 200)
    success, call = await kit.run({**leaf("a"), "retry": {"attempts": 3}})
    assert success.target.credential.name == "a"
    assert [a.status for a in call.record.attempt_log] == [503, 503, 503, 200]
    assert call.record.retries == 3 and call.record.fallbacks == 0
    caps = [0.2, 0.4, 0.8]
    assert all(0 <= s <= cap for s, cap in zip(kit.sleeps, caps, strict=True))
    assert call.record.attempt_log[1].backoff_ms == pytest.approx(kit.sleeps[0] * 1000, abs=0.01)


async def test_retry_after_is_honoured_within_a_cap() -> None:
    kit = Kit()
    kit.upstreams.set("a", lambda n: (429, {"retry-after": "1.5"}) if n == 1 else 200)
    _success, call = await kit.run({**leaf("a"), "retry": {"attempts": 2}})
    assert kit.sleeps == [1.5] and call.record.attempt_log[1].backoff_ms == 1500.0
    # OpenAI's retry-after-ms wins over Retry-After.
    kit.upstreams.set("b", lambda n: (429, {"retry-after-ms": "250", "retry-after": "1"}) if n == 1 else 200)
    await kit.run({**leaf("b"), "retry": {"attempts": 2}})
    assert kit.sleeps[-1] == 0.25
    # Longer than the cap: not waited for; the fallback answers instead.
    kit.upstreams.set("c", (429, {"retry-after": "120"}))
    config = {"strategy": {"mode": "fallback"}, "retry": {"attempts": 2}, "targets": [leaf("c"), leaf("d")]}
    success, call = await kit.run(config)
    assert (
        success.target.credential.name == "d" and call.record.retries == 0 and kit.upstreams.calls["c"] == 1
    )


async def test_retry_budget_caps_retries_during_an_outage() -> None:
    kit = Kit()
    kit.advance_on_sleep = False  # 1,000 requests inside one budget window
    kit.upstreams.set("a", 503)
    for _ in range(1000):
        with pytest.raises(UpstreamError) as err:
            await kit.run({**leaf("a"), "retry": {"attempts": 3}})
        assert err.value.status == 502
    calls = kit.upstreams.calls["a"]
    # Without a budget: 4,000 calls. With it: 1,000 first attempts + at most 20% + the floor of 10.
    assert 1000 + 150 <= calls <= 1000 + 200 + 10


async def test_fallback_moves_on_by_status_and_error_kind() -> None:
    kit = Kit()
    kit.upstreams.set("a", 400)
    # Portkey's default: any error moves on.
    success, call = await kit.run({"strategy": {"mode": "fallback"}, "targets": [leaf("a"), leaf("b")]})
    assert success.target.credential.name == "b" and call.record.fallbacks == 1
    # With on_status_codes, a 400 is the caller's error: returned as is.
    only_5xx = {"strategy": {"mode": "fallback", "on_status_codes": [503]}, "targets": [leaf("a"), leaf("b")]}
    with pytest.raises(UpstreamError) as err:
        await kit.run(only_5xx)
    assert err.value.status == 400 and kit.upstreams.calls["b"] == 1
    # Connection errors and timeouts always move on.
    kit.upstreams.set("a", UpstreamUnreachable("refused", provider="a"))
    assert (await kit.run(only_5xx))[0].target.credential.name == "b"


async def test_all_timeouts_is_504_and_mixed_is_the_last_error() -> None:
    kit = Kit()
    kit.upstreams.set("a", UpstreamTimeout("slow a", provider="a"))
    kit.upstreams.set("b", UpstreamTimeout("slow b", provider="b"))
    config = {"strategy": {"mode": "fallback"}, "targets": [leaf("a"), leaf("b")]}
    with pytest.raises(UpstreamTimeout) as err:
        await kit.run(config)
    assert err.value.status == 504
    kit.upstreams.set("b", 503)
    with pytest.raises(UpstreamError) as err:
        await kit.run(config)
    assert err.value.status == 502 and err.value.upstream_status == 503


async def test_deadline_bounds_retries_and_attempts() -> None:
    kit = Kit()
    kit.upstreams.set("a", 503)
    call = kit.call()
    call.deadline = kit.clock() + 0.3
    with pytest.raises(UpstreamError) as err:
        await kit.run({**leaf("a"), "retry": {"attempts": 10}}, call)
    assert err.value.upstream_status == 503
    # No backoff is allowed to run past the deadline, so fewer than 10 retries fit.
    assert sum(kit.sleeps) < 0.3 and kit.upstreams.calls["a"] == 1 + len(kit.sleeps) < 11
    late = kit.call()
    late.deadline = kit.clock() - 1
    with pytest.raises(UpstreamTimeout) as err:
        await kit.run(leaf("b"), late)
    assert err.value.code == "deadline_exceeded" and err.value.status == 504
    assert kit.upstreams.calls["b"] == 0


async def test_conditional_routes_on_metadata_params_and_path() -> None:
    kit = Kit()
    config = {
        "strategy": {
            "mode": "conditional",
            "conditions": [
                {"query": {"metadata.tier": {"$eq": "pro"}}, "then": "fast"},
                {
                    "query": {"$or": [{"params.max_tokens": {"$gte": 1000}}, {"metadata.env": "batch"}]},
                    "then": "big",
                },
                {"query": {"url.pathname": {"$regex": "^/v1/embeddings"}}, "then": "big"},
            ],
            "default": "cheap",
        },
        "targets": [leaf("a", name="fast"), leaf("b", name="big"), leaf("c", name="cheap")],
    }

    async def route(metadata: dict[str, str] | None = None, **params: object) -> str:
        call = kit.call(metadata, {"model": "x", **params})
        return (await kit.run(config, call))[0].target.credential.name

    assert await route({"tier": "pro"}) == "a"
    assert await route({"tier": "free"}, max_tokens=4000) == "b"
    assert await route({"env": "batch"}) == "b"
    assert await route({"tier": "free"}, max_tokens=10) == "c"
    no_default = {**config, "strategy": {**config["strategy"], "default": None}}
    with pytest.raises(BadRequest) as err:
        await kit.run(no_default, kit.call({"tier": "free"}))
    assert err.value.code == "no_condition_matched" and err.value.param == "x-lockgate-config"


async def test_nested_plans_inherit_and_override_retry() -> None:
    kit = Kit()
    kit.upstreams.set("a", 503)
    kit.upstreams.set("b", lambda n: 503 if n == 1 else 200)
    config = {
        "strategy": {"mode": "fallback"},
        "retry": {"attempts": 2},
        "targets": [
            {"strategy": {"mode": "single"}, "retry": {"attempts": 0}, "targets": [leaf("a")]},
            {"strategy": {"mode": "loadbalance"}, "targets": [leaf("b")]},
        ],
    }
    success, call = await kit.run(config)
    assert success.target.credential.name == "b"
    assert kit.upstreams.calls["a"] == 1  # its branch said no retries
    assert [a.target for a in call.record.attempt_log] == [
        "@a/gpt-4o-mini",
        "@b/gpt-4o-mini",
        "@b/gpt-4o-mini",
    ]
    assert call.record.retries == 1 and call.record.fallbacks == 1


async def test_every_circuit_open_is_a_clean_503() -> None:
    kit = Kit()
    kit.upstreams.set("a", 503)
    config = {"circuit_breaker": {"failure_threshold": 1}, **leaf("a")}
    with pytest.raises(UpstreamError):
        await kit.run(config)
    with pytest.raises(TargetUnavailable) as err:
        await kit.run(config)
    assert err.value.status == 503 and err.value.code == "circuit_open"
    assert kit.upstreams.calls["a"] == 1


async def test_loadbalance_prefers_fast_healthy_targets() -> None:
    kit = Kit()
    config = {"strategy": {"mode": "loadbalance"}, "targets": [leaf("a"), leaf("b")]}
    plan_call = kit.call()
    keys = {
        name: kit.table.plan("gpt-4o-mini", _json(config)).root.children[i].target(plan_call.client_model).key
        for i, name in enumerate("ab")
    }
    kit.health.success(keys["a"], 20.0, None)
    kit.health.success(keys["b"], 2000.0, None)  # a hundred times slower
    picked = Counter()
    kit.upstreams.set("b", 200)
    for _ in range(1000):
        success, _call = await kit.run(config)
        picked[success.target.credential.name] += 1
        kit.health.get(keys["b"]).latency_ms = 2000.0  # keep b slow for the test
    assert picked["b"] < 200 and picked["a"] > 800  # equal weights, yet b gets a trickle only
    assert picked["b"] > 0  # never starved: it keeps probing


def _breaker(**fields: object):
    from lockgate.gateway.route_config import CircuitBreakerConfig

    return CircuitBreakerConfig(**fields)


def _json(config: dict) -> str:
    import orjson

    return orjson.dumps(config).decode()
