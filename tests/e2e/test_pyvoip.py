"""Interoperability with a pyVoIP 1.6.8 phone registered to callherald as a PBX extension.

The phone runs in a child process (``tests/e2e/pyvoip_phone.py``) and registers to callherald's
PBX listener with the trunk account "201". SIPp plays the carrier; the media on the carrier side
is a socket the test owns, so the audio is checked where it arrives:

1. registration: digest challenge and answer, the phone ends REGISTERED (or FAILED with a wrong
   password);
2. outbound: the phone calls through callherald to a SIPp UAS and sends a 1000 Hz tone, which the
   test's socket must receive from callherald's RTP port as µ-law with 1000 Hz dominant;
3. inbound: a SIPp UAC calls callherald, which rings the registered contact; the phone answers,
   the test's socket sends 440 Hz, the phone's ``read_audio`` must hear 440 Hz; then either side
   hangs up and both must end.
"""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.rtp.g711 import PCMU_PAYLOAD_TYPE, SAMPLE_RATE_HZ, ULAW_SILENCE, ulaw_decode, ulaw_encode
from proxy.rtp.packet import RtpPacket
from tests.e2e.harness import (
    CallheraldProcess,
    free_port,
    running_callherald,
    sipp_available,
    start_sipp,
    stop_process,
)
from tests.e2e.pyvoip_phone import PyvoipPhone, SipTraceEntry, running_phone, tone_pcm8

pytestmark = pytest.mark.timeout(90)

LOOPBACK = "127.0.0.1"
EXTENSION = "201"
PASSWORD = "s3cret-201"
PASSWORD_ENV = "CALLHERALD_TEST_TRUNK_PASSWORD"
REALM = "callherald"
TRUNK_YAML = f"""\
  trunk_accounts:
    - username: "{EXTENSION}"
      password: {{env: {PASSWORD_ENV}}}
      realm: {REALM}
"""
DIALLED = "4930123456"
PYVOIP_EXPIRES_S = 120  # what pyVoIP 1.6.8 asks for
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
FRAME_S = 0.02
OUTBOUND_TONE_HZ = 1000.0
INBOUND_TONE_HZ = 440.0
TONE_S = 2.0
MIN_TONE_S = 1.0  # at least this much tone must arrive
FREQUENCY_TOLERANCE_HZ = 5.0
MIN_TONE_ENERGY_SHARE = 0.8  # of the spectrum's energy within ±20 Hz of the tone
SIPP_HANGUP_AFTER_S = 8.0  # pyvoip_carrier_uac.xml: BYE from SIPp this long after its ACK

needs_sipp = pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed")


# Helpers -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """One datagram the test's media socket got."""

    source: tuple[str, int]
    packet: RtpPacket


def port_outside(proxy: CallheraldProcess) -> int:
    """A free UDP port that is not in callherald's RTP range."""
    for _ in range(100):
        port = free_port()
        if not proxy.rtp_min <= port <= proxy.rtp_max:
            return port
    raise RuntimeError("no free port outside the RTP range")


@contextlib.contextmanager
def media_socket(proxy: CallheraldProcess) -> Iterator[socket.socket]:
    """The test's own RTP endpoint on the carrier side, outside callherald's RTP range."""
    for _ in range(100):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOOPBACK, 0))
        if not proxy.rtp_min <= sock.getsockname()[1] <= proxy.rtp_max:
            break
        sock.close()
    else:
        raise RuntimeError("no media port outside the RTP range")
    try:
        yield sock
    finally:
        sock.close()


@contextlib.contextmanager
def callherald_with_trunk(tmp_path: Path) -> Iterator[CallheraldProcess]:
    with running_callherald(tmp_path, pbx_section_extra=TRUNK_YAML, env={PASSWORD_ENV: PASSWORD}) as proxy:
        yield proxy


@contextlib.contextmanager
def registered_phone(
    tmp_path: Path, proxy: CallheraldProcess, password: str = PASSWORD
) -> Iterator[PyvoipPhone]:
    with running_phone(
        tmp_path,
        server_port=proxy.pbx_port,
        username=EXTENSION,
        password=password,
        sip_port=port_outside(proxy),
        rtp_port=port_outside(proxy),
    ) as phone:
        yield phone


