"""Network namespaces, veth, TAP and addresses via pyroute2; running code inside a netns."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2 import netns as pyroute2_netns
from pyroute2.ethtool import Ethtool
from pyroute2.netlink.exceptions import NetlinkError

from harness.topology.labels import DEFAULT_TMP_DIR, RunLabel, process_start_time

log = logging.getLogger(__name__)

T = TypeVar("T")

ALLOWED_NETWORK = ipaddress.IPv4Network("198.18.0.0/15")
"""The only network test hosts may use (RFC 2544 benchmarking range)."""

NETNS_RUN_DIR = Path(pyroute2_netns.NETNS_RUN_DIR)

TX_CHECKSUM_FEATURES = (
    "tx-checksum-ipv4",
    "tx-checksum-ip-generic",
    "tx-checksum-ipv6",
    "tx-checksum-fcoe-crc",
    "tx-checksum-sctp",
)
"""The feature group that ``ethtool -K <dev> tx off`` switches off."""


class TopologyError(RuntimeError):
    """A namespace or link operation failed (a harness infrastructure error)."""


class AddressNotAllowed(ValueError):
    """An address outside 198.18.0.0/15 (or not IPv4, or with a too-short prefix)."""


class TopologyCleanupError(TopologyError):
    """Removing what a Topology created failed for some objects.

    Attributes:
        failures: one "what: why" line per object that could not be removed.
    """

    def __init__(self, failures: Sequence[str]) -> None:
        self.failures = list(failures)
        super().__init__("topology cleanup failed:\n  " + "\n  ".join(self.failures))


# --------------------------------------------------------------------------- addresses


def check_address(address: str | ipaddress.IPv4Interface) -> ipaddress.IPv4Interface:
    """Return ``address`` as an IPv4Interface if it lies inside 198.18.0.0/15.

    DESIGN.md section 5: test hosts use only the RFC 2544 benchmarking range, with a
    prefix no shorter than /15 so no connected route reaches outside it. This module
    never adds a route, let alone a default route.

    Args:
        address: "198.18.0.1/24" style (a bare address means /32).

    Raises:
        AddressNotAllowed: for IPv6, for any address outside 198.18.0.0/15, and for a
            prefix shorter than /15 (its connected route would leave the range; /0 would
            act as a default route).
    """
    try:
        iface = ipaddress.ip_interface(address)
    except ValueError as exc:
        raise AddressNotAllowed(f"not an IP address: {address!r}") from exc
    if not isinstance(iface, ipaddress.IPv4Interface):
        raise AddressNotAllowed(
            f"{address}: only IPv4 addresses from {ALLOWED_NETWORK} (RFC 2544) are allowed"
        )
    if not iface.network.subnet_of(ALLOWED_NETWORK):
        raise AddressNotAllowed(
            f"{address}: outside {ALLOWED_NETWORK}; test hosts may only use the RFC 2544"
            f" benchmarking range (DESIGN.md section 5)"
        )
    return iface


# --------------------------------------------------------------------------- code in a netns


def netns_path(netns: str) -> str:
    """Return the nsfs path for a namespace name (a path is returned unchanged)."""
    return netns if "/" in netns else str(NETNS_RUN_DIR / netns)


def pid_netns_path(pid: int) -> str:
    """Return the path of process ``pid``'s network namespace."""
    return f"/proc/{pid}/ns/net"


