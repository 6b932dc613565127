"""What memif-ref does once a link is up: respond, ping, sink and source, each bounded.

Every action stops by itself: after its packet count, its duration, the overall
deadline, or when the link goes down. Actions see only a `LinkDriver` (a link plus a
way to service the control socket), so they work the same for both roles.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Protocol

from reference_impl import frames, stamps, traffic
from reference_impl.link import Link
from reference_impl.ring import PacketBatch

_SERVICE_EVERY = 64  # bursts between control-socket checks while polling
_BUSY_POLL = 0.01  # seconds of busy polling after the last progress before backing off
_IDLE_WAIT = 0.0005  # seconds to wait on the control socket per burst once idle
_WAIT_FOR_CLIENT = 0.01  # seconds per wait while a serving server has no link
_INTERRUPT_WAIT = 0.1  # seconds an interrupt-mode receiver sleeps at most before re-checking
_BURST = 256
_DRAIN_WAIT = 2.0  # seconds a source waits for the peer to consume its last frames


class LinkDriver(Protocol):
    """A connected link and the control-socket pump that keeps it alive."""

    def current_link(self) -> Link | None:
        """The link while it is up, else None."""
        ...

    def service(self, timeout: float) -> None:
        """Handle control messages, waiting up to `timeout` seconds."""
        ...

    def publish(self, facts: dict[str, Any]) -> None:
        """Make the action's facts so far visible (the status file) while it runs."""
        ...


@dataclasses.dataclass(frozen=True)
class Addresses:
    """This side's and the peer's L2/L3 addresses."""

    mac: bytes
    ip: bytes
    peer_ip: bytes


@dataclasses.dataclass
class ActionResult:
    """Outcome of an action: success flag, why it stopped, and action facts."""

    ok: bool
    stopped_by: str  # "count", "duration", "deadline", "link-down"
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)


class _Loop:
    """Shared bounded polling loop: deadline, link liveness, idle back-off."""

    def __init__(self, driver: LinkDriver, deadline: float, *, keep_serving: bool = False) -> None:
        self.driver = driver
        self.deadline = deadline
        self.keep_serving = keep_serving
        self.sessions = 0
        self._last_link: Link | None = None
        self.bursts = 0
        self.stopped_by = ""
        self.last_progress = time.monotonic()

    def link(self, progressed: bool, *, wait: float = 0.0) -> Link | None:
        """The link for the next burst, or None when the loop must stop.

        Polls without pause while traffic flows (a full TX ring counts as flowing: the
        peer drains it within microseconds); only after `_BUSY_POLL` seconds without
        progress does it wait on the control socket, so an idle peer costs little CPU.

        In interrupt mode (the link's RX rings unmasked, fact sheet §6) a pass without
        progress instead sleeps on the RX eventfds and the control socket for up to
        `wait` seconds (at most `_INTERRUPT_WAIT`); the endpoint reads a signalled
        eventfd to clear it and the next pass drains the rings, so a frame published
        after the drain wakes the loop again. `wait=0` (the default) keeps polling: for
        an action that waits for TX ring space, which no interrupt announces, for its
        next send time, or for anything else than the memif RX rings.
        """
        self.bursts += 1
        now = time.monotonic()
        if progressed:
            self.last_progress = now
        last = self._last_link
        if last is not None and not last.polling and not progressed and wait > 0:
            self.driver.service(max(0.0, min(wait, _INTERRUPT_WAIT, self.deadline - now)))
        elif now - self.last_progress > _BUSY_POLL:
            self.driver.service(_IDLE_WAIT)
        elif self.bursts % _SERVICE_EVERY == 0:
            self.driver.service(0.0)
        if time.monotonic() >= self.deadline:
            self.stopped_by = "deadline"
            return None
        link = self.driver.current_link()
        while link is None and self.keep_serving and time.monotonic() < self.deadline:
            self.driver.service(_WAIT_FOR_CLIENT)  # a server takes the next client
            link = self.driver.current_link()
        if link is None:
            self.stopped_by = "deadline" if time.monotonic() >= self.deadline else "link-down"
        elif link is not self._last_link:
            self.sessions += 1
            self._last_link = link
        return link


