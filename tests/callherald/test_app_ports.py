"""The start-up warning for an RTP port range that the kernel may hand to other programs."""

from __future__ import annotations

from pathlib import Path

import pytest

from callherald.app import ephemeral_overlap, ephemeral_ports, first_rtp_pair

LINUX_DEFAULT = range(32768, 61000)


@pytest.mark.parametrize(
    ("rtp_min", "rtp_max", "warned"),
    [
        (20000, 20999, False),  # the embedded default
        (10000, 32767, False),  # ends just below
        (61000, 65000, False),  # starts just above
        (32000, 32768, True),  # one port inside
        (40000, 40999, True),
        (60998, 62000, True),
    ],
)
def test_an_rtp_range_inside_the_ephemeral_ports_is_warned_about(
    rtp_min: int, rtp_max: int, warned: bool
) -> None:
    warning = ephemeral_overlap(rtp_min, rtp_max, LINUX_DEFAULT)
    assert (warning is not None) == warned
    if warning is not None:
        assert f"({rtp_min}-{rtp_max}) overlaps" in warning
        assert "(32768-60999, net.ipv4.ip_local_port_range)" in warning


def test_no_warning_when_the_kernel_does_not_say() -> None:
    assert ephemeral_overlap(40000, 40999, None) is None


def test_the_ephemeral_range_is_read_from_proc(tmp_path: Path) -> None:
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("40000\t50000\n", encoding="ascii")
    assert ephemeral_ports(str(setting)) == range(40000, 50001)
    setting.write_text("nonsense\n", encoding="ascii")
    assert ephemeral_ports(str(setting)) is None
    assert ephemeral_ports(str(tmp_path / "missing")) is None


def test_each_run_starts_at_a_random_pair_of_the_rtp_range() -> None:
    draws = {first_rtp_pair(20000, 20999) for _ in range(200)}  # 500 pairs
    assert draws <= set(range(500))
    assert len(draws) > 50  # 200 uniform draws of 500 give ~165 distinct; one value never
    assert first_rtp_pair(20001, 20002) == 0  # no pair at all
