"""An in-memory UAC <-> B2BUA <-> UAS harness on virtual time: no sockets, no clock.

``Harness`` owns a ``B2bua`` built with loopback settings and a counter-based token, a virtual
clock and the log of every effect the core returned, with the time it was returned at.
``FakeUac`` and ``FakeUas`` build requests and responses as a user agent would (RFC 3261 §8,
§12, §13) and read the ``SendSip`` effects addressed to them. Every message crossing the
"wire" is serialised and parsed again, in both directions, as it would be over UDP.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from proxy.b2bua.consent import DigitMechanism
from proxy.b2bua.core import B2bua
from proxy.b2bua.effects import (
    CallEnded,
    CloseMedia,
    Effect,
    LogEvent,
    MediaLeg,
    OpenMedia,
    SendSip,
)
from proxy.b2bua.media_ports import PortCheck
from proxy.b2bua.policy import PolicyResolver, PromptCheck
from proxy.b2bua.settings import Address, B2buaSettings, CarrierSettings, Side, TrunkAccount
from proxy.sip import Message, Request, Response, make_response, parse_message
from proxy.sip.headers import NameAddress
from proxy.sip.sdp import Origin, SessionDescription
from proxy.sip.transaction import TimerConfig
from proxy.sip.uri import Uri, parse_uri

__all__ = [
    "CALLEE_ANSWER",
    "CALLER_OFFER",
    "CARRIER",
    "CARRIER_LISTEN",
    "LOOPBACK",
    "MEDIA_ADDRESS",
    "PBX",
    "PBX_LISTEN",
    "RTP_PORT_MAX",
    "RTP_PORT_MIN",
    "T0",
    "FakeUa",
    "FakeUac",
    "FakeUas",
    "Harness",
    "carrier_with_credentials",
    "counter_token",
    "label",
    "make_settings",
    "non_sip",
    "origin_of",
    "sdp",
    "sdp_without_origin",
    "sent_sip",
    "sip_summary",
    "trunk_account",
    "wire",
]

PBX_LISTEN: Address = ("127.0.0.1", 5060)
CARRIER_LISTEN: Address = ("127.0.0.1", 5070)
CARRIER: Address = ("127.0.0.1", 5080)
PBX: Address = ("127.0.0.1", 5090)
MEDIA_ADDRESS = "127.0.0.1"
RTP_PORT_MIN = 20000
RTP_PORT_MAX = 20099
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
T0 = 1000.0
MAX_TIMER_ROUNDS = 10_000


def sdp(*lines: str) -> bytes:
    """An SDP body from its lines, CRLF-terminated."""
    return "".join(f"{line}\r\n" for line in lines).encode()


# The caller offers PCMU, GSM, PCMA, G729 and telephone-event from 127.0.0.2:40000.
CALLER_OFFER = sdp(
    "v=0",
    "o=caller 1001 1 IN IP4 127.0.0.2",
    "s=call",
    "c=IN IP4 127.0.0.2",
    "t=0 0",
    "m=audio 40000 RTP/AVP 0 3 8 18 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:3 GSM/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:18 G729/8000",
    "a=fmtp:18 annexb=no",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=sendrecv",
)

# The callee answers PCMU and telephone-event from 127.0.0.3:30000.
CALLEE_ANSWER = sdp(
    "v=0",
    "o=callee 2002 1 IN IP4 127.0.0.3",
    "s=answer",
    "c=IN IP4 127.0.0.3",
    "t=0 0",
    "m=audio 30000 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=sendrecv",
)


def counter_token() -> Callable[[], str]:
    """Deterministic tokens: 8 hex digits counting up from 1."""
    numbers = itertools.count(1)
    return lambda: f"{next(numbers):08x}"


def make_settings(**changes: Any) -> B2buaSettings:
    """Loopback settings: PBX side 5060, carrier side 5070, carrier 5080, PBX 5090, RTP 20000-20099."""
    base = B2buaSettings(
        local_address={Side.PBX: PBX_LISTEN, Side.CARRIER: CARRIER_LISTEN},
        transport={Side.PBX: "udp", Side.CARRIER: "udp"},
        media_address=MEDIA_ADDRESS,
        rtp_port_min=RTP_PORT_MIN,
        rtp_port_max=RTP_PORT_MAX,
        pbx_networks=(LOOPBACK,),
        pbx_default_target=PBX,
        trunk_accounts=(),
        carrier=CarrierSettings(
            host=CARRIER[0], port=CARRIER[1], next_hop=CARRIER, allowed_networks=(LOOPBACK,)
        ),
        inbound_routes={},
    )
    return dataclasses.replace(base, **changes)


def carrier_with_credentials(
    *, username: str = "trunk1", password: str = "carrier-secret", auth_username: str | None = None
) -> CarrierSettings:
    return CarrierSettings(
        host=CARRIER[0],
        port=CARRIER[1],
        next_hop=CARRIER,
        allowed_networks=(LOOPBACK,),
        username=username,
        auth_username=auth_username,
        password=password,
        realm="carrier.example",
    )


def trunk_account(username: str = "pbx1", password: str = "pbx-secret") -> TrunkAccount:
    return TrunkAccount(username=username, password=password, realm="callherald")


def wire(message: Request | Response) -> Request | Response:
    """``message`` as the receiver sees it: serialised and parsed again."""
    return parse_message(bytes(message))


def sent_sip(effects: Iterable[Effect], destination: Address | None = None) -> list[SendSip]:
    return [
        effect
        for effect in effects
        if isinstance(effect, SendSip) and (destination is None or effect.destination == destination)
    ]


def label(message: Message) -> str:
    """``INVITE`` for a request, ``200 INVITE`` for a response: enough to read a flow."""
    if isinstance(message, Request):
        return message.method
    assert isinstance(message, Response)
    return f"{message.status} {message.cseq.method}"


def sip_summary(effects: Iterable[Effect]) -> list[tuple[Address, str]]:
    """Where each SendSip goes and what it is, in order."""
    return [(effect.destination, label(effect.message)) for effect in sent_sip(effects)]


def non_sip(effects: Iterable[Effect]) -> list[Effect]:
    """Every effect but SendSip and debug logs: what the I/O layer does besides sending."""
    return [
        effect
        for effect in effects
        if not isinstance(effect, SendSip) and not (isinstance(effect, LogEvent) and effect.level == "debug")
    ]


def sdp_without_origin(body: bytes) -> list[str]:
    """The SDP lines of ``body`` except the o= line (whose session id is a token)."""
    return [line for line in body.decode().split("\r\n") if line and not line.startswith("o=")]


def origin_of(body: bytes) -> Origin:
    return SessionDescription.parse(body).origin


def ack_of_failure(invite: Request, response: Response) -> Request:
    """The ACK of a 300-699 to ``invite`` (§17.1.1.3): the INVITE's branch, the response's To."""
    return Request(
        "ACK",
        invite.uri,
        [
            ("Via", invite.headers.fields("via")[0]),
            ("Max-Forwards", "70"),
            ("From", invite.headers.get("from") or ""),
            ("To", response.headers.get("to") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.seq} ACK"),
            ("Content-Length", "0"),
        ],
    )


def cancel_of(invite: Request) -> Request:
    """The CANCEL of a re-INVITE (§9.1): its Request-URI, top Via, From, To (with the tag), Call-ID
    and CSeq number."""
    return Request(
        "CANCEL",
        invite.uri,
        [
            ("Via", invite.headers.fields("via")[0]),
            ("Max-Forwards", "70"),
            ("From", invite.headers.get("from") or ""),
            ("To", invite.headers.get("to") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.seq} CANCEL"),
            ("Content-Length", "0"),
        ],
    )


class Harness:
    """A B2BUA on a virtual clock; every effect is logged with the time it happened at."""

    def __init__(
        self,
        settings: B2buaSettings | None = None,
        *,
        timers: TimerConfig | None = None,
        start: float = T0,
        policy_for: PolicyResolver | None = None,
        prompt_ready: PromptCheck | None = None,
        port_usable: PortCheck | None = None,
    ) -> None:
        self.settings = settings or make_settings()
        self.timers = timers or TimerConfig()
        self.b2bua = B2bua(
            self.settings,
            token=counter_token(),
            timers=self.timers,
            policy_for=policy_for,
            prompt_ready=prompt_ready,
            port_usable=port_usable,
        )
        self.now = start
        self.log: list[tuple[float, Effect]] = []

    def _record(self, effects: list[Effect]) -> list[Effect]:
        self.log.extend((self.now, effect) for effect in effects)
        return effects

    def receive(self, message: Request | Response, source: Address, side: Side) -> list[Effect]:
        """Deliver ``message`` from ``source`` on ``side``'s listener, now."""
        return self._record(self.b2bua.receive(wire(message), source, side, self.now))

    def advance(self, seconds: float) -> list[Effect]:
        """Move the clock ``seconds`` on, firing every timer at its own deadline on the way."""
        end = self.now + seconds
        out: list[Effect] = []
        for _ in range(MAX_TIMER_ROUNDS):
            deadline = self.b2bua.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            out.extend(self._record(self.b2bua.handle_timers(self.now)))
        else:
            raise AssertionError("timers keep firing without the clock moving")
        self.now = end
        return out

    def media_inactive(self, call_ref: str) -> list[Effect]:
        return self._record(self.b2bua.media_inactive(call_ref, self.now))

    def media_failed(self, call_ref: str, reason: str = "bind failed") -> list[Effect]:
        return self._record(self.b2bua.media_failed(call_ref, reason, self.now))

    def shutdown(self) -> list[Effect]:
        return self._record(self.b2bua.shutdown(self.now))

    def prompt_finished(self, call_ref: str, leg: MediaLeg) -> list[Effect]:
        """The playout layer reports the prompt on ``leg`` was sent whole, now."""
        return self._record(self.b2bua.prompt_finished(call_ref, leg, self.now))

    def prompt_failed(self, call_ref: str, leg: MediaLeg, reason: str = "missing") -> list[Effect]:
        """The playout layer reports the prompt on ``leg`` could not be played, now."""
        return self._record(self.b2bua.prompt_failed(call_ref, leg, reason, self.now))

    def not_recording(self, call_ref: str) -> list[Effect]:
        """The recording a ``StartRecording`` asked for could not start, or storage stopped it."""
        return self._record(self.b2bua.not_recording(call_ref))

    def digit(
        self,
        call_ref: str,
        leg: MediaLeg,
        digit: str,
        mechanism: DigitMechanism = DigitMechanism.RFC4733,
        *,
        pressed_at: float | None = None,
    ) -> list[Effect]:
        """The media layer heard ``digit`` from the party on ``leg``, now; the key went down at
        ``pressed_at`` (now when None)."""
        return self._record(self.b2bua.digit(call_ref, leg, digit, mechanism, self.now, pressed_at))

    @property
    def effects(self) -> list[Effect]:
        return [effect for _, effect in self.log]

    def call_ref(self) -> str:
        """The ref of the only call opened so far."""
        refs = [effect.call_ref for effect in self.effects if isinstance(effect, OpenMedia)]
        assert len(refs) == 1, refs
        return refs[0]

    def closed(self) -> list[CloseMedia]:
        return [effect for effect in self.effects if isinstance(effect, CloseMedia)]

    def ended(self) -> list[CallEnded]:
        return [effect for effect in self.effects if isinstance(effect, CallEnded)]

    def leftovers(self) -> dict[str, int]:
        """Sizes of the core's per-call tables (peeking at internals): all 0 once calls and transactions end."""
        core = self.b2bua
        return {
            "calls": core.active_calls,
            "dialogs": len(core._dialogs),
            "our_call_ids": len(core._our_call_ids),
            "calls_by_a_transaction": len(core._calls_by_a_transaction),
            "transactions": len(core._tx),
            "routes": len(core._routes),
            "timers": len(core._timer_actions),
            "abandoned": len(core._abandoned),
        }

    def assert_idle(self) -> None:
        """No call left and every RTP port back in the pool."""
        assert self.b2bua.active_calls == 0
        assert self.b2bua.ports_available == self.b2bua.ports_capacity


