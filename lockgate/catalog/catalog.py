"""The model catalog: prices, context windows and capabilities, and the cost function.

The data lives in ``models.yaml`` (provider -> model id -> entry) and is validated
once at load by the pydantic models below; a bad entry raises ``CatalogError``
naming ``provider/model``. ``Catalog.lookup`` runs on every request, so it is a
dict hit for known ids and aliases; only unknown names take the slow path
(case folding, ``provider/`` prefix, dated-snapshot suffix), whose answers,
misses included, are memoised in a bounded dict.

Invariants:
- Prices are USD per million tokens. ``cost`` and ``max_cost`` return USD, never
  negative, and ``None`` only when the model is unknown (unpriced).
- Usage is in OpenAI's canonical form: ``prompt_tokens`` includes cache reads
  (``prompt_tokens_details.cached_tokens``) and cache writes
  (``prompt_tokens_details.cache_creation_tokens``); ``completion_tokens``
  includes ``completion_tokens_details.reasoning_tokens``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_PATH = Path(__file__).with_name("models.yaml")

Mode = Literal["chat", "embedding", "completion"]
Capability = Literal[
    "tools", "vision", "json_mode", "json_schema", "streaming", "reasoning", "embeddings", "prompt_caching"
]

# Prefixes that name a provider differently from its registry id: LiteLLM/OpenRouter
# spellings, Gemini's ``models/`` resource names, and Vertex (which serves Gemini's models).
_PROVIDER_ALIASES = {
    "google": "gemini",
    "vertex": "gemini",
    "vertex_ai": "gemini",
    "models": "gemini",
    "x-ai": "xai",
    "mistralai": "mistral",
}
# Bedrock cross-region inference profiles: ``us.anthropic.claude-...`` is the model's price.
_REGION_PROFILE = re.compile(r"^(?:us|eu|apac|us-gov|global|jp|au|ca)\.(?=[a-z]+\.)")
# Dated snapshots: ``-2024-08-06``, ``-20250929`` and Vertex's ``@20250929``.
_DATE_SUFFIX = re.compile(r"[-@](?:\d{4}-\d{2}-\d{2}|\d{8})$")
# Model names come from clients, so the memo of slow-path answers must stay bounded.
_MEMO_SIZE = 4096
_PER_TOKEN = 1e-6


class CatalogError(ValueError):
    """The catalog data is invalid; raised at load, never on the request path."""


class Price(BaseModel):
    """Prices in USD per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0, description="Uncached prompt tokens.")
    output: float = Field(
        0.0, ge=0, description="Completion tokens. Required for chat and completion models."
    )
    cached_input: float | None = Field(
        None, ge=0, description="Prompt tokens read from the provider's cache. Unset: billed as input."
    )
    cache_write: float | None = Field(
        None, ge=0, description="Prompt tokens written to the cache (Anthropic: 1.25x input). Unset: input."
    )
    reasoning: float | None = Field(
        None, ge=0, description="Reasoning tokens, when billed unlike output. Unset: billed as output."
    )


class LongContextPrice(Price):
    """A higher tier that applies to the whole request once the prompt exceeds ``threshold``."""

    threshold: int = Field(gt=0, description="Prompt tokens above which this tier replaces the base price.")


