"""Concurrent calls through callherald, relayed and recorded, measured against the same load without it.

Run as ``python -m benchmarks.call_load [--calls 50,100,200,400] [--hold-s 20]
[--modes direct,relay,recorded] [--json]``. For each concurrency N, up to four runs on 127.0.0.1
(``--modes`` picks them; ``announced`` only when asked for):

- ``direct``: a SIPp UAC (the PBX) calls a SIPp UAS (the carrier) straight;
- ``relay``: the same UAC calls ``callherald serve``, which sends the calls on to the UAS; its
  policy says ``record: false``, so callherald only relays;
- ``recorded``: the same through callherald with a policy that records every call: a short notice
  (a 0.3 s tone written to the work directory) played to the carrier side, one contract purpose
  (GDPR Art. 6(1)(b): no consent question), the agent's bridge beep, then both legs recorded,
  DTMF-masked and sealed into encrypted segment files under the run's data directory (the
  development key is made on first start; ``recording.min_free_mb: 0`` so a small disk does not
  refuse);
- ``announced``: the ``recorded`` run's configuration with ``recording.enabled: false``: the same
  notice (riding in the agent's packets when they come in time, else in callherald's own with the
  agent's renumbered after it: RFC 3550 §7, the party keeps hearing one stream), but nothing
  recorded, so no beep for the agent and the PBX side's stream passes unchanged. Recorded against
  announced is what recording (the beep, the taps, the flushes, sealing and storing) adds to an
  announced call.

``--constant-ssrc false`` runs announced and recorded with ``media.constant_ssrc: false``: after
the notice and beep each party hears the other side's packets unchanged (a new SSRC, RFC 3550
§8.2), so callherald touches no relayed packet in Python once its prompts are over.

``--withdrawal-digit D`` gives the recording policy a withdrawal digit: callherald then listens to
the outside party's audio (the echoed speech) for key presses, in-band too, all call long.

The UAS runs with ``-rtp_echo`` and answers every call with its single echo port. The UAC places N
calls (``-l N -m N``) at a rate that ramps them up in a few seconds, holds each for ``--hold-s``
seconds, then hangs up. Each call offers its own RTP port, taken from an injection file; when the
call is answered the UAC logs ``up <our port> <answered port>`` to a port file (a SIPp ``<log>``
action: no process is forked per call), and before the BYE ``stop <our port>``. A separate RTP agent
process (uvloop) owns those ports: it reads the port file, sends 20 ms G.711 packets (172 bytes, RTP
header with sequence number, timestamp and SSRC; the payload starts with the send time, the SSRC and
the sequence number again, a nibble a byte as quiet PCMU codes (``TIMING``), because after a notice
callherald renumbers the packets it relays into its own stream, RFC 3550 §7; the rest of it is
speech, callherald's bundled notice, in turns of 3 s talk and 3 s silence, half the calls talking at
any time, ``write_talk``: a recording's DTMF masking looks closer at speech than at silence) at 50
per second per call, paced against absolute deadlines, and measures what comes back: loss, the RFC
3550 §6.4.1 interarrival jitter of the round trip (send time from the payload, arrival time from the
kernel's receive timestamp) and the round trip time. Through callherald every packet crosses the
relay twice: a-leg to b-leg on the way out, b-leg to a-leg on the way back. While a recorded call's
notice and beep play, callherald keeps the parties apart and the agent's packets do not come back;
the agent tells the orchestrator when each call's packets first come back (``back <port> <time>`` on
its output). A packet of the agent's that comes back under another SSRC or sequence number than it
was sent with was renumbered by callherald (RFC 3550 §7): a prompt of that call went out in
callherald's own packets, as no packet of the other side's came in time to carry it (or in packets
it sent standing in for that side, which its stream could not follow), and the relay then rewrites
every header of the call. How many calls that happens to varies from run to run (the load
generators' own delays decide it), and each costs the relay CPU that a call whose prompts rode in
the other side's packets does not; the report counts them.

Every figure is taken over the steady-state window: from ``SETTLE_S`` after the last call came up
and its packets came back (so after every notice) to just before the first call stops sending.
callherald's CPU (utime + stime of all its threads from ``/proc/PID/stat``) is the growth over the
window (also over the ramp-up and the teardown); loss, jitter and round trip time count the packets
sent within the window (the orchestrator hands the window to the agent with the ``end`` line). The
loss over the whole run counts each call from its first packet that came back. Memory per call is
(VmRSS under load - VmRSS idle) / N; memory and open descriptors are read again after the run. The
UDP receive-buffer drops of every socket involved (``/proc/net/udp``) say where packets were lost.
On a shared machine the figures move with the neighbours' load, so each run also reports how long
callherald waited for a CPU (``/proc/PID/schedstat``) and the machine's CPU pressure
(``/proc/pressure/cpu``), and, when packets were lost, a per-second timeline that lines the slow
round trips up with both. After a ``recorded`` run the evidence database says how many recordings
are complete and how many seconds they hold; recorded against relay gives the ratios of CPU and
memory per call (target: recording adds less than 30 % CPU).

The machine's own speed moves too: on a shared host the CPU callherald runs on can be half as
fast for seconds at a time (a neighbour on the same core), and every CPU figure with it. A speed
probe on callherald's CPU times a fixed piece of Python work ten times a second
(``--speed-probe``, about 0.5 % of the CPU). The seconds of a window in which it ran within
``FULL_SPEED_SLACK`` of its fastest (the low ``FULL_SPEED_PERCENTILE`` of every second of every run
of the benchmark) are the full-speed seconds; callherald's CPU over them is reported beside the
whole window's, with the recorded / relay ratio of both. The whole-window figures decide the target.

``--paired`` runs the modes of each repetition at the same time instead of one after the other:
each with its own SIPp, RTP agent, callherald and block of ports (``port_regions``), every
callherald on callherald's CPU and the load generators on theirs. Their ratios are then taken at
one machine speed; the report says how long their steady windows were open together. Sharing a
CPU and its caches, every callherald uses more CPU than it would alone, and how much more
depends on which runs share it: compare paired figures with paired figures of the same modes.

All calls share the UAS's one echo socket, whose receive buffer (the system default) holds only a
few milliseconds of 400 calls' packets: a burst, such as a relay catching up after being kept off
the CPU, overflows it first. Its drops are listed separately.

On a machine with two CPUs or more, callherald runs on the first and SIPp and the RTP agent on
the others (``--no-pin`` lets them share). Sharing, callherald is preempted whenever a packet it
sends wakes SIPp's echo or the agent, and the more CPU it uses the more often, which inflates
the busier run of the two it compares.

Every phase has a hard time limit, every process is stopped by its PID, and all ports come from one
block below the ephemeral port range, checked free beforehand. SIPp binds its control port
(``-cp``) on every interface; everything else listens on 127.0.0.1 only. ``--repeat`` runs the
whole series again, to see the spread.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import uvloop

from benchmarks.speech import speech_ulaw
from storage.records import EvidenceStore, RecordingState

__all__ = [
    "DEFAULT_CALLS",
    "DEFAULT_HOLD_S",
    "MAIN_THREAD",
    "MAIN_THREAD_KERNEL",
    "MODES",
    "NOTICE_S",
    "PACKET_BYTES",
    "PTIME_S",
    "RTP_HEADER",
    "TARGET_RECORDING_CPU_RATIO",
    "TIMING",
    "TIMING_BYTES",
    "BenchmarkError",
    "Comparison",
    "PortPlan",
    "PortfileReader",
    "Processes",
    "RecordingCost",
    "RecordingTally",
    "RunResult",
    "Samples",
    "SippStats",
    "call_rate",
    "callherald_command",
    "callherald_yaml",
    "compare",
    "cost_of_recording",
    "cpu_pressure_us",
    "cpu_ticks",
    "find_port_plan",
    "first_backs",
    "format_report",
    "jitter_step",
    "main",
    "new_packet",
    "open_fds",
    "percentile",
    "plan_ports",
    "port_regions",
    "read_recordings",
    "read_sipp_stats",
    "read_timing",
    "rss_kib",
    "run_agent",
    "run_once",
    "run_queue_wait_ns",
    "run_series",
    "shared_window_s",
    "sipp_command",
    "start_callherald",
    "start_echo_uas",
    "steady_window",
    "thread_cpu_added",
    "ticks_by_thread",
    "udp_drops",
    "udp_port_free",
    "vm_rss_kib",
    "wait_until",
    "window_figures",
    "write_notice_wav",
    "write_rtp_header",
    "write_talk",
]

DEFAULT_CALLS = (50, 100, 200, 400)
DEFAULT_HOLD_S = 20.0
MAX_HOLD_S = 600.0  # keeps a call's sequence numbers below 2**16, so no wrap to track
TARGET_CALLS = 200
TARGET_LOSS_PCT = 0.1
TARGET_RECORDING_CPU_RATIO = 1.30  # recording and sealing add less than 30 % CPU per call to relaying
PROBE_INTERVAL_S = 0.1  # the speed probe times its work this often
PROBE_LOOPS = 20_000  # the probe's work: about 0.5 ms of Python at full speed
FULL_SPEED_PERCENTILE = 0.05  # of every second's probe time in the benchmark: the machine at full speed
FULL_SPEED_SLACK = 1.15  # a second whose probe took up to this much longer still counts as full speed
MIN_FULL_SPEED_SECONDS = 5  # fewer full-speed seconds in a window give no full-speed figure

PTIME_S = 0.020
PACKETS_PER_S = 50
PAYLOAD_BYTES = 160  # 20 ms of G.711 at 8 kHz
PACKET_BYTES = 12 + PAYLOAD_BYTES  # 172: the fixed RTP header and the payload
TIMESTAMP_STEP = 160  # RTP clock 8 kHz (RFC 3551 §4.5.14)
PAYLOAD_TYPE_PCMU = 0
PCMU_SILENCE = 0xFF
SEND_SLOTS = 10  # each 20 ms period is cut into slots so that calls do not all send at once
SLOT_S = PTIME_S / SEND_SLOTS

RTP_HEADER = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC (RFC 3550 §5.1)
TIMING = struct.Struct("!qII")
"""What the payload carries first: the send time in ns, the SSRC and the sequence number again.
After a notice callherald relays the packets renumbered into its own stream (new SSRC, sequence and
timestamp, RFC 3550 §7); the payload comes back as sent."""
TIMING_BYTES = 2 * TIMING.size
"""The timing takes a nibble per payload byte, as PCMU codes 0xF0-0xFF: at most 120 of 32767, far
below speech, so a caller's silence stays quiet (``write_rtp_header``)."""
_TO_HIGH = bytes(0xF0 | value >> 4 for value in range(256))
_TO_LOW = bytes(0xF0 | value & 0x0F for value in range(256))
_FROM_HIGH = bytes((code & 0x0F) << 4 for code in range(256))
_FROM_LOW = bytes(code & 0x0F for code in range(256))
_TIMING_END = RTP_HEADER.size + TIMING_BYTES
_KERNEL_TIME = struct.Struct("@qq")  # struct timespec
_SO_TIMESTAMPNS = 35  # Linux; the arrival time of each datagram comes as SCM_TIMESTAMPNS
_ANCILLARY_BYTES = socket.CMSG_SPACE(_KERNEL_TIME.size)

LOOPBACK = "127.0.0.1"
PORT_REGION = (21_000, 32_000)  # below the Linux ephemeral range (32768-60999)
RTP_SPARE_PAIRS = 32
SOCKET_BUFFER_BYTES = 1 << 18

SLOW_RETURN_NS = 10_000_000  # a round trip above 10 ms counts as slow in the per-second timeline
SETTLE_S = 1.0  # after the last call is up, before the CPU window opens
WINDOW_EDGE_S = 0.3  # the window closes this long before the first call stops sending
STOP_DRAIN_S = 0.5  # the UAC scenario waits this long between "stop" and BYE
AGENT_DRAIN_S = 0.5
POLL_S = 0.05
SLOW_POLL_S = 0.5
START_TIMEOUT_S = 15.0
UAS_START_TIMEOUT_S = 5.0
AGENT_START_TIMEOUT_S = 10.0
AGENT_FINISH_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
RUN_SLACK_S = 30.0
AFTER_RUN_S = 1.5  # callherald settles this long before the after-run memory reading

SIPP_RECV_TIMEOUT_MS = 10_000
DIALLED = "1000"
SCENARIOS = Path(__file__).resolve().parent / "sipp"
UAC_SCENARIO = SCENARIOS / "call_load_uac.xml"
UAS_SCENARIO = SCENARIOS / "call_load_uas.xml"
PROJECT_ROOT = Path(__file__).resolve().parent.parent

MODES = ("direct", "relay", "announced", "recorded")
DEFAULT_MODES = ("direct", "relay", "recorded")
THROUGH_CALLHERALD = ("relay", "announced", "recorded")
ANNOUNCING = ("announced", "recorded")
NOTICE_S = 0.3
NOTICE_FILE = "notice.wav"
NOTICE_PROMPT_ID = "load-notice"
NOTICE_LANGUAGE = "en"
NOTICE_RATE_HZ = 8000
NOTICE_TONE_HZ = 440.0
NOTICE_AMPLITUDE = 8000
DATA_DIR = "data"  # relative to the configuration file, so inside the run's work directory
EVIDENCE_TIMEOUT_S = 30.0


