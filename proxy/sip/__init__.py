"""The sans-IO SIP core (RFC 3261): messages, parser, SDP, transactions, digest authentication.

No sockets, no clocks: callers pass bytes in and a ``now`` for anything timed.
"""

from proxy.sip.errors import SipError
from proxy.sip.headers import CSeq, NameAddress, Via
from proxy.sip.message import Headers, Message, Request, Response, make_response
from proxy.sip.parser import DEFAULT_LIMITS, ParserLimits, StreamFramer, parse_message
from proxy.sip.uri import AbsoluteUri, SipUri, TelUri, Uri, parse_uri

__all__ = [
    "DEFAULT_LIMITS",
    "AbsoluteUri",
    "CSeq",
    "Headers",
    "Message",
    "NameAddress",
    "ParserLimits",
    "Request",
    "Response",
    "SipError",
    "SipUri",
    "StreamFramer",
    "TelUri",
    "Uri",
    "Via",
    "make_response",
    "parse_message",
    "parse_uri",
]
