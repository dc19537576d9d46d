"""The RTP package's one exception tree."""

from __future__ import annotations

__all__ = ["RtpError"]


class RtpError(ValueError):
    """Malformed RTP, RTCP or telephone-event input, or a value that cannot be put on the wire.

    The relay counts and drops packets that raise it; it never becomes a traceback on the media path.
    """
