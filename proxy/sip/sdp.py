"""SDP session descriptions (RFC 8866) as a media-anchoring B2BUA reads and edits them.

Theory of operation: a description is kept as its lines, not as a full object model. The
session level is a list of ``"<letter>=<value>"`` strings, followed by one
``MediaDescription`` per ``m=`` line, each holding the lines that follow it. Only the lines
the B2BUA must interpret are checked when parsing (``v=``, ``o=``, ``c=``, ``m=``); every
other line, known or not, is kept as text, so a parse followed by ``bytes()`` with no edits
gives back the input (line endings become CRLF, trailing blank lines are dropped).

Typed accessors read that text on demand and edits rewrite, insert or delete single lines,
leaving every other line where it was. Attributes that do not parse (a broken ``a=rtpmap``,
``a=rtcp`` or ``a=ptime``) read as absent and stay verbatim.

Descriptions are mutable: the B2BUA takes ``copy()`` of what a peer sent and edits the copy
(origin, connection addresses, ports, codecs, direction, ``a=rtcp``) before passing it on.
The value types it reads and writes (``Origin``, ``Connection``, ``RtpMap``, ``Rtcp``) are frozen.

Text is UTF-8 (RFC 8866 §5); bytes that are not UTF-8 survive a round trip unchanged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import ClassVar, Final, Literal

from proxy.sip.errors import SipError

__all__ = [
    "DIRECTIONS",
    "MAX_PORT",
    "STATIC_PAYLOAD_TYPES",
    "Connection",
    "Direction",
    "HoldKind",
    "MediaDescription",
    "Origin",
    "Rtcp",
    "RtpMap",
    "SessionDescription",
]

MAX_PORT: Final = 65535

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
# RFC 3264 §8.4 hold by direction, or RFC 2543 hold by a zero connection address.
HoldKind = Literal["sendonly", "inactive", "zero-address"]

_DIRECTION_BY_NAME: Final[dict[str, Direction]] = {
    "sendrecv": "sendrecv",
    "sendonly": "sendonly",
    "recvonly": "recvonly",
    "inactive": "inactive",
}
DIRECTIONS: Final = frozenset(_DIRECTION_BY_NAME)

_TYPE_LETTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyz")
# RFC 8866 §5 line order; a new line goes after the last line that may precede it.
_SESSION_ORDER: Final = "vosiuepcbtrzka"
_MEDIA_ORDER: Final = "micbka"
# Attributes bound to one payload type, dropped along with it.
_PER_FORMAT_ATTRIBUTES: Final = frozenset({"rtpmap", "fmtp", "rtcp-fb"})
_ZERO_ADDRESSES: Final = frozenset({"0.0.0.0", "::"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin:
    """The ``o=`` line (RFC 8866 §5.2). ``sess_version`` must grow with each new offer (RFC 3264 §8)."""

    username: str
    sess_id: str
    sess_version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str

    @classmethod
    def parse(cls, value: str) -> Origin:
        """Parse the text after ``o=``; raise ``SipError`` (400) unless six fields, numeric version."""
        parts = value.split()
        if len(parts) != 6:
            raise SipError(f"SDP o= line does not have six fields: {value!r}", 400)
        username, sess_id, version, nettype, addrtype, address = parts
        if not _is_digits(version):
            raise SipError(f"SDP o= sess-version is not a number: {version!r}", 400)
        return cls(
            username=username,
            sess_id=sess_id,
            sess_version=int(version),
            nettype=nettype,
            addrtype=addrtype,
            address=address,
        )

    def __str__(self) -> str:
        return " ".join(
            (self.username, self.sess_id, str(self.sess_version), self.nettype, self.addrtype, self.address)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """A ``c=`` line (RFC 8866 §5.7). ``address`` keeps any multicast ``/ttl/count`` suffix."""

    nettype: str = "IN"
    addrtype: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Connection:
        """Parse the text after ``c=``.

        Raise ``SipError`` 400 unless it has three fields, and 488 (RFC 3261 §21.4.26) for a
        network other than ``IN IP4`` / ``IN IP6``, which the B2BUA cannot anchor.
        """
        parts = value.split()
        if len(parts) != 3:
            raise SipError(f"SDP c= line does not have three fields: {value!r}", 400)
        nettype, addrtype, address = parts
        if nettype != "IN" or addrtype not in ("IP4", "IP6"):
            raise SipError(f"SDP c= network is not IN IP4 or IN IP6: {value!r}", 488)
        return cls(nettype=nettype, addrtype=addrtype, address=address)

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """``IN IP4`` or ``IN IP6`` for an IP literal; raise ``ValueError`` for anything else."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"{address!r} is not an IP address literal") from None
        # A zone index (RFC 4007 §11) means nothing to the peer.
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
            raise ValueError(f"{address!r} is not an IP address literal without a zone")
        return cls(addrtype="IP6" if ip.version == 6 else "IP4", address=address)

    @property
    def is_zero(self) -> bool:
        """True for the unspecified address, which RFC 2543 used to put a stream on hold."""
        return self.address in _ZERO_ADDRESSES

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RtpMap:
    """An ``a=rtpmap`` entry (RFC 8866 §6.6). ``channels`` is None when not given (one, for audio)."""

    payload_type: str
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, value: str) -> RtpMap | None:
        """Parse the text after ``a=rtpmap:``; None if it is not ``<pt> <name>/<rate>[/<channels>]``."""
        payload_type, _, rest = value.partition(" ")
        parts = rest.strip().split("/")
        if not payload_type or len(parts) not in (2, 3) or not parts[0] or not _is_digits(parts[1]):
            return None
        channels = None
        if len(parts) == 3:
            if not _is_digits(parts[2]):
                return None
            channels = int(parts[2])
        return cls(payload_type=payload_type, encoding=parts[0], clock_rate=int(parts[1]), channels=channels)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rtcp:
    """An ``a=rtcp`` attribute (RFC 3605 §2.1): the RTCP port, and an address if it differs from ``c=``."""

    port: int
    connection: Connection | None = None

    @classmethod
    def parse(cls, value: str) -> Rtcp | None:
        """Parse the text after ``a=rtcp:``; None if it is not ``<port> [IN IP4|IP6 <address>]``."""
        port_text, _, rest = value.strip().partition(" ")
        if not _is_port(port_text):
            return None
        if not rest:
            return cls(port=int(port_text))
        try:
            connection = Connection.parse(rest)
        except SipError:
            return None
        return cls(port=int(port_text), connection=connection)

    def __str__(self) -> str:
        return f"{self.port}" if self.connection is None else f"{self.port} {self.connection}"


