"""Stamped traffic independent of the port: the paced generator and the stamp receiver.

The memif actions (reference_impl.actions) and the interface tools
(reference_impl.iface_traffic) drive these with their own loops; a port only has to
take copies of a frame (`CopySender`) or hand over the stamp bytes of what it received.
"""

from __future__ import annotations

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


class Generator:
    """Stamped copies of one frame, paced at a rate or as fast as the sender takes them.

    Bounded by `count` frames offered (paced) or sent (unpaced); the caller bounds time.
    Paced, the frames due at a burst that the sender has no room for are counted as
    `unsent` and never offered again: that is how a paced generator reports the load it
    could not even offer.
    """

    def __init__(self, frame: bytes, *, count: int, rate: float | None = None) -> None:
        """Send `count` copies of `frame` (stamped), at `rate` frames per second if given.

        Raises:
            frames.FrameError: the frame is too short for a stamp.
            ValueError: the count is not positive or the rate is not a positive number.
        """
        if count <= 0:
            raise ValueError(f"count {count} must be positive")
        self.writer = stamps.StampWriter(frame)
        self.count = count
        self.rate = rate
        self._pacer: Pacer | None = Pacer(rate, 0.0) if rate is not None else None
        self.sent = 0
        self.unsent = 0
        self.started: float | None = None
        self.last_sent: float | None = None

    @property
    def offered(self) -> int:
        """Frames offered so far: sent plus unsent."""
        return self.sent + self.unsent

    @property
    def done(self) -> bool:
        """Whether the count is reached."""
        return (self.offered if self._pacer else self.sent) >= self.count

    def step(self, sender: CopySender, now: float) -> bool:
        """Offer the next burst to `sender`; False when nothing was due or nothing went."""
        if self.started is None:
            self.started = now
            if self._pacer is not None:
                self._pacer.start = now
        if self._pacer is not None:
            want = min(self._pacer.due(now, self.offered), self.count - self.offered)
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
        if self._pacer is not None:
            self.unsent += want - went
            return True
        return went > 0

    def wait(self, now: float) -> float:
        """Seconds until the next frame is due (0 unpaced, or when one is due now)."""
        if self._pacer is None or self.started is None:
            return 0.0
        return max(0.0, self._pacer.next_due(self.offered) - now)

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
