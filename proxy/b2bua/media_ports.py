"""The RTP port pool: even RTP ports, each paired with the next odd port for RTCP (RFC 3550 §11)."""

from __future__ import annotations

from collections import deque

__all__ = ["PortPool"]


class PortPool:
    """Hands out RTP/RTCP port pairs from ``[port_min, port_max]``, oldest freed first.

    Reusing the least recently freed pair keeps late packets of an ended call away from a new one.
    """

    def __init__(self, port_min: int, port_max: int) -> None:
        first = port_min + (port_min % 2)
        self._free: deque[int] = deque(range(first, port_max, 2))
        self._in_use: set[int] = set()
        self.capacity = len(self._free)

    @property
    def available(self) -> int:
        return len(self._free)

    def allocate(self) -> int | None:
        """An even RTP port (RTCP is the port above), or None when the pool is exhausted."""
        if not self._free:
            return None
        port = self._free.popleft()
        self._in_use.add(port)
        return port

    def release(self, port: int) -> None:
        """Return a pair; releasing a port twice or one never handed out is ignored."""
        if port in self._in_use:
            self._in_use.discard(port)
            self._free.append(port)