def respond(
    driver: LinkDriver, addresses: Addresses, deadline: float, *, keep_serving: bool = False
) -> ActionResult:
    """Answer ARP requests for our IP and ICMP echo requests to it, until the deadline.

    With `keep_serving` (a server) a link going down ends nothing: the next client is
    served too; otherwise the action ends with the link.
    """
    loop = _Loop(driver, deadline, keep_serving=keep_serving)
    answered_arp = answered_echo = 0
    progressed = True
    while (link := loop.link(progressed, wait=_INTERRUPT_WAIT)) is not None:
        progressed = False
        for queue in range(len(link.rx)):
            batch = link.receive(queue)
            if not len(batch):
                continue
            progressed = True
            replies, count = frames.echo_replies(batch, addresses.ip)
            answered_echo += count
            if count < len(batch):
                arp = [
                    reply
                    for frame in batch.frames()
                    if (reply := frames.arp_reply(frame, addresses.mac, addresses.ip))
                ]
                answered_arp += len(arp)
                if arp:
                    link.transmit(PacketBatch.from_frames(arp), queue % len(link.tx))
            if count:
                link.transmit(replies, queue % len(link.tx))
    return ActionResult(
        True,
        loop.stopped_by,
        {
            "echo_replies_sent": answered_echo,
            "arp_replies_sent": answered_arp,
            "sessions": loop.sessions,
        },
    )


def ping(
    driver: LinkDriver,
    addresses: Addresses,
    deadline: float,
    *,
    count: int,
    size: int,
    interval: float = 0.01,
    reply_wait: float = 1.0,
) -> ActionResult:
    """Send `count` ICMP echo requests (after resolving the peer by ARP) and count replies."""
    ident = os.getpid() & 0xFFFF
    peer_mac = _resolve(driver, addresses, min(deadline, time.monotonic() + 1.0))
    sent_times: list[float] = []
    rtts: dict[int, float] = {}
    loop = _Loop(driver, deadline)
    progressed = True
    wait = 0.0  # interrupt mode: sleep no longer than until the next request is due
    while (link := loop.link(progressed, wait=wait)) is not None:
        progressed = False
        now = time.monotonic()
        if len(sent_times) < count and (not sent_times or now >= sent_times[-1] + interval):
            request = frames.icmp_echo_request(
                addresses.mac,
                peer_mac,
                addresses.ip,
                addresses.peer_ip,
                ident,
                len(sent_times),
                size,
            )
            if link.transmit(PacketBatch.from_frames([request])):
                sent_times.append(now)
                progressed = True
        for queue in range(len(link.rx)):
            batch = link.receive(queue)
            for frame in batch.frames() if len(batch) else ():
                reply = frames.parse_echo_reply(frame)
                if reply and reply[0] == ident and reply[1] < len(sent_times):
                    rtts.setdefault(reply[1], time.monotonic() - sent_times[reply[1]])
                    progressed = True
        all_sent = len(sent_times) >= count
        if all_sent and (len(rtts) >= count or now > sent_times[-1] + reply_wait):
            loop.stopped_by = "count"
            break
        if sent_times:
            due = sent_times[-1] + (reply_wait if all_sent else interval)
            wait = due - time.monotonic()
    facts: dict[str, Any] = {
        "sent": len(sent_times),
        "replies": len(rtts),
        "peer_mac": frames.format_mac(peer_mac),
    }
    if rtts:
        values = list(rtts.values())
        facts["rtt_ms"] = {
            "min": min(values) * 1e3,
            "avg": sum(values) / len(values) * 1e3,
            "max": max(values) * 1e3,
        }
    return ActionResult(len(rtts) == count, loop.stopped_by, facts)


def _resolve(driver: LinkDriver, addresses: Addresses, deadline: float) -> bytes:
    """ARP for the peer's IP; fall back to broadcast if nobody answers in time."""
    request = frames.arp_request(addresses.mac, addresses.ip, addresses.peer_ip)
    sent = False
    while time.monotonic() < deadline:
        link = driver.current_link()
        if link is None:
            break
        if not sent:
            sent = bool(link.transmit(PacketBatch.from_frames([request])))
        for queue in range(len(link.rx)):
            batch = link.receive(queue)
            for frame in batch.frames() if len(batch) else ():
                parsed = frames.parse_arp(frame)
                if parsed and parsed[0] == 2 and parsed[2] == addresses.peer_ip:
                    return parsed[1]
        driver.service(0.001)
    return frames.BROADCAST_MAC