def _static(payload_type: int, encoding: str, clock_rate: int, channels: int | None) -> RtpMap:
    return RtpMap(payload_type=str(payload_type), encoding=encoding, clock_rate=clock_rate, channels=channels)


# RFC 3551 §6 tables 4 and 5: payload types that need no a=rtpmap.
STATIC_PAYLOAD_TYPES: Final[dict[str, RtpMap]] = {
    m.payload_type: m
    for m in (
        _static(0, "PCMU", 8000, 1),
        _static(3, "GSM", 8000, 1),
        _static(4, "G723", 8000, 1),
        _static(5, "DVI4", 8000, 1),
        _static(6, "DVI4", 16000, 1),
        _static(7, "LPC", 8000, 1),
        _static(8, "PCMA", 8000, 1),
        _static(9, "G722", 8000, 1),
        _static(10, "L16", 44100, 2),
        _static(11, "L16", 44100, 1),
        _static(12, "QCELP", 8000, 1),
        _static(13, "CN", 8000, 1),
        _static(14, "MPA", 90000, None),
        _static(15, "G728", 8000, 1),
        _static(16, "DVI4", 11025, 1),
        _static(17, "DVI4", 22050, 1),
        _static(18, "G729", 8000, 1),
        _static(25, "CelB", 90000, None),
        _static(26, "JPEG", 90000, None),
        _static(28, "nv", 90000, None),
        _static(31, "H261", 90000, None),
        _static(32, "MPV", 90000, None),
        _static(33, "MP2T", 90000, None),
        _static(34, "H263", 90000, None),
    )
}


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _is_port(text: str) -> bool:
    return _is_digits(text) and int(text) <= MAX_PORT


