"""Concurrent announcements through one ``PlayoutScheduler``, measured where the packets land.

Run as ``python -m benchmarks.announce_load [--calls 200] [--seconds 10] [--json]``.

The player process (uvloop) opens one RTP leg per call (a ``LegProtocol`` on 127.0.0.1) with an
``AnnouncementPlayer`` on it, all sharing one scheduler. The calls start evenly spread over the
ramp (a quarter of the run, at most 1 s), so they join the tick grid at every phase. Each plays the
agent beep and then ringback, looped, until the run ends; then every playout is stopped.

A receiver process, started and stopped by its PID, binds one socket per call and takes each
packet's arrival time from the kernel (``SO_TIMESTAMPNS``). It reports the gaps between
consecutive packets of each call, each call's first arrival, and whether the RTP header checks
out: sequence numbers +1, timestamps +160 (outside talkspurt starts), one SSRC per call.

Reported: the gap distribution (p1, p50, p99, max), the time from ``play`` to the first packet's
arrival (p50, p99, max), the player's CPU time as a percentage of one core (over the steady state,
after the ramp, and over the whole run), the scheduler's tick counts, and the per-packet cost of
the relay's callback on null transports: passing a packet unchanged, without and with the leg's
player hooked in, and renumbering it after an announcement. Targets: p1 and p99 gap within
20 ± 5 ms; first packet within 40 ms.

Exit status: 0 when the run was carried out, 1 when it was not (the receiver failed), 2 on usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import resource
import socket
import struct
import subprocess
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO, cast

import numpy as np
import uvloop

from announcements import beep_frames, ringback_frames
from benchmarks.call_load import cpu_pressure_us, run_queue_wait_ns
from benchmarks.child_process import finish_child, start_child, stop_child
from proxy.aio.media import LegProtocol
from proxy.aio.playout import AnnouncementPlayer, Playout, PlayoutResult, PlayoutScheduler
from proxy.rtp.packet import RtpPacket
from proxy.rtp.seqnum import seq_diff, ts_diff

__all__ = [
    "DEFAULT_CALLS",
    "DEFAULT_SECONDS",
    "FIRST_PACKET_TARGET_MS",
    "GAP_TARGET_MS",
    "StreamCheck",
    "distribution",
    "format_report",
    "kernel_time_ns",
    "main",
    "measure_relay_hook",
    "run",
    "run_receiver",
]

DEFAULT_CALLS = 200
DEFAULT_SECONDS = 10.0
MAX_SECONDS = 600.0
FRAME_MS = 20.0
GAP_TARGET_MS = 5.0  # p1 and p99 gap within FRAME_MS ± this
FIRST_PACKET_TARGET_MS = 40.0
SAMPLES_PER_FRAME = 160
CLOCK_RATE_HZ = 8000
PCMU = 0

LOOPBACK = "127.0.0.1"
MAX_RAMP_S = 1.0
SETTLE_S = 0.2  # after the ramp, before the steady CPU window opens
DRAIN_S = 0.2  # after the last playout stopped, before the receiver is told to finish
RECEIVER_START_TIMEOUT_S = 10.0
RECEIVER_FINISH_TIMEOUT_S = 15.0
RUN_SLACK_S = 20.0
HOOK_PACKETS = 100_000

_SO_TIMESTAMPNS = 35  # Linux: each datagram's arrival time comes as SCM_TIMESTAMPNS
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)
_HEADER = struct.Struct("!BBHII")


# Pure helpers ---------------------------------------------------------------------------------


def distribution(values: Sequence[float]) -> dict[str, float | None]:
    """Count, min, p1, p50, p99 and max (nearest rank) of ``values``; None for each when empty."""
    if not values:
        return {"count": 0, "min": None, "p1": None, "p50": None, "p99": None, "max": None}
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    p1, p50, p99 = np.percentile(ordered, [1, 50, 99], method="inverted_cdf")
    return {
        "count": len(ordered),
        "min": float(ordered[0]),
        "p1": float(p1),
        "p50": float(p50),
        "p99": float(p99),
        "max": float(ordered[-1]),
    }


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="ascii")
    except OSError:
        return None


def _pressure_us() -> int | None:
    text = _read("/proc/pressure/cpu")
    return None if text is None else cpu_pressure_us(text)


def _wait_ns() -> int | None:
    text = _read("/proc/self/schedstat")
    return None if text is None else run_queue_wait_ns(text)


def kernel_time_ns(ancillary: Sequence[tuple[int, int, bytes]]) -> int | None:
    """The ``SCM_TIMESTAMPNS`` arrival time (ns since the epoch) in ``recvmsg`` ancillary data."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


