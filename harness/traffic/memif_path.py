"""The memif-only topology: peer A transmits on memif, peer B counts what arrives.

Full-load trials (MRR) keep both peers running and read their counters over a window;
a paced trial (NDR/PDR) starts a fresh paced transmitter for each trial, bounded in
seconds, against a receiver that keeps running. Counters are polled often and followed
across resets (testpmd zeroes them when a link goes down). The transmitter is the
"generator" here: it is also part of what is measured, so the result says when it, not
the receiver, set the rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from harness.peers.base import Activity, MemifSpec, Peer, PeerError, PeerStatus, Role
from harness.peers.reference import ReferencePeer
from harness.topology.numa import Placement
from harness.traffic.bench_point import Direction
from harness.traffic.counting import CounterTrack
from harness.traffic.trial import TrialOutcome

PeerFactory = Callable[[str, MemifSpec, Placement | None], Peer]
"""(peer kind, spec, placement) -> an unstarted peer, stopped by whoever made it."""

LINK_TIMEOUT = 30.0
WARMUP_SECONDS = 0.5
POLL_SECONDS = 0.05
TRIAL_GRACE = 20.0
"""Seconds a paced trial may take beyond its duration (connect, drain) before it fails."""


class PathError(RuntimeError):
    """The topology could not be brought up or a trial could not be measured."""


class MemifPath:
    """A (server, client) pair on one memif link, one side transmitting.

    Use as a context manager; `trial(duration, load)` measures. `load=None` is full load.
    """

    def __init__(
        self,
        make_peer: PeerFactory,
        *,
        server_kind: str,
        client_kind: str,
        direction: Direction,
        frame_size: int,
        zero_copy: bool,
        socket_path: str,
        placements: dict[Role, Placement | None],
        paced: bool,
    ) -> None:
        """Prepare; nothing starts before `__enter__`.

        Args:
            make_peer: builds peers (the scenario API gives one that records them).
            server_kind: the server's peer kind.
            client_kind: the client's peer kind.
            direction: c2s: the client transmits; s2c: the server does.
            frame_size: bytes per frame.
            zero_copy: the client runs zero-copy.
            socket_path: the memif socket.
            placements: CPU/memory placement per role.
            paced: trials at a load (NDR/PDR): the transmitter is started per trial.
        """
        self.make_peer = make_peer
        self.kinds = {Role.SERVER: server_kind, Role.CLIENT: client_kind}
        self.sender_role = Role.CLIENT if direction is Direction.C2S else Role.SERVER
        self.receiver_role = Role.SERVER if direction is Direction.C2S else Role.CLIENT
        self.frame_size = frame_size
        self.zero_copy = zero_copy
        self.socket_path = socket_path
        self.placements = placements
        self.paced = paced
        self.receiver: Peer | None = None
        self.sender: Peer | None = None
        self._warm = False

    # ------------------------------------------------------------------ set-up

    def pacing_refusal(self) -> str | None:
        """Why paced trials are impossible with these peers (None: they are possible)."""
        if self.kinds[self.sender_role] != "reference":
            return (
                f"the transmitter ({self.kinds[self.sender_role]} {self.sender_role.value}) "
                "cannot pace its rate; NDR/PDR on the memif topology needs the reference "
                "as transmitter, or --topology nic"
            )
        if self.sender_role is Role.SERVER:
            return (
                "a paced trial restarts the transmitter; a transmitting server would make the "
                "client reconnect every trial: use direction c2s or --topology nic"
            )
        return None

    def _spec(self, role: Role, **fields: Any) -> MemifSpec:
        return MemifSpec(
            role=role,
            socket_path=self.socket_path,
            zero_copy=self.zero_copy and role is Role.CLIENT,
            frame_size=self.frame_size,
            **fields,
        )

    def _start(self, role: Role, spec: MemifSpec) -> Peer:
        peer = self.make_peer(self.kinds[role], spec, self.placements.get(role))
        peer.start()
        return peer

    def __enter__(self) -> MemifPath:
        receiver_spec = self._spec(self.receiver_role, activity=Activity.SINK)
        if self.paced:
            refusal = self.pacing_refusal()
            if refusal is not None:
                raise PathError(refusal)
            self.receiver = self._start(self.receiver_role, receiver_spec)
            return self
        sender_spec = self._spec(self.sender_role, activity=Activity.SOURCE)
        first, second = (
            (receiver_spec, sender_spec)
            if self.receiver_role is Role.SERVER
            else (sender_spec, receiver_spec)
        )
        started = [self._start(first.role, first), self._start(second.role, second)]
        by_role = {peer.spec.role: peer for peer in started}
        self.receiver, self.sender = by_role[self.receiver_role], by_role[self.sender_role]
        for peer in started:
            if not peer.wait_for_link(LINK_TIMEOUT):
                raise PathError(
                    f"{peer.kind} {peer.spec.role.value}: no link in {LINK_TIMEOUT:g} s"
                )
        return self

    def __exit__(self, *exc_info: object) -> None:
        for peer in (self.sender, self.receiver):
            if peer is not None:
                peer.quiesce()
        for peer in (self.sender, self.receiver):
            if peer is not None:
                peer.stop()

    # ------------------------------------------------------------------ trials

    def trial(self, duration: float, load: float | None) -> TrialOutcome:
        """Measure one trial of `duration` seconds at `load` frames/s (None: full load)."""
        if load is None:
            return self._full_load_trial(duration)
        return self._paced_trial(duration, load)

    def _full_load_trial(self, duration: float) -> TrialOutcome:
        if self.sender is None or self.receiver is None:
            raise PathError("full-load trials need the path entered without pacing")
        if not self._warm:
            _wait_counting(self.receiver, WARMUP_SECONDS + 10.0)
            _poll_for(WARMUP_SECONDS)
            self._warm = True
        sent = _track(self.sender.status(), tx=True)
        received = _track(self.receiver.status(), tx=False)
        end = time.monotonic() + duration
        while time.monotonic() < end:
            _poll_for(min(POLL_SECONDS, max(end - time.monotonic(), 0.0)))
            sent_status, received_status = self.sender.status(), self.receiver.status()
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

    def _paced_trial(self, duration: float, load: float) -> TrialOutcome:
        if self.receiver is None:
            raise PathError("enter the path first")
        received = _track(self.receiver.status(), tx=False)
        spec = self._spec(self.sender_role, activity=Activity.SOURCE, rate=load, seconds=duration)
        sender = self._start(self.sender_role, spec)
        if not isinstance(sender, ReferencePeer):
            sender.stop()
            raise PathError(f"{sender.kind} cannot run a paced trial")
        try:
            deadline = time.monotonic() + duration + TRIAL_GRACE
            while not sender.wait_finished(POLL_SECONDS):
                status = self.receiver.status()
                received.update(status.counters.rx_frames, status.time)
                if time.monotonic() > deadline:
                    raise PathError(f"a paced trial of {duration:g} s did not end in time")
            status = self.receiver.status()
            received.update(status.counters.rx_frames, status.time)
            facts = sender.final_facts() or {}
        finally:
            sender.stop()
        result = facts.get("result") or {}
        if "sent" not in result:
            raise PathError(f"the paced transmitter reported no counts: {facts or sender.logs()}")
        return TrialOutcome(
            duration,
            load,
            sent=int(result["sent"]),
            unsent=int(result.get("unsent", 0)),
            received=received.total,
            seconds=float(result.get("elapsed") or duration),
            latency=None,
        )

    def receiver_facts(self) -> dict[str, Any] | None:
        """What a reference receiver reported at exit (latency...), after `__exit__`."""
        if isinstance(self.receiver, ReferencePeer):
            return self.receiver.final_facts()
        return None


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
