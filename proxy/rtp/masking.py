"""Masking in-band DTMF in recorded stereo blocks: a cheap screen, then the exact detector.

A card number keyed during a recorded call must not be stored (PCI DSS 3.3.1). ``mask_dtmf``
silences both channels of a block wherever either carries a DTMF tone, as the Goertzel detector
``proxy.rtp.inband.dtmf_mask`` finds it, widened by 10 ms for the tone's ramps.

Running the detector over every block would cost more than the rest of the recording, so a screen
goes first: the band powers of a 256-point FFT of each 25 ms frame, for the few bins that matter
(``frames_might_hold_dtmf``). Only a channel with a frame that passes goes to the detector
(``channels_to_check``). The ``_many`` forms take the blocks of many recordings at once and screen
their frames in one matrix product.

Blocks are int16 (samples, 2) arrays at 8 kHz or 16 kHz; the screen looks at 8 kHz.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from proxy.rtp.g711 import SAMPLE_RATE_HZ
from proxy.rtp.inband import dtmf_mask

__all__ = [
    "channels_to_check",
    "channels_to_check_many",
    "frames_might_hold_dtmf",
    "mask_dtmf",
    "mask_dtmf_many",
]

_MASK_GUARD_SAMPLES: Final = 80  # 10 ms around a detected tone, for its ramps
_SCREEN_FRAME: Final = 200  # 25 ms
_SCREEN_FFT: Final = 256  # 31.25 Hz bins
_LOW_BINS: Final = range(20, 32)  # 625-1000 Hz: 697, 770, 852, 941 Hz (ITU-T Q.23)
_HIGH_BINS: Final = range(37, 55)  # 1156-1719 Hz: 1209, 1336, 1477, 1633 Hz
_SCREEN_MIN_POWER: Final = 200.0**2  # a frame quieter than about -44 dBm0 holds no key press


def _screen_basis() -> npt.NDArray[np.float32]:
    # The bins of a 256-point DFT of a zero-padded frame that the screen needs, as one matrix:
    # bin 0 and bin 128 (for the frame's total power), then cosine and sine of the band bins.
    n = np.arange(_SCREEN_FRAME)
    bins = np.array([*_LOW_BINS, *_HIGH_BINS])
    angles = 2 * np.pi * np.outer(n, bins) / _SCREEN_FFT
    columns = [np.ones(_SCREEN_FRAME), np.cos(np.pi * n), np.cos(angles), np.sin(angles)]
    return np.column_stack(columns).astype(np.float32)


def _screen_sums() -> npt.NDArray[np.float32]:
    # Squared projections -> (low-band power, high-band power, (|X0|**2 + |X128|**2) / 2).
    bands = len(_LOW_BINS) + len(_HIGH_BINS)
    sums = np.zeros((2 + 2 * bands, 3), dtype=np.float32)
    sums[0:2, 2] = 0.5
    for offset in (2, 2 + bands):  # cosine, then sine parts
        sums[offset : offset + len(_LOW_BINS), 0] = 1
        sums[offset + len(_LOW_BINS) : offset + bands, 1] = 1
    return sums


_SCREEN_BASIS: Final = _screen_basis()
_SCREEN_SUMS: Final = _screen_sums()
_LOUD_POWER: Final = _SCREEN_MIN_POWER * _SCREEN_FRAME * _SCREEN_FFT / 2
# total <= (256 + 2 * 200) / 2 * sum(x**2) (Cauchy-Schwarz bounds |X0|**2 and |X128|**2 by 200 * sum):
_MAX_POWER_PER_ENERGY: Final = (_SCREEN_FFT + 2 * _SCREEN_FRAME) / 2


def frames_might_hold_dtmf(frames: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
    """Per 25 ms frame (rows of 200 samples at 8 kHz): could it carry a DTMF pair?

    A DTMF frame is loud and puts most of its energy in one low-group and one high-group band;
    noise and most speech do not. The bands' power is that of a 256-point FFT of the zero-padded
    frame, computed as one product with the few bins needed, and only for frames that may be loud;
    the frame's total (one-sided) power comes from Parseval's theorem,
    (256 * sum(x**2) + |X0|**2 + |X128|**2) / 2.
    """
    energy = np.einsum("ij,ij->i", frames, frames)
    result = np.zeros(len(frames), dtype=np.bool_)
    candidates = np.flatnonzero(energy * _MAX_POWER_PER_ENERGY > _LOUD_POWER)
    if not candidates.size:
        return result
    every = candidates.size == len(frames)
    projected = (frames if every else frames[candidates]) @ _SCREEN_BASIS
    low, high, edges = ((projected * projected) @ _SCREEN_SUMS).T
    total = _SCREEN_FFT / 2 * (energy if every else energy[candidates]) + edges
    loud = total > _LOUD_POWER
    pair = (low > 0.1 * total) & (high > 0.05 * total) & (low + high > 0.5 * total)
    result[candidates] = loud & pair
    return result


def channels_to_check(block: npt.NDArray[np.int16]) -> list[int]:
    """The columns of an 8 kHz stereo block that the screen passes, both screened in one product."""
    return channels_to_check_many([block])[0]


def channels_to_check_many(blocks: Sequence[npt.NDArray[np.int16]]) -> list[list[int]]:
    """``channels_to_check`` for several blocks: their frames are screened in one product."""
    checks: list[list[int]] = []
    layout: list[tuple[int, int]] = []  # per block screened: (index into checks, frames per channel)
    for block in blocks:
        rows = len(block)
        checks.append([0, 1] if 0 < rows < _SCREEN_FRAME else [])  # too short to judge: check it exactly
        if rows >= _SCREEN_FRAME:
            layout.append((len(checks) - 1, -(-rows // _SCREEN_FRAME)))
    if not layout:
        return checks
    frames = np.empty((2 * sum(count for _, count in layout), _SCREEN_FRAME), dtype=np.float32)
    offset = 0
    for index, count in layout:
        block = blocks[index]
        whole = len(block) // _SCREEN_FRAME
        per_channel = frames[offset : offset + 2 * count].reshape(2, count, _SCREEN_FRAME)
        per_channel[:, :whole] = block[: whole * _SCREEN_FRAME].T.reshape(2, whole, _SCREEN_FRAME)
        if whole < count:  # the tail is screened as one more frame, the block's last 25 ms
            per_channel[:, whole] = block[-_SCREEN_FRAME:].T
        offset += 2 * count
    hits = frames_might_hold_dtmf(frames)
    offset = 0
    for index, count in layout:
        passed = np.any(hits[offset : offset + 2 * count].reshape(2, count), axis=1)
        checks[index] = [column for column in (0, 1) if passed[column]]
        offset += 2 * count
    return checks


def mask_dtmf(block: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
    """Silence both channels wherever either carries a DTMF tone (in place)."""
    mask_dtmf_many([(block, sample_rate_hz)])


def mask_dtmf_many(blocks: Sequence[tuple[np.ndarray, int]]) -> None:
    """``mask_dtmf`` for several blocks (each with its sample rate), screened together."""
    # The screen looks at 8 kHz: every other sample of 16 kHz.
    screened = channels_to_check_many([block[:: rate // SAMPLE_RATE_HZ] for block, rate in blocks])
    for (block, sample_rate_hz), columns in zip(blocks, screened, strict=True):
        spans = np.zeros(len(block), dtype=np.bool_)
        for column in columns:
            spans |= dtmf_mask(np.ascontiguousarray(block[:, column]), sample_rate_hz)
        if not spans.any():
            continue
        # Widen each span a little: the detector's edges are within a hop of the tone's.
        step = sample_rate_hz // SAMPLE_RATE_HZ
        kernel = np.ones(2 * _MASK_GUARD_SAMPLES * step + 1, dtype=np.int32)
        widened = np.convolve(spans.astype(np.int32), kernel, "same") > 0
        block[widened] = 0