@contextlib.contextmanager
def sipp(
    scenario: str, remote: str | None, args: list[str], workdir: Path
) -> Iterator[subprocess.Popen[str]]:
    process = start_sipp(scenario, remote, ["-m", "1", "-timeout", "40s", *args], workdir)
    try:
        yield process
    finally:
        stop_process(process)


def carrier_uas(
    workdir: Path, proxy: CallheraldProcess, media: socket.socket, offer_file: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[str]]:
    """SIPp as the carrier at callherald's carrier target: answers with ``media``'s port, writes
    callherald's offered media port into ``offer_file``."""
    args = ["-p", str(proxy.carrier_target_port), "-key", "rtp_port", str(media.getsockname()[1])]
    return sipp("pyvoip_carrier_uas.xml", None, [*args, "-key", "media_file", str(offer_file)], workdir)


def wait_for_port_file(path: Path, timeout_s: float) -> int:
    """The media port SIPp's <exec> wrote into ``path``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            text = path.read_text().strip()
            if text.isdigit():
                return int(text)
        time.sleep(0.02)
    raise AssertionError(f"SIPp wrote no media port into {path} within {timeout_s} s")


def wait_exit(process: subprocess.Popen[str], timeout_s: float) -> int:
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"SIPp still running after {timeout_s} s") from None


def receive_tone(sock: socket.socket, frames: int, timeout_s: float) -> list[Received]:
    """RTP packets until ``frames`` non-silent PCMU payloads arrived or ``timeout_s`` passed."""
    received: list[Received] = []
    voiced = 0
    deadline = time.monotonic() + timeout_s
    while voiced < frames and (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            data, source = sock.recvfrom(2048)
        except TimeoutError:
            break
        packet = RtpPacket.parse(data)
        received.append(Received(source=(source[0], source[1]), packet=packet))
        if any(code != ULAW_SILENCE for code in packet.payload):
            voiced += 1
    return received


def send_tone(sock: socket.socket, destination: tuple[str, int], hz: float, seconds: float) -> int:
    """Send a µ-law tone as 20 ms RTP packets, paced in real time; return the packet count."""
    count = round(seconds / FRAME_S)
    n = np.arange(count * FRAME_SAMPLES)
    pcm = (8000 * np.sin(2 * np.pi * hz * n / SAMPLE_RATE_HZ)).astype(np.int16)
    ssrc = random.getrandbits(32)
    start = time.monotonic()
    for index in range(count):
        frame = pcm[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES]
        packet = RtpPacket(
            payload_type=PCMU_PAYLOAD_TYPE,
            sequence=index,
            timestamp=index * FRAME_SAMPLES,
            ssrc=ssrc,
            marker=index == 0,
            payload=ulaw_encode(frame),
        )
        sock.sendto(bytes(packet), destination)
        time.sleep(max(0.0, start + (index + 1) * FRAME_S - time.monotonic()))
    return count


def spectrum_peak(samples: npt.NDArray[np.float64]) -> tuple[float, float]:
    """(dominant frequency in Hz, share of the energy within ±20 Hz of it)."""
    centred = samples - samples.mean()
    power = np.abs(np.fft.rfft(centred * np.hanning(len(centred)))) ** 2
    freqs = np.fft.rfftfreq(len(centred), 1 / SAMPLE_RATE_HZ)
    peak = float(freqs[int(np.argmax(power))])
    share = float(power[np.abs(freqs - peak) <= 20].sum() / power.sum())
    return peak, share


def tag_of(header: str | None) -> str | None:
    """The ``tag`` parameter of a From or To header value."""
    for param in (header or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "tag":
            return value.strip()
    return None


def poll_status(phone: PyvoipPhone, wanted: str, timeout_s: float) -> str:
    """The phone's status once it is ``wanted``, or the last one seen after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    status = str(phone.command("status")["status"])
    while status != wanted and time.monotonic() < deadline:
        time.sleep(0.1)
        status = str(phone.command("status")["status"])
    return status


