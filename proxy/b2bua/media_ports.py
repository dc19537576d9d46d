"""The RTP port pool: even RTP ports, each paired with the next odd port for RTCP (RFC 3550 §11)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

__all__ = ["MAX_PORT_TRIES", "PortCheck", "PortPool"]

PortCheck = Callable[[int], bool]
"""Whether RTP port ``port`` and its RTCP port ``port + 1`` can be used now: another program on
the host may hold one of them. The composition root supplies the check (it binds sockets); the
pool only asks it."""

MAX_PORT_TRIES: Final = 16
"""Pairs one ``allocate`` tries before it gives up: a call is refused rather than held up while
the pool is searched."""


class PortPool:
    """Hands out RTP/RTCP port pairs from ``[port_min, port_max]``, oldest freed first, from
    pair ``first_pair`` on at the start.

    Reusing the least recently freed pair keeps late packets of an ended call away from a new one.
    A pair that ``usable`` refuses (another program holds a port of it) is passed over and goes to
    the back of the queue: the call gets the next free pair, and the refused one is tried again
    after all the others.
    """

    def __init__(
        self, port_min: int, port_max: int, *, usable: PortCheck | None = None, first_pair: int = 0
    ) -> None:
        first = port_min + (port_min % 2)
        self._free: deque[int] = deque(range(first, port_max, 2))
        # Start at pair ``first_pair`` (modulo the pool), wrapping round: a restarted proxy that
        # starts somewhere new does not hand the last run's ports, which parties of its calls
        # may still be sending to, straight to its first calls.
        if self._free:
            self._free.rotate(-(first_pair % len(self._free)))
        self._in_use: set[int] = set()
        self._usable: PortCheck = usable or (lambda _port: True)
        self.capacity = len(self._free)
        self.passed_over = 0  # pairs refused by ``usable`` so far

    @property
    def available(self) -> int:
        return len(self._free)

    def allocate(self) -> int | None:
        """An even RTP port (RTCP is the port above), or None when the pool is exhausted or
        ``MAX_PORT_TRIES`` pairs in a row were refused."""
        for _ in range(min(len(self._free), MAX_PORT_TRIES)):
            port = self._free.popleft()
            if self._usable(port):
                self._in_use.add(port)
                return port
            self._free.append(port)
            self.passed_over += 1
        return None

    def release(self, port: int) -> None:
        """Return a pair; releasing a port twice or one never handed out is ignored."""
        if port in self._in_use:
            self._in_use.discard(port)
            self._free.append(port)