def sink(
    driver: LinkDriver,
    deadline: float,
    *,
    count: int | None,
    seconds: float | None,
    keep_serving: bool = False,
) -> ActionResult:
    """Count received frames and read their stamps (in place) until a bound is hit.

    Frames carrying a stamp (reference_impl.stamps) give latency and sequence gaps; the
    others are counted only. With `keep_serving` (a server) frames of successive
    clients add up.
    """
    end = min(deadline, time.monotonic() + seconds) if seconds is not None else deadline
    loop = _Loop(driver, end, keep_serving=keep_serving)
    receiver = traffic.StampReceiver()
    progressed = True
    while (link := loop.link(progressed, wait=_INTERRUPT_WAIT)) is not None:
        progressed = False
        for queue in range(len(link.rx)):
            if not link.rx_pending(queue):
                continue  # an idle poll costs one index read
            batch, windows, seen_ns = link.receive_window(
                queue, stamps.STAMP_OFFSET, stamps.STAMP_SIZE
            )
            if len(batch):
                progressed = True
                receiver.add(windows, time.monotonic(), seen_ns)
        if count is not None and receiver.received >= count:
            loop.stopped_by = "count"
            break
    if loop.stopped_by == "deadline" and seconds is not None and end < deadline:
        loop.stopped_by = "duration"
    ok = count is None or receiver.received >= count
    return ActionResult(ok, loop.stopped_by, {**receiver.facts(), "sessions": loop.sessions})


def source(
    driver: LinkDriver,
    addresses: Addresses,
    deadline: float,
    *,
    count: int,
    size: int,
    peer_mac: bytes = frames.BROADCAST_MAC,
    rate: float | None = None,
    seconds: float | None = None,
) -> ActionResult:
    """Transmit `count` stamped UDP frames of `size` bytes, paced at `rate` frames per
    second or as fast as the ring allows, for at most `seconds`.

    Paced, a frame the TX ring has no room for waits (traffic.max_lateness) and is then
    given up; the due frames that did not go are `unsent`. The source ends at the count
    (paced: frames sent or given up), the duration, the deadline or with the link, then
    waits (bounded) until the peer consumed the rest.
    """
    frame = frames.udp_frame(size, addresses.mac, peer_mac, addresses.ip, addresses.peer_ip)
    lateness = traffic.max_lateness(seconds)
    generator = traffic.Generator(frame, count=count, rate=rate, max_lateness=lateness)
    end = min(deadline, time.monotonic() + seconds) if seconds is not None else deadline
    loop = _Loop(driver, end)
    progressed = True
    # a source waits for TX ring space, which no interrupt announces: it polls
    while not generator.done and (link := loop.link(progressed)) is not None:
        now = time.monotonic()
        progressed = generator.step(link, now)
        if rate is not None and not progressed:
            pause = generator.wait(now)
            if pause > traffic.PACE_SLEEP:  # far from the next frame: wait on the control socket
                driver.service(min(pause - traffic.PACE_SLEEP / 2, _IDLE_WAIT))
            progressed = True  # a paced source waiting for its next frame is not idle
    stopped = generator.last_sent if generator.last_sent is not None else time.monotonic()
    drained = _drain(driver, min(deadline, time.monotonic() + _DRAIN_WAIT))
    if generator.done:
        loop.stopped_by = "count"
    elif loop.stopped_by == "deadline" and seconds is not None and end < deadline:
        loop.stopped_by = "duration"
    facts = {**generator.facts(stopped), "drained": drained}
    return ActionResult(loop.stopped_by in ("count", "duration"), loop.stopped_by, facts)


TRIAL_PLAN_POLL = 0.005
"""Seconds between two looks at the trial plan while no trial runs."""


def read_trial_plan(path: Path) -> dict[str, Any] | None:
    """The plan a benchmark wrote ({"id", "rate", "seconds"} or {"stop": true}), if any.

    The harness replaces the file atomically; a missing or half-read file is no plan yet.
    """
    try:
        plan = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return plan if isinstance(plan, dict) else None