def sip_flow(phone: PyvoipPhone, proxy: CallheraldProcess) -> str:
    return f"{phone.diagnostics()}\ncallherald log:\n{proxy.log_text()[-4000:]}"


def messages(
    trace: list[SipTraceEntry], direction: str, method: str, status: int | None = None
) -> list[SipTraceEntry]:
    return [
        entry
        for entry in trace
        if entry.direction == direction and entry.method == method and entry.status == status
    ]


# The helpers themselves ---------------------------------------------------------------------------


@pytest.mark.parametrize("hz", [OUTBOUND_TONE_HZ, INBOUND_TONE_HZ, 2500.0])
def test_spectrum_peak_finds_pyvoips_pcm_tone(hz: float) -> None:
    samples = np.frombuffer(tone_pcm8(hz, 1.0), dtype=np.uint8).astype(np.float64) - 128
    peak, share = spectrum_peak(samples)
    assert peak == hz
    assert share >= 0.99


@settings(max_examples=25, deadline=None)
@given(hz=st.integers(min_value=100, max_value=3800))
def test_spectrum_peak_of_a_mulaw_round_trip_is_the_tone(hz: int) -> None:
    n = np.arange(SAMPLE_RATE_HZ)
    pcm = (8000 * np.sin(2 * np.pi * hz * n / SAMPLE_RATE_HZ)).astype(np.int16)
    peak, _ = spectrum_peak(ulaw_decode(ulaw_encode(pcm)).astype(np.float64))
    assert peak == hz


TRACE_CASES = [
    ("SIP/2.0 200 OK\r\nCSeq: 2 BYE\r\nTo: <sip:a@h>;tag=x\r\n\r\n", "BYE", 200, "<sip:a@h>;tag=x"),
    ("INVITE sip:201@h SIP/2.0\r\ncseq: 1 INVITE\r\n\r\nv=0\r\nTo: body", "INVITE", None, None),
    (
        "SIP/2.0 401 Unauthorized\r\nCSeq: 1 REGISTER\r\nto:<sip:201@h>\r\n\r\n",
        "REGISTER",
        401,
        "<sip:201@h>",
    ),
]


@pytest.mark.parametrize(("text", "method", "status", "to"), TRACE_CASES)
def test_sip_trace_entry_reads_method_status_and_headers(
    text: str, method: str, status: int | None, to: str | None
) -> None:
    entry = SipTraceEntry(t=0.0, direction="in", text=text)
    assert (entry.method, entry.status, entry.header("To")) == (method, status, to)


TAG_CASES = [
    ("<sip:a@h>;tag=abc", "abc"),
    ('"201" <sip:201@h>;x=1; Tag = 9f ', "9f"),
    ("<sip:a@h>", None),
    (None, None),
]


@pytest.mark.parametrize(("header", "tag"), TAG_CASES)
def test_tag_of(header: str | None, tag: str | None) -> None:
    assert tag_of(header) == tag


# 1. Registration ---------------------------------------------------------------------------------


REGISTRATION_CASES = [
    pytest.param(PASSWORD, "REGISTERED", id="right-password"),
    pytest.param("wrong-password", "FAILED", id="wrong-password"),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("password", "status"), REGISTRATION_CASES)
def test_phone_registers_with_digest(tmp_path: Path, password: str, status: str) -> None:
    with callherald_with_trunk(tmp_path) as proxy, registered_phone(tmp_path, proxy, password) as phone:
        started = phone.wait_event("started", 1)
        if status == "FAILED":
            # pyVoIP retries in a thread and gives up after its third failure.
            assert poll_status(phone, status, timeout_s=20) == status, sip_flow(phone, proxy)
            trace = phone.trace()
            assert messages(trace, "in", "REGISTER", 401), sip_flow(phone, proxy)
            assert not messages(trace, "in", "REGISTER", 200), sip_flow(phone, proxy)
            return
        assert started["status"] == status, sip_flow(phone, proxy)
        trace = phone.trace()
        first, challenge, answer, ok = trace[:4]
        assert (first.direction, first.method, first.header("Authorization")) == ("out", "REGISTER", None)
        assert (challenge.direction, challenge.status) == ("in", 401)
        www = challenge.header("WWW-Authenticate") or ""
        assert www.startswith("Digest ")
        assert f'realm="{REALM}"' in www
        assert (answer.direction, answer.method) == ("out", "REGISTER")
        authorization = answer.header("Authorization") or ""
        assert f'username="{EXTENSION}"' in authorization
        assert "qop" not in authorization  # pyVoIP answers RFC 2069-style, which must be accepted
        assert (ok.direction, ok.status, ok.method) == ("in", 200, "REGISTER")
        assert ok.header("Contact") == (
            f"<sip:{EXTENSION}@{LOOPBACK}:{phone.sip_port};transport=UDP>;expires={PYVOIP_EXPIRES_S}"
        )


