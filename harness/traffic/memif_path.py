"""The memif-only topology: peer A transmits on memif, peer B counts what arrives.

Full-load trials (MRR) keep both peers running and read their counters over a window;
paced trials (NDR/PDR) are run one by one by a long-lived trial source (`Peer.run_trial`)
against a receiver that keeps running, the link up throughout. Counters are polled often
and followed across resets (testpmd zeroes them when a link goes down). The transmitter is
the "generator" here: it is also part of what is measured, so the result says when it, not
the receiver, set the rate. No latency: the receivers here are counted, not read.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

from harness.peers.base import (
    Activity,
    MemifSpec,
    PacingUnsupported,
    Peer,
    PeerCrashed,
    PeerError,
    PeerStatus,
    Role,
)
from harness.topology.numa import Placement
from harness.traffic.bench_point import Direction
from harness.traffic.counting import CounterTrack
from harness.traffic.trial import TrialOutcome

PeerFactory = Callable[[str, MemifSpec, Placement | None], Peer]
"""(peer kind, spec, placement) -> an unstarted peer, stopped by whoever made it."""

LINK_TIMEOUT = 30.0
WARMUP_SECONDS = 0.5
POLL_SECONDS = 0.05
PACED_LOG2_RING_SIZE = 14
STATUS_WAIT = 5.0
"""Seconds to wait for a receiver's counters read after a trial ended."""


class PathError(RuntimeError):
    """The topology could not be brought up or a trial could not be measured."""


class PacingRefused(PathError):
    """The transmitting peer cannot run trials at a load (NDR/PDR is impossible with it)."""


@dataclasses.dataclass(frozen=True)
class PairSetup:
    """What both topologies need of a point's pair: the peers, the link and the frames.

    Attributes:
        make_peer: builds peers (the scenario API gives one that records them).
        server_kind: the server's peer kind.
        client_kind: the client's peer kind.
        direction: c2s: the client transmits; s2c: the server does.
        frame_size: bytes per frame.
        zero_copy: the client runs zero-copy.
        socket_path: the memif socket.
        lifetime: seconds after which the peers stop by themselves (None: default).
    """

    make_peer: PeerFactory
    server_kind: str
    client_kind: str
    direction: Direction
    frame_size: int
    zero_copy: bool
    socket_path: str
    lifetime: float | None = None

    def kind(self, role: Role) -> str:
        """The peer kind of a role."""
        return self.server_kind if role is Role.SERVER else self.client_kind

    def spec(self, role: Role, **fields: Any) -> MemifSpec:
        """A benchmark spec of a role: no pcap, the point's lifetime, zero-copy client."""
        return MemifSpec(
            role=role,
            socket_path=self.socket_path,
            zero_copy=self.zero_copy and role is Role.CLIENT,
            frame_size=self.frame_size,
            capture=False,
            lifetime=self.lifetime,
            **fields,
        )


