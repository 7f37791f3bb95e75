"""Local token counting, for usage when a provider reports none and for estimates.

Counts use OpenAI's BPE encodings through ``bpe_openai``, which ships the encoding
files inside the wheel: nothing is ever downloaded. Encodings load lazily, once per
process, and are big in memory (o200k is ~130 MB resident), so the gateway does not
load them at start: most providers report usage and never need them. Async callers
``await ensure_loaded(model)`` first, which loads in a thread (~50 ms, once) instead
of blocking the event loop.

Which encoding:
- ``cl100k_base`` for gpt-3.5, gpt-4 (not 4o/4.1/4.5), davinci-002/babbage-002 and
  OpenAI's embedding models (ada-002, text-embedding-3-*);
- ``o200k_base`` for everything else: gpt-4o, gpt-4.1, the o-series, gpt-5, and every
  non-OpenAI model. Claude, Gemini, Llama and the rest have their own tokenizers, so
  their counts are approximations (typically within 10-20%).

Chat prompts follow OpenAI's published recipe: 3 tokens per message, plus the tokens
of its role, name (+1) and other string fields, plus its content, plus 3 priming the
reply. On top of the recipe, which covers text only: an image part counts a flat
85 tokens (the "low detail" price; high-detail images cost more), tool calls count
their function names and arguments, and tool definitions count their compact JSON.

Every function here runs on client input and never raises on odd shapes: values of
unexpected types count as 0 tokens.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable
from typing import Any

import orjson

O200K = "o200k_base"
CL100K = "cl100k_base"

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
IMAGE_TOKENS = 85

_CL100K_PREFIXES = (
    "gpt-3.5",
    "gpt-35",
    "gpt-4-",
    "text-embedding-3",
    "text-embedding-ada",
    "davinci-002",
    "babbage-002",
)
_IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})
# The public ``encode_ordinary`` refuses 1M+ characters and 200k+ tokens; slices of
# 100k characters stay under both (a token is at least one character).
_SLICE = 100_000
_ENCODING_MEMO_SIZE = 1024

Counter = Callable[[str], int]

_counters: dict[str, Counter] = {}
_encodings: dict[str, Any] = {}
_load_lock = threading.Lock()
_encoding_memo: dict[str, str] = {}


def encoding_name_for(model: str | None) -> str:
    """The BPE encoding used to count ``model``'s tokens (``o200k_base`` when unknown)."""
    if type(model) is not str or not model:
        return O200K
    name = _encoding_memo.get(model)
    if name is None:
        bare = model.rpartition("/")[2].lower()
        name = CL100K if bare == "gpt-4" or bare.startswith(_CL100K_PREFIXES) else O200K
        if len(_encoding_memo) < _ENCODING_MEMO_SIZE:
            _encoding_memo[model] = name
    return name


def warm_up() -> None:
    """Load both encodings now (for tools that count a lot; the gateway loads on demand)."""
    for name in (O200K, CL100K):
        _counter(name)


def is_loaded(model: str | None = None) -> bool:
    return encoding_name_for(model) in _counters


async def ensure_loaded(model: str | None = None) -> None:
    """Load ``model``'s encoding off the event loop, if it is not loaded yet."""
    name = encoding_name_for(model)
    if name not in _counters:
        await asyncio.to_thread(_counter, name)


def count_text(text: str, model: str | None = None) -> int:
    """Tokens of plain text in ``model``'s encoding; 0 for anything but a non-empty str."""
    if type(text) is not str or not text:
        return 0
    return _count(_counter(encoding_name_for(model)), text)


def count_chat_prompt(messages: list[dict], model: str | None = None, tools: list | None = None) -> int:
    """Prompt tokens of a chat request, by OpenAI's recipe (see the module docstring)."""
    counter = _counter(encoding_name_for(model))
    total = REPLY_PRIMING
    if isinstance(messages, list | tuple):
        for message in messages:
            total += TOKENS_PER_MESSAGE
            if isinstance(message, dict):
                total += _message_tokens(counter, message)
            elif type(message) is str:
                total += _count(counter, message)
    if isinstance(tools, list | tuple):
        for tool in tools:
            total += _json_tokens(counter, tool)
    return total


