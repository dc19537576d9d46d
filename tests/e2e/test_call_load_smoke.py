"""The call load benchmark: its helpers as tables, and one tiny real run of each mode (direct, relay,
recorded) through SIPp and callherald."""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import struct
import time
import wave
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from announcements.tones import BEEP_MS
from benchmarks import call_load
from benchmarks.call_load import (
    BenchmarkError,
    Comparison,
    PortfileReader,
    RatioSpread,
    RecordingCost,
    RecordingTally,
    RunResult,
    Samples,
    SippStats,
    call_rate,
    callherald_yaml,
    compare,
    cost_of_recording,
    cpu_at_full_speed,
    cpu_pressure_us,
    cpu_ticks,
    find_port_plan,
    first_backs,
    format_report,
    full_speed_reference,
    jitter_step,
    new_packet,
    percentile,
    plan_ports,
    ratio_spreads,
    read_probe,
    read_recordings,
    read_sipp_stats,
    read_timing,
    run_queue_wait_ns,
    seconds_with_speed,
    steady_window,
    thread_cpu_added,
    ticks_by_thread,
    udp_drops,
    vm_rss_kib,
    window_figures,
    with_full_speed,
    write_notice_wav,
    write_rtp_header,
    write_talk,
)
from config import load_config
from proxy.rtp.g711 import ulaw_decode
from storage.records import EvidenceStore

# Fixed ports or CPU measured: runs alone, after the end-to-end tests that run side by side.
pytestmark = pytest.mark.serial

STAT_HEADER = (
    "StartTime;TotalCallCreated;SuccessfulCall(P);SuccessfulCall(C);FailedCall(C);"
    "FailedMaxUDPRetrans(C);FailedUnexpectedMessage(C);DeadCallMsgs(C);Retransmissions(C);"
)


@pytest.mark.parametrize(
    ("csv_text", "expected"),
    [
        (
            STAT_HEADER + "\n2026;0;0;0;0;0;0;0;0;\n2026;50;3;50;0;0;0;0;0;\n",
            SippStats(
                created=50,
                successful=50,
                failed=0,
                retransmissions=0,
                dead_call_messages=0,
                failure_causes={},
            ),
        ),
        (
            STAT_HEADER + "\n2026;400;1;396;4;3;1;2;17;\n",
            SippStats(
                created=400,
                successful=396,
                failed=4,
                retransmissions=17,
                dead_call_messages=2,
                failure_causes={"MaxUDPRetrans": 3, "UnexpectedMessage": 1},
            ),
        ),
        (
            "TotalCallCreated;SuccessfulCall(C);FailedCall(C)\n3;;\n",
            SippStats(
                created=3, successful=0, failed=0, retransmissions=0, dead_call_messages=0, failure_causes={}
            ),
        ),
    ],
    ids=["all-good", "failures", "empty-fields"],
)
def test_sipp_statistics_come_from_the_last_line(csv_text: str, expected: SippStats) -> None:
    assert read_sipp_stats(csv_text) == expected


@pytest.mark.parametrize("csv_text", ["", STAT_HEADER, STAT_HEADER + "\n\n"])
def test_sipp_statistics_without_a_data_line_are_refused(csv_text: str) -> None:
    with pytest.raises(ValueError, match="no statistics line"):
        read_sipp_stats(csv_text)


@pytest.mark.parametrize(
    ("stat_text", "expected"),
    [
        ("1234 (python3) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 3 0", 325),
        ("99 (a) b (c)) R 1 99 99 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0", 10),
        ("5 (sipp) S 1 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 2 0", 0),
    ],
    ids=["plain", "parentheses-in-name", "idle"],
)
def test_cpu_ticks_are_utime_plus_stime(stat_text: str, expected: int) -> None:
    assert cpu_ticks(stat_text) == expected


@pytest.mark.parametrize(
    ("status_text", "expected"),
    [
        ("Name:\tcallherald\nVmPeak:\t  50000 kB\nVmRSS:\t   33024 kB\nRssAnon:\t 20000 kB\n", 33024),
        ("VmRSS: 1 kB", 1),
    ],
)
def test_vm_rss_is_read_in_kib(status_text: str, expected: int) -> None:
    assert vm_rss_kib(status_text) == expected


def test_a_status_without_vm_rss_is_refused() -> None:
    with pytest.raises(ValueError, match="no VmRSS"):
        vm_rss_kib("Name:\tzombie\n")


@pytest.mark.parametrize(
    ("schedstat_text", "expected"),
    [("171849481 15240617 420\n", 15240617), ("0 0 1", 0)],
)
def test_run_queue_wait_is_the_second_schedstat_field(schedstat_text: str, expected: int) -> None:
    assert run_queue_wait_ns(schedstat_text) == expected


@pytest.mark.parametrize(
    ("pressure_text", "expected"),
    [
        (
            "some avg10=0.12 avg60=6.35 avg300=9.87 total=224708516\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            224708516,
        ),
        ("some avg10=0.00 avg60=0.00 avg300=0.00 total=7", 7),
    ],
)
def test_cpu_pressure_is_the_some_total(pressure_text: str, expected: int) -> None:
    assert cpu_pressure_us(pressure_text) == expected


def test_cpu_pressure_without_a_some_line_is_refused() -> None:
    with pytest.raises(ValueError, match="no 'some' line"):
        cpu_pressure_us("full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")