# 2. Outbound: phone -> callherald -> SIPp UAS ----------------------------------------------------


@pytest.mark.e2e
@needs_sipp
def test_outbound_call_carries_the_phones_tone_to_the_carrier(tmp_path: Path) -> None:
    offer_file = tmp_path / "offer_port"
    with (
        callherald_with_trunk(tmp_path) as proxy,
        media_socket(proxy) as far_end,
        carrier_uas(tmp_path, proxy, far_end, offer_file) as uas,
        registered_phone(tmp_path, proxy) as phone,
    ):
        assert phone.wait_event("started", 1)["status"] == "REGISTERED", sip_flow(phone, proxy)
        placed = phone.command("call", timeout_s=15, number=DIALLED, answer_timeout_s=10)
        assert placed["state"] == "ANSWERED", sip_flow(phone, proxy)
        callherald_b_port = wait_for_port_file(offer_file, 5)
        assert proxy.rtp_min <= callherald_b_port <= proxy.rtp_max

        phone.command("send_tone", hz=OUTBOUND_TONE_HZ, seconds=TONE_S)
        received = receive_tone(far_end, frames=round(MIN_TONE_S / FRAME_S) + 10, timeout_s=TONE_S + 3)

        assert {item.source for item in received} == {(LOOPBACK, callherald_b_port)}
        assert {(item.packet.payload_type, len(item.packet.payload)) for item in received} == {
            (PCMU_PAYLOAD_TYPE, FRAME_SAMPLES)
        }
        voiced = b"".join(
            p.packet.payload for p in received if any(c != ULAW_SILENCE for c in p.packet.payload)
        )
        assert len(voiced) >= MIN_TONE_S * SAMPLE_RATE_HZ, sip_flow(phone, proxy)
        peak, share = spectrum_peak(ulaw_decode(voiced).astype(np.float64))
        assert abs(peak - OUTBOUND_TONE_HZ) <= FREQUENCY_TOLERANCE_HZ
        assert share >= MIN_TONE_ENERGY_SHARE

        assert phone.command("hangup")["state"] == "ENDED"
        assert wait_exit(uas, 10) == 0, sip_flow(phone, proxy)
        assert proxy.wait_for_log("call ended: bye-from-a", 5), proxy.log_text()
        bye_ok = phone.wait_for_sip(lambda e: (e.direction, e.method, e.status) == ("in", "BYE", 200))
        assert len(bye_ok) == 1, sip_flow(phone, proxy)


@pytest.mark.e2e
@needs_sipp
def test_phones_ack_with_a_random_to_tag_stops_the_2xx_retransmissions(tmp_path: Path) -> None:
    # pyVoIP 1.6.8 ACKs a 2xx with a new random To-tag: callherald must still find the dialog
    # (Call-ID and From-tag) and stop resending the 200 OK (RFC 3261 §13.3.1.4).
    with (
        callherald_with_trunk(tmp_path) as proxy,
        media_socket(proxy) as far_end,
        carrier_uas(tmp_path, proxy, far_end, tmp_path / "offer_port"),
        registered_phone(tmp_path, proxy) as phone,
    ):
        assert phone.command("call", timeout_s=15, number=DIALLED, answer_timeout_s=10)["state"] == "ANSWERED"
        time.sleep(2.5)  # T1 = 0.5 s: an unmatched ACK would bring the 200 again at 0.5 s and 1.5 s
        trace = phone.trace()
        phone.command("hangup")
        invite_ok = messages(trace, "in", "INVITE", 200)
        acks = messages(trace, "out", "ACK")
        # pyVoIP's call() hangs unless a 100 Trying comes before the final response.
        assert [e.status for e in trace if (e.direction, e.method) == ("in", "INVITE")] == [100, 200]
        assert (len(invite_ok), len(acks)) == (1, 1), sip_flow(phone, proxy)
        assert tag_of(acks[0].header("To")) != tag_of(invite_ok[0].header("To"))
        assert proxy.wait_for_log("call ended: bye-from-a", 5), proxy.log_text()
        assert "no ACK for 2xx" not in proxy.log_text()


