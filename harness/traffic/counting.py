"""Frame counts from counters polled while they may reset (a peer zeroes them at disconnect)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class CounterTrack:
    """The frames a polled counter counted since tracking began, across resets.

    testpmd (and memif-ref, per link) restart their counters at zero when a link goes down
    and comes back; a value lower than the previous one therefore means "reset, then this
    many". Only what was counted between the last poll before a reset and the reset is
    lost: poll often, and keep the link up until the last poll.

    Attributes:
        last: the latest value seen.
        total: frames counted since the first value.
        first_time: when the first value was read (CLOCK_MONOTONIC seconds, if known).
        last_time: when the latest value was read.
        resets: how many resets were seen.
    """

    last: int
    total: int = 0
    first_time: float | None = None
    last_time: float | None = None
    resets: int = 0

    @classmethod
    def start(cls, value: int, at: float | None = None) -> CounterTrack:
        """Begin tracking at `value` (the frames before it are not counted)."""
        if value < 0:
            raise ValueError(f"a frame counter cannot be negative ({value})")
        return cls(last=value, first_time=at, last_time=at)

    def update(self, value: int, at: float | None = None) -> int:
        """Take the next polled value; returns the frames it adds."""
        if value < 0:
            raise ValueError(f"a frame counter cannot be negative ({value})")
        if value >= self.last:
            added = value - self.last
        else:
            added = value
            self.resets += 1
        self.total += added
        self.last = value
        if at is not None:
            self.last_time = at
        return added

    @property
    def seconds(self) -> float | None:
        """Time between the first and the latest value, if both times are known."""
        if self.first_time is None or self.last_time is None:
            return None
        return self.last_time - self.first_time
