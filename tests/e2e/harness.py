"""Running callherald and SIPp for end-to-end tests, on 127.0.0.1 only.

``running_callherald`` writes a configuration with free ports, starts ``callherald serve`` as a
real process, waits until both listeners are up, and stops it by its PID afterwards.
``run_sipp`` runs one SIPp scenario to completion with a hard time limit.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from callherald.app import ephemeral_ports as kernel_ephemeral_ports

__all__ = [
    "SCENARIOS",
    "UNRECORDED_POLICIES",
    "CallheraldProcess",
    "SipPorts",
    "SippResult",
    "free_port",
    "free_port_range",
    "pick_ports",
    "port_window",
    "run_sipp",
    "running_callherald",
    "sipp_available",
    "start_sipp",
    "stop_callherald",
    "stop_process",
    "worker_share",
]

SCENARIOS = Path(__file__).resolve().parent / "sipp"
UNRECORDED_POLICIES = """\
purposes:
  - {id: evidence, lawful_basis: contract, retention_days: 30}
policies:
  - {name: unrecorded, record: false}
"""
LOOPBACK = "127.0.0.1"
CALLHERALD = Path(sys.executable).with_name("callherald")


def sipp_available() -> bool:
    return shutil.which("sipp") is not None


def _port_is_free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


# The ports handed out last in this process. A port is only probed free: it is bound later, by
# SIPp or callherald, so without this a port given out for SIPp's media could fall into the RTP
# range chosen for callherald a moment later, and whichever binds second fails. Only recent claims
# matter: older ones are bound by now (and the probe sees them) or free again.
_RECENT_CLAIMS: collections.deque[range] = collections.deque(maxlen=64)
_MEDIA_PORTS = 4  # SIPp's -mp takes the port and the ones above it (RTCP, video)
_WINDOW_LOW = 10_000
_WINDOW_MIN = 5_000  # room enough below the ephemeral ports
_PORT_WINDOW_SHARE = 5  # single ports (SIP, a peer's media) take a fifth, RTP ranges the rest


def _unclaimed(ports: range) -> bool:
    return all(ports.stop <= claim.start or claim.stop <= ports.start for claim in _RECENT_CLAIMS)


def free_port() -> int:
    """A UDP and TCP port on 127.0.0.1 that is free right now, even, and not handed out lately
    (nor the three above it, which SIPp's media may take), from this test worker's share of
    ``port_window`` (outside the kernel's ephemeral ports: a socket bound to port 0 cannot take
    it between the probe and the bind)."""
    low, high = single_port_share()
    for _ in range(200):
        port = random.randrange(low, high, 2)
        band = range(port, port + _MEDIA_PORTS)
        if (
            _unclaimed(band)
            and _port_is_free(port, socket.SOCK_DGRAM)
            and _port_is_free(port, socket.SOCK_STREAM)
        ):
            _RECENT_CLAIMS.append(band)
            return port
    raise RuntimeError("no free port found")


def single_port_share() -> tuple[int, int]:
    """Where this test process's ``free_port`` draws from: its share of ``port_window``, less the
    ports above the last one that SIPp's media may take."""
    window_low, window_high = port_window()
    return worker_share(window_low, window_high - _MEDIA_PORTS)


def worker_share(low: int, high: int) -> tuple[int, int]:
    """The part of ports ``low`` to ``high`` this test process hands out, its first port even.

    Run on several pytest-xdist workers, each takes its own slice: a port is only probed free and
    bound later, so two workers drawing from one range could both pick it. One process takes all.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or workers <= 1:
        return low + low % 2, high
    share = (high - low) // workers
    first = low + int(worker[2:]) * share
    return first + first % 2, first + share


def ephemeral_ports() -> range:
    """The ports the kernel hands to sockets bound to port 0 (Linux's default if it does not say)."""
    return kernel_ephemeral_ports() or range(32_768, 61_000)


def _outside_ephemeral_ports() -> tuple[int, int]:
    # Ports no socket bound to port 0 is given: below the ephemeral ports if there is room, else
    # above them.
    ephemeral = ephemeral_ports()
    if ephemeral.start - _WINDOW_LOW >= _WINDOW_MIN:
        return _WINDOW_LOW, ephemeral.start
    return ephemeral.stop, 65_536


def _windows() -> tuple[int, int, int]:
    # The ports outside the ephemeral ones, split: single ports from the first, RTP ranges from
    # the second (its first port even).
    low, high = _outside_ephemeral_ports()
    split = low + (high - low) // _PORT_WINDOW_SHARE
    return low, split + split % 2, high


def port_window() -> tuple[int, int]:
    """Where ``free_port`` looks: the first fifth of the ports outside the ephemeral ones."""
    low, split, _ = _windows()
    return low, split


def rtp_window() -> tuple[int, int]:
    """Where ``free_port_range`` looks: the rest of the ports outside the ephemeral ones, which
    any peer's socket bound to port 0 may take at any moment."""
    _, split, high = _windows()
    return split, high


def free_port_range(count: int) -> tuple[int, int]:
    """An even first port and an odd last port spanning ``count`` free UDP ports, none handed out
    lately, outside the kernel's ephemeral ports (``rtp_window``)."""
    low, high = worker_share(*rtp_window())
    span = (high - low - count) & ~1  # even: every first port stays even and in the share
    offset = random.randrange(0, span, 2)  # spread concurrent runs over the range
    for step in range(0, span, count + 2):
        first = low + (offset + step) % span
        first += first % 2
        ports = range(first, first + count)
        if _unclaimed(ports) and all(_port_is_free(port, socket.SOCK_DGRAM) for port in ports):
            _RECENT_CLAIMS.append(ports)
            return first, first + count - 1
    raise RuntimeError("no free RTP port range found")


@dataclass(frozen=True)
class SipPorts:
    """callherald's two listeners and the two peers it calls, chosen before it starts."""

    pbx: int
    carrier: int
    carrier_target: int
    pbx_target: int


def pick_ports() -> SipPorts:
    """Four distinct free ports, so a peer callherald talks to at once can listen first."""
    ports: list[int] = []
    while len(ports) < 4:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return SipPorts(pbx=ports[0], carrier=ports[1], carrier_target=ports[2], pbx_target=ports[3])


@dataclass
class CallheraldProcess:
    """A running ``callherald serve``: its ports, process and log."""

    pbx_port: int
    carrier_port: int
    carrier_target_port: int
    pbx_target_port: int
    rtp_min: int
    rtp_max: int
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    data_dir: Path
    extra: dict[str, object] = field(default_factory=dict)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log_text():
                return True
            time.sleep(0.05)
        return False


def default_yaml(
    *,
    pbx_port: int,
    carrier_port: int,
    carrier_target_port: int,
    pbx_target_port: int,
    rtp_min: int,
    rtp_max: int,
    carrier_section_extra: str = "",
    pbx_section_extra: str = "",
    media_section_extra: str = "",
    limits: str = "",
    extra: str = "",
    allowed_networks: str = "127.0.0.0/8",
    transport: str = "udp",
    policies: str = UNRECORDED_POLICIES,
) -> str:
    """A loopback configuration; the ``*_extra`` strings are indented YAML lines added to a section.

    ``transport`` applies to both listeners and to the peers reached from them. ``policies`` is
    the YAML of the recording sections (``purposes``, ``consent_questions``, ``policies``...);
    by default no call is announced or recorded, for tests of signalling and relaying alone.
    """
    return f"""\
listen:
  pbx: {{host: 127.0.0.1, port: {pbx_port}, transport: {transport}}}
  carrier: {{host: 127.0.0.1, port: {carrier_port}, transport: {transport}}}
pbx:
  peers:
    - name: test-pbx
      host: 127.0.0.1
      port: {pbx_target_port}
      transport: {transport}
      allowed_networks: [{allowed_networks}]
  default_target: "127.0.0.1:{pbx_target_port}"
{pbx_section_extra}
carrier:
  host: 127.0.0.1
  port: {carrier_target_port}
  transport: {transport}
  allowed_networks: [{allowed_networks}]
{carrier_section_extra}
media:
  rtp_port_min: {rtp_min}
  rtp_port_max: {rtp_max}
  bind_address: 127.0.0.1
  advertised_address: 127.0.0.1
{media_section_extra}limits:
{limits or "  max_concurrent_calls: 500"}
logging:
  level: debug
data_dir: data
{policies}
{extra}
"""


@contextlib.contextmanager
def running_callherald(
    tmp_path: Path,
    *,
    rtp_ports: int = 200,
    carrier_section_extra: str = "",
    pbx_section_extra: str = "",
    media_section_extra: str = "",
    limits: str = "",
    extra: str = "",
    env: dict[str, str] | None = None,
    allowed_networks: str = "127.0.0.0/8",
    transport: str = "udp",
    ports: SipPorts | None = None,
    policies: str = UNRECORDED_POLICIES,
) -> Iterator[CallheraldProcess]:
    """Start callherald on loopback ports with this configuration; stop it by PID afterwards.

    ``ports`` (from ``pick_ports``) lets a peer listen before callherald starts; by default free
    ports are picked here.
    """
    chosen = ports or pick_ports()
    pbx_port, carrier_port = chosen.pbx, chosen.carrier
    carrier_target_port, pbx_target_port = chosen.carrier_target, chosen.pbx_target
    rtp_min, rtp_max = free_port_range(rtp_ports)
    config_path = tmp_path / "callherald.yaml"
    config_path.write_text(
        default_yaml(
            pbx_port=pbx_port,
            carrier_port=carrier_port,
            carrier_target_port=carrier_target_port,
            pbx_target_port=pbx_target_port,
            rtp_min=rtp_min,
            rtp_max=rtp_max,
            carrier_section_extra=carrier_section_extra,
            pbx_section_extra=pbx_section_extra,
            media_section_extra=media_section_extra,
            limits=limits,
            extra=extra,
            allowed_networks=allowed_networks,
            transport=transport,
            policies=policies,
        ),
        encoding="utf-8",
    )
    log_path = tmp_path / "callherald.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(CALLHERALD), "serve", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            env={**os.environ, **(env or {})},
        )
    proxy = CallheraldProcess(
        pbx_port=pbx_port,
        carrier_port=carrier_port,
        carrier_target_port=carrier_target_port,
        pbx_target_port=pbx_target_port,
        rtp_min=rtp_min,
        rtp_max=rtp_max,
        config_path=config_path,
        log_path=log_path,
        process=process,
        data_dir=tmp_path / "data",
    )
    try:
        if not proxy.wait_for_log("listening for the carrier side", timeout_s=15):
            raise RuntimeError(f"callherald did not start:\n{proxy.log_text()}")
        yield proxy
    finally:
        stop_callherald(proxy)


def serve_that_stops(
    config: Path | None, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``callherald serve`` (on ``config``, else the embedded default) for a start that is meant to
    fail: run until it exits, within 30 s, its output captured."""
    argv = [str(CALLHERALD), "serve"] + ([] if config is None else ["--config", str(config)])
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=env,
        timeout=30,
        check=False,
    )


def stop_callherald(proxy: CallheraldProcess, timeout_s: float = 5.0) -> None:
    """SIGTERM (callherald ends calls and un-registers on the way out), then SIGKILL if it hangs."""
    process = proxy.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str
    error_log: str


def _sipp_command(scenario: str, remote: str | None, args: list[str], workdir: Path) -> list[str]:
    scenario_path = SCENARIOS / scenario if not Path(scenario).is_absolute() else Path(scenario)
    command = ["sipp", "-sf", str(scenario_path), "-i", LOOPBACK, "-nostdin", "-trace_err"]
    command += ["-error_file", str(workdir / f"{scenario_path.stem}-{os.getpid()}-{time.monotonic_ns()}.err")]
    command += args
    if remote is not None:
        command.append(remote)
    return command


def start_sipp(scenario: str, remote: str | None, args: list[str], workdir: Path) -> subprocess.Popen[str]:
    """Start SIPp in the background (e.g. a UAS); stop it with ``stop_process``."""
    return subprocess.Popen(
        _sipp_command(scenario, remote, args, workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=workdir,
    )


def run_sipp(
    scenario: str, remote: str | None, args: list[str], workdir: Path, timeout_s: float = 30
) -> SippResult:
    """Run a SIPp scenario to its end (bounded by ``timeout_s``, also passed to SIPp)."""
    command = _sipp_command(scenario, remote, ["-timeout", f"{int(timeout_s)}s", *args], workdir)
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=workdir,
        timeout=timeout_s + 10,
        check=False,
    )
    error_log = "".join(path.read_text(errors="replace") for path in workdir.glob("*.err"))
    return SippResult(completed.returncode, completed.stdout, completed.stderr, error_log)


def stop_process(process: subprocess.Popen[str], timeout_s: float = 5) -> tuple[str, str]:
    """Stop a background process by its PID and return its output."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(timeout=timeout_s)
    return out, err