# 3. Inbound: SIPp UAC -> callherald -> registered phone ------------------------------------------


HANGUP_CASES = [
    pytest.param("phone", "bye-from-b", id="phone-hangs-up"),
    pytest.param("carrier", "bye-from-a", id="carrier-hangs-up"),
]


@pytest.mark.e2e
@needs_sipp
@pytest.mark.parametrize(("hangup_by", "end_reason"), HANGUP_CASES)
def test_inbound_call_reaches_the_registered_phone_with_audio(
    tmp_path: Path, hangup_by: str, end_reason: str
) -> None:
    answer_file = tmp_path / "answer_port"
    with (
        callherald_with_trunk(tmp_path) as proxy,
        media_socket(proxy) as carrier_media,
        registered_phone(tmp_path, proxy) as phone,
    ):
        assert phone.wait_event("started", 1)["status"] == "REGISTERED", sip_flow(phone, proxy)
        with sipp(
            "pyvoip_carrier_uac.xml",
            f"{LOOPBACK}:{proxy.carrier_port}",
            [
                "-p",
                str(port_outside(proxy)),
                "-s",
                DIALLED,
                "-key",
                "rtp_port",
                str(carrier_media.getsockname()[1]),
                "-key",
                "media_file",
                str(answer_file),
            ],
            tmp_path,
        ) as uac:
            answered = phone.wait_event("answered", 10)
            assert answered["direction"] == "inbound"
            callherald_a_port = wait_for_port_file(answer_file, 5)
            assert proxy.rtp_min <= callherald_a_port <= proxy.rtp_max

            invites = messages(phone.trace(), "in", "INVITE")
            assert len(invites) == 1, sip_flow(phone, proxy)
            assert (
                invites[0].first_line
                == f"INVITE sip:{EXTENSION}@{LOOPBACK}:{phone.sip_port};transport=UDP SIP/2.0"
            )

            send_tone(carrier_media, (LOOPBACK, callherald_a_port), INBOUND_TONE_HZ, TONE_S)
            time.sleep(0.3)  # the last packets reach the phone's buffer
            audio_path = tmp_path / "phone-heard.u8"
            phone.command("save_audio", path=str(audio_path))
            heard = np.frombuffer(audio_path.read_bytes(), dtype=np.uint8).astype(np.float64) - 128
            assert len(heard) >= MIN_TONE_S * SAMPLE_RATE_HZ, sip_flow(phone, proxy)
            peak, share = spectrum_peak(heard)
            assert abs(peak - INBOUND_TONE_HZ) <= FREQUENCY_TOLERANCE_HZ
            assert share >= MIN_TONE_ENERGY_SHARE

            if hangup_by == "phone":
                assert phone.command("hangup")["state"] == "ENDED"
            ended = phone.wait_event("ended", SIPP_HANGUP_AFTER_S + 5)
            assert ended["state"] == "ENDED"
            assert wait_exit(uac, 10) == 0, sip_flow(phone, proxy)
        assert proxy.wait_for_log(f"call ended: {end_reason}", 5), proxy.log_text()
        # The BYE and its 200 OK, in the direction of the hang-up.
        bye_from, ok_from = ("out", "in") if hangup_by == "phone" else ("in", "out")
        phone.wait_for_sip(lambda e: (e.direction, e.method, e.status) == (ok_from, "BYE", 200))
        trace = phone.trace()
        assert (len(messages(trace, bye_from, "BYE")), len(messages(trace, ok_from, "BYE", 200))) == (1, 1)
