"""Calls: two dialogs joined back to back, and the SDP anchoring that puts callherald in the media path.

A ``Call`` has an ``a`` dialog (towards the party that sent the INVITE; callherald is its UAS) and
a ``b`` dialog (towards the party callherald calls; callherald is its UAC). Each dialog has its own
Call-ID, tags, CSeq space, Contact and RTP port (RFC 3261 §12, RFC 7092 §3.1 "signalling-only" is
what a B2BUA is not: it rewrites everything).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Final

from proxy.b2bua.announcer import CallAnnouncer
from proxy.b2bua.effects import LawTranslation, MediaFormat, MediaLeg, SetMediaRemote
from proxy.b2bua.policy import UNRECORDED, CallPolicy
from proxy.b2bua.settings import Address, Side
from proxy.sip.headers import NameAddress
from proxy.sip.message import Request, Response
from proxy.sip.sdp import Direction, MediaDescription, Origin, RtpMap, SessionDescription
from proxy.sip.transaction import TransactionId
from proxy.sip.uri import Uri

__all__ = [
    "PLAYABLE_CODECS",
    "Call",
    "CallPhase",
    "DeferredAck",
    "Dialog",
    "PartyIdentity",
    "PendingRelay",
    "Transfer",
    "anchor_sdp",
    "answer_with_offers_lines",
    "answer_within_offer",
    "call_answer_in_party_law",
    "has_allowed_audio",
    "media_format",
    "media_remote",
    "offer_with_other_law",
    "packet_ms",
    "party_offer_in_call_law",
    "rejecting_answer",
    "rtcp_remote",
    "translated_answer",
    "without_format",
]


class CallPhase(Enum):
    """Where a call is. ``CALLING``/``EARLY``: b not answered; ``ANSWERED``: 2xx sent to a, no ACK yet."""

    CALLING = "calling"
    EARLY = "early"
    ANSWERED = "answered"
    CONFIRMED = "confirmed"
    CANCELLING = "cancelling"
    ENDED = "ended"


@dataclass(slots=True, kw_only=True)
class Dialog:
    """One side's dialog state (RFC 3261 §12.1): identifiers, sequence numbers and where to send."""

    side: Side
    leg: MediaLeg
    call_id: str
    local_tag: str
    remote_tag: str | None
    local_party: NameAddress
    remote_party: NameAddress
    local_seq: int
    remote_seq: int | None
    remote_target: Uri | None
    route_set: list[str]
    peer: Address
    local_contact: str
    media_port: int
    sdp_session_id: str
    sdp_version: int = 1
    confirmed: bool = False
    last_sdp: SessionDescription | None = None  # the SDP we last sent in this dialog

    @property
    def from_header(self) -> str:
        """Our From value on requests we send in this dialog."""
        return str(self.local_party.with_tag(self.local_tag))

    @property
    def to_header(self) -> str:
        party = self.remote_party
        return str(party.with_tag(self.remote_tag) if self.remote_tag else party)

    def next_seq(self) -> int:
        self.local_seq += 1
        return self.local_seq


@dataclass(slots=True, kw_only=True)
class PendingRelay:
    """A request relayed from one leg to the other, waiting for the far side's final response."""

    origin_leg: MediaLeg
    server_transaction: TransactionId
    request: Request
    offer_from_origin: bool
    relayed_offer: SessionDescription | None = None  # as relayed: its answer lists only its formats
    # What callherald last sent the far party before the relayed offer: the session to go back to
    # when the answer leaves no codec (the offerer gets 488 and keeps that session, RFC 3261 §14.2).
    previous_sdp: SessionDescription | None = None
    # Whether the origin leg held the call when it offered: where a refusal or its own CANCEL
    # leaves its hold.
    held_before: bool = False
    new_party: str | None = None  # a re-INVITE that brings a different outside party: why we think so
    far_provisional: bool = False  # the far party sent a provisional response: it may be cancelled (§9.1)
    cancelled: bool = False  # its sender cancelled it (RFC 3261 §9.2): 487 sent, the relayed one cancelled
    ended: bool = False  # a BYE ended the call while it was pending: 487 sent (RFC 3261 §15.1.2)
    # The origin's party is translated and its offer went out in the call's law instead of its own
    # (``party_offer_in_call_law``): the answer goes back in its own law.
    law_swapped: LawTranslation | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PartyIdentity:
    """Who the outside party is, as far as signalling tells: the URIs its P-Asserted-Identity
    names (RFC 3325 §9.1: a sip or sips URI, a tel URI, or one of each; a value that does not
    parse as its text) and the username and session id of its SDP origin (RFC 8866 §5.2)."""

    asserted: tuple[Uri | str, ...] = ()
    origin: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeferredAck:
    """A late offer (RFC 3261 §13.2.1): the 2xx on ``leg`` (CSeq ``seq``) brought the offer, which
    callherald passed on as ``offer`` (None: a body that was not SDP, passed on as it was); the
    answer comes in the other party's ACK, and goes on in the ACK to this 2xx. ``acked``: that 2xx
    brought no offer and is ACKed already; callherald offered the other party its session as it
    was, and the answer only tells where that party's media now goes."""

    leg: MediaLeg
    seq: int
    offer: SessionDescription | None
    acked: bool = False


