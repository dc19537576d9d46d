"""The relay's CPU per packet over real sockets: what renumbering and the recording's tap cost live.

Run as ``python -m benchmarks.relay_packet_cost [--calls 200] [--seconds 4] [--rounds 3] [--json]``.

``benchmarks.recording_cpu`` times the relay's callback on null transports, in a tight loop with
warm caches. Under load the same Python costs more: every packet arrives between two trips
through the kernel and touches another call's objects. This benchmark runs the relay as
``callherald serve`` does, without SIP: N calls, each two ``LegProtocol`` on 127.0.0.1 relaying
into each other on uvloop, and a traffic process (started and stopped by its PID, on the other
CPUs where there are two or more) that plays both parties of every call, 50 PCMU packets a second
each way paced against absolute deadlines, and drains what comes back. The same relay is measured
in four forms, in turn, round after round, so that the machine's drift falls on all of them alike:

- ``unchanged``: packets handed on as heard (a call relayed without an announcement);
- ``renumbered``: both directions renumbered into the leg's stream by the relay
  (``RelayRenumbering``), as after the notice and the agent's beep (RFC 3550 §7);
- ``tapped``: both directions tapped (``LegProtocol.tap``), the lists emptied once a second as the
  recording's flush takes them (the flush's own work is ``benchmarks.recording_cpu``'s);
- ``renumbered and tapped``: a recorded call's per-packet path.

Reported per form, the median over the rounds: the relay process's CPU (% of one core, user and
kernel, ``getrusage``), µs per relayed packet, and the ratio to ``unchanged``; then the packets the
traffic process sent and got back, and how many came back renumbered (a new SSRC) and were tapped,
which shows each form ran as named.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Final, cast

import uvloop

from benchmarks.call_load import cpu_placement
from benchmarks.child_process import finish_child, start_child
from proxy.aio.media import LegProtocol, RelayRenumbering

LOOPBACK: Final = "127.0.0.1"
PACKETS_PER_S: Final = 50
PAYLOAD_BYTES: Final = 160  # 20 ms of PCMU
SEND_SLOTS: Final = 10  # each 20 ms period is cut into slots so that calls do not all send at once
SETTLE_S: Final = 0.5  # after a form is set, before it is measured
WARM_UP_S: Final = 1.0
TRAFFIC_START_TIMEOUT_S: Final = 10.0
TRAFFIC_FINISH_TIMEOUT_S: Final = 10.0
FORMS: Final = ("unchanged", "renumbered", "tapped", "renumbered and tapped")

_HEADER: Final = struct.Struct("!BBHII")
_RENUMBERED_SSRC_MASK: Final = 0x5A5A5A5A  # the relay's stream: the party's SSRC with these bits flipped


# The traffic process ---------------------------------------------------------------------------


def run_traffic(relay_ports: Sequence[int], max_s: float) -> int:
    """Play both parties of every call: party i sends to relay port i and drains what comes back.
    Print the parties' ports as a JSON line, then, when stdin closes or ``max_s`` is over, the
    counts: sent, received, received renumbered (an SSRC other than the one the party sent to)."""
    socks = []
    for _ in relay_ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOOPBACK, 0))
        sock.setblocking(False)
        socks.append(sock)
    print(json.dumps({"ports": [sock.getsockname()[1] for sock in socks]}), flush=True)
    # Party i's SSRC is i + 1; the party across (i ^ 1) hears it relayed.
    payload = bytes([0xFF]) * PAYLOAD_BYTES
    targets = [(LOOPBACK, port) for port in relay_ports]
    readable = select.epoll()
    for sock in socks:
        readable.register(sock.fileno(), select.EPOLLIN)
    party_of_fd = {sock.fileno(): index for index, sock in enumerate(socks)}
    sent = received = renumbered = 0
    started = time.monotonic()
    deadline = started + max_s
    slot_s = 1.0 / PACKETS_PER_S / SEND_SLOTS
    tick = 0
    try:
        while time.monotonic() < deadline:
            slot = tick % SEND_SLOTS
            frame = tick // SEND_SLOTS
            for index in range(slot, len(socks), SEND_SLOTS):
                header = _HEADER.pack(0x80, 0, frame & 0xFFFF, frame * PAYLOAD_BYTES & 0xFFFFFFFF, index + 1)
                try:
                    socks[index].sendto(header + payload, targets[index])
                    sent += 1
                except BlockingIOError:
                    pass
            for fd, _ in readable.poll(0):
                index = party_of_fd[fd]
                sock = socks[index]
                while True:
                    try:
                        data = sock.recv(2048)
                    except BlockingIOError:
                        break
                    received += 1
                    if len(data) >= _HEADER.size and _HEADER.unpack_from(data)[4] != (index ^ 1) + 1:
                        renumbered += 1
            if select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.read(1):
                break  # stdin closed: the relay is done
            tick += 1
            pause = started + tick * slot_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    finally:
        readable.close()
        for sock in socks:
            sock.close()
    print(json.dumps({"sent": sent, "received": received, "renumbered": renumbered}), flush=True)
    return 0


# The relay (this process) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormFigures:
    """One form, the median over the rounds."""

    form: str
    cpu_percent: float
    user_percent: float
    kernel_percent: float
    us_per_packet: float
    packets_per_s: float
    tapped_packets: int  # over all rounds


@dataclass(frozen=True, slots=True)
class Report:
    calls: int
    seconds: float
    rounds: int
    relay_cpus: list[int] | None
    traffic_cpus: list[int] | None
    forms: list[FormFigures]
    sent: int
    received: int
    received_renumbered: int

    def ratio(self, form: str) -> float:
        """CPU per packet of ``form`` against ``unchanged``."""
        by_form = {figures.form: figures for figures in self.forms}
        return by_form[form].us_per_packet / by_form["unchanged"].us_per_packet


class _Relay:
    """N calls' leg pairs on real sockets, switched between the forms."""

    def __init__(self, loop: asyncio.AbstractEventLoop, legs: list[LegProtocol]) -> None:
        self._loop = loop
        self.legs = legs
        self.form = "unchanged"
        self.taps: list[list[bytes | float]] = [[] for _ in legs]
        self.tapped_by_form = dict.fromkeys(FORMS, 0)
        # Towards leg i the relay sends the packets of party i ^ 1, whose SSRC is (i ^ 1) + 1.
        self._renumbering = [
            RelayRenumbering(
                source_ssrc=(index ^ 1) + 1,
                sequence_offset=12_345,
                timestamp_offset=987_654_321,
                ssrc=((index ^ 1) + 1) ^ _RENUMBERED_SSRC_MASK,
            )
            for index in range(len(legs))
        ]
        self._empty_taps_each_second()

    def set_form(self, form: str) -> None:
        self._empty_taps()  # what was tapped so far counts for the form before
        self.form = form
        renumber = form in ("renumbered", "renumbered and tapped")
        tap = form in ("tapped", "renumbered and tapped")
        for leg, renumbering, into in zip(self.legs, self._renumbering, self.taps, strict=True):
            leg.renumber = renumbering if renumber else None
            if tap:
                leg.tap(into, self._loop.time)
            else:
                leg.untap()

    def packets(self) -> int:
        return sum(leg.packets for leg in self.legs)

    def _empty_taps(self) -> None:
        for into in self.taps:
            self.tapped_by_form[self.form] += len(into) // 2  # a packet, then its arrival time
            into.clear()

    def _empty_taps_each_second(self) -> None:
        # As the recording's flush takes what was tapped.
        self._empty_taps()
        self._loop.call_later(1.0, self._empty_taps_each_second)


