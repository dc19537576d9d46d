"""The announcement load benchmark: its helpers as tables, and one tiny real run."""

from __future__ import annotations

import json
import socket
import struct
from array import array

import pytest

from benchmarks import announce_load
from benchmarks.announce_load import (
    StreamCheck,
    distribution,
    kernel_time_ns,
)
from benchmarks.call_load import cpu_pressure_us, run_queue_wait_ns
from proxy.rtp.packet import RtpPacket

# Fixed ports or CPU measured: runs alone, after the end-to-end tests that run side by side.
pytestmark = pytest.mark.serial


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], {"count": 0, "min": None, "p1": None, "p50": None, "p99": None, "max": None}),
        ([20.0], {"count": 1, "min": 20.0, "p1": 20.0, "p50": 20.0, "p99": 20.0, "max": 20.0}),
        (
            [float(v) for v in range(100, 0, -1)],
            {"count": 100, "min": 1.0, "p1": 1.0, "p50": 50.0, "p99": 99.0, "max": 100.0},
        ),
        (
            [19.0, 21.0, 20.0, 20.0],
            {"count": 4, "min": 19.0, "p1": 19.0, "p50": 20.0, "p99": 21.0, "max": 21.0},
        ),
    ],
    ids=["empty", "one", "hundred-descending", "four"],
)
def test_distribution_is_nearest_rank(values: list[float], expected: dict[str, float | None]) -> None:
    assert distribution(values) == expected


_TIMESTAMPNS = 35


@pytest.mark.parametrize(
    ("ancillary", "expected"),
    [
        (
            [(socket.SOL_SOCKET, _TIMESTAMPNS, struct.pack("@qq", 1_700_000_000, 5))],
            1_700_000_000_000_000_005,
        ),
        ([(socket.SOL_SOCKET, 29, struct.pack("@qq", 1, 2))], None),
        ([(socket.SOL_SOCKET, _TIMESTAMPNS, b"\x00" * 4)], None),
        ([], None),
    ],
    ids=["timestampns", "other-message", "truncated", "none"],
)
def test_kernel_time_comes_from_scm_timestampns(
    ancillary: list[tuple[int, int, bytes]], expected: int | None
) -> None:
    assert kernel_time_ns(ancillary) == expected


def test_cpu_pressure_and_run_queue_wait_are_read_from_proc_text() -> None:
    pressure = "some avg10=1.00 avg60=0.50 avg300=0.10 total=323646396\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    assert cpu_pressure_us(pressure) == 323_646_396
    assert run_queue_wait_ns("171849481 15240617 420\n") == 15_240_617
    with pytest.raises(ValueError, match="no 'some' line"):
        cpu_pressure_us("full total=0\n")


def _packet(sequence: int, timestamp: int, *, ssrc: int = 9, marker: bool = False) -> bytes:
    return bytes(
        RtpPacket(
            payload_type=0, sequence=sequence, timestamp=timestamp, ssrc=ssrc, marker=marker, payload=b"x"
        )
    )


@pytest.mark.parametrize(
    ("packets", "errors"),
    [
        pytest.param([_packet(65_535, 2**32 - 160), _packet(0, 0), _packet(1, 160)], (0, 0, 0), id="wraps"),
        pytest.param([_packet(1, 0), _packet(3, 320)], (1, 1, 0), id="lost-one"),
        pytest.param([_packet(1, 0), _packet(2, 960, marker=True)], (0, 0, 0), id="talkspurt"),
        pytest.param([_packet(1, 0), _packet(2, 960)], (0, 1, 0), id="timestamp-jump"),
        pytest.param([_packet(1, 0), _packet(2, 160, ssrc=10)], (0, 0, 1), id="new-ssrc"),
        pytest.param([_packet(2, 0), _packet(1, 160)], (1, 0, 0), id="reordered"),
    ],
)
def test_stream_check_counts_header_errors(packets: list[bytes], errors: tuple[int, int, int]) -> None:
    check = StreamCheck()
    gaps = array("d")
    for index, data in enumerate(packets):
        check.add(data, 1_000_000_000 + index * 20_000_000, gaps)
    assert (check.sequence_errors, check.timestamp_errors, check.ssrc_changes) == errors
    assert check.packets == len(packets)
    assert check.first_ns == 1_000_000_000
    assert list(gaps) == [20.0] * (len(packets) - 1)


@pytest.mark.parametrize("argv", [["--calls", "0"], ["--seconds", "0"], ["--seconds", "nan"]])
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        announce_load.main(argv)
    assert exit_info.value.code == 2


@pytest.mark.e2e
@pytest.mark.timeout(60)
def test_five_announcements_for_one_second(capsys: pytest.CaptureFixture[str]) -> None:
    assert announce_load.main(["--calls", "5", "--seconds", "1", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["benchmark"] == "announce_load"
    assert document["calls"] == 5
    assert document["calls_heard"] == 5
    assert document["packets_received"] == document["frames_sent"] == document["frames_played"]
    assert document["frames_sent"] >= 5 * 40  # at least 0.8 s of each call's 1 s
    assert (document["sequence_errors"], document["timestamp_errors"], document["ssrc_changes"]) == (0, 0, 0)
    assert document["markers"] >= 5
    assert 17.0 <= document["gap_ms"]["p50"] <= 23.0
    assert document["gap_ms"]["count"] == document["packets_received"] - 5
    assert 0.0 <= document["first_packet_ms"]["max"] < 200.0
    assert document["player_cpu_pct_run"] > 0.0
    assert document["ticks"] >= 40
    assert set(document["relay_hook_ns"]) == {"sendto", "unchanged", "passthrough", "rewrite"}
    assert document["receiver_timed_out"] is False
    assert isinstance(document["target_met"], bool)