PROC_NET_UDP = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  120: 0100007F:5208 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 44411 2 0000000000000000 0
  121: 0100007F:6978 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 44412 2 0000000000000000 17
  999: 00000000:22B8 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 123 2 0000000000000000 5
"""


def test_udp_drops_are_keyed_by_port_and_inode() -> None:
    assert udp_drops(PROC_NET_UDP) == {(0x5208, 44411): 0, (0x6978, 44412): 17, (0x22B8, 123): 5}


@pytest.mark.parametrize("calls", [1, 3, 50, 400, 1000])
def test_a_port_plan_never_reuses_a_port(calls: int) -> None:
    plan = plan_ports(21_001, calls)
    ports = plan.ports()
    assert len(ports) == len(set(ports))
    assert len(plan.agent) == calls
    assert plan.rtp_min % 2 == 0
    assert plan.rtp_max % 2 == 1
    assert plan.rtp_max - plan.rtp_min + 1 == 4 * calls + 2 * call_load.RTP_SPARE_PAIRS
    assert min(ports) == 21_002
    assert max(ports) < call_load.PORT_REGION[1] + 6_000


def test_a_port_plan_avoids_taken_ports() -> None:
    taken = set(range(call_load.PORT_REGION[0], call_load.PORT_REGION[0] + 9_000, 3))
    plan = find_port_plan(10, lambda port: port not in taken)
    assert not taken & set(plan.ports())


def test_no_port_plan_when_every_port_is_taken() -> None:
    with pytest.raises(BenchmarkError, match="no free block"):
        find_port_plan(10, lambda port: False)


@pytest.mark.parametrize("count", [2, 3])
def test_runs_made_together_search_ports_of_their_own(count: int) -> None:
    regions = call_load.port_regions(count)
    assert regions[0][0] == call_load.PORT_REGION[0]
    assert all(high <= call_load.PORT_REGION[1] for _, high in regions)
    plans = [find_port_plan(400, lambda port: True, region=region) for region in regions]
    for (low, high), plan in zip(regions, plans, strict=True):
        assert low <= min(plan.ports())
        assert max(plan.ports()) < high
    every_port = [port for plan in plans for port in plan.ports()]
    assert len(every_port) == len(set(every_port))


def test_the_shared_window_is_where_every_run_s_window_was_open() -> None:
    def run(window_at: tuple[float, float] | None) -> RunResult:
        return RunResult(path="relay", calls=1, rate_cps=1, hold_s=1.0, window_at=window_at)

    assert call_load.shared_window_s([run((10.0, 30.0)), run((12.0, 31.0))]) == 18.0
    assert call_load.shared_window_s([run((10.0, 20.0)), run((25.0, 40.0))]) == 0.0
    assert call_load.shared_window_s([run((10.0, 20.0)), run(None)]) is None
    assert call_load.shared_window_s([]) is None


@pytest.mark.parametrize("modes", ["recorded", "direct,relay,recorded"])
def test_paired_runs_need_two_modes_through_callherald(
    modes: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        call_load.main(["--paired", "--modes", modes])
    assert exit_info.value.code == 2
    assert "--paired runs two or more of relay, announced, recorded" in capsys.readouterr().err


@pytest.mark.parametrize("constant_ssrc", [True, False])
@pytest.mark.parametrize("mode", ["relay", "announced", "recorded"])
@pytest.mark.parametrize("calls", [3, 400])
def test_the_generated_configuration_is_valid(
    tmp_path: Path, calls: int, mode: str, constant_ssrc: bool
) -> None:
    plan = plan_ports(24_000, calls)
    path = tmp_path / "callherald.yaml"
    if mode in call_load.ANNOUNCING:
        write_notice_wav(tmp_path / call_load.NOTICE_FILE)
    path.write_text(callherald_yaml(plan, calls, mode, constant_ssrc=constant_ssrc), encoding="utf-8")
    config = load_config(path)
    assert config.media.constant_ssrc is constant_ssrc
    assert (config.listen.pbx.port, config.listen.carrier.port) == (
        plan.callherald_pbx,
        plan.callherald_carrier,
    )
    assert (config.carrier.host, config.carrier.port) == ("127.0.0.1", plan.uas_sip)
    assert (config.media.rtp_port_min, config.media.rtp_port_max) == (plan.rtp_min, plan.rtp_max)
    assert config.limits.max_concurrent_calls == calls + call_load.RTP_SPARE_PAIRS
    assert str(config.logging.level) == "info"
    assert config.data_dir == tmp_path / call_load.DATA_DIR
    [policy] = config.policies
    assert policy.record is (mode in call_load.ANNOUNCING)
    assert config.recording.enabled is (mode != "announced")
    if mode in call_load.ANNOUNCING:
        assert policy.purposes == ("evidence",)
        assert policy.questions == ()
        assert str(config.purpose("evidence").lawful_basis) == "contract"
        notice = config.prompt_set(call_load.NOTICE_PROMPT_ID)
        assert notice is not None
        assert policy.notice == notice.id
        assert config.recording.min_free_mb == 0


@pytest.mark.parametrize("seconds", [0.3, 1.0])
def test_the_notice_is_a_mono_8_khz_wav_of_its_length(tmp_path: Path, seconds: float) -> None:
    path = tmp_path / "notice.wav"
    write_notice_wav(path, seconds)
    with wave.open(str(path)) as notice:
        assert (notice.getnchannels(), notice.getsampwidth(), notice.getframerate()) == (1, 2, 8000)
        assert notice.getnframes() == round(seconds * 8000)


@pytest.mark.parametrize(
    ("jitter", "transit", "last_transit", "expected"),
    [
        (0.0, 100.0, 100.0, 0.0),
        (0.0, 116.0, 100.0, 1.0),
        (0.0, 84.0, 100.0, 1.0),
        (16.0, 100.0, 100.0, 15.0),
        (1.0, 0.0, 32.0, 2.9375),
    ],
)
def test_jitter_follows_rfc_3550(jitter: float, transit: float, last_transit: float, expected: float) -> None:
    assert jitter_step(jitter, transit, last_transit) == expected


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([5.0], 0.99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),
        ([float(v) for v in range(1, 101)], 0.99, 99.0),
        ([float(v) for v in range(1, 101)], 1.0, 100.0),
        ([float(v) for v in range(1, 101)], 0.0, 1.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], fraction: float, expected: float | None) -> None:
    assert percentile(values, fraction) == expected


@pytest.mark.parametrize(
    ("calls", "rate"), [(1, 10), (3, 10), (50, 13), (100, 25), (200, 50), (400, 100), (1000, 100)]
)
def test_call_rate_ramps_up_within_seconds(calls: int, rate: int) -> None:
    assert call_rate(calls) == rate


def test_an_rtp_packet_is_172_bytes_of_pcmu() -> None:
    packet = new_packet()
    write_rtp_header(packet, seq=70_000, timestamp=2**32 + 5, ssrc=0x10001, sent_ns=123, marker=True)
    assert len(packet) == call_load.PACKET_BYTES
    assert packet[:12] == bytes([0x80, 0x80]) + struct.pack("!HII", 70_000 - 65_536, 5, 0x10001)
    # The payload says whose packet it is even when callherald renumbered the header, in PCMU
    # codes as quiet as a line's hiss (0xF0-0xFF: at most 120 of 32767).
    assert read_timing(bytes(packet)) == (123, 0x10001, 70_000)
    assert all(code >= 0xF0 for code in packet[12 : 12 + call_load.TIMING_BYTES])
    assert max(abs(int(sample)) for sample in ulaw_decode(bytes(packet[12:]))) <= 120
    assert packet[12 + call_load.TIMING_BYTES :] == b"\xff" * 128


def test_parties_take_turns_talking_with_their_own_stretch_of_speech() -> None:
    speech = bytes(range(251)) * 1000  # PCMU bytes (1569 frames); what they say does not matter
    turn = call_load.TALK_TURN_PACKETS
    packet = new_packet()

    def said(seq: int, party: int) -> bytes:
        write_talk(packet, speech, seq=seq, party=party)
        return bytes(packet[44:])

    assert said(0, 0) == speech[32:160]  # after the timing, the rest of the first frame
    assert said(1, 0) == speech[192:320]
    assert said(turn, 0) == b"\xff" * 128  # the other's turn: silence
    assert said(2 * turn, 0) == speech[2 * turn * 160 + 32 : (2 * turn + 1) * 160]
    assert said(0, 1) == b"\xff" * 128
    assert said(turn, 1) not in (said(turn - 1, 0), b"\xff" * 128)  # its own stretch, not party 0's
    write_talk(packet, b"", seq=0, party=0)
    assert packet[44:] == b"\xff" * 128  # no speech given: silence


@given(
    seq=st.integers(0, 2**20),
    timestamp=st.integers(0, 2**40),
    ssrc=st.integers(0, 2**32 - 1),
    sent_ns=st.integers(0, 2**62),
    marker=st.booleans(),
)
def test_rtp_header_round_trip(seq: int, timestamp: int, ssrc: int, sent_ns: int, marker: bool) -> None:
    packet = new_packet()
    write_rtp_header(packet, seq=seq, timestamp=timestamp, ssrc=ssrc, sent_ns=sent_ns, marker=marker)
    assert call_load.RTP_HEADER.unpack_from(packet) == (
        0x80,
        0x80 * marker,
        seq % 2**16,
        timestamp % 2**32,
        ssrc,
    )
    assert read_timing(bytes(packet)) == (sent_ns, ssrc, seq)


def test_the_agent_tells_its_packets_back_under_another_ssrc_or_number_as_renumbered(tmp_path: Path) -> None:
    # Ours by the timing in the payload; the header's SSRC and sequence number say whose stream
    # brought it back, and whether it was renumbered in it.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    agent = call_load._Agent([port], tmp_path / "ports.txt", max_s=1.0)
    [stream] = agent._streams.values()
    stream.seq = 3  # three packets sent
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for seq, header_ssrc, header_seq in ((0, stream.ssrc, 0), (1, 0xCA11E4A1, 1), (2, stream.ssrc, 7)):
            packet = new_packet()
            write_rtp_header(packet, seq=seq, timestamp=seq * 160, ssrc=stream.ssrc, sent_ns=1)
            packet[2:4] = header_seq.to_bytes(2, "big")
            packet[8:12] = header_ssrc.to_bytes(4, "big")
            sender.sendto(packet, ("127.0.0.1", port))
    deadline = time.monotonic() + 5.0
    while stream.received + stream.stray < 3 and time.monotonic() < deadline:
        select.select([stream.sock], [], [], 0.5)
        agent._on_readable(stream)
    stream.sock.close()
    assert (stream.received, stream.renumbered, stream.stray) == (3, 2, 0)


def test_the_portfile_reader_returns_complete_lines_once(tmp_path: Path) -> None:
    path = tmp_path / "ports.txt"
    reader = PortfileReader(path)
    assert reader.read() == []
    path.write_bytes(b"up 100 200\nstop 1")
    assert reader.read() == [["up", "100", "200"]]
    with path.open("ab") as handle:
        handle.write(b"00\n\nend\n")
    assert reader.read() == [["stop", "100"], ["end"]]
    assert reader.read() == []


def _run(path: str, **figures: object) -> RunResult:
    return RunResult(path=path, calls=200, rate_cps=50, hold_s=20.0, **figures)  # type: ignore[arg-type]


def _nothing_compared(path: str, *, direct_loss_pct: float | None) -> Comparison:
    return Comparison(
        path=path,
        calls=200,
        failed_calls=None,
        loss_pct=None,
        run_loss_pct=None,
        direct_loss_pct=direct_loss_pct,
        loss_ratio=None,
        added_jitter_ms=None,
        jitter_ratio=None,
        added_rtt_p50_ms=None,
        callherald_cpu_pct=None,
        callherald_cpu_per_call_pct=None,
        rss_per_call_kib=None,
    )


@pytest.mark.parametrize(
    ("direct", "through", "expected"),
    [
        (
            _run("direct", loss_pct=0.0, jitter_ms=0.02, rtt_p50_ms=0.02),
            _run(
                "relay",
                loss_pct=0.01,
                run_loss_pct=0.02,
                jitter_ms=0.05,
                rtt_p50_ms=0.1,
                callherald_cpu_pct=15.0,
                callherald_cpu_per_call_pct=0.075,
                rss_per_call_kib=25.0,
            ),
            Comparison(
                path="relay",
                calls=200,
                failed_calls=0,
                loss_pct=0.01,
                run_loss_pct=0.02,
                direct_loss_pct=0.0,
                loss_ratio=None,
                added_jitter_ms=pytest.approx(0.03),  # type: ignore[arg-type]
                jitter_ratio=pytest.approx(2.5),  # type: ignore[arg-type]
                added_rtt_p50_ms=pytest.approx(0.08),  # type: ignore[arg-type]
                callherald_cpu_pct=15.0,
                callherald_cpu_per_call_pct=0.075,
                rss_per_call_kib=25.0,
            ),
        ),
        (
            _run("direct", loss_pct=0.5, jitter_ms=0.1),
            _run("recorded", loss_pct=1.0, jitter_ms=None, failed_calls=3),
            Comparison(
                path="recorded",
                calls=200,
                failed_calls=3,
                loss_pct=1.0,
                run_loss_pct=None,
                direct_loss_pct=0.5,
                loss_ratio=2.0,
                added_jitter_ms=None,
                jitter_ratio=None,
                added_rtt_p50_ms=None,
                callherald_cpu_pct=None,
                callherald_cpu_per_call_pct=None,
                rss_per_call_kib=None,
            ),
        ),
        (
            _run("direct", loss_pct=0.0),
            _run("relay", error="callherald did not start"),
            _nothing_compared("relay", direct_loss_pct=0.0),
        ),
    ],
    ids=["no-direct-loss", "both-lose", "callherald-run-failed"],
)
def test_comparison_of_callherald_with_direct(
    direct: RunResult, through: RunResult, expected: Comparison
) -> None:
    assert compare(direct, through) == expected


def _cost(**figures: object) -> RecordingCost:
    base: dict[str, Any] = {
        "calls": 200,
        "relay_cpu_per_call_pct": None,
        "recorded_cpu_per_call_pct": None,
        "cpu_per_call_ratio": None,
        "relay_rss_per_call_kib": None,
        "recorded_rss_per_call_kib": None,
        "rss_per_call_ratio": None,
        "cpu_target_met": None,
        "recordings": None,
        "recordings_complete": None,
        "recorded_s": None,
        "calls_answered": 0,
    }
    return RecordingCost(**(base | figures))


@pytest.mark.parametrize(
    ("relay", "recorded", "expected"),
    [
        (
            _run("relay", callherald_cpu_per_call_pct=0.1, rss_per_call_kib=20.0),
            _run(
                "recorded",
                callherald_cpu_per_call_pct=0.12,
                rss_per_call_kib=50.0,
                successful_calls=200,
                recordings=200,
                recordings_complete=200,
                recorded_s=3960.0,
            ),
            _cost(
                relay_cpu_per_call_pct=0.1,
                recorded_cpu_per_call_pct=0.12,
                cpu_per_call_ratio=pytest.approx(1.2),
                relay_rss_per_call_kib=20.0,
                recorded_rss_per_call_kib=50.0,
                rss_per_call_ratio=2.5,
                cpu_target_met=True,
                recordings=200,
                recordings_complete=200,
                recorded_s=3960.0,
                calls_answered=200,
            ),
        ),
        (
            _run("relay", callherald_cpu_per_call_pct=0.1),
            _run("recorded", callherald_cpu_per_call_pct=0.13, successful_calls=199),
            _cost(
                relay_cpu_per_call_pct=0.1,
                recorded_cpu_per_call_pct=0.13,
                cpu_per_call_ratio=pytest.approx(1.3),
                cpu_target_met=False,
                calls_answered=199,
            ),
        ),
        (
            _run("relay", callherald_cpu_per_call_pct=0.0),
            _run("recorded", callherald_cpu_per_call_pct=0.01),
            _cost(relay_cpu_per_call_pct=0.0, recorded_cpu_per_call_pct=0.01),
        ),
        (
            _run("relay", error="callherald did not start"),
            _run("recorded", recordings=0, recordings_complete=0, recorded_s=0.0),
            _cost(recordings=0, recordings_complete=0, recorded_s=0.0),
        ),
    ],
    ids=["under-target", "at-target-is-not-under", "relay-idle", "relay-failed"],
)
def test_recording_is_weighed_against_relaying_alone(
    relay: RunResult, recorded: RunResult, expected: RecordingCost
) -> None:
    assert cost_of_recording(relay, recorded) == expected


def _stat(utime: int, stime: int) -> str:
    return f"7 (x) S 1 7 7 0 -1 0 0 0 0 0 {utime} {stime} 0 0 20 0 1 0"


def test_cpu_ticks_are_grouped_by_thread_name() -> None:
    tasks = [
        (7, "callherald\n", _stat(100, 20)),  # the main thread: the event loop
        (8, "rec-writer\n", _stat(5, 7)),
        (9, "evidence-writer\n", _stat(1, 0)),
        (10, "callherald\n", _stat(2, 2)),  # an unnamed thread keeps the process's name
        (11, "evidence-writer\n", _stat(3, 1)),
    ]
    assert ticks_by_thread(7, tasks) == {
        "main": 120,
        "main (kernel)": 20,  # its system time: the relay's sending and receiving
        "rec-writer": 12,
        "evidence-writer": 5,
        "callherald": 4,
    }
    assert ticks_by_thread(7, []) == {}


def test_what_recording_adds_is_split_by_thread() -> None:
    relay = {"main": 15.0, "evidence-writer": 0.2}
    recorded = {"main": 23.5, "rec-writer": 1.8, "evidence-writer": 0.3}
    added = thread_cpu_added(relay, recorded)
    assert list(added) == ["main", "rec-writer", "evidence-writer"]
    assert added == pytest.approx({"main": 8.5, "rec-writer": 1.8, "evidence-writer": 0.1})
    assert thread_cpu_added({"main": 15.0, "gone": 1.0}, {"main": 15.5}) == pytest.approx(
        {"main": 0.5, "gone": -1.0}
    )
    assert thread_cpu_added({}, recorded) == {}
    assert thread_cpu_added(relay, {}) == {}

    cost = cost_of_recording(
        _run("relay", callherald_thread_cpu_pct=relay), _run("recorded", callherald_thread_cpu_pct=recorded)
    )
    assert cost.thread_cpu_added_pct == added


def test_the_report_shows_callherald_cpu_by_thread() -> None:
    relay = _run(
        "relay",
        callherald_thread_cpu_pct={
            "main": 15.0,
            "main (kernel)": 10.0,
            "evidence-writer": 0.2,
            "libuv-worker": 0.0,
        },
    )
    recorded = _run(
        "recorded",
        callherald_thread_cpu_pct={
            "main": 23.5,
            "main (kernel)": 10.02,
            "rec-writer": 1.8,
            "libuv-worker": 0.04,
        },
    )
    row = {
        "calls": 200,
        "repetition": 1,
        "relay": asdict(relay),
        "recorded": asdict(recorded),
        "against_direct": {},
        "recording_cost": asdict(cost_of_recording(relay, recorded)),
    }
    report = format_report([row], 20.0)
    assert "callherald CPU % by thread (steady): main 15.0, main (kernel) 10.0, evidence-writer 0.2" in report
    assert "callherald CPU % by thread (steady): main 23.5, main (kernel) 10.0, rec-writer 1.8" in report
    assert "what recording adds, by callherald thread" in report
    # The main thread's kernel part is shown even when recording adds nothing to it.
    assert "  1   200  main +8.5, main (kernel) +0.0, rec-writer +1.8, evidence-writer -0.2" in report
    assert "libuv-worker" not in report  # idle threads are left to the JSON


def test_recording_is_also_weighed_against_an_announced_call_when_measured() -> None:
    relay = _run("relay", callherald_cpu_per_call_pct=0.08)
    announced = _run("announced", callherald_cpu_per_call_pct=0.1)
    recorded = _run("recorded", callherald_cpu_per_call_pct=0.16, successful_calls=200)
    cost = cost_of_recording(relay, recorded, announced)
    assert cost.cpu_per_call_ratio == pytest.approx(2.0)
    assert cost.cpu_target_met is False  # the target is against relaying alone
    assert cost.announced_cpu_per_call_pct == 0.1
    assert cost.cpu_per_call_ratio_to_announced == pytest.approx(1.6)


def test_the_recording_ratio_is_summarised_over_repetitions() -> None:
    def row(calls: int, ratio: float | None) -> dict[str, Any]:
        return {"recording_cost": {"calls": calls, "cpu_per_call_ratio": ratio}}

    rows = [row(200, 1.9), row(100, 1.5), row(200, 1.7), {"recording_cost": None}, row(200, 2.1)]
    rows += [row(100, None), row(400, 1.8)]  # a failed run has no ratio; one repetition no spread
    assert ratio_spreads(rows) == [
        RatioSpread(calls=200, repetitions=3, median=1.9, lowest=1.7, highest=2.1),
    ]
    at_100, at_200 = ratio_spreads([*rows, row(100, 1.6)])
    assert (at_100.calls, at_100.repetitions, at_100.lowest, at_100.highest) == (100, 2, 1.5, 1.6)
    assert at_100.median == pytest.approx(1.55)
    assert at_200.median == 1.9


def test_the_speed_probe_times_its_work_until_its_limit(tmp_path: Path) -> None:
    config = tmp_path / "probe.json"
    out = tmp_path / "probe.txt"
    config.write_text(json.dumps({"out": str(out), "max_s": 0.35}), encoding="utf-8")
    assert call_load.main(["--speed-probe", str(config)]) == 0
    points = read_probe(out.read_text(encoding="ascii"))
    assert 2 <= len(points) <= 4  # one every 0.1 s, each after its own work
    assert all(work > 0 for _, work in points)
    assert [at for at, _ in points] == sorted(at for at, _ in points)


def test_probe_lines_cut_short_are_skipped() -> None:
    assert read_probe("10.0 500.5\n10.1 510\nbad line\n10.2\n10.3 49") == [
        (10.0, 500.5),
        (10.1, 510.0),
        (10.3, 49.0),
    ]


def test_each_second_of_the_window_gets_its_cpu_and_its_probe_median() -> None:
    # Cumulative CPU ticks every 0.25 s: 20 ticks a second, then 40 from t = 102.
    series = [(100 + k / 4, 5 * k if k <= 8 else 40 + 10 * (k - 8)) for k in range(17)]
    probe = [(100.05, 500.0), (100.5, 520.0), (100.9, 900.0), (101.2, 510.0), (102.5, 1000.0)]
    seconds = seconds_with_speed(series, probe, (100.0, 103.5), 1.0)
    # Second 103-104 is not whole in the window; 102-103 has one probe point.
    assert seconds == [(20.0, 520.0), (20.0, 510.0), (40.0, 1000.0)]
    assert seconds_with_speed(series, [], (100.0, 103.0), 1.0) == []


def test_cpu_at_full_speed_keeps_the_seconds_the_probe_ran_fast() -> None:
    seconds = [(20.0, 500.0), (21.0, 560.0), (30.0, 900.0), (19.0, 520.0), (22.0, 575.0), (23.0, 574.0)]
    seconds.append((24.0, 576.0))
    assert full_speed_reference([600.0, 500.0, *([900.0] * 18)]) == 500.0  # the 5th percentile
    cpu, kept = cpu_at_full_speed(seconds, 500.0)  # up to 575 µs counts
    assert kept == 5
    assert cpu == pytest.approx((20.0 + 21.0 + 19.0 + 22.0 + 23.0) / 5)
    assert cpu_at_full_speed(seconds[:4], 500.0) == (None, 3)  # too few seconds to tell
    assert cpu_at_full_speed(seconds, None) == (None, 0)


def test_full_speed_figures_take_the_machine_s_speed_from_every_run() -> None:
    fast = [(18.0, 500.0)] * 6
    relay = _run("relay", speed_seconds=[*fast, (27.0, 950.0)])
    recorded = _run("recorded", speed_seconds=[(27.0, 505.0)] * 5 + [(40.0, 960.0)] * 3)
    direct = _run("direct")
    [(calls, rep, results)] = with_full_speed(
        [(200, 1, {"direct": direct, "relay": relay, "recorded": recorded})]
    )
    assert (calls, rep) == (200, 1)
    assert results["direct"] == direct  # not through callherald: nothing to weigh
    assert (results["relay"].full_speed_cpu_pct, results["relay"].full_speed_seconds) == (18.0, 6)
    assert (results["recorded"].full_speed_cpu_pct, results["recorded"].full_speed_seconds) == (27.0, 5)
    cost = cost_of_recording(results["relay"], results["recorded"])
    assert cost.full_speed_cpu_ratio == pytest.approx(1.5)
    row = {
        "calls": 200,
        "repetition": 1,
        "relay": asdict(results["relay"]),
        "recorded": asdict(results["recorded"]),
        "against_direct": {},
        "recording_cost": asdict(cost),
    }
    assert call_load._full_speed_line(row) == (
        "  over the full-speed seconds: CPU relay 18.0 % (6/7 s), recorded 27.0 % (5/8 s); x1.50 of relay only"
    )


MS = 1_000_000


@pytest.mark.parametrize(
    ("sent_at", "seen", "window_ns", "expected"),
    [
        ([0, 20, 40, 60, 80], b"\x01\x01\x01\x01\x01", (0, 100), (5, 5)),
        ([0, 20, 40, 60, 80], b"\x00\x00\x01\x00\x01", (20, 80), (3, 1)),  # notice: 0 and 1 not back
        ([0, 20, 40, 60, 80], b"\x00\x00\x01\x01\x01", (40, 61), (2, 2)),
        ([0, 20, 40], b"\x01\x01\x01", (50, 90), (0, 0)),
        ([], b"", (0, 10), (0, 0)),
    ],
    ids=["all-back", "start-and-end", "end-excluded", "after-the-stream", "never-sent"],
)
def test_window_figures_count_packets_sent_within_the_window(
    sent_at: list[int], seen: bytes, window_ns: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert window_figures(sent_at, seen, window_ns) == expected


@pytest.mark.parametrize(
    ("ups", "stops", "backs", "expected"),
    [
        ([10.0, 10.5, 11.0], [31.0, 31.5, 32.0], [10.1, 10.6, 11.1], (12.1, 30.7)),
        ([10.0, 10.5, 11.0], [31.0], [10.5, 11.0, 11.5], (12.5, 30.7)),  # notices: back 0.5 s after up
        ([10.0, 10.5, 11.0], [31.0], [10.5, 20.0], (21.0, 30.7)),  # the slowest that came back
        ([10.0, 10.5, 11.0], [31.0], [], (12.0, 30.7)),  # nothing back: calls up
        ([10.0, 10.5, 11.0], [12.5], [10.1, 10.6, 11.1], None),  # too short
        ([], [], [], None),
    ],
    ids=["relay", "after-every-notice", "some-never-back", "none-back", "too-short", "no-call"],
)
def test_the_steady_window_opens_after_every_call_is_up_and_back(
    ups: list[float], stops: list[float], backs: list[float], expected: tuple[float, float] | None
) -> None:
    samples = Samples(ups=ups, stops=stops)
    window = steady_window(samples, 3, 40.0, backs)
    assert window == (None if expected is None else pytest.approx(expected))


def test_first_backs_come_from_the_agent_output_in_monotonic_time() -> None:
    output = "ready\nback 21020 1700000000500000000\nnoise\nback 21021 1700000001000000000\nback x 1\n"
    assert first_backs(output, 1_699_999_900.0) == pytest.approx([100.5, 101.0])


def test_an_empty_evidence_database_holds_no_recording(tmp_path: Path) -> None:
    database = tmp_path / "evidence.sqlite"
    EvidenceStore(database).close()
    assert read_recordings(database) == RecordingTally(recordings=0, complete=0, complete_s=0.0)


@pytest.mark.parametrize("modes", ["", "direct,bogus", "relay,,recorded,x"])
def test_unknown_modes_are_refused(modes: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        call_load.main(["--modes", modes])
    assert exit_info.value.code == 2
    assert "modes are a comma-separated subset of direct,relay,announced,recorded" in capsys.readouterr().err


SMOKE_CALLS = 3
SMOKE_HOLD_S = 4  # the recorded run's window opens about 1.5 s after the last call is up


@pytest.mark.e2e
@pytest.mark.timeout(150)
@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp is not installed")
def test_three_calls_direct_relayed_and_recorded(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--calls", str(SMOKE_CALLS), "--hold-s", str(SMOKE_HOLD_S), "--json"]
    assert call_load.main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["modes"] == ["direct", "relay", "recorded"]
    [row] = document["results"]
    assert row["calls"] == SMOKE_CALLS
    assert row["shared_window_s"] == 0.0  # one run after the other
    for path in call_load.DEFAULT_MODES:
        run = row[path]
        assert run["error"] is None, run["error"]
        assert (run["successful_calls"], run["failed_calls"]) == (SMOKE_CALLS, 0)
        for figure in ("loss_pct", "run_loss_pct", "jitter_ms", "rtt_p50_ms", "window_s"):
            assert isinstance(run[figure], float), (path, figure, run[figure])
        assert 0.0 <= run["loss_pct"] <= 100.0
        assert run["rtp"]["calls_streamed"] == SMOKE_CALLS
        assert run["rtp"]["calls_back"] == SMOKE_CALLS
        assert run["rtp"]["window"]["calls"] == SMOKE_CALLS
        assert run["rtp"]["packets_sent"] >= SMOKE_CALLS * 50
    # Without a prompt the packets come back under the agent's own SSRC (the echo keeps the header);
    # after one, under callherald's where it went out in callherald's own packets.
    for path in ("direct", "relay"):
        assert (row[path]["rtp"]["renumbered"], row[path]["rtp"]["calls_renumbered"]) == (0, 0)
    renumbered = row["recorded"]["rtp"]
    assert 0 <= renumbered["calls_renumbered"] <= SMOKE_CALLS
    assert (renumbered["renumbered"] > 0) == (renumbered["calls_renumbered"] > 0)
    for path in ("relay", "recorded"):
        run = row[path]
        assert run["callherald_calls_started"] == SMOKE_CALLS
        assert run["callherald_end_reasons"] == {"bye-from-a": SMOKE_CALLS}
        assert run["callherald_log_problems"] == []
        for figure in ("callherald_cpu_pct", "callherald_cpu_per_call_pct", "rss_per_call_kib"):
            assert isinstance(run[figure], float), (path, figure, run[figure])
        assert {"main", "evidence-writer"} <= set(run["callherald_thread_cpu_pct"]), path
        assert isinstance(row["against_direct"][path]["loss_pct"], float)
    recorded = row["recorded"]
    # The notice and the beep kept each call's first packets from coming back.
    assert recorded["rtp"]["packets_before_first_back"] >= SMOKE_CALLS * round(call_load.NOTICE_S / 0.02)
    assert recorded["recordings"] == recorded["recordings_complete"] == SMOKE_CALLS
    assert 0 < recorded["recorded_s"] <= SMOKE_CALLS * (SMOKE_HOLD_S + 1)
    assert row["relay"]["recordings"] is None
    # Recording's sealing and writing runs on its own thread, which relaying never starts.
    assert "rec-writer" in recorded["callherald_thread_cpu_pct"]
    assert "rec-writer" not in row["relay"]["callherald_thread_cpu_pct"]
    cost = row["recording_cost"]
    assert (cost["recordings_complete"], cost["calls_answered"]) == (SMOKE_CALLS, SMOKE_CALLS)
    assert isinstance(cost["rss_per_call_ratio"], float | None)
    assert "main" in cost["thread_cpu_added_pct"]
    if row["relay"]["callherald_cpu_per_call_pct"] > 0:
        assert isinstance(cost["cpu_per_call_ratio"], float)
        assert isinstance(cost["cpu_target_met"], bool)
    assert document["target"]["recording_cpu_per_call_ratio_below"] == call_load.TARGET_RECORDING_CPU_RATIO


@pytest.mark.e2e
@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp is not installed")
def test_modes_pick_the_runs_and_an_announced_call_records_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert call_load.main(["--calls", "2", "--hold-s", "3", "--modes", "announced,recorded", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["results"]
    assert "direct" not in row
    assert "relay" not in row
    assert row["recorded"]["recordings_complete"] == 2
    assert row["against_direct"] == {}
    assert row["recording_cost"] is None
    announced = row["announced"]
    assert announced["error"] is None, announced["error"]
    assert (announced["successful_calls"], announced["callherald_calls_started"]) == (2, 2)
    assert announced["recordings"] is None
    assert announced["callherald_log_problems"] == []  # recording switched off is no warning
    # The notice kept the first packets from coming back. Both runs' agents got the notice's frames;
    # only the recorded calls' agents got a beep (8 frames) on top. In the announced run one more
    # frame of callherald's per call may slip through when its echo races the joining of the
    # parties; in the recorded run the beep, playing to the agent then, holds it back.
    notice_frames = round(call_load.NOTICE_S / 0.02)
    assert announced["rtp"]["packets_before_first_back"] >= 2 * notice_frames
    beep_frames = -(-BEEP_MS // 20)
    assert 2 * notice_frames <= announced["rtp"]["stray"] <= 2 * (notice_frames + 1)
    assert row["recorded"]["rtp"]["stray"] >= 2 * (notice_frames + beep_frames)


@pytest.mark.e2e
@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp is not installed")
def test_without_a_constant_ssrc_no_call_comes_back_renumbered(capsys: pytest.CaptureFixture[str]) -> None:
    # media.constant_ssrc: false leaves the relayed packets as they are after the notice and beep.
    argv = ["--calls", "2", "--hold-s", "3", "--modes", "recorded", "--constant-ssrc", "false"]
    assert call_load.main(argv) == 0
    report = capsys.readouterr().out
    assert "renumbered: 0 of 2 calls came back renumbered" in report
    assert ": 0 packets" in report


@pytest.mark.e2e
@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp is not installed")
def test_paired_runs_are_made_at_the_same_time(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--calls", "2", "--hold-s", str(SMOKE_HOLD_S), "--modes", "relay,recorded", "--paired", "--json"]
    assert call_load.main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["environment"]["paired"] is True
    [row] = document["results"]
    relay, recorded = row["relay"], row["recorded"]
    for run in (relay, recorded):
        assert run["error"] is None, run["error"]
        assert (run["successful_calls"], run["callherald_calls_started"]) == (2, 2)
        assert run["callherald_log_problems"] == []
    assert recorded["recordings_complete"] == 2
    # Made together: the steady windows were open at the same time (one after the other, never).
    assert row["shared_window_s"] > 0
    assert row["recording_cost"]["recordings_complete"] == 2


def test_callherald_gets_a_cpu_of_its_own_when_pinned() -> None:
    available = os.sched_getaffinity(0)
    assert call_load.cpu_placement(False) == (None, None)
    callherald_cpus, load_cpus = call_load.cpu_placement(True)
    if len(available) < 2:
        assert (callherald_cpus, load_cpus) == (None, None)
        return
    assert callherald_cpus is not None
    assert load_cpus is not None
    assert len(callherald_cpus) == 1
    assert callherald_cpus.isdisjoint(load_cpus)
    assert callherald_cpus | load_cpus == available


def test_a_run_starts_from_an_empty_directory_whatever_an_earlier_benchmark_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The recordings counted are those in the run's data directory: one left by an earlier
    # benchmark in the same --workdir would be counted again.
    left = tmp_path / "200-recorded-1" / "data"
    left.mkdir(parents=True)
    (left / "evidence.sqlite").write_bytes(b"an earlier run's")
    seen: list[bool] = []

    def run_once(path: str, calls: int, hold_s: float, workdir: Path, **_: object) -> RunResult:
        seen.append(workdir.exists())
        return _run(path)

    monkeypatch.setattr(call_load, "run_once", run_once)
    call_load.run_series(["recorded"], 200, 20.0, tmp_path, 1)
    assert seen == [False]