@dataclass(slots=True)
class StreamCheck:
    """One call's packets as the receiver sees them: arrival gaps and RTP header continuity.

    A packet counts as a sequence error when its sequence number is not the previous one plus
    one, and as a timestamp error when its timestamp is not the previous one plus
    ``samples_per_frame`` unless it has the marker bit (a talkspurt may start anywhere later).
    """

    samples_per_frame: int = SAMPLES_PER_FRAME
    packets: int = 0
    first_ns: int | None = None
    last_ns: int = 0
    ssrc: int | None = None
    sequence: int = 0
    timestamp: int = 0
    sequence_errors: int = 0
    timestamp_errors: int = 0
    ssrc_changes: int = 0
    markers: int = 0

    def add(self, data: bytes, arrived_ns: int, gaps_ms: array[float]) -> None:
        """Account for one packet; append its gap to the previous one, in ms, to ``gaps_ms``."""
        if len(data) < _HEADER.size:
            self.sequence_errors += 1
            return
        _b0, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        marker = b1 > 0x7F
        self.markers += marker
        if self.first_ns is None:
            self.first_ns = arrived_ns
        else:
            gaps_ms.append((arrived_ns - self.last_ns) / 1e6)
            if ssrc != self.ssrc:
                self.ssrc_changes += 1
            if seq_diff(sequence, self.sequence) != 1:
                self.sequence_errors += 1
            if not marker and ts_diff(timestamp, self.timestamp) != self.samples_per_frame:
                self.timestamp_errors += 1
        self.packets += 1
        self.last_ns = arrived_ns
        self.ssrc, self.sequence, self.timestamp = ssrc, sequence, timestamp


# The receiver process ---------------------------------------------------------------------------


