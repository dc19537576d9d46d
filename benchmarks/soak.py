"""Waves of recorded calls through one running callherald: does its memory, or anything else, grow?

Run as ``python -m benchmarks.soak [--waves 3] [--calls 300] [--concurrent 100] [--hold-s 10]
[--json] [--workdir DIR]``. Everything runs on 127.0.0.1, with ports from one block checked free beforehand.

One ``callherald serve`` runs on the ``recorded`` configuration of ``benchmarks.call_load`` (a
0.3 s notice to the carrier side, one contract purpose, every call recorded, DTMF-masked and
sealed). A SIPp UAS answers as the carrier and echoes the audio (``-rtp_echo``). Each wave, a SIPp
UAC (the PBX) places ``--calls`` calls, at most ``--concurrent`` at a time, each streaming speech
(callherald's bundled notice, looped) for ``--hold-s`` seconds before it hangs up. After a wave,
once callherald has closed every call's sockets, its resident memory (``VmRSS``), open file
descriptors and threads are read.

Reported: the figures before the first wave and after each, the calls that succeeded, and the
memory gained per call from the end of the first wave to the end of the last. The first wave
brings the allocators and caches up to what the load needs; they may settle in further steps of
a megabyte or two over the next waves, while a leak grows wave after wave. At the end callherald
is stopped (SIGTERM) and its evidence database read: every call should have left one complete
recording. Each wave is bounded in time, and every process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from benchmarks.call_load import (
    DATA_DIR,
    DIALLED,
    LOOPBACK,
    NOTICE_FILE,
    NOTICE_S,
    SCENARIOS,
    BenchmarkError,
    PortPlan,
    Processes,
    RecordingTally,
    SippStats,
    callherald_yaml,
    find_port_plan,
    open_fds,
    read_recordings,
    read_sipp_stats,
    rss_kib,
    sipp_command,
    start_callherald,
    start_echo_uas,
    wait_until,
    write_notice_wav,
)
from benchmarks.speech import speech_ulaw

__all__ = [
    "SoakResult",
    "WaveResult",
    "call_rate",
    "format_report",
    "growth_per_call_kib",
    "main",
    "run_soak",
]

UAC_SCENARIO: Final = SCENARIOS / "soak_uac.xml"
SPEECH_FILE: Final = "speech.ulaw"  # the UAC scenario streams it, from SIPp's working directory
WAVE_SLACK_S: Final = 60.0  # beyond the wave's planned length: set-up, notices, teardown
IDLE_TIMEOUT_S: Final = 30.0  # for callherald to close every call's sockets after a wave
SETTLE_S: Final = 1.5  # callherald settles this long before a reading
SIPP_RECV_TIMEOUT_MS: Final = 10_000
CALL_OVERHEAD_S: Final = NOTICE_S + 1.0  # set-up, notice and beep before a call's hold


@dataclass(frozen=True, slots=True, kw_only=True)
class WaveResult:
    """One wave: calls placed and how they ended (SIPp's count), then callherald's figures once idle."""

    wave: int
    placed: int
    successful: int
    failed: int
    rss_kib: int | None
    fds: int | None
    threads: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SoakResult:
    """The whole soak: callherald before the first wave, each wave, what its database holds."""

    calls_per_wave: int
    concurrent: int
    hold_s: float
    rate_cps: int
    rss_kib_before: int | None
    fds_before: int | None
    threads_before: int | None
    waves: tuple[WaveResult, ...]
    recordings: RecordingTally | None
    error: str | None = None


def call_rate(concurrent: int, hold_s: float) -> int:
    """Calls per second that keep about ``concurrent`` calls up, each lasting ``hold_s`` and its set-up."""
    return max(1, math.ceil(concurrent / (hold_s + CALL_OVERHEAD_S)))


def growth_per_call_kib(waves: Sequence[WaveResult]) -> float | None:
    """Resident memory gained per call from the end of the first wave to the end of the last;
    None with fewer than two waves or a reading missing."""
    if len(waves) < 2:
        return None
    first, last = waves[0].rss_kib, waves[-1].rss_kib
    calls = sum(wave.placed for wave in waves[1:])
    if first is None or last is None or calls == 0:
        return None
    return (last - first) / calls


def _sockets(pid: int) -> int | None:
    # The process's open sockets: its listeners, and 4 RTP sockets per call while a call lasts.
    try:
        links = [os.readlink(entry) for entry in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return None
    return sum(link.startswith("socket:") for link in links)


def _threads(pid: int) -> int | None:
    try:
        return len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:
        return None


def run_soak(waves: int, calls: int, concurrent: int, hold_s: float, workdir: Path) -> SoakResult:
    """Run the soak in ``workdir`` (see the module docstring); bounded in time, processes stopped."""
    rate = call_rate(concurrent, hold_s)
    wave_limit_s = calls / rate + hold_s + CALL_OVERHEAD_S + WAVE_SLACK_S
    config = workdir / "callherald.yaml"
    write_notice_wav(workdir / NOTICE_FILE)
    (workdir / SPEECH_FILE).write_bytes(speech_ulaw())
    processes = Processes(workdir)
    done: list[WaveResult] = []
    before: tuple[int | None, int | None, int | None] = (None, None, None)
    recordings: RecordingTally | None = None
    error: str | None = None
    try:
        plan = find_port_plan(concurrent)
        config.write_text(callherald_yaml(plan, concurrent, "recorded"), encoding="utf-8")
        callherald = start_callherald(processes, config, concurrent)
        time.sleep(SETTLE_S)
        pid = callherald.pid
        before = (rss_kib(pid), open_fds(pid), _threads(pid))
        listening = _sockets(pid)
        start_echo_uas(processes, plan, concurrent, waves * wave_limit_s + WAVE_SLACK_S)
        for wave in range(1, waves + 1):
            stats = _place_calls(
                wave, calls, concurrent, hold_s, rate, wave_limit_s, plan, workdir, processes
            )
            if callherald.poll() is not None:
                raise BenchmarkError(f"callherald exited during wave {wave}")
            wait_until(
                lambda: _sockets(pid) == listening,
                IDLE_TIMEOUT_S,
                f"callherald kept call sockets open after wave {wave}",
            )
            time.sleep(SETTLE_S)
            done.append(
                WaveResult(
                    wave=wave,
                    placed=stats.created,
                    successful=stats.successful,
                    failed=stats.failed,
                    rss_kib=rss_kib(pid),
                    fds=open_fds(pid),
                    threads=_threads(pid),
                )
            )
        stopped = Processes.stop(callherald)
        if stopped != 0:
            raise BenchmarkError(f"callherald exited with {stopped} when stopped (SIGTERM)")
        recordings = read_recordings(workdir / DATA_DIR / "evidence.sqlite")
    except BenchmarkError as failure:
        error = str(failure)
    finally:
        processes.stop_all()
    return SoakResult(
        calls_per_wave=calls,
        concurrent=concurrent,
        hold_s=hold_s,
        rate_cps=rate,
        rss_kib_before=before[0],
        fds_before=before[1],
        threads_before=before[2],
        waves=tuple(done),
        recordings=recordings,
        error=error,
    )


def _place_calls(
    wave: int,
    calls: int,
    concurrent: int,
    hold_s: float,
    rate: int,
    limit_s: float,
    plan: PortPlan,
    workdir: Path,
    processes: Processes,
) -> SippStats:
    # One wave: the SIPp UAC places its calls and ends; what its statistics say of them.
    name = f"uac-{wave}"
    stats_file = workdir / f"{name}-stats.csv"
    uac = processes.start(
        name,
        [
            *sipp_command(UAC_SCENARIO, plan.uac_sip, plan.uac_control, plan.uac_media, workdir, name),
            f"{LOOPBACK}:{plan.callherald_pbx}",
            "-s",
            DIALLED,
            "-d",
            str(round(hold_s * 1000)),
            "-r",
            str(rate),
            "-l",
            str(concurrent),
            "-m",
            str(calls),
            "-recv_timeout",
            str(SIPP_RECV_TIMEOUT_MS),
            "-timeout",
            f"{math.ceil(limit_s)}s",
            "-trace_stat",
            "-stf",
            str(stats_file),
            "-fd",
            "1",
        ],
    )
    try:
        uac.wait(timeout=limit_s + WAVE_SLACK_S)
    except subprocess.TimeoutExpired:
        Processes.stop(uac)
        raise BenchmarkError(f"wave {wave}: the SIPp UAC did not finish") from None
    try:
        return read_sipp_stats(stats_file.read_text(encoding="ascii", errors="replace"))
    except (OSError, ValueError) as failure:
        raise BenchmarkError(f"wave {wave}: no SIPp statistics ({failure})") from None


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


_WIDTHS: Final = (10, 9, 7, 16, 11, 8)


def _row(*cells: object) -> str:
    label, *figures = [_cell(cell) for cell in cells]
    return "  " + " ".join(
        [f"{label:{_WIDTHS[0]}s}"] + [f"{f:>{w}s}" for f, w in zip(figures, _WIDTHS[1:], strict=True)]
    )


def _memory(kib: int | None) -> str | None:
    return None if kib is None else f"{kib:,} KiB"


def format_report(result: SoakResult) -> str:
    """The soak as a readable table."""
    lines = [
        f"Soak: {len(result.waves)} waves of {result.calls_per_wave} recorded calls through one callherald "
        f"(at most {result.concurrent} at a time, {result.rate_cps} per second, {result.hold_s:g} s each)",
        _row("", "calls ok", "failed", "resident memory", "open files", "threads"),
        _row("before", "", "", _memory(result.rss_kib_before), result.fds_before, result.threads_before),
    ]
    lines += [
        _row(f"wave {wave.wave}", wave.successful, wave.failed, _memory(wave.rss_kib), wave.fds, wave.threads)
        for wave in result.waves
    ]
    growth = growth_per_call_kib(result.waves)
    if growth is not None:
        lines.append(f"  resident memory gained after the first wave: {growth:.2f} KiB per call")
    if result.recordings is not None:
        tally = result.recordings
        calls = sum(wave.successful for wave in result.waves)
        lines.append(
            f"  recordings: {tally.complete} complete of {tally.recordings} "
            f"({tally.complete_s:,.0f} s of audio) for {calls} calls"
        )
    if result.error is not None:
        lines.append(f"  error: {result.error}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--waves", type=int, default=3, choices=range(2, 21), metavar="2-20")
    parser.add_argument("--calls", type=int, default=300, choices=range(1, 10_001), metavar="1-10000")
    parser.add_argument("--concurrent", type=int, default=100, choices=range(1, 401), metavar="1-400")
    parser.add_argument("--hold-s", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--workdir", help="keep the run's files here (a temporary directory otherwise)")
    args = parser.parse_args(argv)
    if not 1.0 <= args.hold_s <= 600.0:
        parser.error("--hold-s must be between 1 and 600 seconds")
    with tempfile.TemporaryDirectory(prefix="callherald-soak-") as scratch:
        workdir = Path(args.workdir) if args.workdir else Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        result = run_soak(args.waves, args.calls, args.concurrent, args.hold_s, workdir)
    print(json.dumps(asdict(result), indent=2) if args.json else format_report(result))
    return 0 if result.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
