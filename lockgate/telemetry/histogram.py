"""Fixed log-spaced latency buckets: mergeable by addition, so rollups can hold percentiles.

Bucket 0 holds values under 1 ms; bucket i (1..72) holds [2^((i-1)/4), 2^(i/4)) ms;
the last bucket (73) holds everything from 2^18 ms (~262 s) up. Every rollup row
stores one count per bucket, and any set of rows merges by summing the counts
(in SQL), which no stored percentile allows.

Accuracy: a percentile is estimated by locating the bucket that holds its rank
and interpolating log-linearly inside it. The true value lies in that same
bucket, whose upper edge is 2^(1/4) (about 1.19x) its lower edge, so the
estimate is within 19% of the true value (in practice a few percent for smooth
distributions); below 1 ms the error is at most 1 ms absolute, and above
~262 s the estimate is the bucket's lower edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

STEPS_PER_DOUBLING = 4
TOP_EXPONENT = 18
# Upper edges of buckets 0..72 in ms; bucket 73 is open-ended.
EDGES: tuple[float, ...] = tuple(2 ** (i / STEPS_PER_DOUBLING) for i in range(TOP_EXPONENT * 4 + 1))
BUCKETS = len(EDGES) + 1


def bucket_of(ms: float) -> int:
    if ms < 1.0:
        return 0
    index = min(int(math.log2(ms) * STEPS_PER_DOUBLING) + 1, BUCKETS - 1)
    # Float rounding at an exact edge may land one off; the edges are the arbiter.
    if index < BUCKETS - 1 and ms >= EDGES[index]:
        index += 1
    elif ms < EDGES[index - 1]:
        index -= 1
    return index


def bounds(index: int) -> tuple[float, float]:
    """[low, high) of a bucket in ms; the last bucket reports its lower edge twice."""
    if index == 0:
        return 0.0, 1.0
    low = EDGES[index - 1]
    return low, EDGES[index] if index < len(EDGES) else low


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) of the values counted, or None when there are none."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low, high = bounds(index)
            fraction = max(0.0, min(1.0, (rank - seen) / count))
            if index == 0:
                return low + (high - low) * fraction
            return min(high, low * (high / low) ** fraction)  # min: float rounding at the edge
        seen += count
    return bounds(len(counts) - 1)[0]
