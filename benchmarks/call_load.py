"""Concurrent calls through callherald, measured against the same load without it.

Run as ``python -m benchmarks.call_load [--calls 50,100,200,400] [--hold-s 20] [--json]``. For each
concurrency N, two runs on 127.0.0.1:

- ``direct``: a SIPp UAC (the PBX) calls a SIPp UAS (the carrier) straight;
- ``callherald``: the same UAC calls ``callherald serve``, which sends the calls on to the UAS.

The UAS runs with ``-rtp_echo`` and answers every call with its single echo port. The UAC places N
calls (``-l N -m N``) at a rate that ramps them up in a few seconds, holds each for ``--hold-s``
seconds, then hangs up. Each call offers its own RTP port, taken from an injection file; when the
call is answered the UAC logs ``up <our port> <answered port>`` to a port file (a SIPp ``<log>``
action: no process is forked per call), and before the BYE ``stop <our port>``. A separate RTP
agent process (uvloop) owns those ports: it reads the port file, sends 20 ms G.711 packets (172
bytes, RTP header with sequence number, timestamp and SSRC; the first 8 payload bytes carry the
send time) at 50 per second per call, paced against absolute deadlines, and measures what comes
back: loss, the RFC 3550 §6.4.1 interarrival jitter of the round trip (send time from the payload,
arrival time from the kernel's receive timestamp) and the round trip time. Through callherald
every packet crosses the relay twice: a-leg to b-leg on the way out, b-leg to a-leg on the way back.

callherald's CPU (utime + stime from ``/proc/PID/stat``) is taken over the steady-state window: from
``SETTLE_S`` after the last call came up to just before the first call stops sending (also over the
ramp-up and the teardown). Its memory per call is (VmRSS under load - VmRSS idle) / N; memory and
open descriptors are read again after the run. The UDP receive-buffer drops of every socket
involved (``/proc/net/udp``) say where packets were lost. On a shared machine the figures move with
the neighbours' load, so each run also reports how long callherald waited for a CPU
(``/proc/PID/schedstat``) and the machine's CPU pressure (``/proc/pressure/cpu``), and, when
packets were lost, a per-second timeline that lines the slow round trips up with both.

All calls share the UAS's one echo socket, whose receive buffer (the system default) holds only a
few milliseconds of 400 calls' packets: a burst, such as a relay catching up after being kept off
the CPU, overflows it first. Its drops are listed separately.

Every phase has a hard time limit, every process is stopped by its PID, and all ports come from one
block below the ephemeral port range, checked free beforehand. SIPp binds its control port
(``-cp``) on every interface; everything else listens on 127.0.0.1 only. ``--repeat`` runs the
whole series again, to see the spread.
"""

from __future__ import annotations

import argparse
import asyncio
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
import struct
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import uvloop

__all__ = [
    "DEFAULT_CALLS",
    "DEFAULT_HOLD_S",
    "PACKET_BYTES",
    "PTIME_S",
    "RTP_HEADER",
    "BenchmarkError",
    "Comparison",
    "PortPlan",
    "PortfileReader",
    "RunResult",
    "SippStats",
    "call_rate",
    "callherald_yaml",
    "compare",
    "cpu_pressure_us",
    "cpu_ticks",
    "find_port_plan",
    "format_report",
    "jitter_step",
    "main",
    "new_packet",
    "open_fds",
    "percentile",
    "plan_ports",
    "read_sipp_stats",
    "run_agent",
    "run_once",
    "run_queue_wait_ns",
    "udp_drops",
    "vm_rss_kib",
    "write_rtp_header",
]

DEFAULT_CALLS = (50, 100, 200, 400)
DEFAULT_HOLD_S = 20.0
MAX_HOLD_S = 600.0  # keeps a call's sequence numbers below 2**16, so no wrap to track
TARGET_CALLS = 200
TARGET_LOSS_PCT = 0.1

PTIME_S = 0.020
PACKETS_PER_S = 50
PAYLOAD_BYTES = 160  # 20 ms of G.711 at 8 kHz
PACKET_BYTES = 12 + PAYLOAD_BYTES  # 172: the fixed RTP header and the payload
TIMESTAMP_STEP = 160  # RTP clock 8 kHz (RFC 3551 §4.5.14)
PAYLOAD_TYPE_PCMU = 0
PCMU_SILENCE = 0xFF
SEND_SLOTS = 10  # each 20 ms period is cut into slots so that calls do not all send at once
SLOT_S = PTIME_S / SEND_SLOTS