class FakeUa:
    """A user agent at ``address`` on ``side``, with at most one dialog (RFC 3261 §12)."""

    def __init__(self, harness: Harness, *, name: str, address: Address, side: Side) -> None:
        self.harness = harness
        self.name = name
        self.address = address
        self.side = side
        self.contact = f"<sip:{name}@{address[0]}:{address[1]}>"
        self.local_tag = f"{name}-tag"
        self._branches = itertools.count(1)
        self._read = 0
        # Dialog state, filled in by the subclasses.
        self.call_id = ""
        self.local_party = ""
        self.remote_party = ""
        self.remote_tag: str | None = None
        self.remote_target: Uri | None = None
        self.local_seq = 0
        self.route_set: list[str] = []

    # What callherald sent here ----------------------------------------------------------------

    def inbox(self) -> list[Request | Response]:
        """Every message callherald sent to this UA, in order, as parsed off the wire."""
        messages: list[Request | Response] = []
        for _, effect in self.harness.log:
            if isinstance(effect, SendSip) and effect.destination == self.address:
                assert effect.side is self.side, f"{effect.message!r} left from the wrong listener"
                assert isinstance(effect.message, Request | Response)
                messages.append(wire(effect.message))
        return messages

    def new_messages(self) -> list[Request | Response]:
        """The messages that arrived since the last call."""
        inbox = self.inbox()
        fresh = inbox[self._read :]
        self._read = len(inbox)
        return fresh

    def requests(self, method: str) -> list[Request]:
        return [m for m in self.inbox() if isinstance(m, Request) and m.method == method]

    def responses(self, method: str = "INVITE", status: int | None = None) -> list[Response]:
        return [
            m
            for m in self.inbox()
            if isinstance(m, Response) and m.cseq.method == method and (status is None or m.status == status)
        ]

    def last_request(self, method: str) -> Request:
        found = self.requests(method)
        assert found, f"{self.name} received no {method}"
        return found[-1]

    def last_response(self, method: str = "INVITE", status: int | None = None) -> Response:
        found = self.responses(method, status)
        assert found, f"{self.name} received no {status or ''} response to {method}"
        return found[-1]

    def statuses(self, method: str = "INVITE") -> list[int]:
        return [response.status for response in self.responses(method)]

    # Sending ----------------------------------------------------------------------------------

    @property
    def listener(self) -> Address:
        """callherald's listener on this UA's side."""
        return self.harness.settings.local_address[self.side]

    def via(self, branch: str | None = None) -> str:
        branch = branch or f"z9hG4bK{self.name}{next(self._branches)}"
        return f"SIP/2.0/UDP {self.address[0]}:{self.address[1]};branch={branch};rport"

    def send(self, message: Request | Response) -> list[Effect]:
        return self.harness.receive(message, self.address, self.side)

    def request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str = "application/sdp",
        extra: Sequence[tuple[str, str]] = (),
        seq: int | None = None,
    ) -> Request:
        """A request within the dialog (§12.2.1.1), with the next CSeq unless ``seq`` is given."""
        assert self.remote_target is not None, "no dialog"
        if seq is None:
            self.local_seq += 1
            seq = self.local_seq
        headers: list[tuple[str, str]] = [
            ("Via", self.via()),
            ("Max-Forwards", "70"),
            ("From", f"{self.local_party};tag={self.local_tag}"),
            ("To", f"{self.remote_party};tag={self.remote_tag}"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{seq} {method}"),
        ]
        headers.extend(("Route", route) for route in self.route_set)
        if method in ("INVITE", "UPDATE"):
            headers.append(("Contact", self.contact))
        headers.extend(extra)
        if body:
            headers.append(("Content-Type", content_type))
        headers.append(("Content-Length", str(len(body))))
        return Request(method, self.remote_target, headers, body)

    def respond(
        self,
        request: Request,
        status: int,
        *,
        body: bytes = b"",
        extra: Sequence[tuple[str, str]] = (),
        reason: str | None = None,
    ) -> Response:
        """Our response to ``request`` (§8.2.6): our To tag, Contact on dialog-forming 1xx/2xx."""
        headers = list(extra)
        if request.method in ("INVITE", "UPDATE") and 100 < status < 300:
            headers.append(("Contact", self.contact))
        if body:
            headers.append(("Content-Type", "application/sdp"))
        tag = None if status == 100 else self.local_tag
        return make_response(request, status, reason, to_tag=tag, extra_headers=headers, body=body)

    def reply(
        self,
        request: Request,
        status: int,
        *,
        body: bytes = b"",
        extra: Sequence[tuple[str, str]] = (),
        reason: str | None = None,
    ) -> list[Effect]:
        return self.send(self.respond(request, status, body=body, extra=extra, reason=reason))

    def ack_2xx(self, response: Response, *, body: bytes = b"") -> Request:
        """The ACK of a 2xx (§13.2.2.4): a new branch, the INVITE's CSeq number, sent to the Contact."""
        headers: list[tuple[str, str]] = [
            ("Via", self.via()),
            ("Max-Forwards", "70"),
            ("From", f"{self.local_party};tag={self.local_tag}"),
            ("To", f"{self.remote_party};tag={self.remote_tag}"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{response.cseq.seq} ACK"),
        ]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        headers.append(("Content-Length", str(len(body))))
        assert self.remote_target is not None
        return Request("ACK", self.remote_target, headers, body)

    def learn_target(self, message: Message) -> None:
        """The remote target from a Contact (§12.1.1, §12.2.1.2)."""
        contacts = message.contacts
        if contacts:
            self.remote_target = contacts[0].uri


class FakeUac(FakeUa):
    """The caller: sends the INVITE to callherald's listener on its side."""

    def __init__(
        self,
        harness: Harness,
        *,
        name: str = "caller",
        address: Address,
        side: Side,
        user: str = "201",
    ) -> None:
        super().__init__(harness, name=name, address=address, side=side)
        self.user = user
        self.invite_request: Request | None = None

    def invite(
        self,
        dialled: str = "4930123456",
        *,
        body: bytes = CALLER_OFFER,
        content_type: str = "application/sdp",
        max_forwards: int | None = 70,
        call_id: str | None = None,
        extra: Sequence[tuple[str, str]] = (),
    ) -> Request:
        """A new INVITE for ``dialled`` addressed to callherald (§8.1.1)."""
        host, port = self.listener
        self.call_id = call_id or f"{self.name}-call-1@{self.address[0]}"
        self.local_party = f'"Alice" <sip:{self.user}@{self.address[0]}>'
        self.remote_party = f"<sip:{dialled}@{host}>"
        self.remote_tag = None
        self.remote_target = None
        self.local_seq += 1
        headers: list[tuple[str, str]] = [("Via", self.via())]
        if max_forwards is not None:
            headers.append(("Max-Forwards", str(max_forwards)))
        headers += [
            ("From", f"{self.local_party};tag={self.local_tag}"),
            ("To", self.remote_party),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.local_seq} INVITE"),
            ("Contact", self.contact),
            ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"),
            *extra,
        ]
        if body:
            headers.append(("Content-Type", content_type))
        headers.append(("Content-Length", str(len(body))))
        request = Request("INVITE", parse_uri(f"sip:{dialled}@{host}:{port}"), headers, body)
        self.invite_request = request
        return request

    def learn(self, response: Response) -> None:
        """Dialog state from a response to the INVITE (§12.1.2)."""
        if response.to.tag:
            self.remote_tag = response.to.tag
        self.learn_target(response)
        self.route_set = list(reversed(response.headers.get_all("record-route")))

    def out_of_dialog(
        self,
        method: str,
        *,
        to_tag: str | None = None,
        body: bytes = b"",
        content_type: str = "application/sdp",
        extra: Sequence[tuple[str, str]] = (),
        call_id: str = "stray-1@127.0.0.1",
    ) -> Request:
        """A request outside any dialog we know, addressed to callherald (``to_tag`` fakes a dialog)."""
        host, port = self.listener
        to = f"<sip:callherald@{host}>" + ("" if to_tag is None else f";tag={to_tag}")
        headers: list[tuple[str, str]] = [
            ("Via", self.via()),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{self.user}@{self.address[0]}>;tag={self.local_tag}"),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", f"1 {method}"),
            ("Contact", self.contact),
            *extra,
        ]
        if body:
            headers.append(("Content-Type", content_type))
        headers.append(("Content-Length", str(len(body))))
        return Request(method, parse_uri(f"sip:callherald@{host}:{port}"), headers, body)

    def cancel(self) -> Request:
        """The CANCEL of our INVITE (§9.1): same Request-URI, top Via, From, To, Call-ID, CSeq number."""
        invite = self.invite_request
        assert invite is not None
        return cancel_of(invite)

    def ack_failure(self, response: Response) -> Request:
        """The ACK of a 300-699 (§17.1.1.3): the INVITE's branch, the response's To."""
        invite = self.invite_request
        assert invite is not None
        return ack_of_failure(invite, response)

    def ack_answer(self, *, body: bytes = b"") -> list[Effect]:
        """Learn the dialog from the last 2xx to our INVITE and ACK it."""
        response = self.last_response("INVITE", 200)
        self.learn(response)
        return self.send(self.ack_2xx(response, body=body))


