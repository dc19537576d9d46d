"""The asyncio side of the proxy: sockets, tasks and clocks around the sans-IO core.

``start_udp`` and ``start_tcp`` open SIP transports that parse what arrives and hand each message
to one callback; see ``proxy.aio.transport``.
"""

from proxy.aio.transport import (
    Address,
    OnMessage,
    TcpTransport,
    Transport,
    TransportStats,
    UdpTransport,
    response_address,
    stamp_via,
    start_tcp,
    start_udp,
)

__all__ = [
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
