"""End to end through NIC-backed peers: generator netns -> veth -> peer A -> memif -> peer B
-> veth -> sink netns, and back, with the reference and testpmd in both positions.

Layout (harness.topology.netns.Topology.add_nic_host): the generator and sink hosts live in
run-labelled namespaces with addresses from 198.18.1.0/24; the other end of each host's
veth (the peers' "NIC") stays in the harness's own namespace without any address, where
both peers run: `memif-ref ... forward --iface` opens AF_PACKET on it, testpmd takes it as
`net_af_packet`. The memif socket is a filesystem path in a run-labelled directory.
testpmd is pinned to CPU 0, memif-ref to CPU 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.peers.testpmd import MemifRole, TestpmdAfPacketPort, TestpmdMemifPort
from harness.topology.labels import RunLabel
from harness.topology.netns import NicHost, Topology
from tests.integration.conftest import MemifRef, TestpmdFactory
from tests.integration.test_reference_vs_testpmd import wait_socket
from tests.test_topology_netns import icmp_echo

pytestmark = [pytest.mark.testpmd, pytest.mark.integration]

PINGS = 5
GENERATOR_ADDRESS, SINK_ADDRESS = "198.18.1.1/24", "198.18.1.2/24"


@dataclass
class Hosts:
    generator: NicHost
    sink: NicHost
    socket_dir: Path


@pytest.fixture
def hosts(run_label: RunLabel) -> Iterator[Hosts]:
    """Generator and sink namespaces, their NIC ends in our namespace; removed afterwards."""
    with Topology(run_label) as topo:
        generator = topo.add_nic_host("fgen", "fg0", "fga", GENERATOR_ADDRESS)
        sink = topo.add_nic_host("fsink", "fs0", "fsb", SINK_ADDRESS)
        yield Hosts(generator, sink, topo.add_socket_dir("fwd"))


def ping_through(hosts: Hosts) -> int:
    """Send PINGS echo requests from the generator to the sink, one at a time; replies."""
    replies = 0
    for seq in range(PINGS):
        try:
            icmp_echo(
                hosts.generator.netns,
                str(hosts.sink.address.ip),
                ident=0x4D46,
                seq=seq,
                timeout=3.0,
            )
        except TimeoutError:
            continue
        replies += 1
    return replies


def test_reference_a_testpmd_b_ping_crosses_both_bridges(
    hosts: Hosts, testpmd: TestpmdFactory, memif_ref: type[MemifRef]
) -> None:
    """Steps: reference (server) bridges the generator's NIC and memif; testpmd (client)
    io-forwards between memif and the sink's NIC (net_af_packet); ping generator -> sink.
    Verify: every echo request is answered."""
    sock = hosts.socket_dir / "m.sock"
    forwarder = memif_ref(
        "server", "--socket", str(sock), "--timeout", "60", "--json",
        "forward", "--iface", hosts.generator.nic_if,
    )  # fmt: skip
    wait_socket(sock)
    tp = testpmd.start(
        TestpmdMemifPort(role=MemifRole.CLIENT, socket_path=sock),
        TestpmdAfPacketPort(iface=hosts.sink.nic_if),
        forward_mode="io",
    )
    tp.wait_for_link(0, timeout=20.0)
    tp.start_forwarding()
    assert ping_through(hosts) == PINGS, tp.log_tail()
    stats = tp.stop_forwarding()
    assert stats.ports[0].rx_packets >= PINGS and stats.ports[1].rx_packets >= PINGS
    assert forwarder.process.poll() is None, "the forwarder must still be running"


def test_testpmd_a_reference_b_ping_crosses_both_bridges(
    hosts: Hosts, testpmd: TestpmdFactory, memif_ref: type[MemifRef]
) -> None:
    """Steps: testpmd (server) io-forwards between the generator's NIC (net_af_packet) and
    memif; the reference (client) bridges memif and the sink's NIC; ping generator -> sink.
    Verify: every echo request is answered."""
    sock = hosts.socket_dir / "m.sock"
    tp = testpmd.start(
        TestpmdMemifPort(role=MemifRole.SERVER, socket_path=sock),
        TestpmdAfPacketPort(iface=hosts.generator.nic_if),
        forward_mode="io",
    )
    forwarder = memif_ref(
        "client", "--socket", str(sock), "--timeout", "60", "--json",
        "forward", "--iface", hosts.sink.nic_if,
    )  # fmt: skip
    tp.wait_for_link(0, timeout=20.0)
    tp.start_forwarding()
    assert ping_through(hosts) == PINGS, tp.log_tail()
    stats = tp.stop_forwarding()
    assert stats.ports[0].rx_packets >= PINGS and stats.ports[1].rx_packets >= PINGS
    assert forwarder.process.poll() is None, "the forwarder must still be running"