def trial_source(
    driver: LinkDriver,
    addresses: Addresses,
    deadline: float,
    *,
    size: int,
    plan_path: Path,
    max_frames: int,
    peer_mac: bytes = frames.BROADCAST_MAC,
) -> ActionResult:
    """Transmit in trials a benchmark asks for one at a time, keeping the link up between.

    The benchmark writes `plan_path` ({"id": N, "rate": fps or null, "seconds": S}); each
    new id starts a trial: stamped frames paced at the rate (or as fast as the ring takes
    them) for S seconds, then a bounded drain; its counts are published in the status file
    under "trial" with the id. {"stop": true}, the deadline or the link's end stop the
    action. A trial never sends more than `max_frames` frames.
    """
    frame = frames.udp_frame(size, addresses.mac, peer_mac, addresses.ip, addresses.peer_ip)
    loop = _Loop(driver, deadline)
    done_id = None
    trials = 0
    while loop.link(True) is not None:
        plan = read_trial_plan(plan_path)
        if plan is not None and plan.get("stop"):
            loop.stopped_by = "stop"
            break
        if plan is None or plan.get("id") in (None, done_id):
            driver.service(TRIAL_PLAN_POLL)
            continue
        rate, seconds = plan.get("rate"), float(plan["seconds"])
        lateness = traffic.max_lateness(seconds)
        generator = traffic.Generator(frame, count=max_frames, rate=rate, max_lateness=lateness)
        traffic.transmit_window(
            generator,
            seconds,
            driver.current_link,
            lambda pause: driver.service(min(pause, _IDLE_WAIT)),
            deadline=deadline,
        )
        stopped = generator.last_sent if generator.last_sent is not None else time.monotonic()
        drained = _drain(driver, min(deadline, time.monotonic() + _DRAIN_WAIT))
        done_id = plan["id"]
        trials += 1
        driver.publish({"trial": {"id": done_id, **generator.facts(stopped), "drained": drained}})
    return ActionResult(loop.stopped_by == "stop", loop.stopped_by, {"trials": trials})


def _drain(driver: LinkDriver, until: float) -> bool | None:
    """Wait (bounded) until the peer consumed everything we put on our TX rings.

    Disconnecting with frames still on the ring makes the peer unmap memory its
    datapath may be reading; giving it the time to finish is what a careful sender does.

    Returns:
        True once nothing is in flight, False at the time limit, None if the peer
        closed the link first (it may well have read everything: we cannot look).
    """
    while time.monotonic() < until:
        link = driver.current_link()
        if link is None:
            return None
        if link.tx_in_flight() == 0:
            return True
        driver.service(0.0005)
    return False


def forward(driver: LinkDriver, deadline: float, *, keep_serving: bool = False) -> ActionResult:
    """Send every received frame back, unchanged, on the queue it came from.

    Frames the TX ring cannot take yet wait (in order) for the next burst; the action ends
    at the deadline or, without `keep_serving`, with the link.
    """
    loop = _Loop(driver, deadline, keep_serving=keep_serving)
    waiting: dict[int, list[bytes]] = {}
    forwarded = 0
    progressed = True
    while (link := loop.link(progressed, wait=0.0 if waiting else _INTERRUPT_WAIT)) is not None:
        progressed = False
        for queue in range(len(link.rx)):
            tx_queue = queue % len(link.tx)
            pending = waiting.pop(tx_queue, [])
            if pending:
                went = link.transmit(PacketBatch.from_frames(pending), tx_queue)
                forwarded += went
                progressed = progressed or went > 0
                if went < len(pending):
                    waiting[tx_queue] = pending[went:]
                    continue
            batch = link.receive(queue)
            if not len(batch):
                continue
            progressed = True
            went = link.transmit(batch, tx_queue)
            forwarded += went
            if went < len(batch):
                waiting[tx_queue] = batch.frames()[went:]
    return ActionResult(True, loop.stopped_by, {"forwarded": forwarded, "sessions": loop.sessions})


@dataclasses.dataclass
class _CheckTally:
    """What came back of the numbered frames a check sent."""

    sent: int = 0
    matched: int = 0
    mismatched: int = 0
    foreign: int = 0
    first_mismatch: dict[str, Any] | None = None

    def facts(self, count: int, done: bool) -> dict[str, Any]:
        returned = self.matched + self.mismatched
        return {
            "count": count,
            "sent": self.sent,
            "matched": self.matched,
            "mismatched": self.mismatched,
            "missing": self.sent - returned if done else None,
            "foreign": self.foreign,
            "first_mismatch": self.first_mismatch,
            "done": done,
        }


