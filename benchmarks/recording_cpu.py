"""CPU of recording one call, in process: the per-packet work and the once-a-second flush.

Run as ``python -m benchmarks.recording_cpu [--calls 200] [--seconds 10]``. No sockets and no
event loop: N ``CallRecording`` objects get 50 PCMU packets a second on each channel (speech:
callherald's bundled notice, each channel from its own point in it, ``benchmarks.speech``; speech
is what makes the DTMF masking look closest), appended by
relay legs tapped into them as in the proxy (``LegProtocol.tap``), and are flushed once per
simulated second into a handle that only counts bytes, together in slots of N/20 as
``FlushSlots`` groups them (``flush_together``). Printed per recording-second of audio: the tap
(a tapped leg's callback less an untapped one's, for the same second of packets, the least of
five tries of each), the flush (feed, drain, DTMF masking, hand-over) of the seconds after the
first, what a call pays for as long as it lasts, and the DTMF masking alone in them; then a
recording's first flush, once per call (each channel's new stream looked at packet by packet
before its packets can be taken in bulk); then the relay's callback for a
steady source after a notice (``LegProtocol.datagram_received``, the packets renumbered into the
leg's stream) per packet against the same callback handing a packet on unchanged, measured in the
same run. ``benchmarks.call_load`` measures the whole proxy under load; this isolates the
recording's own Python and numpy work.

Flushed back to back, the slots find the flush's code and data in the CPU's caches. In the proxy
the relay handles 50 ms of packets between two slots, which pushes some of them out. So the run
is made a second time with the caches emptied before every slot (``EVICTION_BYTES`` written, not
timed), and that flush is printed too: the proxy's flush costs between the two figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `callherald serve` runs (callherald/__init__.py)

import numpy as np
import numpy.typing as npt

from benchmarks.speech import speech_ulaw
from callherald.heap import keep_freed_memory
from proxy.aio.media import LegProtocol
from proxy.aio.playout import AnnouncementPlayer, PlayoutScheduler
from proxy.aio.recording import FLUSH_GRID_S, CallRecording, MediaQuality, flush_together
from proxy.b2bua.effects import MediaLeg
from proxy.b2bua.settings import Address
from proxy.rtp.masking import mask_dtmf_many

__all__ = ["Figures", "main", "measure"]

PACKETS_PER_S = 50
PAYLOAD_BYTES = 160
EVICTION_BYTES = 64 * 1024 * 1024
"""Written before each slot of the cold run: more than the caches of the CPU (its last level included)."""
_HEADER = struct.Struct("!BBHII")
_PEER: Address = ("127.0.0.1", 40000)
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    calls: int
    seconds: int
    tap_us: float  # per recording-second, both channels
    flush_us: float  # the seconds after the first
    masking_us: float
    first_flush_us: float  # per recording, once
    relay_renumber_us: float  # per packet
    relay_unchanged_us: float

    def core_percent(self, microseconds: float) -> float:
        """What ``microseconds`` per recording-second costs at ``calls`` recordings, in % of a core."""
        return microseconds * self.calls / 1e4


class _VirtualLoop:
    """The two clock methods a ``CallRecording`` uses, on simulated time."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


class _CountingHandle:
    def __init__(self) -> None:
        self.blocks: list[bytes] = []

    def write(self, pcm: bytes) -> None:
        self.blocks.append(pcm)

    def pause(self, reason: str, at: float) -> None: ...

    def resume(self, reason: str, at: float) -> None: ...

    def close(self, *, at: float, reason: str, media_quality: MediaQuality) -> None: ...


class _NullTransport(asyncio.DatagramTransport):
    def sendto(self, data: bytes | bytearray | memoryview, addr: object = None) -> None: ...


def _each(action: Callable[[T], object], items: Sequence[T]) -> Callable[[], None]:
    def run() -> None:
        for item in items:
            action(item)

    return run