RTP_HEADER = struct.Struct("!BBHIIq")
"""V/P/X/CC, M/PT, sequence, timestamp, SSRC (RFC 3550 §5.1), then the send time in ns (payload)."""
_RECEIVED = struct.Struct("!2xH4xIq")  # sequence, SSRC, send time
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

PATHS = ("direct", "callherald")


class BenchmarkError(Exception):
    """A run could not be carried out (a process did not start, a port was taken...)."""


# Pure helpers ---------------------------------------------------------------------------------


def write_rtp_header(
    buffer: bytearray, *, seq: int, timestamp: int, ssrc: int, sent_ns: int, marker: bool = False
) -> None:
    """Write an RTP v2 PCMU header and the send time (first 8 payload bytes) into ``buffer``."""
    RTP_HEADER.pack_into(
        buffer,
        0,
        0x80,
        (0x80 if marker else 0) | PAYLOAD_TYPE_PCMU,
        seq & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc,
        sent_ns,
    )


def new_packet() -> bytearray:
    """A 172-byte packet buffer whose payload is PCMU silence."""
    buffer = bytearray([PCMU_SILENCE]) * PACKET_BYTES
    buffer[: RTP_HEADER.size] = bytes(RTP_HEADER.size)
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


def call_rate(calls: int) -> int:
    """Calls per second for N concurrent calls: all of them up within about four seconds."""
    return min(100, max(10, math.ceil(calls / 4)))


