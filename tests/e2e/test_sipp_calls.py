"""Calls through a real ``callherald serve`` against SIPp over UDP on 127.0.0.1.

The caller is a SIPp UAC (``tests/e2e/sipp/uac_*.xml``) and the callee a SIPp UAS
(``uas_*.xml``): for an outbound call the UAC sends to callherald's PBX listener and the UAS
listens where callherald sends calls to the carrier; for an inbound call the other way round.
Media endpoints are test-owned sockets (``media_peer.MediaPeer``) whose ports the scenarios
advertise; the scenarios write what callherald answered (SDP lines, headers) to files that the
tests check exactly. Every SIPp process has a time limit and is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import numpy as np
import pytest

from proxy.rtp.g711 import PCMU_PAYLOAD_TYPE, SAMPLE_RATE_HZ, ulaw_decode
from proxy.rtp.packet import RtpPacket
from proxy.sip.auth import Credentials, verify_credentials
from tests.e2e.harness import (
    CallheraldProcess,
    free_port,
    run_sipp,
    running_callherald,
    sipp_available,
    start_sipp,
    stop_process,
)
from tests.e2e.media_peer import (
    SAMPLES_PER_PACKET,
    MediaPeer,
    read_sdp_file,
    relay_report,
    tone_payloads,
)

__all__ = [
    "BackgroundSipp",
    "Direction",
    "SippRun",
    "TracedMessage",
    "assert_ok",
    "place_call",
    "run_caller",
    "sipp_keys",
    "start_callee",
    "start_caller",
    "traced_messages",
    "wait_until_bound",
]

pytestmark = pytest.mark.e2e
requires_sipp = pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed")

LOOPBACK = "127.0.0.1"
OUTBOUND_NUMBER = "4930123456"
INBOUND_NUMBER = "31201234567"
SHORT_CALL_MS = 500
MEDIA_CALL_MS = 3000  # long enough for every RTP packet of both peers within the call
MEDIA_PACKETS = 100  # 2 s of 20 ms packets
SIPP_TIME_LIMIT_S = 30
TRACE_TAIL_CHARS = 6000


# SIPp plumbing --------------------------------------------------------------------------------


class Direction(StrEnum):
    """Which side calls: ``outbound`` is the PBX calling out through the carrier."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"

    def caller_target(self, proxy: CallheraldProcess) -> int:
        """The callherald listener the caller sends its INVITE to."""
        return proxy.pbx_port if self is Direction.OUTBOUND else proxy.carrier_port

    def callee_port(self, proxy: CallheraldProcess) -> int:
        """Where callherald sends the call on to (the callee UAS listens there)."""
        return proxy.carrier_target_port if self is Direction.OUTBOUND else proxy.pbx_target_port

    @property
    def number(self) -> str:
        return OUTBOUND_NUMBER if self is Direction.OUTBOUND else INBOUND_NUMBER


def sipp_keys(**values: object) -> list[str]:
    """``-key name value`` arguments for SIPp (``[name]`` in a scenario)."""
    args: list[str] = []
    for name, value in values.items():
        args += ["-key", name, str(value)]
    return args


@dataclass(frozen=True, slots=True)
class TracedMessage:
    """One SIP message from a SIPp ``-trace_msg`` file."""

    at: datetime
    sent: bool
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (full name, any case), None when absent."""
        head = self.text.split("\n\n", 1)[0]
        for line in head.splitlines()[1:]:
            field, _, value = line.partition(":")
            if field.strip().lower() == name.lower():
                return value.strip()
        return None

    @property
    def is_request(self) -> bool:
        return not self.first_line.startswith("SIP/")

    @property
    def method(self) -> str:
        """The request's method (the first word of its request line)."""
        return self.first_line.split()[0]

    def transaction(self) -> tuple[str, str | None, str | None]:
        """What a retransmission of this request shares with it: the method, the CSeq and the
        top Via's branch (RFC 3261 §17.2.3)."""
        via = self.header("Via") or ""
        branch = next((p.partition("=")[2] for p in via.split(";") if p.strip().startswith("branch=")), None)
        return self.method, self.header("CSeq"), branch


_TRACE_ENTRY = re.compile(
    r"^-{10,} (?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n"
    r"(?:UDP|TCP) message (?P<kind>sent|received) [^\n]*\n\n(?P<text>.*?)(?=^-{10,} \d{4}-|\Z)",
    re.MULTILINE | re.DOTALL,
)


def traced_messages(trace: str) -> list[TracedMessage]:
    """The SIP messages of a SIPp message trace, in order."""
    return [
        TracedMessage(
            at=datetime.fromisoformat(match["at"]),
            sent=match["kind"] == "sent",
            text=match["text"].strip("\n"),
        )
        for match in _TRACE_ENTRY.finditer(trace)
    ]