@dataclass(slots=True, kw_only=True)
class Transfer:
    """A REFER in progress (RFC 3515): the party on ``leg`` asked us to call ``target`` instead.

    ``new`` is the dialog towards the target, on the same side and RTP port as ``old``; it
    replaces ``old`` when the target answers. ``notify`` is False once the transferor hung up.
    """

    leg: MediaLeg
    old: Dialog
    new: Dialog
    invite: Request
    refer: Request
    notify: bool = True
    provisional_seen: bool = False
    cancel_pending: bool = False  # given up before any provisional response: CANCEL on the first (§9.1)
    # RFC 6665 §4.2.2: one NOTIFY at a time. While one waits for its answer, the newest progress
    # to report (sipfrag status line, final, BYE after it) waits here.
    notify_in_flight: bool = False
    notify_next: tuple[str, bool, bool] | None = None


@dataclass(slots=True, kw_only=True)
class Call:
    """Two dialogs, their media ports and where the call is in its life."""

    ref: str
    direction: str
    a: Dialog
    b: Dialog
    a_invite: Request
    a_invite_transaction: TransactionId
    b_invite: Request
    phase: CallPhase = CallPhase.CALLING
    b_provisional_seen: bool = False
    cancel_pending: bool = False
    auth_attempts: int = 0
    b_invite_had_offer: bool = True
    # The last SDP answer in a provisional response, per early dialog (To tag) of b: a callee that
    # sent its answer in a 183 may send the 2xx without it.
    b_early_answers: dict[str, SessionDescription] = field(default_factory=dict)
    sent_acks: dict[tuple[MediaLeg, int], Request] = field(default_factory=dict)
    deferred_ack: DeferredAck | None = None
    pending_relays: dict[TransactionId, PendingRelay] = field(default_factory=dict)
    unacked_2xx: dict[MediaLeg, tuple[Response, int]] = field(default_factory=dict)
    # The legs callherald's own re-INVITEs (a re-offer) wait for a final response on, once each.
    reoffers_pending: list[MediaLeg] = field(default_factory=list)
    ports_released: bool = False
    policy: CallPolicy = UNRECORDED
    announcer: CallAnnouncer | None = None
    b_called: bool = False  # the b-leg INVITE has been sent
    a_answered: bool = False  # callherald answered a itself (notice before the callee is called)
    a_early_media: bool = False  # callherald sent a 183 with its own SDP answer to a
    a_answer: bytes = b""  # that SDP answer, repeated in the 200 when b answers (RFC 3261 §13.2.1)
    b_offer: bytes = b""  # the offer for b, held while the notice plays
    caller_direction: Direction | None = None  # the caller's, from an offer answered by us while b rang
    announce_progressed: bool = False  # the call moved on after the notice (callee called or bridged)
    announce_after_ack: bool = False  # outbound late offer: the notice starts when a's ACK answers
    answer_in_ack: bool = False  # inbound late offer: our 200 offered; the caller answers in its ACK
    outside_identity: PartyIdentity | None = None  # asserted identity and SDP origin of the outside party
    transfer: Transfer | None = None
    held_by: set[MediaLeg] = field(default_factory=set)  # legs whose last offer or answer holds the call
    unsolicited_100rel_warned: bool = False  # a reliable provisional response came, unasked (RFC 3262 §3)
    # Legs whose party answered the other G.711 law than the offer's (``translated_answer``).
    translations: dict[MediaLeg, LawTranslation] = field(default_factory=dict)
    # The payload type of the G.711 law callherald added to leg b's offers after b refused one law
    # alone (``offer_with_other_law``).
    b_offer_added_law: str | None = None

    def dialog(self, leg: MediaLeg) -> Dialog:
        return self.a if leg is MediaLeg.A else self.b


