from __future__ import annotations

import math
from pathlib import Path

import pytest

from lockgate.catalog import (
    Catalog,
    CatalogError,
    ModelInfo,
    cost,
    load_models,
    max_cost,
    models_for_listing,
    parse_models,
)
from lockgate.catalog.catalog import DEFAULT_PATH

REQUIRED = {
    "openai": [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o3",
        "o4-mini",
        "o3-mini",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "gpt-3.5-turbo-instruct",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "text-embedding-ada-002",
    ],
    "anthropic": [
        "claude-opus-4-1",
        "claude-opus-4",
        "claude-sonnet-4-5",
        "claude-sonnet-4",
        "claude-3-7-sonnet",
        "claude-haiku-4-5",
        "claude-3-5-haiku",
    ],
    "gemini": [
        "gemini-3-pro-preview",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "gemini-2.0-flash",
        "text-embedding-004",
        "gemini-embedding-001",
    ],
    "mistral": [
        "mistral-large-latest",
        "mistral-medium-latest",
        "mistral-small-latest",
        "codestral-latest",
        "mistral-embed",
    ],
    "groq": ["llama-3.3-70b-versatile", "llama-3.1-8b-instant"],
    "together": ["meta-llama/Llama-3.3-70B-Instruct-Turbo", "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"],
    "deepseek": ["deepseek-chat", "deepseek-reasoner"],
    "xai": ["grok-3", "grok-3-mini", "grok-4"],
    "bedrock": [
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "amazon.nova-pro-v1:0",
        "amazon.nova-lite-v1:0",
        "meta.llama3-3-70b-instruct-v1:0",
        "amazon.titan-embed-text-v2:0",
        "cohere.embed-english-v3",
    ],
    "cohere": ["command-a-03-2025", "command-r-08-2024", "embed-v4.0", "embed-english-v3.0"],
    "perplexity": ["sonar", "sonar-pro", "sonar-reasoning-pro"],
    "cerebras": ["llama-3.3-70b", "gpt-oss-120b"],
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.default()


def entry(**fields: object) -> dict:
    base: dict = {"price": {"input": 1.0, "output": 2.0}, "context_window": 1000}
    base.update(fields)
    return base


def small_catalog(**models: dict) -> Catalog:
    return Catalog(parse_models({"acme": models}))


# --- loading and validation -------------------------------------------------------


def test_data_file_has_a_dated_price_comment() -> None:
    assert DEFAULT_PATH.read_text().startswith("# prices as of ")


@pytest.mark.parametrize(("provider", "model"), [(p, m) for p, ms in REQUIRED.items() for m in ms])
def test_required_models_are_present(catalog: Catalog, provider: str, model: str) -> None:
    info = catalog.lookup(model, provider)
    assert info is not None
    assert (info.provider, info.id) == (provider, model)


def test_every_entry_is_sane(catalog: Catalog) -> None:
    for info in catalog.models_for_listing():
        p = info.price
        assert p.input >= 0
        if info.mode == "embedding":
            assert info.dimensions and "embeddings" in info.capabilities
        else:
            assert p.output > 0, info.id
            assert "streaming" in info.capabilities, info.id
        if p.cached_input is not None:
            assert p.cached_input <= p.input, info.id
        if info.provider == "anthropic":
            assert p.cache_write == pytest.approx(p.input * 1.25), info.id
            assert p.cached_input == pytest.approx(p.input * 0.1), info.id
        if info.long_context is not None:
            assert info.long_context.input > p.input, info.id


def test_default_is_cached(catalog: Catalog) -> None:
    assert Catalog.default() is catalog
    assert models_for_listing() == catalog.models_for_listing()
    assert len(catalog) == len(load_models())


def test_listing_has_canonical_ids_only(catalog: Catalog) -> None:
    ids = [m.id for m in catalog.models_for_listing()]
    assert "gpt-4o" in ids
    assert "gpt-4o-2024-08-06" not in ids
    assert len({(m.provider, m.id) for m in catalog.models_for_listing()}) == len(ids)


def test_model_info_is_frozen_and_hashable(catalog: Catalog) -> None:
    info = catalog.lookup("gpt-4o")
    assert info is not None
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type is an implementation detail
        info.context_window = 1  # type: ignore[misc]
    assert hash(info) == hash(info)
    assert info.supports("vision") and not info.supports("embeddings")


def test_every_schema_field_is_described() -> None:
    schema = ModelInfo.model_json_schema()
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name
    for model in ("Price", "LongContextPrice"):
        for name, prop in schema["$defs"][model]["properties"].items():
            assert prop.get("description"), f"{model}.{name}"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"price": {"input": -1, "output": 1}}, "input"),
        ({"price": {"input": 1}}, "output"),
        ({"capabilities": ["tools", "telepathy"]}, "capabilities"),
        ({"mode": "embedding"}, "dimensions"),
        ({"dimensions": 8}, "dimensions"),
        ({"max_output_tokens": 5000}, "max_output_tokens"),
        ({"context_window": 0}, "context_window"),
        ({"surprise": True}, "surprise"),
        ({"id": "other"}, "layout"),
    ],
)
def test_bad_entry_fails_loudly_naming_the_model(fields: dict, message: str) -> None:
    with pytest.raises(CatalogError, match=message) as exc:
        parse_models({"acme": {"bad-model": entry(**fields)}})
    assert "acme/bad-model" in str(exc.value)