async def _open_legs(calls: int) -> tuple[list[LegProtocol], list[asyncio.DatagramTransport]]:
    loop = asyncio.get_running_loop()
    legs: list[LegProtocol] = []
    transports: list[asyncio.DatagramTransport] = []
    for _ in range(2 * calls):
        transport, leg = await loop.create_datagram_endpoint(LegProtocol, local_addr=(LOOPBACK, 0))
        legs.append(leg)
        transports.append(transport)
    for index in range(0, len(legs), 2):
        legs[index].other, legs[index + 1].other = legs[index + 1], legs[index]
    return legs, transports


def _start_traffic(
    relay_ports: Sequence[int], max_s: float, cpus: frozenset[int] | None
) -> tuple[subprocess.Popen[bytes], list[int]]:
    args = ["benchmarks.relay_packet_cost", "--traffic", "--max-s", str(max_s)]
    args += ["--relay-ports", ",".join(map(str, relay_ports))]
    if cpus is not None:
        args += ["--cpus", ",".join(map(str, sorted(cpus)))]
    process, ready = start_child(args, "traffic process", TRAFFIC_START_TIMEOUT_S)
    return process, [int(port) for port in ready["ports"]]


Sample = tuple[float, float, float, int]
"""One form in one round: user s, kernel s, elapsed s, packets relayed."""


async def _measure_forms(relay: _Relay, seconds: float, rounds: int) -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = {form: [] for form in FORMS}
    await asyncio.sleep(WARM_UP_S)
    for _ in range(rounds):
        for form in FORMS:
            relay.set_form(form)
            await asyncio.sleep(SETTLE_S)
            before, began, packets = (
                resource.getrusage(resource.RUSAGE_SELF),
                time.monotonic(),
                relay.packets(),
            )
            await asyncio.sleep(seconds)
            after, ended = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
            user, kernel = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
            samples[form].append((user, kernel, ended - began, relay.packets() - packets))
    relay.set_form("unchanged")
    return samples


def _us_per_packet(sample: Sample) -> float:
    user, kernel, _, packets = sample
    return (user + kernel) / max(packets, 1) * 1e6


