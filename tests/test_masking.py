"""Tests of secret masking: known secrets, secret spellings on command lines, JSON fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.masking import MASK, mask_text, mask_value
from harness.runtime.local import LocalProcess


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "$ dpdk-testpmd --vdev=net_memif0,role=server,socket=/m.sock,secret=s3cr3t,rsize=10",
            f"$ dpdk-testpmd --vdev=net_memif0,role=server,socket=/m.sock,secret={MASK},rsize=10",
        ),
        (
            "$ python -m reference_impl.cli client --socket /x --secret hunter2 responder",
            f"$ python -m reference_impl.cli client --socket /x --secret {MASK} responder",
        ),
        ("memif-ref --secret=ab", f"memif-ref --secret={MASK}"),
        ("vpp ... secret 'x y'", "vpp ... secret 'x y'"),  # not a known spelling: untouched
        ("reason: secret required; incorrect secret", "reason: secret required; incorrect secret"),
        ("the secret-required case", "the secret-required case"),
    ],
)
def test_secret_spellings_are_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_known_secrets_are_masked_anywhere_longest_first() -> None:
    text = "create interface memif secret memif-secret-12 (prefix memif-secret-1)"
    assert mask_text(text, ["memif-secret-1", "memif-secret-12", None, ""]) == (
        f"create interface memif secret {MASK} (prefix {MASK})"
    )


def test_a_short_secret_is_masked_only_where_spelled_as_one() -> None:
    assert mask_text("a cat sat --secret at", ["at"]) == f"a cat sat --secret {MASK}"


def test_json_secret_fields_are_masked_and_empty_ones_kept() -> None:
    trace = [
        {"type": "INIT", "fields": {"secret": "memif-secret-1", "name": "memif-ref"}},
        {"type": "INIT", "fields": {"secret": "", "name": "dpdk"}},
        {"type": "NOTE", "text": "sent memif-secret-1 twice", "fds": 0},
    ]
    masked = mask_value(trace, ["memif-secret-1"])
    assert masked == [
        {"type": "INIT", "fields": {"secret": MASK, "name": "memif-ref"}},
        {"type": "INIT", "fields": {"secret": "", "name": "dpdk"}},
        {"type": "NOTE", "text": f"sent {MASK} twice", "fds": 0},
    ]
    assert trace[0]["fields"]["secret"] == "memif-secret-1"  # a copy, not changed in place


def test_a_local_process_log_header_carries_no_secret(tmp_path: Path) -> None:
    log = tmp_path / "peer.log"
    process = LocalProcess(["true", "--secret", "hunter22", "secret=hunter22"], log)
    assert process.wait(10.0) == 0
    process.stop()
    assert "hunter22" not in log.read_text()
    assert log.read_text().startswith(f"$ true --secret {MASK} secret={MASK}")