_NOT_VOICE = frozenset({"telephone-event", "cn"})
_ICE_ATTRIBUTES = (
    "candidate",
    "remote-candidates",
    "end-of-candidates",
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "ice-mismatch",
)


# What describes the party behind the SDP rather than the media callherald relays: its software
# (RFC 8866 §6.3), its streams' SSRCs and CNAME, which may name an extension and which a party
# hearing callherald's own stream after a notice never sees (RFC 5576), WebRTC stream ids
# (RFC 8830), media labels (RFC 4574).
_PARTY_ATTRIBUTES = ("tool", "ssrc", "ssrc-group", "msid", "msid-semantic", "label")
# Its session information, URI, e-mail address and phone number (RFC 8866 §5.4-§5.6).
_PARTY_LINES = ("i", "u", "e", "p")
# What the party implements and callherald does not: RTCP feedback (RFC 4585 §4.2), which
# callherald's own prompts and tones in the stream answer none of; grouping and BUNDLE (RFC 5888,
# RFC 8843), as callherald relays one audio stream on a port of its own.
_UNSUPPORTED_ATTRIBUTES = ("rtcp-fb", "group", "mid")
# Bandwidth (RFC 8866 §5.8, RFC 3890): the party's figures are for its own media, which the
# codecs callherald keeps and its prompts may not match.
_UNSUPPORTED_LINES = ("b",)


def _has_voice(media: MediaDescription) -> bool:
    """True when a codec other than DTMF events or comfort noise is left."""
    for payload_type in media.formats:
        codec = media.codec(payload_type)
        if codec is not None and codec.encoding.lower() not in _NOT_VOICE:
            return True
    return False


def media_remote(sdp: SessionDescription) -> Address | None:
    """Where the SDP's first active audio stream receives RTP; None on hold by 0.0.0.0 or port 0."""
    for media in sdp.media:
        if media.media != "audio" or media.rejected:
            continue
        connection = sdp.effective_connection(media)
        if connection is None or connection.is_zero:
            return None
        return connection.address, media.port
    return None


def rtcp_remote(sdp: SessionDescription) -> Address | None:
    """Where the SDP's first active audio stream receives RTCP by its ``a=rtcp`` (RFC 3605 §2.1):
    the attribute's port, at the address it names or else the stream's (``media_remote``). None
    without a well-formed one (RTCP then goes to the RTP port + 1, RFC 3550 §11), when the stream
    has no address, or when the attribute names port 0 or the unspecified address (a placeholder,
    as ICE writes it: RFC 8839)."""
    remote = media_remote(sdp)
    media = _first_audio(sdp)
    rtcp = None if remote is None or media is None else media.rtcp
    if remote is None or rtcp is None or rtcp.port == 0:
        return None
    if rtcp.connection is None:
        return remote[0], rtcp.port
    return None if rtcp.connection.is_zero else (rtcp.connection.address, rtcp.port)


PLAYABLE_CODECS = ("pcmu", "pcma", "g722")
"""Codecs callherald can play announcements in (its prompts are cached in these)."""

STATIC_PAYLOAD_TYPES: Final[Mapping[str, int]] = MappingProxyType({"pcmu": 0, "pcma": 8, "g722": 9})
"""The payload types RFC 3551 §6 assigns to the playable codecs."""

PLAIN_RTP_PROFILES = frozenset({"RTP/AVP", "RTP/AVPF"})
"""Transports callherald plays into: plain RTP (RFC 3551, RFC 4585). Not SRTP (RFC 3711): a party
drops packets that fail its authentication, so a notice sent in the clear would not be heard."""


