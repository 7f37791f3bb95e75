"""Model catalog: prices, context windows, capabilities, cost, and local token counting."""

from lockgate.catalog.catalog import (
    Catalog,
    CatalogError,
    LongContextPrice,
    ModelInfo,
    Price,
    cost,
    load_models,
    max_cost,
    models_for_listing,
    parse_models,
)
from lockgate.catalog.tokens import (
    count_chat_completion,
    count_chat_prompt,
    count_text,
    encoding_name_for,
    get_encoding,
    warm_up,
)

__all__ = [
    "Catalog",
    "CatalogError",
    "LongContextPrice",
    "ModelInfo",
    "Price",
    "cost",
    "count_chat_completion",
    "count_chat_prompt",
    "count_text",
    "encoding_name_for",
    "ensure_loaded",
    "get_encoding",
    "load_models",
    "max_cost",
    "models_for_listing",
    "parse_models",
    "warm_up",
]
