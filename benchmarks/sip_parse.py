"""Microseconds per message for the SIP core's parser, measured next to sippy's on the same bytes.

Run as ``python -m benchmarks.sip_parse [--seconds N] [--json]``. Two messages (an INVITE with an
SDP offer, about 1.2 KB, and the 200 OK with the answer) go through five operations in each
implementation:

- ``parse``: bytes in, message object out. ``parse_message`` checks the structure, the mandatory
  headers, Call-ID, CSeq, Max-Forwards and Content-Length and the Request-URI, and parses the other
  header values when first read; sippy splits the header lines and reads Content-Length, leaving
  each header's value undecoded until asked.
- ``parse, same headers decoded``: both parse, then decode Via, From, To, Call-ID, CSeq, Contact,
  Route, Record-Route and Max-Forwards (ours with ``Message.validate()``), so both do the same work.
- ``parse + serialise``: bytes in, bytes out (``bytes(message)``; sippy's ``localStr()`` encoded).
- ``parse + proxy fields``: parse, then read Call-ID, CSeq, the From and To tags, the top Via's branch
  and the Contact URIs, as a proxy routing the message does.
- ``parse + SDP parse + serialise``: also parse the SDP body (``SessionDescription.parse``; sippy's
  ``body.parse()``) and serialise the message with the body written back from the parsed form.

sippy works on ``str``; the UTF-8 decode of the datagram (what its transaction manager does on
receipt) and the encode of its output are counted in its time. Each figure is the best, over
``ROUNDS`` rounds, of the median time per message across the samples in a round; the two
implementations alternate round by round, after a warm-up, with the garbage collector paused as
``timeit`` does.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from importlib import metadata
from typing import Any

from sippy.SipRequest import SipRequest
from sippy.SipResponse import SipResponse

from proxy.sip import Message, parse_message
from proxy.sip.sdp import SessionDescription

__all__ = [
    "INVITE_WITH_SDP",
    "OK_WITH_SDP",
    "ROUNDS",
    "CaseResult",
    "format_table",
    "main",
    "results_json",
    "run_benchmarks",
]

ROUNDS = 5
MIN_SAMPLES_PER_ROUND = 3
SAMPLE_TARGET_NS = 2_000_000  # each sample times about 2 ms of back-to-back calls
WARM_UP_SHARE = 0.1
DEFAULT_SECONDS = 2.0


def _with_body(head: str, body: str) -> bytes:
    """``head`` (ending in ``Content-Length: {length}`` and an empty line) with ``body`` appended."""
    encoded = body.encode()
    return head.format(length=len(encoded)).encode() + encoded


_OFFER = (
    "v=0\r\n"
    "o=- 1718012345 1718012345 IN IP4 10.0.0.21\r\n"
    "s=ExamplePBX\r\n"
    "c=IN IP4 10.0.0.21\r\n"
    "t=0 0\r\n"
    "m=audio 16384 RTP/AVP 0 8 9 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
    "a=maxptime:150\r\n"
    "a=sendrecv\r\n"
)

_ANSWER = (
    "v=0\r\n"
    "o=CarrierSBC 4711 4712 IN IP4 203.0.113.5\r\n"
    "s=SBC\r\n"
    "c=IN IP4 203.0.113.5\r\n"
    "t=0 0\r\n"
    "m=audio 40002 RTP/AVP 8 101\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
)

INVITE_WITH_SDP = _with_body(
    "INVITE sip:+4930123456@carrier.example.net;user=phone SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-524287-1---8a7f3c;rport\r\n"
    "Via: SIP/2.0/UDP 10.0.0.21:5060;received=10.0.0.21;branch=z9hG4bK776asdhds;rport=5060\r\n"
    "Record-Route: <sip:198.51.100.10:5060;lr;ftag=as1f2e3d4c>\r\n"
    "Max-Forwards: 69\r\n"
    'From: "Reception Desk" <sip:200@pbx.example.com>;tag=as1f2e3d4c\r\n'
    "To: <sip:+4930123456@carrier.example.net;user=phone>\r\n"
    "Call-ID: 3c26700b7f2a4e1c9a1b0c5d6e7f8091@10.0.0.21\r\n"
    "CSeq: 102 INVITE\r\n"
    "Contact: <sip:200@10.0.0.21:5060;transport=udp>"
    ';+sip.instance="<urn:uuid:00000000-0000-1000-8000-000b82c1d2e3>"\r\n'
    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE, PRACK, MESSAGE\r\n"
    "Supported: replaces, timer, 100rel, path\r\n"
    'P-Asserted-Identity: "Example GmbH" <sip:+493098765432@pbx.example.com;user=phone>\r\n'
    "User-Agent: ExamplePBX 18.12.1\r\n"
    "Session-Expires: 1800;refresher=uac\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n"
    "\r\n",
    _OFFER,
)

OK_WITH_SDP = _with_body(
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bK-524287-1---8a7f3c;rport=5060"
    ";received=198.51.100.10\r\n"
    "Via: SIP/2.0/UDP 10.0.0.21:5060;received=10.0.0.21;branch=z9hG4bK776asdhds;rport=5060\r\n"
    "Record-Route: <sip:198.51.100.10:5060;lr;ftag=as1f2e3d4c>\r\n"
    'From: "Reception Desk" <sip:200@pbx.example.com>;tag=as1f2e3d4c\r\n'
    "To: <sip:+4930123456@carrier.example.net;user=phone>;tag=sbc-7f3e9a01\r\n"
    "Call-ID: 3c26700b7f2a4e1c9a1b0c5d6e7f8091@10.0.0.21\r\n"
    "CSeq: 102 INVITE\r\n"
    "Contact: <sip:+4930123456@203.0.113.5:5060;transport=udp>\r\n"
    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK\r\n"
    "Supported: timer, 100rel\r\n"
    "Session-Expires: 1800;refresher=uac\r\n"
    "Server: CarrierSBC 5.2\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n"
    "\r\n",
    _ANSWER,
)

# The headers parse_message decodes while validating (parser._validate); sippy's names.
_EAGER_HEADERS = frozenset(
    {"via", "from", "to", "call-id", "cseq", "contact", "route", "record-route", "max-forwards"}
)

ProxyFields = tuple[str, int, str, str | None, str | None, str | None, tuple[str, ...]]


def _our_fields(message: Message) -> ProxyFields:
    cseq = message.cseq
    return (
        message.call_id,
        cseq.seq,
        cseq.method,
        message.from_.tag,
        message.to.tag,
        message.top_via.branch,
        tuple(str(contact.uri) for contact in message.contacts),
    )


def _sippy_fields(message: Any) -> ProxyFields:
    seq, method = message.getHFBody("cseq").getCSeq()
    return (
        str(message.getHFBody("call-id")),
        seq,
        method,
        message.getHFBody("from").getTag(),
        message.getHFBody("to").getTag(),
        message.getHFBody("via").getBranch(),
        tuple(str(contact.getUrl()) for contact in message.getHFBodys("contact")),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Case:
    name: str
    ours: Callable[[bytes], object]
    sippy: Callable[[Any, bytes], object]


def _sippy_parse(kind: Any, data: bytes) -> Any:
    return kind(buf=data.decode())


def _sippy_parse_eager(kind: Any, data: bytes) -> Any:
    message = kind(buf=data.decode())
    for header in message.headers:
        if header.name in _EAGER_HEADERS:
            header.getBody()
    return message


def _sippy_round_trip(kind: Any, data: bytes) -> bytes:
    return kind(buf=data.decode()).localStr().encode()  # type: ignore[no-any-return]


def _sippy_proxy_fields(kind: Any, data: bytes) -> ProxyFields:
    return _sippy_fields(kind(buf=data.decode()))


def _sippy_sdp_round_trip(kind: Any, data: bytes) -> bytes:
    message = kind(buf=data.decode())
    message.body.parse()
    return message.localStr().encode()  # type: ignore[no-any-return]


def _our_sdp_round_trip(data: bytes) -> bytes:
    message = parse_message(data)
    message.body = bytes(SessionDescription.parse(message.body))
    return bytes(message)


def _our_parse_eager(data: bytes) -> Message:
    message = parse_message(data)
    message.validate()
    return message


def _our_round_trip(data: bytes) -> bytes:
    return bytes(parse_message(data))


def _our_proxy_fields(data: bytes) -> ProxyFields:
    return _our_fields(parse_message(data))


_CASES = (
    _Case(name="parse", ours=parse_message, sippy=_sippy_parse),
    _Case(name="parse, same headers decoded", ours=_our_parse_eager, sippy=_sippy_parse_eager),
    _Case(name="parse + serialise", ours=_our_round_trip, sippy=_sippy_round_trip),
    _Case(name="parse + proxy fields", ours=_our_proxy_fields, sippy=_sippy_proxy_fields),
    _Case(name="parse + SDP parse + serialise", ours=_our_sdp_round_trip, sippy=_sippy_sdp_round_trip),
)

_MESSAGES = (
    ("INVITE + SDP", INVITE_WITH_SDP, SipRequest),
    ("200 OK + SDP", OK_WITH_SDP, SipResponse),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseResult:
    """One operation on one message: best-of-``ROUNDS`` median microseconds per message."""

    case: str
    message: str
    message_bytes: int
    ours_us: float
    sippy_us: float

    @property
    def ratio(self) -> float:
        """sippy's time over ours: above 1 means ours is faster."""
        return self.sippy_us / self.ours_us


