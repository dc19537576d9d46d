"""The notice load benchmark: its helpers as tables, and one tiny real run through ``callherald serve``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import notice_load
from benchmarks.notice_load import (
    BenchmarkError,
    NoticeStream,
    ProcSample,
    all_playing_window,
    call_rate,
    cpu_pct_over,
    find_port_plan,
    format_report,
    notice_over,
    notice_yaml,
    pcmu_sdp,
    plan_ports,
    scan_log,
    write_notice_wav,
)
from config import load_config
from proxy.b2bua.call import media_format
from proxy.b2bua.effects import MediaFormat
from proxy.rtp.packet import RtpPacket
from proxy.sip.sdp import SessionDescription

# Fixed ports or CPU measured: runs alone, after the end-to-end tests that run side by side.
pytestmark = [pytest.mark.e2e, pytest.mark.serial]


@pytest.mark.parametrize(
    ("calls", "notice_s", "rate"),
    [(1, 8.0, 10), (5, 1.0, 20), (200, 8.0, 100), (400, 8.0, 200), (1000, 1.0, 500), (20, 120.0, 10)],
)
def test_the_call_rate_puts_every_invite_in_the_first_quarter_of_the_notice(
    calls: int, notice_s: float, rate: int
) -> None:
    assert call_rate(calls, notice_s) == rate


@pytest.mark.parametrize(
    ("starts", "ends", "expected"),
    [
        ([10, 30, 20], [900, 950, 910], (30, 900)),
        ([5], [6], (5, 6)),
        ([10, 500], [400, 900], None),  # the first notice ended before the last one began
        ([], [], None),
        ([7, 8], [], None),
    ],
    ids=["overlap", "one-call", "no-overlap", "none", "no-ends"],
)
def test_the_all_playing_window_runs_from_the_last_start_to_the_first_end(
    starts: list[int], ends: list[int], expected: tuple[int, int] | None
) -> None:
    assert all_playing_window(starts, ends) == expected


def _samples(*points: tuple[float, int]) -> list[ProcSample]:
    return [
        ProcSample(at_ns=int(at_s * 1e9), cpu_ticks=ticks, rss_kib=1, wait_ns=0, pressure_us=0, own_cpu_ns=0)
        for at_s, ticks in points
    ]


@pytest.mark.parametrize(
    ("samples", "window_s", "expected"),
    [
        (_samples((0.0, 0), (1.0, 25), (2.0, 50)), (0.0, 2.0), 25.0),
        (_samples((0.0, 0), (1.0, 100), (2.0, 100), (3.0, 400)), (0.5, 2.5), 0.0),  # edges outside
        (_samples((0.0, 0), (1.0, 30), (1.1, 31)), (0.9, 1.2), None),  # under MIN_WINDOW_S of samples
        (_samples((0.0, 0)), (0.0, 5.0), None),
    ],
    ids=["steady", "only-inside", "too-short", "one-sample"],
)
def test_cpu_is_the_tick_growth_between_the_samples_inside_the_window(
    samples: list[ProcSample], window_s: tuple[float, float], expected: float | None
) -> None:
    window = (int(window_s[0] * 1e9), int(window_s[1] * 1e9))
    assert cpu_pct_over(samples, window, clock_ticks=100) == expected


@pytest.mark.parametrize("calls", [1, 5, 200, 1000])
def test_a_port_plan_has_two_listeners_and_four_rtp_ports_a_call(calls: int) -> None:
    plan = plan_ports(21_001, calls)
    assert (plan.pbx_listener, plan.carrier_listener) == (21_002, 21_003)
    assert plan.rtp_min % 2 == 0
    assert plan.rtp_max % 2 == 1
    assert plan.rtp_max - plan.rtp_min + 1 == 4 * (calls + notice_load.SPARE_CALLS)
    assert plan.ports() == range(21_002, plan.rtp_max + 1)


def test_a_port_plan_avoids_taken_ports_and_fails_when_none_is_free() -> None:
    taken = set(range(notice_load.PORT_REGION[0], notice_load.PORT_REGION[0] + 6_000, 7))
    plan = find_port_plan(10, lambda port: port not in taken)
    assert not taken & set(plan.ports())
    with pytest.raises(BenchmarkError, match="no free block"):
        find_port_plan(10, lambda port: False)


def test_the_generated_configuration_announces_then_bridges(tmp_path: Path) -> None:
    write_notice_wav(tmp_path / "notice.wav", 1.0)
    plan = plan_ports(24_000, 7)
    path = tmp_path / "callherald.yaml"
    path.write_text(
        notice_yaml(plan, pbx_port=40_001, carrier_port=40_002, calls=7, notice_file="notice.wav"),
        encoding="utf-8",
    )
    config = load_config(path)
    assert (config.listen.pbx.port, config.listen.carrier.port) == (plan.pbx_listener, plan.carrier_listener)
    assert (config.carrier.host, config.carrier.port) == ("127.0.0.1", 40_002)
    assert [peer.port for peer in config.pbx.peers] == [40_001]
    assert (config.media.rtp_port_min, config.media.rtp_port_max) == (plan.rtp_min, plan.rtp_max)
    [policy] = config.policies
    assert policy.record
    assert policy.notice == notice_load.NOTICE_PROMPT_ID
    assert policy.purposes == ("evidence",)
    assert policy.questions == ()
    assert [purpose.id for purpose in config.purposes] == ["evidence"]


def test_the_sdp_is_pcmu_with_telephone_events_on_the_given_port() -> None:
    sdp = SessionDescription.parse(pcmu_sdp(40_000, 7))
    [audio] = sdp.media
    assert audio.port == 40_000
    assert media_format(sdp) == MediaFormat(codec="pcmu", payload_type=0, event_payload_type=101)


_LOG = """\
2026-01-01 10:00:00,001 INFO callherald: listening for the carrier side on 127.0.0.1:5070 (udp)
2026-01-01 10:00:01,001 INFO callherald: [aaaaaaaaaaaaaaaa] outbound call from agent0 to 3100000
2026-01-01 10:00:01,002 INFO callherald: [bbbbbbbbbbbbbbbb] outbound call from agent1 to 3100001
2026-01-01 10:00:02,000 INFO callherald.evidence: {"call": "a", "event": "announcement_ended", "prompt_id": "load-notice", "complete": true}
2026-01-01 10:00:02,000 INFO callherald.evidence: {"call": "b", "event": "announcement_ended", "prompt_id": "load-notice", "complete": false}
2026-01-01 10:00:02,000 INFO callherald.evidence: {"call": "a", "event": "recording_started"}
2026-01-01 10:00:02,001 WARNING callherald: [bbbbbbbbbbbbbbbb] prompt 'load-notice' failed (only 399 of 400 frames reached the party)
2026-01-01 10:00:02,002 WARNING callherald: [cccccccccccccccc] prompt 'load-notice' failed (only 398 of 400 frames reached the party)
2026-01-01 10:00:03,000 INFO callherald: [aaaaaaaaaaaaaaaa] call ended: bye-from-a
2026-01-01 10:00:03,000 INFO callherald: [bbbbbbbbbbbbbbbb] call ended: bye-from-a
"""


def test_the_log_gives_calls_evidence_and_problems_by_kind() -> None:
    summary = scan_log(_LOG)
    assert summary.calls_started == 2
    assert summary.end_reasons == {"bye-from-a": 2}
    assert (summary.notices_complete, summary.notices_incomplete, summary.recordings_started) == (1, 1, 1)
    assert summary.problems == [
        "2 x WARNING callherald: [bbbbbbbbbbbbbbbb] prompt 'load-notice' failed "
        "(only 399 of 400 frames reached the party)"
    ]


NOTICE = tuple(bytes([index]) * 160 for index in range(1, 6))
BEEP = b"\x7f" * 160
CALLHERALD = ("127.0.0.1", 30_000)


def _rtp(sequence: int, payload: bytes) -> bytes:
    return bytes(
        RtpPacket(payload_type=0, sequence=sequence, timestamp=sequence * 160, ssrc=5, payload=payload)
    )


@pytest.fixture
def stream() -> Iterator[NoticeStream]:
    receiver = NoticeStream(NOTICE, range(30_000, 30_010))
    yield receiver
    receiver.sock.close()


@pytest.mark.parametrize(
    ("packets", "expected"),
    [
        pytest.param(
            [(s, NOTICE[s], CALLHERALD) for s in range(5)] + [(5, BEEP, CALLHERALD)],
            {"arrivals": 5, "intact": True, "complete": True, "extra": 1, "stray": 0},
            id="whole-notice-then-beep",
        ),
        pytest.param(
            [(s, NOTICE[s], CALLHERALD) for s in range(1, 5)],
            {"arrivals": 4, "intact": False, "complete": False, "extra": 0, "stray": 0},
            id="first-frame-missing",
        ),
        pytest.param(
            [(0, NOTICE[0], ("127.0.0.1", 40_000)), (1, NOTICE[1], ("127.0.0.2", 30_000))],
            {"arrivals": 0, "intact": False, "complete": False, "extra": 0, "stray": 2},
            id="not-from-callherald",
        ),
    ],
)
def test_a_notice_stream_keeps_the_notice_packets_from_callherald(
    stream: NoticeStream, packets: list[tuple[int, bytes, tuple[str, int]]], expected: dict[str, object]
) -> None:
    for index, (sequence, payload, source) in enumerate(packets):
        stream.add(_rtp(sequence, payload), 1_000_000_000 + index * 20_000_000, source)
    assert {
        "arrivals": len(stream.arrivals),
        "intact": stream.intact,
        "complete": stream.complete,
        "extra": stream.extra,
        "stray": stream.stray,
    } == expected
    assert stream.gaps_ms() == [20.0] * max(0, len(stream.arrivals) - 1)


@pytest.mark.parametrize(
    ("arrivals_ms", "now_ms", "over"),
    [
        pytest.param([0, 20, 40, 60, 80], 80, True, id="complete"),
        pytest.param([], 10_000, False, id="nothing-yet"),
        pytest.param([20, 40, 60, 80], 1_200, True, id="first-frame-lost-and-late"),
        pytest.param([20, 40, 60, 80], 1_050, False, id="short-but-not-late-yet"),
        pytest.param([0, 20, 40, 1_000], 1_300, False, id="stalled-then-resumed-recently"),
        pytest.param([0, 20, 40, 1_000], 1_600, True, id="stalled-then-quiet"),
    ],
)
def test_a_notice_is_over_when_whole_or_late_and_quiet(
    stream: NoticeStream, arrivals_ms: list[int], now_ms: int, over: bool
) -> None:
    for sequence, at_ms in enumerate(arrivals_ms):
        stream.add(_rtp(sequence, NOTICE[min(sequence, 4)]), at_ms * 1_000_000, CALLHERALD)
    assert notice_over(stream, now_ms * 1_000_000) is over


def test_window_gaps_are_those_with_both_packets_inside(stream: NoticeStream) -> None:
    for sequence, at_ms in enumerate([0, 20, 45, 60, 80]):
        stream.add(_rtp(sequence, NOTICE[sequence]), at_ms * 1_000_000, CALLHERALD)
    assert stream.gaps_ms() == [20.0, 25.0, 15.0, 20.0]
    assert stream.gaps_ms((20_000_000, 60_000_000)) == [25.0, 15.0]


@pytest.mark.parametrize(
    "argv", [["--calls", "0"], ["--notice-s", "0.1"], ["--notice-s", "nan"], ["--rate", "5"]]
)
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        notice_load.main(argv)
    assert exit_info.value.code == 2


@pytest.mark.timeout(90)
def test_five_calls_hear_a_one_second_notice(capsys: pytest.CaptureFixture[str]) -> None:
    assert notice_load.main(["--calls", "5", "--notice-s", "1", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["benchmark"] == "notice_load"
    assert document["calls"] == 5
    assert document["answered_by_callee"] == document["relayed_200_to_pbx"] == 5
    assert document["byes_answered"] == 5
    first = document["first_packet_ms"]
    assert first["count"] == 5
    assert 0.0 <= first["min"] <= first["max"] < 500.0
    assert document["first_packet_ms_agent"]["count"] == 5
    for side in ("callee", "agent"):
        receiver = document["receivers"][side]
        assert receiver["calls_heard"] == 5
        gaps = receiver["gap_ms"]
        assert gaps["count"] == receiver["notice_packets"] - 5 > 0
        assert 0.0 < gaps["p1"] <= gaps["p50"] <= gaps["p99"] <= gaps["max"] < 500.0
        assert receiver["stray_packets"] == 0
    assert document["all_playing_s"] is not None
    assert document["all_playing_s"] > 0.0
    assert document["receivers"]["callee"]["gap_ms_all_playing"]["count"] > 0
    assert document["callherald_cpu_pct"] is not None
    assert document["callherald_cpu_pct"] >= 0.0
    assert document["rss_idle_kib"] > 0
    assert document["rss_all_playing_kib"] > 0
    assert document["log"]["calls_started"] == 5
    assert document["log"]["end_reasons"] == {"bye-from-a": 5}
    assert isinstance(document["target"]["met"], bool)
    report = format_report(document)
    assert "first notice packet at the callee" in report
    assert "callherald CPU" in report
