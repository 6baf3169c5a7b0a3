"""Durations as a histogram with log-spaced buckets: percentiles without keeping every duration.

The dashboard's payment → onboarded p50 and p95 come from per-day counts of durations in these
buckets (crm/onboarding_rollups.py keeps them in PostgreSQL; `crm_duration_bucket` there is this
module's `duration_bucket`, the same boundaries compared as integer microseconds, so both agree
exactly).

Buckets: 0 holds durations under 1 ms (and negative ones, from clock skew); bucket b ≥ 1 holds
[BOUNDARIES_US[b - 1], BOUNDARIES_US[b]), eight buckets per doubling from 1 ms up to 2³⁶ ms (about
two years); the last bucket holds everything longer. Each duration is taken as its bucket's
geometric midpoint, which is within 2^(1/16) − 1 ≈ 4.4 % of it (PRECISION: 4.45 % at most, the
bounds being whole microseconds), so a percentile interpolated between ranks as PostgreSQL's
percentile_cont does is within that of percentile_cont over the exact durations (within 1 ms for
durations under 1 ms).
"""

import math
from bisect import bisect_right
from collections.abc import Mapping
from datetime import timedelta

BUCKETS_PER_DOUBLING = 8
DOUBLINGS = 36
# Lower bounds of buckets 1 … len(BOUNDARIES_US), in microseconds: 1 ms × 2^(k / 8).
BOUNDARIES_US: tuple[int, ...] = tuple(
    round(1000 * 2 ** (k / BUCKETS_PER_DOUBLING)) for k in range(BUCKETS_PER_DOUBLING * DOUBLINGS + 1)
)
# The worst relative error of a duration taken as its bucket's midpoint: 2^(1/16) − 1 = 4.43 %,
# 4.45 % in the first buckets, whose bounds are rounded to whole microseconds.
PRECISION = max(math.sqrt(b / a) for a, b in zip(BOUNDARIES_US, BOUNDARIES_US[1:], strict=False)) - 1


def duration_bucket(duration: timedelta) -> int:
    """The bucket of a duration (PostgreSQL: width_bucket over the same integer boundaries)."""
    return bisect_right(BOUNDARIES_US, duration // timedelta(microseconds=1))


def bucket_seconds(bucket: int) -> float:
    """The value a bucket's durations are taken as: its geometric midpoint, in seconds."""
    if bucket <= 0:
        return 0.0
    if bucket >= len(BOUNDARIES_US):
        return BOUNDARIES_US[-1] / 1e6
    return math.sqrt(BOUNDARIES_US[bucket - 1] * BOUNDARIES_US[bucket]) / 1e6


def histogram_percentile(histogram: Mapping[int, int], fraction: float) -> timedelta | None:
    """percentile_cont(fraction) of the durations counted in `histogram` (bucket → how many):
    the value at rank fraction × (n − 1), interpolated linearly between the two closest ranks."""
    histogram = {bucket: n for bucket, n in histogram.items() if n > 0}
    counted = sum(histogram.values())
    if not counted:
        return None
    position = fraction * (counted - 1)
    lower = math.floor(position)
    below, above = _value_at_rank(histogram, lower), _value_at_rank(histogram, min(lower + 1, counted - 1))
    return timedelta(seconds=below + (position - lower) * (above - below))


def _value_at_rank(histogram: Mapping[int, int], rank: int) -> float:
    """The `rank`-th smallest duration (from 0), as its bucket's value."""
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if rank < seen:
            return bucket_seconds(bucket)
    raise ValueError(f"rank {rank} beyond the {seen} durations counted")
