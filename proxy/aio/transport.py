"""SIP over UDP and TCP on asyncio (RFC 3261 §18): thin adapters around the sans-IO parser.

A transport turns bytes from a socket into parsed messages and hands each one to a single
callback, ``on_message(message, source, transport)``, given at construction. It answers what it
can answer on its own and nothing more:

* a request that fails to parse but whose Via, From, To, Call-ID and CSeq are readable gets the
  error response the parser suggests (400, 413, 416, 505, 513), sent back the way it came; a
  ``sips:`` Request-URI gets 416 as well, since neither transport is TLS;
* anything else unreadable is dropped, counted and logged under a rate limit;
* anything from a source ``accept_source`` refuses is dropped unanswered, and a TCP connection
  from one is closed as soon as it is accepted; these drops are counted and summarised at info
  level at most once per ``UNKNOWN_SOURCE_REPORT_S``;
* CRLF keep-alives are ignored on UDP and answered with a single CRLF on TCP (RFC 5626 §3.5.1);
* requests are stamped with ``received`` / ``rport`` before delivery (§18.2.1, RFC 3581 §4).

Everything else (transactions, retransmissions, where to send a response) belongs to the caller,
which may use ``response_address`` for the UDP rules of §18.2.2. An exception raised by the
callback is logged and swallowed: one bad message never stops a transport.

TCP keeps one connection per remote address; a response or a new request to that address reuses
it, and ``send`` to an address without one opens it. Writes go through a per-connection queue so
that they leave in the order ``send`` was called. Every task a transport starts is tracked and
cancelled by ``close()``.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from proxy.sip import (
    DEFAULT_LIMITS,
    Headers,
    Message,
    ParserLimits,
    Request,
    Response,
    SipError,
    StreamFramer,
    make_response,
    parse_message,
)
from proxy.sip.grammar import is_token
from proxy.sip.headers import header_key, split_values

__all__ = [
    "CONNECT_TIMEOUT_S",
    "FLUSH_TIMEOUT_S",
    "IDLE_TIMEOUT_S",
    "LOG_LINES_PER_S",
    "MAX_QUEUED_MESSAGES",
    "UNKNOWN_SOURCE_REPORT_S",
    "AcceptSource",
    "Address",
    "OnMessage",
    "TcpTransport",
    "Transport",
    "TransportStats",
    "UdpTransport",
    "response_address",
    "stamp_via",
    "start_tcp",
    "start_udp",
]

Address = tuple[str, int]

LOG_LINES_PER_S = 10  # per transport; the rest are counted and summarised
UNKNOWN_SOURCE_REPORT_S = 60.0  # drops from unknown sources are logged at most once per this long
IDLE_TIMEOUT_S = 120.0  # a TCP connection with no bytes either way for this long is closed
CONNECT_TIMEOUT_S = 5.0  # outgoing TCP connection set-up
FLUSH_TIMEOUT_S = 1.0  # how long a closing TCP connection may spend writing what is queued
MAX_QUEUED_MESSAGES = 1_000  # per TCP connection; beyond this a peer that does not read loses messages
READ_CHUNK_BYTES = 65_536

_CRLF = b"\r\n"
_PONG = _CRLF  # RFC 5626 §3.5.1: a CRLFCRLF ping is answered by one CRLF


class Transport(Protocol):
    """What the dispatcher sees of a transport.

    ``send`` never blocks and never raises for network trouble: failures are logged and counted
    in ``stats.send_errors``. ``close`` stops receiving, cancels the transport's tasks and waits
    for them.
    """

    @property
    def name(self) -> str: ...

    @property
    def reliable(self) -> bool: ...

    @property
    def local_address(self) -> Address: ...

    @property
    def stats(self) -> TransportStats: ...

    def send(self, message: Message | bytes, address: Address) -> None: ...

    async def close(self) -> None: ...


OnMessage = Callable[[Request | Response, Address, Transport], None]
AcceptSource = Callable[[str], bool]
"""Whether a source IP may talk to this listener at all; others are dropped before parsing."""


@dataclass(slots=True, kw_only=True)
class TransportStats:
    """Running counters of one transport.

    ``sent`` counts SIP messages handed to the socket, error responses included; keep-alive pongs
    are counted in ``keepalives`` only (pings seen on either transport).
    """

    received: int = 0
    sent: int = 0
    malformed_dropped: int = 0
    error_responses_sent: int = 0
    keepalives: int = 0
    callback_errors: int = 0
    send_errors: int = 0
    unknown_source_dropped: int = 0


# Via stamping and response routing (§18.2.1, §18.2.2, RFC 3581) ---------------------------------


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text[1:-1] if text.startswith("[") else text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _same_ip(host: str, source_ip: str) -> bool:
    mine = _ip(host)
    return mine is not None and mine == _ip(source_ip)


def stamp_via(request: Request, source: Address) -> None:
    """Add ``received`` and fill an empty ``rport`` in the top Via, in place.

    §18.2.1: ``received`` is added when the sent-by host is not the packet's source IP (a domain
    name never is). RFC 3581 §4: an ``rport`` without value is set to the source port, and then
    ``received`` is added even when the address matches. Nothing changes otherwise. Only the top
    Via value is rewritten; other values in the same field and later Via fields are kept as they
    are. Raises SipError when the request has no readable Via.
    """
    via = request.top_via
    source_ip, source_port = source
    stamped = via
    if via.param("rport") == "":
        stamped = stamped.with_param("rport", str(source_port))
    if stamped is not via or not _same_ip(via.host, source_ip):
        stamped = stamped.with_param("received", source_ip)
    if stamped is via:
        return
    fields = list(request.headers)
    for index, (name, value) in enumerate(fields):
        if header_key(name) == "via":
            values = split_values(value)
            values[0] = str(stamped)
            fields[index] = (name, ", ".join(values))
            break
    request.headers = Headers(fields)


def response_address(request: Request, source: Address) -> Address:
    """Where a response to ``request`` goes over an unreliable unicast transport (§18.2.2).

    ``maddr`` wins (with the sent-by port), then the ``received`` address, else the sent-by host;
    the port is ``rport`` when the client asked for it (RFC 3581 §4), else the sent-by port
    (default 5060). ``source`` stands in for ``received`` / ``rport`` that ``stamp_via`` has not
    written yet, so the answer is the same whether or not the request was stamped. IPv6 hosts come
    back without brackets.
    """
    via = request.top_via
    sent_by_host, sent_by_port = via.sent_by
    maddr = via.param("maddr")
    if maddr:
        return (maddr[1:-1] if maddr.startswith("[") else maddr), sent_by_port
    if via.received:
        host = via.received
    elif via.wants_rport or not _same_ip(sent_by_host, source[0]):
        host = source[0]
    else:
        host = sent_by_host
    rport = via.rport
    if rport is not None:
        port = rport
    elif via.wants_rport:
        port = source[1]
    else:
        port = sent_by_port
    return host, port


# Error responses ---------------------------------------------------------------------------------


def _header_end(data: bytes) -> int:
    """Index just past the empty line ending the header section, or -1."""
    start = 0
    while start < len(data) and data[start] in (0x0D, 0x0A):
        start += 1
    crlf = data.find(b"\n\r\n", start)
    bare = data.find(b"\n\n", start)
    if crlf >= 0 and (bare < 0 or crlf < bare):
        return crlf + 3
    return bare + 2 if bare >= 0 else -1


def _salvage_request(data: bytes, error: SipError) -> Request | None:
    """The request to answer ``error`` with, when its response headers are readable (§8.2.6).

    The parser sets ``partial`` for errors found after the start line. For errors in the start
    line itself (bad Request-URI, 416, 505) or in the size (513) it cannot, so the headers are
    parsed again under a neutral request line and relaxed size limits. Responses and messages
    whose first line is not a request line give None.
    """
    if error.partial is not None:
        return error.partial
    start = 0
    while start < len(data) and data[start] in (0x0D, 0x0A):
        start += 1
    line_end = data.find(b"\n", start)
    if line_end < 0:
        return None
    parts = data[start:line_end].rstrip(b"\r").split(b" ")
    method = parts[0].decode("ascii", "replace")
    if len(parts) != 3 or not is_token(method) or method.upper().startswith("SIP/"):
        return None
    patched = method.encode("ascii") + b" sip:invalid SIP/2.0" + data[line_end:]
    relaxed = ParserLimits(max_message_bytes=len(patched), max_body_bytes=len(patched))
    try:
        message = parse_message(patched, relaxed)
    except SipError as again:
        return again.partial
    return message if isinstance(message, Request) else None


def _stateless_to_tag(request: Request) -> str:
    # §8.2.7: a stateless UAS makes the same To tag for the same request every time.
    via = request.top_via
    seed = f"{request.call_id}|{request.from_.tag}|{request.cseq}|{via.branch}|{via.host}"
    return hashlib.blake2s(seed.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


def _error_response(request: Request, status: int, source: Address) -> bytes | None:
    if request.method == "ACK":
        return None  # §17.1.1.3: an ACK is never answered
    try:
        stamp_via(request, source)
        return bytes(make_response(request, status, to_tag=_stateless_to_tag(request)))
    except SipError:
        return None


def _refuse_sips(request: Request) -> None:
    """Raise 416 for a ``sips:`` Request-URI: these transports are not TLS.

    RFC 3261 §26.2.2: a SIPS Request-URI asks for TLS on every hop, so it may not arrive, or go
    on, over plain UDP or TCP; relayed as ``sip:`` it would be silently downgraded. The scheme is
    one this UAS does not support, which §8.2.2.1 answers with 416 (Unsupported URI Scheme).
    """
    if request.uri.scheme == "sips":
        error = SipError("sips: Request-URI over a transport without TLS", 416)
        error.partial = request
        raise error


# Shared receive path -----------------------------------------------------------------------------


class _LogLimiter:
    """At most ``per_second`` log lines per one-second window; the rest are summarised.

    Lines below the logger's level cost nothing, and warnings and errors have a budget of their
    own: routine lines that a remote peer can cause in bulk never hide one of them.
    """

    def __init__(self, logger: logging.Logger, per_second: int) -> None:
        self._logger = logger
        self._per_second = per_second
        self._window_start = -1.0
        self._used = [0, 0]  # lines this second: routine, then warnings and errors
        self._suppressed = 0

    def log(self, level: int, message: str, *args: object, exc_info: bool = False) -> None:
        if not self._logger.isEnabledFor(level):
            return
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            if self._suppressed:
                self._logger.warning("%d log lines suppressed in the last second", self._suppressed)
            self._window_start = now
            self._used = [0, 0]
            self._suppressed = 0
        budget = int(level >= logging.WARNING)
        if self._used[budget] >= self._per_second:
            self._suppressed += 1
            return
        self._used[budget] += 1
        self._logger.log(level, message, *args, exc_info=exc_info)


class _Endpoint:
    """What both transports share: parsing, error answers, stamping, delivery, counters."""

    name = ""
    reliable = False
    unknown_source_unit = "message(s)"  # what a drop from an unknown source is, for the summary line

    def __init__(
        self,
        on_message: OnMessage,
        limits: ParserLimits,
        logger: logging.Logger | None,
        accept_source: AcceptSource | None = None,
    ) -> None:
        self._on_message = on_message
        self._accept_source = accept_source
        self._limits = limits
        self._logger = logger if logger is not None else logging.getLogger(__name__)
        self._log = _LogLimiter(self._logger, LOG_LINES_PER_S)
        self._stats = TransportStats()
        self._unknown_unreported = 0
        self._unknown_latest = ""
        self._unknown_report: asyncio.TimerHandle | None = None

    @property
    def stats(self) -> TransportStats:
        return self._stats

    @property
    def local_address(self) -> Address:
        raise NotImplementedError

    def send(self, message: Message | bytes, address: Address) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def _handle(self, data: bytes, source: Address, reply: Callable[[bytes], None]) -> None:
        """Parse one whole message and deliver it, answer it with an error, or drop it."""
        if self._refuses(source[0]):
            # Not a configured peer: no answer at all, not even to a malformed message.
            self._drop_unknown_source(source[0])
            return
        try:
            message = parse_message(data, self._limits)
            if isinstance(message, Request):
                _refuse_sips(message)
                stamp_via(message, source)
        except SipError as error:
            self._reject(data, error, source, reply)
            return
        self._stats.received += 1
        try:
            self._on_message(message, source, self)
        except Exception:
            self._stats.callback_errors += 1
            self._log.log(
                logging.ERROR,
                "%s: message handler failed for %r from %s",
                self.name,
                message,
                source,
                exc_info=True,
            )

    def _refuses(self, host: str) -> bool:
        """Whether ``host`` is outside the sources this side takes messages from."""
        return self._accept_source is not None and not self._accept_source(host)

    def _drop_unknown_source(self, host: str) -> None:
        """Count a drop from a source outside the allowed networks; report it under a time limit.

        The first drop after a quiet spell is logged at once, later ones in one line per
        ``UNKNOWN_SOURCE_REPORT_S``, so a scanner leaves a trace at info level without a flood.
        """
        self._stats.unknown_source_dropped += 1
        self._unknown_unreported += 1
        self._unknown_latest = host
        if self._unknown_report is None:
            self._report_unknown_sources()

    def _report_unknown_sources(self) -> None:
        self._unknown_report = None
        if not self._unknown_unreported:
            return
        self._logger.info(
            "%s: dropped %d %s from addresses outside the allowed networks (latest from %s; %d since start)",
            self.name,
            self._unknown_unreported,
            self.unknown_source_unit,
            self._unknown_latest,
            self._stats.unknown_source_dropped,
        )
        self._unknown_unreported = 0
        self._unknown_report = asyncio.get_running_loop().call_later(
            UNKNOWN_SOURCE_REPORT_S, self._report_unknown_sources
        )

    def _stop_reporting(self) -> None:
        if self._unknown_report is not None:
            self._unknown_report.cancel()
            self._unknown_report = None

    def _reject(self, data: bytes, error: SipError, source: Address, reply: Callable[[bytes], None]) -> None:
        request = _salvage_request(data, error)
        answer = None if request is None else _error_response(request, error.status_hint, source)
        if answer is None:
            self._stats.malformed_dropped += 1
            self._log.log(
                logging.WARNING, "%s: dropped malformed message from %s: %s", self.name, source, error.reason
            )
            return
        self._stats.error_responses_sent += 1
        self._log.log(
            logging.DEBUG, "%s: answered %d to %s: %s", self.name, error.status_hint, source, error.reason
        )
        reply(answer)


def _address(raw: object) -> Address:
    """(host, port) from a socket address, dropping IPv6 flow info and scope."""
    assert isinstance(raw, tuple)
    return str(raw[0]), int(raw[1])


def _encode(message: Message | bytes) -> bytes:
    return message if isinstance(message, bytes) else bytes(message)


# UDP ---------------------------------------------------------------------------------------------


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self._owner._datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        self._owner._error_received(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._connection_lost()


class UdpTransport(_Endpoint):
    """SIP over UDP (§18): one datagram is one message. Build it with ``start_udp``."""

    name = "udp"
    reliable = False
    unknown_source_unit = "datagram(s)"

    def __init__(
        self,
        on_message: OnMessage,
        limits: ParserLimits,
        logger: logging.Logger | None,
        accept_source: AcceptSource | None = None,
    ) -> None:
        super().__init__(on_message, limits, logger, accept_source)
        self._transport: asyncio.DatagramTransport | None = None
        self._closed = asyncio.get_running_loop().create_future()

    @property
    def local_address(self) -> Address:
        assert self._transport is not None
        return _address(self._transport.get_extra_info("sockname"))

    def send(self, message: Message | bytes, address: Address) -> None:
        """Send one datagram to ``address``, which must hold an IP address (no name lookup here)."""
        if self._transport is None or self._transport.is_closing():
            self._stats.send_errors += 1
            self._log.log(logging.WARNING, "udp: send to %s after close dropped", address)
            return
        if _ip(address[0]) is None:
            self._stats.send_errors += 1
            self._log.log(logging.WARNING, "udp: send to %s dropped: not an IP address", address)
            return
        self._transport.sendto(_encode(message), address)
        self._stats.sent += 1

    async def close(self) -> None:
        self._stop_reporting()
        if self._transport is not None:
            self._transport.close()
        await self._closed

    def _datagram_received(self, data: bytes, addr: object) -> None:
        # Nothing may escape into the event loop: a bad datagram or a bug costs one message only.
        try:
            source = _address(addr)
            if not data.strip(b"\r\n"):
                if data:
                    self._stats.keepalives += 1
                return
            self._handle(data, source, lambda answer: self._reply(answer, source))
        except Exception:
            self._log.log(logging.ERROR, "udp: failed to handle a datagram from %s", addr, exc_info=True)

    def _reply(self, data: bytes, address: Address) -> None:
        # §18.2.1 / RFC 3581 §4: an error answer goes back to the packet's source.
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, address)
            self._stats.sent += 1

    def _error_received(self, exc: Exception) -> None:
        self._log.log(logging.DEBUG, "udp: socket error: %s", exc)

    def _connection_lost(self) -> None:
        if not self._closed.done():
            self._closed.set_result(None)


async def start_udp(
    host: str,
    port: int,
    on_message: OnMessage,
    *,
    limits: ParserLimits = DEFAULT_LIMITS,
    logger: logging.Logger | None = None,
    accept_source: AcceptSource | None = None,
) -> UdpTransport:
    """Bind a UDP socket on ``host``:``port`` (0 picks a free port) and start delivering."""
    loop = asyncio.get_running_loop()
    endpoint = UdpTransport(on_message, limits, logger, accept_source)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _UdpProtocol(endpoint), local_addr=(host, port)
    )
    endpoint._transport = transport
    return endpoint


# TCP ---------------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False, kw_only=True)
class _Connection:
    address: Address
    framer: StreamFramer
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    unframed: bytearray = field(default_factory=bytearray)  # bytes the framer holds, for error answers
    pings_answered: int = 0
    last_activity: float = 0.0


class TcpTransport(_Endpoint):
    """SIP over TCP (§18.3): one listening socket and one connection per remote address.

    Build it with ``start_tcp``. Messages are framed by Content-Length; a stream that cannot be
    framed is answered with an error response when its headers are readable and then closed.
    """

    name = "tcp"
    reliable = True
    unknown_source_unit = "connection(s) or message(s)"

    def __init__(
        self,
        on_message: OnMessage,
        limits: ParserLimits,
        logger: logging.Logger | None,
        *,
        idle_timeout_s: float,
        connect_timeout_s: float,
        accept_source: AcceptSource | None = None,
    ) -> None:
        super().__init__(on_message, limits, logger, accept_source)
        self._idle_timeout_s = idle_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._server: asyncio.Server | None = None
        self._connections: dict[Address, _Connection] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def local_address(self) -> Address:
        assert self._server is not None
        return _address(self._server.sockets[0].getsockname())

    @property
    def connected_addresses(self) -> tuple[Address, ...]:
        """Remote addresses with a connection open or being opened."""
        return tuple(self._connections)

    def send(self, message: Message | bytes, address: Address) -> None:
        """Queue ``message`` on the connection to ``address``, opening one if there is none."""
        if self._closing:
            self._stats.send_errors += 1
            self._log.log(logging.WARNING, "tcp: send to %s after close dropped", address)
            return
        connection = self._connections.get(address)
        if connection is None:
            connection = _Connection(address=address, framer=StreamFramer(self._limits))
            self._connections[address] = connection
            self._track(asyncio.get_running_loop().create_task(self._connect(connection)))
        self._enqueue(connection, _encode(message))

    async def close(self) -> None:
        self._closing = True
        self._stop_reporting()
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _enqueue(self, connection: _Connection, data: bytes) -> None:
        if connection.queue.qsize() >= MAX_QUEUED_MESSAGES:
            self._stats.send_errors += 1
            self._log.log(logging.WARNING, "tcp: write queue to %s full, message dropped", connection.address)
            return
        connection.queue.put_nowait(data)

    def _forget(self, connection: _Connection) -> None:
        if self._connections.get(connection.address) is connection:
            del self._connections[connection.address]

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A plain callback: the connection runs in a task of our own, so close() can cancel it.
        if self._closing:
            writer.close()
            return
        address = _address(writer.get_extra_info("peername"))
        if self._refuses(address[0]):
            # Not a configured peer: closed before a byte is read, so that strangers cannot hold
            # connections (and this process's file descriptors) open until the idle timeout.
            writer.close()
            self._drop_unknown_source(address[0])
            return
        connection = _Connection(address=address, framer=StreamFramer(self._limits))
        self._connections[address] = connection
        self._track(asyncio.get_running_loop().create_task(self._serve(connection, reader, writer)))

    async def _connect(self, connection: _Connection) -> None:
        host, port = connection.address
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            self._forget(connection)
            lost = connection.queue.qsize()
            self._stats.send_errors += lost
            self._log.log(
                logging.WARNING, "tcp: connect to %s failed (%s); %d message(s) dropped", host, exc, lost
            )
            return
        await self._serve(connection, reader, writer)

    async def _serve(
        self, connection: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Run one connection: read until EOF, idle or a framing error, flush, then close."""
        connection.last_activity = asyncio.get_running_loop().time()
        try:
            async with asyncio.TaskGroup() as group:
                writing = group.create_task(self._write_loop(connection, writer))
                await self._read_loop(connection, reader)
                self._forget(connection)  # later sends open a new connection
                connection.queue.put_nowait(None)
                try:
                    async with asyncio.timeout(FLUSH_TIMEOUT_S):
                        await asyncio.wait((writing,))
                except TimeoutError:
                    writing.cancel()
        except* OSError as errors:
            self._log.log(
                logging.DEBUG, "tcp: connection %s lost: %s", connection.address, errors.exceptions[0]
            )
        except* Exception:
            self._log.log(logging.ERROR, "tcp: connection %s failed", connection.address, exc_info=True)
        finally:
            self._forget(connection)
            writer.close()

    async def _read_loop(self, connection: _Connection, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        while True:
            remaining = connection.last_activity + self._idle_timeout_s - loop.time()
            if remaining <= 0:
                self._log.log(logging.DEBUG, "tcp: closing idle connection %s", connection.address)
                return
            try:
                async with asyncio.timeout(remaining):
                    data = await reader.read(READ_CHUNK_BYTES)
            except TimeoutError:
                continue  # writes may have kept the connection alive; the loop re-checks
            if not data:
                return
            connection.last_activity = loop.time()
            if not self._feed(connection, data):
                return

    async def _write_loop(self, connection: _Connection, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await connection.queue.get()
            if data is None:
                return
            writer.write(data)
            if data != _PONG:
                self._stats.sent += 1
            connection.last_activity = loop.time()
            await writer.drain()

    def _feed(self, connection: _Connection, data: bytes) -> bool:
        """Frame and handle ``data``; False when the connection must close."""
        connection.unframed += data
        try:
            frames = connection.framer.feed(data)
        except SipError as error:
            self._framing_failed(connection, error)
            return False
        self._drop_framed(connection, frames)
        pings = connection.framer.keepalives - connection.pings_answered
        connection.pings_answered = connection.framer.keepalives
        self._stats.keepalives += pings
        for _ in range(pings):
            self._enqueue(connection, _PONG)
        for frame in frames:
            self._handle(frame, connection.address, lambda answer: self._enqueue(connection, answer))
        return True

    @staticmethod
    def _drop_framed(connection: _Connection, frames: list[bytes]) -> None:
        # The framer hands back exact slices of the stream in order, with only CRLFs between them.
        unframed = connection.unframed
        end = 0
        for frame in frames:
            start = unframed.find(frame, end)
            end = len(unframed) if start < 0 else start + len(frame)
        if end:
            del unframed[:end]
        # Keep-alive CRLFs are not held by the framer either (RFC 5626 §3.5.1).
        if unframed and unframed[0] in (0x0D, 0x0A):
            del unframed[: len(unframed) - len(unframed.lstrip(b"\r\n"))]

    def _failing_head(self, pending: bytes) -> bytes | None:
        """The header section the framer rejected, if it is the first one in ``pending``.

        When a read holds whole messages before the bad one, the framer drops them together with
        the error, so the first header section left here is not the culprit: it is checked by
        framing it alone, and no answer is made rather than answering the wrong request.
        """
        head_end = _header_end(pending)
        if head_end < 0:
            return None
        head = pending[:head_end]
        try:
            StreamFramer(self._limits).feed(head)
        except SipError:
            return head
        return None

    def _framing_failed(self, connection: _Connection, error: SipError) -> None:
        # §18.3: a stream that cannot be framed is answered if possible and then closed.
        head = self._failing_head(bytes(connection.unframed))
        request: Request | None = None
        if head is not None:
            try:
                parsed = parse_message(head, self._limits)
                request = parsed if isinstance(parsed, Request) else None
            except SipError as parse_error:
                request = _salvage_request(head, parse_error)
        answer = None if request is None else _error_response(request, error.status_hint, connection.address)
        if answer is None:
            self._stats.malformed_dropped += 1
            self._log.log(
                logging.WARNING,
                "tcp: closing %s, stream cannot be framed: %s",
                connection.address,
                error.reason,
            )
            return
        self._stats.error_responses_sent += 1
        self._log.log(
            logging.DEBUG,
            "tcp: answered %d and closing %s: %s",
            error.status_hint,
            connection.address,
            error.reason,
        )
        self._enqueue(connection, answer)


async def start_tcp(
    host: str,
    port: int,
    on_message: OnMessage,
    *,
    limits: ParserLimits = DEFAULT_LIMITS,
    logger: logging.Logger | None = None,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    accept_source: AcceptSource | None = None,
) -> TcpTransport:
    """Listen for SIP over TCP on ``host``:``port`` (0 picks a free port) and start delivering."""
    endpoint = TcpTransport(
        on_message,
        limits,
        logger,
        idle_timeout_s=idle_timeout_s,
        connect_timeout_s=connect_timeout_s,
        accept_source=accept_source,
    )
    endpoint._server = await asyncio.start_server(endpoint._accept, host, port)
    return endpoint
