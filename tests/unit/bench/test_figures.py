"""The benchmark's arithmetic (bench/figures.py): percentiles and the open-loop schedule."""

from __future__ import annotations

import math

import pytest

from bench.figures import Hit, Row, Target, paced, percentile, rounds_percentile, table


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert math.isnan(percentile([], 50))


def test_rounds_percentile_takes_the_median_round() -> None:
    quiet, disturbed = [1.0] * 100, [1.0] * 90 + [50.0] * 10
    assert rounds_percentile([quiet, disturbed, quiet], 99) == 1.0
    assert rounds_percentile([quiet, disturbed], 99) == pytest.approx(25.5)


def test_paced_latency_counts_a_late_send_against_the_server() -> None:
    # 100 req/s: request i is due at i * 10 ms. Request 2 left 30 ms late (the generator
    # waited on a stalled server): its latency counts from when it was due.
    hits = [Hit(0.000, 0, 0.001, True), Hit(0.010, 1, 0.001, True), Hit(0.050, 2, 0.001, True)]
    result = paced(hits, rate=100)
    assert result.latencies == pytest.approx([0.001, 0.001, 0.031])
    assert result.max_lag == pytest.approx(0.030)
    assert result.errors == 0


def test_paced_schedule_starts_at_the_earliest_origin_and_skips_the_warmup() -> None:
    hits = [Hit(0.004, 0, 0.001, True), Hit(0.010, 1, 0.001, True), Hit(0.020, 2, 0.002, False)]
    result = paced(hits, rate=100, warmup=0.01)
    assert result.latencies == pytest.approx([0.001])  # request 0 is warm-up, 2 failed
    assert result.max_lag == pytest.approx(0.004)
    assert result.errors == 1


def test_table_marks_targets_met_and_missed() -> None:
    rows = [
        Row("added p50", "ms", "mem", math.nan, 0.4, 8.0, Target(0.5)),
        Row("throughput", "req/s", "mem", 10000, 1500, 130, Target(2000, at_least=True)),
    ]
    lines = table(rows)
    assert "| met |" in lines[2] and "0.05x" in lines[2]
    assert "**missed**" in lines[3] and "11.5x" in lines[3]