def _attribute(line: str) -> tuple[str, str] | None:
    """``("name", "value")`` for an ``a=`` line (value "" for a flag), else None."""
    if not line.startswith("a="):
        return None
    name, _, value = line[2:].partition(":")
    return name.rstrip(), value


class _Level:
    """Lines of one level (session or media) and the edits both levels share."""

    __slots__ = ()
    _order: ClassVar[str]
    lines: list[str]

    def _insert(self, line: str) -> None:
        # RFC 8866 §5: fixed line order; unknown letters do not constrain the position.
        rank = self._order.index(line[0])
        position = 0
        for index, existing in enumerate(self.lines):
            existing_rank = self._order.find(existing[0])
            if 0 <= existing_rank <= rank:
                position = index + 1
        self.lines.insert(position, line)

    def _replace(self, matches: list[int], line: str | None) -> None:
        """Put ``line`` where the first match was (or in order), and delete the other matches."""
        for index in reversed(matches[1:]):
            del self.lines[index]
        if line is None:
            if matches:
                del self.lines[matches[0]]
        elif matches:
            self.lines[matches[0]] = line
        else:
            self._insert(line)

    def attribute_values(self, name: str) -> list[str]:
        """Values of this level's ``a=<name>[:<value>]`` lines in order; "" for a flag attribute."""
        values = []
        for line in self.lines:
            attribute = _attribute(line)
            if attribute is not None and attribute[0] == name:
                values.append(attribute[1])
        return values

    def has_attribute(self, name: str) -> bool:
        """True if this level has at least one ``a=<name>`` line."""
        return any((a := _attribute(line)) is not None and a[0] == name for line in self.lines)

    def add_attribute(self, name: str, value: str | None = None) -> None:
        """Add ``a=<name>`` or ``a=<name>:<value>`` after this level's other attributes."""
        self._insert(f"a={name}" if value is None else f"a={name}:{value}")

    def remove_attributes(self, name: str) -> int:
        """Delete every ``a=<name>`` line at this level; return how many went."""
        kept = [line for line in self.lines if (a := _attribute(line)) is None or a[0] != name]
        removed = len(self.lines) - len(kept)
        self.lines[:] = kept
        return removed

    def remove_lines(self, kind: str) -> int:
        """Delete every ``<kind>=`` line at this level (``kind`` a type letter); return how many went."""
        kept = [line for line in self.lines if line[0] != kind]
        removed = len(self.lines) - len(kept)
        self.lines[:] = kept
        return removed

    @property
    def direction(self) -> Direction | None:
        """The first direction attribute at this level (RFC 3264 §5.1), or None when there is none."""
        for line in self.lines:
            if line.startswith("a="):
                direction = _DIRECTION_BY_NAME.get(line[2:].rstrip())
                if direction is not None:
                    return direction
        return None

    @direction.setter
    def direction(self, value: Direction | None) -> None:
        """Replace every direction attribute at this level with ``value`` (None deletes them)."""
        matches = [
            i
            for i, line in enumerate(self.lines)
            if line.startswith("a=") and line[2:].rstrip() in DIRECTIONS
        ]
        self._replace(matches, None if value is None else f"a={value}")

    @property
    def connection(self) -> Connection | None:
        """The first ``c=`` line at this level, or None."""
        for line in self.lines:
            if line.startswith("c="):
                return Connection.parse(line[2:])
        return None

    @connection.setter
    def connection(self, value: Connection | None) -> None:
        """Replace every ``c=`` line at this level with ``value`` (None deletes them)."""
        matches = [i for i, line in enumerate(self.lines) if line.startswith("c=")]
        self._replace(matches, None if value is None else f"c={value}")


