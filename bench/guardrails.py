"""Micro-benchmark: what a typical PII guardrail costs on a 2 KB prompt (target: under 0.3 ms).

Run: .venv/bin/python bench/guardrails.py [--iterations N]

Measures, on one core, in-process (no HTTP):
- detect: the PII detector alone over the prompt text;
- input stage: GuardSession.check_input on a chat body (extract parts, run the guardrail
  through the runner, write the rewrite back) - what the pipeline adds per request;
- stream: the output stream guard per SSE chunk of a 2 KB answer sent in ~4-character pieces.
Each is run on a clean prompt (the common case) and on one carrying five PII values.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from lockgate.guardrails import Attached, GuardrailSpec, GuardSession, compile_guardrail
from lockgate.guardrails.pii import detect

PARAGRAPH = (
    "Our quarterly review covers the migration of the billing service to the new cluster, "
    "the on-call rotation for the holidays, and the roadmap for version 2.4.1 of the SDK. "
    "Order #48213 shipped on 2024-03-18; the retry budget is 10% and p99 latency fell to 180 ms. "
)
PII_SENTENCE = (
    "Contact jane.doe@example.com or +44 20 7946 0958, card 4111 1111 1111 1111, "
    "from 10.1.2.3 with key sk-proj-Ab3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW. "
)


def prompt(with_pii: bool) -> str:
    text = PII_SENTENCE if with_pii else ""
    while len(text) < 2048:
        text += PARAGRAPH
    return text[:2048]


def timed(fn: Callable[[], object], iterations: int) -> tuple[float, float]:
    for _ in range(min(200, iterations)):
        fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    return statistics.median(samples) / 1e6, samples[int(len(samples) * 0.99)] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()
    pii = compile_guardrail(
        "pii", GuardrailSpec.model_validate({"action": "redact", "checks": [{"type": "pii"}]})
    )
    loop = asyncio.new_event_loop()
    print(f"{'scenario':<38} {'p50 ms':>8} {'p99 ms':>8}")
    for with_pii in (False, True):
        text = prompt(with_pii)
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        }
        label = "with 5 PII values" if with_pii else "clean"

        def input_stage(body: dict[str, Any] = body) -> None:
            session = GuardSession(Attached((pii,), ()), model="gpt-4o-mini", metadata=None)
            loop.run_until_complete(session.check_input("chat", copy.deepcopy(body)))

        def stream(text: str = text) -> None:
            session = GuardSession(Attached((), (pii,)), model="gpt-4o-mini", metadata=None)
            guard = session.stream_guard("openai", "chat")
            assert guard is not None
            for i in range(0, len(text), 4):
                chunk = {
                    "id": "c",
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {"content": text[i : i + 4]}, "finish_reason": None}],
                }
                loop.run_until_complete(guard.feed(b"data: " + orjson.dumps(chunk) + b"\n\n"))
            loop.run_until_complete(guard.feed(b"data: [DONE]\n\n"))

        copy_cost, _ = timed(lambda body=body: copy.deepcopy(body), args.iterations)
        for name, fn, n in (
            ("detect (2 KB)", lambda text=text: detect(text), args.iterations),
            ("input stage (2 KB chat body)", input_stage, args.iterations),
        ):
            p50, p99 = timed(fn, n)
            if name.startswith("input"):
                p50, p99 = p50 - copy_cost, p99 - copy_cost  # the benchmark's own body copy
            print(f"{name + ', ' + label:<38} {p50:>8.3f} {p99:>8.3f}")
        p50, p99 = timed(stream, max(20, args.iterations // 100))
        chunks = len(range(0, len(text), 4))
        print(f"{'stream, per chunk, ' + label:<38} {p50 / chunks:>8.4f} {p99 / chunks:>8.4f}")
    loop.close()


if __name__ == "__main__":
    main()
