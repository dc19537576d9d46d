"""The harness never hands the same port to two peers of a test, bound or not yet."""

from __future__ import annotations

import random

import pytest

from tests.e2e.harness import ephemeral_ports, free_port_range, rtp_window


def test_an_rtp_range_lies_outside_the_ports_the_kernel_hands_out() -> None:
    # A socket bound to port 0 anywhere on the machine (a phone's, SIPp's, a media peer's) may
    # take any ephemeral port at any moment: one inside callherald's RTP range failed a call.
    ephemeral = ephemeral_ports()
    for _ in range(50):
        first, last = free_port_range(8)
        assert (first % 2, last - first) == (0, 7)
        assert last < ephemeral.start or first >= ephemeral.stop


def test_an_rtp_range_skips_a_range_handed_out_just_before(monkeypatch: pytest.MonkeyPatch) -> None:
    first, last = free_port_range(8)  # handed out, not bound yet
    low, _ = rtp_window()
    # Make the next range's first candidate start where that one does.
    monkeypatch.setattr(random, "randrange", lambda *args: first - low)
    again_first, again_last = free_port_range(8)
    assert again_last < first or again_first > last
