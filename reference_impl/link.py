"""The data plane of one connected memif interface: queues, cursors and counters.

A `Link` is built once the handshake is done, from the mapped regions and ring views;
it knows which rings it transmits on and receives from for its role, keeps its private
cursors, publishes indices, and signals the peer when the peer has not masked interrupts.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from reference_impl import fastpath
from reference_impl import ring as rings
from reference_impl.faults import Fault
from reference_impl.memory import Region, drain_eventfd, signal_eventfd
from reference_impl.protocol import Role
from reference_impl.ring import OwnedBuffers, PacketBatch, RingError, RingView
from reference_impl.wire import RingFlag

_INDEX_MASK = 0xFFFF


@dataclasses.dataclass
class Counters:
    """Traffic counters of one interface (all queues)."""

    rx_frames: int = 0
    rx_bytes: int = 0
    rx_chained: int = 0
    rx_errors: int = 0
    tx_frames: int = 0
    tx_bytes: int = 0
    tx_chained: int = 0
    tx_errors: int = 0
    rx_open_chains: int = 0  # times the peer published an index inside a chain (§5.5)
    ring_errors: int = 0  # rings the peer corrupted (index moved back or too far, endless
    # chain, bad buffer posted to fill): each stops the link, which then disconnects
    rx_interrupts: int = 0  # interrupts the peer raised on our RX eventfds, read to clear (§6)
    tx_interrupts: int = 0  # eventfd signals we sent (only while the peer's MASK_INT is clear)

    def as_dict(self) -> dict[str, int]:
        """Plain dict for JSON."""
        return dataclasses.asdict(self)


class FrameRecorder(Protocol):
    """Takes every burst a link transmitted or received (a pcap writer, for one)."""

    @property
    def needs_bytes(self) -> bool:
        """Whether received bursts must carry their bytes (False: lengths will do)."""
        ...

    def record(self, batch: PacketBatch) -> None:
        """Keep the frames of one burst (their bytes are only valid during the call)."""
        ...


@dataclasses.dataclass
class QueueRing:
    """One ring with the eventfd and the private cursor this side keeps for it."""

    view: RingView
    eventfd: int
    cursor: int = 0  # next slot to produce into (TX) or consume from (RX)
    peer_seen: int = 0  # the peer's index (head or tail) when we last read it (§5.1)


class Link:
    """Transmit and receive on a connected interface, either role."""

    def __init__(
        self,
        role: Role,
        regions: Sequence[Region],
        tx: Sequence[QueueRing],
        rx: Sequence[QueueRing],
        *,
        buffer_size: int,
        tx_owned: Sequence[OwnedBuffers] = (),
        rx_refill: Sequence[OwnedBuffers] = (),
        max_frame: int | None = None,
        polling: bool = True,
        faults: frozenset[Fault] = frozenset(),
        zero_copy: bool = False,
    ) -> None:
        """Take ownership of mapped regions and ring views.

        Args:
            role: CLIENT transmits on C2S and receives on S2C; SERVER the reverse.
            regions: every region, by index.
            tx: rings this side produces into, by queue.
            rx: rings this side consumes from, by queue.
            buffer_size: the client's buffer size (capacity of its own TX slots).
            tx_owned: client only: per TX queue, its own buffers (written directly).
            rx_refill: client only: per RX queue, its own buffers to post again.
            max_frame: drop received frames longer than this (Ethernet: 9216).
            polling: set MASK_INT on the RX rings (we poll; don't signal us); False
                clears it (interrupt mode: the peer signals each RX ring's eventfd).
            faults: deliberate misbehaviour (test-only; reference_impl.faults).
            zero_copy: client only: `receive` takes frames in place (`receive_in_place`)
                and gives their buffers back to the server only on the next receive.
        """
        self.role = role
        self.regions = list(regions)
        self.tx = list(tx)
        self.rx = list(rx)
        self.buffer_size = buffer_size
        self._tx_owned = list(tx_owned)
        self._refill = list(rx_refill)
        self.zero_copy = zero_copy and role is Role.CLIENT
        self._held = [0] * len(rx)  # zero-copy: S2C slots the application still reads
        self.max_frame = max_frame
        self.counters = Counters()
        self.error: str | None = None
        self.faults = faults
        self._open_chain_at: list[int | None] = [None] * len(self.rx)
        self._copy_images: dict[tuple[int, int], npt.NDArray[np.uint64]] = {}
        self._rx_seen_ns = 0  # when the last receive read the peer's index
        self.recorder: FrameRecorder | None = None
        """Gets every burst sent and received, in order (None: nothing is recorded)."""
        self.polling = polling
        """Whether we poll our RX rings (MASK_INT set) or wait for interrupts (clear)."""
        self.set_polling(polling)
        for queue in self.tx:
            queue.cursor = queue.view.head if role is Role.CLIENT else queue.view.tail
        for queue in self.rx:
            queue.cursor = queue.view.tail
        for queue in (*self.tx, *self.rx):
            queue.peer_seen = queue.cursor
        if role is Role.CLIENT:
            for index in range(len(self.rx)):
                self._post_free(index)

    # ------------------------------------------------------------------ transmit

    def tx_space(self, queue: int = 0) -> int:
        """Free slots this side may fill on TX `queue` right now."""
        q = self.tx[queue]
        if self.role is Role.CLIENT:  # the server's tail: up to our head, never back
            tail = self._peer_index(q, q.cursor, queue, rx=False)
            return q.view.size - ((q.cursor - tail) & _INDEX_MASK)
        # the client's head: the buffers it posted, at most a ring past our tail
        head = self._peer_index(q, q.cursor + q.view.size, queue, rx=False)
        return (head - q.cursor) & _INDEX_MASK

    def _peer_index(self, q: QueueRing, limit: int, queue: int, *, rx: bool) -> int:
        """The peer's index on ring `q` (the client's head, the server's tail), checked.

        It only moves forward (§5.1), from where we last saw it up to `limit`, what we
        made available to it (our head for a C2S tail, the buffers we posted for an S2C
        tail, a ring past our tail for a head): a scalar check, once per burst.

        Raises:
            RingError: the index moved backwards or past `limit`.
        """
        index = q.view.head if self.role is Role.SERVER else q.view.tail
        seen = q.peer_seen
        ahead = (index - seen) & _INDEX_MASK
        allowed = (limit - seen) & _INDEX_MASK
        if ahead > allowed:
            name = self._index_name(queue, rx=rx)
            if (seen - index) & _INDEX_MASK < ahead:
                raise RingError(f"{name} moved backwards from {seen} to {index}")
            raise RingError(
                f"{name} moved {ahead} slots from {seen}, {allowed} at most on a "
                f"ring of {q.view.size}"
            )
        q.peer_seen = index
        return index

    def _rx_end(self, queue: int) -> int:
        """The peer's checked index on RX `queue`; on a violation the link stops and our
        own cursor comes back (nothing to take)."""
        q = self.rx[queue]
        limit = q.cursor + q.view.size - self._held[queue]  # the buffers we posted (client)
        try:
            return self._peer_index(q, limit, queue, rx=True)
        except RingError as exc:
            self._stop(exc, rx=True)
            return q.cursor

    def _index_name(self, queue: int, *, rx: bool) -> str:
        """The peer's index of a ring, by name: "C2S ring 0: head" for a server's RX."""
        kind = "C2S" if rx == (self.role is Role.SERVER) else "S2C"
        return f"{kind} ring {queue}: {'head' if self.role is Role.SERVER else 'tail'}"

    def _stop(self, exc: RingError, *, rx: bool) -> None:
        """The peer corrupted a ring: count it and stop the link (the endpoint then sends
        DISCONNECT with `error` as the reason)."""
        if rx:
            self.counters.rx_errors += 1
        else:
            self.counters.tx_errors += 1
        self.counters.ring_errors += 1
        self.error = str(exc)

    def tx_in_flight(self) -> int:
        """Slots filled on our TX rings that the peer has not consumed yet (all queues)."""
        if self.error is not None:
            return 0
        if self.role is Role.CLIENT:
            return sum((q.cursor - q.view.tail) & _INDEX_MASK for q in self.tx)
        # Server TX: filled slots are the client's until it moves head past them again;
        # the server cannot see consumption, so nothing is pending from its side.
        return 0

    def transmit(self, batch: PacketBatch, queue: int = 0) -> int:
        """Send as many whole frames of `batch` as fit; returns how many went.

        A ring the peer corrupted stops the link: `error` is set (the endpoint then
        disconnects with it as the reason) and nothing more is sent.
        """
        if self.error is not None:
            return 0
        if len(batch) and not batch.lengths.min() > 0:
            raise ValueError("cannot transmit a zero-length frame")
        try:
            return self._transmit(batch, queue)
        except RingError as exc:
            self._stop(exc, rx=False)
            return 0

    def _transmit(self, batch: PacketBatch, queue: int) -> int:
        q = self.tx[queue]
        if Fault.SPLIT_CHAIN in self.faults:
            self._publish(q)  # the rest of a chain held back by the last call
        space = self.tx_space(queue)
        if space == 0 or not len(batch):
            return 0
        if self.role is Role.CLIENT:
            capacity = self.buffer_size
        else:
            window = (q.cursor + np.arange(space)) & q.view.mask
            capacity = int(q.view.length_column[window].min())
            if capacity == 0:
                raise RingError("client posted a buffer of length 0 on an S2C ring")
        owned = self._tx_owned[queue] if self._tx_owned else None
        sent, used = rings.produce(
            q.view,
            self.regions,
            q.cursor,
            space,
            batch,
            capacity,
            owned=owned,
            stale_next=Fault.STALE_NEXT in self.faults,
        )
        if not sent:
            return 0
        held = Fault.SPLIT_CHAIN in self.faults and self._publish_inside_first_chain(
            q, batch.lengths[:sent], capacity
        )
        q.cursor = (q.cursor + used) & _INDEX_MASK
        if not held:
            self._publish(q)
        self._signal(q)
        lengths = batch.lengths[:sent]
        self.counters.tx_frames += sent
        self.counters.tx_bytes += int(lengths.sum())
        self.counters.tx_chained += int(np.count_nonzero(lengths > capacity))
        if self.recorder is not None:
            self.recorder.record(batch if sent == len(batch) else batch.head(sent))
        return sent

    def transmit_copies(
        self,
        template: npt.NDArray[np.uint8],
        count: int,
        queue: int = 0,
        *,
        fill: fastpath.FrameFill | None = None,
    ) -> int:
        """Send up to `count` copies of one frame (as many as fit); returns how many went.

        The same outcome as `transmit` of a batch of these frames (each is written into
        its own memif buffer), in a few numpy operations: one broadcast copy of
        `template` per run of slots. `fill(rows, index)` then writes per-frame fields
        (a sequence number) into the (n, len) rows of the frames about to be published;
        `index` is the position of the run's first frame in this call.
        """
        if self.error is not None or count <= 0:
            return 0
        if not template.size:
            raise ValueError("cannot transmit a zero-length frame")
        if self.faults or self.recorder is not None:
            # Built copies: never more than the ring can take (count may be a huge bound).
            try:
                room = min(count, self.tx_space(queue))
            except RingError as exc:
                self._stop(exc, rx=False)
                return 0
            return self._transmit_built(template, room, queue, fill) if room else 0
        q = self.tx[queue]
        owned = self._tx_owned[queue] if self._tx_owned else None
        length = int(template.size)
        try:
            sent = min(count, self.tx_space(queue))
            if sent == 0:
                return 0
            image = self._copy_image(queue, length) if owned is not None else None
            done = fastpath.produce_copies(
                q.view, self.regions, q.cursor, sent, template, owned=owned, image=image, fill=fill
            )
        except RingError as exc:
            self._stop(exc, rx=False)
            return 0
        if done is None:
            return self._transmit_built(template, sent, queue, fill)
        q.cursor = (q.cursor + sent) & _INDEX_MASK
        self._publish(q)
        self._signal(q)
        self.counters.tx_frames += sent
        self.counters.tx_bytes += sent * length
        return sent

    def _copy_image(self, queue: int, length: int) -> npt.NDArray[np.uint64]:
        """The descriptor table of our TX `queue` for frames of `length` (client, cached)."""
        image = self._copy_images.get((queue, length))
        if image is None:
            image = fastpath.own_descriptor_image(self._tx_owned[queue], length)
            self._copy_images[(queue, length)] = image
        return image

    def _transmit_built(
        self,
        template: npt.NDArray[np.uint8],
        count: int,
        queue: int,
        fill: fastpath.FrameFill | None,
    ) -> int:
        """`transmit_copies` through `transmit`: the copies built in a batch first."""
        rows = np.tile(template, (count, 1))
        if fill is not None:
            fill(rows, 0)
        lengths = np.full(count, template.size, dtype=np.int64)
        return self.transmit(PacketBatch(rows.reshape(-1), lengths), queue)

    def _signal(self, q: QueueRing) -> None:
        """Wake the receiver of a TX ring, unless it masked interrupts (it owns the flag, §6)."""
        if not q.view.interrupts_masked:
            signal_eventfd(q.eventfd)
            self.counters.tx_interrupts += 1

    def _publish(self, q: QueueRing) -> None:
        """Make every slot up to our cursor the peer's (client: head, server: tail)."""
        if self.role is Role.CLIENT:
            q.view.head = q.cursor
        else:
            q.view.tail = q.cursor

    def _publish_inside_first_chain(
        self, q: QueueRing, lengths: npt.NDArray[np.int64], capacity: int
    ) -> bool:
        """Fault.SPLIT_CHAIN: publish an index just after the first fragment of a chain and
        hold the rest back until the next transmit; False (nothing held) without a chain."""
        fragments = -(-lengths // capacity)
        chains = np.flatnonzero(fragments > 1)
        if not chains.size:
            return False
        inside = (q.cursor + int(fragments[: chains[0]].sum()) + 1) & _INDEX_MASK
        if self.role is Role.CLIENT:
            q.view.head = inside
        else:
            q.view.tail = inside
        return True

    # ------------------------------------------------------------------ receive

    def receive(self, queue: int = 0, *, copy: bool = True) -> PacketBatch:
        """Take every complete frame waiting on RX `queue`.

        With `copy=False` only lengths and segment counts are returned (counting sinks),
        unless a `recorder` needs the bytes. A ring the peer corrupted stops the link, as
        in `transmit`.
        """
        return self._receive(queue, copy, None)[0]

    def rx_pending(self, queue: int = 0) -> int:
        """Slots the peer filled on RX `queue` that we have not taken yet: one index read,
        nothing checked or taken (`receive` checks). A poll that finds 0 can skip it."""
        if self.error is not None:
            return 0
        q = self.rx[queue]
        index = q.view.head if self.role is Role.SERVER else q.view.tail
        return (index - q.cursor) & _INDEX_MASK

    def receive_window(
        self, queue: int, offset: int, width: int
    ) -> tuple[PacketBatch, npt.NDArray[np.uint8], int]:
        """`receive(copy=False)` plus the `width` bytes at `offset` of every frame, and when
        the peer's index was read (time.monotonic_ns): when these frames were seen.

        The bytes (an (n, width) array, zeros for frames shorter than offset + width) are
        read in place through a strided view of the buffers: a sink reads a payload
        stamp without copying frames out.
        """
        batch, window = self._receive(queue, False, (offset, width))
        if window is None:
            window = fastpath.frame_windows(batch, offset, width)
        return batch, window, self._rx_seen_ns

    def _receive(
        self, queue: int, copy: bool, window: tuple[int, int] | None
    ) -> tuple[PacketBatch, npt.NDArray[np.uint8] | None]:
        if self.error is not None:
            return PacketBatch.empty(), None
        if self.zero_copy:
            got = self.receive_in_place(queue).batch(copy or window is not None)
            self._rx_seen_ns = time.monotonic_ns()
            return got, None
        recorder = self.recorder
        q = self.rx[queue]
        end = self._rx_end(queue)
        self._rx_seen_ns = time.monotonic_ns()  # every frame taken was published by now
        if end == q.cursor:
            return PacketBatch.empty(), None  # nothing new (an idle poll: no numpy work)
        want_bytes = copy or (recorder is not None and recorder.needs_bytes)
        owned = self._refill[queue] if self._refill else None
        windows = None
        try:
            fast = fastpath.consume_unchained(
                q.view,
                self.regions,
                q.cursor,
                end,
                copy=want_bytes,
                max_frame=self.max_frame,
                owned=owned,
                window=window,
            )
            if fast is not None:
                result, windows = fast
            else:
                result = rings.consume(
                    q.view,
                    self.regions,
                    q.cursor,
                    end,
                    copy=want_bytes or window is not None,
                    max_frame=self.max_frame,
                    owned=owned,
                )
        except RingError as exc:
            self._stop(exc, rx=True)
            return PacketBatch.empty(), None
        if result.slots:
            q.cursor = (q.cursor + result.slots) & _INDEX_MASK
            if self.role is Role.CLIENT:
                self._post_free(queue)
            else:
                q.view.tail = q.cursor
        batch = result.batch
        self.counters.rx_errors += result.errors
        if result.open_chain and self._open_chain_at[queue] != end:
            self._open_chain_at[queue] = end  # count each published index once
            self.counters.rx_open_chains += 1
        if len(batch):
            self.counters.rx_frames += len(batch)
            self.counters.rx_bytes += int(batch.lengths.sum())
            assert batch.segments is not None
            if fast is None:  # the fast path takes unchained frames only
                self.counters.rx_chained += int(np.count_nonzero(batch.segments > 1))
            if recorder is not None:
                recorder.record(batch)
        return batch, windows

    # ------------------------------------------------------------------ zero-copy (client)
    #
    # "Zero-copy" for this pure-Python client: the application writes frames straight into
    # the client's buffers in shared memory (region 1 with --zero-copy) and reads received
    # frames there, through numpy views; no intermediate buffer. Each slot keeps its own
    # buffer (the libmemif-like layout of fact sheet §4.4), so views are plain rows.

    def tx_buffers(self, count: int, queue: int = 0) -> npt.NDArray[np.uint8]:
        """Client: writable rows (n, buffer size) of the buffers of the next free C2S slots.

        At most `count` rows; fewer when the ring is fuller or its end comes first (call
        again after `publish` for the rest). Fill rows in place, then `publish` them.
        """
        if self.role is not Role.CLIENT or not self._tx_owned:
            raise RingError("only a client transmits from its own buffers")
        q = self.tx[queue]
        try:
            space = self.tx_space(queue) if self.error is None else 0
        except RingError as exc:  # the server corrupted the ring: stop, as transmit does
            self._stop(exc, rx=False)
            space = 0
        return rings.own_rows(self._tx_owned[queue], q.view, q.cursor, min(count, space))

    def publish(self, lengths: npt.ArrayLike, queue: int = 0) -> int:
        """Client: send the first len(lengths) rows `tx_buffers` gave, frames of these lengths.

        Returns:
            Frames published (all of them).

        Raises:
            ValueError: a length is not 1..buffer size, or more rows than were free.
        """
        if self.role is not Role.CLIENT or not self._tx_owned:
            raise RingError("only a client transmits from its own buffers")
        sizes = np.asarray(lengths, dtype=np.int64).reshape(-1)
        q = self.tx[queue]
        if sizes.size == 0 or self.error is not None:
            return 0
        if int(sizes.min()) <= 0 or int(sizes.max()) > self.buffer_size:
            raise ValueError(f"frame lengths must be 1..{self.buffer_size} in one buffer")
        owned = self._tx_owned[queue]
        free = rings.own_rows(owned, q.view, q.cursor, self.tx_space(queue)).shape[0]
        if sizes.size > free:
            raise ValueError(f"{sizes.size} frames published, {free} buffers were free")
        rings.describe_filled(q.view, owned, q.cursor, sizes, np.zeros(sizes.size, np.uint16))
        if self.recorder is not None:
            first = q.cursor & q.view.mask
            rows = owned.rows[first : first + sizes.size] if owned.rows is not None else None
            if rows is not None:
                data = rows[np.arange(rows.shape[1]) < sizes[:, None]]
                self.recorder.record(PacketBatch(data, sizes))
        q.cursor = (q.cursor + int(sizes.size)) & _INDEX_MASK
        self._publish(q)
        self._signal(q)
        self.counters.tx_frames += int(sizes.size)
        self.counters.tx_bytes += int(sizes.sum())
        return int(sizes.size)

    def receive_in_place(self, queue: int = 0) -> rings.ReceivedInPlace:
        """Client: every complete frame waiting on S2C `queue`, as views into our buffers.

        The buffers of the previous call go back to the server first (so its views end
        here); these stay ours until the next receive or `release_received`.
        """
        if self.role is not Role.CLIENT or not self._refill:
            raise RingError("only a client receives into its own buffers")
        q = self.rx[queue]
        # checked against the buffers posted before the held ones go back
        end = self._rx_end(queue) if self.error is None else q.cursor
        self.release_received(queue)
        try:
            got = rings.consume_in_place(q.view, self._refill[queue], q.cursor, end, self.max_frame)
        except RingError as exc:
            self._stop(exc, rx=True)
            got = rings.consume_in_place(q.view, self._refill[queue], 0, 0)
        if got.slots:
            q.cursor = (q.cursor + got.slots) & _INDEX_MASK
            self._held[queue] = got.slots
        elif (end - q.cursor) & _INDEX_MASK and self._open_chain_at[queue] != end:
            self._open_chain_at[queue] = end  # count each published index once
            self.counters.rx_open_chains += 1
        self.counters.rx_errors += got.errors
        if len(got):
            self.counters.rx_frames += len(got)
            self.counters.rx_bytes += int(got.lengths.sum())
            self.counters.rx_chained += int(np.count_nonzero(got.segments > 1))
            if self.recorder is not None:
                self.recorder.record(got.batch(self.recorder.needs_bytes))
        return got

    def release_received(self, queue: int = 0) -> None:
        """Client zero-copy: give the buffers of the last `receive_in_place` back."""
        if self._held[queue]:
            self._held[queue] = 0
            self._post_free(queue)

    def _post_free(self, queue: int) -> None:
        """Client: give every consumed S2C slot back to the server (not held ones)."""
        q = self.rx[queue]
        head = q.view.head
        released = (q.cursor - self._held[queue]) & _INDEX_MASK
        count = q.view.size - ((head - released) & _INDEX_MASK)
        if count <= 0:
            return
        own = self._refill[queue]
        rings.post_buffers(q.view, head, count, own.region_ids, own.offsets, own.capacity)
        q.view.head = (head + count) & _INDEX_MASK

    def set_polling(self, polling: bool) -> None:
        """Choose how we receive: poll (set MASK_INT on every RX ring) or be interrupted.

        The flag is ours as the rings' receiver (fact sheet §6); the peer reads it after
        each burst it publishes.
        """
        self.polling = polling
        for queue in self.rx:
            queue.view.flags = int(RingFlag.MASK_INT) if polling else 0

    def acknowledge_interrupt(self, queue: int) -> int:
        """Read RX `queue`'s eventfd to clear it; returns the interrupts that were pending.

        Clear first, then drain the ring: a frame published after the read raises a new
        interrupt, so none is lost between the two (a closed link reads nothing).
        """
        if not 0 <= queue < len(self.rx) or self.rx[queue].eventfd < 0:
            return 0
        pending = drain_eventfd(self.rx[queue].eventfd)
        self.counters.rx_interrupts += pending
        return pending

    def clear_interrupts(self) -> None:
        """Read every RX eventfd so that pending interrupts do not pile up."""
        for queue in self.rx:
            drain_eventfd(queue.eventfd)

    @property
    def rx_eventfds(self) -> list[int]:
        """The eventfds the peer signals when it fills our RX rings."""
        return [queue.eventfd for queue in self.rx]

    # ------------------------------------------------------------------ teardown

    def close(self) -> None:
        """Release ring views, unmap regions and close every fd this link owns."""
        for queue in (*self.tx, *self.rx):
            queue.view.release()
            if queue.eventfd >= 0:
                os.close(queue.eventfd)
                queue.eventfd = -1
        for region in self.regions:
            region.close()
        self.tx, self.rx, self.regions = [], [], []
