"""Latency statistics and sequence gaps a stamp receiver keeps (reference_impl.rxstats)."""

from __future__ import annotations

import numpy as np
import pytest

from reference_impl.rxstats import LatencyStats, SequenceTracker


def sent_times(now: int, latencies_ns: list[int] | np.ndarray) -> np.ndarray:
    return (now - np.asarray(latencies_ns, dtype=np.int64)).astype(np.uint64)


def test_latency_min_avg_max_and_percentiles_of_small_bursts() -> None:
    stats = LatencyStats()
    assert stats.summary() is None
    stats.add(10_000, sent_times(10_000, [1000, 2000, 3000]))
    stats.add(50_000, sent_times(50_000, [4000, 5000]))
    summary = stats.summary()
    assert summary is not None
    assert summary["samples"] == 5 and summary["percentile_samples"] == 5
    assert summary["min_us"] == 1.0 and summary["max_us"] == 5.0
    assert summary["avg_us"] == pytest.approx(3.0)
    assert summary["p50_us"] == pytest.approx(3.0)
    assert summary["p99_us"] == pytest.approx(4.96)


def test_latency_samples_at_most_per_burst_frames_spread_over_the_burst() -> None:
    stats = LatencyStats(per_burst=4)
    stats.add(0 + 10**9, sent_times(10**9, np.arange(1, 101) * 1000))  # 100 frames
    summary = stats.summary()
    assert summary is not None
    assert summary["samples"] == 4  # frames 0, 25, 50, 75 (a stride of 25)
    assert summary["min_us"] == 1.0 and summary["max_us"] == 76.0


def test_thinning_keeps_every_kth_sample_and_exact_extremes() -> None:
    stats = LatencyStats(per_burst=1000, capacity=100)
    values = np.arange(1, 10_001) * 10  # 10 000 samples, 10 ns apart
    for burst in np.split(values, 20):
        stats.add(10**9, sent_times(10**9, burst))
    summary = stats.summary()
    assert summary is not None
    assert summary["samples"] == 10_000
    assert summary["min_us"] == 0.01 and summary["max_us"] == 100.0
    assert summary["avg_us"] == pytest.approx(50.005)
    assert 50 <= summary["percentile_samples"] <= 100
    # an even thinning of a uniform ramp keeps its percentiles within the kept spacing
    assert summary["p50_us"] == pytest.approx(50.0, abs=2.6)
    assert summary["p99_us"] == pytest.approx(99.0, abs=2.6)


def test_latency_settings_must_make_sense() -> None:
    with pytest.raises(ValueError):
        LatencyStats(per_burst=0)
    with pytest.raises(ValueError):
        LatencyStats(capacity=1)


def test_consecutive_bursts_have_no_gaps() -> None:
    tracker = SequenceTracker()
    tracker.add(np.arange(0, 100, dtype=np.uint64))
    tracker.add(np.arange(100, 300, dtype=np.uint64))
    assert (tracker.gaps, tracker.disorder, tracker.expected) == (0, 0, 300)


def test_missing_numbers_are_gaps_inside_and_between_bursts() -> None:
    tracker = SequenceTracker()
    tracker.add(np.array([2, 3, 4, 7, 8], dtype=np.uint64))  # 0, 1 and 5, 6 missing
    tracker.add(np.array([12], dtype=np.uint64))  # 9, 10, 11 missing
    assert (tracker.gaps, tracker.disorder) == (7, 0)


def test_a_sender_starting_again_is_disorder_not_a_gap() -> None:
    tracker = SequenceTracker()
    tracker.add(np.arange(0, 50, dtype=np.uint64))
    tracker.add(np.array([0, 1, 2, 4], dtype=np.uint64))  # a new session; 3 missing
    assert (tracker.gaps, tracker.disorder, tracker.expected) == (1, 1, 5)
