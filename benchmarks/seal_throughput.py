"""What sealing and writing call recordings costs, measured on the storage layer alone.

Run as ``python -m benchmarks.seal_throughput [--seconds 5] [--recordings 50] [--json]``.

The setting is the one ``callherald.evidence`` drives: 8 kHz stereo s16le audio in one-second
segments of 32,000 bytes, each sealed and appended by ``storage.segments.SegmentWriter`` (fsync
policy ``on_close``), the wrapped data keys kept in the SQLite key store
(``storage.sqlite_keys.SqliteKeyStore`` over ``storage.records.EvidenceStore``), one recipient
X25519 key, everything in a temporary directory (removed afterwards), one writer thread. Reported:

1. Seal + write: 32,000-byte segments written back to back into one recording for ``--seconds`` of
   wall time (fewer if the file would outgrow ``MAX_RECORDING_BYTES`` or a quarter of the free
   space), as MB/s of audio (MB = 10^6 bytes) in CPU time (``time.thread_time``, with the kernel's
   share from ``getrusage``) and wall time; then the AEAD seal alone (``SegmentSealer.seal``, no
   framing, no file) for comparison.
2. Opening a recording (data key, HPKE wrap, key-store row, file create, header, fsyncs) and closing
   it (final segment, fsync), median over ``--recordings`` recordings. Each holds
   ``DIRTY_TAIL_SECONDS`` of audio when closed: the kernel writes dirty pages back after about 30 s
   (``vm.dirty_expire_centisecs``), so that is about what the close of a long call has to flush.
   CPU time here is the whole process's (``time.process_time``): the key-store row is written on
   the evidence store's own writer thread.
3. How many concurrent recordings one core keeps up with: each needs one segment a second plus its
   share of one open and one close over a call of ``CALL_SECONDS``. Also the same figure in wall time
   for one thread doing all of it, fsync waits included, as callherald's single file thread does.
4. A sanity check, not timed: the last recording of (2) is read back with ``SegmentReader`` and its
   audio and file hash compared with what was written.

Not included: RTP reception, the event loop, mixing, callherald's SHA-256 of the plaintext, and the
disk itself beyond the fsyncs (the writes land in the page cache; the disk must absorb
32,000 bytes per second per recording in the long run).

Exit status: 0 when the read-back matched, 1 when it did not, 2 on usage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from cryptography.hazmat.backends.openssl import backend as openssl_backend
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from storage.crypto import TAG_BYTES, SegmentSealer, new_data_key, wrap_data_key
from storage.keys import generate_private_key
from storage.records import EvidenceStore
from storage.segments import (
    HEADER_BYTES,
    RECORD_HEADER_BYTES,
    AudioFormat,
    FsyncPolicy,
    RecordingHeader,
    RecordingSummary,
    SegmentReader,
    SegmentWriter,
)
from storage.sqlite_keys import SqliteKeyStore

__all__ = [
    "AUDIO_FORMAT",
    "CALL_SECONDS",
    "DEFAULT_RECORDINGS",
    "DEFAULT_SECONDS",
    "DIRTY_TAIL_SECONDS",
    "FSYNC",
    "MAX_RECORDING_BYTES",
    "SEGMENT_BYTES",
    "SEGMENT_MS",
    "BenchmarkReport",
    "Capacity",
    "LifecycleCost",
    "ReadBack",
    "Throughput",
    "format_report",
    "main",
    "report_json",
    "run_benchmark",
]

AUDIO_FORMAT = AudioFormat(codec="pcm_s16le", sample_rate_hz=8000, channels=2, sample_width_bytes=2)
SEGMENT_MS = 1000
SEGMENT_BYTES = AUDIO_FORMAT.bytes_per_second * SEGMENT_MS // 1000  # 32,000
FSYNC = FsyncPolicy.ON_CLOSE
CALL_SECONDS = 180
DIRTY_TAIL_SECONDS = 30
DEFAULT_SECONDS = 5.0
DEFAULT_RECORDINGS = 50
MAX_SECONDS = 120.0
MAX_RECORDINGS = 10_000
MAX_RECORDING_BYTES = 4 * 1024**3
FREE_SPACE_SHARE = 4  # the throughput recording uses at most a quarter of the free space
MAX_SEAL_ONLY_SEGMENTS = 20_000_000
RECORDINGS_TIME_LIMIT_S = 120.0
WARM_UP_SEGMENTS = 20
RECORD_BYTES = RECORD_HEADER_BYTES + SEGMENT_BYTES + TAG_BYTES
SEED = 20_240_601
_MB = 1_000_000


# --------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True, kw_only=True)
class Throughput:
    """Segments of ``SEGMENT_BYTES`` handled back to back on one thread."""

    segments: int
    wall_s: float
    cpu_s: float
    kernel_cpu_s: float
    """The part of ``cpu_s`` spent in the kernel (``pwrite``, page cache), from ``getrusage``."""
    stopped_by: str
    """``time`` (the budget ran out) or ``size`` (the file reached its byte budget)."""

    @property
    def audio_bytes(self) -> int:
        return self.segments * SEGMENT_BYTES

    @property
    def mb_per_s_cpu(self) -> float:
        return self.audio_bytes / self.cpu_s / _MB

    @property
    def mb_per_s_wall(self) -> float:
        return self.audio_bytes / self.wall_s / _MB

    @property
    def us_per_segment_cpu(self) -> float:
        return self.cpu_s / self.segments * 1e6

    @property
    def us_per_segment_wall(self) -> float:
        return self.wall_s / self.segments * 1e6

    @property
    def us_per_segment_kernel(self) -> float:
        return self.kernel_cpu_s / self.segments * 1e6


@dataclass(frozen=True, slots=True, kw_only=True)
class LifecycleCost:
    """Medians over ``recordings`` recordings of opening and closing one, in milliseconds."""

    recordings: int
    stopped_by: str
    """``count`` (all asked for were done) or ``time`` (``RECORDINGS_TIME_LIMIT_S`` ran out)."""
    open_wall_ms: float
    open_cpu_ms: float
    wrap_ms: float
    """Data key, header and HPKE wrap alone (wall; pure CPU work on the calling thread)."""
    key_store_put_ms: float
    """One ``SqliteKeyStore.put`` alone (wall, waiting for the evidence writer thread)."""
    close_wall_ms: float
    close_cpu_ms: float

    @property
    def file_create_ms(self) -> float:
        """What opening costs beyond wrap and key-store row: file create, header, two fsyncs."""
        return max(0.0, self.open_wall_ms - self.wrap_ms - self.key_store_put_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class Capacity:
    """Concurrent recordings of ``call_seconds`` each that one core (or one thread) keeps up with."""

    call_seconds: int
    cpu_s_per_call_second: float
    wall_s_per_call_second: float

    @property
    def recordings_per_core(self) -> float:
        return 1 / self.cpu_s_per_call_second

    @property
    def recordings_per_file_thread(self) -> float:
        return 1 / self.wall_s_per_call_second

    @property
    def disk_mb_per_s_at_core_limit(self) -> float:
        return self.recordings_per_core * RECORD_BYTES / _MB


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadBack:
    """The sanity check: one recording read back with the private key."""

    segments: int
    audio_bytes: int
    complete: bool
    audio_matches: bool
    file_sha256_matches: bool

    @property
    def ok(self) -> bool:
        return self.complete and self.audio_matches and self.file_sha256_matches


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchmarkReport:
    seconds: float
    recordings_asked: int
    filesystem: str
    seal_write: Throughput
    throughput_close_ms: float
    """Closing the throughput recording: final segment and the fsync of everything written."""
    seal_only: Throughput
    lifecycle: LifecycleCost
    capacity: Capacity
    read_back: ReadBack


# --------------------------------------------------------------------------------------------------
# Measurements


def _filesystem_type(path: Path) -> str:
    """The type of the file system holding ``path`` (from /proc/self/mounts), or ``unknown``."""
    try:
        lines = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "unknown"
    resolved = str(path.resolve())
    best_mount, best_type = "", "unknown"
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best_mount):
            best_mount, best_type = mount, fields[2]
    return best_type


def _thread_kernel_s() -> float:
    """System CPU time of the calling thread so far (Linux ``RUSAGE_THREAD``; the process's elsewhere)."""
    who = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
    return resource.getrusage(who).ru_stime


def _open_writer(
    path: Path, recipient: X25519PrivateKey, key_store: SqliteKeyStore, recording_id: uuid.UUID
) -> SegmentWriter:
    """A writer exactly as ``callherald.evidence`` opens one."""
    return SegmentWriter(
        path,
        recording_id=recording_id,
        recipients=[recipient.public_key()],
        audio_format=AUDIO_FORMAT,
        key_store=key_store,
        segment_duration_ms=SEGMENT_MS,
        fsync=FSYNC,
    )


def _segment_budget(directory: Path) -> int:
    free = shutil.disk_usage(directory).free
    budget = min(MAX_RECORDING_BYTES, free // FREE_SPACE_SHARE) - HEADER_BYTES
    return max(0, budget // RECORD_BYTES - WARM_UP_SEGMENTS - 1)


def measure_seal_write(
    directory: Path, recipient: X25519PrivateKey, key_store: SqliteKeyStore, seconds: float
) -> tuple[Throughput, float]:
    """Write segments back to back into one recording for ``seconds``; also time its close (ms)."""
    max_segments = _segment_budget(directory)
    if max_segments < 1:
        raise OSError(f"not enough free space in the working directory for {RECORD_BYTES} bytes")
    pcm = random.Random(SEED).randbytes(SEGMENT_BYTES)
    path = directory / "throughput.chr"
    writer = _open_writer(path, recipient, key_store, uuid.uuid4())
    try:
        for _ in range(WARM_UP_SEGMENTS):
            writer.write_segment(pcm)
        segments = 0
        kernel_start = _thread_kernel_s()
        cpu_start = time.thread_time()
        wall_start = time.perf_counter()
        deadline = wall_start + seconds
        while segments < max_segments and (segments == 0 or time.perf_counter() < deadline):
            writer.write_segment(pcm)
            segments += 1
        wall_s = time.perf_counter() - wall_start
        cpu_s = time.thread_time() - cpu_start
        kernel_cpu_s = _thread_kernel_s() - kernel_start
        close_start = time.perf_counter()
        writer.close(final=True)
        close_ms = (time.perf_counter() - close_start) * 1000
    finally:
        writer.close(final=False)  # a no-op after a successful close
        path.unlink(missing_ok=True)
    stopped_by = "size" if segments >= max_segments else "time"
    throughput = Throughput(
        segments=segments, wall_s=wall_s, cpu_s=cpu_s, kernel_cpu_s=kernel_cpu_s, stopped_by=stopped_by
    )
    return throughput, close_ms


def measure_seal_only(seconds: float) -> Throughput:
    """``SegmentSealer.seal`` of one segment, back to back, with an AAD of the writer's size."""
    pcm = random.Random(SEED).randbytes(SEGMENT_BYTES)
    sealer = SegmentSealer(new_data_key())
    aad = bytes(32 + RECORD_HEADER_BYTES - 4)  # header hash + record header without its CRC
    for counter in range(WARM_UP_SEGMENTS):
        sealer.seal(counter, pcm, aad)
    counter = WARM_UP_SEGMENTS
    segments = 0
    kernel_start = _thread_kernel_s()
    cpu_start = time.thread_time()
    wall_start = time.perf_counter()
    deadline = wall_start + seconds
    while segments < MAX_SEAL_ONLY_SEGMENTS and (segments == 0 or time.perf_counter() < deadline):
        sealer.seal(counter, pcm, aad)
        counter += 1
        segments += 1
    wall_s = time.perf_counter() - wall_start
    cpu_s = time.thread_time() - cpu_start
    kernel_cpu_s = _thread_kernel_s() - kernel_start
    stopped_by = "size" if segments >= MAX_SEAL_ONLY_SEGMENTS else "time"
    return Throughput(
        segments=segments, wall_s=wall_s, cpu_s=cpu_s, kernel_cpu_s=kernel_cpu_s, stopped_by=stopped_by
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _LastRecording:
    path: Path
    summary: RecordingSummary
    audio: bytes


def measure_lifecycle(
    directory: Path, recipient: X25519PrivateKey, key_store: SqliteKeyStore, recordings: int
) -> tuple[LifecycleCost, _LastRecording]:
    """Open, fill with ``DIRTY_TAIL_SECONDS`` of audio and close ``recordings`` recordings."""
    rng = random.Random(SEED + 1)
    blocks = [rng.randbytes(SEGMENT_BYTES) for _ in range(DIRTY_TAIL_SECONDS)]
    samples: dict[str, list[float]] = {
        name: [] for name in ("open_wall", "open_cpu", "wrap", "put", "close_wall", "close_cpu")
    }
    last: _LastRecording | None = None
    stopped_by = "count"
    deadline = time.perf_counter() + RECORDINGS_TIME_LIMIT_S
    for index in range(recordings + 1):  # the first one warms up and is not counted
        if index > 1 and time.perf_counter() > deadline:
            stopped_by = "time"
            break
        # the parts on their own, for a second recording id that gets no file
        spare_id = uuid.uuid4()
        start = time.perf_counter()
        header = RecordingHeader(
            recording_id=spare_id, audio_format=AUDIO_FORMAT, segment_duration_ms=SEGMENT_MS
        ).encode()
        wrapped = wrap_data_key(new_data_key(), recipient.public_key(), recording_id=spare_id, header=header)
        wrap_s = time.perf_counter() - start
        start = time.perf_counter()
        key_store.put(spare_id, [wrapped])
        put_s = time.perf_counter() - start

        path = directory / f"recording-{index:05d}.chr"
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        writer = _open_writer(path, recipient, key_store, uuid.uuid4())
        open_wall, open_cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
        try:
            for block in blocks:
                writer.write_segment(block)
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            summary = writer.close(final=True)
            close_wall, close_cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
        finally:
            writer.close(final=False)  # a no-op after a successful close
        if last is not None:
            last.path.unlink()
        last = _LastRecording(path=path, summary=summary, audio=b"".join(blocks))
        if index == 0:
            continue
        for name, value in (
            ("open_wall", open_wall),
            ("open_cpu", open_cpu),
            ("wrap", wrap_s),
            ("put", put_s),
            ("close_wall", close_wall),
            ("close_cpu", close_cpu),
        ):
            samples[name].append(value * 1000)
    assert last is not None
    medians = {name: statistics.median(values) for name, values in samples.items()}
    cost = LifecycleCost(
        recordings=len(samples["open_wall"]),
        stopped_by=stopped_by,
        open_wall_ms=medians["open_wall"],
        open_cpu_ms=medians["open_cpu"],
        wrap_ms=medians["wrap"],
        key_store_put_ms=medians["put"],
        close_wall_ms=medians["close_wall"],
        close_cpu_ms=medians["close_cpu"],
    )
    return cost, last


def estimate_capacity(seal_write: Throughput, lifecycle: LifecycleCost) -> Capacity:
    """Seconds of work per second of call: one segment, plus open and close spread over the call."""
    per_call_cpu = (lifecycle.open_cpu_ms + lifecycle.close_cpu_ms) / 1000
    per_call_wall = (lifecycle.open_wall_ms + lifecycle.close_wall_ms) / 1000
    segments_per_second = 1000 / SEGMENT_MS
    return Capacity(
        call_seconds=CALL_SECONDS,
        cpu_s_per_call_second=seal_write.cpu_s / seal_write.segments * segments_per_second
        + per_call_cpu / CALL_SECONDS,
        wall_s_per_call_second=seal_write.wall_s / seal_write.segments * segments_per_second
        + per_call_wall / CALL_SECONDS,
    )


def check_read_back(
    last: _LastRecording, private_key: X25519PrivateKey, key_store: SqliteKeyStore
) -> ReadBack:
    """Read ``last`` back with the private key and compare audio and file hash (not timed)."""
    reader = SegmentReader(last.path, private_key=private_key, key_store=key_store)
    audio = reader.read_all()
    status = reader.status
    file_sha256 = hashlib.sha256(last.path.read_bytes()).hexdigest()
    return ReadBack(
        segments=status.segments,
        audio_bytes=status.pcm_bytes,
        complete=status.complete,
        audio_matches=audio == last.audio,
        file_sha256_matches=file_sha256 == last.summary.sha256,
    )


def run_benchmark(
    seconds: float = DEFAULT_SECONDS,
    recordings: int = DEFAULT_RECORDINGS,
    directory: str | os.PathLike[str] | None = None,
) -> BenchmarkReport:
    """Run the four parts in a temporary directory made in ``directory`` (default: the system's)."""
    with tempfile.TemporaryDirectory(prefix="seal-throughput-", dir=directory) as work_text:
        work = Path(work_text)
        recordings_dir = work / "recordings"
        recordings_dir.mkdir(mode=0o700)
        private_key = generate_private_key()
        with EvidenceStore(work / "evidence.sqlite") as evidence:
            key_store = SqliteKeyStore(evidence)
            seal_write, throughput_close_ms = measure_seal_write(
                recordings_dir, private_key, key_store, seconds
            )
            seal_only = measure_seal_only(seconds)
            lifecycle, last = measure_lifecycle(recordings_dir, private_key, key_store, recordings)
            read_back = check_read_back(last, private_key, key_store)
        return BenchmarkReport(
            seconds=seconds,
            recordings_asked=recordings,
            filesystem=_filesystem_type(work),
            seal_write=seal_write,
            throughput_close_ms=throughput_close_ms,
            seal_only=seal_only,
            lifecycle=lifecycle,
            capacity=estimate_capacity(seal_write, lifecycle),
            read_back=read_back,
        )


# --------------------------------------------------------------------------------------------------
# Output


def _environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cryptography": metadata.version("cryptography"),
        "openssl": openssl_backend.openssl_version_text(),
        "load_average_1min": os.getloadavg()[0],
    }


def _assumption() -> str:
    return (
        f"calls of {CALL_SECONDS} s recorded whole: per call {CALL_SECONDS * 1000 // SEGMENT_MS} segments "
        f"of {SEGMENT_BYTES} bytes, one open and one close"
    )


def _throughput_dict(result: Throughput) -> dict[str, Any]:
    return {
        **asdict(result),
        "audio_bytes": result.audio_bytes,
        "mb_per_s_cpu": result.mb_per_s_cpu,
        "mb_per_s_wall": result.mb_per_s_wall,
        "us_per_segment_cpu": result.us_per_segment_cpu,
        "us_per_segment_wall": result.us_per_segment_wall,
        "us_per_segment_kernel": result.us_per_segment_kernel,
    }


def report_json(report: BenchmarkReport) -> str:
    """The report as JSON: environment, settings, then one object per part."""
    document = {
        "environment": _environment(),
        "settings": {
            "seconds": report.seconds,
            "recordings": report.recordings_asked,
            "audio_format": asdict(AUDIO_FORMAT),
            "segment_bytes": SEGMENT_BYTES,
            "segment_ms": SEGMENT_MS,
            "fsync": str(FSYNC),
            "key_store": "sqlite",
            "recipients": 1,
            "dirty_tail_seconds": DIRTY_TAIL_SECONDS,
            "filesystem": report.filesystem,
        },
        "seal_write": {**_throughput_dict(report.seal_write), "close_ms": report.throughput_close_ms},
        "seal_only": _throughput_dict(report.seal_only),
        "open_close": {**asdict(report.lifecycle), "file_create_ms": report.lifecycle.file_create_ms},
        "capacity": {
            **asdict(report.capacity),
            "assumption": _assumption(),
            "recordings_per_core": report.capacity.recordings_per_core,
            "recordings_per_file_thread": report.capacity.recordings_per_file_thread,
            "disk_mb_per_s_at_core_limit": report.capacity.disk_mb_per_s_at_core_limit,
        },
        "read_back": {**asdict(report.read_back), "ok": report.read_back.ok},
    }
    return json.dumps(document, indent=2)


def _rate_line(label: str, us_per_segment: float, mb_per_s: float) -> str:
    return f"   {label:<18} {us_per_segment:8.1f} µs per segment  {mb_per_s:8.1f} MB/s"


def format_report(report: BenchmarkReport) -> str:
    """The report as readable text."""
    env = _environment()
    fmt = AUDIO_FORMAT
    sw, so, lc = report.seal_write, report.seal_only, report.lifecycle
    cap, rb = report.capacity, report.read_back
    return "\n".join(
        [
            f"Recording storage benchmark: {fmt.sample_rate_hz} Hz, {fmt.channels} channels, {fmt.codec}; "
            f"{SEGMENT_BYTES}-byte segments ({SEGMENT_MS} ms); fsync {FSYNC}; SQLite key store; 1 recipient",
            f"{env['implementation']} {env['python']}, {env['machine']}, {env['cpus']} CPUs, "
            f"cryptography {env['cryptography']} ({env['openssl']}); "
            f"working directory on {report.filesystem}",
            f"load average after the run {env['load_average_1min']:.2f} (this run adds about 1; "
            "other work on the machine inflates wall times, not CPU times)",
            "",
            f"1. Seal + write, one thread, one recording "
            f"({report.seconds:g} s budget, stopped by {sw.stopped_by})",
            f"   {sw.segments} segments, {sw.audio_bytes / _MB:.1f} MB of audio",
            _rate_line("CPU (thread_time)", sw.us_per_segment_cpu, sw.mb_per_s_cpu)
            + f"   ({sw.us_per_segment_kernel:.1f} µs of it in the kernel)",
            _rate_line("wall", sw.us_per_segment_wall, sw.mb_per_s_wall),
            _rate_line("seal alone, CPU", so.us_per_segment_cpu, so.mb_per_s_cpu)
            + f"   (no framing, hash or file; {so.segments} segments)",
            f"   closing that recording (final segment, fsync of {sw.audio_bytes / _MB:.0f} MB): "
            f"{report.throughput_close_ms:.1f} ms",
            "",
            f"2. Open and close, median of {lc.recordings} recordings (stopped by {lc.stopped_by}); "
            f"each holds {DIRTY_TAIL_SECONDS} s of audio when closed",
            f"   open    wall {lc.open_wall_ms:7.3f} ms   CPU (process) {lc.open_cpu_ms:7.3f} ms",
            f"           parts: data key + HPKE wrap {lc.wrap_ms:.3f} ms, "
            f"key-store row {lc.key_store_put_ms:.3f} ms, "
            f"file create + header + fsyncs ≈ {lc.file_create_ms:.3f} ms",
            f"   close   wall {lc.close_wall_ms:7.3f} ms   CPU (process) {lc.close_cpu_ms:7.3f} ms"
            f"   (final segment, fsync of {DIRTY_TAIL_SECONDS} s of audio)",
            "",
            f"3. Capacity, assuming {_assumption()}",
            f"   CPU per second of call  {cap.cpu_s_per_call_second * 1e6:8.1f} µs -> one core keeps up with "
            f"≈ {cap.recordings_per_core:,.0f} concurrent recordings",
            f"   wall per second of call {cap.wall_s_per_call_second * 1e6:8.1f} µs -> one file thread "
            f"(callherald's; fsync waits included) ≈ {cap.recordings_per_file_thread:,.0f}",
            f"   at the core limit the disk must take {cap.disk_mb_per_s_at_core_limit:,.1f} MB/s; "
            "RTP, the event loop and callherald's plaintext SHA-256 are not counted",
            "",
            f"4. Read-back (not timed): {rb.segments} segments, {rb.audio_bytes} bytes, "
            f"complete={rb.complete}, audio matches={rb.audio_matches}, "
            f"file SHA-256 matches={rb.file_sha256_matches}: {'OK' if rb.ok else 'FAILED'}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the report (JSON with ``--json``); 0 if the read-back matched."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.seal_throughput", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help="wall-time budget of the seal + write run and of the seal-alone run (default %(default)s)",
    )
    parser.add_argument(
        "--recordings",
        type=int,
        default=DEFAULT_RECORDINGS,
        help="recordings opened and closed for the medians (default %(default)s)",
    )
    parser.add_argument(
        "--directory",
        default=None,
        help="where to make the temporary working directory (default: the system's temporary directory)",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be in (0, {MAX_SECONDS:g}]")
    if not 1 <= args.recordings <= MAX_RECORDINGS:
        parser.error(f"--recordings must be in 1..{MAX_RECORDINGS}")
    report = run_benchmark(args.seconds, args.recordings, args.directory)
    print(report_json(report) if args.json else format_report(report))
    return 0 if report.read_back.ok else 1


if __name__ == "__main__":
    sys.exit(main())
