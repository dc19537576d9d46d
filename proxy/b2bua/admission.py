"""Whether a new call may start: a limit on call attempts per second, and overload shedding.

Under overload a B2BUA should refuse new work rather than do all of it badly (RFC 7339 §1): a
refused caller hears 503 and may try again (``Retry-After``, RFC 3261 §21.5.4), while the calls
already up keep their timing. For callherald that timing is the law's: a notice that stutters,
or stretches past the caller's patience, is a notice not heard.

``CallAdmission`` holds two independent checks, each off when configured as 0:

- a rate limit: a token bucket holding one second of calls (at least one), refilled at
  ``max_new_calls_per_s``; a call attempt takes a token or is refused;
- overload shedding: the service measures how late its event loop runs a timer it sets every
  ``LAG_PROBE_INTERVAL_S`` and reports it (``lag_observed``). ``OVERLOAD_ENTER_PROBES`` reports
  in a row at or above ``overload_lag_s`` mean the loop cannot keep up: new calls are refused
  until ``OVERLOAD_CLEAR_PROBES`` reports in a row come in under half of it. One stall alone (a
  slow disk, a burst) does not shed; a loop that stays behind does.

Times are the caller's ``now``; nothing here reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = [
    "LAG_PROBE_INTERVAL_S",
    "OVERLOAD_CLEAR_PROBES",
    "OVERLOAD_ENTER_PROBES",
    "CallAdmission",
    "OverloadChange",
]

LAG_PROBE_INTERVAL_S: Final = 0.1
"""How often the service measures its event loop's lag."""
OVERLOAD_ENTER_PROBES: Final = 3
"""Lag reports in a row at or above the threshold that make the proxy overloaded."""
OVERLOAD_CLEAR_PROBES: Final = 10
"""Lag reports in a row under half the threshold that end the overload (about a second)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OverloadChange:
    """The overload began (``overloaded``) or ended; ``lag_s`` is the report that decided it."""

    overloaded: bool
    lag_s: float


class CallAdmission:
    """The two admission checks of one proxy (see the module docstring)."""

    def __init__(self, *, max_new_calls_per_s: float, overload_lag_s: float) -> None:
        if max_new_calls_per_s < 0 or overload_lag_s < 0:
            raise ValueError("admission limits are 0 (off) or positive")
        self.max_new_calls_per_s = max_new_calls_per_s
        self.overload_lag_s = overload_lag_s
        self._capacity = max(1.0, max_new_calls_per_s)
        self._tokens = self._capacity
        self._refilled_at = -math.inf  # the bucket starts full
        self.overloaded = False
        self._late_in_row = 0
        self._timely_in_row = 0

    @property
    def watches_lag(self) -> bool:
        """Whether the service should report its loop's lag (``lag_observed``)."""
        return self.overload_lag_s > 0

    def refusal(self, now: float) -> str | None:
        """Why a call attempt at ``now`` is refused (the configuration key that refuses it), or
        None when it may start. An admitted attempt takes a token from the rate limit."""
        if self.overloaded:
            return (
                f"overloaded: callherald's event loop runs over limits.overload_lag_ms"
                f" ({self.overload_lag_s * 1000:.0f}) late"
            )
        rate = self.max_new_calls_per_s
        if rate <= 0:
            return None
        if now > self._refilled_at:  # never back: a clock stepping back adds no tokens
            self._tokens = min(self._capacity, self._tokens + (now - self._refilled_at) * rate)
            self._refilled_at = now
        if self._tokens < 1.0:
            return f"limits.max_new_calls_per_s ({rate:g}) reached"
        self._tokens -= 1.0
        return None

    def lag_observed(self, lag_s: float) -> OverloadChange | None:
        """The service's loop ran a timer ``lag_s`` late; the change of state it makes, if any."""
        threshold = self.overload_lag_s
        if threshold <= 0:
            return None
        if lag_s >= threshold:
            self._late_in_row += 1
            self._timely_in_row = 0
        elif lag_s < threshold / 2:
            self._timely_in_row += 1
            self._late_in_row = 0
        else:  # between the two: neither builds up an overload nor ends one
            self._late_in_row = self._timely_in_row = 0
        if not self.overloaded and self._late_in_row >= OVERLOAD_ENTER_PROBES:
            self.overloaded = True
            return OverloadChange(overloaded=True, lag_s=lag_s)
        if self.overloaded and self._timely_in_row >= OVERLOAD_CLEAR_PROBES:
            self.overloaded = False
            return OverloadChange(overloaded=False, lag_s=lag_s)
        return None
