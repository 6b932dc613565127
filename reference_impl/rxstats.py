"""What a sink learns from the stamps it reads: latency statistics and sequence gaps.

Both take one burst at a time as numpy arrays and do a few vectorised operations per
burst. Latency keeps a bounded, evenly thinned sample (at most `per_burst` frames of a
burst, spread over it; the kept set halves its density whenever it fills), so a long
run costs bounded memory and its percentiles cover the whole run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

LATENCY_PER_BURST = 64
"""Frames of one burst whose latency is sampled at most (evenly spaced over the burst)."""
LATENCY_CAPACITY = 1 << 16
"""Latency samples kept for the percentiles at most."""
_STAGING = 4096


class LatencyStats:
    """Min/avg/max over every sampled frame, p50/p99 over an evenly thinned subset."""

    def __init__(
        self, *, per_burst: int = LATENCY_PER_BURST, capacity: int = LATENCY_CAPACITY
    ) -> None:
        """Sample at most `per_burst` frames of a burst, keep at most `capacity` samples."""
        if per_burst <= 0 or capacity < 2:
            raise ValueError("per_burst must be positive and capacity at least 2")
        self.per_burst = per_burst
        self.samples = 0  # frames sampled (min, avg and max are over all of them)
        self._minimum: int | None = None
        self._maximum = 0
        self._total = 0
        self._staging = np.empty(_STAGING + per_burst, dtype=np.int64)
        self._staged = 0
        self._kept = np.empty(capacity, dtype=np.int64)
        self._kept_count = 0
        self._stride = 1  # sample k is kept iff k % stride == 0
        self._offered = 0  # samples moved out of staging so far

    def add(self, now_ns: int, sent_ns: U64) -> None:
        """Take the send times of one burst's frames, received at `now_ns`.

        `now_ns` is best read right after the receiver saw the burst (read the ring index),
        before its work on it: earlier, a frame published in between would come out
        negative; later, the receiver's own work would count as latency.
        """
        count = int(sent_ns.size)
        if count == 0:
            return
        step = -(-count // self.per_burst)
        picked = sent_ns[::step]
        end = self._staged + picked.size
        staged = self._staging[self._staged : end]
        np.subtract(np.int64(now_ns), picked.astype(np.int64), out=staged)
        self._staged = end
        if end >= _STAGING:
            self._flush()

    def _flush(self) -> None:
        batch = self._staging[: self._staged]
        self._staged = 0
        if not batch.size:
            return
        low, high = int(batch.min()), int(batch.max())
        self._minimum = low if self._minimum is None else min(self._minimum, low)
        self._maximum = max(self._maximum, high)
        self._total += int(batch.sum())
        self.samples += int(batch.size)
        base = self._offered  # global index of batch[0] among all samples
        self._offered += int(batch.size)
        chosen = batch[-base % self._stride :: self._stride]
        while self._kept_count + chosen.size > self._kept.size:
            # keep every other kept sample: the kept set is again every stride-th sample
            halved = self._kept[: self._kept_count : 2].copy()
            self._kept[: halved.size] = halved
            self._kept_count = int(halved.size)
            self._stride *= 2
            chosen = batch[-base % self._stride :: self._stride]
        self._kept[self._kept_count : self._kept_count + chosen.size] = chosen
        self._kept_count += int(chosen.size)

    def summary(self) -> dict[str, Any] | None:
        """{min_us, avg_us, p50_us, p99_us, max_us, samples, percentile_samples}, or None
        before the first sample."""
        self._flush()
        if self.samples == 0 or self._minimum is None:
            return None
        kept = self._kept[: self._kept_count]
        p50, p99 = np.percentile(kept, [50, 99])
        return {
            "min_us": self._minimum / 1e3,
            "avg_us": self._total / self.samples / 1e3,
            "p50_us": float(p50) / 1e3,
            "p99_us": float(p99) / 1e3,
            "max_us": self._maximum / 1e3,
            "samples": self.samples,
            "percentile_samples": int(kept.size),
        }


class SequenceTracker:
    """Frames missing by sequence number, from bursts of the sequence numbers received.

    The next number expected starts at 0. A number above the expected one counts the
    numbers skipped as gaps; one at or below the last seen (a duplicate, a reordering,
    or a new sender starting at 0 again) counts once as disorder and numbering
    continues from it.
    """

    def __init__(self) -> None:
        """Expect sequence number 0 first."""
        self.expected = 0
        self.gaps = 0
        self.disorder = 0

    def add(self, sequence: U64) -> None:
        """Take the sequence numbers of one burst, in the order received."""
        count = int(sequence.size)
        if count == 0:
            return
        first, last = int(sequence[0]), int(sequence[-1])
        if first == self.expected and last == first + count - 1:
            self.expected = last + 1  # the common burst: consecutive, nothing missing
            return
        values = sequence.astype(np.int64)
        steps = np.diff(values, prepend=np.int64(self.expected - 1))
        self.gaps += int((steps[steps > 1] - 1).sum())
        self.disorder += int(np.count_nonzero(steps <= 0))
        self.expected = last + 1


__all__ = ["LATENCY_CAPACITY", "LATENCY_PER_BURST", "LatencyStats", "SequenceTracker"]
