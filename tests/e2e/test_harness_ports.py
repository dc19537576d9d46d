"""The harness never hands the same port to two peers of a test, bound or not yet."""

from __future__ import annotations

from tests.e2e.harness import free_port, free_port_range


def test_ports_and_rtp_ranges_handed_out_never_overlap() -> None:
    taken: list[range] = []
    for _ in range(200):  # unguarded, some of these would collide: they are only probed, never bound
        port = free_port()
        first, last = free_port_range(8)
        assert port % 2 == 0
        assert (first % 2, last - first) == (0, 7)
        taken += [range(port, port + 4), range(first, last + 1)]
    claimed = [port for ports in taken for port in ports]
    assert len(claimed) == len(set(claimed))
