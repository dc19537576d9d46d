"""Masking in-band DTMF in recorded stereo blocks (PCI DSS 3.3.1: a card number keyed during a
recorded call must not be stored).

``mask_dtmf`` silences both channels of a block wherever either carries a DTMF tone, as the
detector ``proxy.rtp.inband.dtmf_mask`` finds it, widened by 10 ms for the tone's ramps. Judging
every 5 ms frame in full would cost more than the rest of the recording; ``dtmf_spans`` finds the
same tones judging in full only the frames that pass the detector's level, twist and tone-ratio
checks on its probes alone (a loose form of them, so none is missed), looked for on every third
frame and then around those that pass: a run of pair frames shorter than three (a tone fragment of
about 14 ms or less, which no DTMF receiver takes for a key) may be left. Silence and nearly all
speech are ruled out that way. The ``_many`` form takes the blocks of many recordings at once and
takes all their channels through each step together.

Blocks are int16 (samples, 2) arrays at 8 kHz or 16 kHz.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from proxy.rtp.g711 import SAMPLE_RATE_HZ
from proxy.rtp.inband import dtmf_spans

__all__ = ["mask_dtmf", "mask_dtmf_many"]

_MASK_GUARD_SAMPLES: Final = 80  # 10 ms around a detected tone at 8 kHz, for its ramps


def mask_dtmf(block: npt.NDArray[np.int16], sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
    """Silence both channels wherever either carries a DTMF tone (in place)."""
    mask_dtmf_many([(block, sample_rate_hz)])


def mask_dtmf_many(blocks: Sequence[tuple[npt.NDArray[np.int16], int]]) -> None:
    """``mask_dtmf`` for several blocks (each with its sample rate), judged together."""
    found = dtmf_spans(
        [(block[:, column], sample_rate_hz) for block, sample_rate_hz in blocks for column in (0, 1)]
    )
    for (block, sample_rate_hz), left, right in zip(blocks, found[0::2], found[1::2], strict=True):
        # Widen each span a little: the detector's edges are within a hop of the tone's.
        guard = _MASK_GUARD_SAMPLES * (sample_rate_hz // SAMPLE_RATE_HZ)
        for span in (*left, *right):
            block[max(0, span.rtp_timestamp - guard) : span.rtp_timestamp + span.duration + guard] = 0
