"""One trial measurement: what a generator offered at a load and what reached the sink."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class TrialOutcome:
    """The counts of one bounded trial.

    Attributes:
        intended_duration: seconds the trial was to transmit.
        intended_load: frames per second asked for; None at full load (MRR).
        sent: frames the generator put on the wire (the ring, the interface).
        unsent: frames due at the intended load that the generator could not send; they
            count as lost (a generator that cannot offer the load must not look lossless).
        received: frames that reached the sink.
        seconds: how long the generator actually transmitted.
        latency: latency statistics of the sink ({min_us, avg_us, p50_us, p99_us, max_us,
            samples}), when the sink reads the generator's timestamps.
    """

    intended_duration: float
    intended_load: float | None
    sent: int
    unsent: int
    received: int
    seconds: float
    latency: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if min(self.sent, self.unsent, self.received) < 0:
            raise ValueError(f"negative frame count in {self}")

    @property
    def offered(self) -> int:
        """Frames the trial was to deliver: sent plus unsent."""
        return self.sent + self.unsent

    @property
    def lost(self) -> int:
        """Frames offered that did not arrive (never negative: duplicates do not earn)."""
        return max(self.offered - self.received, 0)

    @property
    def loss_ratio(self) -> float:
        """Lost frames over offered frames (0 when nothing was offered)."""
        return self.lost / self.offered if self.offered else 0.0

    @property
    def rx_pps(self) -> float:
        """Frames received per second of transmission."""
        return self.received / self.seconds if self.seconds > 0 else 0.0

    @property
    def tx_pps(self) -> float:
        """Frames sent per second of transmission (what the generator achieved)."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the derived rates."""
        return {
            **dataclasses.asdict(self),
            "loss_ratio": self.loss_ratio,
            "rx_pps": self.rx_pps,
            "tx_pps": self.tx_pps,
        }