def _cpu(work: Callable[[], object]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def _slots_cpu(
    work: Callable[[T], object], slots: Sequence[T], evictor: npt.NDArray[np.float64] | None
) -> float:
    """The CPU ``work`` took over all ``slots``, one call each; with an ``evictor``, each call
    comes after writing all of it (not timed), so that it finds nothing in the caches."""
    if evictor is None:
        return _cpu(_each(work, slots))
    spent = 0.0
    for slot in slots:
        evictor += 1.0
        spent += _cpu(partial(work, slot))
    return spent


def _least_cpu(work: Callable[[], None], scratch: Sequence[list[bytes | float]], tries: int = 5) -> float:
    """The least CPU ``work`` took in ``tries`` runs, ``scratch`` emptied before each."""
    least = float("inf")
    for _ in range(tries):
        for into in scratch:
            into.clear()
        least = min(least, _cpu(work))
    return least


def measure(calls: int, seconds: int, *, cold_caches: bool = False) -> Figures:
    """The figures of one run; with ``cold_caches`` the caches are emptied before every flush slot."""
    rng = np.random.default_rng(1)
    loop = _VirtualLoop()
    handles = [_CountingHandle() for _ in range(calls)]
    recordings = [
        CallRecording(handle, outside_leg=MediaLeg.A, media=None, loop=loop)  # type: ignore[arg-type]
        for handle in handles
    ]
    # As `FlushSlots` spreads them: the recordings of one 50 ms slot are flushed together.
    per_slot = round(FLUSH_GRID_S * len(recordings)) or 1
    slots = [recordings[k : k + per_slot] for k in range(0, len(recordings), per_slot)]
    # The relay's side of the tap: a leg (its other leg not yet there) appending what it hears.
    legs = [LegProtocol() for _ in range(2 * len(recordings))]
    for recording, pair in zip(recordings, zip(legs[0::2], legs[1::2], strict=True), strict=True):
        for leg, side in zip(pair, (MediaLeg.A, MediaLeg.B), strict=True):
            leg.tap(recording.tapped(side), loop.time)
    # The tap is timed on legs of its own (tapped into scratch lists, against untapped legs), a
    # second's packets at a time, the least of a few tries: a single preemption must not decide it.
    scratch: list[list[bytes | float]] = [[] for _ in legs]
    timed = [LegProtocol() for _ in legs]
    for leg, into in zip(timed, scratch, strict=True):
        leg.tap(into, loop.time)
    untapped = [LegProtocol() for _ in legs]
    streams = [
        [int(rng.integers(1 << 16)), int(rng.integers(1 << 32)), int(rng.integers(1 << 32))] for _ in legs
    ]
    speech = speech_ulaw()
    frames = len(speech) // PAYLOAD_BYTES
    # Each leg's party talks from its own point in the speech, 20 ms a packet.
    positions = [int(rng.integers(frames)) for _ in legs]
    tap_s = flush_s = masking_s = first_flush_s = 0.0
    evictor = np.zeros(EVICTION_BYTES // 8) if cold_caches else None
    for second in range(seconds):
        heard: list[bytes] = []
        for tick in range(PACKETS_PER_S):
            loop.now = second + tick / PACKETS_PER_S
            packets = []
            for index, stream in enumerate(streams):
                at = (positions[index] + second * PACKETS_PER_S + tick) % frames * PAYLOAD_BYTES
                payload = speech[at : at + PAYLOAD_BYTES]
                packets.append(_HEADER.pack(0x80, 0, stream[0], stream[1], stream[2]) + payload)
                stream[0] = (stream[0] + 1) & 0xFFFF
                stream[1] = (stream[1] + PAYLOAD_BYTES) & 0xFFFFFFFF
            _each(_hear, list(zip(legs, packets, strict=True)))()
            heard += packets
        tap_s += _least_cpu(_each(_hear, list(zip(timed * PACKETS_PER_S, heard, strict=True))), scratch)
        tap_s -= _least_cpu(_each(_hear, list(zip(untapped * PACKETS_PER_S, heard, strict=True))), scratch)
        loop.now = second + 1.0
        flushed = _slots_cpu(flush_together, slots, evictor)
        if second == 0:
            first_flush_s = flushed
            continue
        flush_s += flushed
        # The masking again, on copies of the blocks just written, slot by slot as in the flush.
        blocks = [np.frombuffer(h.blocks[-1], dtype="<i2").reshape(-1, 2).copy() for h in handles if h.blocks]
        batches = [
            [(block, 8000) for block in blocks[k : k + per_slot]] for k in range(0, len(blocks), per_slot)
        ]
        masking_s += _slots_cpu(mask_dtmf_many, batches, evictor)
    renumber, unchanged = asyncio.run(_relay_costs())
    scale, steady_scale = 1e6 / (calls * seconds), 1e6 / (calls * (seconds - 1))
    return Figures(
        calls=calls,
        seconds=seconds,
        tap_us=tap_s * scale,
        flush_us=flush_s * steady_scale,
        masking_us=masking_s * steady_scale,
        first_flush_us=first_flush_s * 1e6 / calls,
        relay_renumber_us=renumber,
        relay_unchanged_us=unchanged,
    )


def _hear(leg_and_packet: tuple[LegProtocol, bytes]) -> None:
    leg_and_packet[0].datagram_received(leg_and_packet[1], _PEER)


def _leg_pair() -> tuple[LegProtocol, LegProtocol]:
    # Two relay legs on null transports: packets from the source leg's peer go to the other's.
    source, towards = LegProtocol(), LegProtocol()
    source.other, towards.other = towards, source
    for leg, port in ((source, 40000), (towards, 40002)):
        leg.connection_made(_NullTransport())
        leg.set_remote(("127.0.0.1", port))
    return source, towards


async def _relay_costs(count: int = 200_000) -> tuple[float, float]:
    # The relay's callback for a steady source: towards a leg whose player played a prompt (the
    # packets renumbered into its stream), and towards a leg without one (handed on unchanged).
    source, towards = _leg_pair()
    player = AnnouncementPlayer(towards, PlayoutScheduler())
    towards.outbound = player.relay
    await player.play([b"\xff" * PAYLOAD_BYTES] * 2, payload_type=0, clock_rate=8000, samples_per_frame=160)
    packets = [
        _HEADER.pack(0x80, 0, k & 0xFFFF, k * 160 & 0xFFFFFFFF, 777) + b"\xff" * PAYLOAD_BYTES
        for k in range(count)
    ]
    peer: Address = ("127.0.0.1", 40000)
    renumber_s = _cpu(_each(lambda packet: source.datagram_received(packet, peer), packets))
    plain_source, _ = _leg_pair()
    unchanged_s = _cpu(_each(lambda packet: plain_source.datagram_received(packet, peer), packets))
    return renumber_s / count * 1e6, unchanged_s / count * 1e6


def format_report(figures: Figures, cold: Figures | None = None) -> str:
    """The report of a run, with the flush of a run on cold caches (``cold_caches``) if given."""
    per = f"per recording-second, {figures.calls} recordings over {figures.seconds} s"
    rows = [
        ("per-packet tap in the relay (100 packets)", figures.tap_us),
        ("flush (feed, drain, DTMF masking, hand-over)", figures.flush_us),
        ("  of which the DTMF masking", figures.masking_us),
    ]
    if cold is not None:
        rows += [
            ("the same flush, the caches emptied before each slot", cold.flush_us),
            ("  of which the DTMF masking", cold.masking_us),
        ]
    lines = [f"Recording CPU in process ({per}); % of one core at {figures.calls} calls"]
    lines += [f"  {name:55s} {us:8.1f} µs  {figures.core_percent(us):6.2f} %" for name, us in rows]
    lines.append(
        f"  a recording's first flush, once per call (new streams)  {figures.first_flush_us:8.1f} µs"
    )
    relay_extra = (figures.relay_renumber_us - figures.relay_unchanged_us) * 2 * PACKETS_PER_S
    lines += [
        "Relay after a notice, per packet:",
        f"  renumbered into the leg's stream {figures.relay_renumber_us:6.3f} µs, handed on unchanged "
        f"{figures.relay_unchanged_us:6.3f} µs; both directions of a call: {relay_extra:6.1f} µs per "
        f"second ({figures.core_percent(relay_extra):.2f} % of a core at {figures.calls} calls)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recording_cpu", description=__doc__)
    parser.add_argument("--calls", type=int, default=200, choices=range(1, 2001), metavar="1-2000")
    parser.add_argument("--seconds", type=int, default=10, choices=range(2, 121), metavar="2-120")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as `callherald serve` runs
    warm = measure(args.calls, args.seconds)
    print(format_report(warm, measure(args.calls, args.seconds, cold_caches=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
