"""The PCI pause code: keys that pause a call's recording for a card payment and, keyed again,
resume it (PCI DSS 3.3.1: card verification codes are not stored).

The code counts only when it is keyed as a sequence of its own, never inside keys the party enters
as data: the card number and verification code keyed during the payment, which may well contain it
(``#9`` in a card number ended by ``#`` and a code starting with 9). Its first key comes after a gap
in keying of at least ``PCI_CODE_GAP_S`` (or is the first key heard), and each further key within
``PCI_CODE_INTER_DIGIT_S`` of the one before. Someone keying a number presses key after key with
well under a second between them; someone keying the code on its own has stopped keying first.
Times are the digits' own (``now`` as each is reported), never a clock read here.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PCI_CODE_GAP_S", "PCI_CODE_INTER_DIGIT_S", "PciCode"]

PCI_CODE_GAP_S: Final = 1.5
"""The code's first key counts only this long, or longer, after the key before it."""
PCI_CODE_INTER_DIGIT_S: Final = 3.0
"""Each further key of the code counts only within this long after the one before."""


class PciCode:
    """Watches one party's keys for ``code``. Feed it every key the party presses, in order."""

    def __init__(self, code: str) -> None:
        self.code = code
        self._keyed = ""  # the start of the code keyed so far, as a sequence of its own
        self._last_key_at: float | None = None  # when the party's latest key was heard

    def keyed(self, digit: str, now: float) -> bool:
        """The party pressed ``digit`` at ``now``: True when that completes the code."""
        previous, self._last_key_at = self._last_key_at, now
        since = None if previous is None else now - previous
        going_on = self._keyed + digit
        in_time = since is not None and since <= PCI_CODE_INTER_DIGIT_S
        if self._keyed and in_time and self.code.startswith(going_on):
            self._keyed = going_on
        elif (since is None or since >= PCI_CODE_GAP_S) and self.code.startswith(digit):
            self._keyed = digit  # after a gap in keying: the code may start here
        else:
            self._keyed = ""  # not the code, or keyed straight after another key: data
            return False
        if self._keyed != self.code:
            return False
        self._keyed = ""
        return True
