"""Precision and recall of the PII detector per entity type, on the labelled corpus.

The table is printed (``pytest -s``) and the bar is recall >= 0.98 and precision >= 0.95
for every type, and for split-across-chunk streams.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from lockgate.guardrails.pii import DETECTORS, ENTITIES, detect
from tests.unit.guardrails import pii_corpus
from tests.unit.guardrails.kit import guardrail, openai_events, openai_text, run_stream, session, split


def score() -> tuple[dict[str, tuple[int, int, int]], list[str]]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    misses: list[str] = []
    for text, expected in pii_corpus.cases():
        found = {(entity, text[s:e]) for s, e, entity, _ in detect(text)}
        wanted = set(expected)
        for entity, _ in found & wanted:
            tp[entity] += 1
        for entity, value in found - wanted:
            fp[entity] += 1
            misses.append(f"false positive {entity} {value!r} in {text[:80]!r}")
        for entity, value in wanted - found:
            fn[entity] += 1
            misses.append(f"missed {entity} {value!r} in {text[:80]!r}")
    return {e: (tp[e], fp[e], fn[e]) for e in ENTITIES}, misses


def table(counts: dict[str, tuple[int, int, int]]) -> str:
    lines = [f"{'type':<12} {'TP':>4} {'FP':>3} {'FN':>3} {'precision':>9} {'recall':>7}"]
    for entity, (tp, fp, fn) in counts.items():
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        lines.append(f"{entity:<12} {tp:>4} {fp:>3} {fn:>3} {precision:>9.3f} {recall:>7.3f}")
    return "\n".join(lines)


def test_corpus_is_large_and_labelled() -> None:
    cases = pii_corpus.cases()
    assert len(cases) + len(pii_corpus.STREAM_VALUES) >= 300
    assert sum(1 for _, expected in cases if not expected) >= 80  # near-misses
    assert {e for _, expected in cases for e, _ in expected} == set(DETECTORS)
    for text, expected in cases:
        for _, value in expected:
            assert value in text


def test_precision_and_recall_per_type() -> None:
    counts, misses = score()
    print("\nPII corpus, per type:\n" + table(counts))
    for entity, (tp, fp, fn) in counts.items():
        assert tp > 0, entity
        assert tp / (tp + fn) >= 0.98, (entity, misses)
        assert tp / (tp + fp) >= 0.95, (entity, misses)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_values_split_across_chunks_are_still_redacted(seed: int) -> None:
    rng = random.Random(seed)
    pii = guardrail("pii", {"type": "pii"}, action="redact")
    caught = 0
    for entity, value in pii_corpus.STREAM_VALUES:
        text = f"Sure - the value is {value} and that is all for today, thanks for asking."
        sizes = [rng.randint(1, 7) for _ in range(12)]
        guard = session(outputs=(pii,)).stream_guard("openai", "chat")
        content, _, _ = openai_text(await run_stream(guard, openai_events(split(text, sizes))))
        label = DETECTORS[entity].label  # type: ignore[index]
        if value not in content and f"[{label}]" in content:
            caught += 1
        assert content.replace(f"[{label}]", value) == text, (entity, content)
    recall = caught / len(pii_corpus.STREAM_VALUES)
    print(f"\nsplit-stream recall (seed {seed}): {recall:.3f} over {len(pii_corpus.STREAM_VALUES)} values")
    assert recall >= 0.98