def cpu_ticks(stat_text: str) -> int:
    """utime + stime in clock ticks from the text of ``/proc/PID/stat``."""
    fields = stat_text[stat_text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted from 1


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


def _udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def find_port_plan(calls: int, is_free: Callable[[int], bool] = _udp_port_free) -> PortPlan:
    """A plan whose every port is free now, searched in ``PORT_REGION`` from a per-process start."""
    low, high = PORT_REGION
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


def callherald_yaml(plan: PortPlan, calls: int) -> str:
    """A loopback configuration: PBX = the SIPp UAC, carrier = the SIPp UAS, info-level logging."""
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
limits:
  max_concurrent_calls: {calls + RTP_SPARE_PAIRS}
  rtp_inactivity_timeout_s: 30
logging:
  level: info
data_dir: data
# Relaying alone: no notice and no recording on these calls.
purposes:
  - {{id: evidence, lawful_basis: contract, retention_days: 30}}
policies:
  - {{name: relay-only, record: false}}
"""


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
        "jitter",
        "last_transit",
        "packet",
        "port",
        "received",
        "recv_errors",
        "seen",
        "send_errors",
        "sending",
        "sent",
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
        self.send_errors = 0
        self.received = 0
        self.duplicates = 0
        self.stray = 0
        self.recv_errors = 0
        self.seen = bytearray(1 << 16)
        self.jitter = 0.0
        self.last_transit: int | None = None


class _Agent:
    """Sends and measures RTP for every call the port file announces, until ``end`` or the deadline."""

    def __init__(self, ports: Sequence[int], portfile: Path, max_s: float) -> None:
        self._portfile = PortfileReader(portfile)
        self._max_s = max_s
        self._streams: dict[int, _Stream] = {}
        self._slots: list[list[_Stream]] = [[] for _ in range(SEND_SLOTS)]
        self._started = 0
        self._transits = array("q")
        self._arrivals = array("q")
        self._jitters = array("d")
        self._lateness = array("d")
        self._unknown_lines = 0
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
            if words == ["end"]:
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
                write_rtp_header(
                    stream.packet,
                    seq=seq,
                    timestamp=stream.timestamp0 + seq * TIMESTAMP_STEP,
                    ssrc=stream.ssrc,
                    sent_ns=time_ns(),
                    marker=seq == 0,
                )
                stream.seq = seq + 1
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
        unpack = _RECEIVED.unpack_from
        while True:
            try:
                data, ancillary, _flags, _address = recvmsg(256, _ANCILLARY_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                stream.recv_errors += 1
                return
            if len(data) < _RECEIVED.size:
                stream.stray += 1
                continue
            seq, ssrc, sent_ns = unpack(data)
            if ssrc != stream.ssrc:
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
            transit = arrival_ns - sent_ns
            self._transits.append(transit)
            self._arrivals.append(arrival_ns)
            if stream.last_transit is not None:
                stream.jitter = jitter_step(stream.jitter, transit, stream.last_transit)
                self._jitters.append(stream.jitter)
            stream.last_transit = transit

    def _summary(self) -> dict[str, Any]:
        streams = [s for s in self._streams.values() if s.sent]
        sent = sum(s.sent for s in streams)
        received = sum(s.received for s in streams)
        transits = sorted(self._transits)
        jitters = sorted(self._jitters)
        lateness = sorted(self._lateness)

        def ms(value: float | None) -> float | None:
            return None if value is None else value / 1e6

        timeline: dict[int, list[int]] = {}
        for arrival, transit in zip(self._arrivals, self._transits, strict=True):
            second = timeline.setdefault(arrival // 100_000_000, [0, 0, 0])
            second[0] += 1
            second[1] = max(second[1], transit)
            second[2] += transit > SLOW_RETURN_NS
        per_call_loss = [100.0 * (s.sent - s.received) / s.sent for s in streams]
        return {
            "calls_streamed": self._started,
            "packets_sent": sent,
            "packets_received": received,
            "duplicates": sum(s.duplicates for s in streams),
            "stray": sum(s.stray for s in self._streams.values()),
            "send_errors": sum(s.send_errors for s in self._streams.values()),
            "recv_errors": sum(s.recv_errors for s in self._streams.values()),
            "unknown_portfile_lines": self._unknown_lines,
            "loss_pct": 100.0 * (sent - received) / sent if sent else None,
            "calls_with_loss": sum(1 for loss in per_call_loss if loss > 0),
            "worst_call_loss_pct": max(per_call_loss, default=None),
            "jitter_ms_mean": ms(sum(jitters) / len(jitters)) if jitters else None,
            "jitter_ms_p99": ms(percentile(jitters, 0.99)),
            "jitter_ms_max": ms(jitters[-1]) if jitters else None,
            "rtt_ms_p50": ms(percentile(transits, 0.50)),
            "rtt_ms_p99": ms(percentile(transits, 0.99)),
            "rtt_ms_max": ms(transits[-1]) if transits else None,
            "send_late_ms_p99": None if not lateness else 1000 * (percentile(lateness, 0.99) or 0.0),
            "send_late_ms_max": 1000 * lateness[-1] if lateness else None,
            "per_100ms": [
                {"epoch_ds": tenth, "returned": n, "rtt_ms_max": worst / 1e6, "slow_returns": slow}
                for tenth, (n, worst, slow) in sorted(timeline.items())
            ],
        }


def run_agent(config_path: Path) -> int:
    """The RTP agent's process body: bind, say ``ready``, measure, write the summary as JSON."""
    settings = json.loads(config_path.read_text(encoding="utf-8"))
    agent = _Agent(settings["ports"], Path(settings["portfile"]), float(settings["max_s"]))
    print("ready", flush=True)
    summary = uvloop.run(agent.run())
    Path(settings["result"]).write_text(json.dumps(summary), encoding="utf-8")
    return 0


# Orchestration ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """One run (``direct`` or ``callherald``) at one concurrency. None: not measured or not applicable."""

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
    window_s: float | None = None
    callherald_cpu_pct: float | None = None
    callherald_cpu_per_call_pct: float | None = None
    callherald_ramp_cpu_pct: float | None = None
    callherald_teardown_cpu_pct: float | None = None
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
    notes: list[str] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """callherald run against direct run at one concurrency."""

    calls: int
    failed_calls: int | None
    loss_pct: float | None
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
        calls=through.calls,
        failed_calls=None if through.error else through.failed_calls,
        loss_pct=through.loss_pct,
        direct_loss_pct=direct.loss_pct,
        loss_ratio=_ratio(through.loss_pct, direct.loss_pct),
        added_jitter_ms=_difference(through.jitter_ms, direct.jitter_ms),
        jitter_ratio=_ratio(through.jitter_ms, direct.jitter_ms),
        added_rtt_p50_ms=_difference(through.rtp.get("rtt_ms_p50"), direct.rtp.get("rtt_ms_p50")),
        callherald_cpu_pct=through.callherald_cpu_pct,
        callherald_cpu_per_call_pct=through.callherald_cpu_per_call_pct,
        rss_per_call_kib=through.rss_per_call_kib,
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


def _rss(pid: int) -> int | None:
    text = _read_proc(pid, "status")
    return None if text is None else vm_rss_kib(text)


def _file_limit_raiser(needed: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` raising the child's soft RLIMIT_NOFILE to ``needed`` when it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if target < needed:
        print(f"warning: RLIMIT_NOFILE hard limit {hard} is below the {needed} needed", file=sys.stderr)

    def raise_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))

    return raise_limit


class _Processes:
    """Starts processes with output to files and stops each by its PID."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._started: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        name: str,
        command: list[str],
        *,
        needed_files: int = 1024,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        with (self._workdir / f"{name}.out").open("wb") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                cwd=cwd or self._workdir,
                preexec_fn=_file_limit_raiser(needed_files),  # noqa: PLW1509 (no threads here)
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


def _wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{what} (after {timeout_s:.0f} s)")
        time.sleep(POLL_S)


def _callherald_command() -> list[str]:
    beside = Path(sys.executable).with_name("callherald")
    found = str(beside) if beside.exists() else shutil.which("callherald")
    if found is None:
        raise BenchmarkError("the callherald command is not installed")
    return [found]


@dataclass(slots=True)
class _Samples:
    """What the monitor loop saw, with monotonic timestamps."""

    ups: list[float] = field(default_factory=list)
    stops: list[float] = field(default_factory=list)
    ticks: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    rss: list[tuple[float, int]] = field(default_factory=list)
    fds: list[tuple[float, int]] = field(default_factory=list)
    drops: dict[tuple[int, int], int] = field(default_factory=dict)
    waits: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    pressure: list[tuple[float, int]] = field(default_factory=list)
    epoch_offset: float = field(default_factory=lambda: time.time() - time.monotonic())
    started: float = field(default_factory=time.monotonic)


def _window(samples: _Samples, calls: int, uac_end: float) -> tuple[float, float] | None:
    """The steady-state window: all calls up (or as many as came up) to the first stop."""
    if not samples.ups:
        return None
    all_up = samples.ups[min(calls, len(samples.ups)) - 1]
    first_stop = samples.stops[0] if samples.stops else uac_end
    start, end = all_up + SETTLE_S, first_stop - WINDOW_EDGE_S
    return (start, end) if end - start >= 2 * SLOW_POLL_S else None


def _rate(series: list[tuple[float, int]], window: tuple[float, float], scale: float) -> float | None:
    """The growth of a cumulative counter per second over the window, times ``scale``."""
    inside = [(t, value) for t, value in series if window[0] <= t <= window[1]]
    if len(inside) < 2 or inside[-1][0] - inside[0][0] <= 0:
        return None
    return scale * (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def _cpu_pct(series: list[tuple[float, int]], window: tuple[float, float]) -> float | None:
    return _rate(series, window, 100.0 / os.sysconf("SC_CLK_TCK"))


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


def _timeline(samples: _Samples, returns: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
_CALL_STARTED = re.compile(r"\] \w+ call from ")
_CALL_ENDED = re.compile(r"\] call ended: (\S+)")
MAX_LOG_LINES = 10


def _scan_log(text: str) -> tuple[int, dict[str, int], list[str]]:
    """Calls started, end reasons and the first problem lines of a callherald log."""
    started = len(_CALL_STARTED.findall(text))
    reasons = Counter(_CALL_ENDED.findall(text))
    problems = [line for line in text.splitlines() if _LOG_PROBLEM.search(line)]
    if len(problems) > MAX_LOG_LINES:
        problems = [*problems[:MAX_LOG_LINES], f"... {len(problems) - MAX_LOG_LINES} more"]
    return started, dict(reasons), problems


def _sipp_base(
    scenario: Path, plan_sip: int, control: int, media: int, workdir: Path, name: str
) -> list[str]:
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


def run_once(path: str, calls: int, hold_s: float, workdir: Path) -> RunResult:
    """One run of ``calls`` concurrent calls, ``direct`` or through ``callherald``; bounded in time."""
    workdir.mkdir(parents=True, exist_ok=True)
    rate = call_rate(calls)
    ramp_s = calls / rate
    run_limit_s = ramp_s + hold_s + STOP_DRAIN_S + RUN_SLACK_S
    try:
        plan = find_port_plan(calls)
    except BenchmarkError as error:
        return RunResult(path=path, calls=calls, rate_cps=rate, hold_s=hold_s, error=str(error))
    portfile = workdir / "ports.txt"
    portfile.write_bytes(b"")
    injection = workdir / "rtp-ports.csv"
    injection.write_text("SEQUENTIAL\n" + "".join(f"{port};\n" for port in plan.agent), encoding="ascii")
    processes = _Processes(workdir)
    samples = _Samples()
    notes: list[str] = []
    through = path == "callherald"
    callherald: subprocess.Popen[bytes] | None = None
    rss_idle = fds_idle = rss_after = fds_after = None
    log_text = ""
    try:
        if through:
            config = workdir / "callherald.yaml"
            config.write_text(callherald_yaml(plan, calls), encoding="utf-8")
            log_path = workdir / "callherald.out"
            callherald = processes.start(
                "callherald",
                [*_callherald_command(), "serve", "--config", str(config)],
                needed_files=4 * calls + 512,
            )
            _wait_until(
                lambda: (
                    "listening for the carrier side" in log_path.read_text(errors="replace")
                    or callherald.poll() is not None
                ),
                START_TIMEOUT_S,
                "callherald did not start",
            )
            if callherald.poll() is not None:
                raise BenchmarkError(f"callherald exited:\n{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(SETTLE_S)
            rss_idle, fds_idle = _rss(callherald.pid), open_fds(callherald.pid)
        uas = processes.start(
            "uas",
            [
                *_sipp_base(UAS_SCENARIO, plan.uas_sip, plan.uas_control, plan.echo, workdir, "uas"),
                "-rtp_echo",
                "-l",
                str(2 * calls + 10),
                "-timeout",
                f"{math.ceil(run_limit_s + 10)}s",
            ],
        )
        _wait_until(
            lambda: not _udp_port_free(plan.uas_sip) or uas.poll() is not None,
            UAS_START_TIMEOUT_S,
            "the SIPp UAS did not bind its port",
        )
        if uas.poll() is not None:
            raise BenchmarkError(f"the SIPp UAS exited with {uas.returncode}")
        agent_config = workdir / "agent.json"
        agent_result = workdir / "agent-result.json"
        agent_config.write_text(
            json.dumps(
                {
                    "ports": list(plan.agent),
                    "portfile": str(portfile),
                    "result": str(agent_result),
                    "max_s": run_limit_s,
                }
            ),
            encoding="utf-8",
        )
        agent = processes.start(
            "agent",
            [sys.executable, "-m", "benchmarks.call_load", "--rtp-agent", str(agent_config)],
            needed_files=calls + 512,
            cwd=PROJECT_ROOT,
        )
        _wait_until(
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
                *_sipp_base(UAC_SCENARIO, plan.uac_sip, plan.uac_control, plan.uac_media, workdir, "uac"),
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
        )
        watched = {"agent": agent.pid, "uac": uac.pid, "uas": uas.pid}
        if callherald is not None:
            watched["callherald"] = callherald.pid
        uac_end = _monitor(samples, watched, PortfileReader(portfile), plan, uac, run_limit_s)
        if uac.poll() is None:
            notes.append("the SIPp UAC did not finish within the time limit")
            processes.stop(uac)
        with portfile.open("ab") as handle:
            handle.write(b"end\n")
        try:
            agent.wait(timeout=AGENT_FINISH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            notes.append("the RTP agent did not finish in time")
        if callherald is not None:
            time.sleep(AFTER_RUN_S)
            rss_after, fds_after = _rss(callherald.pid), open_fds(callherald.pid)
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
    window = _window(samples, calls, uac_end)
    if window is None:
        notes.append("no steady-state window: hold time too short or calls did not come up")
    if stats is None:
        notes.append("SIPp wrote no statistics")
    ticks = samples.ticks
    callherald_cpu = _cpu_pct(ticks.get("callherald", []), window) if window and through else None
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
        loss_pct=rtp.get("loss_pct"),
        jitter_ms=rtp.get("jitter_ms_mean"),
        window_s=None if window is None else window[1] - window[0],
        callherald_cpu_pct=callherald_cpu,
        callherald_cpu_per_call_pct=None if callherald_cpu is None else callherald_cpu / calls,
        callherald_ramp_cpu_pct=_phase_cpu(ticks.get("callherald", []), samples.ups),
        callherald_teardown_cpu_pct=_phase_cpu(ticks.get("callherald", []), samples.stops),
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
        notes=notes,
        timeline=_timeline(samples, returns),
    )


def _monitor(
    samples: _Samples,
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
                rss, fds = _rss(pids["callherald"]), open_fds(pids["callherald"])
                if rss is not None and fds is not None:
                    samples.rss.append((now, rss))
                    samples.fds.append((now, fds))
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
    head = f"{rep:>3} {run['calls']:>5} {run['path']:<10}"
    if run["error"]:
        return f"{head} error: {run['error']}"
    rtp = run["rtp"]
    drops = ",".join(f"{k}={v}" for k, v in sorted(run["udp_drops"].items()) if v) or "0"
    return (
        f"{head} {run['successful_calls']:>5}/{run['failed_calls']:<3} {run['retransmissions']:>4} "
        f"{_number(run['loss_pct'], 4):>7} {_number(run['jitter_ms'], 3):>7} "
        f"{_number(rtp.get('jitter_ms_p99'), 3):>7} {_number(rtp.get('rtt_ms_p50'), 3):>7} "
        f"{_number(rtp.get('rtt_ms_p99'), 2):>7} {_number(run['callherald_cpu_pct'], 1):>6} "
        f"{_number(run['callherald_cpu_per_call_pct'], 3):>6} {_number(run['rss_per_call_kib'], 1):>6} "
        f"{_number(run['agent_cpu_pct'], 1):>5} {_number(run['sipp_cpu_pct'], 1):>5} "
        f"{_number(run['callherald_wait_pct'], 1):>6} {_number(run['cpu_pressure_pct'], 0):>4}  {drops}"
    )


def _details(run: dict[str, Any]) -> list[str]:
    extra = [*run["notes"]]
    if run["failure_causes"]:
        extra.append(f"SIPp failure causes: {run['failure_causes']}")
    if run["path"] == "callherald" and not run["error"]:
        extra.append(
            f"callherald: {run['callherald_calls_started']} calls started, ended "
            f"{run['callherald_end_reasons']}; CPU % ramp-up/steady/teardown "
            f"{_number(run['callherald_ramp_cpu_pct'], 1)}/{_number(run['callherald_cpu_pct'], 1)}/"
            f"{_number(run['callherald_teardown_cpu_pct'], 1)}; RSS KiB idle/load/after "
            f"{run['rss_idle_kib']}/{run['rss_load_kib']}/{run['rss_after_kib']}; "
            f"fds idle/load/after {run['fds_idle']}/{run['fds_load']}/{run['fds_after']}"
        )
        extra += [f"log: {line}" for line in run["callherald_log_problems"]]
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


def format_report(rows: list[dict[str, Any]], hold_s: float) -> str:
    """The human-readable tables: every run, then callherald against direct, then details."""
    lines = [
        f"Concurrent calls, SIPp UAC -> (callherald | direct) -> SIPp UAS with RTP echo; hold {hold_s:g} s; "
        f"G.711 20 ms, {PACKETS_PER_S} pps each way per call; 127.0.0.1",
        "loss, jitter (RFC 3550, mean of the running estimate) and RTT are for the round trip "
        "agent -> echo -> agent; CPU in % of one core over the steady-state window;",
        "CH = callherald; gen = RTP agent; CHwait = % of the time callherald waited for a CPU; "
        "PSI = % of the time some task on the machine did (CPU pressure);",
        "drops = UDP receive-buffer drops by socket owner",
        "",
        f"{'rep':>3} {'calls':>5} {'path':<10} {'ok/fail':>9} {'retr':>4} {'loss %':>7} {'jit ms':>7} "
        f"{'jit p99':>7} {'rtt p50':>7} {'rtt p99':>7} {'CH %':>6} {'CH/call':>6} {'KiB/cl':>6} "
        f"{'gen %':>5} {'SIPp%':>5} {'CHwait':>6} {'PSI%':>4}  drops",
    ]
    for row in rows:
        lines += [_run_line(row.get("repetition", 1), row[path]) for path in PATHS]
    lines += [
        "",
        "callherald against direct:",
        f"{'rep':>3} {'calls':>5} {'failed':>6} {'loss %':>8} {'direct %':>8} {'loss x':>7} "
        f"{'+jitter ms':>10} {'jitter x':>8} {'+rtt p50 ms':>11} {'CH CPU %':>8} {'CPU/call %':>10} "
        f"{'RSS/call KiB':>12}",
    ]
    for row in rows:
        c = row["comparison"]
        lines.append(
            f"{row.get('repetition', 1):>3} {c['calls']:>5} "
            f"{'-' if c['failed_calls'] is None else c['failed_calls']:>6} "
            f"{_number(c['loss_pct'], 4):>8} {_number(c['direct_loss_pct'], 4):>8} "
            f"{_number(c['loss_ratio'], 2):>7} {_number(c['added_jitter_ms'], 3):>10} "
            f"{_number(c['jitter_ratio'], 2):>8} {_number(c['added_rtt_p50_ms'], 3):>11} "
            f"{_number(c['callherald_cpu_pct'], 1):>8} {_number(c['callherald_cpu_per_call_pct'], 3):>10} "
            f"{_number(c['rss_per_call_kib'], 1):>12}"
        )
    for row in rows:
        for path in PATHS:
            details = _details(row[path])
            if details:
                lines.append(f"\n{row['calls']} calls, {path}, repetition {row.get('repetition', 1)}:")
                lines += [f"  {item}" for item in details]
    return "\n".join(lines)


def _target_met(rows: list[dict[str, Any]]) -> bool | None:
    """Whether every run at ``TARGET_CALLS`` had no failed call and loss below the target."""
    verdicts = [
        row["comparison"]["failed_calls"] == 0
        and row["comparison"]["loss_pct"] is not None
        and row["comparison"]["loss_pct"] < TARGET_LOSS_PCT
        for row in rows
        if row["calls"] == TARGET_CALLS
    ]
    return all(verdicts) if verdicts else None


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


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the benchmark; 0 when every run was carried out, 1 when one could not be, 2 on bad usage."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.call_load", description=__doc__)
    parser.add_argument("--calls", type=_parse_calls, default=list(DEFAULT_CALLS), help="e.g. 50,100,200")
    parser.add_argument("--hold-s", type=_parse_hold, default=DEFAULT_HOLD_S, help="seconds each call lasts")
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of tables")
    parser.add_argument("--repeat", type=int, default=1, choices=range(1, 11), metavar="1-10")
    parser.add_argument("--workdir", help="keep configuration, logs and statistics here")
    parser.add_argument("--rtp-agent", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rtp_agent is not None:
        return run_agent(Path(args.rtp_agent))
    out = out or sys.stdout
    if shutil.which("sipp") is None:
        print("sipp is not installed", file=sys.stderr)
        return 2
    environment = _environment()
    rows: list[dict[str, Any]] = []
    with _workdir(args.workdir) as workdir:
        for rep, calls in itertools.product(range(1, args.repeat + 1), args.calls):
            results: dict[str, RunResult] = {}
            for path in PATHS:
                print(f"{calls} calls, {path}, repetition {rep} ...", file=sys.stderr, flush=True)
                results[path] = run_once(path, calls, args.hold_s, workdir / f"{calls}-{path}-{rep}")
            rows.append(
                {
                    "calls": calls,
                    "repetition": rep,
                    **{path: asdict(result) for path, result in results.items()},
                    "comparison": asdict(compare(results["direct"], results["callherald"])),
                }
            )
    document = {
        "benchmark": "call_load",
        "hold_s": args.hold_s,
        "packet_bytes": PACKET_BYTES,
        "packets_per_s": PACKETS_PER_S,
        "environment": environment,
        "results": rows,
        "target": {
            "calls": TARGET_CALLS,
            "failed_calls": 0,
            "loss_pct_below": TARGET_LOSS_PCT,
            "met": _target_met(rows),
        },
    }
    if args.json:
        print(json.dumps(document, indent=2), file=out)
    else:
        print(format_report(rows, args.hold_s), file=out)
        met = document["target"]["met"]
        if met is not None:
            print(
                f"\ntarget ({TARGET_CALLS} calls, 0 failed, loss < {TARGET_LOSS_PCT} %): "
                f"{'met' if met else 'NOT met'}",
                file=out,
            )
    failed_runs = any(row[path]["error"] for row in rows for path in PATHS)
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