def count_chat_completion(text: str | None, tool_calls: list | None = None, model: str | None = None) -> int:
    """Completion tokens of an assistant reply: its text plus its tool calls' names and arguments."""
    counter = _counter(encoding_name_for(model))
    total = _count(counter, text) if type(text) is str else 0
    return total + _tool_calls_tokens(counter, tool_calls)


def get_encoding(name: str = O200K) -> Any:
    """The cached ``bpe_openai`` Encoding (tiktoken API), for callers that need token ids.

    Import bpe_openai through here: its import emits a DeprecationWarning (it reads
    its data with ``importlib.resources.open_binary``), which this silences.
    """
    encoding = _encodings.get(name)
    if encoding is None:
        _load(name)
        encoding = _encodings[name]
    return encoding


def _counter(name: str) -> Counter:
    counter = _counters.get(name)
    return counter if counter is not None else _load(name)


def _load(name: str) -> Counter:
    with _load_lock:
        counter = _counters.get(name)
        if counter is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import bpe_openai  # deferred: the import maps a ~70 MB native library

                encoding = bpe_openai.get_encoding(name)
            counter = _make_counter(encoding)
            _encodings[name] = encoding
            _counters[name] = counter
    return counter


def _make_counter(encoding: Any) -> Counter:
    # The Rust tokenizer behind bpe_openai's Encoding counts without building a token
    # list and has no input-size limits; it is private, so keep the public path as a
    # fallback should a release move it.
    count = getattr(getattr(encoding, "_backend", None), "count", None)
    if callable(count):
        return count

    def count_public(text: str) -> int:
        if len(text) <= _SLICE:
            return len(encoding.encode_ordinary(text))
        return sum(len(encoding.encode_ordinary(text[i : i + _SLICE])) for i in range(0, len(text), _SLICE))

    return count_public


def _count(counter: Counter, text: str) -> int:
    if not text:
        return 0
    try:
        return counter(text)
    except UnicodeEncodeError:
        # Lone surrogates (legal in JSON "\ud800" escapes) are not UTF-8 encodable.
        try:
            return counter(text.encode("utf-8", "replace").decode("utf-8"))
        except Exception:
            return _rough(text)
    except Exception:
        # Counting is an estimate on client input: never fail the request over it.
        return _rough(text)


def _rough(text: str) -> int:
    return (len(text) + 3) // 4


def _message_tokens(counter: Counter, message: dict) -> int:
    total = 0
    for key, value in message.items():
        if key == "content":
            total += _content_tokens(counter, value)
        elif key == "tool_calls":
            total += _tool_calls_tokens(counter, value)
        elif key == "function_call":
            total += _call_tokens(counter, value)
        elif type(value) is str:
            # role, name, tool_call_id, refusal ...: the recipe counts every string field.
            total += _count(counter, value)
            if key == "name":
                total += TOKENS_PER_NAME
    return total


def _content_tokens(counter: Counter, content: Any) -> int:
    if type(content) is str:
        return _count(counter, content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict):
                total += _part_tokens(counter, part)
            elif type(part) is str:
                total += _count(counter, part)
        return total
    if isinstance(content, dict):
        return _part_tokens(counter, content)
    return 0


def _part_tokens(counter: Counter, part: dict) -> int:
    kind = part.get("type")
    if type(kind) is str and kind in _IMAGE_PARTS:
        return IMAGE_TOKENS
    text = part.get("text")
    if type(text) is not str:
        text = part.get("refusal")
    return _count(counter, text) if type(text) is str else 0


def _tool_calls_tokens(counter: Counter, tool_calls: Any) -> int:
    if not isinstance(tool_calls, list | tuple):
        return 0
    total = 0
    for call in tool_calls:
        if isinstance(call, dict):
            total += _call_tokens(counter, call.get("function"))
    return total


def _call_tokens(counter: Counter, function: Any) -> int:
    if not isinstance(function, dict):
        return 0
    total = 0
    name = function.get("name")
    if type(name) is str:
        total += _count(counter, name)
    arguments = function.get("arguments")
    if type(arguments) is str:
        total += _count(counter, arguments)
    elif arguments is not None:
        # Some clients send arguments as an object rather than a JSON string.
        total += _json_tokens(counter, arguments)
    return total


def _json_tokens(counter: Counter, value: Any) -> int:
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, ValueError):
        # Not JSON-serialisable (e.g. nested deeper than orjson allows, ints over 64 bits).
        try:
            text = repr(value)
        except Exception:
            return 0
    return _count(counter, text)
