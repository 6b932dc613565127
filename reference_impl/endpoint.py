"""Socket I/O for memif: SEQPACKET control channels with fd passing, driving protocol.py.

`ServerEndpoint` listens (filesystem or abstract socket), serves any number of clients,
refuses what protocol.py refuses, maps the client's memory on CONNECT, and keeps
listening after a disconnect. `ClientEndpoint` connects, builds its memory after HELLO,
and can reconnect. Both hand a `Link` to the application once the link is up.
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import os
import select
import selectors
import socket
import stat
import time
from collections.abc import Callable, Sequence

from reference_impl import inspect_layout, protocol, ring, wire
from reference_impl import layout as geometry
from reference_impl.faults import Fault
from reference_impl.link import Link, QueueRing
from reference_impl.memory import Region, RegionError, create_eventfd
from reference_impl.protocol import InterfaceConfig, MemifProtocol, Role
from reference_impl.wire import RingType

_MAX_FDS_PER_MESSAGE = 4
_SEND_TIMEOUT = 2.0
_MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes: a trailing (or, abstract, leading) NUL


class EndpointError(OSError):
    """The socket could not be set up (bad path, active listener, nobody listening)."""


def socket_address(path: str, abstract: bool) -> str:
    """The AF_UNIX address for a path: abstract names get a leading NUL, exact length."""
    if not path:
        raise EndpointError("socket path must not be empty")
    if len(path.encode()) > _MAX_SOCKET_PATH:
        raise EndpointError(f"socket path longer than {_MAX_SOCKET_PATH} bytes: {path!r}")
    return "\0" + path if abstract else path


class ControlChannel:
    """One SEQPACKET connection: 128-byte datagrams, each with at most a few fds."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)

    def send(self, datagram: bytes, fds: Sequence[int] = ()) -> None:
        """Send one datagram, with its fds as one SCM_RIGHTS message.

        Raises:
            TimeoutError: the peer has not read its socket for `_SEND_TIMEOUT` seconds.
        """
        ancillary = []
        if fds:
            rights = array.array("i", fds)
            ancillary.append((socket.SOL_SOCKET, socket.SCM_RIGHTS, rights))
        deadline = time.monotonic() + _SEND_TIMEOUT
        while True:
            try:
                self.sock.sendmsg([datagram], ancillary)
                return
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("peer stopped reading its control socket") from None
                select.select([], [self.sock], [], left)

    def receive(self) -> tuple[bytes, tuple[int, ...]] | None:
        """Read one datagram (never blocks); None at EOF.

        Raises:
            BlockingIOError: nothing to read.
        """
        data, ancillary, _flags, _addr = self.sock.recvmsg(
            wire.MESSAGE_SIZE, socket.CMSG_SPACE(_MAX_FDS_PER_MESSAGE * 4), socket.MSG_DONTWAIT
        )
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(array.array("i", payload[:usable]))
        if not data and not fds:
            return None
        return data, tuple(fds)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def _close_fds(fds: Sequence[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


@dataclasses.dataclass
class Session:
    """One control connection and what arrived on it."""

    channel: ControlChannel
    protocol: MemifProtocol
    region_fds: list[tuple[wire.AddRegion, int]] = dataclasses.field(default_factory=list)
    ring_fds: list[tuple[wire.AddRing, int]] = dataclasses.field(default_factory=list)
    link: Link | None = None

    def release_memory(self) -> None:
        """Close the link, or every received fd if no link adopted them."""
        if self.link is not None:
            self.link.close()
            self.link = None
        _close_fds([fd for _, fd in self.region_fds] + [fd for _, fd in self.ring_fds])
        self.region_fds.clear()
        self.ring_fds.clear()


EventSink = Callable[[Session, protocol.Event], None]


@dataclasses.dataclass(frozen=True)
class _RxInterrupt:
    """Selector data of an interrupt-mode RX eventfd: the link and queue it signals."""

    link: Link
    queue: int


class _Endpoint:
    """What both roles share: a selector, sessions, and the pump between them."""

    def __init__(self, *, cache_line: int, polling: bool) -> None:
        self.cache_line = cache_line
        self.polling = polling
        self.selector = selectors.DefaultSelector()
        self.sessions: list[Session] = []
        self.events: list[tuple[Session, protocol.Event]] = []
        self.last_disconnect: protocol.Disconnected | None = None

    def _add_session(self, sock: socket.socket, proto: MemifProtocol) -> Session:
        session = Session(ControlChannel(sock), proto)
        self.sessions.append(session)
        self.selector.register(sock, selectors.EVENT_READ, session)
        self._flush(session)
        return session

    def service(self, timeout: float = 0.0) -> list[tuple[Session, protocol.Event]]:
        """Handle whatever the control sockets have, waiting up to `timeout` seconds.

        A link whose rings the peer corrupted is disconnected here, with the reason. In
        interrupt mode (`polling=False`) the wait also ends when the peer signals an RX
        ring; the eventfd is read (cleared) here and the caller then drains the ring.
        """
        for session in list(self.sessions):
            if session.link is not None and session.link.error is not None:
                self._handle(session, session.protocol.disconnect(session.link.error))
        for key, _mask in self.selector.select(timeout):
            if key.data is None:
                self._accept(key.fileobj)  # type: ignore[arg-type]
            elif isinstance(key.data, _RxInterrupt):
                self._interrupted(key.data)
            else:
                self._read(key.data)
        events, self.events = self.events, []
        return events

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Service the sockets until `predicate()` holds or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.service(min(left, 0.05))
        return True

    def _accept(self, listener: socket.socket) -> None:
        raise NotImplementedError

    def _read(self, session: Session) -> None:
        while True:
            try:
                received = session.channel.receive()
            except BlockingIOError:
                return
            except ConnectionResetError:  # the peer closed with our data unread: reported
                continue  # once, ahead of what it sent before (a DISCONNECT and its reason)
            except OSError:
                received = None
            if received is None:
                self._handle(session, session.protocol.connection_lost())
                return
            datagram, fds = received
            self._handle(session, session.protocol.receive(datagram, fds))
            if session not in self.sessions:
                return

    def _handle(self, session: Session, events: list[protocol.Event]) -> None:
        for event in events:
            self.events.append((session, event))
            if isinstance(event, protocol.UnusedFds):
                _close_fds(event.fds)
            else:
                more = self._on_event(session, event)
                self.events.extend((session, e) for e in more)
        self._flush(session)

    def _on_event(self, session: Session, event: protocol.Event) -> list[protocol.Event]:
        raise NotImplementedError

    def _flush(self, session: Session) -> None:
        try:
            for datagram, fds in session.protocol.messages_to_send():
                session.channel.send(datagram, fds)
        except OSError:
            if not session.protocol.closed:
                self.events.extend((session, e) for e in session.protocol.connection_lost())
        if session.protocol.closed:
            self._drop(session)

    def _drop(self, session: Session) -> None:
        if session not in self.sessions:
            return
        self.sessions.remove(session)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(session.channel.sock)
        session.channel.close()
        if session.link is not None:
            self._unwatch_interrupts(session.link)
        session.release_memory()
        reason = session.protocol.disconnect_reason or protocol.Reason.LOCAL_CLOSE
        self.last_disconnect = protocol.Disconnected(reason, session.protocol.disconnected_by_peer)

    def _watch_interrupts(self, link: Link) -> None:
        """Interrupt mode: let `service` wake up when the peer signals an RX ring.

        An fd the selector cannot wait on (a peer may pass any fd as a ring's "eventfd")
        puts the link back into polling mode: MASK_INT set, so the peer need not signal.
        """
        if self.polling:
            return
        watched: list[int] = []
        for queue, fd in enumerate(link.rx_eventfds):
            try:
                self.selector.register(fd, selectors.EVENT_READ, _RxInterrupt(link, queue))
            except (OSError, ValueError, KeyError):
                for done in watched:
                    self.selector.unregister(done)
                link.set_polling(True)
                return
            watched.append(fd)

    def _interrupted(self, interrupt: _RxInterrupt) -> None:
        """The peer signalled an RX ring: read its eventfd to clear it."""
        try:
            interrupt.link.acknowledge_interrupt(interrupt.queue)
        except OSError:  # not an eventfd after all: stop waiting on it and poll instead
            self._unwatch_interrupts(interrupt.link)
            interrupt.link.set_polling(True)

    def _unwatch_interrupts(self, link: Link) -> None:
        """Stop waiting on a link's RX eventfds (before they are closed)."""
        for fd in link.rx_eventfds:
            with contextlib.suppress(KeyError, ValueError):
                key = self.selector.get_key(fd)
                if isinstance(key.data, _RxInterrupt) and key.data.link is link:
                    self.selector.unregister(fd)

    def disconnect_all(self, reason: str = protocol.Reason.LOCAL_CLOSE) -> None:
        """Send DISCONNECT on every session and close them."""
        for session in list(self.sessions):
            self._handle(session, session.protocol.disconnect(reason))

    def close(self) -> None:
        """Disconnect everything and release every resource."""
        self.disconnect_all()
        for session in list(self.sessions):
            self._drop(session)
        self.selector.close()


class ServerEndpoint(_Endpoint):
    """A memif server: listens, validates clients, maps their memory."""

    def __init__(
        self,
        path: str,
        interfaces: Sequence[InterfaceConfig],
        *,
        abstract: bool = False,
        cache_line: int = geometry.DEFAULT_CACHE_LINE,
        polling: bool = True,
    ) -> None:
        """Bind and listen on `path`.

        Raises:
            EndpointError: the path is unusable or another server listens there.
        """
        super().__init__(cache_line=cache_line, polling=polling)
        self.path = path
        self.abstract = abstract
        self.directory = protocol.StaticInterfaceDirectory(*interfaces)
        self.links: dict[int, Link] = {}
        self.peer_layouts: dict[int, inspect_layout.LayoutReport] = {}
        """The last client layout seen at CONNECT, per interface id."""
        address = socket_address(path, abstract)
        if not abstract:
            _clear_stale_socket(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            listener.bind(address)
            listener.listen(8)
        except OSError as exc:
            listener.close()
            raise EndpointError(f"cannot listen on {path!r}: {exc.strerror or exc}") from exc
        listener.setblocking(False)
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ, None)

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        self._add_session(sock, MemifProtocol(Role.SERVER, directory=self.directory))

    def _on_event(self, session: Session, event: protocol.Event) -> list[protocol.Event]:
        if isinstance(event, protocol.RegionAdded):
            session.region_fds.append((event.region, event.fd))
        elif isinstance(event, protocol.RingAdded):
            session.ring_fds.append((event.ring, event.fd))
        elif isinstance(event, protocol.ConnectRequested):
            return self._connect(session)
        elif isinstance(event, protocol.Disconnected):
            config = session.protocol.config
            link = session.link
            if config is not None and link is not None and self.links.get(config.id) is link:
                del self.links[config.id]
        return []

    def _connect(self, session: Session) -> list[protocol.Event]:
        config = session.protocol.config
        assert config is not None
        try:
            link = _map_client_memory(
                session.region_fds,
                session.ring_fds,
                config,
                self.cache_line,
                self.polling,
                observe=lambda report: self.peer_layouts.__setitem__(config.id, report),
            )
        except (RegionError, ring.RingError, ValueError) as exc:
            return session.protocol.disconnect(str(exc))
        session.link = link
        self._watch_interrupts(link)
        session.region_fds.clear()
        session.ring_fds.clear()
        self.links[config.id] = link
        return session.protocol.complete_connect()

    def link(self, interface_id: int = 0) -> Link | None:
        """The connected link of an interface, if any."""
        return self.links.get(interface_id)

    def close(self) -> None:
        """Disconnect clients, stop listening, and remove the socket file."""
        super().close()
        self.links.clear()
        self.listener.close()
        if not self.abstract:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file nobody listens on; refuse to touch anything else."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise EndpointError(f"{path!r} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # stale: nobody listens
        return
    finally:
        probe.close()
    raise EndpointError(f"another server is listening on {path!r}")


def _map_client_memory(
    region_fds: Sequence[tuple[wire.AddRegion, int]],
    ring_fds: Sequence[tuple[wire.AddRing, int]],
    config: InterfaceConfig,
    cache_line: int,
    polling: bool,
    observe: Callable[[inspect_layout.LayoutReport], None] | None = None,
) -> Link:
    """Server side of CONNECT: map every region, locate rings, check cookies.

    `observe`, if given, receives the layout report of the client's memory (taken before
    the cookie check, so a refused client's layout is reported too).

    protocol.py has already checked that every ring names an announced region and that
    ring indices run 0..n-1 in each direction; what is left needs the memory itself.
    """
    regions: list[Region] = []
    views: list[ring.RingView] = []
    try:
        for region_message, fd in region_fds:
            regions.append(Region(fd, region_message.size, owns_fd=False))
        by_type: dict[RingType, dict[int, QueueRing]] = {RingType.C2S: {}, RingType.S2C: {}}
        for announced, fd in ring_fds:
            view = ring.RingView(
                regions[announced.region], announced.offset, announced.log2_ring_size, cache_line
            )
            views.append(view)
            by_type[announced.ring_type][announced.index] = QueueRing(view, fd)
        if observe is not None:
            observe(
                inspect_layout.inspect(
                    regions, [(a, v) for (a, _), v in zip(ring_fds, views, strict=True)], cache_line
                )
            )
        for (announced, _), view in zip(ring_fds, views, strict=True):
            if view.cookie != wire.COOKIE:
                raise ring.RingError(
                    f"Wrong cookie on {announced.ring_type.name} ring {announced.index}"
                )
        for queues in by_type.values():
            for queue in queues.values():
                queue.view.tail = 0  # the server owns tail; start from a known value
    except BaseException:
        for view in views:
            view.release()
        for region in regions:
            region.close()
        raise
    for region in regions:
        region.take_fd_ownership()  # the link closes them from now on
    max_frame = wire.ETHERNET_MAX_FRAME if config.mode is wire.InterfaceMode.ETHERNET else None
    c2s = [by_type[RingType.C2S][i] for i in range(len(by_type[RingType.C2S]))]
    s2c = [by_type[RingType.S2C][i] for i in range(len(by_type[RingType.S2C]))]
    return Link(
        Role.SERVER,
        regions,
        tx=s2c,
        rx=c2s,
        buffer_size=config.buffer_size,
        max_frame=max_frame,
        polling=polling,
        faults=config.faults,
    )


class ClientEndpoint(_Endpoint):
    """A memif client: connects, allocates the shared memory, announces it."""

    def __init__(
        self,
        path: str,
        config: InterfaceConfig,
        *,
        abstract: bool = False,
        cache_line: int = geometry.DEFAULT_CACHE_LINE,
        placement: geometry.BufferPlacement = geometry.BufferPlacement.REGION0,
        polling: bool = True,
        zero_copy: bool = False,
    ) -> None:
        """Prepare a client (`connect` starts it).

        `zero_copy` puts the buffers in region 1, apart from the rings in region 0 (as
        zero-copy clients do, fact sheet §4.6), whatever `placement` says, and gives the
        application its buffers in place (`Link.tx_buffers`/`publish`,
        `Link.receive_in_place`).
        """
        super().__init__(cache_line=cache_line, polling=polling)
        self.path = path
        self.abstract = abstract
        self.config = config
        self.zero_copy = zero_copy
        self.placement = geometry.BufferPlacement.SEPARATE if zero_copy else placement
        self.link: Link | None = None
        self.layout: geometry.CopyLayout | None = None
        self._memory: tuple[list[Region], list[int]] | None = None
        self.session: Session | None = None

    def connect(self) -> None:
        """Open the control connection (HELLO then drives the handshake).

        Raises:
            EndpointError: nobody listens at the path.
        """
        if self.session is not None:
            raise EndpointError("already connected; close or wait for a disconnect first")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            sock.connect(socket_address(self.path, self.abstract))
        except OSError as exc:
            sock.close()
            raise EndpointError(f"cannot connect to {self.path!r}: {exc.strerror or exc}") from exc
        self.session = self._add_session(sock, MemifProtocol(Role.CLIENT, config=self.config))

    def _on_event(self, session: Session, event: protocol.Event) -> list[protocol.Event]:
        if isinstance(event, protocol.HelloReceived):
            try:
                self._build_memory(session, event.negotiated)
            except OSError as exc:
                return session.protocol.disconnect(f"Failed to alloc memif region: {exc}")
        elif isinstance(event, protocol.Connected):
            return self._bring_up(session)
        return []

    def _build_memory(self, session: Session, negotiated: protocol.Negotiated) -> None:
        shape = geometry.CopyLayout(
            c2s_rings=negotiated.c2s_rings,
            s2c_rings=negotiated.s2c_rings,
            log2_ring_size=negotiated.log2_ring_size,
            buffer_size=negotiated.buffer_size,
            cache_line=self.cache_line,
            placement=self.placement,
        )
        regions: list[Region] = []
        eventfds: list[int] = []
        try:
            for index, size in enumerate(shape.region_sizes()):
                regions.append(Region.create(f"memif-ref region {index}", size))
            announced_rings = []
            for ring_type, index in shape.rings():
                view = ring.RingView(
                    regions[0],
                    shape.ring_offset(ring_type, index),
                    shape.log2_ring_size,
                    self.cache_line,
                )
                own = _own_buffers(shape, regions, ring_type, index, self.config.faults)
                ring.init_ring(view, own.region_ids, own.offsets, shape.buffer_size)
                if Fault.WRONG_COOKIE in self.config.faults:
                    view.cookie = _BYTE_SWAPPED_COOKIE
                view.release()
                eventfds.append(create_eventfd())
                add_ring = wire.AddRing(
                    flags=int(wire.AddRingFlag.C2S) if ring_type is RingType.C2S else 0,
                    index=index,
                    region=0,
                    offset=shape.ring_offset(ring_type, index),
                    log2_ring_size=shape.log2_ring_size,
                )
                announced_rings.append((add_ring, eventfds[-1]))
        except BaseException:
            for region in regions:
                region.close()
            _close_fds(eventfds)
            raise
        self.layout = shape
        self._memory = (regions, eventfds)
        session.protocol.announce(
            [(wire.AddRegion(index=i, size=r.size), r.fd) for i, r in enumerate(regions)],
            announced_rings,
        )

    def _bring_up(self, session: Session) -> list[protocol.Event]:
        """CONNECTED arrived: check the cookies we wrote are still there, then build the link.

        A server that overwrote one is refused, as DPDK's client does (fact sheet §3.5).
        """
        assert self.layout is not None and self._memory is not None
        shape = self.layout
        regions, eventfds = self._memory
        queues: dict[RingType, list[QueueRing]] = {RingType.C2S: [], RingType.S2C: []}
        owned: dict[RingType, list[ring.OwnedBuffers]] = {RingType.C2S: [], RingType.S2C: []}
        ours = _BYTE_SWAPPED_COOKIE if Fault.WRONG_COOKIE in self.config.faults else wire.COOKIE
        wrong: str | None = None
        for position, (ring_type, index) in enumerate(shape.rings()):
            view = ring.RingView(
                regions[0],
                shape.ring_offset(ring_type, index),
                shape.log2_ring_size,
                self.cache_line,
            )
            if view.cookie != ours and wrong is None:
                wrong = f"Wrong cookie on {ring_type.name} ring {index}"
            queues[ring_type].append(QueueRing(view, eventfds[position]))
            owned[ring_type].append(
                _own_buffers(shape, regions, ring_type, index, self.config.faults)
            )
        if wrong is not None:  # the memory stays in _memory: _drop frees it
            for queue in (*queues[RingType.C2S], *queues[RingType.S2C]):
                queue.view.release()
            return session.protocol.disconnect(wrong)
        max_frame = (
            wire.ETHERNET_MAX_FRAME if self.config.mode is wire.InterfaceMode.ETHERNET else None
        )
        self.link = Link(
            Role.CLIENT,
            regions,
            tx=queues[RingType.C2S],
            rx=queues[RingType.S2C],
            buffer_size=shape.buffer_size,
            tx_owned=owned[RingType.C2S],
            rx_refill=owned[RingType.S2C],
            max_frame=max_frame,
            polling=self.polling,
            faults=self.config.faults,
            zero_copy=self.zero_copy,
        )
        session.link = self.link
        self._watch_interrupts(self.link)
        self._memory = None
        return []

    def _drop(self, session: Session) -> None:
        if self._memory is not None:  # handshake failed before the link took the memory
            regions, eventfds = self._memory
            for region in regions:
                region.close()
            _close_fds(eventfds)
            self._memory = None
        super()._drop(session)
        if session is self.session:
            self.session = None
            self.link = None

    @property
    def connected(self) -> bool:
        """Whether the link is up."""
        return self.session is not None and self.session.protocol.connected


_BYTE_SWAPPED_COOKIE = int.from_bytes(wire.COOKIE.to_bytes(4, "little"), "big")
"""What Fault.WRONG_COOKIE writes: the cookie stored with the wrong byte order."""


def _own_buffers(
    shape: geometry.CopyLayout,
    regions: Sequence[Region],
    ring_type: RingType,
    index: int,
    faults: frozenset[Fault] = frozenset(),
) -> ring.OwnedBuffers:
    """The client's buffers for every slot of one ring."""
    first = shape.buffer_offset(ring_type, index, 0)
    if Fault.WRONG_OFFSETS in faults:  # the slot number kept in a u16, as §4.7 describes
        slot = (shape.global_ring_index(ring_type, index) * shape.ring_size) & 0xFFFF
        first = shape.buffer_area_offset() + slot * shape.buffer_size
    return ring.OwnedBuffers.of_region(
        regions[shape.buffer_region],
        shape.buffer_region,
        first,
        shape.ring_size,
        shape.buffer_size,
    )
