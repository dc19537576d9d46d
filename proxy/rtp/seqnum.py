"""Wrap-around arithmetic for RTP sequence numbers and timestamps, and sequence tracking.

This is the one place that compares or advances RTP sequence numbers (16 bits) and timestamps
(32 bits). Nothing else in the code base compares them with a bare ``<``.

Rules (RFC 1982 serial number arithmetic, as RFC 3550 §A.1 uses it):

* ``seq_diff(a, b)`` is the signed distance from ``b`` to ``a`` modulo 2**16, folded into
  ``[-32768, 32767]``. ``ts_diff`` is the same modulo 2**32, in ``[-2**31, 2**31 - 1]``.
* ``seq_newer(a, b)`` is ``seq_diff(a, b) > 0``. When ``a`` and ``b`` are exactly half the number
  space apart, RFC 1982 leaves the order undefined; here the distance folds to the negative end, so
  neither is newer than the other. The same holds for timestamps.
* ``seq_add``/``ts_add`` advance (or, with a negative ``n``, step back) and wrap.

Arguments are taken modulo the field size; results are always in range.

``ExtendedSequence`` follows the RFC 3550 §A.1 algorithm (probation, ``MAX_DROPOUT``,
``MAX_MISORDER``, re-synchronisation after a confirmed large jump) and adds exact duplicate and
reordering counts from a bitmap of the last ``max_misorder`` sequence numbers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "MAX_DROPOUT",
    "MAX_MISORDER",
    "MIN_SEQUENTIAL",
    "SEQ_MOD",
    "TS_MOD",
    "ExtendedSequence",
    "SeqStatus",
    "SequenceStats",
    "seq_add",
    "seq_diff",
    "seq_newer",
    "ts_add",
    "ts_diff",
    "ts_newer",
]

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
_SEQ_MASK = SEQ_MOD - 1
_SEQ_HALF = SEQ_MOD >> 1
_TS_MASK = TS_MOD - 1
_TS_HALF = TS_MOD >> 1

# RFC 3550 §A.1 defaults.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between 16-bit sequence numbers, in ``[-32768, 32767]``."""
    return ((a - b + _SEQ_HALF) & _SEQ_MASK) - _SEQ_HALF


def seq_newer(a: int, b: int) -> bool:
    """True if sequence number ``a`` comes after ``b`` (false for equal or half-space-apart values)."""
    return ((a - b + _SEQ_HALF) & _SEQ_MASK) > _SEQ_HALF


def seq_add(a: int, n: int) -> int:
    """Sequence number ``n`` steps after ``a`` (before it for negative ``n``), wrapped to 16 bits."""
    return (a + n) & _SEQ_MASK


def ts_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between 32-bit timestamps, in ``[-2**31, 2**31 - 1]``."""
    return ((a - b + _TS_HALF) & _TS_MASK) - _TS_HALF


def ts_newer(a: int, b: int) -> bool:
    """True if timestamp ``a`` comes after ``b`` (false for equal or half-space-apart values)."""
    return ((a - b + _TS_HALF) & _TS_MASK) > _TS_HALF


def ts_add(a: int, n: int) -> int:
    """Timestamp ``n`` units after ``a`` (before it for negative ``n``), wrapped to 32 bits."""
    return (a + n) & _TS_MASK


class SeqStatus(enum.Enum):
    """What ``ExtendedSequence.update`` made of one packet's sequence number."""

    PROBATION = "probation"
    """The source is not validated yet (RFC 3550 §A.1 ``probation``); not counted."""
    IN_ORDER = "in_order"
    """Newer than every packet so far (a gap before it counts as loss)."""
    LATE = "late"
    """Older than the newest packet and not seen before: reordered, counted as received."""
    DUPLICATE = "duplicate"
    """Seen before within the reordering window; not counted as received."""
    JUMP = "jump"
    """A large jump not yet confirmed by a following packet; not counted (RFC 3550 §A.1 ``bad_seq``)."""
    RESYNC = "resync"
    """The packet after a jump confirmed it: tracking restarted here (the other side restarted)."""

    @property
    def accepted(self) -> bool:
        """True for packets counted as received: ``IN_ORDER``, ``LATE`` and ``RESYNC``."""
        return self in _ACCEPTED