@dataclass(frozen=True, slots=True)
class SippRun:
    """A finished SIPp run: exit code (None: it had to be stopped), output and message trace."""

    role: str
    returncode: int | None
    stderr: str
    trace: str
    elapsed_s: float

    @property
    def messages(self) -> list[TracedMessage]:
        return traced_messages(self.trace)

    def requests_received(self) -> list[TracedMessage]:
        """The requests this run received, in order, each once: a retransmission (the peer had no
        answer within its timer, RFC 3261 §17.1.2.2) is the same request again."""
        seen: set[tuple[str, str | None, str | None]] = set()
        requests = []
        for message in self.messages:
            if message.sent or not message.is_request or message.transaction() in seen:
                continue
            seen.add(message.transaction())
            requests.append(message)
        return requests

    def methods_received(self) -> list[str]:
        """The methods of the requests this run received, retransmissions folded."""
        return [request.method for request in self.requests_received()]

    def report(self) -> str:
        tail = self.trace[-TRACE_TAIL_CHARS:]
        return (
            f"--- SIPp {self.role}: exit {self.returncode} after {self.elapsed_s:.2f} s\n"
            f"{self.stderr[-2000:]}\n--- {self.role} messages (tail):\n{tail}"
        )


def assert_ok(proxy: CallheraldProcess, *runs: SippRun) -> None:
    """Every SIPp run completed its scenario (exit 0); on failure show traces and callherald's log."""
    if all(run.returncode == 0 for run in runs):
        return
    reports = "\n".join(run.report() for run in runs)
    pytest.fail(f"{reports}\n--- callherald log (tail):\n{proxy.log_text()[-4000:]}")


def _listening_udp_ports() -> set[int]:
    ports: set[int] = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        local = line.split()[1]
        ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def wait_until_bound(port: int, timeout_s: float = 5.0) -> None:
    """Wait until some process has a UDP socket on ``port`` (read from /proc, so no bind race)."""
    deadline = time.monotonic() + timeout_s
    while port not in _listening_udp_ports():
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing bound UDP port {port} within {timeout_s} s")
        time.sleep(0.01)