class FakeUas(FakeUa):
    """The callee: answers the INVITE callherald sends it."""

    def __init__(self, harness: Harness, *, name: str = "callee", address: Address, side: Side) -> None:
        super().__init__(harness, name=name, address=address, side=side)
        self.invite_request: Request | None = None

    def take_invite(self) -> Request:
        """The last INVITE received; its dialog becomes ours (§12.1.1)."""
        invite = self.last_request("INVITE")
        self.invite_request = invite
        self.call_id = invite.call_id
        self.remote_tag = invite.from_.tag
        self.remote_party = str(NameAddress(display=invite.from_.display, uri=invite.from_.uri))
        self.local_party = str(NameAddress(display=invite.to.display, uri=invite.to.uri))
        self.learn_target(invite)
        self.route_set = list(invite.headers.get_all("record-route"))
        return invite

    @property
    def invite(self) -> Request:
        assert self.invite_request is not None, "no INVITE taken"
        return self.invite_request

    def ring(self, status: int = 180, *, body: bytes = b"") -> list[Effect]:
        return self.reply(self.invite, status, body=body)

    def answer(self, *, body: bytes = CALLEE_ANSWER, status: int = 200) -> list[Effect]:
        return self.reply(self.invite, status, body=body)


BOUNDARY = "unique-boundary-1"


def multipart_with_isup(sdp_body: bytes, *, disposition: str = "signal;handling=optional") -> bytes:
    """SDP beside an ISUP IAM, as a carrier interworking with the telephone network sends it
    (RFC 3204, ITU-T Q.1912.5), with a preamble and an epilogue (RFC 2046 §5.1.1)."""
    return (
        b"This is a multipart body.\r\n"
        + f"--{BOUNDARY}\r\nContent-Type: application/sdp\r\n\r\n".encode()
        + sdp_body
        + f"\r\n--{BOUNDARY}\r\nContent-Type: application/isup;version=itu-t92+;base=itu-t92+\r\n".encode()
        + f"Content-Disposition: {disposition}\r\n\r\n".encode()
        + b"\x01\x10\x60\x01\x0a\x00\x02\x0a\x08\x83\x90\x89\x73\x81\x15\x0f"
        + f"\r\n--{BOUNDARY}--\r\nepilogue\r\n".encode()
    )
