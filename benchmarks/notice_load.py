"""The recording notice on outbound calls through a real ``callherald serve``, measured where it lands.

Run as ``python -m benchmarks.notice_load [--calls 200] [--notice-s 8] [--rate CPS] [--json]``.

Everything runs on 127.0.0.1. The benchmark writes a notice (a tone sweeping 400-800 Hz, ``--notice-s``
seconds, 8 kHz WAV) and a configuration to a temporary directory: one policy that plays that notice
and records for a single contract purpose (GDPR Art. 6(1)(b)) with no consent question, so every
call is announced and then bridged. It starts ``callherald serve`` on it and plays both of
callherald's neighbours itself, in one uvloop process:

- the PBX: a UAC that sends ``--calls`` INVITEs to callherald's PBX listener at a bounded rate (by
  default all within a quarter of the notice), each offering PCMU on an RTP socket of its own
  (the agent's), ACKs every 200 (retransmissions too), and, once every notice has played, BYEs
  every call;
- the carrier: a UAS that answers each INVITE callherald sends on at once with 200 OK, its SDP
  pointing at an RTP socket of that call (the callee's), answers BYE and anything else with 200.

Every RTP socket takes each packet's arrival time from the kernel (``SO_TIMESTAMPNS``, the
realtime clock); the UAS notes ``time.time_ns()`` right before it hands each 200 OK to the kernel.
callherald relays the 200 to the PBX and plays the notice to the callee and to the agent; after it
the agent hears the bridge beep. A receiver counts only packets from callherald's RTP ports (an
ephemeral port may still get another program's stray traffic) and takes a packet for the notice
when its payload is one of the notice's frames, imported the same way callherald imports them; it
checks that every frame came, in order, and the RTP header continuity (a marker bit beyond the
first means the player skipped deadlines after a late tick). Once every notice has ended (or
stopped short and gone quiet well after its due end), the PBX hangs up every call.

Reported:

- per call, the callee's 200 OK to the first notice packet at the callee (and at the agent), and
  to the relayed 200 at the PBX: p50, p99, max;
- the gaps between consecutive notice packets at each receiver, over the whole notice and over
  the window in which every call's notice was playing at once (from the last notice's first
  packet to the first notice's last one): p1, p50, p99, min, max; RTP header continuity;
- callherald's CPU (utime + stime from ``/proc/PID/stat``, % of one core) over that window, how
  long it waited for a CPU (``/proc/PID/schedstat``) and the machine's CPU pressure
  (``/proc/pressure/cpu``), and the benchmark's own CPU (it shares the machine); callherald's RSS
  idle, at most during the window, at its peak and after the calls;
- what callherald logged: calls started and how they ended, notices and recordings its evidence
  records, warnings and errors grouped by kind.

Targets: every call's first notice packet within 40 ms of the 200 OK; p99 gap while every notice
plays within 20 ± 5 ms at both receivers. Every wait is bounded; callherald is stopped by its PID
(SIGTERM, then SIGKILL). ``--workdir`` keeps the notice, configuration and callherald's log.

Exit status: 0 when the run was carried out (figures printed, targets met or not), 1 when it could
not be (callherald did not start, no call was answered...), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import wave
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import uvloop

from announcements import AnnouncementError, load_prompt
from benchmarks.announce_load import StreamCheck, distribution, kernel_time_ns
from benchmarks.call_load import cpu_pressure_us, cpu_ticks, open_fds, run_queue_wait_ns, vm_rss_kib
from benchmarks.child_process import stop_child
from proxy.sip import Request, Response, SipError, SipUri, make_response, parse_message

__all__ = [
    "DEFAULT_CALLS",
    "DEFAULT_NOTICE_S",
    "FIRST_PACKET_TARGET_MS",
    "GAP_TARGET_MS",
    "BenchmarkError",
    "LogSummary",
    "NoticeStream",
    "PortPlan",
    "ProcSample",
    "all_playing_window",
    "call_rate",
    "cpu_pct_over",
    "find_port_plan",
    "format_report",
    "main",
    "notice_over",
    "notice_yaml",
    "pcmu_sdp",
    "plan_ports",
    "run",
    "scan_log",
    "write_notice_wav",
]

DEFAULT_CALLS = 200
DEFAULT_NOTICE_S = 8.0
MAX_CALLS = 1000
MIN_NOTICE_S, MAX_NOTICE_S = 0.5, 120.0
MIN_RATE_CPS, MAX_RATE_CPS = 10, 500
RAMP_SHARE = 0.25  # by default every INVITE is sent within this share of the notice

FRAME_MS = 20.0
GAP_TARGET_MS = 5.0  # p99 gap within FRAME_MS ± this
FIRST_PACKET_TARGET_MS = 40.0
WAV_RATE_HZ = 8000
TONE_LOW_HZ, TONE_HIGH_HZ = 400.0, 800.0
TONE_AMPLITUDE = 10_000
PCMU = 0
TELEPHONE_EVENT = 101
RTP_HEADER_BYTES = 12

LOOPBACK = "127.0.0.1"
PORT_REGION = (21_000, 32_000)  # below the Linux ephemeral range, where the benchmark's own sockets go
SPARE_CALLS = 32
SOCKET_BUFFER_BYTES = 1 << 18
DIALLED_BASE = 3_100_000  # call i dials DIALLED_BASE + i: the UAS finds the call by the number

SIP_T1_S = 0.5  # RFC 3261 §17.1.1.1; INVITE and BYE are resent from T1, doubling, at most SIP_TRIES times
SIP_TRIES = 6
START_TIMEOUT_S = 20.0
SETTLE_S = 0.5  # callherald idles this long before the first INVITE (idle RSS)
ANSWER_TIMEOUT_S = 10.0  # after the last INVITE, for every final response
NOTICE_SLACK_S = 5.0  # after the last answer plus the notice, for every notice to end
LATE_S = 1.0  # a notice still short of frames this long after it should have ended...
QUIET_S = 0.5  # ... and without a packet for this long is over
TAIL_S = 0.6  # after the notices: the agent's bridge beep
BYE_TIMEOUT_S = 8.0
AFTER_S = 1.0  # after the BYEs, before the after-run RSS
SAMPLE_S = 0.05
READS_PER_WAKEUP = 64
POLL_S = 0.02
RUN_SLACK_S = 40.0
MIN_WINDOW_S = 0.2
MAX_LOG_LINES = 10

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTICE_PROMPT_ID = "load-notice"
NOTICE_LANGUAGE = "en"

_SO_TIMESTAMPNS = 35  # Linux: each datagram's arrival time comes as SCM_TIMESTAMPNS
_ANCILLARY_BYTES = socket.CMSG_SPACE(16)


class BenchmarkError(Exception):
    """The run could not be carried out (callherald did not start, no port block was free...)."""


# Pure helpers ---------------------------------------------------------------------------------


def call_rate(calls: int, notice_s: float) -> int:
    """INVITEs per second: all calls sent within ``RAMP_SHARE`` of the notice, within the bounds."""
    wanted = math.ceil(calls / (notice_s * RAMP_SHARE))
    return min(MAX_RATE_CPS, max(MIN_RATE_CPS, wanted))


def write_notice_wav(path: Path, seconds: float) -> None:
    """A 16-bit mono 8 kHz WAV of ``seconds``: a tone gliding 400-800 Hz, so no two frames are alike."""
    t = np.arange(round(seconds * WAV_RATE_HZ)) / WAV_RATE_HZ
    sweep = (TONE_HIGH_HZ - TONE_LOW_HZ) / seconds
    phase = 2 * np.pi * (TONE_LOW_HZ * t + sweep * t * t / 2)
    samples = (TONE_AMPLITUDE * np.sin(phase)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(WAV_RATE_HZ)
        out.writeframes(samples.tobytes())


@dataclass(frozen=True, slots=True, kw_only=True)
class PortPlan:
    """callherald's ports: its two SIP listeners, then its RTP range (4 ports a call and spares)."""

    pbx_listener: int
    carrier_listener: int
    rtp_min: int
    rtp_max: int

    def ports(self) -> range:
        return range(self.pbx_listener, self.rtp_max + 1)


