"""The harness never hands the same port to two peers of a test, bound or not yet."""

from __future__ import annotations

import random

import pytest

from tests.e2e.harness import free_port, free_port_range


def test_an_rtp_range_skips_a_media_port_handed_out_just_before(monkeypatch: pytest.MonkeyPatch) -> None:
    port = next((p for p in (free_port() for _ in range(100)) if 40_000 <= p < 59_000), None)
    if port is None:  # where free_port_range looks
        pytest.skip("the kernel hands out no ephemeral ports between 40000 and 59000")
    # Make the range's first candidate start at that port, which nobody has bound yet.
    monkeypatch.setattr(random, "randrange", lambda *args: port - 40_000)
    first, last = free_port_range(8)
    assert (first % 2, last - first) == (0, 7)
    assert last < port or first >= port + 4
