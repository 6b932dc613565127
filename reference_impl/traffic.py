"""Stamped traffic independent of the port: the paced generator and the stamp receiver.

The memif actions (reference_impl.actions) and the interface tools
(reference_impl.iface_traffic) drive these with their own loops; a port only has to
take copies of a frame (`CopySender`) or hand over the stamp bytes of what it received.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
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
"""Seconds a paced frame may wait for ring room after it was due, at most."""
LATENESS_SHARE = 0.01
"""A frame of a timed window waits at most this share of the window: a receiver (or a
generator) slower than the rate by more than 1 % cannot hide behind waiting frames."""


PACE_SLEEP = 0.0002
"""A paced generator waits (sleeps, or services its control socket) only when its next
frame is further away than this; closer, it polls (a wait overshoots by tens of us)."""


def max_lateness(seconds: float | None) -> float:
    """How long a paced frame may wait for room in a window of `seconds` (None: untimed)."""
    return MAX_LATENESS if seconds is None else min(MAX_LATENESS, LATENESS_SHARE * seconds)


class Generator:
    """Stamped copies of one frame, paced at a rate or as fast as the sender takes them.

    Bounded by `count` frames offered (paced) or sent (unpaced), and by a window of seconds
    when `begin` gets one. Paced, every frame due is offered, late ones too (a stall of the
    generator's own CPU is made up in one burst); a frame the sender has no room for waits
    at most `max_lateness` seconds past its time, then it is given up. `unsent` counts the
    frames due that have not gone (given up or still waiting): that is how a paced
    generator reports the load it could not offer.
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
                lateness not above 0.
        """
        if count <= 0:
            raise ValueError(f"count {count} must be positive")
        if not max_lateness > 0:
            raise ValueError(f"max_lateness {max_lateness!r} must be above 0 seconds")
        self.writer = stamps.StampWriter(frame)
        self.count = count
        self.rate = rate
        self.max_lateness = max_lateness
        self._pacer: Pacer | None = Pacer(rate, 0.0) if rate is not None else None
        self.sent = 0
        self._due = 0  # paced: frames the schedule made due so far
        self._given_up = 0  # paced: due frames that waited longer than max_lateness
        self._limit = count  # frames the schedule makes due in all (the window's, if one)
        self.started: float | None = None
        self.last_sent: float | None = None

    @property
    def unsent(self) -> int:
        """Frames due that have not gone: given up, or still waiting for room (paced)."""
        return self._due - self.sent if self._pacer is not None else 0

    @property
    def waiting(self) -> int:
        """Frames due, not sent and not given up yet (paced; 0 unpaced)."""
        return self._due - self.sent - self._given_up if self._pacer is not None else 0

    @property
    def offered(self) -> int:
        """Frames offered so far: sent plus unsent."""
        return self.sent + self.unsent

    @property
    def done(self) -> bool:
        """Whether the count is reached (paced: every frame sent or given up)."""
        return self.sent + self._given_up >= self.count

    @property
    def settled(self) -> bool:
        """Paced: every frame of the schedule (the window's) is due, and none still waits."""
        return self._due >= self._limit and self.waiting == 0

    def begin(self, now: float, seconds: float | None = None) -> None:
        """Start the schedule at `now` (frame 0 is due then; else the first step starts
        it); with `seconds`, exactly the frames due in that window fall due, the last one
        at its very end: floor(seconds x rate) + 1."""
        if self.started is not None:
            return
        self.started = now
        if self._pacer is not None:
            self._pacer.start = now
            if seconds is not None:
                # counted from `seconds` itself: (now + seconds) - now may lose the last one
                window = math.floor(seconds * self._pacer.rate * (1 + 1e-12)) + 1
                self._limit = min(self.count, window)

    def step(self, sender: CopySender, now: float) -> bool:
        """Offer the frames due (or, unpaced, the rest) to `sender`, then give up the ones
        that found no room and are more than `max_lateness` late; False when nothing was
        due or nothing went."""
        self.begin(now)
        if self._pacer is not None:
            self._due = min(self._pacer.due_by(now), self._limit)
            want = self.waiting
        else:
            want = self.count - self.sent
        went = 0
        if want > 0:
            template = self.writer.template_at(time.monotonic_ns())
            went = sender.transmit_copies(template, want, fill=self.writer.fill)
            self.writer.advance(went)
            self.sent += went
            if went:
                self.last_sent = time.monotonic()
        if self._pacer is not None and self.waiting:
            overdue = min(self._pacer.due_by(now - self.max_lateness), self._due)
            self._given_up = max(self._given_up, overdue - self.sent)
        return went > 0

    def wait(self, now: float) -> float:
        """Seconds until the next frame is due (0 unpaced, or when frames wait for room)."""
        if self._pacer is None or self.started is None or self.waiting > 0:
            return 0.0
        return max(0.0, self._pacer.next_due(self._due) - now)

    def facts(self, stopped: float) -> dict[str, Any]:
        """sent, unsent, offered, elapsed (schedule start to `stopped`), tx_pps, rate."""
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


def transmit_window(
    generator: Generator,
    seconds: float,
    sender: Callable[[], CopySender | None],
    idle: Callable[[float], None],
    *,
    deadline: float = math.inf,
) -> None:
    """Run `generator` for a window of `seconds` from now: paced, until every frame due in
    the window went or was given up; unpaced, until the window ends. Also ends at the
    count, at `deadline` or when `sender()` (the port to send on) gives None.

    `idle(seconds)` is called when nothing could go: the time until the next frame is
    due (paced, when further than PACE_SLEEP), or 0 (unpaced: a ring with no room).
    """
    started = time.monotonic()
    generator.begin(started, seconds)  # exactly the frames due in the window
    end = min(deadline, started + seconds)
    paced = generator.rate is not None
    while not generator.done:
        port = sender()
        if port is None:
            return
        now = time.monotonic()
        if now >= deadline or (now >= end and (not paced or generator.settled)):
            return
        if generator.step(port, now):
            continue
        if not paced:
            idle(0.0)
            continue
        pause = min(generator.wait(now), end - now)
        if pause > PACE_SLEEP:
            idle(pause - PACE_SLEEP / 2)


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