def _trace_args(workdir: Path, role: str) -> tuple[list[str], Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    trace = workdir / f"{role}.msg"
    return ["-trace_msg", "-message_file", str(trace)], trace


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


class BackgroundSipp:
    """A SIPp process in the background; ``finish`` collects it, leaving the block stops it by PID."""

    def __init__(self, scenario: str, remote: str | None, workdir: Path, args: list[str], role: str) -> None:
        self.role = role
        trace_args, self._trace = _trace_args(workdir / role, role)
        self._started = time.monotonic()
        self._process: subprocess.Popen[str] = start_sipp(
            scenario, remote, [*args, *trace_args], workdir / role
        )

    def __enter__(self) -> BackgroundSipp:
        return self

    def __exit__(self, *_: object) -> None:
        stop_process(self._process)

    def finish(self, timeout_s: float = 10.0) -> SippRun:
        """Wait for the scenario to end (stop it after ``timeout_s``) and return the run."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=timeout_s)
        returncode = self._process.poll()
        _, stderr = stop_process(self._process)
        return SippRun(self.role, returncode, stderr, _read(self._trace), time.monotonic() - self._started)


def start_callee(
    scenario: str,
    port: int,
    workdir: Path,
    keys: list[str],
    *,
    calls: int = 1,
    pause_ms: int = SHORT_CALL_MS,
    role: str = "callee",
) -> BackgroundSipp:
    """A SIPp UAS on ``port`` for ``calls`` calls, ready (its socket bound) when this returns."""
    args = ["-p", str(port), "-m", str(calls), "-d", str(pause_ms), "-timeout", f"{SIPP_TIME_LIMIT_S}s"]
    callee = BackgroundSipp(scenario, None, workdir, [*args, *keys], role)
    try:
        wait_until_bound(port)
    except BaseException:
        callee.finish(timeout_s=0)
        raise
    return callee


def _caller_args(keys: list[str], number: str, calls: int, pause_ms: int) -> list[str]:
    return ["-p", str(free_port()), "-m", str(calls), "-s", number, "-d", str(pause_ms), *keys]


def start_caller(
    scenario: str,
    port: int,
    workdir: Path,
    keys: list[str],
    *,
    number: str = OUTBOUND_NUMBER,
    calls: int = 1,
    pause_ms: int = SHORT_CALL_MS,
    role: str = "caller",
) -> BackgroundSipp:
    """A SIPp UAC calling callherald's listener ``port`` in the background."""
    args = [*_caller_args(keys, number, calls, pause_ms), "-timeout", f"{SIPP_TIME_LIMIT_S}s"]
    return BackgroundSipp(scenario, f"{LOOPBACK}:{port}", workdir, args, role)


def run_caller(
    scenario: str,
    port: int,
    workdir: Path,
    keys: list[str],
    *,
    number: str = OUTBOUND_NUMBER,
    calls: int = 1,
    pause_ms: int = SHORT_CALL_MS,
    timeout_s: float = 20.0,
    role: str = "caller",
) -> SippRun:
    """Run a SIPp UAC against callherald's listener ``port`` to the end of its scenario."""
    trace_args, trace = _trace_args(workdir / role, role)
    args = [*_caller_args(keys, number, calls, pause_ms), *trace_args]
    started = time.monotonic()
    result = run_sipp(scenario, f"{LOOPBACK}:{port}", args, workdir / role, timeout_s=timeout_s)
    return SippRun(
        role, result.returncode, result.stderr + result.error_log, _read(trace), time.monotonic() - started
    )


def place_call(
    proxy: CallheraldProcess,
    direction: Direction,
    workdir: Path,
    *,
    caller: str = "uac_call.xml",
    callee: str = "uas_call.xml",
    pause_ms: int = SHORT_CALL_MS,
    caller_keys: dict[str, object] | None = None,
    callee_keys: dict[str, object] | None = None,
) -> tuple[SippRun, SippRun]:
    """One call from a caller scenario to a callee scenario through callherald; both runs returned."""
    workdir.mkdir(parents=True, exist_ok=True)
    uac_keys = {"rtp_port": 20000, "portfile": workdir / "caller.sdp", "resultfile": workdir / "caller.txt"}
    uas_keys = {"rtp_port": 20002, "portfile": workdir / "callee.sdp", "resultfile": workdir / "callee.txt"}
    uac_keys.update(caller_keys or {})
    uas_keys.update(callee_keys or {})
    with start_callee(
        callee, direction.callee_port(proxy), workdir, sipp_keys(**uas_keys), pause_ms=pause_ms
    ) as uas:
        uac = run_caller(
            caller,
            direction.caller_target(proxy),
            workdir,
            sipp_keys(**uac_keys),
            number=direction.number,
            pause_ms=pause_ms,
        )
        return uac, uas.finish()


def _rtp_port_in_range(proxy: CallheraldProcess, port: int) -> bool:
    return proxy.rtp_min <= port <= proxy.rtp_max and port % 2 == 0


# The test helpers themselves --------------------------------------------------------------------


@pytest.mark.parametrize("frequency_hz", [1000.0, 440.0])
def test_tone_payloads_are_distinct_ulaw_of_the_tone(frequency_hz: float) -> None:
    payloads = tone_payloads(frequency_hz, MEDIA_PACKETS)
    assert len(payloads) == MEDIA_PACKETS
    assert {len(payload) for payload in payloads} == {SAMPLES_PER_PACKET}
    assert len(set(payloads)) == MEDIA_PACKETS
    # Each packet is a sine at the frequency: fitting one leaves only quantisation noise.
    seconds = np.arange(SAMPLES_PER_PACKET) / SAMPLE_RATE_HZ
    basis = np.column_stack(
        [np.sin(2 * np.pi * frequency_hz * seconds), np.cos(2 * np.pi * frequency_hz * seconds)]
    )
    for payload in payloads:
        pcm = ulaw_decode(payload).astype(np.float64)
        fit, *_ = np.linalg.lstsq(basis, pcm, rcond=None)
        residual = pcm - basis @ fit
        assert float(residual @ residual) < 0.001 * float(pcm @ pcm)


def test_media_peer_packets_are_valid_rtp() -> None:
    with MediaPeer("p", ssrc=0xCAFE0001, payloads=tone_payloads(440.0, 3)) as peer:
        packets = [RtpPacket.parse(peer.packet(index)) for index in range(3)]
    assert [(p.payload_type, p.sequence, p.timestamp, p.ssrc, p.marker) for p in packets] == [
        (PCMU_PAYLOAD_TYPE, 1000, 160_000, 0xCAFE0001, True),
        (PCMU_PAYLOAD_TYPE, 1001, 160_160, 0xCAFE0001, False),
        (PCMU_PAYLOAD_TYPE, 1002, 160_320, 0xCAFE0001, False),
    ]
    assert [p.payload for p in packets] == tone_payloads(440.0, 3)


_TRACE_SAMPLE = (
    "----------------------------------------------- 2026-11-28 04:33:47.853964\n"
    "UDP message received [52] bytes :\n\n"
    "INVITE sip:1@127.0.0.1:5060 SIP/2.0\nCall-ID: a\n\nv=0\n\n"
    "----------------------------------------------- 2026-11-28 04:33:48.000001\n"
    "UDP message sent (331 bytes):\n\n"
    "SIP/2.0 180 Ringing\nCall-ID: a\n\n\n"
)


@pytest.mark.parametrize(
    ("trace", "expected"),
    [
        pytest.param("", [], id="empty"),
        pytest.param(
            _TRACE_SAMPLE,
            [
                ("2026-11-28T04:33:47.853964", False, "INVITE sip:1@127.0.0.1:5060 SIP/2.0"),
                ("2026-11-28T04:33:48.000001", True, "SIP/2.0 180 Ringing"),
            ],
            id="received-then-sent",
        ),
    ],
)
def test_sipp_message_trace_is_read_in_order(trace: str, expected: list[tuple[str, bool, str]]) -> None:
    messages = traced_messages(trace)
    assert [(m.at.isoformat(), m.sent, m.first_line) for m in messages] == expected
    if messages:
        assert messages[0].text.endswith("v=0")
        assert (messages[0].header("call-id"), messages[0].header("v")) == ("a", None)


# 1. Media both ways through the anchored ports ------------------------------------------------


def tone_call(proxy: CallheraldProcess, direction: Direction, workdir: Path) -> tuple[MediaPeer, MediaPeer]:
    """A call through ``proxy``: the caller's RTP peer sends a 1000 Hz tone, the callee's 440 Hz,
    ``MEDIA_PACKETS`` each; each writes the address callherald gave it to ``caller.sdp`` or
    ``callee.sdp`` in ``workdir``. Both SIPp runs must succeed; the stopped peers are returned."""
    caller_sdp, callee_sdp = workdir / "caller.sdp", workdir / "callee.sdp"
    with (
        MediaPeer("caller", ssrc=0x11110001, payloads=tone_payloads(1000.0, MEDIA_PACKETS)) as caller,
        MediaPeer("callee", ssrc=0x22220002, payloads=tone_payloads(440.0, MEDIA_PACKETS)) as callee,
    ):
        caller.start(caller_sdp)
        callee.start(callee_sdp)
        uac, uas = place_call(
            proxy,
            direction,
            workdir,
            pause_ms=MEDIA_CALL_MS,
            caller_keys={"rtp_port": caller.port, "portfile": caller_sdp},
            callee_keys={"rtp_port": callee.port, "portfile": callee_sdp},
        )
        caller.stop()
        callee.stop()
    assert_ok(proxy, uac, uas)
    return caller, callee


@requires_sipp
@pytest.mark.timeout(40)
@pytest.mark.parametrize("direction", list(Direction))
def test_call_relays_rtp_both_ways_through_callherald(tmp_path: Path, direction: Direction) -> None:
    caller_sdp, callee_sdp = tmp_path / "caller.sdp", tmp_path / "callee.sdp"
    with running_callherald(tmp_path) as proxy:
        caller, callee = tone_call(proxy, direction, tmp_path)

    # (c) each side was offered its own callherald port, from the RTP range
    to_caller, to_callee = read_sdp_file(caller_sdp), read_sdp_file(callee_sdp)
    assert to_caller is not None
    assert to_callee is not None
    assert to_caller[0] == to_callee[0] == LOOPBACK
    assert to_caller[1] != to_callee[1]
    assert _rtp_port_in_range(proxy, to_caller[1]), to_caller
    assert _rtp_port_in_range(proxy, to_callee[1]), to_callee
    assert (caller.remote, callee.remote) == (to_caller, to_callee)
    assert (caller.sent, callee.sent) == (MEDIA_PACKETS, MEDIA_PACKETS)

    for sender, receiver, anchor in ((callee, caller, to_caller), (caller, callee, to_callee)):
        heard = relay_report(sender, receiver)
        # (b) from callherald's port for this side, never straight from the other peer
        assert heard.sources == {(LOOPBACK, anchor[1])}, (receiver.name, heard.sources)
        # (a) the other side's payloads, intact and in order, under 1 % lost
        assert heard.payload_types == {PCMU_PAYLOAD_TYPE}
        assert heard.foreign == 0
        assert heard.in_order, heard.indices
        assert heard.loss(sender.sent) < 0.01, (receiver.name, len(heard.indices))


RTCP_EVERY = 25  # packets: a report every half second
RTCP_ABOVE = 3  # the caller's RTCP port, above its RTP port: not the usual one (RFC 3550 §11)


@requires_sipp
@pytest.mark.timeout(40)
@pytest.mark.parametrize("direction", list(Direction))
def test_rtcp_reaches_a_caller_on_the_port_its_sdp_names(tmp_path: Path, direction: Direction) -> None:
    """RFC 3605 §2.1: the caller's offer says ``a=rtcp:<RTP port + 3>``. The callee's reports to
    callherald's RTCP port reach the caller there, from callherald's RTCP port on the caller's leg,
    though the caller sends no RTCP of its own that the leg could latch to."""
    caller_sdp, callee_sdp = tmp_path / "caller.sdp", tmp_path / "callee.sdp"
    with (
        running_callherald(tmp_path) as proxy,
        MediaPeer(
            "caller",
            ssrc=0x11110001,
            payloads=tone_payloads(1000.0, MEDIA_PACKETS),
            rtcp_every=0,
            rtcp_above=RTCP_ABOVE,
        ) as caller,
        MediaPeer(
            "callee", ssrc=0x22220002, payloads=tone_payloads(440.0, MEDIA_PACKETS), rtcp_every=RTCP_EVERY
        ) as callee,
    ):
        caller.start(caller_sdp)
        callee.start(callee_sdp)
        uac, uas = place_call(
            proxy,
            direction,
            tmp_path,
            caller="uac_call_rtcp_port.xml",
            pause_ms=MEDIA_CALL_MS,
            caller_keys={"rtp_port": caller.port, "rtcp_port": caller.rtcp_port, "portfile": caller_sdp},
            callee_keys={"rtp_port": callee.port, "portfile": callee_sdp},
        )
        caller.stop()
        callee.stop()
        assert_ok(proxy, uac, uas)

    to_caller = read_sdp_file(caller_sdp)
    assert to_caller is not None
    assert len(callee.rtcp_sent) == MEDIA_PACKETS // RTCP_EVERY
    assert [datagram.data for datagram in caller.rtcp_received] == callee.rtcp_sent
    assert {datagram.source for datagram in caller.rtcp_received} == {(LOOPBACK, to_caller[1] + 1)}
    assert relay_report(callee, caller).loss(callee.sent) < 0.01  # RTP still at the RTP port


# 2. Hang-up from either end ---------------------------------------------------------------------


@requires_sipp
@pytest.mark.timeout(30)
@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize(
    ("caller", "callee"),
    [
        pytest.param("uac_call.xml", "uas_call.xml", id="caller-hangs-up"),
        pytest.param("uac_wait_bye.xml", "uas_send_bye.xml", id="callee-hangs-up"),
    ],
)
def test_bye_from_either_end_ends_both_legs(
    tmp_path: Path, direction: Direction, caller: str, callee: str
) -> None:
    with running_callherald(tmp_path) as proxy:
        uac, uas = place_call(proxy, direction, tmp_path, caller=caller, callee=callee)
        assert_ok(proxy, uac, uas)
    # The hang-up reached the other end as a BYE that it answered 200 (the scenarios insist).
    bye_side, other_side = (uac, uas) if caller == "uac_call.xml" else (uas, uac)
    assert [m.first_line.split()[0] for m in bye_side.messages if m.sent][-1] == "BYE"
    received = [m.first_line for m in other_side.messages if not m.sent]
    assert received[-1].startswith("BYE ")


# 3. and 4. CANCEL while ringing, busy -----------------------------------------------------------


@requires_sipp
@pytest.mark.timeout(30)
@pytest.mark.parametrize("direction", list(Direction))
def test_cancel_while_ringing_cancels_the_callee(tmp_path: Path, direction: Direction) -> None:
    with running_callherald(tmp_path) as proxy:
        uac, uas = place_call(
            proxy, direction, tmp_path, caller="uac_cancel.xml", callee="uas_ring_cancel.xml"
        )
        assert_ok(proxy, uac, uas)
    assert (tmp_path / "caller.txt").read_text().split() == ["CANCEL", "INVITE"]
    caller_heard = [m.first_line for m in uac.messages if not m.sent]
    assert caller_heard[-2:] == ["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]
    callee_heard = uas.methods_received()
    assert callee_heard == ["INVITE", "CANCEL", "ACK"]


@requires_sipp
@pytest.mark.timeout(30)
@pytest.mark.parametrize("direction", list(Direction))
def test_busy_stays_busy(tmp_path: Path, direction: Direction) -> None:
    with running_callherald(tmp_path) as proxy:
        uac, uas = place_call(proxy, direction, tmp_path, caller="uac_busy.xml", callee="uas_busy.xml")
        assert_ok(proxy, uac, uas)
    finals = [m.first_line for m in uac.messages if not m.sent and not m.first_line.startswith("SIP/2.0 1")]
    assert finals == ["SIP/2.0 486 Busy Here"]


# 5. The carrier's 401 and 407 challenges ---------------------------------------------------------

CARRIER_USER = "acme-trunk"
CARRIER_REALM = "carrier.test"
CARRIER_NONCE = "4f1c2e9a7b3d5c60"
CARRIER_SECRET = "s3cret-Pa55"
CARRIER_CREDENTIALS = (
    "  credentials:\n"
    f'    username: "{CARRIER_USER}"\n'
    "    password: {env: CALLHERALD_TEST_CARRIER_SECRET}\n"
    f"    realm: {CARRIER_REALM}\n"
)
CARRIER_SECRET_ENV = {"CALLHERALD_TEST_CARRIER_SECRET": CARRIER_SECRET}


def challenged_call(tmp_path: Path, callee: str, **keys: object) -> tuple[SippRun, SippRun]:
    """An outbound call through callherald, which has the carrier credentials, to the challenging
    carrier scenario ``callee``; both SIPp runs completed, and the secret stayed out of the log."""
    with running_callherald(
        tmp_path, carrier_section_extra=CARRIER_CREDENTIALS, env=CARRIER_SECRET_ENV
    ) as proxy:
        uac, uas = place_call(
            proxy,
            Direction.OUTBOUND,
            tmp_path,
            callee=callee,
            callee_keys={"realm": CARRIER_REALM, "nonce": CARRIER_NONCE, **keys},
        )
        assert_ok(proxy, uac, uas)
        assert CARRIER_SECRET not in proxy.log_text()
    return uac, uas


@requires_sipp
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "callee",
    [
        pytest.param("uas_auth_407.xml", id="407-proxy-authenticate"),
        pytest.param("uas_auth_401.xml", id="401-www-authenticate"),
    ],
)
def test_carrier_challenge_is_answered_with_digest(tmp_path: Path, callee: str) -> None:
    """The 401 scenario also checks the digest with SIPp's verifyauth (it reads only Authorization)."""
    uac, uas = challenged_call(
        tmp_path,
        callee,
        auth_user=CARRIER_USER,
        auth_password=CARRIER_SECRET,
        authfile=tmp_path / "auth.txt",
    )
    request_line, header = (tmp_path / "auth.txt").read_text().strip().split("|", 1)
    method, uri = request_line.split(" ", 1)
    credentials_sent = Credentials.parse(header.strip())
    assert (method, credentials_sent.username, credentials_sent.realm) == (
        "INVITE",
        CARRIER_USER,
        CARRIER_REALM,
    )
    assert (credentials_sent.nonce, credentials_sent.qop, credentials_sent.uri) == (
        CARRIER_NONCE,
        "auth",
        uri,
    )
    assert verify_credentials(
        credentials_sent, method="INVITE", password=CARRIER_SECRET, expected_realm=CARRIER_REALM
    )
    # The retry is the same request again with the next CSeq (RFC 3261 §22.2, §8.1.3.5).
    first, retry = [m for m in uas.messages if not m.sent and m.first_line.startswith("INVITE ")]
    assert first.header("Call-ID") == retry.header("Call-ID")
    assert first.header("From") == retry.header("From")
    assert (first.header("CSeq"), retry.header("CSeq")) == ("1 INVITE", "2 INVITE")
    assert first.first_line == retry.first_line == request_line + " SIP/2.0"
    # The caller never saw the challenge: its only final response is the 200.
    finals = [m.first_line for m in uac.messages if not m.sent and not m.first_line.startswith("SIP/2.0 1")]
    assert finals == ["SIP/2.0 200 OK", "SIP/2.0 200 OK"]  # INVITE, then BYE


@requires_sipp
@pytest.mark.timeout(30)
def test_a_carrier_that_challenges_the_bye_too_gets_it_with_credentials(tmp_path: Path) -> None:
    """Unanswered, a challenged BYE leaves the call up at the carrier, and billed, until its own
    timers end it."""
    _, uas = challenged_call(
        tmp_path,
        "uas_auth_407_bye.xml",
        authfile=tmp_path / "auth.txt",
        byeauthfile=tmp_path / "bye-auth.txt",
    )
    request_line, header = (tmp_path / "bye-auth.txt").read_text().strip().split("|", 1)
    method, uri = request_line.split(" ", 1)
    sent = Credentials.parse(header.strip())
    assert (method, sent.username, sent.realm, sent.uri) == ("BYE", CARRIER_USER, CARRIER_REALM, uri)
    assert verify_credentials(sent, method="BYE", password=CARRIER_SECRET, expected_realm=CARRIER_REALM)
    first, retry = [m for m in uas.messages if not m.sent and m.first_line.startswith("BYE ")]
    assert (first.header("CSeq"), retry.header("CSeq")) == ("3 BYE", "4 BYE")


# 6. Hold and resume by re-INVITE ----------------------------------------------------------------


@requires_sipp
@pytest.mark.timeout(30)
def test_reinvite_hold_and_resume_are_relayed_and_anchored(tmp_path: Path) -> None:
    with running_callherald(tmp_path) as proxy:
        uac, uas = place_call(
            proxy, Direction.OUTBOUND, tmp_path, caller="uac_hold.xml", callee="uas_hold.xml"
        )
        assert_ok(proxy, uac, uas)
    (
        offer_c,
        offer_m,
        hold_c,
        hold_m,
        hold_direction,
        resume_c,
        resume_m,
        resume_direction,
    ) = (tmp_path / "callee.txt").read_text().strip().split("|")
    callee_port = int(offer_m.split()[1])
    assert _rtp_port_in_range(proxy, callee_port)
    assert (offer_c, hold_c, resume_c) == (f"c=IN IP4 {LOOPBACK}",) * 3
    assert (hold_m, resume_m) == (offer_m, offer_m)  # the callee's anchor port does not move
    assert (hold_direction, resume_direction) == ("a=sendonly", "")
    answer_m, caller_hold_m, caller_hold_direction, caller_resume_m, caller_resume_direction = (
        (tmp_path / "caller.txt").read_text().strip().split("|")
    )
    caller_port = int(answer_m.split()[1])
    assert _rtp_port_in_range(proxy, caller_port)
    assert caller_port != callee_port
    assert (caller_hold_m, caller_resume_m) == (answer_m, answer_m)
    assert (caller_hold_direction, caller_resume_direction) == ("a=recvonly", "")


# 7. OPTIONS -------------------------------------------------------------------------------------


@requires_sipp
@pytest.mark.timeout(30)
@pytest.mark.parametrize("side", ["pbx", "carrier"])
def test_options_to_each_listener_gets_200_with_allow(tmp_path: Path, side: str) -> None:
    with running_callherald(tmp_path) as proxy:
        port = proxy.pbx_port if side == "pbx" else proxy.carrier_port
        run = run_caller("uac_options.xml", port, tmp_path, sipp_keys(resultfile=tmp_path / "allow.txt"))
        assert_ok(proxy, run)
    allowed = {method.strip() for method in (tmp_path / "allow.txt").read_text().split(",")}
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"} <= allowed


# 8. Over capacity -------------------------------------------------------------------------------


def assert_second_call_refused_with_503(tmp_path: Path, limits: str, why: str) -> None:
    """Under ``limits``, a first call goes through and a second, while it is up, gets 503 with
    Retry-After, logged with ``why``; the first call is unharmed."""
    answered = tmp_path / "caller.sdp"
    with running_callherald(tmp_path, limits=limits) as proxy:
        # Room for two calls at the callee, so a second INVITE let through would show in its trace.
        callee_keys = sipp_keys(rtp_port=20002, portfile=tmp_path / "callee.sdp")
        caller_keys = sipp_keys(rtp_port=20000, portfile=answered)
        with (
            start_callee("uas_call.xml", proxy.carrier_target_port, tmp_path, callee_keys, calls=2) as callee,
            start_caller("uac_call.xml", proxy.pbx_port, tmp_path, caller_keys, pause_ms=2000) as caller,
        ):
            deadline = time.monotonic() + 10
            while read_sdp_file(answered) is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert read_sdp_file(answered) is not None, "the first call was not answered"
            second = run_caller(
                "uac_expect_503.xml",
                proxy.pbx_port,
                tmp_path,
                sipp_keys(rtp_port=20004, resultfile=tmp_path / "retry_after.txt"),
                role="second-caller",
            )
            first = caller.finish(timeout_s=15)
            callee_run = callee.finish(timeout_s=0.5)
        assert_ok(proxy, second, first)
        assert proxy.wait_for_log(f"with 503: {why}")
    assert int((tmp_path / "retry_after.txt").read_text().strip()) > 0
    # The callee saw exactly one call (answered, then its BYE); it was still waiting for a second.
    assert callee_run.methods_received() == ["INVITE", "ACK", "BYE"]


@requires_sipp
@pytest.mark.timeout(40)
def test_call_over_capacity_gets_503_and_the_first_call_is_unharmed(tmp_path: Path) -> None:
    assert_second_call_refused_with_503(
        tmp_path, "  max_concurrent_calls: 1", "limits.max_concurrent_calls (1) reached"
    )


@requires_sipp
@pytest.mark.timeout(40)
def test_call_attempts_over_the_rate_get_503_and_the_first_call_is_unharmed(tmp_path: Path) -> None:
    # One new call per 20 s: the first goes through, a second within the test is refused.
    assert_second_call_refused_with_503(
        tmp_path, "  max_new_calls_per_s: 0.05", "limits.max_new_calls_per_s (0.05) reached"
    )


# 9. RTP inactivity ------------------------------------------------------------------------------

RTP_TIMEOUT_S = 2


@requires_sipp
@pytest.mark.timeout(30)
def test_call_without_rtp_is_ended_with_bye_on_both_legs(tmp_path: Path) -> None:
    with running_callherald(tmp_path, limits=f"  rtp_inactivity_timeout_s: {RTP_TIMEOUT_S}") as proxy:
        uac, uas = place_call(proxy, Direction.OUTBOUND, tmp_path, caller="uac_wait_bye.xml")
        assert_ok(proxy, uac, uas)
    for run in (uac, uas):
        messages = run.messages
        invite = next(m for m in messages if m.first_line.startswith("INVITE "))
        bye = next(m for m in messages if m.first_line.startswith("BYE ") and not m.sent)
        quiet_s = (bye.at - invite.at).total_seconds()
        # No RTP at all: the BYE comes after the timeout, within one second more (sweep period).
        assert RTP_TIMEOUT_S <= quiet_s <= RTP_TIMEOUT_S + 1.5, (run.role, quiet_s)


# 10. Ports go back to the pool ------------------------------------------------------------------


@requires_sipp
@pytest.mark.timeout(60)
def test_rtp_ports_return_to_the_pool_however_calls_end(tmp_path: Path) -> None:
    endings = [
        ("caller-bye", Direction.OUTBOUND, "uac_call.xml", "uas_call.xml"),
        ("busy", Direction.OUTBOUND, "uac_busy.xml", "uas_busy.xml"),
        ("cancel", Direction.INBOUND, "uac_cancel.xml", "uas_ring_cancel.xml"),
        ("callee-bye", Direction.INBOUND, "uac_wait_bye.xml", "uas_send_bye.xml"),
        ("rtp-timeout", Direction.OUTBOUND, "uac_wait_bye.xml", "uas_call.xml"),
        ("caller-bye-again", Direction.INBOUND, "uac_call.xml", "uas_call.xml"),
    ]
    with running_callherald(
        tmp_path, rtp_ports=8, limits=f"  rtp_inactivity_timeout_s: {RTP_TIMEOUT_S}"
    ) as proxy:
        assert proxy.rtp_max - proxy.rtp_min + 1 == 8  # two calls' worth: 2 legs x RTP+RTCP each
        for name, direction, caller, callee in endings:
            uac, uas = place_call(proxy, direction, tmp_path / name, caller=caller, callee=callee)
            assert_ok(proxy, uac, uas)
        # Every port is back only if two calls still fit at once.
        both = tmp_path / "two-at-once"
        both.mkdir()
        with start_callee(
            "uas_call.xml",
            proxy.carrier_target_port,
            both,
            sipp_keys(rtp_port=20002, portfile=both / "callee.sdp"),
            calls=2,
        ) as callee_process:
            # SIPp starts the second call 100 ms after the first; both last 600 ms, well within
            # the inactivity timeout.
            caller_run = run_caller(
                "uac_call.xml",
                proxy.pbx_port,
                both,
                sipp_keys(rtp_port=20000, portfile=both / "caller.sdp"),
                calls=2,
                pause_ms=600,
            )
            callee_run = callee_process.finish()
        assert_ok(proxy, caller_run, callee_run)
        invites = [m for m in callee_run.messages if not m.sent and m.first_line.startswith("INVITE ")]
        byes = [m for m in callee_run.messages if not m.sent and m.first_line.startswith("BYE ")]
        assert len(invites) == len(byes) == 2
        assert invites[1].at < byes[0].at  # the two calls overlapped


@requires_sipp
@pytest.mark.timeout(40)
def test_a_call_gets_the_next_free_rtp_ports_when_another_program_holds_some(tmp_path: Path) -> None:
    caller_sdp, callee_sdp = tmp_path / "caller.sdp", tmp_path / "callee.sdp"
    with contextlib.ExitStack() as held, running_callherald(tmp_path, rtp_ports=8) as proxy:
        # Pairs at min, min+2, min+4, min+6; the first call starts at a random one. Another
        # program holds the RTCP port of the first pair and the RTP port of the third: a call
        # fits only on the other two, and from any start at least one held pair is tried.
        for port in (proxy.rtp_min + 1, proxy.rtp_min + 4):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            sock.bind((LOOPBACK, port))
        caller, callee = tone_call(proxy, Direction.INBOUND, tmp_path)
        log = proxy.log_text()

    to_caller, to_callee = read_sdp_file(caller_sdp), read_sdp_file(callee_sdp)
    assert to_caller is not None
    assert to_callee is not None
    assert {to_caller[1], to_callee[1]} == {proxy.rtp_min + 2, proxy.rtp_min + 6}
    for sender, receiver in ((callee, caller), (caller, callee)):
        heard = relay_report(sender, receiver)
        assert heard.foreign == 0
        assert heard.loss(sender.sent) < 0.01, (receiver.name, len(heard.indices))
    refused = {
        first
        for first in range(proxy.rtp_min, proxy.rtp_max, 2)
        if f"RTP ports {first}-{first + 1} on" in log
    }
    assert refused
    assert refused <= {proxy.rtp_min, proxy.rtp_min + 4}
    for first in refused:
        assert f"RTP ports {first}-{first + 1} on 127.0.0.1 cannot be bound" in log
    assert "media-failed" not in log
    assert "Traceback" not in log
