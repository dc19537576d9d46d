"""The harness never hands the same port to two peers of a test, bound or not yet."""

from __future__ import annotations

import itertools
import random

import pytest

from tests.e2e.harness import (
    ephemeral_ports,
    free_port,
    free_port_range,
    port_windows,
    rtp_window,
    worker_window,
)


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
    _, (low, _) = port_windows()
    # Make the next range's first candidate start where that one does.
    monkeypatch.setattr(random, "randrange", lambda *args: first - low)
    again_first, again_last = free_port_range(8)
    assert again_last < first or again_first > last


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_each_test_worker_hands_out_ports_of_its_own(monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    # With pytest-xdist a port one worker probed free must not be bound by another first: each
    # hands out SIP ports and RTP ranges from its own part of the window, and they do not overlap.
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(workers))
    low, high = rtp_window()
    shares = []
    for index in range(workers):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{index}")
        first, last = worker_window()
        assert low <= first < last <= high
        port = free_port()
        range_first, range_last = free_port_range(8)
        (single_low, single_high), (range_low, range_high) = port_windows()
        assert first <= single_low < single_high <= range_low < range_high <= last
        assert single_low <= port < single_high  # single ports never fragment the ranges' part
        assert range_low <= range_first <= range_last < range_high
        shares.append(range(first, last))
    for one, other in itertools.pairwise(shares):
        assert one.stop <= other.start


def test_outside_pytest_xdist_the_whole_window_is_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert worker_window() == rtp_window()
