"""The sans-IO RTP layer: packets, wrap-around arithmetic, G.711, telephone-events, pacing math.

No sockets, no clocks: callers pass bytes in and a ``now`` (or elapsed samples) for anything timed.
"""

from proxy.rtp.dtmf import DigitDetected, TelephoneEvent, TelephoneEventReceiver, TelephoneEventSender
from proxy.rtp.errors import RtpError
from proxy.rtp.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from proxy.rtp.pacing import PacedClock, RtpStreamState
from proxy.rtp.packet import (
    RtcpHeader,
    RtpExtension,
    RtpPacket,
    build_rtcp_bye,
    is_rtcp,
    parse_rtcp,
    peek_header,
    rewrite_header,
)
from proxy.rtp.seqnum import (
    ExtendedSequence,
    SeqStatus,
    SequenceStats,
    seq_add,
    seq_diff,
    seq_newer,
    ts_add,
    ts_diff,
    ts_newer,
)

__all__ = [
    "DigitDetected",
    "ExtendedSequence",
    "PacedClock",
    "RtcpHeader",
    "RtpError",
    "RtpExtension",
    "RtpPacket",
    "RtpStreamState",
    "SeqStatus",
    "SequenceStats",
    "TelephoneEvent",
    "TelephoneEventReceiver",
    "TelephoneEventSender",
    "alaw_decode",
    "alaw_encode",
    "build_rtcp_bye",
    "is_rtcp",
    "parse_rtcp",
    "peek_header",
    "rewrite_header",
    "seq_add",
    "seq_diff",
    "seq_newer",
    "ts_add",
    "ts_diff",
    "ts_newer",
    "ulaw_decode",
    "ulaw_encode",
]