def plan_ports(base: int, calls: int) -> PortPlan:
    """The plan starting at ``base`` (rounded up to even): the RTP range starts even, ends odd."""
    base += base % 2
    rtp_min = base + 2
    return PortPlan(
        pbx_listener=base,
        carrier_listener=base + 1,
        rtp_min=rtp_min,
        rtp_max=rtp_min + 4 * (calls + SPARE_CALLS) - 1,
    )


def _udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def find_port_plan(calls: int, is_free: Callable[[int], bool] = _udp_port_free) -> PortPlan:
    """A plan in ``PORT_REGION`` whose every port is free now, searched from a per-process start."""
    low, high = PORT_REGION
    size = len(plan_ports(low, calls).ports())
    span = high - low - size - 2
    if span <= 0:
        raise BenchmarkError(f"{calls} calls need {size} ports, more than the port region holds")
    start = (os.getpid() * 97) % span
    for offset in range(0, span, 250):
        plan = plan_ports(low + (start + offset) % span, calls)
        if all(is_free(port) for port in plan.ports()):
            return plan
    raise BenchmarkError("no free block of ports for callherald")


def notice_yaml(plan: PortPlan, *, pbx_port: int, carrier_port: int, calls: int, notice_file: str) -> str:
    """callherald's configuration: the benchmark is its PBX and its carrier; one notice-only policy."""
    return f"""\
listen:
  pbx: {{host: {LOOPBACK}, port: {plan.pbx_listener}, transport: udp}}
  carrier: {{host: {LOOPBACK}, port: {plan.carrier_listener}, transport: udp}}
pbx:
  peers:
    - name: notice-load-pbx
      host: {LOOPBACK}
      port: {pbx_port}
      allowed_networks: [127.0.0.0/8]
  default_target: "{LOOPBACK}:{pbx_port}"
carrier:
  host: {LOOPBACK}
  port: {carrier_port}
  allowed_networks: [127.0.0.0/8]
media:
  rtp_port_min: {plan.rtp_min}
  rtp_port_max: {plan.rtp_max}
  bind_address: {LOOPBACK}
  advertised_address: {LOOPBACK}
limits:
  max_concurrent_calls: {calls + SPARE_CALLS}
  rtp_inactivity_timeout_s: 600   # the benchmark's parties send no RTP of their own
logging:
  level: info
data_dir: data
announcements:
  default_language: {NOTICE_LANGUAGE}
  prompt_sets:
    - id: {NOTICE_PROMPT_ID}
      prompts:
        {NOTICE_LANGUAGE}: {{file: {notice_file}, text: "This call is recorded."}}
# Recorded as evidence of the agreement (GDPR Art. 6(1)(b)): a notice and no question.
purposes:
  - {{id: evidence, lawful_basis: contract, retention_days: 30}}
policies:
  - name: notice-only
    match: {{direction: any}}
    notice: {NOTICE_PROMPT_ID}
    language: {NOTICE_LANGUAGE}
    purposes: [evidence]
    mode: answer
    on_failure: connect_unrecorded
"""


