"""Level measurement and normalisation of prompt audio.

Levels are in dBFS relative to the int16 full scale: ``20 * log10(rms / 32768)``, so a full-scale
square wave is 0 dBFS and a full-scale sine -3.01 dBFS.

The level that is normalised is the *active* RMS level, a simplified form of the active speech
level of ITU-T P.56 with the two-gate idea of EBU R 128: the signal is cut into 20 ms blocks;
blocks below `ABSOLUTE_GATE_DBFS` are dropped; of the rest, blocks more than
`RELATIVE_GATE_DB` below their mean power are dropped too; the active level is the RMS of the
blocks left. Pauses between sentences therefore do not pull the level down.

Normalisation scales the whole prompt by one gain, so that the active level is
`TARGET_RMS_DBFS`, unless that would push a sample peak above `PEAK_CEILING_DBFS`; then the gain
is lowered until the peak sits at the ceiling (no limiter, no compression). The target is about
-15 dBm0 on a G.711 line (full scale is +3.14 dBm0), a little above the nominal talker level so that
the notice is clearly heard. Changing these constants changes the prepared audio: bump
`announcements.cache.FORMAT_VERSION` with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from announcements.errors import AnnouncementError

__all__ = [
    "ABSOLUTE_GATE_DBFS",
    "BLOCK_MS",
    "PEAK_CEILING_DBFS",
    "RELATIVE_GATE_DB",
    "TARGET_RMS_DBFS",
    "Normalised",
    "active_rms_dbfs",
    "normalise",
    "peak_dbfs",
]

TARGET_RMS_DBFS: Final = -18.0
PEAK_CEILING_DBFS: Final = -1.0
ABSOLUTE_GATE_DBFS: Final = -70.0
RELATIVE_GATE_DB: Final = 20.0
BLOCK_MS: Final = 20

_FULL_SCALE: Final = 32768.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Normalised:
    """A normalised rendition and the facts of its normalisation."""

    samples: npt.NDArray[np.int16]
    gain_db: float
    active_rms_dbfs: float
    """Active level after normalisation."""
    peak_dbfs: float
    """Sample peak after normalisation."""


def _to_dbfs(amplitude: float) -> float:
    return -math.inf if amplitude <= 0.0 else 20.0 * math.log10(amplitude / _FULL_SCALE)


def _block_powers(
    samples: npt.NDArray[np.floating] | npt.NDArray[np.integer], rate_hz: int
) -> npt.NDArray[np.float64]:
    block = rate_hz * BLOCK_MS // 1000
    whole = samples.shape[0] // block * block
    values = samples.astype(np.float64)
    blocks = [values[:whole].reshape(-1, block)] if whole else []
    if whole < values.shape[0]:
        blocks.append(values[whole:].reshape(1, -1))
    return np.concatenate([np.mean(part * part, axis=1) for part in blocks]) if blocks else np.zeros(0)


def active_rms_dbfs(samples: npt.NDArray[np.floating] | npt.NDArray[np.integer], rate_hz: int) -> float:
    """The active RMS level of ``samples`` (int16 scale) in dBFS; ``-inf`` if nothing passes the gates."""
    powers = _block_powers(samples, rate_hz)
    loud = powers[powers >= (_FULL_SCALE * 10.0 ** (ABSOLUTE_GATE_DBFS / 20.0)) ** 2]
    if loud.shape[0] == 0:
        return -math.inf
    active = loud[loud >= float(np.mean(loud)) * 10.0 ** (-RELATIVE_GATE_DB / 10.0)]
    return _to_dbfs(math.sqrt(float(np.mean(active))))


def peak_dbfs(samples: npt.NDArray[np.floating] | npt.NDArray[np.integer]) -> float:
    """The sample peak of ``samples`` (int16 scale) in dBFS; ``-inf`` for silence or no samples."""
    if samples.shape[0] == 0:
        return -math.inf
    return _to_dbfs(float(np.max(np.abs(samples.astype(np.float64)))))


def normalise(samples: npt.NDArray[np.float32], rate_hz: int) -> Normalised:
    """``samples`` (float, full scale ±1.0) scaled to the target level and rounded to int16.

    Raises `AnnouncementError` when the audio is silent (no block passes the absolute gate).
    """
    scaled = samples.astype(np.float64) * _FULL_SCALE
    level = active_rms_dbfs(scaled, rate_hz)
    if level == -math.inf:
        raise AnnouncementError(f"audio is silent (no 20 ms block above {ABSOLUTE_GATE_DBFS:g} dBFS)")
    gain_db = min(TARGET_RMS_DBFS - level, PEAK_CEILING_DBFS - peak_dbfs(scaled))
    out = np.clip(np.rint(scaled * 10.0 ** (gain_db / 20.0)), -32768, 32767).astype(np.int16)
    return Normalised(
        samples=out, gain_db=gain_db, active_rms_dbfs=active_rms_dbfs(out, rate_hz), peak_dbfs=peak_dbfs(out)
    )