class ModelInfo(BaseModel):
    """One catalog entry. ``provider`` and ``id`` come from the file's layout."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field(min_length=1, description="Provider registry id, e.g. openai, anthropic, gemini.")
    id: str = Field(min_length=1, description="Canonical model id as the provider's API spells it.")
    aliases: tuple[str, ...] = Field((), description="Other ids for the same model, e.g. dated snapshots.")
    mode: Mode = Field("chat", description="Endpoint family: chat, embedding or completion.")
    price: Price = Field(description="List prices in USD per million tokens.")
    long_context: LongContextPrice | None = Field(
        None, description="Tier for prompts over its threshold (Gemini 2.5 Pro, Claude Sonnet 4/4.5)."
    )
    context_window: int = Field(gt=0, description="Maximum prompt + completion tokens.")
    max_output_tokens: int | None = Field(
        None, gt=0, description="Largest completion the model can produce. Unset: not published."
    )
    capabilities: frozenset[Capability] = Field(
        frozenset(), description="Features the model supports natively."
    )
    dimensions: int | None = Field(None, gt=0, description="Default vector size; embedding models only.")

    @model_validator(mode="after")
    def _consistent(self) -> ModelInfo:
        if self.mode == "embedding":
            if self.dimensions is None:
                raise ValueError("embedding models need `dimensions`")
        else:
            if self.dimensions is not None:
                raise ValueError("`dimensions` is only for embedding models")
            if "output" not in self.price.model_fields_set:
                raise ValueError("chat and completion models need an `output` price")
        if self.max_output_tokens is not None and self.max_output_tokens > self.context_window:
            raise ValueError("`max_output_tokens` exceeds `context_window`")
        return self

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities


def parse_models(data: Any, source: str = "<catalog>") -> list[ModelInfo]:
    """A ``provider -> model id -> entry`` mapping -> validated entries, in file order."""
    if not isinstance(data, Mapping):
        raise CatalogError(f"{source}: expected a mapping of provider -> models")
    models: list[ModelInfo] = []
    for provider, entries in data.items():
        if not isinstance(entries, Mapping):
            raise CatalogError(f"{source}: provider {provider!r}: expected a mapping of model id -> entry")
        for model_id, entry in entries.items():
            name = f"{provider}/{model_id}"
            if not isinstance(entry, Mapping):
                raise CatalogError(f"{source}: model {name}: expected a mapping of fields")
            if "provider" in entry or "id" in entry:
                raise CatalogError(f"{source}: model {name}: `provider` and `id` come from the layout")
            try:
                models.append(ModelInfo.model_validate({**entry, "provider": provider, "id": model_id}))
            except ValidationError as exc:
                raise CatalogError(f"{source}: invalid entry for model {name}: {exc}") from exc
    return models


def load_models(path: str | Path = DEFAULT_PATH) -> list[ModelInfo]:
    text = Path(path).read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from exc
    return parse_models(data, source=str(path))


class Catalog:
    """Indexes over catalog entries for O(1) lookup by id, alias and provider."""

    __slots__ = ("_by_id", "_by_provider", "_memo", "_models")

    def __init__(self, models: Iterable[ModelInfo]) -> None:
        self._models = tuple(models)
        # Each index holds names as spelt and lower-cased. ``_by_id`` keeps the first
        # provider that declares a name, so first-party entries (listed first) win.
        self._by_id: dict[str, ModelInfo] = {}
        self._by_provider: dict[str, dict[str, ModelInfo]] = {}
        self._memo: dict[tuple[str | None, str], ModelInfo | None] = {}
        for info in self._models:
            table = self._by_provider.setdefault(info.provider, {})
            for name in (info.id, *info.aliases):
                for key in {name, name.lower()}:
                    other = table.get(key)
                    if other is not None and other is not info:
                        raise CatalogError(
                            f"model {info.provider}/{info.id}: name {name!r} already belongs to "
                            f"{other.provider}/{other.id}"
                        )
                    table[key] = info
                    self._by_id.setdefault(key, info)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PATH) -> Catalog:
        return cls(load_models(path))

    @classmethod
    def default(cls) -> Catalog:
        """The bundled catalog, loaded once per process."""
        return _default_catalog()

    def extended(self, models: Iterable[ModelInfo]) -> Catalog:
        """A new catalog with ``models`` added; an entry with the same provider and id replaces ours."""
        merged = {(m.provider, m.id): m for m in self._models}
        merged.update({(m.provider, m.id): m for m in models})
        return Catalog(merged.values())

    def lookup(self, model: str, provider: str | None = None) -> ModelInfo | None:
        """Resolve a model name; ``provider`` is a preference, not a filter.

        Order: ``provider``'s own entry, then any provider's (for compatible hosts such
        as Azure serving ``gpt-4o``), then the slow path: case folding, a known
        ``provider/`` or ``@integration/`` prefix, a trailing date suffix.
        """
        if provider is not None:
            table = self._by_provider.get(provider)
            if table is not None:
                info = table.get(model)
                if info is not None:
                    return info
        info = self._by_id.get(model)
        if info is not None:
            return info
        key = (provider, model)
        try:
            return self._memo[key]
        except KeyError:
            pass
        info = self._resolve(model, provider)
        if len(self._memo) >= _MEMO_SIZE:
            # FIFO eviction: dicts keep insertion order.
            self._memo.pop(next(iter(self._memo)), None)
        self._memo[key] = info
        return info

    def models_for_listing(self) -> list[ModelInfo]:
        """Every entry by canonical id (aliases are not repeated), in file order."""
        return list(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def _resolve(self, model: str, provider: str | None) -> ModelInfo | None:
        if not isinstance(model, str):
            return None
        if isinstance(provider, str):
            provider = provider.lower()
            provider = _PROVIDER_ALIASES.get(provider, provider)
        name = model.strip().lower()
        info = self._undated(name, provider)
        if info is None and (profile := _REGION_PROFILE.match(name)) is not None:
            info = self._undated(name[profile.end() :], provider)
        if info is None and "/" in name:
            head, _, rest = name.partition("/")
            if head.startswith("@"):
                # A named credential (``@openai-prod/gpt-4o``) says nothing about the provider.
                info = self._undated(rest, provider)
            else:
                head = _PROVIDER_ALIASES.get(head, head)
                if head in self._by_provider:
                    info = self._undated(rest, head)
        return info

    def _undated(self, name: str, provider: str | None) -> ModelInfo | None:
        info = self._get(name, provider)
        if info is None:
            match = _DATE_SUFFIX.search(name)
            if match is not None:
                info = self._get(name[: match.start()], provider)
        return info

    def _get(self, name: str, provider: str | None) -> ModelInfo | None:
        if provider is not None:
            table = self._by_provider.get(provider)
            if table is not None:
                info = table.get(name)
                if info is not None:
                    return info
        return self._by_id.get(name)


@functools.lru_cache(maxsize=1)
def _default_catalog() -> Catalog:
    return Catalog.load(DEFAULT_PATH)


def models_for_listing() -> list[ModelInfo]:
    """The bundled catalog's entries, for ``GET /v1/models``."""
    return Catalog.default().models_for_listing()