@pytest.mark.parametrize("data", [None, [], {"acme": ["x"]}, {"acme": {"m": "not a mapping"}}])
def test_bad_layout_fails(data: object) -> None:
    with pytest.raises(CatalogError):
        parse_models(data)


def test_bad_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("acme:\n  m: {price: {input: 1}, context_window: 10}\n")
    with pytest.raises(CatalogError, match=r"models\.yaml.*acme/m"):
        load_models(path)
    path.write_text("acme: [unclosed\n")
    with pytest.raises(CatalogError, match="YAML"):
        load_models(path)


def test_duplicate_alias_within_a_provider_fails() -> None:
    with pytest.raises(CatalogError, match="already belongs"):
        small_catalog(a=entry(aliases=["shared"]), b=entry(aliases=["shared"]))


def test_same_id_at_two_providers_is_allowed() -> None:
    cat = Catalog(
        parse_models({"first": {"m": entry()}, "second": {"m": entry(price={"input": 9, "output": 9})}})
    )
    assert cat.lookup("m").provider == "first"  # first declared wins without a provider
    assert cat.lookup("m", "second").provider == "second"


def test_extended_adds_and_replaces(catalog: Catalog) -> None:
    extra = parse_models(
        {"openai": {"gpt-4o": entry(price={"input": 0.0, "output": 0.0})}, "acme": {"new-model": entry()}}
    )
    merged = catalog.extended(extra)
    assert merged.lookup("gpt-4o").price.input == 0.0
    # The replacement has no aliases, but the date-suffix fallback still finds it.
    assert merged.lookup("gpt-4o-2024-08-06").price.input == 0.0
    assert merged.lookup("new-model") is not None
    assert catalog.lookup("gpt-4o").price.input == 2.5  # the original is untouched


