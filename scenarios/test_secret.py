"""Secret suite: who must present a secret, what counts as equal, and what cannot be sent.

Fact sheet (memif-protocol.md) §2.3 (INIT.secret is a 24-byte NUL-terminated field), §2.4
(senders keep a NUL: at most 23 characters), §3.3 (a server with a secret refuses a client
without one, "secret required", or with another one, "incorrect secret"; a server without a
secret accepts any client secret: DPDK, VPP and libmemif), §9.8 (implementations differ).
"""

from __future__ import annotations

from collections.abc import Callable

from scenarios.api import (
    DisconnectReason,
    Lab,
    Pair,
    Role,
    StartAttempt,
    expect_link_up,
    expect_refused,
    known_deviation,
    verify,
)

SECRET = "memif-secret-1"
OTHER_SECRET = "memif-secret-2"
LONGEST_SECRET = "s3cr3t-of-23-characters"  # 23 characters: the 24-byte field and its NUL
TOO_LONG_LENGTHS = (24, 40)
LIBMEMIF4_SECRET = (
    "fact sheet §3.3/§9.8: libmemif 4.x masters answer a missing secret with "
    '"Incorrect secret" (extras/libmemif/src/socket.c memif_msg_parse_init)'
)
GOMEMIF_SECRET = (
    "fact sheet §3.3/§9.8: gomemif masters compare all 24 secret bytes, so they refuse a "
    "client secret they did not ask for (extras/gomemif/memif/control_channel.go parseInit)"
)

assert len(LONGEST_SECRET) == 23


@known_deviation("libmemif", Role.SERVER, LIBMEMIF4_SECRET)
def test_server_secret_without_client_secret_is_refused(start_pair: Callable[..., Pair]) -> None:
    """A server with a secret refuses a client that sends none.

    Steps:
        1. Start the server with a secret.
        2. Start the client without a secret.
    Verify:
        - The client's link never comes up.
        - A peer reports "secret required".
    """
    pair = start_pair({"secret": SECRET}, {})
    expect_refused(pair, DisconnectReason.SECRET_REQUIRED)


@known_deviation("gomemif", Role.SERVER, GOMEMIF_SECRET)
def test_client_secret_without_server_secret_is_accepted(start_pair: Callable[..., Pair]) -> None:
    """A server without a secret accepts a client that sends one (DPDK, VPP, libmemif).

    Steps:
        1. Start the server without a secret.
        2. Start the client with a secret.
    Verify:
        - Both links come up.
    """
    pair = start_pair({}, {"secret": SECRET})
    expect_link_up(pair)


def test_different_secrets_are_refused(start_pair: Callable[..., Pair]) -> None:
    """A server refuses a client whose secret differs from its own.

    Steps:
        1. Start the server with one secret.
        2. Start the client with another secret of the same length.
    Verify:
        - The client's link never comes up.
        - A peer reports "incorrect secret".
    """
    pair = start_pair({"secret": SECRET}, {"secret": OTHER_SECRET})
    expect_refused(pair, DisconnectReason.INCORRECT_SECRET)


def test_equal_secrets_link_up(start_pair: Callable[..., Pair]) -> None:
    """Server and client with the same secret bring the link up.

    Steps:
        1. Start the server and the client with the same secret.
    Verify:
        - Both links come up.
    """
    pair = start_pair({"secret": SECRET}, {"secret": SECRET})
    expect_link_up(pair)


def test_longest_secret_links_up(start_pair: Callable[..., Pair]) -> None:
    """A 23-character secret, the longest the 24-byte field holds with its NUL, works.

    Steps:
        1. Start the server and the client with the same 23-character secret.
    Verify:
        - Both links come up.
    """
    pair = start_pair({"secret": LONGEST_SECRET}, {"secret": LONGEST_SECRET})
    expect_link_up(pair)


def test_secret_longer_than_the_field_is_refused_before_start(lab: Lab) -> None:
    """A secret of 24 characters or more cannot be sent; the harness must say so, not truncate.

    Steps:
        1. For the server kind as server and the client kind as client, and for secrets of
           24 and 40 characters: build the spec, the peer, and start it. A client gets a
           memif-ref server to talk to whose secret is the first 23 characters.
        2. If the peer started anyway, a server gets a memif-ref client with the first 23
           characters of the secret, and the links are watched for 5 s.
    Verify:
        - A layer (MemifSpec, the adapter, or the peer's tool at start-up) refuses the
          secret before the peer takes part in any handshake.
        - Its error names the secret.
        - (When nothing refused it, the notes show whether the secret was silently
          truncated: a peer with the first 23 characters linked up.)
    """
    outcomes: list[tuple[str, StartAttempt, str]] = []
    for role, kind in ((Role.SERVER, lab.server_kind), (Role.CLIENT, lab.client_kind)):
        for length in TOO_LONG_LENGTHS:
            secret = (LONGEST_SECRET * 2)[:length]
            attempt, truncation = _attempt_oversized_secret(lab, kind, role, secret)
            what = f"{kind} {role.value}, {length}-character secret"
            outcomes.append((what, attempt, truncation))
    for what, attempt, truncation in outcomes:
        if attempt.peer is None:
            observed = f"refused by {attempt.refused_by}: {attempt.error.splitlines()[-1]!r}"
        else:
            observed = f"nobody refused it: the peer started; {truncation}"
        verify(
            attempt.peer is None,
            f"{what}: refused before start",
            expected="refused by MemifSpec, the adapter or the tool",
            observed=observed,
        )
    for what, attempt, _ in outcomes:
        verify(
            "secret" in attempt.error.lower(),
            f"{what}: the error names the secret",
            expected="an error message that mentions the secret",
            observed=repr(attempt.error),
        )


def _attempt_oversized_secret(
    lab: Lab, kind: str, role: Role, secret: str
) -> tuple[StartAttempt, str]:
    """Try a peer with `secret`; if it starts, test whether it truncated the secret."""
    socket = lab.new_socket_path()
    prefix = secret[:23]
    counterpart = None
    if role is Role.CLIENT:
        counterpart = lab.start("reference", Role.SERVER, socket_path=socket, secret=prefix)
    attempt = lab.try_start(kind, role, socket_path=socket, secret=secret)
    truncation = ""
    if attempt.peer is not None:
        if counterpart is None:
            counterpart = lab.start("reference", Role.CLIENT, socket_path=socket, secret=prefix)
        linked = attempt.peer.wait_for_link(5.0) and counterpart.wait_for_link(5.0)
        truncation = (
            "a memif-ref peer with the first 23 characters linked up: silently truncated"
            if linked
            else "a memif-ref peer with the first 23 characters did not link up"
        )
        attempt.peer.stop()
    if counterpart is not None:
        counterpart.stop()
    return attempt, truncation