async def _receive(socks: list[socket.socket], max_s: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    streams = [StreamCheck() for _ in socks]
    gaps = array("d")
    finished = asyncio.Event()

    def on_readable(sock: socket.socket, stream: StreamCheck) -> None:
        while True:
            try:
                data, ancillary, _flags, _address = sock.recvmsg(2048, _ANCILLARY_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            arrived = kernel_time_ns(ancillary)
            stream.add(data, time.time_ns() if arrived is None else arrived, gaps)

    def on_stdin() -> None:
        if not os.read(sys.stdin.fileno(), 4096):
            finished.set()  # the player closed our stdin: the run is over

    for sock, stream in zip(socks, streams, strict=True):
        loop.add_reader(sock.fileno(), on_readable, sock, stream)
    loop.add_reader(sys.stdin.fileno(), on_stdin)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max_s):
            await finished.wait()
    for sock, stream in zip(socks, streams, strict=True):
        loop.remove_reader(sock.fileno())
        on_readable(sock, stream)  # what arrived before the end
    loop.remove_reader(sys.stdin.fileno())
    return {
        "packets": sum(s.packets for s in streams),
        "streams": sum(1 for s in streams if s.packets),
        "first_arrival_ns": [s.first_ns for s in streams],
        "sequence_errors": sum(s.sequence_errors for s in streams),
        "timestamp_errors": sum(s.timestamp_errors for s in streams),
        "ssrc_changes": sum(s.ssrc_changes for s in streams),
        "markers": sum(s.markers for s in streams),
        "gaps_ms": distribution(gaps),
        "timed_out": not finished.is_set(),
    }


def run_receiver(calls: int, max_s: float) -> int:
    """Bind ``calls`` sockets, print their ports as a JSON line, receive, print the summary."""
    _raise_file_limit(calls + 16)
    socks = []
    for _ in range(calls):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        sock.bind((LOOPBACK, 0))
        sock.setblocking(False)
        socks.append(sock)
    print(json.dumps({"ports": [sock.getsockname()[1] for sock in socks]}), flush=True)
    try:
        summary = uvloop.run(_receive(socks, max_s))
    finally:
        for sock in socks:
            sock.close()
    print(json.dumps(summary), flush=True)
    return 0


# The player process ----------------------------------------------------------------------------


def _raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class _NullTransport:
    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        pass


def _null_leg_pair() -> tuple[LegProtocol, LegProtocol]:
    # Two relay legs on null transports: what the first one's peer sends goes out of the second.
    source, towards = LegProtocol(), LegProtocol()
    source.other, towards.other = towards, source
    for leg, port in ((source, 4000), (towards, 5000)):
        leg.connection_made(cast(asyncio.DatagramTransport, _NullTransport()))
        leg.set_remote(("192.0.2.9", port))
    return source, towards


async def measure_relay_hook(packets: int = HOOK_PACKETS) -> dict[str, float]:
    """ns per packet of the relay's callback (``LegProtocol.datagram_received``) on null
    transports, best of three rounds.

    ``sendto``: the bare transport call, for reference; ``unchanged``: the relay without a player;
    ``passthrough``: with the leg's player hooked in (``AnnouncementPlayer.relay``) before any
    prompt (the packet goes out unchanged); ``rewrite``: after a prompt, the steady source
    renumbered into the player's stream (by the relay itself once past the reorder guard).
    """
    payload = bytes(SAMPLES_PER_FRAME)
    data = [
        bytes(RtpPacket(payload_type=PCMU, sequence=i & 0xFFFF, timestamp=i * 160, ssrc=7, payload=payload))
        for i in range(1000)
    ]
    peer = ("192.0.2.9", 4000)

    def best(send: Any) -> float:
        rounds = []
        for _ in range(3):
            started = time.perf_counter_ns()
            for i in range(packets):
                send(data[i % 1000], peer)
            rounds.append((time.perf_counter_ns() - started) / packets)
        return min(rounds)

    plain, _ = _null_leg_pair()
    source, towards = _null_leg_pair()
    player = AnnouncementPlayer(towards, PlayoutScheduler(), ssrc=1, sequence=0, timestamp=0)
    towards.outbound = player.relay
    results = {
        "sendto": best(_NullTransport().sendto),
        "unchanged": best(plain.datagram_received),
        "passthrough": best(source.datagram_received),
    }
    await player.play([payload], payload_type=PCMU, clock_rate=CLOCK_RATE_HZ, samples_per_frame=160)
    results["rewrite"] = best(source.datagram_received)
    return results


@dataclass(slots=True)
class _Call:
    player: AnnouncementPlayer
    start_offset_s: float
    started_ns: int | None = None
    results: tuple[PlayoutResult, ...] = ()


async def _call(call: _Call, t0: float, end: float) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, t0 + call.start_offset_s - loop.time()))
    call.started_ns = time.time_ns()
    beep = await call.player.play(
        beep_frames("pcmu"), payload_type=PCMU, clock_rate=CLOCK_RATE_HZ, samples_per_frame=SAMPLES_PER_FRAME
    )
    ringback: Playout = call.player.play(
        ringback_frames("pcmu"),
        payload_type=PCMU,
        clock_rate=CLOCK_RATE_HZ,
        samples_per_frame=SAMPLES_PER_FRAME,
        loop=True,
    )
    await asyncio.sleep(max(0.0, end - loop.time()))
    ringback.stop()
    call.results = (beep, await ringback)


