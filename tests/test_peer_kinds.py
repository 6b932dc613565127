"""Peer kind names (`--peers`, including faulty references) and pair selection (`--pairs`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.peers.base import Activity, MemifSpec, Role
from harness.peers.reference import ReferencePeer, memif_ref_argv
from scenarios import api
from scenarios.plugin import selected_pairs


def test_known_kinds_and_faulty_references() -> None:
    assert api.peer_kind("testpmd") is api.PEER_KINDS["testpmd"]
    faulty = api.peer_kind("reference+stale-next+split-chain")
    assert faulty.name == "reference+stale-next+split-chain" and faulty.needs == ()
    assert api.base_kind("reference+stale-next") == "reference"
    assert api.base_kind("testpmd") == "testpmd"


@pytest.mark.parametrize("name", ["reference+", "reference+late", "testpmd+stale-next", "nope"])
def test_unknown_kinds_are_refused(name: str) -> None:
    assert not api.is_peer_kind(name)
    with pytest.raises(KeyError):
        api.peer_kind(name)


def test_a_faulty_reference_passes_its_faults_to_memif_ref(tmp_path: Path) -> None:
    spec = MemifSpec(Role.CLIENT, str(tmp_path / "m.sock"))
    peer = api.peer_kind("reference+wrong-cookie").make(spec, tmp_path, 1, "prefix")
    assert isinstance(peer, ReferencePeer)
    assert peer.faults == ("wrong-cookie",)
    argv = memif_ref_argv(spec, tmp_path / "s.json", faults=peer.faults)
    assert argv[argv.index("--fault") + 1] == "wrong-cookie"
    assert argv.index("--fault") < argv.index("responder")  # an option of memif-ref itself


def test_verify_and_forward_activities_map_to_check_and_forward(tmp_path: Path) -> None:
    spec = MemifSpec(
        Role.SERVER,
        str(tmp_path / "m.sock"),
        activity=Activity.VERIFY,
        frame_sizes=(64, 9000),
        frame_count=7,
        window=3,
    )
    argv = memif_ref_argv(spec, tmp_path / "s.json")
    assert argv[-7:] == ["check", "--count", "7", "--sizes", "64,9000", "--window", "3"]
    forward = MemifSpec(Role.SERVER, str(tmp_path / "m.sock"), activity=Activity.FORWARD)
    assert memif_ref_argv(forward, tmp_path / "s.json")[-1] == "forward"
    ip = MemifSpec(Role.CLIENT, str(tmp_path / "m.sock"), mode="ip")
    argv = memif_ref_argv(ip, tmp_path / "s.json")
    assert argv[argv.index("--mode") + 1] == "ip"


def test_interrupt_mode_maps_to_memif_ref_interrupt(tmp_path: Path) -> None:
    spec = MemifSpec(Role.SERVER, str(tmp_path / "m.sock"), activity=Activity.SINK)
    assert "--interrupt" not in memif_ref_argv(spec, tmp_path / "s.json")  # polls by default
    argv = memif_ref_argv(dataclasses.replace(spec, interrupt=True), tmp_path / "s.json")
    assert argv.index("--interrupt") < argv.index("sink")  # an option of memif-ref itself


def test_spec_refuses_unknown_modes_and_empty_checks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode 'tun'"):
        MemifSpec(Role.CLIENT, "x", mode="tun")
    with pytest.raises(ValueError, match="frame_count and window"):
        MemifSpec(Role.CLIENT, "x", window=0)


def test_selected_pairs() -> None:
    kinds = ("reference", "testpmd")
    assert selected_pairs(kinds, None) == [
        ("reference", "reference"),
        ("reference", "testpmd"),
        ("testpmd", "reference"),
        ("testpmd", "testpmd"),
    ]
    assert selected_pairs(kinds, "testpmd:reference, reference:reference") == [
        ("testpmd", "reference"),
        ("reference", "reference"),
    ]


@pytest.mark.parametrize("text", ["reference", "reference:vpp", ",", "a:b:c"])
def test_bad_pairs_are_usage_errors(text: str) -> None:
    with pytest.raises(pytest.UsageError, match="--pairs"):
        selected_pairs(("reference", "testpmd"), text)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"activity": Activity.VERIFY}, "no forwarding mode for activity 'verify'"),
        ({"mode": "ip"}, "Ethernet mode only, not 'ip'"),
        ({"interrupt": True}, "always polls"),
        ({"activity": Activity.SOURCE, "rate": 1e5}, "cannot pace"),
        ({"activity": Activity.SOURCE, "trials": True}, "cannot pace"),
    ],
)
def test_testpmd_refuses_what_it_cannot_do(overrides: dict[str, object], message: str) -> None:
    from harness.peers.base import PeerError
    from harness.peers.testpmd_peer import testpmd_config

    spec = MemifSpec(Role.CLIENT, "/tmp/x.sock", **overrides)  # type: ignore[arg-type]
    with pytest.raises(PeerError, match=message):
        testpmd_config(spec, cpu=0, file_prefix="p")


def test_interrupt_mode_reaches_external_templates_and_vpp_refuses_it(tmp_path: Path) -> None:
    from harness.peers.external import ExternalCommand
    from harness.peers.vpp_peer import memif_setup

    spec = MemifSpec(Role.CLIENT, str(tmp_path / "m.sock"), interrupt=True)
    command = ExternalCommand("prog --socket {socket} --rx-mode {rx_mode}")
    assert command.argv(spec, tmp_path)[-2:] == ["--rx-mode", "interrupt"]
    polling = dataclasses.replace(spec, interrupt=False)
    assert command.argv(polling, tmp_path)[-1] == "poll"
    with pytest.raises(ValueError, match="not mapped to VPP's rx-mode"):
        memif_setup(spec)


def test_benchmark_fields_map_to_memif_ref_and_testpmd(tmp_path: Path) -> None:
    """SOURCE rate/seconds/trials, FORWARD to a NIC, and no pcap for a benchmark."""
    from harness.peers.testpmd_peer import testpmd_config

    paced = MemifSpec(Role.CLIENT, "/tmp/x.sock", activity=Activity.SOURCE, frame_size=128,
                      rate=250_000.0, seconds=2.0)  # fmt: skip
    argv = memif_ref_argv(paced, tmp_path / "s.json")
    assert argv[argv.index("source") :] == [
        "source", "--count", "1000000000000", "--size", "128",
        "--rate", "250000.000", "--seconds", "2.000",
    ]  # fmt: skip
    trials = dataclasses.replace(paced, rate=None, seconds=None, trials=True)
    argv = memif_ref_argv(trials, tmp_path / "s.json", trial_plan=tmp_path / "plan.json")
    assert argv[-2:] == ["--trials", str(tmp_path / "plan.json")]
    nic = MemifSpec(Role.SERVER, "/tmp/x.sock", activity=Activity.FORWARD, iface="veth7")
    assert memif_ref_argv(nic, tmp_path / "s.json")[-3:] == ["forward", "--iface", "veth7"]
    config = testpmd_config(nic, cpu=0, file_prefix="p")
    assert config.forward_mode == "io" and len(config.ports) == 2
    assert "iface=veth7" in config.ports[1].vdev_arg(1)
    quiet = ReferencePeer(dataclasses.replace(nic, capture=False), tmp_path)
    assert quiet._capture_path() is None
    assert ReferencePeer(nic, tmp_path)._capture_path() is not None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rate": 0.0}, "rate"),
        ({"seconds": -1.0}, "seconds"),
        ({"iface": "veth0"}, "iface"),
        ({"trials": True, "rate": 10.0}, "trials"),
    ],
)
def test_spec_refuses_inconsistent_benchmark_fields(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        MemifSpec(Role.CLIENT, "/tmp/x.sock", activity=Activity.SOURCE, **fields)  # type: ignore[arg-type]
