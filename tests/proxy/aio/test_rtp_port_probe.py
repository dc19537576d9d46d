"""``RtpPortProbe``: the core's port check, on real sockets on 127.0.0.1 (a pair another program
holds is refused and logged once; the relay's own just-closed pair is refused without a word)."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
import uvloop

from proxy.aio.media import MediaRelay, RtpPortProbe
from tests.e2e.harness import free_port_range

LOOPBACK = "127.0.0.1"
WARNING = "cannot be bound"


def held(port: int) -> socket.socket:
    """A socket of "another program" on ``port``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, port))
    return sock


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if WARNING in record.getMessage()]


@pytest.mark.parametrize("offset", [0, 1], ids=["rtp-port", "rtcp-port"])
def test_a_pair_with_a_port_held_elsewhere_is_refused_and_logged_once(
    caplog: pytest.LogCaptureFixture, offset: int
) -> None:
    first, _ = free_port_range(4)
    probe = RtpPortProbe(LOOPBACK)
    caplog.set_level(logging.INFO, logger="callherald.media")
    with held(first + offset):
        assert probe(first) is False
        assert probe(first) is False
        assert probe(first + 2) is True  # the next pair is untouched
    assert warnings(caplog) == [
        f"RTP ports {first}-{first + 1} on {LOOPBACK} cannot be bound (Address already in use); calls get"
        " other ports. Keep media.rtp_port_min..rtp_port_max clear of ports other programs use"
    ]
    assert probe(first) is True  # let go: usable
    with held(first), held(first + 1):
        pass  # the probe left nothing bound
    with held(first + offset):
        assert probe(first) is False  # taken again after it was free: logged again
    assert len(warnings(caplog)) == 2


def test_the_relays_own_pair_just_closed_is_refused_quietly_then_usable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> list[bool]:
        first, _ = free_port_range(4)
        probe = RtpPortProbe(LOOPBACK)
        relay = MediaRelay(
            LOOPBACK, inactivity_timeout_s=30.0, on_inactive=lambda _ref: None, port_probe=probe
        )
        relay.open("call", first, first + 2)
        await asyncio.sleep(0.05)  # the sockets are attached to the loop
        relay.close("call")
        # The loop closes the sockets on its next round: until then they are still bound.
        answers = [probe(first), probe(first + 2)]
        await asyncio.sleep(0.05)
        answers += [probe(first), probe(first + 2)]
        return answers

    caplog.set_level(logging.INFO, logger="callherald.media")
    assert uvloop.run(scenario()) == [False, False, True, True]
    assert warnings(caplog) == []


def test_a_relays_closed_pair_that_another_program_then_takes_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, _ = free_port_range(2)
    probe = RtpPortProbe(LOOPBACK)
    probe.closing(first)
    caplog.set_level(logging.INFO, logger="callherald.media")
    with held(first):
        assert probe(first) is False  # taken, as the relay's own closing sockets would be: quiet
        assert probe(first) is False  # still taken: another program's
    assert len(warnings(caplog)) == 1
