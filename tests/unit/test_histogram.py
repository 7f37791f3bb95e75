"""The fixed latency histogram: each value lands in the bucket that holds it; quantiles stay in it."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from lockgate.telemetry.histogram import BUCKETS, EDGES, bounds, bucket_of, quantile

latencies = st.floats(min_value=0, max_value=1e7, allow_nan=False)


@given(latencies)
def test_value_lies_within_its_bucket(ms: float) -> None:
    low, high = bounds(bucket_of(ms))
    assert low <= ms and (ms < high or bucket_of(ms) == BUCKETS - 1)


def test_edges_are_exact_bucket_starts() -> None:
    for i, edge in enumerate(EDGES):
        assert bucket_of(edge) == i + 1
    assert bucket_of(0) == 0 and bucket_of(0.999) == 0 and bucket_of(1e9) == BUCKETS - 1


@given(st.lists(latencies, min_size=1, max_size=300), st.sampled_from([0.5, 0.9, 0.95, 0.99, 1.0]))
def test_quantile_estimate_is_in_the_true_values_bucket(values: list[float], q: float) -> None:
    counts = [0] * BUCKETS
    for v in values:
        counts[bucket_of(v)] += 1
    true = sorted(values)[max(0, math.ceil(q * len(values)) - 1)]
    estimate = quantile(counts, q)
    assert estimate is not None
    low, high = bounds(bucket_of(true))
    assert low <= estimate <= max(high, low)


def test_no_values_no_quantile() -> None:
    assert quantile([0] * BUCKETS, 0.5) is None