# --- lookup ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "provider", "expected"),
    [
        ("gpt-4o", None, ("openai", "gpt-4o")),
        ("gpt-4o-2024-08-06", None, ("openai", "gpt-4o")),  # alias
        ("claude-sonnet-4-5-20250929", None, ("anthropic", "claude-sonnet-4-5")),  # alias
        ("openai/gpt-4o", None, ("openai", "gpt-4o")),  # provider prefix
        ("anthropic/claude-haiku-4-5", None, ("anthropic", "claude-haiku-4-5")),
        ("google/gemini-2.5-pro", None, ("gemini", "gemini-2.5-pro")),  # prefix alias
        ("vertex_ai/gemini-2.5-pro", None, ("gemini", "gemini-2.5-pro")),
        ("models/gemini-2.5-flash", None, ("gemini", "gemini-2.5-flash")),  # Gemini resource name
        (
            "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
            None,
            ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        ),
        (
            "meta-llama/llama-3.3-70b-instruct-turbo",
            None,
            ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        ),
        ("@openai-prod/gpt-4o-mini", None, ("openai", "gpt-4o-mini")),  # named credential
        ("gpt-4o-2025-12-01", None, ("openai", "gpt-4o")),  # unknown snapshot: date stripped
        ("claude-opus-4-1-20261231", None, ("anthropic", "claude-opus-4-1")),
        ("openai/gpt-4.1-mini-2026-01-15", None, ("openai", "gpt-4.1-mini")),  # prefix + date
        ("claude-sonnet-4-5@20250929", None, ("anthropic", "claude-sonnet-4-5")),  # Vertex style
        ("GPT-4o", None, ("openai", "gpt-4o")),  # case folding
        (" gpt-4o ", None, ("openai", "gpt-4o")),
        ("gpt-4o-2024-05-13", None, ("openai", "gpt-4o-2024-05-13")),  # own entry beats the fallback
        ("gpt-4o", "azure", ("openai", "gpt-4o")),  # provider is a preference, not a filter
        ("gemini-2.5-pro", "gemini", ("gemini", "gemini-2.5-pro")),
        ("gemini-2.5-pro", "vertex", ("gemini", "gemini-2.5-pro")),  # Vertex serves Gemini's models
        (
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",  # Bedrock cross-region profile
            "bedrock",
            ("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ),
        ("global.amazon.nova-lite-v1:0", None, ("bedrock", "amazon.nova-lite-v1:0")),
        ("command-a", "cohere", ("cohere", "command-a-03-2025")),
        ("deepseek-chat", "deepseek", ("deepseek", "deepseek-chat")),
    ],
)
def test_lookup_resolves(catalog: Catalog, query: str, provider: str | None, expected: tuple) -> None:
    info = catalog.lookup(query, provider)
    assert info is not None
    assert (info.provider, info.id) == expected
    assert catalog.lookup(query, provider) is info  # memoised answers agree


@pytest.mark.parametrize(
    "query",
    ["", "nope", "gpt-4o-foo", "acme/gpt-4o-x", "unknown/gpt-4o-mini-x", "gpt-4o-0806", "gpt-4o-2024-08"],
)
def test_lookup_unknown_is_none(catalog: Catalog, query: str) -> None:
    assert catalog.lookup(query) is None
    assert catalog.lookup(query) is None


def test_unknown_provider_prefix_is_not_stripped(catalog: Catalog) -> None:
    # Only known providers (or @credentials) are prefixes: "acme/gpt-4o" is not gpt-4o.
    assert catalog.lookup("acme/gpt-4o") is None


def test_lookup_memo_is_bounded() -> None:
    from lockgate.catalog import catalog as module

    cat = small_catalog(m=entry())
    for i in range(module._MEMO_SIZE + 50):
        assert cat.lookup(f"missing-{i}") is None
    assert len(cat._memo) == module._MEMO_SIZE
    assert cat.lookup("m-2024-01-01") is not None


# --- cost -----------------------------------------------------------------------


def usage(prompt: object = None, completion: object = None, **extra: object) -> dict:
    out: dict = dict(extra)
    if prompt is not None:
        out["prompt_tokens"] = prompt
    if completion is not None:
        out["completion_tokens"] = completion
    return out


def test_cost_plain(catalog: Catalog) -> None:
    info = catalog.lookup("gpt-4o")
    # 1M in at $2.50 + 1M out at $10.
    assert cost(info, usage(1_000_000, 1_000_000)) == pytest.approx(12.5)
    assert cost(info, usage(1000, 500)) == pytest.approx((1000 * 2.5 + 500 * 10) / 1e6)


def test_cost_cached_input(catalog: Catalog) -> None:
    info = catalog.lookup("gpt-4o")
    u = usage(1000, 0, prompt_tokens_details={"cached_tokens": 400})
    assert cost(info, u) == pytest.approx((600 * 2.5 + 400 * 1.25) / 1e6)


def test_cost_cache_creation(catalog: Catalog) -> None:
    info = catalog.lookup("claude-sonnet-4-5")
    # prompt_tokens includes both the cache read and the cache write.
    u = usage(10_000, 100, prompt_tokens_details={"cached_tokens": 2000, "cache_creation_tokens": 5000})
    expected = (3000 * 3.0 + 2000 * 0.30 + 5000 * 3.75 + 100 * 15.0) / 1e6
    assert cost(info, u) == pytest.approx(expected)


def test_cost_without_cache_prices_bills_cached_tokens_as_input() -> None:
    info = small_catalog(m=entry()).lookup("m")
    u = usage(100, 0, prompt_tokens_details={"cached_tokens": 40, "cache_creation_tokens": 10})
    assert cost(info, u) == pytest.approx(100 * 1.0 / 1e6)


def test_cost_reasoning_billed_as_output_by_default(catalog: Catalog) -> None:
    info = catalog.lookup("o3")
    u = usage(100, 1000, completion_tokens_details={"reasoning_tokens": 800})
    assert cost(info, u) == pytest.approx((100 * 2.0 + 1000 * 8.0) / 1e6)


def test_cost_reasoning_with_its_own_price() -> None:
    info = small_catalog(m=entry(price={"input": 1.0, "output": 2.0, "reasoning": 5.0})).lookup("m")
    u = usage(100, 1000, completion_tokens_details={"reasoning_tokens": 800})
    assert cost(info, u) == pytest.approx((100 * 1.0 + 800 * 5.0 + 200 * 2.0) / 1e6)
    # reasoning_tokens larger than completion_tokens: never negative visible output.
    u = usage(0, 10, completion_tokens_details={"reasoning_tokens": 50})
    assert cost(info, u) == pytest.approx(50 * 5.0 / 1e6)


def test_cost_embeddings(catalog: Catalog) -> None:
    info = catalog.lookup("text-embedding-3-small")
    assert cost(info, {"prompt_tokens": 1_000_000, "total_tokens": 1_000_000}) == pytest.approx(0.02)
    assert cost(info, {"total_tokens": 500_000}) == pytest.approx(0.01)


def test_cost_long_context_tier(catalog: Catalog) -> None:
    info = catalog.lookup("gemini-2.5-pro")
    assert cost(info, usage(200_000, 1000)) == pytest.approx((200_000 * 1.25 + 1000 * 10) / 1e6)
    assert cost(info, usage(200_001, 1000)) == pytest.approx((200_001 * 2.5 + 1000 * 15) / 1e6)


def test_cost_unknown_model_is_none() -> None:
    assert cost(None, usage(10, 10)) is None


@pytest.mark.parametrize(
    "u",
    [
        None,
        {},
        {"prompt_tokens": None, "completion_tokens": None},
        {"prompt_tokens": "12", "completion_tokens": True},
        {"prompt_tokens": -5, "completion_tokens": float("nan")},
        {"prompt_tokens": float("inf")},
        {"prompt_tokens_details": None, "completion_tokens_details": "x"},
        {"prompt_tokens_details": {"cached_tokens": None}},
        [],
    ],
)
def test_cost_tolerates_odd_usage(catalog: Catalog, u: object) -> None:
    assert cost(catalog.lookup("gpt-4o"), u) == 0.0  # type: ignore[arg-type]


def test_cost_never_negative(catalog: Catalog) -> None:
    info = catalog.lookup("claude-sonnet-4-5")
    u = usage(10, 0, prompt_tokens_details={"cached_tokens": 500, "cache_creation_tokens": 500})
    value = cost(info, u)
    assert value is not None and value >= 0
    assert cost(info, usage(12.7, 3.2)) == pytest.approx((12 * 3.0 + 3 * 15.0) / 1e6)


# --- max_cost -------------------------------------------------------------------


def test_max_cost_uses_requested_max_tokens(catalog: Catalog) -> None:
    info = catalog.lookup("gpt-4o-mini")
    assert max_cost(info, 1000, 500) == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)