def _tokens(value: Any) -> int:
    """A usage field -> a non-negative int; anything odd (None, str, bool, NaN) counts as 0."""
    if type(value) is int:
        return value if value > 0 else 0
    if type(value) is float and value > 0 and math.isfinite(value):
        return int(value)
    return 0


def _tier(info: ModelInfo, prompt_tokens: int) -> Price:
    tier = info.long_context
    if tier is not None and prompt_tokens > tier.threshold:
        return tier
    return info.price


def cost(info: ModelInfo | None, usage: Mapping[str, Any] | None) -> float | None:
    """USD for one request's usage (OpenAI canonical form); ``None`` when the model is unpriced."""
    if info is None:
        return None
    if not isinstance(usage, Mapping):
        return 0.0
    completion = _tokens(usage.get("completion_tokens"))
    raw_prompt = usage.get("prompt_tokens")
    if raw_prompt is None:
        # Embedding responses may carry only total_tokens.
        prompt = max(_tokens(usage.get("total_tokens")) - completion, 0)
    else:
        prompt = _tokens(raw_prompt)
    cached = cache_write = reasoning = 0
    details = usage.get("prompt_tokens_details")
    if isinstance(details, Mapping):
        cached = _tokens(details.get("cached_tokens"))
        cache_write = _tokens(details.get("cache_creation_tokens"))
    price = _tier(info, prompt)
    uncached = max(prompt - cached - cache_write, 0)
    total = (
        uncached * price.input
        + cached * (price.input if price.cached_input is None else price.cached_input)
        + cache_write * (price.input if price.cache_write is None else price.cache_write)
    )
    if price.reasoning is not None:
        details = usage.get("completion_tokens_details")
        if isinstance(details, Mapping):
            reasoning = _tokens(details.get("reasoning_tokens"))
        # reasoning_tokens are part of completion_tokens; trust the larger if they disagree.
        total += reasoning * price.reasoning + max(completion - reasoning, 0) * price.output
    else:
        total += completion * price.output
    return total * _PER_TOKEN


def max_cost(info: ModelInfo | None, prompt_tokens: int, max_output_tokens: int | None) -> float | None:
    """The most a request can cost: for budget reservation before the call.

    Output is ``max_output_tokens`` capped at the model's limit (a provider rejects or
    clamps more); without either, whatever room the context window leaves.
    """
    if info is None:
        return None
    prompt = _tokens(prompt_tokens)
    limit = info.max_output_tokens
    requested = _tokens(max_output_tokens) if max_output_tokens is not None else None
    if requested is not None:
        output = requested if limit is None else min(requested, limit)
    elif limit is not None:
        output = limit
    else:
        output = max(info.context_window - prompt, 0)
    price = _tier(info, prompt)
    out_price = price.output if price.reasoning is None else max(price.output, price.reasoning)
    return (prompt * price.input + output * out_price) * _PER_TOKEN
