"""More of the call path through a real ``callherald serve`` against SIPp on 127.0.0.1.

Registration with the carrier (digest challenge, refresh, back-off after a refusal), SIP over
TCP on both listeners, early media, an SSRC change and a media move by re-INVITE, INFO and
UPDATE within a dialog, a cancelled re-INVITE, and Max-Forwards. The SIPp plumbing and the media peers are those of
``test_sipp_calls`` and ``media_peer``; the scenarios are ``tests/e2e/sipp/more_*.xml``. Every
process is started with a time limit and stopped by its PID.
"""

from __future__ import annotations

import itertools
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from proxy.b2bua.registration import refresh_delay_s
from proxy.rtp.g711 import PCMU_PAYLOAD_TYPE
from proxy.rtp.packet import RtpPacket
from proxy.sip import Request, parse_message
from proxy.sip.auth import Credentials, verify_credentials
from tests.e2e.harness import (
    CallheraldProcess,
    SipPorts,
    pick_ports,
    running_callherald,
    sipp_available,
    stop_callherald,
)
from tests.e2e.media_peer import (
    LOOPBACK,
    SAMPLES_PER_PACKET,
    MediaPeer,
    read_sdp_file,
    relay_report,
    tone_payloads,
)
from tests.e2e.test_sipp_calls import (
    BackgroundSipp,
    Direction,
    SippRun,
    TracedMessage,
    assert_ok,
    place_call,
    run_caller,
    sipp_keys,
    start_callee,
    traced_messages,
    wait_until_bound,
)

__all__ = ["SsrcSwitchingPeer", "body_of", "wall_clock"]

pytestmark = pytest.mark.e2e
requires_sipp = pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed")

SIPP_TIME_LIMIT_S = 40


# Local helpers ----------------------------------------------------------------------------------