def test_max_cost_defaults_to_model_max_output(catalog: Catalog) -> None:
    info = catalog.lookup("gpt-4o-mini")
    assert max_cost(info, 1000, None) == pytest.approx((1000 * 0.15 + 16384 * 0.60) / 1e6)


def test_max_cost_caps_at_model_max_output(catalog: Catalog) -> None:
    info = catalog.lookup("gpt-4o-mini")
    assert max_cost(info, 0, 10_000_000) == pytest.approx(16384 * 0.60 / 1e6)


def test_max_cost_without_published_max_output_uses_context_room(catalog: Catalog) -> None:
    info = catalog.lookup("mistral-large-latest")
    assert info is not None and info.max_output_tokens is None
    assert max_cost(info, 1000, None) == pytest.approx((1000 * 2.0 + (131072 - 1000) * 6.0) / 1e6)


def test_max_cost_long_context_and_reasoning_price() -> None:
    fields = entry(
        price={"input": 1.0, "output": 2.0, "reasoning": 4.0},
        long_context={"threshold": 100, "input": 10.0, "output": 20.0},
        max_output_tokens=50,
    )
    info = small_catalog(m=fields).lookup("m")
    assert max_cost(info, 10, 50) == pytest.approx((10 * 1.0 + 50 * 4.0) / 1e6)
    assert max_cost(info, 200, 50) == pytest.approx((200 * 10.0 + 50 * 20.0) / 1e6)


def test_max_cost_unknown_and_odd_inputs(catalog: Catalog) -> None:
    assert max_cost(None, 10, 10) is None
    info = catalog.lookup("gpt-4o")
    assert max_cost(info, -10, 0) == 0.0
    value = max_cost(info, None, None)  # type: ignore[arg-type]
    assert value is not None and math.isfinite(value) and value > 0
    assert max_cost(catalog.lookup("text-embedding-3-small"), 1000, None) == pytest.approx(1000 * 0.02 / 1e6)
