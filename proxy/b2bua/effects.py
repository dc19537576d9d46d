"""What the B2BUA core asks the I/O layer to do, and what the I/O layer reports back.

Effects are frozen values; ``proxy.aio`` executes them in order. The core never touches a socket.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from proxy.b2bua.settings import Address, Side
from proxy.sip.message import Message

__all__ = [
    "CallEnded",
    "CallStarted",
    "CloseMedia",
    "Effect",
    "LogEvent",
    "MediaLeg",
    "OpenMedia",
    "SendSip",
    "SetMediaRemote",
]


class MediaLeg(StrEnum):
    """The caller's leg (``a``, where the INVITE came from) and the callee's leg (``b``)."""

    A = "a"
    B = "b"

    @property
    def other(self) -> MediaLeg:
        return MediaLeg.B if self is MediaLeg.A else MediaLeg.A


@dataclass(frozen=True, slots=True, kw_only=True)
class SendSip:
    """Send ``message`` from the listener of ``side`` to ``destination``."""

    message: Message
    destination: Address
    side: Side


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenMedia:
    """Bind RTP (even port) and RTCP (port + 1) sockets for both legs of a call and relay between them."""

    call_ref: str
    a_port: int
    b_port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SetMediaRemote:
    """Where the leg's peer said it receives RTP (from SDP); None while on hold or unknown.

    The relay latches to the first source it actually hears on the leg (symmetric RTP), and a new
    remote from a later offer or answer releases the latch.
    """

    call_ref: str
    leg: MediaLeg
    remote: Address | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseMedia:
    """Stop relaying and close the call's sockets; the core has returned the ports to its pool."""

    call_ref: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted:
    """A call was accepted: ``direction`` is ``inbound`` (carrier to PBX) or ``outbound``."""

    call_ref: str
    direction: str
    caller: str
    callee: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded:
    """A call is over on both legs, with the reason (e.g. ``bye-from-a``, ``busy``, ``rtp-timeout``)."""

    call_ref: str
    reason: str
    status: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEvent:
    """Something an operator should be able to read in the log."""

    level: str
    text: str
    call_ref: str | None = None


Effect = SendSip | OpenMedia | SetMediaRemote | CloseMedia | CallStarted | CallEnded | LogEvent