DEFAULT_PACKET_MS: Final = 20
"""The packet duration of PCMU, PCMA and G.722 when the SDP asks for none (RFC 3551 §4.2, §4.5)."""
PACKET_MS_STEP: Final = 10
MAX_PACKET_MS: Final = 200
"""RFC 3551 §4.2: a receiver should accept packets of up to 200 ms of audio."""


def packet_ms(sdp: SessionDescription | None) -> int:
    """The packet duration, ms, to send prompts and tones in to the party that sent ``sdp``, by
    its first active audio stream (``media_format``); 20 ms without one."""
    media = None if sdp is None else _first_audio(sdp)
    return DEFAULT_PACKET_MS if media is None else _packet_ms(media)


def _packet_ms(media: MediaDescription) -> int:
    """The packet duration, ms, to send the party of ``media`` prompts and tones in: its
    ``a=ptime`` (RFC 4566 §6, the duration it wants to receive) when that is a whole number of
    10 ms steps up to 200 ms and not above its ``a=maxptime``; else 20 ms (RFC 3551 §4.2), or the
    longest step ``a=maxptime`` allows when that is shorter. PCMU, PCMA and G.722 carry any whole
    number of samples of their 8000 Hz RTP clock in a packet (RFC 3551 §4.5.2, §4.5.14)."""
    limit = MAX_PACKET_MS
    maxptime = next(iter(media.attribute_values("maxptime")), "").strip()
    if maxptime.isdigit() and int(maxptime) >= PACKET_MS_STEP:
        limit = min(limit, int(maxptime) // PACKET_MS_STEP * PACKET_MS_STEP)
    wanted = media.ptime
    if wanted is not None and wanted % PACKET_MS_STEP == 0 and PACKET_MS_STEP <= wanted <= limit:
        return wanted
    return min(DEFAULT_PACKET_MS, limit)


def _first_audio(sdp: SessionDescription) -> MediaDescription | None:
    return next((m for m in sdp.media if m.media == "audio" and not m.rejected), None)


def _plain_rtp(media: MediaDescription) -> bool:
    return media.proto.upper() in PLAIN_RTP_PROFILES


def media_format(
    sdp: SessionDescription, allowed: AbstractSet[str] = frozenset(PLAYABLE_CODECS)
) -> MediaFormat | None:
    """The first playable codec of the first active audio stream that is also in ``allowed`` (the
    configured codecs, lower case), with its telephone-event type and the packet duration the
    party wants (``packet_ms``); None also when that stream is not plain RTP."""
    media = _first_audio(sdp)
    if media is not None and _plain_rtp(media):
        for payload_type in media.formats:
            codec = media.codec(payload_type)
            if codec is None or not payload_type.isdigit():
                continue
            name = codec.encoding.lower()
            if name in PLAYABLE_CODECS and name in allowed:
                event = media.telephone_event_pt(8000)
                return MediaFormat(
                    codec=name,
                    payload_type=int(payload_type),
                    event_payload_type=int(event) if event is not None and event.isdigit() else None,
                    aliases=_static_aliases(media),
                    packet_ms=_packet_ms(media),
                )
    return None


def set_media_remote(
    call_ref: str, leg: MediaLeg, sdp: SessionDescription | None, *, new_party: bool = False
) -> SetMediaRemote:
    """``leg``'s party sent ``sdp`` (None: none came): where it receives RTP and RTCP (or that it
    multiplexes them, ``a=rtcp-mux``: RFC 5761 §5.1.1), the dynamic payload types its audio stream
    put a recordable codec on, and the packet duration it wants.

    callherald passes ``a=rtcp-mux`` on unchanged, so an offer's is negotiated when the other party
    (or callherald, answering for the notice) accepts it; an answer can only carry it when the offer
    did (RFC 8035). When the other party refuses an offer's, the leg has no RTCP address until the
    party's own RTCP latches it."""
    media = None if sdp is None else _first_audio(sdp)
    return SetMediaRemote(
        call_ref=call_ref,
        leg=leg,
        remote=None if sdp is None else media_remote(sdp),
        rtcp=None if sdp is None else rtcp_remote(sdp),
        rtcp_mux=media is not None and media.has_attribute("rtcp-mux"),
        new_party=new_party,
        aliases=() if media is None else _static_aliases(media),
        packet_ms=None if sdp is None else packet_ms(sdp),
    )


def _static_aliases(media: MediaDescription) -> tuple[tuple[int, int], ...]:
    # RFC 3264 §8.3.2: a payload type keeps its codec for the whole session, so the types the
    # stream listed now are the ones a later codec change can use.
    aliases: list[tuple[int, int]] = []
    for payload_type in media.formats:
        codec = media.codec(payload_type)
        if codec is None or codec.clock_rate != 8000:  # G.722's is 8000 too (RFC 3551 §4.5.2)
            continue
        static = STATIC_PAYLOAD_TYPES.get(codec.encoding.lower())
        if static is not None and payload_type.isdigit() and int(payload_type) != static:
            aliases.append((int(payload_type), static))
    return tuple(aliases)


def carries_plain_rtp(sdp: SessionDescription) -> bool:
    """True when the first active audio stream, if any, is plain RTP (``PLAIN_RTP_PROFILES``)."""
    media = _first_audio(sdp)
    return media is None or _plain_rtp(media)


def unplayable_reason(sdp: SessionDescription) -> str:
    """Why ``media_format`` found nothing to play the notice in, for the evidence and the log."""
    media = _first_audio(sdp)
    if media is not None and not _plain_rtp(media):
        return f"the audio is sent as {media.proto}: callherald plays the notice in plain RTP only"
    return "no codec to play the notice in"


def answer_within_offer(
    answer: SessionDescription, offer: SessionDescription
) -> tuple[SessionDescription, tuple[str, ...]]:
    """``answer`` with only the formats ``offer`` had, each as ``offer`` mapped it, and the payload
    types that went (``MediaDescription.formats_outside``): ``answer`` itself when none went, else a
    copy. Streams pair by position (RFC 3264 §6); one either side rejects is left as it is, and one
    left with no format is rejected, as the answerer must reject a stream it shares no format of.

    An answer is passed on to the party that offered: an entry the offer did not have would tell
    it, and the recording, which learns dynamic types from the SDP it passes (``SetMediaRemote``),
    that one of its own payload types means another codec.
    """
    kept = answer
    dropped: list[str] = []
    for index, (answered, offered) in enumerate(zip(answer.media, offer.media, strict=False)):
        if answered.rejected or offered.rejected:
            continue
        outside = answered.formats_outside(offered)
        if not outside:
            continue
        if kept is answer:
            kept = answer.copy()
        kept.media[index].drop_formats(frozenset(outside))
        dropped.extend(outside)
    return kept, tuple(dropped)


def answer_with_offers_lines(
    answer: SessionDescription, offer: SessionDescription
) -> tuple[SessionDescription, str | None]:
    """``answer`` with exactly one ``m=`` line per ``m=`` line of ``offer``, in order (RFC 3264
    §6), and what was wrong with it (None: nothing, and ``answer`` itself comes back).

    Lines missing at the end are answered rejected: port 0 and the offer's formats, as callherald
    rejects a stream. So are lines the offer rejected itself (port 0) that the answer leaves out,
    wherever they are, when the answer's lines are those the offer did not reject, in order (an
    answerer that drops an offered ``m=video 0`` line). An answer with more lines than the offer,
    or that accepts a stream as another media type than the offer's line in its place (the lines
    reordered), is no answer to ``offer``: it comes back as one rejecting every stream, so that it
    leaves the session no media.
    """
    answered = len(answer.media)
    offered = len(offer.media)
    mismatched = any(
        not mine.rejected and mine.media != theirs.media
        for mine, theirs in zip(answer.media, offer.media, strict=False)
    )
    if answered == offered and not mismatched:
        return answer, None
    fixed = answer.copy()
    if answered < offered and not mismatched:
        fixed.media.extend(_rejected_like(media) for media in offer.media[answered:])
        return fixed, f"has {answered} m= lines for the {offered} of its offer: the missing ones are rejected"
    live = [media for media in offer.media if not media.rejected]
    leaves_out_rejected = answered == len(live) < offered and all(
        mine.rejected or mine.media == theirs.media for mine, theirs in zip(answer.media, live, strict=True)
    )
    if leaves_out_rejected:
        lines = iter(answer.media)
        fixed.media = [_rejected_like(media) if media.rejected else next(lines) for media in offer.media]
        return fixed, (
            f"has {answered} m= lines for the {offered} of its offer, leaving out those the offer"
            " rejected: they are answered rejected"
        )
    fixed.media = [_rejected_like(media) for media in offer.media]
    if mismatched:
        fault = "answers a stream of its offer as another media type"
    else:
        fault = f"has {answered} m= lines for the {offered} of its offer"
    return fixed, f"{fault}: it is no answer to that offer, and rejects every stream"


_G711_LAWS: Final = ("pcmu", "pcma")
_BOTH_LAWS: Final = frozenset(_G711_LAWS)


def translated_answer(
    answer: SessionDescription, offer: SessionDescription, codecs: AbstractSet[str]
) -> tuple[SessionDescription, LawTranslation | None]:
    """``answer`` (one ``m=`` line per line of ``offer``: ``answer_with_offers_lines``) as the
    offer's G.711 law, and how to translate its party's audio, when its first active audio stream
    answers the other law only (``a=rtpmap:0 PCMU/8000`` to an offer of PCMA alone). RFC 3264
    §6.1 forbids that answer, yet such a party (SIPp's built-in ``uas``, some gateways) sends and
    expects the law it answered; callherald then translates between the laws (both must be in
    ``codecs``), and the rest of the call sees the answer as the offer's law, on the offer's
    payload type. The answer comes back as it is, with None, whenever it keeps a voice codec of
    the offer, answers anything but G.711, or either stream is not plain RTP (SRTP payloads are
    encrypted)."""
    index = next((i for i, m in enumerate(answer.media) if m.media == "audio" and not m.rejected), None)
    if index is None or index >= len(offer.media):
        return answer, None
    answered, offered = answer.media[index], offer.media[index]
    if offered.rejected or offered.media != "audio" or not (_plain_rtp(answered) and _plain_rtp(offered)):
        return answer, None
    within = answered.copy()
    if within.drop_formats(frozenset(within.formats_outside(offered))) and _has_voice(within):
        return answer, None
    party = _first_g711(answered, codecs)
    if party is None:
        return answer, None
    other_law = _G711_LAWS[1 - _G711_LAWS.index(party[1])]
    call_side = _first_g711(offered, frozenset({other_law}) & codecs)
    if call_side is None:
        return answer, None
    (party_pt, party_codec), (call_pt, call_codec) = party, call_side
    translated = answer.copy()
    codec = offered.codec(call_pt)
    assert codec is not None  # found by it
    translated.media[index].replace_format(party_pt, codec, mapped=call_pt in offered.rtpmaps)
    return translated, LawTranslation(
        party_payload_type=int(party_pt),
        party_codec=party_codec,
        call_payload_type=int(call_pt),
        call_codec=call_codec,
    )


def party_offer_in_call_law(offer: SessionDescription, translation: LawTranslation) -> SessionDescription:
    """A translated party's own ``offer`` (a re-INVITE, an UPDATE) as the rest of the call hears it:
    when its first active audio stream (plain RTP) offers the party's G.711 law and not the call's,
    the call's law on its payload type takes the party's place, so the other party, which has the
    call's law, can answer it (RFC 3264 §8: it may have only that law). Else as it is: an offer that
    has the call's law is relayed unchanged."""
    return _law_swapped(
        offer,
        (str(translation.party_payload_type), translation.party_codec),
        (str(translation.call_payload_type), translation.call_codec),
    )


def call_answer_in_party_law(answer: SessionDescription, translation: LawTranslation) -> SessionDescription:
    """The other party's ``answer`` to a translated party's offer put in the call's law
    (``party_offer_in_call_law``), as that party's offer had it: its law on its payload type in
    place of the call's (RFC 3264 §6.1)."""
    return _law_swapped(
        answer,
        (str(translation.call_payload_type), translation.call_codec),
        (str(translation.party_payload_type), translation.party_codec),
    )


def _law_swapped(
    sdp: SessionDescription, source: tuple[str, str], target: tuple[str, str]
) -> SessionDescription:
    # ``sdp`` with the source law (payload type, law) of its first active audio stream replaced by
    # the target law, when that stream is plain RTP, has the source law and no format of the target's.
    media = _first_audio(sdp)
    if media is None or not _plain_rtp(media):
        return sdp
    laws = {_g711_law(media, pt, _BOTH_LAWS) for pt in media.formats}
    (source_pt, source_law), (target_pt, target_law) = source, target
    if source_pt not in media.formats or _g711_law(media, source_pt, _BOTH_LAWS) != source_law:
        return sdp
    if target_law in laws or target_pt in media.formats:
        return sdp
    swapped = sdp.copy()
    target_media = _first_audio(swapped)
    assert target_media is not None  # the copy's
    codec = RtpMap(payload_type=target_pt, encoding=target_law.upper(), clock_rate=8000)
    needs_rtpmap = STATIC_PAYLOAD_TYPES[target_law] != int(target_pt)  # a static type needs none: RFC 3551 §6
    target_media.replace_format(source_pt, codec, mapped=needs_rtpmap or source_pt in media.rtpmaps)
    return swapped


def offer_with_other_law(
    offer: SessionDescription, codecs: AbstractSet[str]
) -> tuple[SessionDescription, str | None]:
    """``offer`` with the other G.711 law added right after the one its first active audio stream
    offers, when that stream (plain RTP) offers one law only and both are in ``codecs``: a callee
    that has only the other law (a PCMA-only PBX called with PCMU) can then answer it, and
    callherald translates between the two (``translated_answer``, on the offer without it:
    ``without_format``). Returns the offer and the static payload type added (None: none was)."""
    media = _first_audio(offer)
    if media is None or not _plain_rtp(media):
        return offer, None
    offered = [(pt, law) for pt in media.formats if (law := _g711_law(media, pt, codecs)) is not None]
    laws = {law for _, law in offered}
    if len(laws) != 1:
        return offer, None
    other_law = _G711_LAWS[1 - _G711_LAWS.index(laws.pop())]
    added = str(STATIC_PAYLOAD_TYPES[other_law])
    if other_law not in codecs or added in media.formats:  # that static type names something else
        return offer, None
    extended = offer.copy()
    target = _first_audio(extended)
    assert target is not None  # the copy's
    codec = RtpMap(payload_type=added, encoding=other_law.upper(), clock_rate=8000)
    target.insert_format(codec, after=offered[-1][0])
    return extended, added


def without_format(sdp: SessionDescription, payload_type: str) -> SessionDescription:
    """``sdp`` without ``payload_type`` in its first active audio stream (the law
    ``offer_with_other_law`` added), unless no voice codec would be left (then as it is)."""
    media = _first_audio(sdp)
    if media is None or payload_type not in media.formats:
        return sdp
    reduced = sdp.copy()
    target = _first_audio(reduced)
    assert target is not None  # the copy's
    if not target.drop_formats(frozenset({payload_type})) or not _has_voice(target):
        return sdp
    return reduced


def _g711_law(media: MediaDescription, payload_type: str, codecs: AbstractSet[str]) -> str | None:
    """``pcmu`` or ``pcma`` when ``payload_type`` of ``media`` is that law at 8000 Hz, mono, and in
    ``codecs``; else None."""
    codec = media.codec(payload_type)
    if codec is None or not payload_type.isdigit() or int(payload_type) > 127:
        return None
    name = codec.encoding.lower()
    if name in _G711_LAWS and name in codecs and codec.clock_rate == 8000 and codec.channels in (None, 1):
        return name
    return None


def _first_g711(media: MediaDescription, codecs: AbstractSet[str]) -> tuple[str, str] | None:
    """The first format of ``media`` that is PCMU or PCMA at 8000 Hz, mono, and in ``codecs``:
    its payload type and law."""
    for payload_type in media.formats:
        name = _g711_law(media, payload_type, codecs)
        if name is not None:
            return payload_type, name
    return None


def _rejected_like(media: MediaDescription) -> MediaDescription:
    """An ``m=`` line rejecting ``media`` (RFC 3264 §6: port 0; its formats are ignored)."""
    return MediaDescription(media=media.media, port=0, proto=media.proto, formats=media.formats)


def has_allowed_audio(sdp: SessionDescription, codecs: AbstractSet[str]) -> bool:
    """Whether ``anchor_sdp`` keeps an audio stream of ``sdp`` with ``codecs``: its first active
    audio stream has a voice codec among them. An answer without one leaves the session no media."""
    media = _first_audio(sdp)
    if media is None:
        return False
    kept = media.copy()
    return kept.keep_codecs(codecs) and _has_voice(kept)


def anchor_sdp(
    sdp: SessionDescription,
    *,
    dialog: Dialog,
    media_address: str,
    codecs: frozenset[str],
) -> SessionDescription | None:
    """A copy of ``sdp`` that points the first audio stream at our port on ``dialog``.

    Codecs are limited to ``codecs`` in their original order; other streams are refused with port 0
    (RFC 3264 §6). A legacy hold by ``c=0.0.0.0`` becomes ``a=sendonly`` so the hold survives the
    new address (RFC 3264 §8.4). The origin is ours, its version bumped on every offer or answer.
    ICE and what describes the party that wrote ``sdp`` (its software, SSRCs and CNAMEs, stream
    ids, labels, session information, URI, e-mail address, phone number) are left out, and so is
    what callherald does not implement: RTCP feedback, grouping (BUNDLE, ``a=mid``) and
    bandwidth lines. Returns None when no audio codec is left.
    """
    anchored = sdp.copy()
    audio_seen = False
    for media in anchored.media:
        if media.rejected:
            continue
        if media.media != "audio" or audio_seen:
            media.port = 0
            continue
        audio_seen = True
        was_zero_hold = anchored.hold_kind(media) == "zero-address"
        if not media.keep_codecs(codecs) or not _has_voice(media):
            return None
        if was_zero_hold and anchored.effective_direction(media) == "sendrecv":
            media.direction = "sendonly"
        media.port = dialog.media_port
        media.rtcp = None  # ours is on port + 1 (RFC 3550 §11), which needs no a=rtcp (RFC 3605 §2.1)
    if not audio_seen:
        return None
    for level in (anchored, *anchored.media):
        for name in _ICE_ATTRIBUTES:  # media must not find a way around the anchor (RFC 8445)
            level.remove_attributes(name)
        for name in _PARTY_ATTRIBUTES:  # nothing of one party reaches the other (GDPR Art. 5(1)(c))
            level.remove_attributes(name)
        for kind in _PARTY_LINES:
            level.remove_lines(kind)
        for name in _UNSUPPORTED_ATTRIBUTES:  # callherald's SDP offers what callherald does
            level.remove_attributes(name)
        for kind in _UNSUPPORTED_LINES:
            level.remove_lines(kind)
    _send_as_ours(anchored, dialog=dialog, media_address=media_address)
    return anchored


def rejecting_answer(offer: SessionDescription, *, dialog: Dialog, media_address: str) -> SessionDescription:
    """An answer to ``offer`` that rejects every stream of it, for an offer callherald can keep no
    audio of when an answer must still be sent (RFC 3261 §13.2.1: the ACK to a 2xx that made the
    offer carries the answer). RFC 3264 §6: one ``m=`` line per offered one, in order, each with
    port 0 and the offer's formats, which are ignored."""
    answer = SessionDescription(
        lines=["v=0", "s=-", "t=0 0"],
        media=[_rejected_like(media) for media in offer.media],
    )
    _send_as_ours(answer, dialog=dialog, media_address=media_address)
    return answer


def _send_as_ours(sdp: SessionDescription, *, dialog: Dialog, media_address: str) -> None:
    """Make ``sdp`` the next SDP callherald sends in ``dialog``: our address and origin, its
    version one more than the last one's (RFC 3264 §8)."""
    sdp.set_connection_address(media_address)
    sdp.origin = Origin(
        username="callherald",
        sess_id=dialog.sdp_session_id,
        sess_version=dialog.sdp_version,
        address=media_address,
        addrtype="IP6" if ":" in media_address else "IP4",
    )
    dialog.sdp_version += 1
    dialog.last_sdp = sdp
