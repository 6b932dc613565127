"""Pacing a generator: which frames are due by now at a given rate (a token bucket).

Frame i (from 0) is due at start + i / rate. At each burst the generator offers every
frame due by then at once; what its sender cannot take at that moment is not offered
again later (the caller counts it as unsent), so a late burst never makes up for lost
time by sending faster than the rate.
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

    def due(self, now: float, offered: int) -> int:
        """Frames due by `now` that were not offered yet (0 if none)."""
        if now < self.start:
            return 0
        return max(0, math.floor((now - self.start) * self.rate) + 1 - offered)

    def next_due(self, offered: int) -> float:
        """When the frame after the `offered` ones is due."""
        return self.start + offered / self.rate


__all__ = ["Pacer"]
