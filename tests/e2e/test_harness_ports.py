"""The harness never hands the same port to two peers of a test, bound or not yet."""

from __future__ import annotations

import itertools
import random

import pytest

from tests.e2e.harness import (
    ephemeral_ports,
    free_port,
    free_port_range,
    rtp_window,
    single_port_share,
    worker_share,
)


def test_an_rtp_range_lies_outside_the_ports_the_kernel_hands_out() -> None:
    # A socket bound to port 0 anywhere on the machine (a phone's, SIPp's, a media peer's) may
    # take any ephemeral port at any moment: one inside callherald's RTP range failed a call.
    ephemeral = ephemeral_ports()
    for _ in range(50):
        first, last = free_port_range(8)
        assert (first % 2, last - first) == (0, 7)
        assert last < ephemeral.start or first >= ephemeral.stop


def test_a_single_port_lies_outside_the_ephemeral_ports_and_every_rtp_range() -> None:
    # Probed free, bound later by SIPp or callherald: a socket bound to port 0 in between took one
    # from the ephemeral ports and a listener failed to start ("address already in use").
    ephemeral = ephemeral_ports()
    rtp_low, rtp_high = rtp_window()
    for _ in range(50):
        port = free_port()
        assert port % 2 == 0
        assert port + 3 < ephemeral.start or port >= ephemeral.stop
        assert port + 3 < rtp_low or port >= rtp_high
        first, last = free_port_range(8)
        assert rtp_low <= first < last < rtp_high


def test_an_rtp_range_skips_a_range_handed_out_just_before(monkeypatch: pytest.MonkeyPatch) -> None:
    first, last = free_port_range(8)  # handed out, not bound yet
    low, _ = worker_share(*rtp_window())
    # Make the next range's first candidate start where that one does.
    monkeypatch.setattr(random, "randrange", lambda *args: first - low)
    again_first, again_last = free_port_range(8)
    assert again_last < first or again_first > last


@pytest.mark.parametrize("workers", [2, 3])
def test_each_xdist_worker_hands_out_ports_from_its_own_share(
    monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    # Two tests running at once must never both be handed a port probed free but not bound yet.
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(workers))
    rtp_shares, sip_shares = [], []
    for index in range(workers):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{index}")
        rtp_low, rtp_high = worker_share(*rtp_window())
        sip_low, sip_high = single_port_share()
        assert (rtp_low % 2, sip_low % 2) == (0, 0)
        for _ in range(20):
            first, last = free_port_range(8)
            assert rtp_low <= first < last < rtp_high
            assert sip_low <= free_port() < sip_high
        rtp_shares.append(range(rtp_low, rtp_high))
        sip_shares.append(range(sip_low, sip_high))
    for shares in (rtp_shares, sip_shares):
        assert all(one.stop <= next_one.start for one, next_one in itertools.pairwise(shares))


def test_one_process_hands_out_ports_from_the_whole_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert worker_share(10_001, 32_768) == (10_002, 32_768)