class MediaDescription(_Level):
    """One ``m=`` line (RFC 8866 §5.14) and the lines after it, up to the next ``m=``.

    ``lines`` excludes the ``m=`` line, whose fields are properties; setting one rewrites it.
    """

    __slots__ = ("_formats", "_m_line", "_media", "_port", "_port_count", "_proto", "lines")
    _order: ClassVar[str] = _MEDIA_ORDER

    def __init__(
        self,
        *,
        media: str,
        port: int,
        proto: str,
        formats: Sequence[str],
        port_count: int | None = None,
        lines: Iterable[str] = (),
    ) -> None:
        self._media = media
        self._port = port
        self._port_count = port_count
        self._proto = proto
        self._formats = tuple(formats)
        self.lines: list[str] = list(lines)
        self._render()

    @classmethod
    def _from_line(cls, line: str) -> MediaDescription:
        """Build from an ``m=`` line kept verbatim; raise ``SipError`` (400) if malformed."""
        parts = line[2:].split()
        if len(parts) < 3:
            raise SipError(f"SDP m= line lacks media, port or proto: {line!r}", 400)
        port_text, slash, count_text = parts[1].partition("/")
        if not _is_port(port_text):
            raise SipError(f"SDP m= port is not a number from 0 to {MAX_PORT}: {line!r}", 400)
        if slash and (not _is_digits(count_text) or int(count_text) == 0):
            raise SipError(f"SDP m= port count is not a positive number: {line!r}", 400)
        media = cls.__new__(cls)
        media._media = parts[0]
        media._port = int(port_text)
        media._port_count = int(count_text) if slash else None
        media._proto = parts[2]
        media._formats = tuple(parts[3:])
        media._m_line = line
        media.lines = []
        return media

    def _render(self) -> None:
        count = "" if self._port_count is None else f"/{self._port_count}"
        formats = "".join(f" {f}" for f in self._formats)
        self._m_line = f"m={self._media} {self._port}{count} {self._proto}{formats}"

    @property
    def m_line(self) -> str:
        """The ``m=`` line as it will be serialised."""
        return self._m_line

    @property
    def media(self) -> str:
        """Media type: audio, video, application, image, ..."""
        return self._media

    @property
    def port(self) -> int:
        """Transport port; 0 marks a rejected or disabled stream (RFC 3264 §6, §8.2)."""
        return self._port

    @port.setter
    def port(self, value: int) -> None:
        if not 0 <= value <= MAX_PORT:
            raise ValueError(f"port out of range: {value}")
        self._port = value
        self._render()

    @property
    def port_count(self) -> int | None:
        """The ``/<number of ports>`` of the m= line, or None when absent."""
        return self._port_count

    @port_count.setter
    def port_count(self, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"port count must be positive: {value}")
        self._port_count = value
        self._render()

    @property
    def proto(self) -> str:
        """Transport protocol: RTP/AVP, RTP/SAVP, UDP/TLS/RTP/SAVPF, udptl, ..."""
        return self._proto

    @proto.setter
    def proto(self, value: str) -> None:
        self._proto = value
        self._render()

    @property
    def formats(self) -> tuple[str, ...]:
        """Media formats in m= line order: payload type numbers for RTP protos."""
        return self._formats

    @formats.setter
    def formats(self, value: Sequence[str]) -> None:
        self._formats = tuple(value)
        self._render()

    @property
    def rejected(self) -> bool:
        """True when the port is 0 (RFC 3264 §6)."""
        return self._port == 0

    def copy(self) -> MediaDescription:
        """An independent copy."""
        media = MediaDescription._from_line(self._m_line)
        media.lines = list(self.lines)
        return media

    @property
    def rtpmaps(self) -> dict[str, RtpMap]:
        """Payload type -> the first well-formed ``a=rtpmap`` for it, in line order."""
        maps: dict[str, RtpMap] = {}
        for line in self.lines:
            if line.startswith("a=rtpmap:"):
                rtpmap = RtpMap.parse(line[9:])
                if rtpmap is not None and rtpmap.payload_type not in maps:
                    maps[rtpmap.payload_type] = rtpmap
        return maps

    def codec(self, payload_type: str) -> RtpMap | None:
        """The ``a=rtpmap`` for ``payload_type``, else its RFC 3551 static assignment, else None."""
        return self.rtpmaps.get(payload_type) or STATIC_PAYLOAD_TYPES.get(payload_type)

    def fmtp(self, payload_type: str) -> str | None:
        """The parameters of ``a=fmtp:<payload_type>`` (RFC 8866 §6.15), or None."""
        for line in self.lines:
            if line.startswith("a=fmtp:"):
                pt, _, params = line[7:].partition(" ")
                if pt == payload_type:
                    return params.strip()
        return None

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds (RFC 8866 §6.4), or None if absent or not a whole number."""
        values = self.attribute_values("ptime")
        if not values:
            return None
        value = values[0].strip()
        return int(value) if _is_digits(value) else None

    def telephone_event_pt(self, clock_rate: int = 8000) -> str | None:
        """The first format mapped to telephone-event (RFC 4733) at ``clock_rate``, or None."""
        rtpmaps = self.rtpmaps
        for pt in self._formats:
            rtpmap = rtpmaps.get(pt)
            if (
                rtpmap is not None
                and rtpmap.encoding.lower() == "telephone-event"
                and rtpmap.clock_rate == clock_rate
            ):
                return pt
        return None

    def keep_codecs(self, allowed: AbstractSet[str]) -> bool:
        """Keep the formats whose encoding name is in ``allowed`` (lower case), in their order.

        A format is named by its ``a=rtpmap``, else by RFC 3551's static table, else by itself
        (so ``t38`` names itself). A telephone-event format whose clock rate no kept codec has
        goes too, when a codec is kept (RFC 4733: events in the audio's stream use its clock; a
        telephone-event/48000 left over from Opus is of no use beside PCMU). The ``a=rtpmap``,
        ``a=fmtp`` and ``a=rtcp-fb`` lines of dropped formats go too. If nothing is allowed, the
        stream is rejected: port 0 and only the first format kept, as an m= line needs one
        (RFC 3264 §6). Return True if a format was allowed.
        """
        rtpmaps = self.rtpmaps
        kept: list[str] = []
        events: dict[str, int | None] = {}  # kept telephone-event formats, with their clock rates
        codec_rates: set[int] = set()
        for pt in self._formats:
            rtpmap = rtpmaps.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
            name = pt if rtpmap is None else rtpmap.encoding
            if name.lower() in allowed:
                kept.append(pt)
                rate = None if rtpmap is None else rtpmap.clock_rate
                if name.lower() == "telephone-event":
                    events[pt] = rate
                elif rate is not None:
                    codec_rates.add(rate)
        if codec_rates:
            kept = [pt for pt in kept if pt not in events or events[pt] in codec_rates]
        return self._keep_formats(kept)

    def formats_outside(self, offer: MediaDescription) -> tuple[str, ...]:
        """The formats of this stream, an answer to ``offer``, that ``offer`` did not list or
        mapped to another codec, in m= line order.

        RFC 3264 §6.1 lets an answer list formats the offer did not have, but neither party may
        send in them until an offer lists them (§6.1, §7); and a payload type keeps the codec it
        was first given for the whole session, in any offer or answer (§8.3.2), so an answer's
        ``a=rtpmap:101 PCMA/8000`` for an offer's telephone-event 101 is not the offer's format.
        Codecs compare by encoding name (case aside), clock rate and channels; a format with no
        ``a=rtpmap`` in one of them (a dynamic type left unmapped) is taken for the other's.
        """
        offered = set(offer.formats)
        return tuple(
            pt for pt in self._formats if pt not in offered or _other_codec(self.codec(pt), offer.codec(pt))
        )

    def drop_formats(self, payload_types: AbstractSet[str]) -> bool:
        """Drop ``payload_types`` from the m= line with their ``a=rtpmap``, ``a=fmtp`` and
        ``a=rtcp-fb`` lines. A stream left with none is rejected as ``keep_codecs`` rejects one.
        Return True if a format is left."""
        return self._keep_formats([pt for pt in self._formats if pt not in payload_types])

    def replace_format(self, payload_type: str, codec: RtpMap, *, mapped: bool) -> None:
        """Put ``codec`` (its payload type) in the m= line where ``payload_type`` was, dropping the
        ``a=rtpmap``, ``a=fmtp`` and ``a=rtcp-fb`` lines of both; with ``mapped``, an ``a=rtpmap``
        line for ``codec`` is added (a static type needs none: RFC 3551 §6)."""
        new = codec.payload_type
        gone = {payload_type, new}
        self.lines = [line for line in self.lines if not _belongs_to(line, gone)]
        self._formats = tuple(
            new if pt == payload_type else pt for pt in self._formats if pt == payload_type or pt != new
        )
        self._render()
        if mapped:
            self._add_rtpmap(codec)

    def insert_format(self, codec: RtpMap, *, after: str) -> None:
        """Put ``codec`` (its payload type, not yet in the m= line) right after ``after`` in the m=
        line, with an ``a=rtpmap`` line for it."""
        index = self._formats.index(after) + 1
        self._formats = (*self._formats[:index], codec.payload_type, *self._formats[index:])
        self._render()
        self._add_rtpmap(codec)

    def _add_rtpmap(self, codec: RtpMap) -> None:
        channels = "" if codec.channels is None else f"/{codec.channels}"
        self.add_attribute("rtpmap", f"{codec.payload_type} {codec.encoding}/{codec.clock_rate}{channels}")

    def _keep_formats(self, kept: Sequence[str]) -> bool:
        """Keep ``kept`` of the formats (in their order) and the lines of those; with none kept
        the stream is rejected: port 0 and only the first format kept, as an m= line needs one
        (RFC 3264 §6). Return True if a format was kept."""
        accepted = bool(kept)
        if accepted and len(kept) == len(self._formats):
            return True
        if not accepted:
            kept = self._formats[:1]
            self._port = 0
        dropped = set(self._formats).difference(kept)
        if dropped:
            self.lines = [line for line in self.lines if not _belongs_to(line, dropped)]
        self._formats = tuple(kept)
        self._render()
        return accepted

    @property
    def rtcp(self) -> Rtcp | None:
        """The first well-formed ``a=rtcp`` attribute (RFC 3605), or None."""
        for line in self.lines:
            if line.startswith("a=rtcp:"):
                rtcp = Rtcp.parse(line[7:])
                if rtcp is not None:
                    return rtcp
        return None

    @rtcp.setter
    def rtcp(self, value: Rtcp | None) -> None:
        """Replace every ``a=rtcp`` line with ``value`` (None deletes them)."""
        matches = [i for i, line in enumerate(self.lines) if line.startswith("a=rtcp:")]
        self._replace(matches, None if value is None else f"a=rtcp:{value}")

    def __repr__(self) -> str:
        return f"MediaDescription({self._m_line!r}, {len(self.lines)} lines)"


def _other_codec(mine: RtpMap | None, theirs: RtpMap | None) -> bool:
    """True when both name a codec and not the same one (RFC 8866 §6.6: name, rate, channels)."""
    if mine is None or theirs is None:
        return False
    return (mine.encoding.lower(), mine.clock_rate, mine.channels or 1) != (
        theirs.encoding.lower(),
        theirs.clock_rate,
        theirs.channels or 1,
    )


def _belongs_to(line: str, payload_types: AbstractSet[str]) -> bool:
    attribute = _attribute(line)
    if attribute is None or attribute[0] not in _PER_FORMAT_ATTRIBUTES:
        return False
    return attribute[1].partition(" ")[0] in payload_types


class SessionDescription(_Level):
    """A whole SDP body: session-level ``lines`` then ``media``, one entry per ``m=`` line."""

    __slots__ = ("lines", "media")
    _order: ClassVar[str] = _SESSION_ORDER

    def __init__(self, *, lines: Iterable[str], media: Iterable[MediaDescription] = ()) -> None:
        self.lines: list[str] = list(lines)
        self.media: list[MediaDescription] = list(media)

    @classmethod
    def parse(cls, data: bytes) -> SessionDescription:
        """Parse an SDP body with CRLF or LF line ends; raise ``SipError`` if it is not valid SDP.

        Checked: every line is ``<letter>=<value>``; the first is ``v=``; there is exactly one
        ``o=`` at session level, with six fields; ``c=`` has three fields and is IN IP4/IP6
        (488 otherwise); ``m=`` has media, a numeric port and a proto. Everything else raises
        with status 400. Tolerated: ``m=`` lines without formats, missing ``s=``/``t=``, lines
        out of RFC 8866 §5 order, type letters RFC 8866 does not define.
        """
        text = data.decode("utf-8", "surrogateescape").replace("\r\n", "\n").rstrip("\n")
        if not text:
            raise SipError("SDP is empty", 400)
        session: list[str] = []
        media: list[MediaDescription] = []
        current = session
        origins = 0
        for line in text.split("\n"):
            if len(line) < 2 or line[1] != "=" or line[0] not in _TYPE_LETTERS:
                raise SipError(f"SDP line is not <letter>=<value>: {line!r}", 400)
            kind = line[0]
            if kind == "a":
                current.append(line)
                continue
            if kind == "m":
                description = MediaDescription._from_line(line)
                media.append(description)
                current = description.lines
                continue
            if kind == "c":
                Connection.parse(line[2:])
            elif kind == "o" and current is session:
                Origin.parse(line[2:])
                origins += 1
            current.append(line)
        if not session or not session[0].startswith("v="):
            raise SipError("SDP does not start with a v= line", 400)
        if origins != 1:
            raise SipError(f"SDP has {origins} o= lines at session level, not one", 400)
        return cls(lines=session, media=media)

    def __bytes__(self) -> bytes:
        lines = list(self.lines)
        for media in self.media:
            lines.append(media.m_line)
            lines.extend(media.lines)
        lines.append("")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape")

    def copy(self) -> SessionDescription:
        """An independent copy: edits to it leave this description alone."""
        return SessionDescription(lines=self.lines, media=[media.copy() for media in self.media])

    @property
    def origin(self) -> Origin:
        """The ``o=`` line; raise ``SipError`` (400) if it is missing."""
        for line in self.lines:
            if line.startswith("o="):
                return Origin.parse(line[2:])
        raise SipError("SDP has no o= line", 400)

    @origin.setter
    def origin(self, value: Origin) -> None:
        """Rewrite the ``o=`` line in place (or add it after ``v=``)."""
        matches = [i for i, line in enumerate(self.lines) if line.startswith("o=")]
        self._replace(matches, f"o={value}")

    def effective_connection(self, media: MediaDescription) -> Connection | None:
        """The media-level ``c=``, else the session-level one (RFC 8866 §5.7), else None."""
        connection = media.connection
        return connection if connection is not None else self.connection

    def set_connection_address(self, address: str) -> None:
        """Point every ``c=`` line, session and media level, at the IP literal ``address``.

        IN IP4 or IN IP6 follows the address. A session-level ``c=`` is added when some media
        would otherwise have none. ``a=rtcp`` addresses are left alone; set ``rtcp`` for those.
        """
        connection = Connection.for_address(address)
        needs_session = self.connection is not None
        for media in self.media:
            if media.connection is None:
                needs_session = True
            else:
                media.connection = connection
        if needs_session:
            self.connection = connection

    def effective_direction(self, media: MediaDescription) -> Direction:
        """The media-level direction, else the session-level one, else sendrecv (RFC 3264 §5.1)."""
        direction = media.direction
        if direction is None:
            direction = self.direction
        return "sendrecv" if direction is None else direction

    def hold_kind(self, media: MediaDescription) -> HoldKind | None:
        """How ``media`` is put on hold, or None if it is not (or is rejected).

        ``sendonly``/``inactive`` are RFC 3264 §8.4 hold; ``zero-address`` is the RFC 2543
        ``c=IN IP4 0.0.0.0`` hold (``::`` likewise), unless ICE is in use, where a zero
        address is only a placeholder (RFC 8839).
        """
        if media.port == 0:
            return None
        direction = self.effective_direction(media)
        if direction == "sendonly":
            return "sendonly"
        if direction == "inactive":
            return "inactive"
        connection = self.effective_connection(media)
        if (
            connection is not None
            and connection.is_zero
            and not media.has_attribute("ice-ufrag")
            and not self.has_attribute("ice-ufrag")
        ):
            return "zero-address"
        return None

    def is_hold(self, media: MediaDescription | None = None) -> bool:
        """Whether ``media`` is on hold; without ``media``, whether every active stream is (and one is)."""
        if media is not None:
            return self.hold_kind(media) is not None
        active = [m for m in self.media if m.port != 0]
        return bool(active) and all(self.hold_kind(m) is not None for m in active)

    def __repr__(self) -> str:
        return f"SessionDescription.parse({bytes(self)!r})"