_ACCEPTED = frozenset({SeqStatus.IN_ORDER, SeqStatus.LATE, SeqStatus.RESYNC})


@dataclass(frozen=True, slots=True, kw_only=True)
class SequenceStats:
    """Counters of an ``ExtendedSequence`` at one moment, cumulative over re-synchronisations.

    ``expected`` is the number of sequence numbers from the lowest to the highest accepted one
    (per epoch between re-synchronisations, summed); ``lost = expected - received`` is never
    negative because duplicates are counted apart. ``highest`` is the extended highest sequence
    number, ``None`` until the source is validated.
    """

    received: int
    expected: int
    lost: int
    duplicates: int
    reordered: int
    resyncs: int
    ignored: int
    highest: int | None


class ExtendedSequence:
    """Extends one SSRC's 16-bit sequence numbers to an unbounded counter and keeps statistics.

    Contract:

    * ``update(seq)`` classifies each packet (``SeqStatus``) and, for every status except
      ``PROBATION`` and ``JUMP``, sets ``last_extended`` to the packet's extended number
      (``cycles * 65536 + seq``); for those two it sets ``last_extended`` to ``None``.
    * The first ``min_sequential`` packets must be consecutive before the source counts as valid
      (RFC 3550 §A.1 probation); the packet that completes probation gets extended number ``seq``.
    * A packet ``0 < d < max_dropout`` ahead of the highest is ``IN_ORDER``; one less than
      ``max_misorder`` behind is ``LATE`` or ``DUPLICATE``; anything else is a ``JUMP`` until the
      very next sequence number arrives, which is a ``RESYNC``: counting restarts there, and its
      extended number continues forward from the old highest, so extended numbers of ``IN_ORDER``
      and ``RESYNC`` packets always increase.
    * A ``LATE`` packet from before the first accepted one can have a negative extended number.
    """

    __slots__ = (
        "_bad_seq",
        "_base",
        "_duplicates",
        "_expected_prior",
        "_first",
        "_highest",
        "_ignored",
        "_last",
        "_max_dropout",
        "_max_misorder",
        "_min_sequential",
        "_probation",
        "_probe_seq",
        "_received",
        "_received_prior",
        "_reordered",
        "_resyncs",
        "_seen",
        "_valid",
        "_window_mask",
    )

    def __init__(
        self,
        *,
        min_sequential: int = MIN_SEQUENTIAL,
        max_dropout: int = MAX_DROPOUT,
        max_misorder: int = MAX_MISORDER,
    ) -> None:
        if min_sequential < 1:
            raise ValueError(f"min_sequential must be at least 1, got {min_sequential}")
        if not 1 <= max_dropout <= _SEQ_HALF:
            raise ValueError(f"max_dropout must be in 1..{_SEQ_HALF}, got {max_dropout}")
        if not 1 <= max_misorder <= _SEQ_HALF:
            raise ValueError(f"max_misorder must be in 1..{_SEQ_HALF}, got {max_misorder}")
        self._min_sequential = min_sequential
        self._max_dropout = max_dropout
        self._max_misorder = max_misorder
        self._window_mask = (1 << max_misorder) - 1
        self._probation = min_sequential
        self._probe_seq = -1
        self._valid = False
        self._highest = 0
        self._base = 0
        self._first = 0
        self._bad_seq = -1
        self._seen = 0  # bit i set: extended number (highest - i) was received
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._duplicates = 0
        self._reordered = 0
        self._resyncs = 0
        self._ignored = 0
        self._last: int | None = None

    @property
    def last_extended(self) -> int | None:
        """Extended sequence number of the packet last passed to ``update`` (``None``: not accepted)."""
        return self._last

    @property
    def highest(self) -> int | None:
        """Highest extended sequence number accepted so far (``None`` before validation)."""
        return self._highest if self._valid else None

    @property
    def first(self) -> int | None:
        """Extended number of the packet counting started at: the first accepted, or the one that
        confirmed the last resync (``None`` before validation). A ``LATE`` packet numbered before
        it was never skipped by a newer one."""
        return self._first if self._valid else None

    def update(self, seq: int) -> SeqStatus:
        """Account for one packet with 16-bit sequence number ``seq`` and classify it."""
        seq &= _SEQ_MASK
        if not self._valid:
            return self._probe(seq)
        diff = ((seq - self._highest + _SEQ_HALF) & _SEQ_MASK) - _SEQ_HALF
        if 0 < diff < self._max_dropout:
            # In order, with a permissible gap (RFC 3550 §A.1).
            self._highest += diff
            self._seen = ((self._seen << diff) | 1) & self._window_mask
            self._received += 1
            self._last = self._highest
            return SeqStatus.IN_ORDER
        if -self._max_misorder < diff <= 0:
            # Duplicate or reordered (RFC 3550 §A.1), told apart by the bitmap.
            ext = self._highest + diff
            self._last = ext
            bit = 1 << -diff
            if self._seen & bit:
                self._duplicates += 1
                return SeqStatus.DUPLICATE
            self._seen |= bit
            self._received += 1
            self._reordered += 1
            self._base = min(self._base, ext)
            return SeqStatus.LATE
        # Large jump: only the next sequential packet confirms it (RFC 3550 §A.1 bad_seq).
        if seq == self._bad_seq:
            self._resync(seq)
            return SeqStatus.RESYNC
        self._bad_seq = (seq + 1) & _SEQ_MASK
        self._ignored += 1
        self._last = None
        return SeqStatus.JUMP

    def advance(self, count: int) -> None:
        """Account for ``count`` packets, each one past the highest: ``update(highest + 1)`` in turn.

        The bulk form for a run already known to be consecutive; raises ``ValueError`` before the
        source is valid (the per-packet ``update`` must validate it first).
        """
        if count <= 0:
            return
        if not self._valid:
            raise ValueError("advance before the source is valid")
        self._highest += count
        self._seen = ((self._seen << count) | ((1 << count) - 1)) & self._window_mask
        self._received += count
        self._last = self._highest

    def stats(self) -> SequenceStats:
        """A snapshot of the counters."""
        expected = self._expected_prior
        if self._valid:
            expected += self._highest - self._base + 1
        received = self._received_prior + self._received
        return SequenceStats(
            received=received,
            expected=expected,
            lost=expected - received,
            duplicates=self._duplicates,
            reordered=self._reordered,
            resyncs=self._resyncs,
            ignored=self._ignored,
            highest=self.highest,
        )

    def _probe(self, seq: int) -> SeqStatus:
        # RFC 3550 §A.1: a source is valid after min_sequential consecutive packets.
        if self._probe_seq >= 0 and seq == (self._probe_seq + 1) & _SEQ_MASK:
            self._probation -= 1
        else:
            self._probation = self._min_sequential - 1
        self._probe_seq = seq
        if self._probation > 0:
            self._ignored += 1
            self._last = None
            return SeqStatus.PROBATION
        self._valid = True
        self._highest = self._base = self._first = seq
        self._seen = 1
        self._received = 1
        self._last = seq
        return SeqStatus.IN_ORDER

    def _resync(self, seq: int) -> None:
        # RFC 3550 §A.1 init_seq after two sequential packets past a jump; earlier counts are kept.
        self._expected_prior += self._highest - self._base + 1
        self._received_prior += self._received
        ext = self._highest + ((seq - self._highest) & _SEQ_MASK)
        self._highest = self._base = self._first = ext
        self._seen = 1
        self._received = 1
        self._bad_seq = -1
        self._resyncs += 1
        self._last = ext