def _sdp_summary(body: bytes) -> tuple[object, ...]:
    description = SessionDescription.parse(body)
    return (
        str(description.origin),
        [(media.media, media.port, media.formats, sorted(media.rtpmaps)) for media in description.media],
        [str(description.effective_connection(media)) for media in description.media],
    )


def _check_equivalence(data: bytes, kind: Any) -> None:
    """Both parsers must read the same fields and both outputs must parse back to them."""
    ours = _our_fields(parse_message(data))
    theirs = _sippy_proxy_fields(kind, data)
    if ours != theirs:
        raise RuntimeError(f"parsers disagree on the proxy fields: {ours!r} != {theirs!r}")
    our_bytes = _our_round_trip(data)
    if _our_round_trip(our_bytes) != our_bytes:
        raise RuntimeError("our serialisation does not round-trip")
    offer = _sdp_summary(parse_message(data).body)
    for output in (
        our_bytes,
        _sippy_round_trip(kind, data),
        _our_sdp_round_trip(data),
        _sippy_sdp_round_trip(kind, data),
    ):
        message = parse_message(output)
        if _our_fields(message) != ours or _sdp_summary(message.body) != offer:
            raise RuntimeError(f"a serialised message reads differently: {output!r}")


def _calibrate(operation: Callable[[], object]) -> int:
    """Calls per sample so that one sample takes about ``SAMPLE_TARGET_NS``."""
    loops = 1
    while True:
        start = time.perf_counter_ns()
        for _ in range(loops):
            operation()
        elapsed = time.perf_counter_ns() - start
        if elapsed >= SAMPLE_TARGET_NS // 4:
            return max(1, loops * SAMPLE_TARGET_NS // elapsed)
        loops *= 2


def _sample_ns(operation: Callable[[], object], loops: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(loops):
        operation()
    return (time.perf_counter_ns() - start) / loops


def _measure(operations: Sequence[Callable[[], object]], seconds: float) -> list[float]:
    """Best-of-``ROUNDS`` median nanoseconds per call of each operation, rounds interleaved."""
    share_ns = seconds * 1e9 / len(operations)
    loops = [_calibrate(operation) for operation in operations]
    for operation, count in zip(operations, loops, strict=True):
        deadline = time.perf_counter_ns() + share_ns * WARM_UP_SHARE
        while time.perf_counter_ns() < deadline:
            _sample_ns(operation, count)
    round_ns = share_ns * (1 - WARM_UP_SHARE) / ROUNDS
    best = [float("inf")] * len(operations)
    for _ in range(ROUNDS):
        for index, (operation, count) in enumerate(zip(operations, loops, strict=True)):
            samples: list[float] = []
            start = time.perf_counter_ns()
            while len(samples) < MIN_SAMPLES_PER_ROUND or time.perf_counter_ns() - start < round_ns:
                samples.append(_sample_ns(operation, count))
            best[index] = min(best[index], statistics.median(samples))
    return best


def run_benchmarks(seconds: float = DEFAULT_SECONDS) -> list[CaseResult]:
    """Time every case on every message; ``seconds`` is the budget of one (case, message) pair."""
    for _, data, kind in _MESSAGES:
        _check_equivalence(data, kind)
    results: list[CaseResult] = []
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for case in _CASES:
            for label, data, kind in _MESSAGES:
                ours_ns, sippy_ns = _measure(
                    [partial(case.ours, data), partial(case.sippy, kind, data)], seconds
                )
                results.append(
                    CaseResult(
                        case=case.name,
                        message=label,
                        message_bytes=len(data),
                        ours_us=ours_ns / 1000,
                        sippy_us=sippy_ns / 1000,
                    )
                )
                gc.collect()
    finally:
        if gc_was_enabled:
            gc.enable()
    return results


def _environment() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "sippy": metadata.version("sippy"),
    }


def format_table(results: Sequence[CaseResult]) -> str:
    """The results as a fixed-width text table."""
    env = _environment()
    lines = [
        f"SIP parse benchmark: best of {ROUNDS} rounds, median µs per message "
        f"({env['implementation']} {env['python']}, {env['machine']}, sippy {env['sippy']})",
        "",
        f"{'case':<30} {'message':<14} {'bytes':>6} {'ours µs':>9} {'sippy µs':>9} {'sippy/ours':>11}",
        "-" * 84,
    ]
    lines.extend(
        f"{r.case:<30} {r.message:<14} {r.message_bytes:>6} {r.ours_us:>9.1f} {r.sippy_us:>9.1f} "
        f"{r.ratio:>10.2f}x"
        for r in results
    )
    lines.append("")
    lines.append("parse: both leave most header values undecoded until read; ours checks more up front.")
    lines.append("parse, same headers decoded: both decode the routing headers (ours: Message.validate()).")
    return "\n".join(lines)


def results_json(results: Sequence[CaseResult], seconds: float) -> str:
    """The results as JSON: environment, settings and one object per (case, message)."""
    rows = [{**asdict(result), "ratio": result.ratio} for result in results]
    document = {
        "environment": _environment(),
        "rounds": ROUNDS,
        "seconds_per_case": seconds,
        "results": rows,
    }
    return json.dumps(document, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints a table (or JSON with ``--json``) and returns 0."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sip_parse", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help="time budget of each (case, message) pair, both parsers together (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    results = run_benchmarks(args.seconds)
    print(results_json(results, args.seconds) if args.json else format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