def form_figures(form: str, samples: Sequence[Sample], tapped: int) -> FormFigures:
    """The round with the median CPU per packet stands for the form."""
    ordered = sorted(samples, key=_us_per_packet)
    median = ordered[(len(ordered) - 1) // 2]
    user, kernel, elapsed, packets = median
    return FormFigures(
        form=form,
        cpu_percent=100 * (user + kernel) / elapsed,
        user_percent=100 * user / elapsed,
        kernel_percent=100 * kernel / elapsed,
        us_per_packet=_us_per_packet(median),
        packets_per_s=packets / elapsed,
        tapped_packets=tapped,
    )


async def _run_relay(calls: int, seconds: float, rounds: int, pin: bool) -> Report:
    relay_cpus, traffic_cpus = cpu_placement(pin)
    if relay_cpus is not None:
        os.sched_setaffinity(0, relay_cpus)
    legs, transports = await _open_legs(calls)
    relay = _Relay(asyncio.get_running_loop(), legs)
    ports = [cast(tuple[str, int], transport.get_extra_info("sockname"))[1] for transport in transports]
    total_s = WARM_UP_S + rounds * len(FORMS) * (SETTLE_S + seconds) + 30
    traffic, party_ports = _start_traffic(ports, total_s, traffic_cpus)
    try:
        for leg, port in zip(legs, party_ports, strict=True):
            leg.set_remote((LOOPBACK, port))
        samples = await _measure_forms(relay, seconds, rounds)
    finally:
        counts = finish_child(traffic, "traffic process", TRAFFIC_FINISH_TIMEOUT_S)
        for transport in transports:
            transport.close()
    return Report(
        calls=calls,
        seconds=seconds,
        rounds=rounds,
        relay_cpus=sorted(relay_cpus) if relay_cpus is not None else None,
        traffic_cpus=sorted(traffic_cpus) if traffic_cpus is not None else None,
        forms=[form_figures(form, samples[form], relay.tapped_by_form[form]) for form in FORMS],
        sent=counts["sent"],
        received=counts["received"],
        received_renumbered=counts["renumbered"],
    )


def measure(calls: int, seconds: float, rounds: int, *, pin: bool = True) -> Report:
    """Run the relay in this process (uvloop) against a traffic process; the CPU placement is
    restored afterwards."""
    _raise_file_limit(4 * calls + 64)
    placement = os.sched_getaffinity(0)
    try:
        return uvloop.run(_run_relay(calls, seconds, rounds, pin))
    finally:
        os.sched_setaffinity(0, placement)


def _raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else min(needed, hard), hard)
        )


def format_report(report: Report) -> str:
    def cpus(numbers: list[int] | None) -> str:
        return ",".join(map(str, numbers or []))

    where = (
        f"relay on CPU {cpus(report.relay_cpus)}, traffic on CPU {cpus(report.traffic_cpus)}"
        if report.relay_cpus is not None
        else "relay and traffic on any CPU"
    )
    lines = [
        f"Relay CPU per packet over real sockets on {LOOPBACK}: {report.calls} calls, "
        f"{PACKETS_PER_S} packets/s each way; {report.rounds} rounds of {report.seconds:g} s per form, "
        f"uvloop; {where}",
        f"{'form':24s} {'packets/s':>9s} {'CPU %':>6s} {'user':>6s} {'kernel':>6s} {'µs/packet':>9s} "
        f"{'x unchanged':>11s} {'tapped':>8s}",
    ]
    for figures in report.forms:
        lines.append(
            f"{figures.form:24s} {figures.packets_per_s:9.0f} {figures.cpu_percent:6.1f} "
            f"{figures.user_percent:6.1f} {figures.kernel_percent:6.1f} {figures.us_per_packet:9.2f} "
            f"{report.ratio(figures.form):10.2f}x {figures.tapped_packets:8d}"
        )
    lost = report.sent - report.received
    lines.append(
        f"traffic: {report.sent} packets sent, {report.received} back ({lost} not back: in flight or lost), "
        f"{report.received_renumbered} of them renumbered"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.relay_packet_cost", description=__doc__)
    parser.add_argument("--calls", type=int, default=200, choices=range(1, 2001), metavar="1-2000")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured per form and round (0.2-60)")
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 21), metavar="1-20")
    parser.add_argument("--no-pin", action="store_true", help="leave relay and traffic on any CPU")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--traffic", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--relay-ports", default="", help=argparse.SUPPRESS)
    parser.add_argument("--max-s", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--cpus", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.traffic:
        if args.cpus:
            os.sched_setaffinity(0, {int(cpu) for cpu in args.cpus.split(",")})
        return run_traffic([int(port) for port in args.relay_ports.split(",")], args.max_s)
    if not 0.2 <= args.seconds <= 60:
        parser.error("--seconds must be between 0.2 and 60")
    report = measure(args.calls, args.seconds, args.rounds, pin=not args.no_pin)
    if args.json:
        print(json.dumps(asdict(report) | {"ratios": {form: report.ratio(form) for form in FORMS}}))
    else:
        print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