async def _play(ports: Sequence[int], seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    scheduler = PlayoutScheduler()
    ramp_s = min(MAX_RAMP_S, seconds / 4)
    transports: list[asyncio.BaseTransport] = []
    calls: list[_Call] = []
    try:
        for index, port in enumerate(ports):
            transport, leg = await loop.create_datagram_endpoint(LegProtocol, local_addr=(LOOPBACK, 0))
            transports.append(transport)
            leg.set_remote((LOOPBACK, port))
            calls.append(_Call(AnnouncementPlayer(leg, scheduler), ramp_s * index / len(ports)))
        t0 = loop.time()
        end = t0 + seconds
        wall0, cpu0 = time.perf_counter(), time.process_time()
        pressure0, wait0 = _pressure_us(), _wait_ns()
        steady: list[tuple[float, float]] = []

        def mark() -> None:
            steady.append((time.perf_counter(), time.process_time()))

        loop.call_at(t0 + ramp_s + SETTLE_S, mark)
        loop.call_at(end, mark)
        async with asyncio.timeout(seconds + RUN_SLACK_S), asyncio.TaskGroup() as group:
            for call in calls:
                group.create_task(_call(call, t0, end))
        wall1, cpu1 = time.perf_counter(), time.process_time()
        pressure1, wait1 = _pressure_us(), _wait_ns()
        await asyncio.sleep(DRAIN_S)
    finally:
        scheduler.close()
        for opened in transports:
            opened.close()
    steady_pct = None
    if len(steady) == 2 and steady[1][0] > steady[0][0]:
        steady_pct = 100 * (steady[1][1] - steady[0][1]) / (steady[1][0] - steady[0][0])
    return {
        "started_ns": [call.started_ns for call in calls],
        "frames_sent": sum(r.frames_sent for call in calls for r in call.results),
        "frames_played": sum(r.frames_played for call in calls for r in call.results),
        "stalls": sum(r.stalls for call in calls for r in call.results),
        "ticks": scheduler.ticks,
        "late_ticks": scheduler.late_ticks,
        "cpu_pct_steady": steady_pct,
        "cpu_pct_run": 100 * (cpu1 - cpu0) / (wall1 - wall0),
        "ramp_s": ramp_s,
        "cpu_wait_ms": None if wait0 is None or wait1 is None else (wait1 - wait0) / 1e6,
        "cpu_pressure_pct": (
            None
            if pressure0 is None or pressure1 is None
            else 100 * (pressure1 - pressure0) / 1e6 / (wall1 - wall0)
        ),
        "relay_hook_ns": await measure_relay_hook(),
    }


def _start_receiver(calls: int, max_s: float) -> tuple[subprocess.Popen[bytes], list[int]]:
    args = ["benchmarks.announce_load", "--receiver", "--calls", str(calls), "--seconds", str(max_s)]
    process, ready = start_child(args, "receiver", RECEIVER_START_TIMEOUT_S)
    return process, [int(port) for port in ready["ports"]]


def run(calls: int, seconds: float) -> dict[str, Any]:
    """One run: receiver process, player (this process, uvloop), summary as plain data."""
    _raise_file_limit(calls + 64)
    receiver, ports = _start_receiver(calls, seconds + RUN_SLACK_S + 10)
    try:
        player = uvloop.run(_play(ports, seconds))
        received = finish_child(receiver, "receiver", RECEIVER_FINISH_TIMEOUT_S)
    finally:
        stop_child(receiver)
    first_ms = [
        (arrived - started) / 1e6
        for started, arrived in zip(player["started_ns"], received["first_arrival_ns"], strict=True)
        if started is not None and arrived is not None
    ]
    gaps = received["gaps_ms"]
    first = distribution(first_ms)
    met = (
        gaps["p99"] is not None
        and abs(gaps["p99"] - FRAME_MS) <= GAP_TARGET_MS
        and abs(gaps["p1"] - FRAME_MS) <= GAP_TARGET_MS
        and first["max"] is not None
        and first["max"] < FIRST_PACKET_TARGET_MS
    )
    return {
        "calls": calls,
        "seconds": seconds,
        "ramp_s": player["ramp_s"],
        "frames_sent": player["frames_sent"],
        "frames_played": player["frames_played"],
        "packets_received": received["packets"],
        "calls_heard": received["streams"],
        "sequence_errors": received["sequence_errors"],
        "timestamp_errors": received["timestamp_errors"],
        "ssrc_changes": received["ssrc_changes"],
        "markers": received["markers"],
        "gap_ms": gaps,
        "first_packet_ms": first,
        "player_cpu_pct_steady": player["cpu_pct_steady"],
        "player_cpu_pct_run": player["cpu_pct_run"],
        "ticks": player["ticks"],
        "late_ticks": player["late_ticks"],
        "stalls": player["stalls"],
        "player_cpu_wait_ms": player["cpu_wait_ms"],
        "machine_cpu_pressure_pct": player["cpu_pressure_pct"],
        "relay_hook_ns": player["relay_hook_ns"],
        "receiver_timed_out": received["timed_out"],
        "target_met": met,
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_report(result: dict[str, Any]) -> str:
    gap, first, hook = result["gap_ms"], result["first_packet_ms"], result["relay_hook_ns"]
    steady = result["player_cpu_pct_steady"]
    return "\n".join(
        [
            f"announce_load: {result['calls']} calls for {result['seconds']:g} s "
            f"(started over {result['ramp_s']:g} s), one PlayoutScheduler, uvloop",
            f"packets: sent {result['frames_sent']}, received {result['packets_received']} "
            f"from {result['calls_heard']} calls; sequence errors {result['sequence_errors']}, "
            f"timestamp errors {result['timestamp_errors']}, SSRC changes {result['ssrc_changes']}, "
            f"markers {result['markers']}",
            f"gap between packets at the receiver (ms): p1 {_ms(gap['p1'])}  p50 {_ms(gap['p50'])}  "
            f"p99 {_ms(gap['p99'])}  min {_ms(gap['min'])}  max {_ms(gap['max'])}",
            f"play() to first packet (ms): p50 {_ms(first['p50'])}  p99 {_ms(first['p99'])}  "
            f"max {_ms(first['max'])}",
            f"player CPU, % of one core: {_ms(steady)} steady, "
            f"{_ms(result['player_cpu_pct_run'])} whole run; "
            f"ticks {result['ticks']}, late ticks {result['late_ticks']}, stalls {result['stalls']}",
            f"player waited for a CPU {_ms(result['player_cpu_wait_ms'])} ms in all; machine CPU pressure "
            f"(some) {_ms(result['machine_cpu_pressure_pct'])} % of the run",
            f"relay callback per packet (ns, null transport): sendto alone {hook['sendto']:.0f}, "
            f"unchanged {hook['unchanged']:.0f}, through the player's hook {hook['passthrough']:.0f}, "
            f"renumbered {hook['rewrite']:.0f}",
            f"target (p1/p99 gap within {FRAME_MS:g}±{GAP_TARGET_MS:g} ms, first packet under "
            f"{FIRST_PACKET_TARGET_MS:g} ms): {'met' if result['target_met'] else 'NOT met'}",
        ]
    )


def _environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "uvloop": metadata.version("uvloop"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not (0 < value <= MAX_SECONDS and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"seconds must be in (0, {MAX_SECONDS:g}]")
    return value


def _calls(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 5000:
        raise argparse.ArgumentTypeError("calls must be 1..5000")
    return value


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the benchmark; 0 when it was carried out, 1 when not, 2 on bad usage."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.announce_load", description=__doc__)
    parser.add_argument("--calls", type=_calls, default=DEFAULT_CALLS, help="concurrent announcements")
    parser.add_argument("--seconds", type=_positive_seconds, default=DEFAULT_SECONDS, help="run length")
    parser.add_argument("--json", action="store_true", help="print a JSON document instead of text")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receiver:
        return run_receiver(args.calls, args.seconds)
    out = out or sys.stdout
    try:
        result = run(args.calls, args.seconds)
    except (RuntimeError, OSError, TimeoutError) as error:
        print(f"announce_load: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps({"benchmark": "announce_load", "environment": _environment(), **result}, indent=2),
            file=out,
        )
    else:
        print(format_report(result), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
