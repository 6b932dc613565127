"""The NIC-backed topology: generator ns -> veth -> peer A -> memif -> peer B -> veth -> sink ns.

Both memif peers forward between memif and their "NIC" (the root-namespace end of a host's
veth) and keep running across trials. Each trial runs the reference's TPACKET generator in
the generator namespace and its TPACKET sink in the sink namespace, both bounded in frames
and seconds, and reads their counts and the latency of the stamped frames. The generator's
self-test sends through one veth straight into a sink namespace, with no DUT at all.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.peers.base import Activity, Peer, Role
from harness.topology import netns as tn
from harness.topology.netns import NicHost, Topology
from harness.topology.numa import Placement
from harness.traffic.bench_point import Direction
from harness.traffic.memif_path import LINK_TIMEOUT, PairSetup, PathError, stop_all
from harness.traffic.trial import TrialOutcome

GENERATOR_ADDRESS, SINK_ADDRESS = "198.18.2.1/24", "198.18.2.2/24"
SELF_GENERATOR_ADDRESS, SELF_SINK_ADDRESS = "198.18.3.1/24", "198.18.3.2/24"
SINK_DRAIN = 1.0
"""Seconds the sink keeps counting after the generator finished (frames still in flight)."""
PROCESS_GRACE = 20.0
"""Seconds a generator or sink may take beyond its own time (interpreter start, a busy host);
also how long a sink nobody stops listens beyond the trial's duration."""
MAX_RATE_BOUND = 20_000_000
"""Frames per second used to bound a generator's frame count at full load."""


@dataclasses.dataclass(frozen=True)
class Hosts:
    """Where a trial's generator and sink run."""

    generator: NicHost
    sink: NicHost