def _tcp_listening_ports() -> set[int]:
    ports: set[int] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":  # TCP_LISTEN
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _wait_until_listening_tcp(port: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while port not in _tcp_listening_ports():
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on TCP port {port} within {timeout_s} s")
        time.sleep(0.01)


def _wait_for_file(path: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def body_of(message: TracedMessage) -> str:
    """A traced message's body, without the blank line that ends it."""
    return message.text.split("\n\n", 1)[1].strip() if "\n\n" in message.text else ""


def wall_clock(monotonic_s: float) -> datetime:
    """A ``time.monotonic`` reading as local wall-clock time, comparable with SIPp trace times."""
    return datetime.fromtimestamp(monotonic_s + time.time() - time.monotonic())


def _requests(run: SippRun, method: str, *, sent: bool = False) -> list[TracedMessage]:
    return [m for m in run.messages if m.sent is sent and m.first_line.startswith(f"{method} ")]


def _responses(run: SippRun, *, sent: bool = False) -> list[TracedMessage]:
    return [m for m in run.messages if m.sent is sent and m.first_line.startswith("SIP/2.0 ")]


def _port_of(mline: str) -> int:
    return int(mline.split()[1])


def _in_rtp_range(proxy: CallheraldProcess, port: int) -> bool:
    return proxy.rtp_min <= port <= proxy.rtp_max and port % 2 == 0


@dataclass
class SsrcSwitchingPeer(MediaPeer):
    """A media peer whose stream restarts at packet ``switch_at`` with a new SSRC and new
    sequence and timestamp bases, as after a source change (RFC 3550 §8.2)."""

    switch_at: int = 0
    new_ssrc: int = 0
    new_first_sequence: int = 0
    new_first_timestamp: int = 0

    def packet(self, index: int) -> bytes:
        if index < self.switch_at:
            return super().packet(index)
        offset = index - self.switch_at
        return bytes(
            RtpPacket(
                payload_type=PCMU_PAYLOAD_TYPE,
                sequence=(self.new_first_sequence + offset) & 0xFFFF,
                timestamp=(self.new_first_timestamp + offset * SAMPLES_PER_PACKET) & 0xFFFFFFFF,
                ssrc=self.new_ssrc,
                marker=offset == 0,
                payload=self.payloads[index],
            )
        )


def _stream_from(sender: MediaPeer, receiver: MediaPeer) -> list[tuple[bytes, tuple[str, int]]]:
    """The datagrams ``receiver`` got that carry one of ``sender``'s payloads, in arrival order."""
    payloads = set(sender.payloads)
    found: list[tuple[bytes, tuple[str, int]]] = []
    for datagram in receiver.received:
        try:
            packet = RtpPacket.parse(datagram.data)
        except ValueError:
            continue
        if packet.payload in payloads:
            found.append((datagram.data, datagram.source))
    return found


def test_ssrc_switching_peer_restarts_its_stream() -> None:
    with SsrcSwitchingPeer(
        "p",
        ssrc=0xAAAA0001,
        payloads=tone_payloads(1000.0, 4),
        switch_at=2,
        new_ssrc=0xBBBB0002,
        new_first_sequence=65535,
        new_first_timestamp=0xFFFFFF60,
    ) as peer:
        packets = [RtpPacket.parse(peer.packet(index)) for index in range(4)]
    assert [(p.sequence, p.timestamp, p.ssrc, p.marker) for p in packets] == [
        (1000, 160_000, 0xAAAA0001, True),
        (1001, 160_160, 0xAAAA0001, False),
        (65535, 0xFFFFFF60, 0xBBBB0002, True),
        (0, 0, 0xBBBB0002, False),
    ]
    assert [p.payload for p in packets] == tone_payloads(1000.0, 4)


_TCP_TRACE = (
    "----------------------------------------------- 2026-11-28 05:22:12.520576\n"
    "TCP message sent (30 bytes):\n\n"
    "INFO sip:1@127.0.0.1 SIP/2.0\nCSeq: 2 INFO\n\nSignal=5\nDuration=160\n\n"
)


def test_tcp_trace_is_read_and_bodies_split() -> None:
    run = SippRun("r", 0, "", _TCP_TRACE, 0.0)
    (message,) = traced_messages(run.trace)
    assert (message.sent, message.first_line, message.header("cseq")) == (
        True,
        "INFO sip:1@127.0.0.1 SIP/2.0",
        "2 INFO",
    )
    assert body_of(message) == "Signal=5\nDuration=160"


# 1. Registration with the carrier ---------------------------------------------------------------

REGISTRAR_USER = "acme-trunk"
REGISTRAR_REALM = "carrier.test"
REGISTRAR_NONCE = "9c1b7e40d2a35f68"
REGISTRAR_SECRET = "reg-S3cret-77"
REGISTRAR_SECRET_ENV = "CALLHERALD_TEST_REGISTRAR_SECRET"
INTERVAL_S = 60  # the smallest interval_s the configuration accepts
GRANT_S = 25  # the registrar grants less than asked; the smallest grant that is refreshed at 80 %
REFRESH_AT_S = 0.8 * GRANT_S
RETRY_MIN_S = 1
RETRY_MAX_S = 2
TIMER_SLACK_S = 0.5  # how late callherald's timer plus the loopback hop may be


def _registration_section(realm: str | None = None) -> str:
    return (
        "  credentials:\n"
        f'    username: "{REGISTRAR_USER}"\n'
        f"    password: {{env: {REGISTRAR_SECRET_ENV}}}\n"
        + (f"    realm: {realm}\n" if realm is not None else "")
        + "  registration:\n"
        f"    interval_s: {INTERVAL_S}\n"
        f"    retry_min_s: {RETRY_MIN_S}\n"
        f"    retry_max_s: {RETRY_MAX_S}\n"
    )


def _start_registrar(scenario: str, port: int, workdir: Path, keys: list[str]) -> BackgroundSipp:
    """A SIPp registrar on ``port`` for one registration dialog, bound when this returns."""
    args = ["-p", str(port), "-m", "1", "-timeout", f"{SIPP_TIME_LIMIT_S}s", *keys]
    registrar = BackgroundSipp(scenario, None, workdir, args, "registrar")
    try:
        wait_until_bound(port)
    except TimeoutError as error:
        errors = "".join(path.read_text(errors="replace") for path in (workdir / "registrar").glob("*.err"))
        raise RuntimeError(f"{registrar.finish(timeout_s=0).report()}\n{errors}") from error
    return registrar


def test_refresh_delay_for_the_grant_is_80_percent() -> None:
    assert refresh_delay_s(GRANT_S) == REFRESH_AT_S == 20.0


@requires_sipp
@pytest.mark.timeout(60)
def test_registration_answers_the_challenge_refreshes_and_unregisters(tmp_path: Path) -> None:
    ports = pick_ports()
    events = tmp_path / "registrar.txt"
    keys = sipp_keys(
        realm=REGISTRAR_REALM,
        nonce=REGISTRAR_NONCE,
        auth_user=REGISTRAR_USER,
        auth_password=REGISTRAR_SECRET,
        grant_s=GRANT_S,
        resultfile=events,
    )
    with _start_registrar("more_registrar.xml", ports.carrier_target, tmp_path, keys) as registrar:
        with running_callherald(
            tmp_path,
            ports=ports,
            carrier_section_extra=_registration_section(),
            env={REGISTRAR_SECRET_ENV: REGISTRAR_SECRET},
        ) as proxy:
            saw_refresh = _wait_for_file(events, timeout_s=GRANT_S + 5)
            stop_callherald(proxy)  # it un-registers on the way out
        run = registrar.finish(timeout_s=5)
    assert saw_refresh, "no refresh REGISTER"
    assert_ok(proxy, run)
    assert events.read_text().splitlines() == ["refreshed", "unregistered Expires: 0"]
    assert REGISTRAR_SECRET not in proxy.log_text()

    registers = _requests(run, "REGISTER")
    aor = f"<sip:{REGISTRAR_USER}@{LOOPBACK}>"
    contact = f"<sip:{REGISTRAR_USER}@{LOOPBACK}:{ports.carrier}>"
    assert [m.first_line for m in registers] == [
        f"REGISTER sip:{LOOPBACK}:{ports.carrier_target} SIP/2.0"
    ] * 4
    # §10.2.4: one Call-ID and From tag for the binding, CSeq one up per request.
    assert [m.header("CSeq") for m in registers] == [f"{n} REGISTER" for n in (1, 2, 3, 4)]
    assert len({m.header("Call-ID") for m in registers}) == 1
    assert len({m.header("From") for m in registers}) == 1
    assert [(m.header("To"), m.header("Contact")) for m in registers] == [(aor, contact)] * 4
    assert [m.header("Expires") for m in registers] == [str(INTERVAL_S)] * 3 + ["0"]
    assert (registers[0].header("From") or "").startswith(f"{aor};tag=")
    # The first REGISTER goes without credentials; the retry answers the challenge (§22.2) and
    # later requests carry credentials up front: same nonce, next nonce-count (RFC 2617 §3.2.2).
    assert registers[0].header("Authorization") is None
    answers = [Credentials.parse(m.header("Authorization") or "") for m in registers[1:]]
    assert [(c.username, c.realm, c.nonce, c.qop, c.nc) for c in answers] == [
        (REGISTRAR_USER, REGISTRAR_REALM, REGISTRAR_NONCE, "auth", f"0000000{n}") for n in (1, 2, 3)
    ]
    assert len({c.cnonce for c in answers}) == 3
    for credentials in answers:
        assert credentials.uri == f"sip:{LOOPBACK}:{ports.carrier_target}"
        assert verify_credentials(
            credentials, method="REGISTER", password=REGISTRAR_SECRET, expected_realm=REGISTRAR_REALM
        )
    # The refresh comes when 80 % of the grant has passed, counted from the granted REGISTER.
    refresh_after_s = (registers[2].at - registers[1].at).total_seconds()
    assert REFRESH_AT_S - 0.1 <= refresh_after_s <= REFRESH_AT_S + TIMER_SLACK_S, refresh_after_s
    assert refresh_after_s < GRANT_S


@requires_sipp
@pytest.mark.timeout(30)
def test_refused_registration_is_retried_after_a_doubling_back_off(tmp_path: Path) -> None:
    ports = pick_ports()
    with (
        _start_registrar("more_registrar_403.xml", ports.carrier_target, tmp_path, []) as registrar,
        running_callherald(
            tmp_path,
            ports=ports,
            carrier_section_extra=_registration_section(),
            env={REGISTRAR_SECRET_ENV: REGISTRAR_SECRET},
        ) as proxy,
    ):
        run = registrar.finish(timeout_s=RETRY_MIN_S + 2 * RETRY_MAX_S + 5)
    assert_ok(proxy, run)
    registers = _requests(run, "REGISTER")
    assert [m.header("CSeq") for m in registers] == [f"{n} REGISTER" for n in (1, 2, 3, 4)]
    assert len({m.header("Call-ID") for m in registers}) == 1
    assert {m.header("Authorization") for m in registers} == {None}
    # Each 403 is sent the moment its REGISTER arrives; the next REGISTER follows after the
    # back-off: retry_min_s, then doubling, capped at retry_max_s.
    gaps_s = [(later.at - earlier.at).total_seconds() for earlier, later in itertools.pairwise(registers)]
    expected_s = [RETRY_MIN_S, min(2 * RETRY_MIN_S, RETRY_MAX_S), RETRY_MAX_S]
    for gap_s, want_s in zip(gaps_s, expected_s, strict=True):
        assert want_s - 0.05 <= gap_s <= want_s + TIMER_SLACK_S, (gaps_s, expected_s)


@requires_sipp
@pytest.mark.timeout(30)
def test_registration_answers_no_challenge_for_another_realm(tmp_path: Path) -> None:
    ports = pick_ports()
    keys = sipp_keys(realm="elsewhere.test", nonce=REGISTRAR_NONCE)
    with (
        _start_registrar("more_registrar_realm.xml", ports.carrier_target, tmp_path, keys) as registrar,
        running_callherald(
            tmp_path,
            ports=ports,
            carrier_section_extra=_registration_section(realm=REGISTRAR_REALM),
            env={REGISTRAR_SECRET_ENV: REGISTRAR_SECRET},
        ) as proxy,
    ):
        run = registrar.finish(timeout_s=RETRY_MIN_S + 5)
    assert_ok(proxy, run)
    first, second = _requests(run, "REGISTER")
    # A challenge for a realm other than the configured one is a failure: no credentials for it,
    # and the next attempt only after the back-off.
    assert (first.header("Authorization"), second.header("Authorization")) == (None, None)
    assert (second.at - first.at).total_seconds() >= RETRY_MIN_S - 0.05


# 2. SIP over TCP ----------------------------------------------------------------------------------


def _call_over_tcp(tmp_path: Path) -> tuple[SipPorts, SippRun, SippRun]:
    """One outbound call, caller hangs up, with SIPp and both callherald listeners on TCP."""
    ports = pick_ports()
    with running_callherald(tmp_path, ports=ports, transport="tcp") as proxy:
        callee_keys = sipp_keys(rtp_port=20002, portfile=tmp_path / "callee.sdp")
        args = ["-t", "t1", "-p", str(ports.carrier_target), "-m", "1", "-timeout", "20s", *callee_keys]
        with BackgroundSipp("uas_call.xml", None, tmp_path, args, "callee") as callee:
            _wait_until_listening_tcp(ports.carrier_target)
            caller_keys = sipp_keys(rtp_port=20000, portfile=tmp_path / "caller.sdp")
            uac = run_caller("uac_call.xml", proxy.pbx_port, tmp_path, ["-t", "t1", *caller_keys])
            uas = callee.finish()
        assert_ok(proxy, uac, uas)
    return ports, uac, uas


@requires_sipp
@pytest.mark.timeout(30)
def test_call_over_tcp_on_both_listeners(tmp_path: Path) -> None:
    ports, uac, uas = _call_over_tcp(tmp_path)
    caller_messages, callee_messages = traced_messages(uac.trace), traced_messages(uas.trace)
    assert "UDP message" not in uac.trace + uas.trace
    caller_finals = [
        m.first_line for m in caller_messages if not m.sent and not m.first_line.startswith("SIP/2.0 1")
    ]
    assert caller_finals == ["SIP/2.0 200 OK", "SIP/2.0 200 OK"]  # INVITE, then BYE
    assert [m.first_line.split()[0] for m in callee_messages if not m.sent] == ["INVITE", "ACK", "BYE"]
    via = callee_messages[0].header("Via") or ""
    assert via.startswith(f"SIP/2.0/TCP {LOOPBACK}:{ports.carrier};branch=z9hG4bK"), via
    # The caller's own Via comes back in the responses over its connection (§18.2.2).
    sent_via = next(m for m in caller_messages if m.sent).header("Via")
    answer = next(m for m in caller_messages if not m.sent and m.first_line == "SIP/2.0 200 OK")
    assert (answer.header("Via") or "").startswith(sent_via or "-")


@requires_sipp
@pytest.mark.timeout(30)
def test_contact_on_a_tcp_listener_names_tcp(tmp_path: Path) -> None:
    _, uac, uas = _call_over_tcp(tmp_path)
    invite = traced_messages(uas.trace)[0]
    answer = next(m for m in traced_messages(uac.trace) if not m.sent and m.first_line == "SIP/2.0 200 OK")
    assert (invite.header("Contact") or "").endswith(";transport=tcp>"), invite.header("Contact")
    assert (answer.header("Contact") or "").endswith(";transport=tcp>"), answer.header("Contact")


# 3. Early media -------------------------------------------------------------------------------

EARLY_PACKETS = 25  # 0.5 s, all sent within the callee's 1.5 s between its 183 and its 200


@requires_sipp
@pytest.mark.timeout(30)
def test_early_media_after_183_flows_both_ways_before_the_answer(tmp_path: Path) -> None:
    caller_sdp, callee_sdp = tmp_path / "caller.sdp", tmp_path / "callee.sdp"
    with (
        running_callherald(tmp_path) as proxy,
        MediaPeer("caller", ssrc=0x11110001, payloads=tone_payloads(1000.0, EARLY_PACKETS)) as caller,
        MediaPeer("callee", ssrc=0x22220002, payloads=tone_payloads(440.0, EARLY_PACKETS)) as callee,
    ):
        caller.start(caller_sdp)
        callee.start(callee_sdp)
        uac, uas = place_call(
            proxy,
            Direction.OUTBOUND,
            tmp_path,
            caller="more_uac_early_media.xml",
            callee="more_uas_early_media.xml",
            caller_keys={"rtp_port": caller.port, "portfile": caller_sdp},
            callee_keys={"rtp_port": callee.port, "portfile": callee_sdp},
        )
        caller.stop()
        callee.stop()
        assert_ok(proxy, uac, uas)

    # The caller got callherald's SDP in the 183, and the same in the 200.
    early_c, early_m, answer_c, answer_m = (tmp_path / "caller.txt").read_text().strip().split("|")
    assert (early_c, answer_c, answer_m) == (f"c=IN IP4 {LOOPBACK}", early_c, early_m)
    to_caller, to_callee = read_sdp_file(caller_sdp), read_sdp_file(callee_sdp)
    assert to_caller == (LOOPBACK, _port_of(early_m))
    assert to_callee is not None
    assert _in_rtp_range(proxy, to_caller[1])
    assert _in_rtp_range(proxy, to_callee[1])
    assert to_caller[1] != to_callee[1]
    assert [m.first_line for m in _responses(uac) if not m.first_line.startswith("SIP/2.0 100")] == [
        "SIP/2.0 183 Session Progress",
        "SIP/2.0 200 OK",
        "SIP/2.0 200 OK",
    ]

    caller_answered = next(m.at for m in _responses(uac) if m.first_line == "SIP/2.0 200 OK")
    callee_answered = next(m.at for m in _responses(uas, sent=True) if m.first_line == "SIP/2.0 200 OK")
    for sender, receiver, anchor, answered in (
        (callee, caller, to_caller, caller_answered),
        (caller, callee, to_callee, callee_answered),
    ):
        heard = relay_report(sender, receiver)
        assert heard.indices == tuple(range(EARLY_PACKETS)), (receiver.name, heard.indices)
        assert heard.sources == {anchor}, (receiver.name, heard.sources)
        assert heard.foreign == 0
        # Every packet arrived while the call was still unanswered.
        last_arrival = wall_clock(receiver.received[-1].at)
        assert last_arrival < answered, (receiver.name, last_arrival, answered)


# 4. SSRC change and a media move by re-INVITE ---------------------------------------------------

REINVITE_AT_S = 1.6  # after the answer (more_uac_relatch.xml)
SSRC_SWITCH_AT = 30
MOVED_PACKETS = 50  # 1 s from the new port, within the 1.5 s between the move and the BYE
CALLEE_PACKETS = 130  # 2.6 s from the INVITE, over before the BYE at least 3.1 s after it


@dataclass(frozen=True, slots=True)
class _MovedCall:
    proxy: CallheraldProcess
    caller: MediaPeer
    moved: MediaPeer
    callee: MediaPeer
    caller_run: SippRun
    callee_run: SippRun


def _call_that_moves_its_media(tmp_path: Path, *, first_packets: int, answer_delay_ms: int) -> _MovedCall:
    """A call whose caller switches SSRC mid-stream, then re-INVITEs to a new media port.

    The caller's first stream (``first_packets``, SSRC switch at ``SSRC_SWITCH_AT``) starts at
    the answer; the re-INVITE follows ``REINVITE_AT_S`` later and the callee answers it after
    ``answer_delay_ms``; the stream from the new port starts when that answer arrives.
    """
    caller_sdp, moved_sdp, callee_sdp = (
        tmp_path / name for name in ("caller.sdp", "moved.sdp", "callee.sdp")
    )
    with (
        running_callherald(tmp_path) as proxy,
        SsrcSwitchingPeer(
            "caller",
            ssrc=0x11110001,
            payloads=tone_payloads(1000.0, first_packets),
            switch_at=SSRC_SWITCH_AT,
            new_ssrc=0x5555AAAA,
            new_first_sequence=40_000,
            new_first_timestamp=9_000_000,
        ) as caller,
        MediaPeer("moved", ssrc=0x33330003, payloads=tone_payloads(700.0, MOVED_PACKETS)) as moved,
        MediaPeer("callee", ssrc=0x22220002, payloads=tone_payloads(440.0, CALLEE_PACKETS)) as callee,
    ):
        assert not {*caller.payloads} & {*moved.payloads}
        for peer, sdp_file in ((caller, caller_sdp), (moved, moved_sdp), (callee, callee_sdp)):
            peer.start(sdp_file)
        uac, uas = place_call(
            proxy,
            Direction.OUTBOUND,
            tmp_path,
            caller="more_uac_relatch.xml",
            callee="more_uas_reinvite.xml",
            pause_ms=answer_delay_ms,
            caller_keys={
                "rtp_port": caller.port,
                "rtp_port2": moved.port,
                "portfile": caller_sdp,
                "portfile2": moved_sdp,
            },
            callee_keys={"rtp_port": callee.port, "portfile": callee_sdp},
        )
        for peer in (caller, moved, callee):
            peer.stop()
        assert_ok(proxy, uac, uas)
    return _MovedCall(proxy, caller, moved, callee, uac, uas)


def _assert_media_followed_the_move(call: _MovedCall, tmp_path: Path) -> None:
    caller, moved, callee = call.caller, call.moved, call.callee
    # The move is relayed to the callee; neither side's anchor port changes.
    answer_m, reanswer_m = (tmp_path / "caller.txt").read_text().strip().split("|")
    offer_c, offer_m, reoffer_c, reoffer_m = (tmp_path / "callee.txt").read_text().strip().split("|")
    assert reanswer_m == answer_m
    assert (reoffer_c, reoffer_m) == (offer_c, offer_m) == (f"c=IN IP4 {LOOPBACK}", offer_m)
    a_anchor, b_anchor = (LOOPBACK, _port_of(answer_m)), (LOOPBACK, _port_of(offer_m))
    invites = [m.header("CSeq") for m in _requests(call.callee_run, "INVITE")]
    assert list(dict.fromkeys(invites)) == ["1 INVITE", "2 INVITE"]  # retransmissions aside
    assert (caller.sent, moved.sent, callee.sent) == (len(caller.payloads), MOVED_PACKETS, CALLEE_PACKETS)

    # Toward the callee: the relay forwards datagrams unchanged, so the new SSRC, sequence and
    # timestamp arrive as sent, every packet, in order; then every packet from the new port.
    first_stream = [(caller.packet(i), b_anchor) for i in range(len(caller.payloads))]
    assert _stream_from(caller, callee) == first_stream
    assert _stream_from(moved, callee) == [(moved.packet(i), b_anchor) for i in range(MOVED_PACKETS)]

    # Toward the caller: the callee's stream goes to the old port until the move, then to the
    # new one; nothing lost, nothing sent to both.
    before, after = relay_report(callee, caller), relay_report(callee, moved)
    assert before.sources == after.sources == {a_anchor}
    assert before.indices
    assert after.indices
    assert before.in_order
    assert after.in_order
    assert max(before.indices) < min(after.indices)
    assert before.indices + after.indices == tuple(range(CALLEE_PACKETS))


@requires_sipp
@pytest.mark.timeout(40)
def test_ssrc_change_and_media_move_by_reinvite_keep_audio_flowing(tmp_path: Path) -> None:
    # The first stream (1.2 s) is over before the re-INVITE; the callee answers it at once.
    call = _call_that_moves_its_media(tmp_path, first_packets=60, answer_delay_ms=0)
    _assert_media_followed_the_move(call, tmp_path)


@requires_sipp
@pytest.mark.timeout(40)
def test_media_move_while_the_old_port_still_sends_until_the_answer(tmp_path: Path) -> None:
    # RFC 3264 §8.3.1: the offerer keeps its old stream until the answer comes. Here the old
    # stream (1.8 s) runs 0.2 s into the 0.5 s the callee takes to answer the re-INVITE.
    call = _call_that_moves_its_media(tmp_path, first_packets=90, answer_delay_ms=500)
    _assert_media_followed_the_move(call, tmp_path)


# 5. INFO and UPDATE within the dialog -------------------------------------------------------------

DTMF_RELAY_BODY = "Signal=5\nDuration=160"


@requires_sipp
@pytest.mark.timeout(30)
@pytest.mark.parametrize("direction", list(Direction))
def test_info_and_update_are_relayed_within_the_dialog(tmp_path: Path, direction: Direction) -> None:
    with running_callherald(tmp_path) as proxy:
        uac, uas = place_call(
            proxy, direction, tmp_path, caller="more_uac_info_update.xml", callee="more_uas_info_update.xml"
        )
        assert_ok(proxy, uac, uas)

    (info_sent,) = _requests(uac, "INFO", sent=True)
    (info_got,) = _requests(uas, "INFO")
    assert info_got.header("Content-Type") == "application/dtmf-relay"
    assert body_of(info_got) == body_of(info_sent) == DTMF_RELAY_BODY
    # The callee's 200s to the INFO and the UPDATE are relayed to the caller, in order
    # (retransmitted 200s to the INVITE aside).
    callee_answers = [
        (m.first_line, m.header("CSeq"))
        for m in _responses(uas, sent=True)
        if not (m.header("CSeq") or "").endswith(" INVITE")
    ]
    assert callee_answers == [
        ("SIP/2.0 200 OK", info_got.header("CSeq")),
        ("SIP/2.0 200 OK", _requests(uas, "UPDATE")[0].header("CSeq")),
        ("SIP/2.0 200 OK", _requests(uas, "BYE")[0].header("CSeq")),
    ]
    caller_answers = [
        (m.first_line, m.header("CSeq")) for m in _responses(uac) if m.first_line != "SIP/2.0 100 Trying"
    ]
    assert list(dict.fromkeys(caller_answers)) == [
        ("SIP/2.0 200 OK", "1 INVITE"),
        ("SIP/2.0 200 OK", "2 INFO"),
        ("SIP/2.0 200 OK", "3 UPDATE"),
        ("SIP/2.0 200 OK", "4 BYE"),
    ]
    # The UPDATE's offer reaches the callee re-anchored on the callee-side port, still sendonly;
    # the answer reaches the caller re-anchored on the caller-side port, recvonly (RFC 3264 §6.1).
    offer_m, update_c, update_m, update_direction = (tmp_path / "callee.txt").read_text().strip().split("|")
    assert (update_c, update_m, update_direction) == (f"c=IN IP4 {LOOPBACK}", offer_m, "a=sendonly")
    answer_m, reply_c, reply_m, reply_direction = (tmp_path / "caller.txt").read_text().strip().split("|")
    assert (reply_c, reply_m, reply_direction) == (f"c=IN IP4 {LOOPBACK}", answer_m, "a=recvonly")
    assert _in_rtp_range(proxy, _port_of(offer_m))
    assert _in_rtp_range(proxy, _port_of(answer_m))
    assert offer_m != answer_m


@requires_sipp
@pytest.mark.timeout(30)
@pytest.mark.parametrize("direction", list(Direction))
def test_a_cancelled_reinvite_is_cancelled_on_the_far_side_too(tmp_path: Path, direction: Direction) -> None:
    # RFC 3261 §9.2: the caller's CANCEL of its re-INVITE gets 200 and the re-INVITE 487;
    # callherald CANCELs the re-INVITE it relayed to the callee, which answers 487 (§9.1); the
    # call goes on to its BYE.
    with running_callherald(tmp_path) as proxy:
        uac, uas = place_call(
            proxy,
            direction,
            tmp_path,
            caller="more_uac_reinvite_cancel.xml",
            callee="more_uas_reinvite_cancel.xml",
        )
        assert_ok(proxy, uac, uas)
        assert proxy.wait_for_log("cancelled its re-INVITE", timeout_s=2)

    assert (tmp_path / "caller.txt").read_text().strip() == "2 CANCEL|2 INVITE"
    reinvite_cseq, cancel_cseq = (tmp_path / "callee.txt").read_text().strip().split("|")
    assert cancel_cseq == reinvite_cseq.replace("INVITE", "CANCEL")
    (_, relayed) = _requests(uas, "INVITE")
    (cancel,) = _requests(uas, "CANCEL")
    assert cancel.header("Via") == relayed.header("Via")


# 6. Max-Forwards ----------------------------------------------------------------------------------


@requires_sipp
@pytest.mark.timeout(30)
@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize(("arriving", "leaving"), [(5, "4"), (1, "0")])
def test_max_forwards_is_decremented_across_callherald(
    tmp_path: Path, direction: Direction, arriving: int, leaving: str
) -> None:
    with running_callherald(tmp_path) as proxy:
        uac, uas = place_call(
            proxy,
            direction,
            tmp_path,
            caller="more_uac_max_forwards.xml",
            caller_keys={"max_forwards": arriving},
        )
        assert_ok(proxy, uac, uas)
    (sent,) = _requests(uac, "INVITE", sent=True)
    (relayed,) = _requests(uas, "INVITE")
    assert (sent.header("Max-Forwards"), relayed.header("Max-Forwards")) == (str(arriving), leaving)


@requires_sipp
@pytest.mark.timeout(30)
def test_invite_without_hops_left_gets_483_and_goes_nowhere(tmp_path: Path) -> None:
    with running_callherald(tmp_path) as proxy:
        callee_keys = sipp_keys(rtp_port=20002, portfile=tmp_path / "callee.sdp")
        with start_callee("uas_call.xml", proxy.carrier_target_port, tmp_path, callee_keys) as callee:
            uac = run_caller(
                "more_uac_too_many_hops.xml", proxy.pbx_port, tmp_path, sipp_keys(rtp_port=20000)
            )
            uas = callee.finish(timeout_s=0.5)
        assert_ok(proxy, uac)
    finals = [m.first_line for m in _responses(uac) if not m.first_line.startswith("SIP/2.0 1")]
    assert finals == ["SIP/2.0 483 Too Many Hops"]
    assert uas.messages == []


# A callee that is down ---------------------------------------------------------------------------

NO_RESPONSE_TIMEOUT_S = 3


@requires_sipp
@pytest.mark.timeout(40)
def test_an_unreachable_carrier_fails_the_call_after_the_no_response_timeout(tmp_path: Path) -> None:
    # limits.no_response_timeout_s (Timer B, RFC 3261 §17.1.1.2): the carrier's address swallows
    # every datagram, as a host that is down behind a firewall does; the PBX hears 408 after
    # 3 s, not after the 32 s of 64 * T1.
    ports = pick_ports()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent_carrier:
        silent_carrier.bind((LOOPBACK, ports.carrier_target))
        silent_carrier.setblocking(False)
        limits = f"  no_response_timeout_s: {NO_RESPONSE_TIMEOUT_S}"
        with running_callherald(tmp_path, ports=ports, limits=limits) as proxy:
            caller = run_caller("uac_expect_408.xml", proxy.pbx_port, tmp_path, sipp_keys(rtp_port=20000))
            assert_ok(proxy, caller)
            assert proxy.wait_for_log(
                f"no response to the INVITE within {NO_RESPONSE_TIMEOUT_S} s (Timer B): the carrier side is"
                " unreachable",
                timeout_s=2,
            )
            time.sleep(1.0)  # long enough for a retransmission at 3.5 s, had one been due
            received = _drain(silent_carrier)
    assert NO_RESPONSE_TIMEOUT_S <= caller.elapsed_s < 32
    invites = [message for message in map(parse_message, received) if isinstance(message, Request)]
    # Timer A: sent at 0, 0.5 and 1.5 s (and 3.5 s would be next): then given up.
    assert [invite.method for invite in invites] == ["INVITE"] * 3
    assert len({(invite.cseq.seq, invite.cseq.method) for invite in invites}) == 1


def _drain(sock: socket.socket) -> list[bytes]:
    datagrams: list[bytes] = []
    while True:
        try:
            datagrams.append(sock.recv(65535))
        except BlockingIOError:
            return datagrams
