"""Tests of namespaces, veth, TAP, addresses and cleanup on the real kernel (root needed)."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.topology import netns as tn
from harness.topology import reap
from harness.topology.labels import RunLabel, parse_link_alias, run_id_from_link
from harness.topology.netns import AddressNotAllowed, Topology, TopologyError

# --------------------------------------------------------------------------- pure checks


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1/24",
        "192.168.1.1/24",
        "198.17.255.1/24",
        "198.20.0.1/24",
        "198.18.0.1/14",  # connected route would cover 198.16.0.0/14
        "198.18.0.1/0",  # would act as a default route
        "8.8.8.8",
        "fd00::1/64",
        "2001:db8::1/64",
        "not-an-address",
    ],
)
def test_addresses_outside_the_benchmark_range_are_refused(address: str) -> None:
    with pytest.raises(AddressNotAllowed):
        tn.check_address(address)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("198.18.0.1/24", "198.18.0.1/24"),
        ("198.19.255.254/16", "198.19.255.254/16"),
        ("198.18.0.1/15", "198.18.0.1/15"),
        ("198.19.0.9", "198.19.0.9/32"),
    ],
)
def test_addresses_inside_the_benchmark_range_are_accepted(address: str, expected: str) -> None:
    assert tn.check_address(address) == ipaddress.IPv4Interface(expected)


# --------------------------------------------------------------------------- real kernel

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_NET_ADMIN)")


def icmp_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp_echo(netns: str, destination: str, *, ident: int, seq: int, timeout: float) -> float:
    """Send one ICMP echo request from inside ``netns`` and wait for the matching reply.

    Returns:
        The round-trip time in seconds.

    Raises:
        TimeoutError: if no matching reply arrives in time.
    """
    tn.check_address(destination)  # this helper never sends outside the benchmark range
    payload = b"memif-harness topology test"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    packet = struct.pack("!BBHHH", 8, 0, icmp_checksum(header + payload), ident, seq) + payload
    sock = tn.socket_in_netns(netns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    with sock:
        start = time.monotonic()
        deadline = start + timeout
        sock.sendto(packet, (destination, 0))
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                data, (source, _) = sock.recvfrom(2048)
            except TimeoutError:
                break
            ihl = (data[0] & 0x0F) * 4
            icmp_type, _, _, reply_ident, reply_seq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
            if (icmp_type, reply_ident, reply_seq, source) == (0, ident, seq, destination):
                assert data[ihl + 8 :] == payload
                return time.monotonic() - start
    raise TimeoutError(f"no echo reply from {destination} within {timeout}s")


def labelled_objects(label: RunLabel) -> list[reap.Leftover]:
    return reap.leftovers(docker_client=None, only_runs={label.run_id})


@pytest.fixture
def label() -> Iterator[RunLabel]:
    label = RunLabel.new()
    yield label
    # Whatever a test did, leave no namespace or link of this run behind.
    for name in tn.list_netns():
        if name.startswith(f"memif-{label.run_id}-"):
            tn.delete_netns(name)
    for name, _ in tn.list_links():
        if run_id_from_link(name) == label.run_id:
            tn.delete_link(name)


@pytest.mark.integration
@needs_root
def test_two_namespaces_joined_by_veth_exchange_icmp_and_udp(label: RunLabel) -> None:
    with Topology(label) as topo:
        host_a, host_b = topo.add_netns("a"), topo.add_netns("b")
        pair = topo.add_veth("a0", "b0", netns=host_a, peer_netns=host_b)
        topo.add_address(pair.name, "198.18.0.1/24")
        topo.add_address(pair.peer, "198.18.0.2/24")

        assert tn.get_addresses(pair.name, host_a) == [ipaddress.IPv4Interface("198.18.0.1/24")]
        assert tn.link_is_up(pair.name, host_a) and tn.link_is_up(pair.peer, host_b)
        assert not tn.link_exists(pair.name), "the end must not stay in the root namespace"

        rtt = icmp_echo(host_a, "198.18.0.2", ident=0x4D48, seq=1, timeout=5.0)
        assert 0 <= rtt < 5.0
        icmp_echo(host_b, "198.18.0.1", ident=0x4D48, seq=2, timeout=5.0)

        receiver = tn.socket_in_netns(host_b, socket.AF_INET, socket.SOCK_DGRAM)
        sender = tn.socket_in_netns(host_a, socket.AF_INET, socket.SOCK_DGRAM)
        with receiver, sender:
            receiver.bind(("198.18.0.2", 0))
            receiver.settimeout(5.0)
            sender.settimeout(5.0)
            sender.sendto(b"ping", receiver.getsockname())
            data, peer = receiver.recvfrom(64)
            assert (data, peer[0]) == (b"ping", "198.18.0.1")
            receiver.sendto(b"pong", peer)
            assert sender.recvfrom(64)[0] == b"pong"

        assert {obj.name for obj in labelled_objects(label)} >= {host_a, host_b}
    assert labelled_objects(label) == []
    assert not tn.netns_exists(host_a) and not tn.netns_exists(host_b)


@pytest.mark.integration
@needs_root
def test_veth_with_one_end_in_the_root_namespace(label: RunLabel) -> None:
    with Topology(label) as topo:
        host = topo.add_netns("h")
        pair = topo.add_veth("r0", "h0", peer_netns=host)
        assert tn.link_exists(pair.name)
        assert not tn.link_exists(pair.peer)
        assert tn.link_exists(pair.peer, host)
        aliases = dict(tn.list_links())
        parsed = parse_link_alias(aliases[pair.name])
        assert parsed is not None and parsed[0] == label.run_id
        assert parsed[1] is not None and abs(parsed[1] - time.time()) < 60
        kinds = {(obj.kind, obj.name) for obj in labelled_objects(label)}
        assert (reap.LeftoverKind.LINK, pair.name) in kinds
    assert not tn.link_exists(pair.name)
    assert labelled_objects(label) == []


@pytest.mark.integration
@needs_root
def test_mtu_of_both_veth_ends_fits_1518_byte_frames(label: RunLabel) -> None:
    """A 1518-byte frame (L2, no FCS) carries 1504 bytes: more than the default MTU."""
    with Topology(label) as topo:
        host = topo.add_netns("m")
        pair = topo.add_veth("m0", "m1", peer_netns=host)
        tn.set_mtu(pair.name, 1504)
        tn.set_mtu(pair.peer, 1504, host)
        assert Path(f"/sys/class/net/{pair.name}/mtu").read_text().strip() == "1504"
        with tn.iproute(host) as ipr:
            (link,) = ipr.get_links(ipr.link_lookup(ifname=pair.peer)[0])
            assert link.get_attr("IFLA_MTU") == 1504
        with pytest.raises(ValueError, match="MTU 20"):
            tn.set_mtu(pair.name, 20)


@pytest.mark.integration
@needs_root
def test_tap_in_a_namespace(label: RunLabel) -> None:
    with Topology(label) as topo:
        host = topo.add_netns("t")
        tap = topo.add_tap("tap0", netns=host)
        topo.add_address(tap, "198.19.1.1/24")
        assert tn.link_exists(tap, host)
        assert not tn.link_exists(tap)
        assert tn.link_is_up(tap, host)
        assert tn.get_addresses(tap, host) == [ipaddress.IPv4Interface("198.19.1.1/24")]
        flags = Path(f"/sys/class/net/{tap}/tun_flags")
        assert not flags.exists(), "sysfs of the root namespace must not show the moved TAP"
    assert labelled_objects(label) == []


@pytest.mark.integration
@needs_root
def test_refused_address_leaves_the_link_untouched(label: RunLabel) -> None:
    with Topology(label) as topo:
        host = topo.add_netns("x")
        pair = topo.add_veth("x0", "x1", netns=host, peer_netns=host)
        with pytest.raises(AddressNotAllowed, match=r"198\.18\.0\.0/15"):
            topo.add_address(pair.name, "10.1.2.3/24")
        assert tn.get_addresses(pair.name, host) == []


@pytest.mark.integration
@needs_root
def test_no_default_route_is_ever_added(label: RunLabel) -> None:
    with Topology(label) as topo:
        host = topo.add_netns("r")
        pair = topo.add_veth("r0", "r1", netns=host, peer_netns=host)
        topo.add_address(pair.name, "198.18.5.1/24")
        with tn.iproute(host) as ipr:
            routes = [
                (r.get_attr("RTA_DST"), r["dst_len"])
                for r in ipr.get_routes(family=socket.AF_INET, table=254)
            ]
        assert routes == [("198.18.5.0", 24)]
        assert all(dst_len > 0 for _, dst_len in routes)


@pytest.mark.integration
@needs_root
def test_disable_tx_checksum_through_pyroute2_ethtool(label: RunLabel) -> None:
    with Topology(label) as topo:
        host = topo.add_netns("c")
        pair = topo.add_veth("c0", "c1", netns=host, peer_netns=host)
        before = tn.tx_checksum_features(pair.name, host)
        assert before.get("tx-checksum-ip-generic") is True, before
        after = topo.disable_tx_checksum(pair.name)
        assert after and not any(after.values())
        assert tn.tx_checksum_features(pair.name, host) == after
        assert tn.tx_checksum_features(pair.peer, host) == before, "only the asked end changes"

        quiet = topo.add_veth("q0", "q1", netns=host, peer_netns=host, tx_checksum=False)
        assert not any(tn.tx_checksum_features(quiet.peer, host).values())


@pytest.mark.integration
@needs_root
def test_ipv6_is_off_unless_asked(label: RunLabel) -> None:
    if not Path("/proc/sys/net/ipv6").exists():
        pytest.skip("kernel without IPv6")

    def disabled(ifname: str) -> str:
        return Path(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6").read_text().strip()

    with Topology(label) as topo:
        host = topo.add_netns("six")
        quiet = topo.add_veth("s0", "s1", netns=host, peer_netns=host)
        chatty = topo.add_veth("s2", "s3", netns=host, peer_netns=host, ipv6=True)
        assert tn.run_in_netns(host, disabled, quiet.name) == "1"
        assert tn.run_in_netns(host, disabled, chatty.name) == "0"


@pytest.mark.integration
@needs_root
def test_everything_is_removed_after_an_error(label: RunLabel) -> None:
    with pytest.raises(RuntimeError, match="scenario blew up"), Topology(label) as topo:
        host = topo.add_netns("e")
        topo.add_veth("e0", "e1", peer_netns=host)
        topo.add_tap("e2")
        sockets = topo.add_socket_dir("sock")
        assert sockets.is_dir()
        raise RuntimeError("scenario blew up")
    assert labelled_objects(label) == []
    assert not sockets.exists()


@pytest.mark.integration
@needs_root
def test_failed_veth_creation_leaves_nothing_behind(label: RunLabel) -> None:
    with Topology(label) as topo:
        with pytest.raises((TopologyError, OSError)):
            topo.add_veth("f0", "f1", peer_netns="/run/netns/memif-no-such-namespace")
        assert not tn.link_exists(label.link("f0"))
        assert not tn.link_exists(label.link("f1"))
        assert topo.links == []


@pytest.mark.integration
@needs_root
def test_cleanup_failure_is_reported(label: RunLabel) -> None:
    topo = Topology(label)
    host = topo.add_netns("d")
    topo.add_socket_dir("sock")
    topo._created.append(tn._Created("dir", "/proc/self"))  # cannot be removed
    with pytest.raises(tn.TopologyCleanupError, match="/proc/self"):
        topo.close()
    assert not tn.netns_exists(host), "one failure must not stop the rest of the cleanup"


@pytest.mark.integration
@needs_root
def test_move_a_link_into_a_process_namespace(label: RunLabel) -> None:
    with Topology(label) as topo:
        container_like = topo.add_netns("ctr")
        sleeper = tn.popen_in_netns(container_like, ["sleep", "60"])
        try:
            pair = topo.add_veth("m0", "m1")
            new_name = topo.move_to_pid(pair.peer, sleeper.pid, new_name=label.link("eth"))
            assert new_name == label.link("eth")
            assert tn.link_exists(new_name, tn.pid_netns_path(sleeper.pid))
            assert tn.link_exists(new_name, container_like)
            assert not tn.link_exists(pair.peer)
            assert tn.link_exists(pair.name)
        finally:
            sleeper.kill()
            sleeper.wait(timeout=30)
    assert labelled_objects(label) == []


@pytest.mark.integration
@needs_root
def test_a_child_process_runs_inside_the_namespace(label: RunLabel) -> None:
    own_netns = os.readlink("/proc/thread-self/ns/net")
    with Topology(label) as topo:
        host = topo.add_netns("p")
        pair = topo.add_veth("p0", "p1", netns=host, peer_netns=host)
        child = tn.popen_in_netns(host, ["cat", "/proc/net/dev"], stdout=subprocess.PIPE, text=True)
        out, _ = child.communicate(timeout=30)
        names = {line.split(":")[0].strip() for line in out.splitlines()[2:]}
        assert names == {"lo", pair.name, pair.peer}
        inside = tn.run_in_netns(host, os.readlink, "/proc/thread-self/ns/net")
        assert inside != own_netns
    assert os.readlink("/proc/thread-self/ns/net") == own_netns


@pytest.mark.integration
@needs_root
def test_namespace_names_are_labelled_and_unique(label: RunLabel) -> None:
    with Topology(label) as topo:
        name = topo.add_netns("dup")
        assert name == label.netns("dup")
        with pytest.raises(TopologyError, match="already exists"):
            topo.add_netns("dup")
        assert topo.namespaces == [name]
