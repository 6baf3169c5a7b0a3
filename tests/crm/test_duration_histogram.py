"""The durations' histogram (crm/duration_histogram.py): its buckets, its precision, its percentiles,
and PostgreSQL's crm_duration_bucket agreeing with Python's on every boundary."""

from datetime import timedelta

import pytest
from django.db import connection
from hypothesis import given
from hypothesis import strategies as st

from crm.duration_histogram import (
    BOUNDARIES_US,
    PRECISION,
    bucket_seconds,
    duration_bucket,
    histogram_percentile,
)

# From 1 ms to the last boundary (about two years), in microseconds.
measurable = st.integers(min_value=BOUNDARIES_US[0], max_value=BOUNDARIES_US[-1] - 1).map(
    lambda us: timedelta(microseconds=us)
)


def exact_percentile(durations: list[timedelta], fraction: float) -> float:
    """PostgreSQL's percentile_cont, in seconds: linear interpolation between the closest ranks."""
    values = sorted(d.total_seconds() for d in durations)
    position = fraction * (len(values) - 1)
    lower = int(position)
    upper = min(lower + 1, len(values) - 1)
    return values[lower] + (position - lower) * (values[upper] - values[lower])


def test_precision_is_4_5_percent():
    assert 0.0442 < PRECISION < 0.0446
    assert BOUNDARIES_US[0] == 1000 and BOUNDARIES_US[8] == 2000  # eight buckets per doubling
    assert all(a < b for a, b in zip(BOUNDARIES_US, BOUNDARIES_US[1:], strict=False))


@given(measurable)
def test_each_duration_is_taken_within_the_precision(duration):
    taken = bucket_seconds(duration_bucket(duration))
    assert abs(taken / duration.total_seconds() - 1) <= PRECISION + 1e-9


def test_the_edges():
    assert duration_bucket(timedelta(seconds=-5)) == 0  # clock skew
    assert duration_bucket(timedelta(microseconds=999)) == 0
    assert bucket_seconds(0) == 0.0
    assert duration_bucket(timedelta(milliseconds=1)) == 1  # a bound belongs to the bucket it opens
    assert duration_bucket(timedelta(days=3650)) == len(BOUNDARIES_US)
    assert bucket_seconds(len(BOUNDARIES_US)) == BOUNDARIES_US[-1] / 1e6


@given(
    st.lists(measurable, min_size=1, max_size=60),
    st.sampled_from([0.0, 0.5, 0.95, 1.0]),
)
def test_percentiles_are_within_the_precision_of_percentile_cont(durations, fraction):
    histogram: dict[int, int] = {}
    for duration in durations:
        bucket = duration_bucket(duration)
        histogram[bucket] = histogram.get(bucket, 0) + 1

    estimate = histogram_percentile(histogram, fraction).total_seconds()

    exact = exact_percentile(durations, fraction)
    # Within the precision, and the microsecond a timedelta rounds to.
    assert abs(estimate - exact) <= PRECISION * exact + 1e-6


def test_percentile_of_nothing_and_of_one():
    assert histogram_percentile({}, 0.5) is None
    assert histogram_percentile({5: 0}, 0.5) is None
    one = duration_bucket(timedelta(seconds=10))
    assert histogram_percentile({one: 1}, 0.95) == timedelta(seconds=bucket_seconds(one))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="crm_duration_bucket is PostgreSQL's")
@pytest.mark.django_db
def test_postgresql_buckets_every_boundary_as_python_does():
    """At, just under and just over every boundary, and for intervals with days in them."""
    probes = [us + delta for us in BOUNDARIES_US for delta in (-1, 0, 1)]
    probes += [86_400_000_000 * days + 1 for days in (1, 2, 400)] + [-1, 0]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT us, crm_duration_bucket(t0 + us * interval '1 microsecond' - t0)"
            " FROM unnest(%s::bigint[]) AS us, (SELECT timestamptz '2026-01-01 00:00+00' AS t0) AS start",
            [probes],
        )
        in_sql = dict(cursor.fetchall())
    assert in_sql == {us: duration_bucket(timedelta(microseconds=us)) for us in probes}
