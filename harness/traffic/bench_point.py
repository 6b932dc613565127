"""What one throughput measurement is: case, topology, direction, frame size, mode, timing.

The four cases are the original benchmark's: peers on the same NUMA node or on different
nodes, with a zero-copy or a copy client. `memif-harness bench` and the throughput suite
take their lists from the command line through the parsers here.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import TypeVar

from harness.topology.numa import NumaCase


class BenchCase(enum.StrEnum):
    """Placement x client memory mode."""

    SAME_NODE_ZC = "same-node-zc"
    SAME_NODE_COPY = "same-node-copy"
    CROSS_NODE_ZC = "cross-node-zc"
    CROSS_NODE_COPY = "cross-node-copy"

    @property
    def numa(self) -> NumaCase:
        """Same node or different nodes."""
        return NumaCase.SAME_NODE if self.value.startswith("same") else NumaCase.CROSS_NODE

    @property
    def zero_copy(self) -> bool:
        """Whether the client runs in zero-copy mode."""
        return self.value.endswith("-zc")


class BenchTopology(enum.StrEnum):
    """memif: peer A transmits, peer B counts. nic: generator ns -> veth -> A -> memif -> B
    -> veth -> sink ns."""

    MEMIF = "memif"
    NIC = "nic"


class Direction(enum.StrEnum):
    """Which side of the memif link transmits."""

    C2S = "c2s"
    S2C = "s2c"


class BenchMode(enum.StrEnum):
    """MRR: receive rate at full offered load. NDRPDR: MLRsearch for 0 % and 0.5 % loss."""

    MRR = "mrr"
    NDRPDR = "ndrpdr"


DEFAULT_FRAME_SIZES = (64, 1024, 1518)
MIN_FRAME_SIZE = 64
MAX_FRAME_SIZE = 9000
E = TypeVar("E", bound=enum.StrEnum)


@dataclasses.dataclass(frozen=True)
class BenchPoint:
    """One measurement to make for a (server, client) pair.

    Attributes:
        case: placement and client memory mode.
        topology: memif-only or NIC-backed.
        direction: which memif side transmits.
        frame_size: bytes per frame (L2, no FCS).
        mode: MRR or NDR/PDR.
        duration: seconds per trial (MRR) or CSIT's trial duration (NDR/PDR).
        trials: MRR trials to average.
    """

    case: BenchCase
    topology: BenchTopology
    direction: Direction
    frame_size: int
    mode: BenchMode
    duration: float = 1.0
    trials: int = 3

    def __post_init__(self) -> None:
        if not MIN_FRAME_SIZE <= self.frame_size <= MAX_FRAME_SIZE:
            raise ValueError(
                f"frame size {self.frame_size} not in {MIN_FRAME_SIZE}..{MAX_FRAME_SIZE}"
            )
        if not 0 < self.duration <= 60:
            raise ValueError(f"trial duration {self.duration} s not in (0, 60]")
        if not 1 <= self.trials <= 100:
            raise ValueError(f"trials {self.trials} not in 1..100")

    @property
    def id(self) -> str:
        """Readable test id: `same-node-zc-memif-c2s-64B-mrr`."""
        return (
            f"{self.case.value}-{self.topology.value}-{self.direction.value}-"
            f"{self.frame_size}B-{self.mode.value}"
        )


def _parse_list(kind: type[E], text: str, what: str) -> tuple[E, ...]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    known = ", ".join(member.value for member in kind)
    if not names:
        raise ValueError(f"{what}: nothing given (known: {known})")
    chosen = []
    for name in names:
        try:
            chosen.append(kind(name))
        except ValueError:
            raise ValueError(f"{what}: unknown {name!r} (known: {known})") from None
    return tuple(dict.fromkeys(chosen))


def parse_cases(text: str) -> tuple[BenchCase, ...]:
    """`same-node-zc,cross-node-copy` -> cases (ValueError names the known ones)."""
    return _parse_list(BenchCase, text, "--case")


def parse_directions(text: str) -> tuple[Direction, ...]:
    """`c2s`, `s2c` or `both`."""
    if text.strip() == "both":
        return (Direction.C2S, Direction.S2C)
    return _parse_list(Direction, text, "--direction")


MAX_REPEATS = 10


def check_repeats(repeats: int, option: str) -> int:
    """NDR/PDR searches per point, 1..MAX_REPEATS (ValueError naming `option` otherwise)."""
    if not 1 <= repeats <= MAX_REPEATS:
        raise ValueError(f"{option} {repeats}: 1..{MAX_REPEATS}")
    return repeats


def parse_frame_sizes(text: str) -> tuple[int, ...]:
    """`64,1024,1518` -> sizes (ValueError on anything else or out of range)."""
    sizes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            size = int(part)
        except ValueError:
            raise ValueError(f"--frame-size: {part!r} is not a number of bytes") from None
        if not MIN_FRAME_SIZE <= size <= MAX_FRAME_SIZE:
            raise ValueError(f"--frame-size: {size} not in {MIN_FRAME_SIZE}..{MAX_FRAME_SIZE}")
        sizes.append(size)
    if not sizes:
        raise ValueError("--frame-size: no size given")
    return tuple(dict.fromkeys(sizes))


def bench_points(
    cases: Sequence[BenchCase],
    topology: BenchTopology,
    directions: Sequence[Direction],
    frame_sizes: Sequence[int],
    mode: BenchMode,
    *,
    duration: float,
    trials: int,
) -> list[BenchPoint]:
    """Every combination, in a stable order (case, direction, frame size)."""
    return [
        BenchPoint(case, topology, direction, size, mode, duration, trials)
        for case in cases
        for direction in directions
        for size in frame_sizes
    ]