class BenchmarkError(Exception):
    """A run could not be carried out (a process did not start, a port was taken...)."""


# Pure helpers ---------------------------------------------------------------------------------


def write_rtp_header(
    buffer: bytearray, *, seq: int, timestamp: int, ssrc: int, sent_ns: int, marker: bool = False
) -> None:
    """Write an RTP v2 PCMU header into ``buffer``, then the send time, the SSRC and the sequence
    number (not wrapped) as the first ``TIMING_BYTES`` of the payload (see `TIMING`)."""
    RTP_HEADER.pack_into(
        buffer,
        0,
        0x80,
        (0x80 if marker else 0) | PAYLOAD_TYPE_PCMU,
        seq & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc,
    )
    timing = TIMING.pack(sent_ns, ssrc, seq & 0xFFFFFFFF)
    buffer[RTP_HEADER.size : _TIMING_END : 2] = timing.translate(_TO_HIGH)
    buffer[RTP_HEADER.size + 1 : _TIMING_END : 2] = timing.translate(_TO_LOW)


def read_timing(packet: bytes) -> tuple[int, int, int]:
    """The send time, SSRC and sequence number ``write_rtp_header`` put in the payload."""
    high = int.from_bytes(packet[RTP_HEADER.size : _TIMING_END : 2].translate(_FROM_HIGH), "big")
    low = int.from_bytes(packet[RTP_HEADER.size + 1 : _TIMING_END : 2].translate(_FROM_LOW), "big")
    sent_ns, ssrc, seq = TIMING.unpack((high | low).to_bytes(TIMING.size, "big"))
    return sent_ns, ssrc, seq


TALK_TURN_PACKETS = 3 * PACKETS_PER_S  # 3 s of talk, then 3 s of silence, and so on
_TALK_BYTES = PACKET_BYTES - _TIMING_END  # the payload after its timing
_PAUSE = bytes([PCMU_SILENCE]) * _TALK_BYTES


def write_talk(buffer: bytearray, speech: bytes, *, seq: int, party: int) -> None:
    """Fill the payload after its timing with what party number ``party`` says in packet
    ``seq``: its own stretch of ``speech`` (PCMU, ``benchmarks.speech``) in every other turn of
    ``TALK_TURN_PACKETS``, silence in between; odd and even parties take turns, so half of the
    calls talk at any time, as in a conversation."""
    if (seq // TALK_TURN_PACKETS + party) % 2 or len(speech) < PAYLOAD_BYTES:
        buffer[_TIMING_END:] = _PAUSE
        return
    frames = len(speech) // PAYLOAD_BYTES
    at = (seq + 997 * party) % frames * PAYLOAD_BYTES + (PAYLOAD_BYTES - _TALK_BYTES)
    buffer[_TIMING_END:] = speech[at : at + _TALK_BYTES]


def new_packet() -> bytearray:
    """A 172-byte packet buffer whose payload is PCMU silence."""
    buffer = bytearray([PCMU_SILENCE]) * PACKET_BYTES
    buffer[: RTP_HEADER.size] = bytes(RTP_HEADER.size)
    buffer[RTP_HEADER.size : _TIMING_END] = bytes([0xF0]) * TIMING_BYTES
    return buffer


def jitter_step(jitter: float, transit: float, last_transit: float) -> float:
    """One update of the RFC 3550 §6.4.1 interarrival jitter: J += (|D(i-1,i)| - J) / 16."""
    return jitter + (abs(transit - last_transit) - jitter) / 16


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of an ascending sequence, None when it is empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def probe_work_s(loops: int = PROBE_LOOPS) -> float:
    """The thread CPU time a fixed piece of pure-Python work takes now: how fast this CPU runs."""
    started = time.thread_time()
    total = 0
    for number in range(loops):
        total += number * number
    return time.thread_time() - started


def run_speed_probe(config_path: Path) -> int:
    """The speed probe's process (``--speed-probe CONFIG``): every ``PROBE_INTERVAL_S`` until
    ``max_s``, a line ``<monotonic s> <probe work µs>`` in ``out``. Ended by SIGTERM or its limit."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    deadline = time.monotonic() + float(config["max_s"])
    with Path(config["out"]).open("w", encoding="ascii", buffering=1) as out:
        while time.monotonic() < deadline:
            work_us = probe_work_s() * 1e6
            out.write(f"{time.monotonic():.4f} {work_us:.1f}\n")
            time.sleep(PROBE_INTERVAL_S)
    return 0


def read_probe(text: str) -> list[tuple[float, float]]:
    """``(monotonic s, work µs)`` from the probe's output; a line cut short by its end is skipped."""
    points: list[tuple[float, float]] = []
    for line in text.splitlines():
        words = line.split()
        try:
            points.append((float(words[0]), float(words[1])))
        except (IndexError, ValueError):
            continue
    return points


def seconds_with_speed(
    cpu_series: Sequence[tuple[float, int]],
    probe: Sequence[tuple[float, float]],
    window: tuple[float, float],
    scale: float,
) -> list[tuple[float, float]]:
    """``(CPU %, median probe µs)`` for each whole second of ``window`` that has both. The CPU is
    the growth of the cumulative ``cpu_series`` within the second, times ``scale``."""
    seconds: list[tuple[float, float]] = []
    start = window[0]
    while start + 1.0 <= window[1]:
        second = (start, start + 1.0)
        cpu = _rate(cpu_series, second, scale)
        works = [work for at, work in probe if second[0] <= at < second[1]]
        if cpu is not None and works:
            seconds.append((cpu, statistics.median(works)))
        start += 1.0
    return seconds


def full_speed_reference(probe_us: Sequence[float]) -> float | None:
    """The probe's time with the machine at full speed: a low percentile of all its seconds."""
    return percentile(sorted(probe_us), FULL_SPEED_PERCENTILE)


def cpu_at_full_speed(
    seconds: Sequence[tuple[float, float]], reference_us: float | None
) -> tuple[float | None, int]:
    """The mean CPU over the seconds whose probe ran within ``FULL_SPEED_SLACK`` of
    ``reference_us``, and how many there were; None when fewer than ``MIN_FULL_SPEED_SECONDS``."""
    if reference_us is None:
        return None, 0
    kept = [cpu for cpu, work in seconds if work <= FULL_SPEED_SLACK * reference_us]
    return (statistics.fmean(kept) if len(kept) >= MIN_FULL_SPEED_SECONDS else None), len(kept)


def call_rate(calls: int) -> int:
    """Calls per second for N concurrent calls: all of them up within about four seconds."""
    return min(100, max(10, math.ceil(calls / 4)))


def cpu_ticks(stat_text: str) -> int:
    """utime + stime in clock ticks from the text of ``/proc/PID/stat``."""
    return sum(_user_and_system_ticks(stat_text))


def _user_and_system_ticks(stat_text: str) -> tuple[int, int]:
    fields = stat_text[stat_text.rindex(")") + 2 :].split()
    return int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5), counted from 1


MAIN_THREAD = "main"
MAIN_THREAD_KERNEL = "main (kernel)"
_MAIN_PARTS = (MAIN_THREAD, MAIN_THREAD_KERNEL)


def ticks_by_thread(pid: int, tasks: Iterable[tuple[int, str, str]]) -> dict[str, int]:
    """utime + stime per thread name, from ``(tid, comm, stat text)`` of a process's tasks: the
    main thread (tid = pid, the event loop) is ``main``, the others go by the name the operating
    system has for them (callherald names its file and database threads); threads of one name
    are added up. ``main (kernel)`` is the main thread's stime alone: its share of ``main`` spent
    in the kernel, where the relay's receiving and sending goes, the rest being Python's."""
    ticks: dict[str, int] = {}
    for tid, comm, stat_text in tasks:
        name = MAIN_THREAD if tid == pid else comm.strip() or "?"
        user, system = _user_and_system_ticks(stat_text)
        ticks[name] = ticks.get(name, 0) + user + system
        if tid == pid:
            ticks[MAIN_THREAD_KERNEL] = system
    return ticks


def vm_rss_kib(status_text: str) -> int:
    """VmRSS in KiB from the text of ``/proc/PID/status``."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError("no VmRSS line")


def udp_drops(proc_net_udp: str) -> dict[tuple[int, int], int]:
    """Receive drops per (local port, inode) from the text of ``/proc/net/udp``."""
    drops: dict[tuple[int, int], int] = {}
    for line in proc_net_udp.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 13:
            continue
        port = int(fields[1].rsplit(":", 1)[1], 16)
        drops[(port, int(fields[9]))] = int(fields[12])
    return drops


@dataclass(frozen=True, slots=True, kw_only=True)
class SippStats:
    """The cumulative counters from the last line of a SIPp ``-trace_stat`` file."""

    created: int
    successful: int
    failed: int
    retransmissions: int
    dead_call_messages: int
    failure_causes: dict[str, int]


def read_sipp_stats(csv_text: str) -> SippStats:
    """Parse a SIPp statistics file (``;``-separated, a header line, one line per dump)."""
    lines = [line for line in csv_text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise ValueError("no statistics line")
    names = lines[0].split(";")
    values = dict(zip(names, lines[-1].split(";"), strict=False))

    def count(name: str) -> int:
        return int(values.get(name, "0") or 0)

    causes = {
        name.removeprefix("Failed").removesuffix("(C)"): count(name)
        for name in names
        if name.startswith("Failed") and name.endswith("(C)") and name != "FailedCall(C)" and count(name)
    }
    return SippStats(
        created=count("TotalCallCreated"),
        successful=count("SuccessfulCall(C)"),
        failed=count("FailedCall(C)"),
        retransmissions=count("Retransmissions(C)"),
        dead_call_messages=count("DeadCallMsgs(C)"),
        failure_causes=causes,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PortPlan:
    """Every port one run uses, from one block: SIP, SIPp control and media, RTP agent, relay."""

    uac_sip: int
    uas_sip: int
    callherald_pbx: int
    callherald_carrier: int
    uac_control: int
    uas_control: int
    echo: int  # the UAS echoes on this port and on this port + 2 (video)
    uac_media: int  # SIPp binds this port and this port + 2 even without media
    agent: tuple[int, ...]
    rtp_min: int
    rtp_max: int

    def ports(self) -> list[int]:
        """Every port, in plan order (duplicates mean the plan is broken)."""
        single = [
            self.uac_sip,
            self.uas_sip,
            self.callherald_pbx,
            self.callherald_carrier,
            self.uac_control,
            self.uas_control,
        ]
        media = [*range(self.echo, self.echo + 4), *range(self.uac_media, self.uac_media + 4)]
        return [*single, *media, *self.agent, *range(self.rtp_min, self.rtp_max + 1)]


def plan_ports(base: int, calls: int) -> PortPlan:
    """The port layout for ``calls`` calls starting at ``base``; the relay gets 4 ports per call."""
    base += base % 2
    agent_first = base + 20
    rtp_min = agent_first + calls + 10
    rtp_min += rtp_min % 2
    return PortPlan(
        uac_sip=base,
        uas_sip=base + 1,
        callherald_pbx=base + 2,
        callherald_carrier=base + 3,
        uac_control=base + 4,
        uas_control=base + 5,
        echo=base + 10,
        uac_media=base + 14,
        agent=tuple(range(agent_first, agent_first + calls)),
        rtp_min=rtp_min,
        rtp_max=rtp_min + 4 * calls + 2 * RTP_SPARE_PAIRS - 1,
    )


def udp_port_free(port: int) -> bool:
    """Whether a UDP socket can bind ``port`` on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def port_regions(count: int, region: tuple[int, int] = PORT_REGION) -> list[tuple[int, int]]:
    """``region`` cut into ``count`` equal parts: runs at the same time (``--paired``) each search
    their own, so no two plans can overlap, even before either run has bound its ports."""
    low, high = region
    size = (high - low) // count
    return [(low + index * size, low + (index + 1) * size) for index in range(count)]


def find_port_plan(
    calls: int, is_free: Callable[[int], bool] = udp_port_free, region: tuple[int, int] = PORT_REGION
) -> PortPlan:
    """A plan whose every port is free now, searched in ``region`` from a per-process start."""
    low, high = region
    size = len(plan_ports(low, calls).ports()) + 40
    span = high - low - size
    if span <= 0:
        raise BenchmarkError(f"{calls} calls need {size} ports, more than the port region holds")
    start = (os.getpid() * 97) % span
    step = 200
    for offset in range(0, span, step):
        plan = plan_ports(low + (start + offset) % span, calls)
        if all(is_free(port) for port in plan.ports()):
            return plan
    raise BenchmarkError("no free block of ports for the run")