def pcmu_sdp(port: int, session: int) -> bytes:
    """One audio stream, PCMU and telephone-event on ``port`` of 127.0.0.1, 20 ms packets (RFC 4566,
    RFC 3551, RFC 4733): the PBX's offer and the carrier's answer alike."""
    lines = [
        "v=0",
        f"o=- {session} {session} IN IP4 {LOOPBACK}",
        "s=notice-load",
        f"c=IN IP4 {LOOPBACK}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {PCMU} {TELEPHONE_EVENT}",
        f"a=rtpmap:{PCMU} PCMU/8000",
        f"a=rtpmap:{TELEPHONE_EVENT} telephone-event/8000",
        f"a=fmtp:{TELEPHONE_EVENT} 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def all_playing_window(starts: Sequence[int], ends: Sequence[int]) -> tuple[int, int] | None:
    """From the last notice's first packet to the first notice's last packet; None when they do
    not overlap (or there are none)."""
    if not starts or not ends:
        return None
    start, end = max(starts), min(ends)
    return (start, end) if end > start else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcSample:
    """One reading of callherald's counters; ``at_ns`` on the realtime clock, like kernel timestamps."""

    at_ns: int
    cpu_ticks: int
    rss_kib: int
    wait_ns: int | None
    pressure_us: int | None
    own_cpu_ns: int  # the benchmark's own CPU time (it shares the machine with callherald)


def _rate(
    samples: Sequence[ProcSample], window: tuple[int, int], value: Callable[[ProcSample], int | None]
) -> float | None:
    """The growth of a counter per second between the first and last samples inside ``window``."""
    inside = [s for s in samples if window[0] <= s.at_ns <= window[1] and value(s) is not None]
    if len(inside) < 2 or (inside[-1].at_ns - inside[0].at_ns) < MIN_WINDOW_S * 1e9:
        return None
    first, last = value(inside[0]), value(inside[-1])
    assert first is not None
    assert last is not None
    return (last - first) / ((inside[-1].at_ns - inside[0].at_ns) / 1e9)


def cpu_pct_over(
    samples: Sequence[ProcSample], window: tuple[int, int], clock_ticks: int | None = None
) -> float | None:
    """CPU time as a percentage of one core over ``window``; None with under ``MIN_WINDOW_S`` of samples."""
    ticks_per_s = clock_ticks if clock_ticks is not None else os.sysconf("SC_CLK_TCK")
    per_s = _rate(samples, window, lambda s: s.cpu_ticks)
    return None if per_s is None else 100.0 * per_s / ticks_per_s


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSummary:
    """What callherald's log says about the run."""

    calls_started: int
    end_reasons: dict[str, int]
    notices_complete: int  # announcement_ended evidence records with complete = true
    notices_incomplete: int
    recordings_started: int
    problems: list[str]  # "<count> x <first line of the kind>", kinds in order of appearance


_PROBLEM = re.compile(r" (WARNING|ERROR|CRITICAL) |Traceback")
_STARTED = re.compile(r"\] \w+ call from ")
_ENDED = re.compile(r"\] call ended: (\S+)")
_EVIDENCE = "callherald.evidence: "
_LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")
_VARIABLE = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{27}|[0-9a-f]{16}|\d[\d:.T+-]*")


def _problem_kinds(lines: Sequence[str]) -> list[str]:
    """Problem lines grouped by kind (ids, times and numbers ignored): count and first line."""
    kinds: dict[str, tuple[int, str]] = {}
    for line in lines:
        text = _LOG_TIME.sub("", line)
        key = _VARIABLE.sub("#", text)
        count, first = kinds.get(key, (0, text))
        kinds[key] = (count + 1, first)
    shown = [f"{count} x {first}" for count, first in kinds.values()]
    if len(shown) > MAX_LOG_LINES:
        shown = [*shown[:MAX_LOG_LINES], f"... {len(shown) - MAX_LOG_LINES} more kinds"]
    return shown


def scan_log(text: str) -> LogSummary:
    """Calls started and ended, notice and recording evidence, and the problem lines by kind."""
    complete = incomplete = recordings = 0
    for line in text.splitlines():
        if _EVIDENCE not in line:
            continue
        try:
            record = json.loads(line.split(_EVIDENCE, 1)[1])
        except ValueError:
            continue
        if record.get("event") == "announcement_ended" and record.get("prompt_id") == NOTICE_PROMPT_ID:
            if record.get("complete") is True:
                complete += 1
            else:
                incomplete += 1
        elif record.get("event") == "recording_started":
            recordings += 1
    problems = _problem_kinds([line for line in text.splitlines() if _PROBLEM.search(line)])
    return LogSummary(
        calls_started=len(_STARTED.findall(text)),
        end_reasons=dict(Counter(_ENDED.findall(text))),
        notices_complete=complete,
        notices_incomplete=incomplete,
        recordings_started=recordings,
        problems=problems,
    )


# RTP receivers --------------------------------------------------------------------------------


class NoticeStream:
    """One RTP socket of the benchmark: the notice's packets as they arrive, kernel-timestamped.

    Only packets from callherald's RTP ports (``sources``) count; others (another program's
    stray traffic to a reused ephemeral port) are counted as ``stray``. A packet whose payload is
    one of the notice's frames is a notice packet: its arrival time is kept, its header checked
    for continuity (``StreamCheck``) and its payload compared with the frame due at its place
    (``intact_frames``). Other packets (the agent's bridge beep) are only counted (``extra``).
    """

    __slots__ = (
        "_check_gaps",
        "_frames",
        "arrivals",
        "check",
        "extra",
        "intact_frames",
        "notice",
        "recv_errors",
        "sock",
        "sources",
        "stray",
    )

    def __init__(self, notice: Sequence[bytes], sources: range) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        sock.bind((LOOPBACK, 0))
        sock.setblocking(False)
        self.sock = sock
        self.notice = notice
        self._frames = frozenset(notice)
        self.sources = sources
        self.check = StreamCheck()
        self.arrivals = array("q")
        self._check_gaps = array("d")  # StreamCheck's; the gaps are taken from ``arrivals``
        self.intact_frames = 0
        self.extra = 0
        self.stray = 0
        self.recv_errors = 0

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def first_ns(self) -> int | None:
        """The arrival of the first notice packet."""
        return self.arrivals[0] if self.arrivals else None

    @property
    def last_ns(self) -> int | None:
        """The arrival of the last notice packet so far."""
        return self.arrivals[-1] if self.arrivals else None

    @property
    def complete(self) -> bool:
        """As many notice packets arrived as the notice has frames."""
        return len(self.arrivals) >= len(self.notice)

    @property
    def intact(self) -> bool:
        """Every frame of the notice arrived, in order."""
        return self.intact_frames == len(self.notice)

    def add(self, data: bytes, arrived_ns: int, source: tuple[str, int]) -> None:
        if source[0] != LOOPBACK or source[1] not in self.sources:
            self.stray += 1
            return
        payload = data[RTP_HEADER_BYTES + 4 * (data[0] & 0x0F) :] if data else b""
        if payload not in self._frames:
            self.extra += 1
            return
        index = len(self.arrivals)
        if index < len(self.notice) and payload == self.notice[index]:
            self.intact_frames += 1
        self.check.add(data, arrived_ns, self._check_gaps)
        self.arrivals.append(arrived_ns)

    def on_readable(self) -> None:
        recvmsg = self.sock.recvmsg
        for _ in range(READS_PER_WAKEUP):  # what is left wakes the loop again
            try:
                data, ancillary, _flags, source = recvmsg(2048, _ANCILLARY_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.recv_errors += 1
                return
            arrived = kernel_time_ns(ancillary)
            self.add(data, time.time_ns() if arrived is None else arrived, source)

    def gaps_ms(self, window: tuple[int, int] | None = None) -> list[float]:
        """Gaps (ms) between consecutive notice packets; with ``window``, only those whose both
        packets arrived within it."""
        arrivals = np.frombuffer(self.arrivals, dtype=np.int64)
        gaps = np.diff(arrivals) / 1e6
        if window is not None:
            gaps = gaps[(arrivals[:-1] >= window[0]) & (arrivals[1:] <= window[1])]
        return [float(gap) for gap in gaps]


# The PBX (UAC) and the carrier (UAS) ------------------------------------------------------------


def _token() -> str:
    return secrets.token_hex(6)


@dataclass(slots=True)
class _Call:
    """One outbound call as both of callherald's neighbours see it."""

    index: int
    dialled: str
    call_id: str
    from_tag: str
    agent: NoticeStream
    callee: NoticeStream
    invite: bytes = b""
    invite_tries: int = 0
    invite_next_s: float = 0.0
    provisional: bool = False
    final_status: int | None = None
    ok_at_pbx_ns: int | None = None  # the relayed 200's arrival at the PBX (kernel)
    to_header: str = ""
    remote_target: str = ""
    route: list[str] = field(default_factory=list)
    bye: bytes = b""
    bye_tries: int = 0
    bye_next_s: float = 0.0
    bye_status: int | None = None
    # The carrier side: callherald's b leg.
    b_call_id: str | None = None
    b_response: bytes = b""
    ok_sent_ns: int | None = None  # right before the 200 OK went to the kernel
    b_acked: bool = False
    b_bye: bool = False


def _answered(call: _Call) -> bool:
    """The PBX got a 2xx for the call's INVITE."""
    return call.final_status is not None and 200 <= call.final_status < 300


def _user_of(request: Request) -> str | None:
    for uri in (request.uri, request.to.uri):
        if isinstance(uri, SipUri) and uri.user:
            return uri.user
    return None


class _Parties:
    """The PBX's UAC and the carrier's UAS on two UDP sockets, with the calls they share."""

    def __init__(self, calls: list[_Call], pbx_sock: socket.socket, carrier_sock: socket.socket) -> None:
        self.calls = calls
        self._by_dialled = {call.dialled: call for call in calls}
        self._by_call_id = {call.call_id: call for call in calls}
        self._by_b_call_id: dict[str, _Call] = {}
        self.pbx_sock = pbx_sock
        self.carrier_sock = carrier_sock
        self.pbx_port = int(pbx_sock.getsockname()[1])
        self.carrier_port = int(carrier_sock.getsockname()[1])
        self.callherald: tuple[str, int] = (LOOPBACK, 0)
        self.unparsable = 0
        self.unexpected: Counter[str] = Counter()
        self.send_errors = 0
        self.b_invite_retransmissions = 0

    # Sending -------------------------------------------------------------------------------

    def _send(self, sock: socket.socket, data: bytes, address: tuple[str, int]) -> None:
        try:
            sock.sendto(data, address)
        except OSError:
            self.send_errors += 1

    def _via(self) -> str:
        return f"SIP/2.0/UDP {LOOPBACK}:{self.pbx_port};branch=z9hG4bK-nl{_token()};rport"

    def send_invite(self, call: _Call, now_s: float) -> None:
        body = pcmu_sdp(call.agent.port, 1000 + call.index)
        head = [
            f"INVITE sip:{call.dialled}@{LOOPBACK}:{self.callherald[1]} SIP/2.0",
            f"Via: {self._via()}",
            "Max-Forwards: 70",
            f"From: <sip:agent{call.index}@{LOOPBACK}>;tag={call.from_tag}",
            f"To: <sip:{call.dialled}@{LOOPBACK}>",
            f"Call-ID: {call.call_id}",
            "CSeq: 1 INVITE",
            f"Contact: <sip:pbx@{LOOPBACK}:{self.pbx_port}>",
            "Content-Type: application/sdp",
            f"Content-Length: {len(body)}",
        ]
        call.invite = ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body
        call.invite_tries = 1
        call.invite_next_s = now_s + SIP_T1_S
        self._send(self.pbx_sock, call.invite, self.callherald)

    def _in_dialog(self, call: _Call, method: str, seq: int, *, branch: str | None = None) -> bytes:
        via = self._via() if branch is None else f"SIP/2.0/UDP {LOOPBACK}:{self.pbx_port};branch={branch}"
        head = [
            f"{method} {call.remote_target} SIP/2.0",
            f"Via: {via}",
            "Max-Forwards: 70",
            *(f"Route: {route}" for route in call.route),
            f"From: <sip:agent{call.index}@{LOOPBACK}>;tag={call.from_tag}",
            f"To: {call.to_header}",
            f"Call-ID: {call.call_id}",
            f"CSeq: {seq} {method}",
            "Content-Length: 0",
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode("ascii")

    def send_bye(self, call: _Call, now_s: float) -> None:
        call.bye = self._in_dialog(call, "BYE", 2)
        call.bye_tries = 1
        call.bye_next_s = now_s + SIP_T1_S
        self._send(self.pbx_sock, call.bye, self.callherald)

    def retransmit(self, now_s: float) -> None:
        """Resend INVITEs without a response and BYEs without a final one (T1 doubling, bounded)."""
        for call in self.calls:
            waiting = call.invite and not call.provisional and call.final_status is None
            if waiting and now_s >= call.invite_next_s and call.invite_tries < SIP_TRIES:
                call.invite_tries += 1
                call.invite_next_s = now_s + SIP_T1_S * 2 ** (call.invite_tries - 1)
                self._send(self.pbx_sock, call.invite, self.callherald)
            hanging_up = call.bye and call.bye_status is None
            if hanging_up and now_s >= call.bye_next_s and call.bye_tries < SIP_TRIES:
                call.bye_tries += 1
                call.bye_next_s = now_s + SIP_T1_S * 2 ** (call.bye_tries - 1)
                self._send(self.pbx_sock, call.bye, self.callherald)

    # Receiving -----------------------------------------------------------------------------

    def _receive(self, sock: socket.socket) -> Iterator[tuple[Request | Response, tuple[str, int], int]]:
        for _ in range(READS_PER_WAKEUP):  # what is left wakes the loop again
            try:
                data, ancillary, _flags, address = sock.recvmsg(65_535, _ANCILLARY_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.unparsable += 1
                return
            arrived = kernel_time_ns(ancillary)
            try:
                message = parse_message(data)
            except SipError:
                self.unparsable += 1
                continue
            yield message, address, time.time_ns() if arrived is None else arrived

    def on_pbx_readable(self) -> None:
        for message, address, arrived_ns in self._receive(self.pbx_sock):
            if isinstance(message, Response):
                self._pbx_response(message, arrived_ns)
            else:
                self.unexpected[f"pbx:{message.method}"] += 1
                if message.method != "ACK":
                    self._send(self.pbx_sock, bytes(make_response(message, 200)), address)

    def _pbx_response(self, response: Response, arrived_ns: int) -> None:
        call = self._by_call_id.get(response.call_id)
        if call is None:
            self.unexpected["pbx:stray-response"] += 1
            return
        method = response.cseq.method
        if method == "BYE":
            if response.status >= 200:
                call.bye_status = response.status
            return
        if method != "INVITE":
            return
        if response.status < 200:
            call.provisional = True
            return
        if 200 <= response.status < 300:
            if call.final_status is None:
                call.final_status = response.status
                call.ok_at_pbx_ns = arrived_ns
                call.to_header = response.headers.get("to") or ""
                contacts = response.contacts
                call.remote_target = (
                    str(contacts[0].uri) if contacts else f"sip:{LOOPBACK}:{self.callherald[1]}"
                )
                call.route = list(reversed(response.headers.get_all("record-route")))  # §12.1.2
            # Every 2xx, retransmissions too, is ACKed end to end (RFC 3261 §13.2.2.4).
            self._send(self.pbx_sock, self._in_dialog(call, "ACK", 1), self.callherald)
            return
        if call.final_status is None:
            call.final_status = response.status
        # A non-2xx final is ACKed within its transaction: same branch as the INVITE (§17.1.1.3).
        branch = response.top_via.param("branch") or ""
        call.to_header = response.headers.get("to") or ""
        call.remote_target = f"sip:{call.dialled}@{LOOPBACK}:{self.callherald[1]}"
        self._send(self.pbx_sock, self._in_dialog(call, "ACK", 1, branch=branch), self.callherald)

    def on_carrier_readable(self) -> None:
        for message, address, _arrived_ns in self._receive(self.carrier_sock):
            if isinstance(message, Response):
                self.unexpected["carrier:response"] += 1
            elif message.method == "INVITE":
                self._carrier_invite(message, address)
            elif message.method == "ACK":
                call = self._by_b_call_id.get(message.call_id)
                if call is not None:
                    call.b_acked = True
            else:
                call = self._by_b_call_id.get(message.call_id)
                if message.method == "BYE" and call is not None:
                    call.b_bye = True
                else:
                    self.unexpected[f"carrier:{message.method}"] += 1
                self._send(self.carrier_sock, bytes(make_response(message, 200)), address)

    def _carrier_invite(self, request: Request, address: tuple[str, int]) -> None:
        known = self._by_b_call_id.get(request.call_id)
        if known is not None:
            self.b_invite_retransmissions += 1
            self._send(self.carrier_sock, known.b_response, address)  # the same answer again
            return
        dialled = _user_of(request)
        call = self._by_dialled.get(dialled) if dialled is not None else None
        if call is None or call.b_call_id is not None:
            self.unexpected["carrier:unknown-invite"] += 1
            self._send(self.carrier_sock, bytes(make_response(request, 404)), address)
            return
        call.b_call_id = request.call_id
        self._by_b_call_id[request.call_id] = call
        response = make_response(
            request,
            200,
            to_tag=_token(),
            extra_headers=(
                ("Contact", f"<sip:callee@{LOOPBACK}:{self.carrier_port}>"),
                ("Content-Type", "application/sdp"),
            ),
            body=pcmu_sdp(call.callee.port, 2000 + call.index),
        )
        call.b_response = bytes(response)
        sent = time.time_ns()
        self._send(self.carrier_sock, call.b_response, address)
        call.ok_sent_ns = sent


# callherald's counters ---------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def _sample(pid: int) -> ProcSample | None:
    stat, status = _read(f"/proc/{pid}/stat"), _read(f"/proc/{pid}/status")
    if stat is None or status is None:
        return None
    schedstat, pressure = _read(f"/proc/{pid}/schedstat"), _read("/proc/pressure/cpu")
    try:
        return ProcSample(
            at_ns=time.time_ns(),
            cpu_ticks=cpu_ticks(stat),
            rss_kib=vm_rss_kib(status),
            wait_ns=None if schedstat is None else run_queue_wait_ns(schedstat),
            pressure_us=None if pressure is None else cpu_pressure_us(pressure),
            own_cpu_ns=time.process_time_ns(),
        )
    except (ValueError, IndexError):
        return None


async def _sample_forever(pid: int, samples: list[ProcSample]) -> None:
    while True:
        sample = _sample(pid)
        if sample is not None:
            samples.append(sample)
        await asyncio.sleep(SAMPLE_S)


# The run --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Exercise:
    """What the event loop part of a run leaves behind."""

    samples: list[ProcSample] = field(default_factory=list)
    rss_idle_kib: int | None = None
    fds_idle: int | None = None
    rss_after_kib: int | None = None
    fds_after: int | None = None
    ramp_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def notice_over(stream: NoticeStream, now_ns: int) -> bool:
    """The whole notice arrived; or some of it did, its full length plus ``LATE_S`` has passed
    since the first packet (a stalled player ends that much later) and none came for ``QUIET_S``."""
    first, last = stream.first_ns, stream.last_ns
    if stream.complete:
        return True
    if first is None or last is None:
        return False
    full_ns = len(stream.notice) * FRAME_MS * 1e6
    return now_ns >= first + full_ns + LATE_S * 1e9 and now_ns - last >= QUIET_S * 1e9


async def _until(condition: Callable[[], bool], deadline_s: float) -> bool:
    loop = asyncio.get_running_loop()
    while not condition():
        if loop.time() >= deadline_s:
            return False
        await asyncio.sleep(POLL_S)
    return True


async def _exercise(parties: _Parties, pid: int, rate: int, notice_s: float) -> _Exercise:
    """Place every call, let every notice play, hang up; sample callherald all along."""
    loop = asyncio.get_running_loop()
    calls = parties.calls
    result = _Exercise()
    streams = [stream for call in calls for stream in (call.agent, call.callee)]
    loop.add_reader(parties.pbx_sock.fileno(), parties.on_pbx_readable)
    loop.add_reader(parties.carrier_sock.fileno(), parties.on_carrier_readable)
    for stream in streams:
        loop.add_reader(stream.sock.fileno(), stream.on_readable)
    sampler = asyncio.create_task(_sample_forever(pid, result.samples))

    async def resend_forever() -> None:
        while True:
            await asyncio.sleep(POLL_S)
            parties.retransmit(loop.time())

    resender = asyncio.create_task(resend_forever())
    try:
        await asyncio.sleep(SETTLE_S)
        idle = _sample(pid)
        result.rss_idle_kib, result.fds_idle = (idle.rss_kib if idle else None), open_fds(pid)
        t0 = loop.time()
        for call in calls:
            await asyncio.sleep(max(0.0, t0 + call.index / rate - loop.time()))
            parties.send_invite(call, loop.time())
        result.ramp_s = loop.time() - t0
        if not await _until(
            lambda: all(call.final_status is not None for call in calls), loop.time() + ANSWER_TIMEOUT_S
        ):
            result.notes.append("not every INVITE had a final response in time")
        answered = [call for call in calls if _answered(call)]
        if not await _until(
            lambda: all(
                notice_over(stream, time.time_ns())
                for call in answered
                for stream in (call.callee, call.agent)
            ),
            loop.time() + notice_s + NOTICE_SLACK_S,
        ):
            result.notes.append("not every notice ended in time at both receivers")
        await asyncio.sleep(TAIL_S)
        for call in answered:
            parties.send_bye(call, loop.time())
        if not await _until(
            lambda: all(call.bye_status is not None for call in answered), loop.time() + BYE_TIMEOUT_S
        ):
            result.notes.append("not every BYE had a final response in time")
        await asyncio.sleep(AFTER_S)
        after = _sample(pid)
        result.rss_after_kib, result.fds_after = (after.rss_kib if after else None), open_fds(pid)
    finally:
        for task in (sampler, resender):
            task.cancel()
        await asyncio.gather(sampler, resender, return_exceptions=True)
        for stream in streams:
            loop.remove_reader(stream.sock.fileno())
        loop.remove_reader(parties.pbx_sock.fileno())
        loop.remove_reader(parties.carrier_sock.fileno())
    return result


def _raise_file_limit(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE (inherited by callherald) to ``needed`` where the hard one allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _callherald_command() -> list[str]:
    beside = Path(sys.executable).with_name("callherald")
    found = str(beside) if beside.exists() else shutil.which("callherald")
    if found is None:
        raise BenchmarkError("the callherald command is not installed")
    return [found]


def _start_callherald(workdir: Path, config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*_callherald_command(), "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log_path.read_text(encoding="utf-8", errors="replace")
        if "listening for the carrier side" in text:
            return process
        if process.poll() is not None:
            break
        time.sleep(POLL_S)
    stop_child(process)
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
    raise BenchmarkError(f"callherald did not start (exit status {process.returncode}):\n{tail}")


def _summarise(
    calls: list[_Call], parties: _Parties, exercise: _Exercise, log: LogSummary, notice_frames: int
) -> dict[str, Any]:
    answered = [call for call in calls if call.ok_sent_ns is not None]
    first_callee = [
        (call.callee.first_ns - call.ok_sent_ns) / 1e6
        for call in answered
        if call.callee.first_ns is not None and call.ok_sent_ns is not None
    ]
    first_agent = [
        (call.agent.first_ns - call.ok_sent_ns) / 1e6
        for call in answered
        if call.agent.first_ns is not None and call.ok_sent_ns is not None
    ]
    relayed_200 = [
        (call.ok_at_pbx_ns - call.ok_sent_ns) / 1e6
        for call in answered
        if call.ok_at_pbx_ns is not None and call.ok_sent_ns is not None
    ]
    heard = [call for call in calls if call.callee.first_ns is not None]
    starts = [call.callee.first_ns for call in heard if call.callee.first_ns is not None]
    ends = [call.callee.last_ns for call in heard if call.callee.last_ns is not None]
    window = all_playing_window(starts, ends)
    receivers: dict[str, Any] = {}
    for side in ("callee", "agent"):
        streams = [getattr(call, side) for call in calls]
        gaps = [gap for stream in streams for gap in stream.gaps_ms()]
        in_window = [gap for stream in streams for gap in stream.gaps_ms(window)] if window else []
        receivers[side] = {
            "calls_heard": sum(1 for s in streams if s.first_ns is not None),
            "notices_complete": sum(1 for s in streams if s.complete),
            "notices_intact": sum(1 for s in streams if s.intact),
            "notice_packets": sum(len(s.arrivals) for s in streams),
            "frames_missing": sum(max(0, notice_frames - len(s.arrivals)) for s in streams if s.arrivals),
            "other_packets": sum(s.extra for s in streams),
            "stray_packets": sum(s.stray for s in streams),
            "sequence_errors": sum(s.check.sequence_errors for s in streams),
            "timestamp_errors": sum(s.check.timestamp_errors for s in streams),
            "ssrc_changes": sum(s.check.ssrc_changes for s in streams),
            "markers": sum(s.check.markers for s in streams),
            "recv_errors": sum(s.recv_errors for s in streams),
            "gap_ms": distribution(gaps),
            "gap_ms_all_playing": distribution(in_window),
        }
    samples = exercise.samples
    cpu = cpu_pct_over(samples, window) if window else None
    wait = _rate(samples, window, lambda s: s.wait_ns) if window else None
    pressure = _rate(samples, window, lambda s: s.pressure_us) if window else None
    own_cpu = _rate(samples, window, lambda s: s.own_cpu_ns) if window else None
    rss_window = max(
        (s.rss_kib for s in samples if window and window[0] <= s.at_ns <= window[1]), default=None
    )
    if window is None:
        exercise.notes.append("no window in which every notice played at once (the calls came up too slowly)")
    first = distribution(first_callee)
    callee_p99 = receivers["callee"]["gap_ms_all_playing"]["p99"]
    agent_p99 = receivers["agent"]["gap_ms_all_playing"]["p99"]
    first_met = (
        len(first_callee) == len(calls) and first["max"] is not None and first["max"] < FIRST_PACKET_TARGET_MS
    )
    gap_met = (
        callee_p99 is not None
        and agent_p99 is not None
        and abs(callee_p99 - FRAME_MS) <= GAP_TARGET_MS
        and abs(agent_p99 - FRAME_MS) <= GAP_TARGET_MS
    )
    return {
        "calls": len(calls),
        "notice_frames": notice_frames,
        "invites_retransmitted": sum(max(0, call.invite_tries - 1) for call in calls),
        "answered_by_callee": len(answered),
        "relayed_200_to_pbx": sum(1 for call in calls if _answered(call)),
        "failed": dict(Counter(str(call.final_status) for call in calls if not _answered(call))),
        "acked_by_callherald": sum(1 for call in answered if call.b_acked),
        "byes_answered": sum(1 for call in calls if call.bye_status == 200),
        "byes_reaching_callee": sum(1 for call in calls if call.b_bye),
        "b_invite_retransmissions": parties.b_invite_retransmissions,
        "unexpected_sip": dict(parties.unexpected),
        "unparsable_sip": parties.unparsable,
        "sip_send_errors": parties.send_errors,
        "first_packet_ms": first,
        "first_packet_ms_agent": distribution(first_agent),
        "relayed_200_ms": distribution(relayed_200),
        "receivers": receivers,
        "all_playing_s": None if window is None else (window[1] - window[0]) / 1e9,
        "callherald_cpu_pct": cpu,
        "callherald_cpu_per_call_pct": None if cpu is None else cpu / len(calls),
        "callherald_wait_pct": None if wait is None else 100.0 * wait / 1e9,
        "machine_cpu_pressure_pct": None if pressure is None else 100.0 * pressure / 1e6,
        "benchmark_cpu_pct": None if own_cpu is None else 100.0 * own_cpu / 1e9,
        "rss_idle_kib": exercise.rss_idle_kib,
        "rss_all_playing_kib": rss_window,
        "rss_peak_kib": max((s.rss_kib for s in samples), default=None),
        "rss_after_kib": exercise.rss_after_kib,
        "rss_per_call_kib": (
            None
            if rss_window is None or exercise.rss_idle_kib is None
            else (rss_window - exercise.rss_idle_kib) / len(calls)
        ),
        "fds_idle": exercise.fds_idle,
        "fds_after": exercise.fds_after,
        "log": {
            "calls_started": log.calls_started,
            "end_reasons": log.end_reasons,
            "notices_complete": log.notices_complete,
            "notices_incomplete": log.notices_incomplete,
            "recordings_started": log.recordings_started,
            "problems": log.problems,
        },
        "notes": exercise.notes,
        "target": {"first_packet_met": first_met, "gap_met": gap_met, "met": first_met and gap_met},
    }


@contextlib.contextmanager
def _workdir(requested: str | None) -> Iterator[Path]:
    if requested is not None:
        path = Path(requested)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="notice-load-") as temporary:
        yield Path(temporary)


def run(calls: int, notice_s: float, rate: int, workdir: Path) -> dict[str, Any]:
    """One run in ``workdir``: notice, configuration, callherald, the calls; the figures as plain data."""
    notice_wav = workdir / "notice.wav"
    write_notice_wav(notice_wav, notice_s)
    prepared = load_prompt(
        notice_wav, cache_dir=workdir / "expected-cache", prompt_id=NOTICE_PROMPT_ID, language=NOTICE_LANGUAGE
    )
    notice = prepared.frames_for("pcmu")
    _raise_file_limit(4 * calls + 512)
    plan = find_port_plan(calls)
    streams: list[NoticeStream] = []
    sip_socks: list[socket.socket] = []
    call_list: list[_Call] = []
    process: subprocess.Popen[bytes] | None = None
    log_path = workdir / "callherald.log"
    try:
        for _ in range(2):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sip_socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            sock.bind((LOOPBACK, 0))
            sock.setblocking(False)
        for index in range(calls):
            sources = range(plan.rtp_min, plan.rtp_max + 1)
            agent, callee = NoticeStream(notice, sources), NoticeStream(notice, sources)
            streams += [agent, callee]
            call_list.append(
                _Call(
                    index=index,
                    dialled=str(DIALLED_BASE + index),
                    call_id=f"notice-load-{index}-{_token()}@{LOOPBACK}",
                    from_tag=_token(),
                    agent=agent,
                    callee=callee,
                )
            )
        parties = _Parties(call_list, sip_socks[0], sip_socks[1])
        parties.callherald = (LOOPBACK, plan.pbx_listener)
        config = workdir / "callherald.yaml"
        config.write_text(
            notice_yaml(
                plan,
                pbx_port=parties.pbx_port,
                carrier_port=parties.carrier_port,
                calls=calls,
                notice_file=notice_wav.name,
            ),
            encoding="utf-8",
        )
        process = _start_callherald(workdir, config, log_path)
        pid = process.pid
        limit_s = SETTLE_S + calls / rate + ANSWER_TIMEOUT_S + notice_s + NOTICE_SLACK_S + RUN_SLACK_S

        async def bounded() -> _Exercise:
            async with asyncio.timeout(limit_s):
                return await _exercise(parties, pid, rate, notice_s)

        exercise = uvloop.run(bounded())
        if process.poll() is not None:
            exercise.notes.append(f"callherald exited during the run with {process.returncode}")
    finally:
        if process is not None:
            stop_child(process)
        for stream in streams:
            stream.sock.close()
        for sock in sip_socks:
            sock.close()
    log = scan_log(log_path.read_text(encoding="utf-8", errors="replace"))
    if not any(call.ok_sent_ns is not None for call in call_list):
        raise BenchmarkError(
            f"no call reached the callee; callherald's log: {log.problems or log.end_reasons}"
        )
    return {
        "notice_s": notice_s,
        "rate_cps": rate,
        "ramp_s": exercise.ramp_s,
        **_summarise(call_list, parties, exercise, log, len(notice)),
    }


# Report -------------------------------------------------------------------------------------------


def _n(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _dist(d: dict[str, float | None], *names: str) -> str:
    return "  ".join(f"{name} {_n(d[name])}" for name in names)


def format_report(result: dict[str, Any]) -> str:
    """The human-readable report of one run."""
    calls = result["calls"]
    lines = [
        f"notice_load: {calls} outbound calls through callherald serve, notice {result['notice_s']:g} s "
        f"({result['notice_frames']} frames of PCMU), INVITEs at {result['rate_cps']}/s "
        f"(sent over {result['ramp_s']:.2f} s); 127.0.0.1",
        f"calls: {result['answered_by_callee']} answered by the callee, {result['relayed_200_to_pbx']} "
        f"200 OK relayed to the PBX, failed {result['failed'] or 'none'}; ACKed by callherald "
        f"{result['acked_by_callherald']}; BYEs answered {result['byes_answered']}, reached the callee "
        f"{result['byes_reaching_callee']}; INVITEs resent {result['invites_retransmitted']}",
        "",
        "callee's 200 OK -> (kernel arrival, ms):",
        f"  first notice packet at the callee: {_dist(result['first_packet_ms'], 'p50', 'p99', 'max')}"
        f"  (calls {result['first_packet_ms']['count']})",
        f"  first notice packet at the agent:  {_dist(result['first_packet_ms_agent'], 'p50', 'p99', 'max')}",
        f"  relayed 200 OK at the PBX:         {_dist(result['relayed_200_ms'], 'p50', 'p99', 'max')}",
        "",
        "gaps between notice packets (kernel arrival, ms):",
    ]
    for side in ("callee", "agent"):
        r = result["receivers"][side]
        lines += [
            f"  {side:<6} whole notice: {_dist(r['gap_ms'], 'p1', 'p50', 'p99', 'min', 'max')}"
            f"  (gaps {r['gap_ms']['count']})",
            f"  {side:<6} all playing:  {_dist(r['gap_ms_all_playing'], 'p1', 'p50', 'p99', 'min', 'max')}"
            f"  (gaps {r['gap_ms_all_playing']['count']})",
            f"  {side:<6} heard on {r['calls_heard']} calls, complete on {r['notices_complete']}, intact "
            f"(every frame, in order) on {r['notices_intact']}; sequence errors {r['sequence_errors']}, "
            f"timestamp errors {r['timestamp_errors']}, SSRC changes {r['ssrc_changes']}, "
            f"markers {r['markers']}, frames missing {r['frames_missing']}, other packets "
            f"{r['other_packets']}, stray packets {r['stray_packets']}",
        ]
    log = result["log"]
    lines += [
        "",
        f"all {calls} notices playing at once for {_n(result['all_playing_s'])} s: callherald CPU "
        f"{_n(result['callherald_cpu_pct'], 1)} % of one core "
        f"({_n(result['callherald_cpu_per_call_pct'], 3)} per call); it waited for a CPU "
        f"{_n(result['callherald_wait_pct'], 1)} % of the time; machine "
        f"CPU pressure {_n(result['machine_cpu_pressure_pct'], 1)} %; the benchmark's own CPU "
        f"{_n(result['benchmark_cpu_pct'], 1)} % ({os.cpu_count()} CPUs)",
        f"callherald RSS KiB: idle {result['rss_idle_kib']}, all playing {result['rss_all_playing_kib']}, "
        f"peak {result['rss_peak_kib']}, after {result['rss_after_kib']} "
        f"({_n(result['rss_per_call_kib'], 1)} per call while all play); "
        f"fds idle {result['fds_idle']}, after {result['fds_after']}",
        f"callherald log: {log['calls_started']} calls started, ended {log['end_reasons']}; notices "
        f"complete {log['notices_complete']}, incomplete {log['notices_incomplete']}; recordings "
        f"started {log['recordings_started']}",
        *(f"  log: {line}" for line in log["problems"]),
        *(f"note: {note}" for note in result["notes"]),
    ]
    if result["unexpected_sip"] or result["unparsable_sip"] or result["sip_send_errors"]:
        lines.append(
            f"SIP: unexpected {result['unexpected_sip']}, unparsable {result['unparsable_sip']}, "
            f"send errors {result['sip_send_errors']}, INVITEs resent by callherald "
            f"{result['b_invite_retransmissions']}"
        )
    target = result["target"]
    lines += [
        "",
        f"target: first notice packet under {FIRST_PACKET_TARGET_MS:g} ms on every call: "
        f"{'met' if target['first_packet_met'] else 'NOT met'}; p99 gap while all play within "
        f"{FRAME_MS:g}±{GAP_TARGET_MS:g} ms at both receivers: {'met' if target['gap_met'] else 'NOT met'}",
    ]
    return "\n".join(lines)


def _environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "uvloop": metadata.version("uvloop"),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "machine": platform.machine(),
    }


def _calls(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_CALLS:
        raise argparse.ArgumentTypeError(f"calls must be 1..{MAX_CALLS}")
    return value


def _notice_s(text: str) -> float:
    value = float(text)
    if not (MIN_NOTICE_S <= value <= MAX_NOTICE_S and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"the notice must last {MIN_NOTICE_S:g}-{MAX_NOTICE_S:g} s")
    return value


def _rate_cps(text: str) -> int:
    value = int(text)
    if not MIN_RATE_CPS <= value <= MAX_RATE_CPS:
        raise argparse.ArgumentTypeError(f"the rate must be {MIN_RATE_CPS}..{MAX_RATE_CPS} calls per second")
    return value


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the benchmark; 0 when it was carried out, 1 when not, 2 on bad usage."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.notice_load", description=__doc__)
    parser.add_argument("--calls", type=_calls, default=DEFAULT_CALLS, help="concurrent calls")
    parser.add_argument("--notice-s", type=_notice_s, default=DEFAULT_NOTICE_S, help="notice length")
    parser.add_argument(
        "--rate", type=_rate_cps, help="INVITEs per second (default: all sent within a quarter of the notice)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of text")
    parser.add_argument("--workdir", help="keep the notice, configuration and callherald's log here")
    args = parser.parse_args(argv)
    out = out or sys.stdout
    rate = args.rate if args.rate is not None else call_rate(args.calls, args.notice_s)
    try:
        with _workdir(args.workdir) as workdir:
            result = run(args.calls, args.notice_s, rate, workdir)
    except (BenchmarkError, AnnouncementError, OSError, TimeoutError) as error:
        print(f"notice_load: {error}", file=sys.stderr)
        return 1
    if args.json:
        document = {"benchmark": "notice_load", "environment": _environment(), **result}
        print(json.dumps(document, indent=2), file=out)
    else:
        print(format_report(result), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
