"""The cheap worst case a request is admitted against, from its bytes: no tokenizer on the hot path.

Prompt tokens <= body bytes: every BPE token stands for at least one byte of
text, and the JSON around the text (quotes, keys, ``"role":"user"``) outweighs
the few tokens chat templates add per message. Media are the exception (a short
image URL can cost a thousand tokens), so each image, audio or file part adds a
fixed allowance. It overestimates text about fourfold; settlement corrects it.

Output tokens: the request's own limit (``max_completion_tokens``,
``max_tokens``, ``max_output_tokens``), else the model's published maximum,
else what the context window leaves; times ``n`` choices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lockgate.catalog import Catalog, max_cost

MEDIA_ALLOWANCE = 2_000  # tokens per image/audio/file part, above a high-detail image's ~1.1k
_MEDIA_MARKERS = (b'"image_url"', b'"input_image"', b'"image"', b'"input_audio"', b'"document"', b'"file"')
_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def prompt_upper_bound(raw: bytes) -> int:
    return len(raw) + MEDIA_ALLOWANCE * sum(raw.count(marker) for marker in _MEDIA_MARKERS)


def requested_output(data: Mapping[str, Any]) -> int | None:
    for name in _OUTPUT_FIELDS:
        value = data.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def choices(data: Mapping[str, Any]) -> int:
    n = data.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def worst_cost(
    catalog: Catalog, targets: Iterable[tuple[str, str]], raw: bytes, data: Mapping[str, Any]
) -> float:
    """The most any of the route's targets (model, provider) can charge; unpriced models count 0."""
    prompt = prompt_upper_bound(raw)
    output = requested_output(data)
    n = choices(data)
    worst = 0.0
    for model, provider in targets:
        info = catalog.lookup(model, provider)
        full = max_cost(info, prompt, output)
        if full is None:
            continue
        if n > 1:  # only the output part grows with the number of choices
            base = max_cost(info, prompt, 0) or 0.0
            full = base + n * (full - base)
        worst = max(worst, full)
    return worst


def token_estimate(raw: bytes, data: Mapping[str, Any]) -> int:
    """What a tokens-per-window limit holds for the request until its real count is known."""
    return prompt_upper_bound(raw) + (requested_output(data) or 0) * choices(data)