def write_notice_wav(path: Path, seconds: float = NOTICE_S) -> None:
    """The ``recorded`` run's notice: a 16-bit mono 8 kHz WAV of a steady tone lasting ``seconds``."""
    t = np.arange(round(seconds * NOTICE_RATE_HZ)) / NOTICE_RATE_HZ
    samples = np.round(NOTICE_AMPLITUDE * np.sin(2 * np.pi * NOTICE_TONE_HZ * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(NOTICE_RATE_HZ)
        out.writeframes(samples.tobytes())


_RELAY_ONLY_POLICY = """\
# Relaying alone: no notice and no recording on these calls.
purposes:
  - {id: evidence, lawful_basis: contract, retention_days: 30}
policies:
  - {name: relay-only, record: false}
"""


def _recording_policy(*, enabled: bool, withdrawal_digit: str | None = None) -> str:
    """The recorded run's notice and policy; with ``enabled`` false nothing is recorded (the
    announced run): no beep for the agent, the PBX side's stream passes unchanged. A
    ``withdrawal_digit`` is listened for all call long."""
    switch = "true" if enabled else "false"
    withdrawal = f"\n    withdrawal_digit: '{withdrawal_digit}'" if withdrawal_digit else ""
    return f"""\
announcements:
  default_language: {NOTICE_LANGUAGE}
  prompt_sets:
    - id: {NOTICE_PROMPT_ID}
      prompts:
        {NOTICE_LANGUAGE}: {{file: {NOTICE_FILE}, text: "This call is recorded."}}
# Every call recorded as evidence of the agreement (GDPR Art. 6(1)(b)): a notice, no question.
purposes:
  - {{id: evidence, lawful_basis: contract, retention_days: 30}}
policies:
  - name: record-all
    match: {{direction: any}}
    notice: {NOTICE_PROMPT_ID}
    language: {NOTICE_LANGUAGE}
    purposes: [evidence]
    mode: answer
    on_failure: connect_unrecorded{withdrawal}
recording:
  enabled: {switch}
  min_free_mb: 0
"""


def callherald_yaml(
    plan: PortPlan,
    calls: int,
    path: str = "relay",
    *,
    constant_ssrc: bool = True,
    withdrawal_digit: str | None = None,
) -> str:
    """A loopback configuration for the run ``path`` (``relay``, ``announced``, ``recorded``): PBX =
    the SIPp UAC, carrier = the SIPp UAS, info-level logging, data under ``data`` beside it.
    Announced and recorded, every call hears the notice in ``notice.wav`` (beside the configuration;
    see `write_notice_wav`); recorded, it is recorded as well; relay, it is only relayed
    (``record: false``). ``constant_ssrc`` is ``media.constant_ssrc``: false, a party hears the
    other side's packets unchanged after callherald's prompts. ``withdrawal_digit`` goes into the
    recording policy."""
    policy = (
        _RELAY_ONLY_POLICY
        if path == "relay"
        else _recording_policy(enabled=path == "recorded", withdrawal_digit=withdrawal_digit)
    )
    return f"""\
listen:
  pbx: {{host: {LOOPBACK}, port: {plan.callherald_pbx}, transport: udp}}
  carrier: {{host: {LOOPBACK}, port: {plan.callherald_carrier}, transport: udp}}
pbx:
  peers:
    - name: load-pbx
      host: {LOOPBACK}
      port: {plan.uac_sip}
      allowed_networks: [127.0.0.0/8]
  default_target: "{LOOPBACK}:{plan.uac_sip}"
carrier:
  host: {LOOPBACK}
  port: {plan.uas_sip}
  allowed_networks: [127.0.0.0/8]
media:
  rtp_port_min: {plan.rtp_min}
  rtp_port_max: {plan.rtp_max}
  bind_address: {LOOPBACK}
  advertised_address: {LOOPBACK}
  constant_ssrc: {"true" if constant_ssrc else "false"}
limits:
  max_concurrent_calls: {calls + RTP_SPARE_PAIRS}
  rtp_inactivity_timeout_s: 30
logging:
  level: info
data_dir: {DATA_DIR}
{policy}"""


class PortfileReader:
    """Reads the lines appended to the port file since the last call (complete lines only)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""

    def read(self) -> list[list[str]]:
        try:
            with self._path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        return [line.decode("ascii", "replace").split() for line in complete if line.strip()]


# RTP agent (runs as its own process) ----------------------------------------------------------


class _Stream:
    """One call's RTP port: what it sent and what came back."""

    __slots__ = (
        "dest",
        "duplicates",
        "first_back_seq",
        "jitter",
        "last_transit",
        "packet",
        "port",
        "received",
        "recv_errors",
        "renumbered",
        "seen",
        "send_errors",
        "sending",
        "sent",
        "sent_at",
        "seq",
        "sock",
        "ssrc",
        "stray",
        "timestamp0",
    )

    def __init__(self, port: int, sock: socket.socket, ssrc: int) -> None:
        self.port = port
        self.sock = sock
        self.ssrc = ssrc
        self.dest: tuple[str, int] | None = None
        self.sending = False
        self.packet = new_packet()
        self.seq = 0
        self.timestamp0 = random.getrandbits(32)  # RFC 3550 §5.1: random initial timestamp
        self.sent = 0
        self.sent_at = array("q")  # the send time of each sequence number, ascending
        self.send_errors = 0
        self.received = 0
        self.first_back_seq: int | None = None  # the first packet that came back (after any notice)
        self.duplicates = 0
        self.stray = 0
        self.renumbered = 0  # ours by the payload, back under another SSRC or number (RFC 3550 §7)
        self.recv_errors = 0
        self.seen = bytearray(1 << 16)
        self.jitter = 0.0
        self.last_transit: int | None = None


def window_figures(
    sent_at: Sequence[int], seen: bytes | bytearray, window_ns: tuple[int, int]
) -> tuple[int, int]:
    """(packets sent, packets back) of one stream among those sent within ``window_ns`` (epoch ns,
    start included, end excluded); ``sent_at`` is the ascending send time of each sequence number,
    ``seen[seq]`` is 1 for each sequence number that came back. A send error counts as lost."""
    low = bisect.bisect_left(sent_at, window_ns[0])
    high = bisect.bisect_left(sent_at, window_ns[1])
    return high - low, seen[low:high].count(1)


class _Agent:
    """Sends and measures RTP for every call the port file announces, until ``end`` or the deadline.

    Port file lines: ``up <port> <destination port>``, ``stop <port>``, then from the orchestrator
    ``end [<window start> <window end>]`` (epoch ns): the figures of the packets sent within the
    window come out beside those of the whole run. The first packet back of each call is told on
    standard output as ``back <port> <arrival epoch ns>``.
    """

    def __init__(self, ports: Sequence[int], portfile: Path, max_s: float, speech: bytes = b"") -> None:
        self._portfile = PortfileReader(portfile)
        self._speech = speech
        self._max_s = max_s
        self._streams: dict[int, _Stream] = {}
        self._slots: list[list[_Stream]] = [[] for _ in range(SEND_SLOTS)]
        self._started = 0
        self._transits = array("q")
        self._arrivals = array("q")
        self._jitters = array("d")
        self._jitter_sends = array("q")  # the send time of the packet behind each jitter value
        self._lateness = array("d")
        self._unknown_lines = 0
        self._window_ns: tuple[int, int] | None = None
        self._t0 = 0.0
        self._tick_index = 0
        self._next_deadline = 0.0
        self._handle: asyncio.TimerHandle | None = None
        for index, port in enumerate(ports):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            sock.bind((LOOPBACK, port))
            sock.setblocking(False)
            self._streams[port] = _Stream(port, sock, 0x10000 + index)

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for stream in self._streams.values():
            loop.add_reader(stream.sock.fileno(), self._on_readable, stream)
        self._t0 = self._next_deadline = loop.time()
        self._handle = loop.call_at(self._next_deadline, self._tick)
        deadline = self._t0 + self._max_s
        try:
            while loop.time() < deadline and self._follow_portfile():
                await asyncio.sleep(POLL_S / 5)
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
            await asyncio.sleep(AGENT_DRAIN_S)
        finally:
            for stream in self._streams.values():
                loop.remove_reader(stream.sock.fileno())
                stream.sock.close()
        return self._summary()

    def _follow_portfile(self) -> bool:
        """Apply new port file lines; False once ``end`` was read."""
        for words in self._portfile.read():
            if words[:1] == ["end"]:
                if len(words) == 3 and all(word.isdigit() for word in words[1:]):
                    self._window_ns = (int(words[1]), int(words[2]))
                return False
            stream = self._streams.get(int(words[1])) if len(words) >= 2 and words[1].isdigit() else None
            if stream is None:
                self._unknown_lines += 1
            elif words[0] == "up" and len(words) == 3 and words[2].isdigit():
                stream.dest = (LOOPBACK, int(words[2]))
                if not stream.sending:
                    stream.sending = True
                    self._slots[self._started % SEND_SLOTS].append(stream)
                    self._started += 1
            elif words[0] == "stop":
                if stream.sending:
                    stream.sending = False
                    for slot in self._slots:
                        if stream in slot:
                            slot.remove(stream)
            else:
                self._unknown_lines += 1
        return True

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        lateness = self._lateness
        time_ns = time.time_ns
        while self._next_deadline <= now:
            slot = self._slots[self._tick_index % SEND_SLOTS]
            if slot:
                lateness.append(now - self._next_deadline)
            for stream in slot:
                seq = stream.seq
                sent_ns = time_ns()
                write_rtp_header(
                    stream.packet,
                    seq=seq,
                    timestamp=stream.timestamp0 + seq * TIMESTAMP_STEP,
                    ssrc=stream.ssrc,
                    sent_ns=sent_ns,
                    marker=seq == 0,
                )
                write_talk(stream.packet, self._speech, seq=seq, party=stream.ssrc)
                stream.seq = seq + 1
                stream.sent_at.append(sent_ns)
                try:
                    stream.sock.sendto(stream.packet, stream.dest)  # type: ignore[arg-type]
                    stream.sent += 1
                except OSError:
                    stream.send_errors += 1
            self._tick_index += 1
            self._next_deadline = self._t0 + self._tick_index * SLOT_S
        self._handle = loop.call_at(self._next_deadline, self._tick)

    def _on_readable(self, stream: _Stream) -> None:
        recvmsg = stream.sock.recvmsg
        while True:
            try:
                data, ancillary, _flags, _address = recvmsg(256, _ANCILLARY_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                stream.recv_errors += 1
                return
            if len(data) < _TIMING_END:
                stream.stray += 1
                continue
            # Ours by the payload: the header may be callherald's (notice, beep, renumbered relay).
            sent_ns, ssrc, seq = read_timing(data)
            if ssrc != stream.ssrc or seq >= stream.seq:
                stream.stray += 1
                continue
            if ancillary:
                seconds, nanoseconds = _KERNEL_TIME.unpack_from(ancillary[0][2])
                arrival_ns = seconds * 1_000_000_000 + nanoseconds
            else:
                arrival_ns = time.time_ns()
            if stream.seen[seq]:
                stream.duplicates += 1
                continue
            stream.seen[seq] = 1
            stream.received += 1
            _, _, header_seq, _, header_ssrc = RTP_HEADER.unpack_from(data)
            if header_ssrc != stream.ssrc or header_seq != seq & 0xFFFF:
                stream.renumbered += 1
            if stream.first_back_seq is None:
                stream.first_back_seq = seq
                print(f"back {stream.port} {arrival_ns}", flush=True)
            transit = arrival_ns - sent_ns
            self._transits.append(transit)
            self._arrivals.append(arrival_ns)
            if stream.last_transit is not None:
                stream.jitter = jitter_step(stream.jitter, transit, stream.last_transit)
                self._jitters.append(stream.jitter)
                self._jitter_sends.append(sent_ns)
            stream.last_transit = transit

    def _window_summary(self, streams: list[_Stream]) -> dict[str, Any] | None:
        """Loss, jitter and round trips of the packets sent within the orchestrator's window."""
        if self._window_ns is None:
            return None
        start, end = self._window_ns
        counts = [window_figures(s.sent_at, s.seen, self._window_ns) for s in streams]
        sent = sum(count[0] for count in counts)
        received = sum(count[1] for count in counts)
        transits = sorted(
            transit
            for transit, arrival in zip(self._transits, self._arrivals, strict=True)
            if start <= arrival - transit < end
        )
        jitters = sorted(
            jitter
            for jitter, sent_ns in zip(self._jitters, self._jitter_sends, strict=True)
            if start <= sent_ns < end
        )
        return {
            "start_epoch_ns": start,
            "end_epoch_ns": end,
            "calls": sum(1 for count in counts if count[0]),
            "packets_sent": sent,
            "packets_received": received,
            "loss_pct": 100.0 * (sent - received) / sent if sent else None,
            "calls_with_loss": sum(1 for count in counts if count[1] < count[0]),
            "jitter_ms_mean": _ms(sum(jitters) / len(jitters)) if jitters else None,
            "jitter_ms_p99": _ms(percentile(jitters, 0.99)),
            "rtt_ms_p50": _ms(percentile(transits, 0.50)),
            "rtt_ms_p99": _ms(percentile(transits, 0.99)),
            "rtt_ms_max": _ms(transits[-1]) if transits else None,
        }

    def _summary(self) -> dict[str, Any]:
        streams = [s for s in self._streams.values() if s.sent]
        # Each call counts from its first packet back: before it the notice kept the parties apart.
        muted = [s.first_back_seq or 0 for s in streams]
        sent = sum(s.sent - skipped for s, skipped in zip(streams, muted, strict=True))
        received = sum(
            s.received - s.seen[:skipped].count(1) for s, skipped in zip(streams, muted, strict=True)
        )
        transits = sorted(self._transits)
        jitters = sorted(self._jitters)
        lateness = sorted(self._lateness)
        back = [s.first_back_seq * PTIME_S * 1000 for s in streams if s.first_back_seq is not None]

        timeline: dict[int, list[int]] = {}
        for arrival, transit in zip(self._arrivals, self._transits, strict=True):
            second = timeline.setdefault(arrival // 100_000_000, [0, 0, 0])
            second[0] += 1
            second[1] = max(second[1], transit)
            second[2] += transit > SLOW_RETURN_NS
        per_call_loss = [
            100.0 * (s.sent - skipped - s.received + s.seen[:skipped].count(1)) / (s.sent - skipped)
            for s, skipped in zip(streams, muted, strict=True)
            if s.sent > skipped
        ]
        return {
            "calls_streamed": self._started,
            "calls_back": len(back),
            "first_back_ms_mean": sum(back) / len(back) if back else None,
            "first_back_ms_max": max(back, default=None),
            "packets_sent": sum(s.sent for s in streams),
            "packets_before_first_back": sum(muted),
            "packets_received": received,
            "duplicates": sum(s.duplicates for s in streams),
            "stray": sum(s.stray for s in self._streams.values()),
            "renumbered": sum(s.renumbered for s in streams),
            "calls_renumbered": sum(1 for s in streams if s.renumbered),
            "send_errors": sum(s.send_errors for s in self._streams.values()),
            "recv_errors": sum(s.recv_errors for s in self._streams.values()),
            "unknown_portfile_lines": self._unknown_lines,
            "loss_pct": 100.0 * (sent - received) / sent if sent else None,
            "calls_with_loss": sum(1 for loss in per_call_loss if loss > 0),
            "worst_call_loss_pct": max(per_call_loss, default=None),
            "jitter_ms_mean": _ms(sum(jitters) / len(jitters)) if jitters else None,
            "jitter_ms_p99": _ms(percentile(jitters, 0.99)),
            "jitter_ms_max": _ms(jitters[-1]) if jitters else None,
            "rtt_ms_p50": _ms(percentile(transits, 0.50)),
            "rtt_ms_p99": _ms(percentile(transits, 0.99)),
            "rtt_ms_max": _ms(transits[-1]) if transits else None,
            "send_late_ms_p99": None if not lateness else 1000 * (percentile(lateness, 0.99) or 0.0),
            "send_late_ms_max": 1000 * lateness[-1] if lateness else None,
            "window": self._window_summary(streams),
            "per_100ms": [
                {"epoch_ds": tenth, "returned": n, "rtt_ms_max": worst / 1e6, "slow_returns": slow}
                for tenth, (n, worst, slow) in sorted(timeline.items())
            ],
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else value / 1e6


def run_agent(config_path: Path) -> int:
    """The RTP agent's process body: bind, say ``ready``, measure, write the summary as JSON."""
    settings = json.loads(config_path.read_text(encoding="utf-8"))
    speech = Path(settings["speech"]).read_bytes() if settings.get("speech") else b""
    agent = _Agent(settings["ports"], Path(settings["portfile"]), float(settings["max_s"]), speech)
    print("ready", flush=True)
    summary = uvloop.run(agent.run())
    Path(settings["result"]).write_text(json.dumps(summary), encoding="utf-8")
    return 0


# Orchestration ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingTally:
    """What the evidence database holds after a ``recorded`` run."""

    recordings: int
    complete: int
    complete_s: float
    """Seconds of audio in the complete recordings."""


def read_recordings(database: Path) -> RecordingTally:
    """Count the recordings in the evidence database at ``database`` (callherald stopped)."""
    with EvidenceStore(database) as store:
        records = store.recordings_list()
    complete = [record for record in records if record.state is RecordingState.COMPLETE]
    return RecordingTally(
        recordings=len(records),
        complete=len(complete),
        complete_s=sum(record.duration_ms or 0 for record in complete) / 1000,
    )


def _read_recordings_bounded(database: Path, timeout_s: float) -> RecordingTally | str:
    """`read_recordings` in a thread given ``timeout_s``; the reason as text when it failed."""
    outcome: list[RecordingTally | str] = []

    def read() -> None:
        try:
            outcome.append(read_recordings(database))
        except Exception as error:  # any failure is reported, not raised
            outcome.append(f"{type(error).__name__}: {error}")

    reader = threading.Thread(target=read, name="evidence-count", daemon=True)
    reader.start()
    reader.join(timeout_s)
    return outcome[0] if outcome else f"the evidence database did not answer within {timeout_s:.0f} s"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """One run (``direct``, ``relay`` or ``recorded``) at one concurrency. None: not measured or not
    applicable. ``loss_pct`` and ``jitter_ms`` are over the steady-state window, ``run_loss_pct``
    over the whole run (each call from its first packet back)."""

    path: str
    calls: int
    rate_cps: int
    hold_s: float
    error: str | None = None
    successful_calls: int = 0
    failed_calls: int = 0
    failure_causes: dict[str, int] = field(default_factory=dict)
    retransmissions: int = 0
    sipp_exit_code: int | None = None
    rtp: dict[str, Any] = field(default_factory=dict)
    loss_pct: float | None = None
    jitter_ms: float | None = None
    rtt_p50_ms: float | None = None
    run_loss_pct: float | None = None
    window_s: float | None = None
    window_at: tuple[float, float] | None = None  # the steady window's ends, time.monotonic()
    callherald_cpu_pct: float | None = None
    callherald_cpu_per_call_pct: float | None = None
    callherald_ramp_cpu_pct: float | None = None
    callherald_teardown_cpu_pct: float | None = None
    callherald_thread_cpu_pct: dict[str, float] = field(default_factory=dict)  # by thread, in the window
    rss_idle_kib: int | None = None
    rss_load_kib: int | None = None
    rss_after_kib: int | None = None
    rss_per_call_kib: float | None = None
    fds_idle: int | None = None
    fds_load: int | None = None
    fds_after: int | None = None
    agent_cpu_pct: float | None = None
    sipp_cpu_pct: float | None = None
    callherald_wait_pct: float | None = None  # share of the window callherald waited for a CPU
    agent_wait_pct: float | None = None
    cpu_pressure_pct: float | None = None  # share of the window some task on the machine waited (PSI)
    udp_drops: dict[str, int] = field(default_factory=dict)
    callherald_calls_started: int | None = None
    callherald_end_reasons: dict[str, int] = field(default_factory=dict)
    callherald_log_problems: list[str] = field(default_factory=list)
    recordings: int | None = None  # in the evidence database after a recorded run
    recordings_complete: int | None = None
    recorded_s: float | None = None  # seconds of audio in the complete recordings
    notes: list[str] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    speed_seconds: list[tuple[float, float]] = field(default_factory=list)
    """``(callherald CPU %, speed probe µs)`` per whole second of the window (``seconds_with_speed``)."""
    full_speed_cpu_pct: float | None = None  # callherald's CPU over the full-speed seconds
    full_speed_seconds: int | None = None  # how many seconds of the window ran at full speed


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """A run through callherald (``relay`` or ``recorded``) against the direct run at one concurrency;
    loss, jitter and round trip over the steady-state windows."""

    path: str
    calls: int
    failed_calls: int | None
    loss_pct: float | None
    run_loss_pct: float | None
    direct_loss_pct: float | None
    loss_ratio: float | None  # None when the direct run lost nothing
    added_jitter_ms: float | None
    jitter_ratio: float | None
    added_rtt_p50_ms: float | None
    callherald_cpu_pct: float | None
    callherald_cpu_per_call_pct: float | None
    rss_per_call_kib: float | None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _difference(minuend: float | None, subtrahend: float | None) -> float | None:
    return None if minuend is None or subtrahend is None else minuend - subtrahend


def compare(direct: RunResult, through: RunResult) -> Comparison:
    """The figures that tell what callherald adds to the same load."""
    return Comparison(
        path=through.path,
        calls=through.calls,
        failed_calls=None if through.error else through.failed_calls,
        loss_pct=through.loss_pct,
        run_loss_pct=through.run_loss_pct,
        direct_loss_pct=direct.loss_pct,
        loss_ratio=_ratio(through.loss_pct, direct.loss_pct),
        added_jitter_ms=_difference(through.jitter_ms, direct.jitter_ms),
        jitter_ratio=_ratio(through.jitter_ms, direct.jitter_ms),
        added_rtt_p50_ms=_difference(through.rtt_p50_ms, direct.rtt_p50_ms),
        callherald_cpu_pct=through.callherald_cpu_pct,
        callherald_cpu_per_call_pct=through.callherald_cpu_per_call_pct,
        rss_per_call_kib=through.rss_per_call_kib,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingCost:
    """The ``recorded`` run against the ``relay`` run at one concurrency: what recording (notice,
    taps, DTMF masking, sealing, storing) costs on top of relaying."""

    calls: int
    relay_cpu_per_call_pct: float | None
    recorded_cpu_per_call_pct: float | None
    cpu_per_call_ratio: float | None
    relay_rss_per_call_kib: float | None
    recorded_rss_per_call_kib: float | None
    rss_per_call_ratio: float | None
    cpu_target_met: bool | None  # cpu_per_call_ratio below TARGET_RECORDING_CPU_RATIO
    recordings: int | None
    recordings_complete: int | None
    recorded_s: float | None
    calls_answered: int
    announced_cpu_per_call_pct: float | None = None  # when the announced run was measured too
    cpu_per_call_ratio_to_announced: float | None = None
    thread_cpu_added_pct: dict[str, float] = field(default_factory=dict)
    """Per thread, recorded CPU less relay CPU (% of one core, the whole process's calls): where
    recording's cost is paid (``main``: the event loop; ``rec-writer``: sealing and writing)."""
    full_speed_cpu_ratio: float | None = None  # the CPU ratio over each run's full-speed seconds
    full_speed_cpu_ratio_to_announced: float | None = None


def thread_cpu_added(relay: Mapping[str, float], recorded: Mapping[str, float]) -> dict[str, float]:
    """Recorded less relay CPU per thread name (a thread that only one run has counts 0 in the
    other). When either run has no figures by thread, the result is empty."""
    if not relay or not recorded:
        return {}
    names = [*recorded, *(name for name in relay if name not in recorded)]
    return {name: recorded.get(name, 0.0) - relay.get(name, 0.0) for name in names}


def cost_of_recording(
    relay: RunResult, recorded: RunResult, announced: RunResult | None = None
) -> RecordingCost:
    """Recorded against relay-only: the ratios of CPU and memory per call and the recordings made;
    with ``announced``, also recorded against announced-only."""
    cpu_ratio = _ratio(recorded.callherald_cpu_per_call_pct, relay.callherald_cpu_per_call_pct)
    announced_cpu = None if announced is None else announced.callherald_cpu_per_call_pct
    return RecordingCost(
        calls=recorded.calls,
        relay_cpu_per_call_pct=relay.callherald_cpu_per_call_pct,
        recorded_cpu_per_call_pct=recorded.callherald_cpu_per_call_pct,
        cpu_per_call_ratio=cpu_ratio,
        relay_rss_per_call_kib=relay.rss_per_call_kib,
        recorded_rss_per_call_kib=recorded.rss_per_call_kib,
        rss_per_call_ratio=_ratio(recorded.rss_per_call_kib, relay.rss_per_call_kib),
        cpu_target_met=None if cpu_ratio is None else cpu_ratio < TARGET_RECORDING_CPU_RATIO,
        recordings=recorded.recordings,
        recordings_complete=recorded.recordings_complete,
        recorded_s=recorded.recorded_s,
        calls_answered=recorded.successful_calls,
        announced_cpu_per_call_pct=announced_cpu,
        cpu_per_call_ratio_to_announced=_ratio(recorded.callherald_cpu_per_call_pct, announced_cpu),
        thread_cpu_added_pct=thread_cpu_added(
            relay.callherald_thread_cpu_pct, recorded.callherald_thread_cpu_pct
        ),
        full_speed_cpu_ratio=_ratio(recorded.full_speed_cpu_pct, relay.full_speed_cpu_pct),
        full_speed_cpu_ratio_to_announced=(
            None if announced is None else _ratio(recorded.full_speed_cpu_pct, announced.full_speed_cpu_pct)
        ),
    )


def _read_proc(pid: int, name: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def open_fds(pid: int) -> int | None:
    """The number of open file descriptors of a process, None when it is gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def _ticks(pid: int) -> int | None:
    text = _read_proc(pid, "stat")
    return None if text is None else cpu_ticks(text)


def _tasks(pid: int) -> Iterator[tuple[int, str, str]]:
    # A thread that ends between the listing and the reads is left out.
    try:
        tids = [int(entry) for entry in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return
    for tid in tids:
        task = Path(f"/proc/{pid}/task/{tid}")
        try:
            comm = (task / "comm").read_text("ascii", errors="replace")
            stat_text = (task / "stat").read_text("ascii")
        except OSError:
            continue
        yield tid, comm, stat_text


def rss_kib(pid: int) -> int | None:
    """The resident memory of a process in KiB, None when it is gone."""
    text = _read_proc(pid, "status")
    return None if text is None else vm_rss_kib(text)


def _child_setup(needed: int, cpus: frozenset[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` raising the child's soft RLIMIT_NOFILE to ``needed`` when it is lower and
    binding it (and every thread it starts) to ``cpus``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target: int | None = None
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        if target < needed:
            print(f"warning: RLIMIT_NOFILE hard limit {hard} is below the {needed} needed", file=sys.stderr)
    if target is None and cpus is None:
        return None

    def setup() -> None:
        if target is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    return setup


CpuPlacement = tuple[frozenset[int] | None, frozenset[int] | None]
"""(callherald's CPUs, the load generators' CPUs); None: any CPU."""


def cpu_placement(pin: bool) -> CpuPlacement:
    """(callherald's CPUs, the load generators' CPUs): apart when ``pin`` and there are two or more.

    Sharing a CPU with SIPp and the RTP agent, callherald is preempted whenever a packet it sends
    wakes one of them, more often the busier it is; on its own CPU it is measured as it runs on a
    machine of its own."""
    available = sorted(os.sched_getaffinity(0))
    if not pin or len(available) < 2:
        return None, None
    return frozenset(available[:1]), frozenset(available[1:])


class Processes:
    """Starts processes with output to files and stops each by its PID."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._started: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        name: str,
        command: list[str],
        *,
        needed_files: int = 1024,
        cwd: Path | None = None,
        cpus: frozenset[int] | None = None,
    ) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.out").open("wb") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                cwd=cwd or self.workdir,
                preexec_fn=_child_setup(needed_files, cpus),  # noqa: PLW1509 (no threads here)
            )
        self._started.append(process)
        return process

    @staticmethod
    def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int | None:
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def stop_all(self) -> None:
        for process in reversed(self._started):
            self.stop(process)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until it holds; BenchmarkError saying ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{what} (after {timeout_s:.0f} s)")
        time.sleep(POLL_S)


def start_callherald(
    processes: Processes, config: Path, calls: int, *, cpus: frozenset[int] | None = None
) -> subprocess.Popen[bytes]:
    """``callherald serve`` on ``config`` for up to ``calls`` calls, output to ``callherald.out`` in
    the processes' work directory; returns once it listens, BenchmarkError if it exits first."""
    log_path = processes.workdir / "callherald.out"
    callherald = processes.start(
        "callherald",
        [*callherald_command(), "serve", "--config", str(config)],
        needed_files=5 * calls + 512,  # 4 RTP sockets a call, and a recording file
        cpus=cpus,
    )
    wait_until(
        lambda: (
            "listening for the carrier side" in log_path.read_text(errors="replace")
            or callherald.poll() is not None
        ),
        START_TIMEOUT_S,
        "callherald did not start",
    )
    if callherald.poll() is not None:
        raise BenchmarkError(f"callherald exited:\n{log_path.read_text(errors='replace')[-2000:]}")
    return callherald


def start_echo_uas(
    processes: Processes, plan: PortPlan, calls: int, limit_s: float, *, cpus: frozenset[int] | None = None
) -> subprocess.Popen[bytes]:
    """The SIPp UAS (the carrier) for up to ``calls`` calls, answering on ``plan``'s ports and
    echoing the audio it gets (``-rtp_echo``), for at most ``limit_s``; returns once it listens,
    BenchmarkError if it exits first."""
    uas = processes.start(
        "uas",
        [
            *sipp_command(UAS_SCENARIO, plan.uas_sip, plan.uas_control, plan.echo, processes.workdir, "uas"),
            "-rtp_echo",
            "-l",
            str(2 * calls + 10),
            "-timeout",
            f"{math.ceil(limit_s)}s",
        ],
        cpus=cpus,
    )
    wait_until(
        lambda: not udp_port_free(plan.uas_sip) or uas.poll() is not None,
        UAS_START_TIMEOUT_S,
        "the SIPp UAS did not bind its port",
    )
    if uas.poll() is not None:
        raise BenchmarkError(f"the SIPp UAS exited with {uas.returncode}")
    return uas


def callherald_command() -> list[str]:
    """The ``callherald`` command beside this Python, else on the PATH."""
    beside = Path(sys.executable).with_name("callherald")
    found = str(beside) if beside.exists() else shutil.which("callherald")
    if found is None:
        raise BenchmarkError("the callherald command is not installed")
    return [found]


@dataclass(slots=True)
class Samples:
    """What the monitor loop saw, with monotonic timestamps."""

    ups: list[float] = field(default_factory=list)
    stops: list[float] = field(default_factory=list)
    ticks: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    thread_ticks: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # callherald's
    rss: list[tuple[float, int]] = field(default_factory=list)
    fds: list[tuple[float, int]] = field(default_factory=list)
    drops: dict[tuple[int, int], int] = field(default_factory=dict)
    waits: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    pressure: list[tuple[float, int]] = field(default_factory=list)
    epoch_offset: float = field(default_factory=lambda: time.time() - time.monotonic())
    started: float = field(default_factory=time.monotonic)


def steady_window(
    samples: Samples, calls: int, uac_end: float, backs: list[float]
) -> tuple[float, float] | None:
    """The steady-state window: all calls up and their packets back (or as many as did), so every
    notice over, to the first stop. ``backs``: when each call's first packet came back."""
    if not samples.ups:
        return None
    all_up = samples.ups[min(calls, len(samples.ups)) - 1]
    ordered = sorted(backs)
    all_back = ordered[min(calls, len(ordered)) - 1] if ordered else all_up
    first_stop = samples.stops[0] if samples.stops else uac_end
    start, end = max(all_up, all_back) + SETTLE_S, first_stop - WINDOW_EDGE_S
    return (start, end) if end - start >= 2 * SLOW_POLL_S else None


def first_backs(agent_output: str, epoch_offset: float) -> list[float]:
    """The monotonic times of the agent's ``back <port> <epoch ns>`` lines."""
    backs: list[float] = []
    for line in agent_output.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "back" and words[1].isdigit() and words[2].isdigit():
            backs.append(int(words[2]) / 1e9 - epoch_offset)
    return backs


def _rate(series: Sequence[tuple[float, int]], window: tuple[float, float], scale: float) -> float | None:
    """The growth of a cumulative counter per second over the window, times ``scale``."""
    inside = [(t, value) for t, value in series if window[0] <= t <= window[1]]
    if len(inside) < 2 or inside[-1][0] - inside[0][0] <= 0:
        return None
    return scale * (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def _cpu_pct(series: list[tuple[float, int]], window: tuple[float, float]) -> float | None:
    return _rate(series, window, 100.0 / os.sysconf("SC_CLK_TCK"))


def _thread_cpu(series: dict[str, list[tuple[float, int]]], window: tuple[float, float]) -> dict[str, float]:
    # The main thread and its kernel part first, then the busiest; a thread seen too seldom in the
    # window is left out.
    shares = {name: _cpu_pct(points, window) for name, points in series.items()}
    known = {name: share for name, share in shares.items() if share is not None}
    return dict(sorted(known.items(), key=lambda item: (item[0] not in _MAIN_PARTS, -item[1])))


NS_TO_PCT = 100.0 / 1e9
US_TO_PCT = 100.0 / 1e6


def run_queue_wait_ns(schedstat_text: str) -> int:
    """Nanoseconds a process waited on a run queue, from the text of ``/proc/PID/schedstat``."""
    return int(schedstat_text.split()[1])


def cpu_pressure_us(pressure_text: str) -> int:
    """Microseconds during which some task waited for a CPU, from ``/proc/pressure/cpu`` (PSI)."""
    for line in pressure_text.splitlines():
        if line.startswith("some "):
            return int(line.rsplit("total=", 1)[1])
    raise ValueError("no 'some' line")


def _phase_cpu(series: list[tuple[float, int]], events: list[float]) -> float | None:
    """CPU from the first to the last of ``events`` (calls coming up, or stopping)."""
    return _cpu_pct(series, (events[0], events[-1])) if len(events) >= 2 else None


def _per_second(series: list[tuple[float, int]], start: float, scale: float) -> dict[int, float]:
    """The rate of a cumulative counter per whole second since ``start``, times ``scale``."""
    rates: dict[int, float] = {}
    for (t0, v0), (t1, v1) in itertools.pairwise(series):
        if t1 > t0:
            second = int(t0 - start)
            rates[second] = rates.get(second, 0.0) + scale * (v1 - v0)
    return rates


def _timeline(samples: Samples, returns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per second of the run: calls up and stopping, callherald's CPU and run-queue wait, the
    machine's CPU pressure, and the RTP round trips."""
    start = samples.started
    clock_ticks = os.sysconf("SC_CLK_TCK")
    callherald = _per_second(samples.ticks.get("callherald", []), start, 100.0 / clock_ticks)
    waiting = _per_second(samples.waits.get("callherald", []), start, NS_TO_PCT)
    pressure = _per_second(samples.pressure, start, US_TO_PCT)
    ups = Counter(int(t - start) for t in samples.ups)
    stops = Counter(int(t - start) for t in samples.stops)
    by_second: dict[int, dict[str, float]] = {}
    for item in returns:
        second = math.floor(item["epoch_ds"] / 10 - samples.epoch_offset - start)
        merged = by_second.setdefault(second, {"returned": 0, "rtt_ms_max": 0.0, "slow_returns": 0})
        merged["returned"] += item["returned"]
        merged["rtt_ms_max"] = max(merged["rtt_ms_max"], item["rtt_ms_max"])
        merged["slow_returns"] += item["slow_returns"]
    seconds = sorted({*pressure, *ups, *stops, *by_second})
    return [
        {
            "s": second,
            "up": ups.get(second, 0),
            "stop": stops.get(second, 0),
            "callherald_cpu_pct": callherald.get(second),
            "callherald_wait_pct": waiting.get(second),
            "cpu_pressure_pct": pressure.get(second),
            "returned": by_second.get(second, {}).get("returned", 0),
            "rtt_ms_max": by_second.get(second, {}).get("rtt_ms_max"),
            "slow_returns": by_second.get(second, {}).get("slow_returns", 0),
        }
        for second in seconds
    ]


def _max_in(series: list[tuple[float, int]], window: tuple[float, float]) -> int | None:
    return max((value for t, value in series if window[0] <= t <= window[1]), default=None)


def _drops_by_group(drops: dict[tuple[int, int], int], plan: PortPlan) -> dict[str, int]:
    groups = Counter[str]()
    agent = set(plan.agent)
    for (port, _inode), count in drops.items():
        if plan.echo <= port < plan.echo + 4:
            groups["sipp_echo"] += count
        elif plan.rtp_min <= port <= plan.rtp_max:
            groups["callherald_rtp"] += count
        elif port in agent:
            groups["agent"] += count
        elif port in (plan.callherald_pbx, plan.callherald_carrier):
            groups["callherald_sip"] += count
        elif port in (plan.uac_sip, plan.uas_sip):
            groups["sipp_sip"] += count
    return dict(groups)


_LOG_PROBLEM = re.compile(r" (WARNING|ERROR|CRITICAL) |Traceback")
# The benchmark records with the development key on purpose, and each run's fresh data directory
# makes its manifest signing key: their warnings are expected.
_EXPECTED_WARNING = re.compile(
    r"DEVELOPMENT KEY|made a new development key pair|made the manifest signing key"
)
_CALL_STARTED = re.compile(r"\] \w+ call from ")
_CALL_ENDED = re.compile(r"\] call ended: (\S+)")
MAX_LOG_LINES = 10


def _scan_log(text: str) -> tuple[int, dict[str, int], list[str]]:
    """Calls started, end reasons and the first problem lines of a callherald log."""
    started = len(_CALL_STARTED.findall(text))
    reasons = Counter(_CALL_ENDED.findall(text))
    problems = [
        line for line in text.splitlines() if _LOG_PROBLEM.search(line) and not _EXPECTED_WARNING.search(line)
    ]
    if len(problems) > MAX_LOG_LINES:
        problems = [*problems[:MAX_LOG_LINES], f"... {len(problems) - MAX_LOG_LINES} more"]
    return started, dict(reasons), problems


def sipp_command(
    scenario: Path, plan_sip: int, control: int, media: int, workdir: Path, name: str
) -> list[str]:
    """SIPp running ``scenario`` on 127.0.0.1: SIP on ``plan_sip``, control on ``control``, media
    on ``media``; no keyboard, unexpected messages logged to ``NAME-errors.log`` in ``workdir``."""
    return [
        "sipp",
        "-sf",
        str(scenario),
        "-i",
        LOOPBACK,
        "-p",
        str(plan_sip),
        "-cp",
        str(control),
        "-mp",
        str(media),
        "-nostdin",
        "-trace_err",
        "-error_file",
        str(workdir / f"{name}-errors.log"),
    ]


def run_once(
    path: str,
    calls: int,
    hold_s: float,
    workdir: Path,
    *,
    placement: CpuPlacement = (None, None),
    constant_ssrc: bool = True,
    withdrawal_digit: str | None = None,
    port_region: tuple[int, int] = PORT_REGION,
) -> RunResult:
    """One run of ``calls`` concurrent calls, ``path`` one of `MODES`; bounded in time. callherald
    and the load generators run on the CPUs of ``placement`` (see `cpu_placement`), with
    ``media.constant_ssrc`` and the policy's ``withdrawal_digit`` as given; its ports come from
    ``port_region``."""
    callherald_cpus, load_cpus = placement
    workdir.mkdir(parents=True, exist_ok=True)
    rate = call_rate(calls)
    ramp_s = calls / rate
    run_limit_s = ramp_s + hold_s + STOP_DRAIN_S + RUN_SLACK_S
    try:
        plan = find_port_plan(calls, region=port_region)
    except BenchmarkError as error:
        return RunResult(path=path, calls=calls, rate_cps=rate, hold_s=hold_s, error=str(error))
    portfile = workdir / "ports.txt"
    portfile.write_bytes(b"")
    injection = workdir / "rtp-ports.csv"
    injection.write_text("SEQUENTIAL\n" + "".join(f"{port};\n" for port in plan.agent), encoding="ascii")
    processes = Processes(workdir)
    samples = Samples()
    probe_out = workdir / "speed-probe.txt"
    probe_out.unlink(missing_ok=True)
    notes: list[str] = []
    if path not in MODES:
        raise ValueError(f"unknown run: {path}")
    through = path in THROUGH_CALLHERALD
    recorded = path == "recorded"
    callherald: subprocess.Popen[bytes] | None = None
    rss_idle = fds_idle = rss_after = fds_after = None
    log_text = ""
    backs: list[float] = []
    window: tuple[float, float] | None = None
    try:
        if through:
            config = workdir / "callherald.yaml"
            if path in ANNOUNCING:
                write_notice_wav(workdir / NOTICE_FILE)
            config.write_text(
                callherald_yaml(
                    plan, calls, path, constant_ssrc=constant_ssrc, withdrawal_digit=withdrawal_digit
                ),
                encoding="utf-8",
            )
            callherald = start_callherald(processes, config, calls, cpus=callherald_cpus)
            time.sleep(SETTLE_S)
            rss_idle, fds_idle = rss_kib(callherald.pid), open_fds(callherald.pid)
            probe_config = workdir / "speed-probe.json"
            probe_config.write_text(
                json.dumps({"out": str(probe_out), "max_s": run_limit_s + RUN_SLACK_S}), encoding="utf-8"
            )
            processes.start(
                "speed-probe",
                [sys.executable, "-m", "benchmarks.call_load", "--speed-probe", str(probe_config)],
                cwd=PROJECT_ROOT,
                cpus=callherald_cpus,
            )
        uas = start_echo_uas(processes, plan, calls, run_limit_s + 10, cpus=load_cpus)
        agent_config = workdir / "agent.json"
        agent_result = workdir / "agent-result.json"
        speech = workdir / "speech.ulaw"
        speech.write_bytes(speech_ulaw())
        agent_config.write_text(
            json.dumps(
                {
                    "ports": list(plan.agent),
                    "portfile": str(portfile),
                    "result": str(agent_result),
                    "max_s": run_limit_s,
                    "speech": str(speech),
                }
            ),
            encoding="utf-8",
        )
        agent = processes.start(
            "agent",
            [sys.executable, "-m", "benchmarks.call_load", "--rtp-agent", str(agent_config)],
            needed_files=calls + 512,
            cwd=PROJECT_ROOT,
            cpus=load_cpus,
        )
        wait_until(
            lambda: (
                (workdir / "agent.out").read_text(errors="replace").startswith("ready")
                or agent.poll() is not None
            ),
            AGENT_START_TIMEOUT_S,
            "the RTP agent did not start",
        )
        if agent.poll() is not None:
            raise BenchmarkError(f"the RTP agent exited:\n{(workdir / 'agent.out').read_text()[-2000:]}")
        target = plan.callherald_pbx if through else plan.uas_sip
        stats_file = workdir / "uac-stats.csv"
        samples.started = time.monotonic()
        uac = processes.start(
            "uac",
            [
                *sipp_command(UAC_SCENARIO, plan.uac_sip, plan.uac_control, plan.uac_media, workdir, "uac"),
                f"{LOOPBACK}:{target}",
                "-s",
                DIALLED,
                "-inf",
                str(injection),
                "-trace_logs",
                "-log_file",
                str(portfile),
                "-d",
                str(round(hold_s * 1000)),
                "-r",
                str(rate),
                "-l",
                str(calls),
                "-m",
                str(calls),
                "-recv_timeout",
                str(SIPP_RECV_TIMEOUT_MS),
                "-timeout",
                f"{math.ceil(run_limit_s)}s",
                "-trace_stat",
                "-stf",
                str(stats_file),
                "-fd",
                "1",
            ],
            cpus=load_cpus,
        )
        watched = {"agent": agent.pid, "uac": uac.pid, "uas": uas.pid}
        if callherald is not None:
            watched["callherald"] = callherald.pid
        uac_end = _monitor(samples, watched, PortfileReader(portfile), plan, uac, run_limit_s)
        if uac.poll() is None:
            notes.append("the SIPp UAC did not finish within the time limit")
            processes.stop(uac)
        backs = first_backs((workdir / "agent.out").read_text(errors="replace"), samples.epoch_offset)
        window = steady_window(samples, calls, uac_end, backs)
        end_line = "end"
        if window is not None:
            start_ns, end_ns = (round((t + samples.epoch_offset) * 1e9) for t in window)
            end_line = f"end {start_ns} {end_ns}"
        with portfile.open("ab") as handle:
            handle.write(f"{end_line}\n".encode("ascii"))
        try:
            agent.wait(timeout=AGENT_FINISH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            notes.append("the RTP agent did not finish in time")
        if callherald is not None:
            time.sleep(AFTER_RUN_S)
            rss_after, fds_after = rss_kib(callherald.pid), open_fds(callherald.pid)
            if callherald.poll() is not None:
                notes.append(f"callherald exited during the run with {callherald.returncode}")
        uac_code = uac.returncode
        stats = read_sipp_stats(stats_file.read_text(errors="replace")) if stats_file.exists() else None
        rtp: dict[str, Any] = (
            json.loads(agent_result.read_text(encoding="utf-8")) if agent_result.exists() else {}
        )
    except BenchmarkError as error:
        return RunResult(path=path, calls=calls, rate_cps=rate, hold_s=hold_s, error=str(error))
    finally:
        processes.stop_all()
        if callherald is not None:
            log_text = (workdir / "callherald.out").read_text(errors="replace")
    if window is None:
        notes.append("no steady-state window: hold time too short or calls did not come up")
    if stats is None:
        notes.append("SIPp wrote no statistics")
    tally = (
        _read_recordings_bounded(workdir / DATA_DIR / "evidence.sqlite", EVIDENCE_TIMEOUT_S)
        if recorded
        else None
    )
    if isinstance(tally, str):
        notes.append(f"recordings not counted: {tally}")
        tally = None
    in_window: dict[str, Any] = rtp.get("window") or {}
    ticks = samples.ticks
    callherald_cpu = _cpu_pct(ticks.get("callherald", []), window) if window and through else None
    speed_seconds = (
        seconds_with_speed(
            ticks.get("callherald", []),
            read_probe(probe_out.read_text(encoding="ascii", errors="replace")),
            window,
            100.0 / os.sysconf("SC_CLK_TCK"),
        )
        if window and through and probe_out.exists()
        else []
    )
    rss_load = _max_in(samples.rss, window) if window and through else None
    sipp_cpu_parts = [_cpu_pct(ticks.get(name, []), window) if window else None for name in ("uac", "uas")]
    returns = rtp.pop("per_100ms", [])  # merged into the timeline
    agent_cpu = _cpu_pct(ticks.get("agent", []), window) if window else None
    started, reasons, problems = _scan_log(log_text) if through else (None, {}, [])
    return RunResult(
        path=path,
        calls=calls,
        rate_cps=rate,
        hold_s=hold_s,
        successful_calls=stats.successful if stats else 0,
        failed_calls=stats.failed if stats else calls,
        failure_causes=stats.failure_causes if stats else {},
        retransmissions=stats.retransmissions if stats else 0,
        sipp_exit_code=uac_code,
        rtp=rtp,
        loss_pct=in_window.get("loss_pct"),
        jitter_ms=in_window.get("jitter_ms_mean"),
        rtt_p50_ms=in_window.get("rtt_ms_p50"),
        run_loss_pct=rtp.get("loss_pct"),
        window_s=None if window is None else window[1] - window[0],
        window_at=window,
        callherald_cpu_pct=callherald_cpu,
        callherald_cpu_per_call_pct=None if callherald_cpu is None else callherald_cpu / calls,
        callherald_ramp_cpu_pct=_phase_cpu(ticks.get("callherald", []), samples.ups),
        callherald_teardown_cpu_pct=_phase_cpu(ticks.get("callherald", []), samples.stops),
        callherald_thread_cpu_pct=_thread_cpu(samples.thread_ticks, window) if window and through else {},
        rss_idle_kib=rss_idle,
        rss_load_kib=rss_load,
        rss_after_kib=rss_after,
        rss_per_call_kib=None if rss_load is None or rss_idle is None else (rss_load - rss_idle) / calls,
        fds_idle=fds_idle,
        fds_load=_max_in(samples.fds, window) if window and through else None,
        fds_after=fds_after,
        agent_cpu_pct=agent_cpu,
        sipp_cpu_pct=None if None in sipp_cpu_parts else sum(p for p in sipp_cpu_parts if p is not None),
        callherald_wait_pct=_rate(samples.waits.get("callherald", []), window, NS_TO_PCT) if window else None,
        agent_wait_pct=_rate(samples.waits.get("agent", []), window, NS_TO_PCT) if window else None,
        cpu_pressure_pct=_rate(samples.pressure, window, US_TO_PCT) if window else None,
        udp_drops=_drops_by_group(samples.drops, plan),
        callherald_calls_started=started,
        callherald_end_reasons=reasons,
        callherald_log_problems=problems,
        recordings=None if tally is None else tally.recordings,
        recordings_complete=None if tally is None else tally.complete,
        recorded_s=None if tally is None else tally.complete_s,
        notes=notes,
        timeline=_timeline(samples, returns),
        speed_seconds=speed_seconds,
    )


def _monitor(
    samples: Samples,
    pids: dict[str, int],
    portfile: PortfileReader,
    plan: PortPlan,
    uac: subprocess.Popen[bytes],
    limit_s: float,
) -> float:
    """Sample CPU, memory, descriptors and socket drops until the UAC exits; returns when it did."""
    deadline = time.monotonic() + limit_s
    next_slow = 0.0
    relevant = set(plan.ports())
    while time.monotonic() < deadline and uac.poll() is None:
        now = time.monotonic()
        for words in portfile.read():
            if words[:1] == ["up"]:
                samples.ups.append(now)
            elif words[:1] == ["stop"]:
                samples.stops.append(now)
        for name, pid in pids.items():
            ticks = _ticks(pid)
            if ticks is not None:
                samples.ticks.setdefault(name, []).append((now, ticks))
        for name in ("callherald", "agent"):
            text = _read_proc(pids[name], "schedstat") if name in pids else None
            if text is not None:
                samples.waits.setdefault(name, []).append((now, run_queue_wait_ns(text)))
        with contextlib.suppress(OSError, ValueError):
            samples.pressure.append((now, cpu_pressure_us(Path("/proc/pressure/cpu").read_text())))
        if now >= next_slow:
            next_slow = now + SLOW_POLL_S
            if "callherald" in pids:
                rss, fds = rss_kib(pids["callherald"]), open_fds(pids["callherald"])
                if rss is not None and fds is not None:
                    samples.rss.append((now, rss))
                    samples.fds.append((now, fds))
                for name, count in ticks_by_thread(pids["callherald"], _tasks(pids["callherald"])).items():
                    samples.thread_ticks.setdefault(name, []).append((now, count))
            with contextlib.suppress(OSError):
                for key, count in udp_drops(Path("/proc/net/udp").read_text()).items():
                    if key[0] in relevant:
                        samples.drops[key] = max(count, samples.drops.get(key, 0))
        time.sleep(POLL_S)
    return time.monotonic()


# Report -------------------------------------------------------------------------------------------


def _number(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def _timeline_lines(timeline: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"timeline: returns slower than {SLOW_RETURN_NS // 1_000_000} ms appear; per second since the UAC "
        "started:",
        f"  {'s':>3} {'up':>4} {'stop':>4} {'CH CPU%':>7} {'CH wait%':>8} {'PSI%':>5} {'returned':>8} "
        f"{'rtt max ms':>10} {'slow':>6}",
    ]
    for second in timeline:
        lines.append(
            f"  {second['s']:>3} {second['up']:>4} {second['stop']:>4} "
            f"{_number(second['callherald_cpu_pct'], 0):>7} {_number(second['callherald_wait_pct'], 0):>8} "
            f"{_number(second['cpu_pressure_pct'], 0):>5} "
            f"{second['returned']:>8} {_number(second['rtt_ms_max'], 1):>10} {second['slow_returns']:>6}"
        )
    return lines


def _run_line(rep: int, run: dict[str, Any]) -> str:
    head = f"{rep:>3} {run['calls']:>5} {run['path']:<9}"
    if run["error"]:
        return f"{head} error: {run['error']}"
    rtp = run["rtp"]
    in_window = rtp.get("window") or {}
    drops = ",".join(f"{k}={v}" for k, v in sorted(run["udp_drops"].items()) if v) or "0"
    return (
        f"{head} {run['successful_calls']:>5}/{run['failed_calls']:<3} {run['retransmissions']:>4} "
        f"{_number(run['loss_pct'], 4):>7} {_number(run['run_loss_pct'], 4):>7} "
        f"{_number(run['jitter_ms'], 3):>7} "
        f"{_number(in_window.get('jitter_ms_p99'), 3):>7} {_number(run['rtt_p50_ms'], 3):>7} "
        f"{_number(in_window.get('rtt_ms_p99'), 2):>7} {_number(run['callherald_cpu_pct'], 1):>6} "
        f"{_number(run['callherald_cpu_per_call_pct'], 3):>7} {_number(run['rss_per_call_kib'], 1):>6} "
        f"{_number(run['agent_cpu_pct'], 1):>5} {_number(run['sipp_cpu_pct'], 1):>5} "
        f"{_number(run['callherald_wait_pct'], 1):>6} {_number(run['cpu_pressure_pct'], 0):>4}  {drops}"
    )


def _details(run: dict[str, Any]) -> list[str]:
    extra = [*run["notes"]]
    if run["failure_causes"]:
        extra.append(f"SIPp failure causes: {run['failure_causes']}")
    if run["path"] in THROUGH_CALLHERALD and not run["error"]:
        extra.append(
            f"callherald: {run['callherald_calls_started']} calls started, ended "
            f"{run['callherald_end_reasons']}; CPU % ramp-up/steady/teardown "
            f"{_number(run['callherald_ramp_cpu_pct'], 1)}/{_number(run['callherald_cpu_pct'], 1)}/"
            f"{_number(run['callherald_teardown_cpu_pct'], 1)}; RSS KiB idle/load/after "
            f"{run['rss_idle_kib']}/{run['rss_load_kib']}/{run['rss_after_kib']}; "
            f"fds idle/load/after {run['fds_idle']}/{run['fds_load']}/{run['fds_after']}"
        )
        by_thread = _shown_threads(run.get("callherald_thread_cpu_pct") or {})
        if by_thread:
            extra.append(
                "callherald CPU % by thread (steady): "
                + ", ".join(f"{name} {share:.1f}" for name, share in by_thread.items())
            )
        extra += [f"log: {line}" for line in run["callherald_log_problems"]]
    rtp = run["rtp"]
    if run["path"] == "recorded" and not run["error"]:
        mean_s = (
            run["recorded_s"] / run["recordings_complete"]
            if run["recorded_s"] is not None and run["recordings_complete"]
            else None
        )
        extra.append(
            f"evidence: {run['recordings_complete']} of {run['recordings']} recordings complete, "
            f"{_number(run['recorded_s'], 1)} s recorded ({_number(mean_s, 2)} s each); first packet back "
            f"(notice and beep over) after {_number(rtp.get('first_back_ms_mean'), 0)} ms on average, "
            f"{_number(rtp.get('first_back_ms_max'), 0)} ms at most; "
            f"{rtp.get('stray')} packets of callherald's own (notice, beep) at the agent"
        )
    if rtp and run["path"] in ANNOUNCING and not run["error"]:
        # Each such call costs the relay a header rewrite a packet for the rest of the call.
        extra.append(
            f"renumbered: {rtp.get('calls_renumbered')} of {rtp.get('calls_back')} calls came back "
            f"renumbered after a prompt that went out in callherald's own packets (none of the other "
            f"side's came in time to carry it, or its stream could not follow callherald's stand-in; "
            f"RFC 3550 §7): {rtp.get('renumbered')} packets"
        )
    if rtp and not run["error"]:
        in_window = rtp.get("window") or {}
        extra.append(
            f"window {_number(run['window_s'], 1)} s: {in_window.get('packets_sent')} packets sent in it by "
            f"{in_window.get('calls')} calls, {in_window.get('packets_received')} back; whole run: "
            f"{rtp.get('packets_sent')} sent, {rtp.get('packets_before_first_back')} before each call's "
            f"first packet back, loss {_number(run['run_loss_pct'], 4)} %"
        )
    slow = [second for second in run["timeline"] if second["slow_returns"]]
    if run["loss_pct"] or run["failed_calls"]:
        extra += _timeline_lines(run["timeline"])
    elif slow:
        worst = max(slow, key=lambda second: second["rtt_ms_max"] or 0.0)
        extra.append(
            f"{sum(second['slow_returns'] for second in slow)} round trips above "
            f"{SLOW_RETURN_NS // 1_000_000} ms in {len(slow)} seconds, worst "
            f"{_number(worst['rtt_ms_max'], 1)} ms at second {worst['s']}"
        )
    return extra


def _shown_threads(by_thread: dict[str, float]) -> dict[str, float]:
    # The event loop always; the other threads when they come to a tenth of a point (the JSON has all).
    return {name: share for name, share in by_thread.items() if name in _MAIN_PARTS or abs(share) >= 0.05}


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "NOT met")


def format_report(
    rows: list[dict[str, Any]],
    hold_s: float,
    placement: dict[str, list[int]] | None = None,
    *,
    constant_ssrc: bool = True,
    paired: bool = False,
) -> str:
    """The human-readable tables: every run, the runs through callherald against direct, recorded
    against relay, then details."""
    where = (
        "callherald and the load generators share every CPU"
        if placement is None
        else f"callherald on CPU {placement['callherald']}, SIPp and the RTP agent on CPU {placement['load']}"
    )
    lines = [
        where + ";",
        *(
            [
                "paired: the runs of each repetition ran at the same time, each with its own SIPp, agent "
                "and callherald, so their ratios are taken at one machine speed;"
            ]
            if paired
            else []
        ),
        f"Concurrent calls, SIPp UAC -> (direct | callherald relaying | callherald recording) -> SIPp UAS "
        f"with RTP echo; hold {hold_s:g} s; G.711 20 ms, {PACKETS_PER_S} pps each way per call; 127.0.0.1",
        "every figure over the steady-state window (all calls up, every notice over, to the first stop) "
        "except 'run loss' (whole run, each call from its first packet back);",
        "loss, jitter (RFC 3550, mean of the running estimate) and RTT are for the round trip "
        "agent -> echo -> agent; CPU in % of one core;",
        "after the notice and beep callherald "
        + (
            "keeps one stream to each party (media.constant_ssrc: true: a prompt rides in the other"
            " party's packets, or they are renumbered into callherald's after it);"
            if constant_ssrc
            else "relays the packets unchanged, a new SSRC (media.constant_ssrc: false);"
        ),
        "CH = callherald; gen = RTP agent; CHwait = % of the time callherald waited for a CPU; "
        "PSI = % of the time some task on the machine did (CPU pressure);",
        "drops = UDP receive-buffer drops by socket owner",
        "",
        f"{'rep':>3} {'calls':>5} {'path':<9} {'ok/fail':>9} {'retr':>4} {'loss %':>7} {'run l%':>7} "
        f"{'jit ms':>7} {'jit p99':>7} {'rtt p50':>7} {'rtt p99':>7} {'CH %':>6} {'CH/call':>7} "
        f"{'KiB/cl':>6} "
        f"{'gen %':>5} {'SIPp%':>5} {'CHwait':>6} {'PSI%':>4}  drops",
    ]
    for row in rows:
        lines += [_run_line(row["repetition"], row[path]) for path in MODES if path in row]
    if paired:
        for row in rows:
            lengths = ", ".join(
                f"{path} {_number(row[path]['window_s'], 1)} s" for path in MODES if path in row
            )
            lines.append(
                f"  rep {row['repetition']}, {row['calls']} calls: the steady windows were open together "
                f"for {_number(row['shared_window_s'], 1)} s ({lengths})"
            )
    against = [(row, c) for row in rows for c in row["against_direct"].values()]
    if against:
        lines += [
            "",
            "through callherald against direct:",
            f"{'rep':>3} {'calls':>5} {'path':<9} {'failed':>6} {'loss %':>8} {'direct %':>8} {'loss x':>7} "
            f"{'+jitter ms':>10} {'jitter x':>8} {'+rtt p50 ms':>11} {'CH CPU %':>8} {'CPU/call %':>10} "
            f"{'RSS/call KiB':>12}",
        ]
    for row, c in against:
        lines.append(
            f"{row['repetition']:>3} {c['calls']:>5} {c['path']:<9} "
            f"{'-' if c['failed_calls'] is None else c['failed_calls']:>6} "
            f"{_number(c['loss_pct'], 4):>8} {_number(c['direct_loss_pct'], 4):>8} "
            f"{_number(c['loss_ratio'], 2):>7} {_number(c['added_jitter_ms'], 3):>10} "
            f"{_number(c['jitter_ratio'], 2):>8} {_number(c['added_rtt_p50_ms'], 3):>11} "
            f"{_number(c['callherald_cpu_pct'], 1):>8} {_number(c['callherald_cpu_per_call_pct'], 3):>10} "
            f"{_number(c['rss_per_call_kib'], 1):>12}"
        )
    costs = [(row, row["recording_cost"]) for row in rows if row.get("recording_cost")]
    if costs:
        lines += [
            "",
            f"recorded against relay only (target: CPU per call x < {TARGET_RECORDING_CPU_RATIO:.2f}):",
            f"{'rep':>3} {'calls':>5} {'CPU/call % relay':>16} {'recorded':>8} {'CPU x':>6} "
            f"{'KiB/call relay':>14} {'recorded':>8} {'RSS x':>6} {'complete/answered':>17} "
            f"{'seconds rec.':>12}  CPU target  {'announced':>9} {'x ann.':>6}",
        ]
    for row, cost in costs:
        lines.append(
            f"{row['repetition']:>3} {cost['calls']:>5} {_number(cost['relay_cpu_per_call_pct'], 4):>16} "
            f"{_number(cost['recorded_cpu_per_call_pct'], 4):>8} {_number(cost['cpu_per_call_ratio'], 2):>6} "
            f"{_number(cost['relay_rss_per_call_kib'], 1):>14} "
            f"{_number(cost['recorded_rss_per_call_kib'], 1):>8} "
            f"{_number(cost['rss_per_call_ratio'], 2):>6} "
            f"{'-' if cost['recordings_complete'] is None else cost['recordings_complete']:>8}/"
            f"{cost['calls_answered']:<8} {_number(cost['recorded_s'], 1):>12}  "
            f"{_verdict(cost['cpu_target_met']):<10}  {_number(cost['announced_cpu_per_call_pct'], 4):>9} "
            f"{_number(cost['cpu_per_call_ratio_to_announced'], 2):>6}"
        )
    added = [(row, cost["thread_cpu_added_pct"]) for row, cost in costs if cost.get("thread_cpu_added_pct")]
    if added:
        lines += ["", "what recording adds, by callherald thread (recorded less relay, points of one core):"]
    for row, by_thread in added:
        lines.append(
            f"{row['repetition']:>3} {row['calls']:>5}  "
            + ", ".join(f"{name} {share:+.1f}" for name, share in _shown_threads(by_thread).items())
        )
    for row in rows:
        for path in MODES:
            details = _details(row[path]) if path in row else []
            if details:
                lines.append(f"\n{row['calls']} calls, {path}, repetition {row['repetition']}:")
                lines += [f"  {item}" for item in details]
    return "\n".join(lines)


def _target_met(rows: list[dict[str, Any]]) -> bool | None:
    """Whether every run through callherald at ``TARGET_CALLS`` had no failed call and loss over the
    whole run below the target."""
    verdicts = [
        comparison["failed_calls"] == 0
        and comparison["run_loss_pct"] is not None
        and comparison["run_loss_pct"] < TARGET_LOSS_PCT
        for row in rows
        if row["calls"] == TARGET_CALLS
        for comparison in row["against_direct"].values()
    ]
    return all(verdicts) if verdicts else None


@dataclass(frozen=True, slots=True, kw_only=True)
class RatioSpread:
    """Recorded against relay-only CPU per call at one concurrency over its repetitions: single runs
    on a shared machine move by several percent, so the median and the range say more. ``figure``
    is the ratio summarised: ``cpu_per_call_ratio`` (whole windows) or ``full_speed_cpu_ratio``."""

    calls: int
    repetitions: int
    median: float
    lowest: float
    highest: float
    figure: str = "cpu_per_call_ratio"


def ratio_spreads(rows: list[dict[str, Any]], figure: str = "cpu_per_call_ratio") -> list[RatioSpread]:
    """Per concurrency measured in two or more repetitions, the spread of the recording CPU ratio
    ``figure`` (a ratio of ``RecordingCost``)."""
    ratios: dict[int, list[float]] = {}
    for row in rows:
        cost = row.get("recording_cost")
        if cost is not None and cost[figure] is not None:
            ratios.setdefault(cost["calls"], []).append(cost[figure])
    return [
        RatioSpread(
            calls=calls,
            repetitions=len(values),
            median=statistics.median(values),
            lowest=min(values),
            highest=max(values),
            figure=figure,
        )
        for calls, values in sorted(ratios.items())
        if len(values) >= 2
    ]


def _recording_target_met(rows: list[dict[str, Any]]) -> bool | None:
    """Whether recording added less than the target CPU per call in every row that measured it."""
    verdicts = [row["recording_cost"]["cpu_target_met"] for row in rows if row.get("recording_cost")]
    if not verdicts or None in verdicts:
        return None
    return all(verdicts)


def _environment() -> dict[str, Any]:
    try:
        sipp_version = (
            subprocess.run(["sipp", "-v"], capture_output=True, text=True, timeout=10, check=False)
            .stdout.strip()
            .splitlines()[0]
        )
    except (OSError, subprocess.TimeoutExpired, IndexError):
        sipp_version = None
    return {
        "python": platform.python_version(),
        "uvloop": metadata.version("uvloop"),
        "sipp": sipp_version,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE),
    }


def _parse_calls(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text}") from error
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError("call counts must be positive")
    return values


def _parse_hold(text: str) -> float:
    value = float(text)
    if not 1.0 <= value <= MAX_HOLD_S:
        raise argparse.ArgumentTypeError(f"hold time must be 1-{MAX_HOLD_S:g} s")
    return value


@contextlib.contextmanager
def _workdir(requested: str | None) -> Iterator[Path]:
    if requested is not None:
        path = Path(requested)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="call-load-") as temporary:
        yield Path(temporary)


def _parse_modes(text: str) -> tuple[str, ...]:
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [mode for mode in wanted if mode not in MODES]
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(f"modes are a comma-separated subset of {','.join(MODES)}")
    return tuple(mode for mode in MODES if mode in wanted)  # always in this order


def with_full_speed(
    measured: list[tuple[int, int, dict[str, RunResult]]],
) -> list[tuple[int, int, dict[str, RunResult]]]:
    """The runs with their CPU over the full-speed seconds, the machine's full speed taken from the
    probe's seconds in every run of the benchmark (``cpu_at_full_speed``)."""
    reference = full_speed_reference(
        [
            work
            for _, _, results in measured
            for result in results.values()
            for _, work in result.speed_seconds
        ]
    )
    out: list[tuple[int, int, dict[str, RunResult]]] = []
    for calls, rep, results in measured:
        updated: dict[str, RunResult] = {}
        for mode, result in results.items():
            cpu, seconds = cpu_at_full_speed(result.speed_seconds, reference)
            updated[mode] = (
                replace(result, full_speed_cpu_pct=cpu, full_speed_seconds=seconds)
                if result.speed_seconds
                else result
            )
        out.append((calls, rep, updated))
    return out


def _row(calls: int, rep: int, results: dict[str, RunResult]) -> dict[str, Any]:
    """One concurrency's runs, each through callherald against direct, and recorded against relay."""
    direct, relay, announced, recorded = (results.get(mode) for mode in MODES)
    against = {
        mode: asdict(compare(direct, results[mode]))
        for mode in THROUGH_CALLHERALD
        if direct is not None and mode in results
    }
    cost = None if relay is None or recorded is None else cost_of_recording(relay, recorded, announced)
    return {
        "calls": calls,
        "repetition": rep,
        **{mode: asdict(result) for mode, result in results.items()},
        "against_direct": against,
        "recording_cost": None if cost is None else asdict(cost),
        "shared_window_s": shared_window_s(list(results.values())),
    }


def shared_window_s(results: Sequence[RunResult]) -> float | None:
    """How long the steady windows of ``results`` were all open at once (0 when never); None
    unless every run has one. Runs made one after the other share none; paired runs most."""
    windows = [result.window_at for result in results]
    if not windows or any(window is None for window in windows):
        return None
    starts = [window[0] for window in windows if window is not None]
    ends = [window[1] for window in windows if window is not None]
    return max(0.0, min(ends) - max(starts))


def _full_speed_line(row: dict[str, Any]) -> str:
    """The full-speed figures of a row's runs through callherald and the recorded / relay ratio."""
    parts = []
    for mode in THROUGH_CALLHERALD:
        run = row.get(mode)
        if run is not None and run["full_speed_seconds"] is not None:
            kept = f"{run['full_speed_seconds']}/{len(run['speed_seconds'])} s"
            parts.append(f"{mode} {_number(run['full_speed_cpu_pct'], 1)} % ({kept})")
    cost = row["recording_cost"]
    to_announced = cost["full_speed_cpu_ratio_to_announced"]
    return (
        f"  over the full-speed seconds: CPU {', '.join(parts) or 'not measured'}; "
        f"x{_number(cost['full_speed_cpu_ratio'], 2)} of relay only"
        + ("" if to_announced is None else f" (x{_number(to_announced, 2)} of announced only)")
    )


def run_series(
    paths: Sequence[str],
    calls: int,
    hold_s: float,
    workdir: Path,
    rep: int,
    *,
    paired: bool = False,
    placement: CpuPlacement = (None, None),
    constant_ssrc: bool = True,
    withdrawal_digit: str | None = None,
) -> dict[str, RunResult]:
    """The runs of ``paths`` at ``calls`` calls: one after the other, or with ``paired`` all at
    once, each with its own SIPp, RTP agent, callherald and block of ports, every callherald on
    callherald's CPUs and the load generators on theirs. On a shared host the machine's speed
    moves between runs made one after the other; runs made together see the same speed."""

    def run(path: str, region: tuple[int, int]) -> RunResult:
        print(f"{calls} calls, {path}, repetition {rep} ...", file=sys.stderr, flush=True)
        run_dir = workdir / f"{calls}-{path}-{rep}"
        # A run's figures count the recordings in its data directory: start from an empty one,
        # not the one an earlier benchmark left in the same --workdir.
        shutil.rmtree(run_dir, ignore_errors=True)
        return run_once(
            path,
            calls,
            hold_s,
            run_dir,
            placement=placement,
            constant_ssrc=constant_ssrc,
            withdrawal_digit=withdrawal_digit,
            port_region=region,
        )

    if not paired:
        return {path: run(path, PORT_REGION) for path in paths}
    regions = port_regions(len(paths))
    with ThreadPoolExecutor(max_workers=len(paths), thread_name_prefix="paired-run") as runs:
        futures = {path: runs.submit(run, path, region) for path, region in zip(paths, regions, strict=True)}
        return {path: future.result() for path, future in futures.items()}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the benchmark; 0 when every run was carried out, 1 when one could not be, 2 on bad usage."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.call_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--calls", type=_parse_calls, default=list(DEFAULT_CALLS), help="e.g. 50,100,200")
    parser.add_argument("--hold-s", type=_parse_hold, default=DEFAULT_HOLD_S, help="seconds each call lasts")
    parser.add_argument(
        "--modes",
        type=_parse_modes,
        default=DEFAULT_MODES,
        help=f"runs per concurrency, of {','.join(MODES)} (default {','.join(DEFAULT_MODES)})",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of tables")
    parser.add_argument("--repeat", type=int, default=1, choices=range(1, 11), metavar="1-10")
    parser.add_argument("--workdir", help="keep configuration, logs, statistics and recordings here")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="let callherald share its CPUs with SIPp and the RTP agent (default: a CPU of its own)",
    )
    parser.add_argument(
        "--constant-ssrc",
        choices=("true", "false"),
        default="true",
        help="callherald's media.constant_ssrc (default true): false leaves the parties' packets "
        "unchanged after the notice and beep instead of renumbering them",
    )
    parser.add_argument(
        "--withdrawal-digit",
        choices=list("0123456789*#"),
        help="give the recording policy this withdrawal digit: the outside party's audio is "
        "listened to for key presses all call long",
    )
    parser.add_argument(
        "--paired",
        action="store_true",
        help="run the modes of each repetition at the same time, on the same CPUs, so that their "
        "ratios are taken at one machine speed (default: one after the other)",
    )
    parser.add_argument("--rtp-agent", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--speed-probe", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rtp_agent is not None:
        return run_agent(Path(args.rtp_agent))
    if args.speed_probe is not None:
        return run_speed_probe(Path(args.speed_probe))
    if args.paired and (len(args.modes) < 2 or "direct" in args.modes):
        parser.error("--paired runs two or more of relay, announced, recorded at the same time")
    out = out or sys.stdout
    if shutil.which("sipp") is None:
        print("sipp is not installed", file=sys.stderr)
        return 2
    environment = _environment()
    constant_ssrc = args.constant_ssrc == "true"
    environment["constant_ssrc"] = constant_ssrc
    environment["withdrawal_digit"] = args.withdrawal_digit
    placement = cpu_placement(args.pin)
    callherald_cpus, load_cpus = placement
    environment["cpu_placement"] = (
        None
        if callherald_cpus is None or load_cpus is None
        else {"callherald": sorted(callherald_cpus), "load": sorted(load_cpus)}
    )
    environment["paired"] = args.paired
    measured: list[tuple[int, int, dict[str, RunResult]]] = []
    with _workdir(args.workdir) as workdir:
        for rep, calls in itertools.product(range(1, args.repeat + 1), args.calls):
            results = run_series(
                args.modes,
                calls,
                args.hold_s,
                workdir,
                rep,
                paired=args.paired,
                placement=placement,
                constant_ssrc=constant_ssrc,
                withdrawal_digit=args.withdrawal_digit,
            )
            measured.append((calls, rep, results))
    rows = [_row(calls, rep, results) for calls, rep, results in with_full_speed(measured)]
    document = {
        "benchmark": "call_load",
        "hold_s": args.hold_s,
        "modes": list(args.modes),
        "packet_bytes": PACKET_BYTES,
        "packets_per_s": PACKETS_PER_S,
        "notice_s": NOTICE_S,
        "environment": environment,
        "results": rows,
        "target": {
            "calls": TARGET_CALLS,
            "failed_calls": 0,
            "loss_pct_below": TARGET_LOSS_PCT,
            "met": _target_met(rows),
            "recording_cpu_per_call_ratio_below": TARGET_RECORDING_CPU_RATIO,
            "recording_cpu_met": _recording_target_met(rows),
        },
        "recording_cpu_ratio_spread": [asdict(spread) for spread in ratio_spreads(rows)],
        "recording_full_speed_cpu_ratio_spread": [
            asdict(spread) for spread in ratio_spreads(rows, "full_speed_cpu_ratio")
        ],
    }
    if args.json:
        print(json.dumps(document, indent=2), file=out)
    else:
        print(
            format_report(
                rows,
                args.hold_s,
                environment["cpu_placement"],
                constant_ssrc=constant_ssrc,
                paired=args.paired,
            ),
            file=out,
        )
        met = document["target"]["met"]
        if met is not None:
            print(
                f"\ntarget ({TARGET_CALLS} calls through callherald, 0 failed, loss over the run < "
                f"{TARGET_LOSS_PCT} %): {_verdict(met)}",
                file=out,
            )
        for row in rows:
            cost = row["recording_cost"]
            if cost is not None:
                to_announced = cost["cpu_per_call_ratio_to_announced"]
                print(
                    f"recording at {cost['calls']} calls (repetition {row['repetition']}): CPU per call "
                    f"x{_number(cost['cpu_per_call_ratio'], 2)} of relay only"
                    f"{'' if to_announced is None else f' (x{_number(to_announced, 2)} of announced only)'}"
                    f", RSS per call x{_number(cost['rss_per_call_ratio'], 2)}; target CPU x < "
                    f"{TARGET_RECORDING_CPU_RATIO:.2f}: {_verdict(cost['cpu_target_met'])}; "
                    f"{cost['recordings_complete']} recordings complete of {cost['calls_answered']} calls, "
                    f"{_number(cost['recorded_s'], 1)} s recorded",
                    file=out,
                )
                print(_full_speed_line(row), file=out)
        for spread in ratio_spreads(rows):
            print(
                f"recording at {spread.calls} calls over {spread.repetitions} repetitions: CPU per call "
                f"x{spread.median:.2f} of relay only (median; x{spread.lowest:.2f} to x{spread.highest:.2f})",
                file=out,
            )
        for spread in ratio_spreads(rows, "full_speed_cpu_ratio"):
            print(
                f"  over the full-speed seconds, {spread.repetitions} repetitions: x{spread.median:.2f} "
                f"(median; x{spread.lowest:.2f} to x{spread.highest:.2f})",
                file=out,
            )
    failed_runs = any(row[path]["error"] for row in rows for path in args.modes)
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
