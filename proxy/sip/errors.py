"""The SIP core's one exception tree.

Every error carries the status code a server should answer with (``status_hint``), so that the
transport layer turns bad input into a response or a logged drop, never a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.sip.message import Request

__all__ = ["SipError"]


class SipError(Exception):
    """Invalid SIP input. ``status_hint`` is the response code that fits (RFC 3261 §21).

    ``partial`` is set by the parser when the input was a request whose Via, From, To, Call-ID and
    CSeq were readable, so that an error response can be sent (RFC 3261 §8.2.6).
    """

    def __init__(self, reason: str, status_hint: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint
        self.partial: Request | None = None

    def __repr__(self) -> str:
        return f"SipError({self.reason!r}, status_hint={self.status_hint})"