class MemifPath:
    """A (server, client) pair on one memif link, one side transmitting.

    Use as a context manager; `trial(duration, load)` measures. Without pacing the
    transmitter sends at full load the whole time and a trial is a window of counters;
    with pacing it transmits only in the trials the path asks for (`Peer.run_trial`), at
    each trial's load, the link staying up throughout: a peer that leaves and comes back
    for every trial would crash DPDK 22.11's polling receiver (fact sheet §9, c09561b).
    """

    def __init__(
        self, pair: PairSetup, *, placements: dict[Role, Placement | None], paced: bool
    ) -> None:
        """Prepare; nothing starts before `__enter__`.

        Args:
            pair: the peers, the link and the frames.
            placements: CPU/memory placement per role.
            paced: trials at a load (NDR/PDR): the transmitter runs trials on request.
        """
        self.pair = pair
        self.sender_role = Role.CLIENT if pair.direction is Direction.C2S else Role.SERVER
        self.receiver_role = Role.SERVER if pair.direction is Direction.C2S else Role.CLIENT
        self.placements = placements
        self.paced = paced
        self.receiver: Peer | None = None
        self.sender: Peer | None = None
        self._warm = False
        self._restore_affinity: set[int] | None = None

    def __enter__(self) -> MemifPath:
        """Start the receiver and the transmitter (server first), wait for the link; stops
        whatever started when something fails."""
        try:
            return self._enter()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _enter(self) -> MemifPath:
        specs = {
            self.receiver_role: self.pair.spec(self.receiver_role, activity=Activity.SINK),
            self.sender_role: self.pair.spec(
                self.sender_role,
                activity=Activity.SOURCE,
                trials=self.paced,
                # A paced ring rides out a receiver's stall: 2^14 slots are 16 ms at
                # 1 Mfps, under 1 ms at 20 Mfps; then frames wait for room at most 1 % of
                # the trial (the generator's queue) and are lost.
                log2_ring_size=PACED_LOG2_RING_SIZE if self.paced else 10,
            ),
        }
        peers: dict[Role, Peer] = {}
        for role in (Role.SERVER, Role.CLIENT):  # the server listens before the client dials
            try:
                peer = self.pair.make_peer(
                    self.pair.kind(role), specs[role], self.placements.get(role)
                )
            except PacingUnsupported as exc:
                if self.paced and role is self.sender_role:
                    raise PacingRefused(
                        f"the transmitter ({self.pair.kind(role)} {role.value}) cannot run trials "
                        f"at a load: {exc.args[0]}"
                    ) from exc
                raise
            peers[role] = peer
            if role is self.receiver_role:
                self.receiver = peer
            else:
                self.sender = peer
            peer.start()
        for peer in peers.values():
            if not peer.wait_for_link(LINK_TIMEOUT):
                raise PathError(
                    f"{peer.kind} {peer.spec.role.value}: no link in {LINK_TIMEOUT:g} s"
                )
        self._restore_affinity = stay_off(self.placements.get(self.sender_role))
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._restore_affinity is not None:
                os.sched_setaffinity(0, self._restore_affinity)
                self._restore_affinity = None
        finally:
            stop_all([peer for peer in (self.receiver, self.sender) if peer is not None])

    # ------------------------------------------------------------------ trials

    def trial(self, duration: float, load: float | None) -> TrialOutcome:
        """Measure one trial of `duration` seconds at `load` frames/s (None: full load)."""
        if self.sender is None or self.receiver is None:
            raise PathError("enter the path first")
        if self.paced:
            return self._requested_trial(self.sender, self.receiver, duration, load)
        if load is not None:
            raise PathError("an unpaced path measures at full load only")
        return self._window_trial(self.sender, self.receiver, duration)

    def _window_trial(self, sender: Peer, receiver: Peer, duration: float) -> TrialOutcome:
        if not self._warm:
            _wait_counting(receiver, WARMUP_SECONDS + 10.0)
            _poll_for(WARMUP_SECONDS)
            self._warm = True
        sent = _track(sender.status(), tx=True)
        received = _track(receiver.status(), tx=False)
        end = time.monotonic() + duration
        while time.monotonic() < end:
            _poll_for(min(POLL_SECONDS, max(end - time.monotonic(), 0.0)))
            sent_status, received_status = sender.status(), receiver.status()
            if not (sent_status.link_up and received_status.link_up):
                raise PathError("the memif link went down during a full-load trial")
            sent.update(sent_status.counters.tx_frames, sent_status.time)
            received.update(received_status.counters.rx_frames, received_status.time)
        seconds = received.seconds or duration
        # Each peer's counters come with their own read times (memif-ref publishes every
        # 0.2 s): bring the sender's count to the receiver's window before comparing.
        sent_in_window = sent.total
        if sent.seconds and received.seconds:
            sent_in_window = round(sent.total * received.seconds / sent.seconds)
        return TrialOutcome(
            duration, None, sent=sent_in_window, unsent=0, received=received.total,
            seconds=seconds,
        )  # fmt: skip

    def _requested_trial(
        self, sender: Peer, receiver: Peer, duration: float, load: float | None
    ) -> TrialOutcome:
        before = receiver.status()
        received = _track(before, tx=False)
        counts = sender.run_trial(duration, load)  # returns once the receiver drained it
        finished = time.monotonic()
        while True:  # a status read after the trial ended (memif-ref publishes every 0.2 s)
            status = receiver.status()
            if not status.link_up:
                raise PathError("the memif link went down during a trial")
            received.update(status.counters.rx_frames, status.time)
            if status.time is None or status.time >= finished:
                break
            if time.monotonic() > finished + STATUS_WAIT:
                raise PathError(f"the {receiver.kind} receiver published no counters since")
            _poll_for(POLL_SECONDS)
        return TrialOutcome(
            duration,
            load,
            sent=counts.sent,
            unsent=counts.unsent,
            received=received.total,
            seconds=counts.elapsed or duration,
        )


def stop_all(peers: list[Peer]) -> None:
    """Quiesce every peer (nobody polls while one leaves), then stop every one, whatever
    fails on the way; the first failure is raised at the end (a PeerCrashed first)."""
    errors: list[BaseException] = []
    for step in ("quiesce", "stop"):
        for peer in peers:
            try:
                getattr(peer, step)()
            except Exception as exc:
                errors.append(exc)
    if errors:
        crashed = [e for e in errors if isinstance(e, PeerCrashed)]
        raise (crashed or errors)[0]


def stay_off(placement: Placement | None) -> set[int] | None:
    """Move this thread (the harness polling counters, the search) off `placement`'s CPUs,
    when other CPUs are allowed: a Python transmitter near its limit loses what the harness
    takes of its CPU. Only the calling thread moves (threads and processes it starts
    meanwhile inherit the narrower set; peers get their own placement). Returns the
    affinity to restore, or None when nothing changed."""
    if placement is None:
        return None
    before = os.sched_getaffinity(0)
    elsewhere = before - set(placement.cpus)
    if not elsewhere or elsewhere == before:
        return None
    os.sched_setaffinity(0, elsewhere)
    return before


def _track(status: PeerStatus, *, tx: bool) -> CounterTrack:
    value = status.counters.tx_frames if tx else status.counters.rx_frames
    return CounterTrack.start(value, status.time)


def _wait_counting(peer: Peer, timeout: float) -> None:
    """Until the receiver counts frames (traffic flows), bounded."""
    deadline = time.monotonic() + timeout
    while peer.status().counters.rx_frames == 0:
        if time.monotonic() > deadline:
            raise PathError(f"no frame reached the {peer.kind} receiver in {timeout:g} s")
        _poll_for(POLL_SECONDS)


def _poll_for(seconds: float) -> None:
    """The pause between two counter polls (a poll interval, not a wait for a condition)."""
    time.sleep(seconds)


__all__ = ["MemifPath", "PathError", "PeerError", "PeerFactory"]