def check(
    driver: LinkDriver,
    addresses: Addresses,
    deadline: float,
    *,
    count: int,
    sizes: tuple[int, ...],
    window: int,
    stall: float = 2.0,
    hold: bool = True,
) -> ActionResult:
    """Send `count` numbered frames (sizes cycling through `sizes`) and check each one
    comes back byte for byte (after the MACs, which a forwarder may swap).

    First a probe frame is sent every `_PROBE_INTERVAL` until one comes back: a forwarder
    may discard what arrives before it forwards (testpmd flushes its RX queues at
    `start`), and a frame lost that way is no fault of the datapath.
    At most `window` frames are in flight. The check ends when every frame came back,
    when nothing came back for `stall` seconds, at the deadline, or with the link. With
    `hold` the link is then kept up, idle, until the deadline (the peer decides when the
    session ends: a DPDK 22.11 peer may crash when its peer leaves while it forwards).
    """
    tally = _CheckTally()
    expected: dict[int, bytes] = {}
    if not _probe(driver, addresses, deadline):
        facts = {**tally.facts(count, done=True), "probe": "no probe frame came back"}
        driver.publish({"check": facts})
        return ActionResult(
            False, "link-down" if driver.current_link() is None else "deadline", facts
        )
    loop = _Loop(driver, deadline)
    progressed = True
    last_return = time.monotonic()
    tx_full = False  # frames to send but no TX space: poll (no interrupt announces space)
    while (link := loop.link(progressed, wait=0.0 if tx_full else _INTERRUPT_WAIT)) is not None:
        progressed = False
        room = min(window - len(expected), count - tally.sent, _BURST)
        tx_full = False
        if room > 0:
            batch = [
                frames.check_frame(
                    tally.sent + i,
                    sizes[(tally.sent + i) % len(sizes)],
                    addresses.mac,
                    frames.BROADCAST_MAC,
                )
                for i in range(room)
            ]
            went = link.transmit(PacketBatch.from_frames(batch))
            for i in range(went):
                expected[tally.sent + i] = batch[i]
            tally.sent += went
            progressed = went > 0
            tx_full = went < room
        for queue in range(len(link.rx)):
            received = link.receive(queue)
            for frame in received.frames() if len(received) else ():
                progressed = True
                last_return = time.monotonic()
                _tally_return(tally, expected, frame)
        if tally.sent >= count and not expected:
            loop.stopped_by = "count"
            break
        if time.monotonic() - last_return > stall and expected:
            loop.stopped_by = "stall"
            break
        if loop.bursts % _SERVICE_EVERY == 0:
            driver.publish({"check": tally.facts(count, done=False)})
    facts = tally.facts(count, done=True)
    driver.publish({"check": facts})
    ok = tally.matched == count
    stopped_by = loop.stopped_by
    if hold and loop.stopped_by in ("count", "stall"):
        while driver.current_link() is not None and time.monotonic() < deadline:
            driver.service(0.05)
    return ActionResult(ok, stopped_by, facts)


_PROBE_SEQUENCE = 0xFFFFFFFF  # never a sequence number of the check itself
_PROBE_INTERVAL = 0.05


def _probe(driver: LinkDriver, addresses: Addresses, deadline: float) -> bool:
    """Send a probe frame now and then until one comes back; False at the deadline."""
    probe = frames.check_frame(_PROBE_SEQUENCE, 64, addresses.mac, frames.BROADCAST_MAC)
    next_send = 0.0
    while time.monotonic() < deadline:
        link = driver.current_link()
        if link is None:
            return False
        if time.monotonic() >= next_send:
            link.transmit(PacketBatch.from_frames([probe]))
            next_send = time.monotonic() + _PROBE_INTERVAL
        for queue in range(len(link.rx)):
            batch = link.receive(queue)
            for frame in batch.frames() if len(batch) else ():
                header = frames.parse_check_header(frame)
                if header is not None and header[0] == _PROBE_SEQUENCE:
                    return True
        driver.service(0.001)
    return False


def _tally_return(tally: _CheckTally, expected: dict[int, bytes], frame: bytes) -> None:
    header = frames.parse_check_header(frame)
    if header is not None and header[0] == _PROBE_SEQUENCE:
        return  # a late answer to the probe
    sent = expected.pop(header[0], None) if header is not None else None
    if sent is None:
        tally.foreign += 1
        return
    difference = frames.first_difference(frame, sent)
    if difference is None:
        tally.matched += 1
        return
    tally.mismatched += 1
    if tally.first_mismatch is None:
        tally.first_mismatch = {
            "sequence": header[0] if header else None,
            "sent_bytes": len(sent),
            "returned_bytes": len(frame),
            "first_different_byte": difference,
        }


__all__ = [
    "ActionResult",
    "Addresses",
    "LinkDriver",
    "check",
    "forward",
    "ping",
    "respond",
    "sink",
    "source",
]