def _run_bounded(
    procs: list[tuple[str, subprocess.Popen[bytes]]], timeout: float
) -> dict[str, dict[str, Any]]:
    """Wait for every process (killing all at the bound); their --json output by name."""
    deadline = time.monotonic() + timeout
    outputs: dict[str, dict[str, Any]] = {}
    try:
        for name, proc in procs:
            try:
                out, err = proc.communicate(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                raise PathError(f"the {name} did not finish within {timeout:g} s") from None
            if proc.returncode != 0:
                raise PathError(
                    f"the {name} failed (exit {proc.returncode}): "
                    f"{err.decode(errors='replace')[-2000:]}"
                )
            try:
                loaded = json.loads(out.decode().strip().splitlines()[-1])
            except (ValueError, IndexError):
                raise PathError(f"the {name} printed no JSON result: {out[-500:]!r}") from None
            outputs[name] = loaded.get("result", loaded)
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return outputs


class TrafficPair:
    """The reference's TPACKET generator and sink on two hosts, one bounded trial at a time."""

    def __init__(
        self, hosts: Hosts, frame_size: int, workdir: Path, placement: Placement | None
    ) -> None:
        self.hosts = hosts
        self.frame_size = frame_size
        self.workdir = workdir
        self.placement = placement
        self._trials = 0

    def _popen(self, netns: str, argv: list[str]) -> subprocess.Popen[bytes]:
        prepare = self.placement.apply_to_current_thread if self.placement else None
        return tn.popen_in_netns(
            netns, argv, prepare=prepare, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def trial(self, duration: float, load: float | None) -> TrialOutcome:
        """Send for `duration` seconds at `load` (None: as fast as possible), count at the sink."""
        self._trials += 1
        ready = self.workdir / f"sink-ready-{self._trials}"
        stop = self.workdir / f"sink-stop-{self._trials}"
        for path in (ready, stop):
            path.unlink(missing_ok=True)
        sink_mac = tn.get_mac(self.hosts.sink.host_if, self.hosts.sink.netns)
        generator_mac = tn.get_mac(self.hosts.generator.host_if, self.hosts.generator.netns)
        sink = self._popen(
            self.hosts.sink.netns,
            [
                sys.executable, "-m", "reference_impl.cli", "iface-sink",
                "--iface", self.hosts.sink.host_if,
                "--seconds", f"{duration + PROCESS_GRACE:.3f}",
                "--stop-file", str(stop), "--drain", f"{SINK_DRAIN:g}",
                "--ready", str(ready), "--json",
            ],
        )  # fmt: skip
        try:
            _wait_file(ready, sink, 15.0)
            return self._send(duration, load, sink, sink_mac, generator_mac, stop)
        finally:
            if sink.poll() is None:  # the generator never started, or the bound struck
                sink.kill()
                sink.communicate()
            for path in (ready, stop):
                path.unlink(missing_ok=True)

    def _send(
        self,
        duration: float,
        load: float | None,
        sink: subprocess.Popen[bytes],
        sink_mac: str,
        generator_mac: str,
        stop: Path,
    ) -> TrialOutcome:
        """Run the generator; once it is done the sink counts `SINK_DRAIN` s more, then ends."""
        bound = int((load or MAX_RATE_BOUND) * duration) + 1
        argv = [
            sys.executable, "-m", "reference_impl.cli", "iface-source",
            "--iface", self.hosts.generator.host_if,
            "--size", str(self.frame_size), "--count", str(bound),
            "--seconds", f"{duration:.3f}",
            "--src-mac", generator_mac, "--dst-mac", sink_mac,
            "--src-ip", str(self.hosts.generator.address.ip),
            "--dst-ip", str(self.hosts.sink.address.ip),
            "--json",
        ]  # fmt: skip
        if load is not None:
            argv += ["--rate", f"{load:.3f}"]
        source = self._popen(self.hosts.generator.netns, argv)
        sent = _run_bounded([("generator", source)], duration + PROCESS_GRACE)["generator"]
        stop.touch()
        got = _run_bounded([("sink", sink)], SINK_DRAIN + PROCESS_GRACE)["sink"]
        try:
            return TrialOutcome(
                duration,
                load,
                sent=int(sent["sent"]),
                unsent=int(sent.get("unsent", 0)),
                received=int(got.get("stamped", got["received"])),
                seconds=float(sent.get("elapsed") or duration),
                latency=got.get("latency"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PathError(f"generator or sink reported no counts ({exc}): {sent} {got}") from exc


ETHERNET_HEADER = 14


def _fit_frames(host: NicHost, frame_size: int) -> None:
    """Raise the MTU of both ends of a host's veth so `frame_size`-byte frames (L2, no FCS:
    1518 B is 1504 B of payload) pass; never below the default 1500."""
    mtu = max(1500, frame_size - ETHERNET_HEADER)
    tn.set_mtu(host.host_if, mtu, host.netns)
    tn.set_mtu(host.nic_if, mtu, host.nic_netns)


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise PathError(f"the sink exited before it was ready: {err.decode()[-1000:]}")
        if time.monotonic() > deadline:
            raise PathError(f"the sink was not ready within {timeout:g} s")
        time.sleep(0.02)


class NicPath:
    """The two forwarding peers and their hosts; `trial` runs one generator/sink trial."""

    def __init__(
        self,
        pair: PairSetup,
        topology: Topology,
        *,
        placements: dict[str, Placement | None],
        workdir: Path,
    ) -> None:
        """Prepare; the hosts and peers come up in `__enter__`.

        Args:
            pair: the peers, the link and the frames (s2c: the generator feeds the
                server's NIC; c2s: the client's).
            topology: the run's topology (namespaces and veths are removed with it).
            placements: by "server", "client" and "traffic" (generator and sink).
            workdir: where readiness files go.
        """
        self.pair = pair
        self.topology = topology
        self.placements = placements
        self.workdir = workdir
        self.peers: list[Peer] = []
        self.traffic: TrafficPair | None = None

    def __enter__(self) -> NicPath:
        """Hosts, then both forwarders (server first) and their link; whatever started is
        stopped again when something fails."""
        try:
            return self._enter()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _enter(self) -> NicPath:
        server_host = self.topology.add_nic_host("bench_a", "ba0", "ban", GENERATOR_ADDRESS)
        client_host = self.topology.add_nic_host("bench_b", "bb0", "bbn", SINK_ADDRESS)
        for host in (server_host, client_host):
            _fit_frames(host, self.pair.frame_size)
        nic = {Role.SERVER: server_host.nic_if, Role.CLIENT: client_host.nic_if}
        for role in (Role.SERVER, Role.CLIENT):
            spec = self.pair.spec(role, activity=Activity.FORWARD, iface=nic[role])
            peer = self.pair.make_peer(self.pair.kind(role), spec, self.placements.get(role.value))
            peer.start()
            self.peers.append(peer)
        for peer in self.peers:
            if not peer.wait_for_link(LINK_TIMEOUT):
                raise PathError(
                    f"{peer.kind} {peer.spec.role.value}: no link in {LINK_TIMEOUT:g} s"
                )
        generator, sink = (
            (server_host, client_host)
            if self.pair.direction is Direction.S2C
            else (client_host, server_host)
        )
        self.traffic = TrafficPair(
            Hosts(generator, sink),
            self.pair.frame_size,
            self.workdir,
            self.placements.get("traffic"),
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        stop_all(self.peers)

    def trial(self, duration: float, load: float | None) -> TrialOutcome:
        """One generator -> DUT -> sink trial; the forwarders must be up before and after
        (a forwarder that left would only look like 100 % loss)."""
        if self.traffic is None:
            raise PathError("enter the path first")
        self._check_peers("before")
        outcome = self.traffic.trial(duration, load)
        self._check_peers("after")
        return outcome

    def _check_peers(self, when: str) -> None:
        for peer in self.peers:
            status = peer.status()
            if not (status.running and status.link_up):
                state = "not running" if not status.running else "link down"
                raise PathError(f"{peer.kind} {peer.spec.role.value}: {state} {when} a trial")

    def self_test(self, duration: float) -> TrialOutcome:
        """The generator straight into a sink over one veth (no DUT), at full load."""
        a = self.topology.add_netns("selftest_gen")
        b = self.topology.add_netns("selftest_sink")
        pair = self.topology.add_veth("sg0", "ss0", netns=a, peer_netns=b, tx_checksum=False)
        tn.add_address(pair.name, SELF_GENERATOR_ADDRESS, netns=a)
        tn.add_address(pair.peer, SELF_SINK_ADDRESS, netns=b)
        hosts = Hosts(
            NicHost(a, pair.name, pair.peer, b, tn.check_address(SELF_GENERATOR_ADDRESS)),
            NicHost(b, pair.peer, pair.name, a, tn.check_address(SELF_SINK_ADDRESS)),
        )
        _fit_frames(hosts.generator, self.pair.frame_size)
        traffic = TrafficPair(
            hosts, self.pair.frame_size, self.workdir, self.placements.get("traffic")
        )
        return traffic.trial(duration, None)