def run_in_netns(netns: str | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` on a fresh thread that has joined ``netns``.

    On Linux a network namespace is a per-thread attribute: setns(2) on a short-lived
    thread leaves the rest of the process where it was. Everything that must happen
    inside a namespace (ethtool ioctls, sysctl writes, sockets, child processes) goes
    through here.

    Sockets created by ``fn`` stay in that namespace after it returns, and child
    processes it starts are born there. Exceptions from ``fn`` are re-raised here.

    Args:
        netns: a namespace name, an nsfs path such as /proc/<pid>/ns/net, or None for
            the caller's own namespace (still on a fresh thread, so per-thread state that
            ``fn`` changes, such as CPU affinity, does not leak into the caller).
        fn: the callable.
        *args: positional arguments for ``fn``.
        **kwargs: keyword arguments for ``fn``.

    Returns:
        What ``fn`` returned.
    """
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            if netns is not None:
                pyroute2_netns.setns(netns_path(netns), flags=0, fork=False)
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=body, name=f"in-netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def popen_in_netns(
    netns: str | None,
    argv: Sequence[str],
    *,
    prepare: Callable[[], None] | None = None,
    **popen_kwargs: Any,
) -> subprocess.Popen[Any]:
    """Start ``argv`` inside ``netns`` (no ``ip netns exec``, no preexec_fn).

    Args:
        netns: namespace name or nsfs path; None for the current namespace.
        argv: the command.
        prepare: called on the spawning thread just before the fork, e.g.
            ``Placement.apply_to_current_thread`` so the child inherits CPU affinity and
            memory policy.
        **popen_kwargs: passed to subprocess.Popen.

    Returns:
        The started process.
    """

    def spawn() -> subprocess.Popen[Any]:
        if prepare is not None:
            prepare()
        return subprocess.Popen(list(argv), **popen_kwargs)

    return run_in_netns(netns, spawn)


def socket_in_netns(netns: str | None, family: int, type: int, proto: int = 0) -> socket.socket:
    """Return a socket created inside ``netns`` (usable from any thread afterwards)."""
    return run_in_netns(netns, socket.socket, family, type, proto)


# --------------------------------------------------------------------------- namespaces


@contextlib.contextmanager
def iproute(netns: str | None = None) -> Iterator[Any]:
    """Yield a pyroute2 IPRoute bound to ``netns`` (never creating it)."""
    if netns is None:
        ipr = IPRoute()
    else:
        if not os.path.exists(netns_path(netns)):
            raise TopologyError(f"network namespace {netns!r} does not exist")
        ipr = IPRoute(netns=netns_path(netns), flags=0)
    try:
        yield ipr
    finally:
        ipr.close()


def list_netns() -> list[str]:
    """Return the names of all named network namespaces (under /run/netns)."""
    return sorted(pyroute2_netns.listnetns())


def netns_exists(name: str) -> bool:
    """Return True if the named namespace exists."""
    return name in pyroute2_netns.listnetns()


def create_netns(name: str, *, loopback_up: bool = True) -> None:
    """Create a named network namespace.

    Args:
        name: the namespace name (use ``RunLabel.netns``).
        loopback_up: bring ``lo`` up inside it.

    Raises:
        TopologyError: if it already exists or creation fails.
    """
    if netns_exists(name):
        raise TopologyError(f"network namespace {name!r} already exists")
    try:
        pyroute2_netns.create(name)
    except Exception as exc:
        raise TopologyError(f"creating network namespace {name!r} failed: {exc}") from exc
    if not netns_exists(name):
        raise TopologyError(f"network namespace {name!r} was not created")
    if loopback_up:
        set_link_up("lo", netns=name)


def delete_netns(name: str, *, missing_ok: bool = True) -> None:
    """Delete a named network namespace (links inside it go with it)."""
    if not netns_exists(name):
        if missing_ok:
            return
        raise TopologyError(f"network namespace {name!r} does not exist")
    pyroute2_netns.remove(name)


# --------------------------------------------------------------------------- links


def _index(ipr: Any, ifname: str, netns: str | None) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        where = f"netns {netns!r}" if netns else "the current netns"
        raise TopologyError(f"no interface {ifname!r} in {where}")
    return int(found[0])


def link_exists(ifname: str, netns: str | None = None) -> bool:
    """Return True if ``ifname`` exists in ``netns`` (None: current namespace)."""
    with iproute(netns) as ipr:
        return bool(ipr.link_lookup(ifname=ifname))


def list_links(netns: str | None = None) -> list[tuple[str, str | None]]:
    """Return (name, ifalias) of every interface in ``netns``."""
    with iproute(netns) as ipr:
        return [
            (msg.get_attr("IFLA_IFNAME"), msg.get_attr("IFLA_IFALIAS")) for msg in ipr.get_links()
        ]


def _check_ifname(ifname: str) -> None:
    if not 0 < len(ifname) <= 15:
        raise TopologyError(f"interface name {ifname!r} must be 1-15 characters")


def create_veth(
    name: str,
    peer: str,
    *,
    netns: str | None = None,
    peer_netns: str | None = None,
    alias: str | None = None,
) -> None:
    """Create a veth pair, each end in the given namespace (None: current namespace).

    Both ends are created here and then moved, so the pair never half-exists.

    Args:
        name: first end's name.
        peer: second end's name.
        netns: namespace for ``name``.
        peer_netns: namespace for ``peer``.
        alias: ifalias for both ends (the run label).
    """
    _check_ifname(name)
    _check_ifname(peer)
    with iproute() as ipr:
        ipr.link("add", ifname=name, kind="veth", peer=peer)
        try:
            for end in (name, peer):
                if alias is not None:
                    ipr.link("set", index=_index(ipr, end, None), ifalias=alias)
            if peer_netns is not None:
                ipr.link("set", index=_index(ipr, peer, None), net_ns_fd=netns_path(peer_netns))
            if netns is not None:
                ipr.link("set", index=_index(ipr, name, None), net_ns_fd=netns_path(netns))
        except Exception:
            with contextlib.suppress(Exception):
                ipr.link("del", index=_index(ipr, name, None))
            raise


def create_tap(name: str, *, netns: str | None = None, alias: str | None = None) -> None:
    """Create a persistent TAP device, then move it into ``netns``.

    pyroute2 creates TUN/TAP devices with ioctls on /dev/net/tun in the caller's own
    namespace, so the device is born here and moved afterwards.
    """
    _check_ifname(name)
    with iproute() as ipr:
        ipr.link("add", ifname=name, kind="tuntap", mode="tap")
        try:
            index = _index(ipr, name, None)
            if alias is not None:
                ipr.link("set", index=index, ifalias=alias)
            if netns is not None:
                ipr.link("set", index=index, net_ns_fd=netns_path(netns))
        except Exception:
            with contextlib.suppress(Exception):
                ipr.link("del", index=_index(ipr, name, None))
            raise


def move_link(
    ifname: str,
    *,
    netns: str | None = None,
    to_netns: str | None = None,
    to_pid: int | None = None,
    new_name: str | None = None,
) -> None:
    """Move an interface into another namespace, by name/path or by a process id.

    Args:
        ifname: the interface, currently in ``netns`` (None: current namespace).
        netns: where it is now.
        to_netns: target namespace name or nsfs path.
        to_pid: target process (e.g. a container's init pid); exclusive with to_netns.
        new_name: rename it on the way (same netlink request).
    """
    if (to_netns is None) == (to_pid is None):
        raise ValueError("give exactly one of to_netns, to_pid")
    request: dict[str, Any] = {}
    if to_pid is not None:
        request["net_ns_pid"] = to_pid
    else:
        assert to_netns is not None
        request["net_ns_fd"] = netns_path(to_netns)
    if new_name is not None:
        _check_ifname(new_name)
        request["ifname"] = new_name
    with iproute(netns) as ipr:
        ipr.link("set", index=_index(ipr, ifname, netns), **request)


def set_link_up(ifname: str, netns: str | None = None, *, up: bool = True) -> None:
    """Set an interface administratively up (or down)."""
    with iproute(netns) as ipr:
        ipr.link("set", index=_index(ipr, ifname, netns), state="up" if up else "down")


def set_mtu(ifname: str, mtu: int, netns: str | None = None) -> None:
    """Set an interface's MTU (bytes of L3 payload per frame).

    Raises:
        ValueError: an MTU outside 68..65535.
    """
    if not 68 <= mtu <= 65535:
        raise ValueError(f"MTU {mtu} not in 68..65535")
    with iproute(netns) as ipr:
        ipr.link("set", index=_index(ipr, ifname, netns), mtu=mtu)


def link_is_up(ifname: str, netns: str | None = None) -> bool:
    """Return True if the interface is administratively up (IFF_UP)."""
    with iproute(netns) as ipr:
        msg = ipr.get_links(_index(ipr, ifname, netns))[0]
        return bool(msg["flags"] & 1)


def add_address(ifname: str, address: str, netns: str | None = None) -> ipaddress.IPv4Interface:
    """Assign an IPv4 address from 198.18.0.0/15 to an interface. Never adds routes.

    Raises:
        AddressNotAllowed: if the address is not allowed (see check_address).
    """
    iface = check_address(address)
    with iproute(netns) as ipr:
        ipr.addr(
            "add",
            index=_index(ipr, ifname, netns),
            address=str(iface.ip),
            prefixlen=iface.network.prefixlen,
        )
    return iface


def get_addresses(ifname: str, netns: str | None = None) -> list[ipaddress.IPv4Interface]:
    """Return the IPv4 addresses of an interface."""
    with iproute(netns) as ipr:
        index = _index(ipr, ifname, netns)
        return [
            ipaddress.IPv4Interface(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}")
            for msg in ipr.get_addr(index=index, family=socket.AF_INET)
        ]


def get_mac(ifname: str, netns: str | None = None) -> str:
    """Return an interface's MAC address ("aa:bb:...")."""
    with iproute(netns) as ipr:
        return str(ipr.get_links(_index(ipr, ifname, netns))[0].get_attr("IFLA_ADDRESS"))


def delete_link(ifname: str, netns: str | None = None, *, missing_ok: bool = True) -> None:
    """Delete an interface (for a veth, both ends go)."""
    with iproute(netns) as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            if missing_ok:
                return
            raise TopologyError(f"no interface {ifname!r} to delete")
        try:
            ipr.link("del", index=found[0])
        except NetlinkError as exc:
            if exc.code == errno.ENODEV and missing_ok:
                return
            raise


def disable_ipv6(ifname: str, netns: str | None = None) -> bool:
    """Turn IPv6 off on one interface, so it emits no router/neighbour solicitations.

    Keeps captures free of IPv6 noise. Uses the per-namespace sysctl
    net.ipv6.conf.<ifname>.disable_ipv6.

    Returns:
        False if the kernel has no IPv6 (nothing to do), True otherwise.
    """

    def write() -> bool:
        path = Path(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6")
        if not path.parent.exists():
            return False
        path.write_text("1\n")
        return True

    return run_in_netns(netns, write)


# --------------------------------------------------------------------------- ethtool


def tx_checksum_features(ifname: str, netns: str | None = None) -> dict[str, bool]:
    """Return {feature: enabled} for the TX checksum features the device offers."""

    def read() -> dict[str, bool]:
        with Ethtool() as ethtool:
            features = ethtool.get_features(ifname).features
            return {
                name: bool(features[name].enable)
                for name in TX_CHECKSUM_FEATURES
                if name in features and features[name].available
            }

    return run_in_netns(netns, read)


def disable_tx_checksum(ifname: str, netns: str | None = None) -> dict[str, bool]:
    """Switch TX checksum offload off, like ``ethtool -K <ifname> tx off``.

    veth leaves checksums to the receiver (CHECKSUM_PARTIAL); frames a host sends through
    a veth end and that are bridged by raw sockets (AF_PACKET, testpmd af_packet, memif
    forwarders) arrive elsewhere with wrong checksums unless this is off. Uses pyroute2's
    ethtool module (ETHTOOL_SFEATURES ioctl), run inside the interface's namespace.

    Returns:
        The resulting {feature: enabled} map (all False on success).

    Raises:
        TopologyError: if a TX checksum feature stays on (e.g. fixed by the driver).
    """

    def apply() -> dict[str, bool]:
        with Ethtool() as ethtool:
            features = ethtool.get_features(ifname)
            for name in TX_CHECKSUM_FEATURES:
                feature = features.features.get(name)
                if feature is not None and feature.available:
                    feature.enable = False
            ethtool.set_features(ifname, features)
            after = ethtool.get_features(ifname).features
            return {
                name: bool(after[name].enable)
                for name in TX_CHECKSUM_FEATURES
                if name in after and after[name].available
            }

    result = run_in_netns(netns, apply)
    still_on = [name for name, enabled in result.items() if enabled]
    if still_on:
        raise TopologyError(f"{ifname}: TX checksum offload still on for {still_on}")
    return result


# --------------------------------------------------------------------------- Topology


@dataclass(frozen=True)
class VethPair:
    """A veth pair created by a Topology.

    Attributes:
        name: first end.
        peer: second end.
        netns: first end's namespace (None: the harness's own).
        peer_netns: second end's namespace.
    """

    name: str
    peer: str
    netns: str | None
    peer_netns: str | None


@dataclass(frozen=True)
class NicHost:
    """A test host: a namespace joined by veth to the "NIC" end a peer attaches to.

    Attributes:
        netns: the host's namespace.
        host_if: the veth end inside it, holding ``address``.
        nic_if: the other end, left for a peer (AF_PACKET, testpmd net_af_packet).
        nic_netns: where ``nic_if`` is (None: the harness's own namespace).
        address: the host's address (198.18.0.0/15).
    """

    netns: str
    host_if: str
    nic_if: str
    nic_netns: str | None
    address: ipaddress.IPv4Interface


@dataclass
class _Created:
    kind: str  # "netns" | "link" | "dir"
    name: str
    netns: str | None = None
    owner_pid: int | None = None
    owner_start_time: int | None = None


@dataclass
class Topology:
    """Creates labelled namespaces, links and socket directories; removes them all on exit.

    Use as a context manager. Every object is recorded the moment it exists, so a failure
    half-way through building (or inside the ``with`` body) still removes everything.
    Cleanup failures are raised as TopologyCleanupError, or attached as a note to the
    exception that ended the block.

    Example::

        with Topology(RunLabel.new()) as topo:
            a, b = topo.add_netns("a"), topo.add_netns("b")
            pair = topo.add_veth("a0", "b0", netns=a, peer_netns=b)
            topo.add_address(pair.name, "198.18.0.1/24", netns=a)
            topo.add_address(pair.peer, "198.18.0.2/24", netns=b)

    Attributes:
        label: the run's label; every name is derived from it.
        tmp_dir: where socket directories go.
    """

    label: RunLabel
    tmp_dir: Path = DEFAULT_TMP_DIR
    _created: list[_Created] = field(default_factory=list, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)

    def __enter__(self) -> Topology:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except TopologyCleanupError as cleanup_error:
            if exc is None:
                raise
            exc.add_note(str(cleanup_error))

    # -- queries

    @property
    def namespaces(self) -> list[str]:
        """Names of the namespaces this topology created (and still owns)."""
        return [c.name for c in self._created if c.kind == "netns"]

    @property
    def links(self) -> list[tuple[str, str | None]]:
        """(interface, namespace) of every link this topology created."""
        return [(c.name, c.netns) for c in self._created if c.kind == "link"]

    @property
    def directories(self) -> list[Path]:
        """Socket directories this topology created."""
        return [Path(c.name) for c in self._created if c.kind == "dir"]

    def _find_link(self, ifname: str) -> _Created:
        for record in self._created:
            if record.kind == "link" and record.name == ifname:
                return record
        raise TopologyError(f"{ifname!r} was not created by this topology")

    # -- building

    def add_netns(self, role: str, *, loopback_up: bool = True) -> str:
        """Create namespace ``memif-<runid>-<role>`` and return its name."""
        name = self.label.netns(role)
        create_netns(name, loopback_up=False)
        self._created.append(_Created("netns", name))
        if loopback_up:
            set_link_up("lo", netns=name)
        return name

    def add_veth(
        self,
        suffix: str,
        peer_suffix: str,
        *,
        netns: str | None = None,
        peer_netns: str | None = None,
        up: bool = True,
        ipv6: bool = False,
        tx_checksum: bool = True,
    ) -> VethPair:
        """Create veth ``mh<runid><suffix>`` <-> ``mh<runid><peer_suffix>``.

        Args:
            suffix: first end's suffix (1-5 characters).
            peer_suffix: second end's suffix.
            netns: first end's namespace (None: stays in the harness's namespace).
            peer_netns: second end's namespace.
            up: bring both ends up.
            ipv6: leave IPv6 on; by default it is disabled so the ends stay quiet.
            tx_checksum: leave TX checksum offload on; pass False for ends whose frames
                are bridged through raw sockets (see disable_tx_checksum).

        Returns:
            The pair's names and namespaces.
        """
        name, peer = self.label.link(suffix), self.label.link(peer_suffix)
        create_veth(name, peer, netns=netns, peer_netns=peer_netns, alias=self.label.link_alias())
        self._created.append(_Created("link", name, netns))
        self._created.append(_Created("link", peer, peer_netns))
        for ifname, where in ((name, netns), (peer, peer_netns)):
            self._configure(ifname, where, up=up, ipv6=ipv6, tx_checksum=tx_checksum)
        return VethPair(name, peer, netns, peer_netns)

    def add_tap(
        self,
        suffix: str,
        *,
        netns: str | None = None,
        up: bool = True,
        ipv6: bool = False,
    ) -> str:
        """Create TAP device ``mh<runid><suffix>`` in ``netns`` and return its name."""
        name = self.label.link(suffix)
        create_tap(name, netns=netns, alias=self.label.link_alias())
        self._created.append(_Created("link", name, netns))
        self._configure(name, netns, up=up, ipv6=ipv6, tx_checksum=True)
        return name

    def add_nic_host(
        self,
        role: str,
        host_suffix: str,
        nic_suffix: str,
        address: str,
        *,
        nic_netns: str | None = None,
    ) -> NicHost:
        """Create a host namespace whose veth's other end is a peer's "NIC".

        The host end gets ``address`` and, like the NIC end, has IPv6 and TX checksum
        offload off: its frames are bridged through raw sockets (AF_PACKET, testpmd
        af_packet, memif forwarders), which would pass on unfilled checksums. The NIC end
        gets no address, so the namespace holding it neither sends nor routes on it.

        Args:
            role: the namespace's role (``memif-<runid>-<role>``).
            host_suffix: the host end's link suffix.
            nic_suffix: the NIC end's link suffix.
            address: the host's address, 198.18.0.0/15 only.
            nic_netns: the NIC end's namespace (None: the harness's own).

        Returns:
            The host's names and address.
        """
        iface = check_address(address)  # before anything exists
        host = self.add_netns(role)
        pair = self.add_veth(
            host_suffix, nic_suffix, netns=host, peer_netns=nic_netns, tx_checksum=False
        )
        add_address(pair.name, str(iface), netns=host)
        return NicHost(host, pair.name, pair.peer, nic_netns, iface)

    def _configure(
        self, ifname: str, netns: str | None, *, up: bool, ipv6: bool, tx_checksum: bool
    ) -> None:
        if not ipv6:
            disable_ipv6(ifname, netns)
        if not tx_checksum:
            disable_tx_checksum(ifname, netns)
        if up:
            set_link_up(ifname, netns)

    def add_address(self, ifname: str, address: str) -> ipaddress.IPv4Interface:
        """Assign an address (198.18.0.0/15 only) to a link of this topology."""
        record = self._find_link(ifname)
        return add_address(ifname, address, netns=record.netns)

    def disable_tx_checksum(self, ifname: str) -> dict[str, bool]:
        """Switch TX checksum offload off on a link of this topology."""
        record = self._find_link(ifname)
        return disable_tx_checksum(ifname, netns=record.netns)

    def move_to_pid(self, ifname: str, pid: int, *, new_name: str | None = None) -> str:
        """Move a link of this topology into process ``pid``'s namespace (e.g. a container).

        Args:
            ifname: the link.
            pid: target process.
            new_name: rename on the way (keep the ``mh<runid>`` label if you do).

        Returns:
            The link's name in its new namespace.
        """
        record = self._find_link(ifname)
        start_time = process_start_time(pid)
        if start_time is None:
            raise TopologyError(f"no process {pid} to move {ifname!r} into")
        move_link(ifname, netns=record.netns, to_pid=pid, new_name=new_name)
        record.netns = pid_netns_path(pid)
        record.owner_pid, record.owner_start_time = pid, start_time
        if new_name is not None:
            record.name = new_name
        return record.name

    def move_to_netns(self, ifname: str, netns: str | None) -> None:
        """Move a link of this topology into another namespace (None: the harness's own)."""
        record = self._find_link(ifname)
        if netns is None:
            move_link(ifname, netns=record.netns, to_pid=os.getpid())
        else:
            move_link(ifname, netns=record.netns, to_netns=netns)
        record.netns = netns
        record.owner_pid = record.owner_start_time = None

    def add_socket_dir(self, purpose: str = "sock") -> Path:
        """Create a mode-0700 socket directory ``memif-harness-<runid>-<purpose>-*``."""
        path = self.label.make_socket_dir(purpose, self.tmp_dir)
        self._created.append(_Created("dir", str(path)))
        return path

    # -- teardown

    def _remove(self, record: _Created) -> None:
        if record.kind == "netns":
            delete_netns(record.name)
        elif record.kind == "dir":
            shutil.rmtree(record.name, ignore_errors=False)
        elif record.owner_pid is not None:
            # In a foreign process's namespace: gone with it if that process has exited.
            if process_start_time(record.owner_pid) == record.owner_start_time:
                delete_link(record.name, record.netns)
        elif record.netns is None or netns_exists(record.netns):
            delete_link(record.name, record.netns)

    def close(self) -> None:
        """Remove everything this topology created, newest first, whatever fails.

        Raises:
            TopologyCleanupError: listing every object that could not be removed.
        """
        if self._closed:
            return
        self._closed = True
        failures: list[str] = []
        for record in reversed(self._created):
            try:
                self._remove(record)
            except FileNotFoundError:
                pass
            except Exception as exc:
                failures.append(f"{record.kind} {record.name} ({record.netns}): {exc!r}")
                log.warning("cleanup of %s %s failed: %r", record.kind, record.name, exc)
        self._created.clear()
        if failures:
            raise TopologyCleanupError(failures)


def link_counters(ifname: str, netns: str | None = None) -> dict[str, int]:
    """Return an interface's kernel counters (IFLA_STATS64: rx_packets, tx_packets, ...)."""
    with iproute(netns) as ipr:
        stats = ipr.get_links(_index(ipr, ifname, netns))[0].get_attr("IFLA_STATS64")
        return {name: int(value) for name, value in stats.items()} if stats else {}


def wait_for(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.01, what: str = ""
) -> None:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass.

    Raises:
        TimeoutError: naming ``what`` if the deadline passes.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)
