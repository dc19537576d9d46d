"""A pyVoIP 1.6.8 phone as the outside party on the carrier side, keying DTMF as in-band audio.

``pyvoip_phone.py`` runs a phone that registers to callherald's PBX listener, so it is always the
inside party. A carrier trunk does not register: it is trusted by its address. This child runs the
same pyVoIP phone without registering and with callherald's carrier listener as its server, so
``call`` sends the INVITE there and the phone is the caller who hears the recording notice and
the consent question. ``send_digit`` writes a DTMF key press into the call's audio the way an
analogue phone behind a gateway leaves it: the ITU-T Q.23 tone pair, then silence. pyVoIP sends
audio only (it never sends RFC 4733 telephone-events), so callherald can only hear it in-band.

The controller is ``pyvoip_phone.PyvoipPhone`` and the protocol is the one described there, with
one more command: ``send_digit`` (``digit``, ``tone_ms``, ``silence_ms``: the pair in 8-bit
unsigned PCM at 8 kHz into ``write_audio``). pyVoIP has no unregistered mode; the stand-in for its
registration marks the phone ``REGISTERED``, which for pyVoIP means ready to call. When pyVoIP
drops or fails on a 200 OK to its INVITE, the child says so in its log (pyVoIP itself is silent
unless its global debug switch is on). The child is started as
``python -m tests.e2e.pyvoip_consent_phone`` with the repository on ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.e2e.pyvoip_phone import (
    DEFAULT_MAX_LIFETIME_S,
    SAMPLE_RATE_HZ,
    SILENCE_PCM8,
    PyvoipPhone,
    _Agent,
    run_phone_child,
    spawn_phone,
)

__all__ = [
    "DBM0_PEAK_PCM8",
    "HIGH_GROUP_DBM0",
    "LOW_GROUP_DBM0",
    "dtmf_pcm8",
    "main",
    "running_caller",
]

# ITU-T Q.23 keypad: rows are the low group, columns the high group.
_KEYPAD = ("123A", "456B", "789C", "*0#D")
_LOW_HZ = (697.0, 770.0, 852.0, 941.0)
_HIGH_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
# Q.23 nominal sending levels: low group -11 dBm0, high group 2 dB above it.
LOW_GROUP_DBM0 = -11.0
HIGH_GROUP_DBM0 = -9.0
# ITU-T G.711: a 0 dBm0 sine peaks 3.17 dB below the µ-law overload point (32636 of 32767 in
# 16 bits); pyVoIP's 8-bit samples are the high bytes of 16-bit ones.
DBM0_PEAK_PCM8 = 32_636.0 * 10.0 ** (-3.17 / 20.0) / 256.0


def dtmf_pcm8(digit: str, tone_ms: float, silence_ms: float) -> bytes:
    """The digit's Q.23 tone pair for ``tone_ms``, then ``silence_ms`` of silence, as pyVoIP's audio
    format (8-bit unsigned linear PCM at 8 kHz, centred on 128)."""
    row = next((index for index, keys in enumerate(_KEYPAD) if digit.upper() in keys), None)
    if row is None or len(digit) != 1:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    column = _KEYPAD[row].index(digit.upper())
    low = DBM0_PEAK_PCM8 * 10.0 ** (LOW_GROUP_DBM0 / 20.0)
    high = DBM0_PEAK_PCM8 * 10.0 ** (HIGH_GROUP_DBM0 / 20.0)
    low_step = 2.0 * math.pi * _LOW_HZ[row] / SAMPLE_RATE_HZ
    high_step = 2.0 * math.pi * _HIGH_HZ[column] / SAMPLE_RATE_HZ
    tone = bytes(
        SILENCE_PCM8 + round(low * math.sin(low_step * n) + high * math.sin(high_step * n))
        for n in range(round(tone_ms * SAMPLE_RATE_HZ / 1000.0))
    )
    return tone + bytes([SILENCE_PCM8]) * round(silence_ms * SAMPLE_RATE_HZ / 1000.0)


# Test side ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_caller(
    workdir: Path,
    *,
    server_port: int,
    sip_port: int,
    rtp_port: int,
    username: str = "pyvoip-caller",
    server_host: str = "127.0.0.1",
    start_timeout_s: float = 20.0,
    max_lifetime_s: float = DEFAULT_MAX_LIFETIME_S,
) -> Iterator[PyvoipPhone]:
    """Start an unregistered phone whose calls go to ``server_host:server_port``; yield it once
    pyVoIP's SIP receive loop runs. It is stopped (and killed by its PID if need be) on exit."""
    with spawn_phone(
        workdir,
        module=__name__,
        label="caller",
        server_host=server_host,
        server_port=server_port,
        username=username,
        sip_port=sip_port,
        rtp_port=rtp_port,
        start_timeout_s=start_timeout_s,
        max_lifetime_s=max_lifetime_s,
    ) as phone:
        yield phone


# Child side --------------------------------------------------------------------------------------


class _CallerAgent(_Agent):
    """``pyvoip_phone``'s agent with one more command: key a digit in-band."""

    def handle(self, command: dict[str, Any]) -> dict[str, object]:
        if command.get("cmd") == "send_digit":
            audio = dtmf_pcm8(str(command["digit"]), float(command["tone_ms"]), float(command["silence_ms"]))
            self._require_call().write_audio(audio)
            return {"bytes": len(audio)}
        return super().handle(command)


def main(argv: list[str] | None = None) -> int:
    run_phone_child(argv, _CallerAgent, registers=False)


if __name__ == "__main__":
    sys.exit(main())
