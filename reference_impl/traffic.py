"""Stamped traffic independent of the port: the paced generator and the stamp receiver.

The memif actions (reference_impl.actions) and the interface tools
(reference_impl.iface_traffic) drive these with their own loops; a port only has to
take copies of a frame (`CopySender`) or hand over the stamp bytes of what it received.
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from reference_impl import stamps
from reference_impl.fastpath import FrameFill
from reference_impl.pacing import Pacer
from reference_impl.rxstats import LatencyStats, SequenceTracker

U8 = npt.NDArray[np.uint8]


class CopySender(Protocol):
    """A port that sends copies of one frame (a memif Link, a TpacketPort)."""

    def transmit_copies(self, template: U8, count: int, *, fill: FrameFill | None = None) -> int:
        """Send up to `count` copies of `template`, numbered by `fill`; returns how many went."""
        ...


MAX_LATENESS = 0.05
"""Seconds a paced frame may wait for room after it was due: longer than this VM's
scheduling stalls of a generator (up to ~10 ms seen on 2 vCPUs)."""
LATENESS_SHARE = 0.01
"""A frame of a timed window waits at most this share of the window: a generator (or a
receiver) slower than the rate by more than 1 % cannot hide behind its waiting frames."""


def max_lateness(seconds: float | None) -> float:
    """How long a paced frame may wait for room in a window of `seconds` (None: untimed)."""
    return MAX_LATENESS if seconds is None else min(MAX_LATENESS, LATENESS_SHARE * seconds)


class Generator:
    """Stamped copies of one frame, paced at a rate or as fast as the sender takes them.

    Bounded by `count` frames offered (paced) or sent (unpaced); the caller bounds time.
    Paced, a frame due while the sender has no room waits for room at most `max_lateness`
    seconds, then it is given up; `unsent` counts the frames due that have not gone (given
    up or still waiting): that is how a paced generator reports the load it could not offer.
    """

    def __init__(
        self,
        frame: bytes,
        *,
        count: int,
        rate: float | None = None,
        max_lateness: float = MAX_LATENESS,
    ) -> None:
        """Send `count` copies of `frame` (stamped), at `rate` frames per second if given.

        Raises:
            frames.FrameError: the frame is too short for a stamp.
            ValueError: the count is not positive, the rate not a positive number or the
                lateness negative.
        """
        if count <= 0:
            raise ValueError(f"count {count} must be positive")
        if not max_lateness >= 0:
            raise ValueError(f"max_lateness {max_lateness!r} must be >= 0 seconds")
        self.writer = stamps.StampWriter(frame)
        self.count = count
        self.rate = rate
        self.max_lateness = max_lateness
        self._pacer: Pacer | None = Pacer(rate, 0.0) if rate is not None else None
        self.sent = 0
        self._due = 0  # paced: frames the schedule made due so far
        self._given_up = 0  # paced: due frames that waited longer than max_lateness
        self._scheduled = -math.inf  # paced: the latest time the schedule was applied up to
        self.started: float | None = None
        self.last_sent: float | None = None

    @property
    def unsent(self) -> int:
        """Frames due that have not gone: given up, or still waiting for room (paced)."""
        return self._due - self.sent if self._pacer is not None else 0

    @property
    def waiting(self) -> int:
        """Frames due, not sent and not given up yet (paced)."""
        return self._due - self.sent - self._given_up

    @property
    def offered(self) -> int:
        """Frames offered so far: sent plus unsent."""
        return self.sent + self.unsent

    @property
    def done(self) -> bool:
        """Whether the count is reached (paced: every frame sent or given up)."""
        return self.sent + self._given_up >= self.count

    def begin(self, now: float) -> None:
        """Start the schedule at `now` (frame 0 is due then); else the first step starts it."""
        if self.started is None:
            self.started = now
            if self._pacer is not None:
                self._pacer.start = now

    def step(self, sender: CopySender, now: float, *, until: float | None = None) -> bool:
        """Offer the frames due (or, unpaced, the rest) to `sender`; False when nothing was
        due or nothing went.

        `until` ends the paced schedule: no frame falls due after it, and the frames due by
        then still go within their lateness (`settled` tells when they all went or were
        given up).
        """
        self.begin(now)
        if self._pacer is not None:
            scheduled = now if until is None else min(now, until)
            self._scheduled = max(self._scheduled, scheduled)
            self._due = min(self._pacer.due_by(scheduled), self.count)
            overdue = min(self._pacer.due_by(now - self.max_lateness), self._due)
            self._given_up = max(self._given_up, overdue - self.sent)
            want = self.waiting
        else:
            want = self.count - self.sent
        if want <= 0:
            return False
        template = self.writer.template_at(time.monotonic_ns())
        went = sender.transmit_copies(template, want, fill=self.writer.fill)
        self.writer.advance(went)
        self.sent += went
        if went:
            self.last_sent = time.monotonic()
        return went > 0

    def settled(self, until: float) -> bool:
        """Paced: the schedule ran to `until` and no frame due by then still waits."""
        return self._scheduled >= until and self.waiting == 0

    def wait(self, now: float) -> float:
        """Seconds until the next frame is due (0 unpaced, or when frames wait for room)."""
        if self._pacer is None or self.started is None or self.waiting > 0:
            return 0.0
        return max(0.0, self._pacer.next_due(self._due) - now)

    def facts(self, stopped: float) -> dict[str, Any]:
        """sent, unsent, offered, elapsed (first burst to `stopped`), tx_pps, rate."""
        elapsed = stopped - self.started if self.started is not None else 0.0
        return {
            "sent": self.sent,
            "unsent": self.unsent,
            "offered": self.offered,
            "elapsed": elapsed,
            "tx_pps": self.sent / elapsed if elapsed > 0 else None,
            "rate": self.rate,
            "size": int(self.writer.template.size),
        }


class StampReceiver:
    """Counts received frames and reads their stamps: latency, sequence gaps, rate."""

    def __init__(self) -> None:
        """Nothing received yet."""
        self.received = 0
        self.stamped = 0
        self._first_burst = 0  # frames of the first burst: they arrived at `first`
        self.latency = LatencyStats()
        self.sequence = SequenceTracker()
        self.first: float | None = None
        self.last: float | None = None

    def add(self, windows: U8, now: float, now_ns: int) -> None:
        """Take one burst: the (n, STAMP_SIZE) stamp bytes of its n frames.

        `now` (time.monotonic) and `now_ns` (time.monotonic_ns) are its arrival time.
        """
        count = int(windows.shape[0])
        if count == 0:
            return
        self.received += count
        self.last = now
        if self.first is None:
            self.first = now
            self._first_burst = count
        valid, sequence, sent_ns = stamps.read(windows)
        stamped = int(np.count_nonzero(valid))
        if stamped == 0:
            return
        if stamped < count:
            sequence, sent_ns = sequence[valid], sent_ns[valid]
        self.stamped += stamped
        self.sequence.add(sequence)
        self.latency.add(now_ns, sent_ns)

    def facts(self) -> dict[str, Any]:
        """received, stamped, rx_pps (frames after the first burst over the time from it
        to the last one), latency, sequence gaps and disorder."""
        span = (self.last - self.first) if self.first is not None and self.last else 0.0
        after_first = self.received - self._first_burst
        return {
            "received": self.received,
            "stamped": self.stamped,
            "rx_pps": after_first / span if span > 0 else None,
            "latency": self.latency.summary(),
            "sequence_gaps": self.sequence.gaps,
            "sequence_disorder": self.sequence.disorder,
        }


__all__ = ["CopySender", "Generator", "StampReceiver"]
