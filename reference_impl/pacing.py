"""Pacing a generator: which frames are due by now at a given rate (a token bucket).

Frame i (from 0) is due at start + i / rate. At each burst the generator offers every
frame due by then at once. A frame its sender has no room for waits, like a frame in a
hardware generator's queue, but only for a bounded time (the generator's `max_lateness`):
after that it is given up and counts as unsent, so a late burst makes up for a stall of
the generator's own CPU, never for a receiver that is slower than the rate.
"""

from __future__ import annotations

import math


class Pacer:
    """Frames due at `rate` per second since `start` (time.monotonic seconds)."""

    def __init__(self, rate: float, start: float) -> None:
        """Pace at `rate` frames per second from `start`.

        Raises:
            ValueError: the rate is not a positive finite number.
        """
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"rate {rate!r} must be a positive number of frames per second")
        self.rate = rate
        self.start = start

    def due_by(self, now: float) -> int:
        """Frames due by `now`, counted from the start (0 before it)."""
        if now < self.start:
            return 0
        return math.floor((now - self.start) * self.rate) + 1

    def due(self, now: float, offered: int) -> int:
        """Frames due by `now` that were not offered yet (0 if none)."""
        return max(0, self.due_by(now) - offered)

    def next_due(self, offered: int) -> float:
        """When the frame after the `offered` ones is due."""
        return self.start + offered / self.rate


__all__ = ["Pacer"]
