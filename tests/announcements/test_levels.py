"""Level measurement (gated active RMS) and normalisation to the documented target."""

from __future__ import annotations

import math

import numpy as np
import pytest

from announcements.errors import AnnouncementError
from announcements.levels import (
    PEAK_CEILING_DBFS,
    TARGET_RMS_DBFS,
    active_rms_dbfs,
    normalise,
    peak_dbfs,
)
from tests.announcements.sound import rms_dbfs, tones

RATE_HZ = 8000


def test_documented_targets() -> None:
    assert TARGET_RMS_DBFS == -18.0
    assert PEAK_CEILING_DBFS == -1.0


@pytest.mark.parametrize(
    ("samples", "level"),
    [
        (np.full(8000, 32768.0), 0.0),  # full-scale square wave: the 0 dBFS reference
        (np.full(8000, 3276.8), -20.0),
        (tones((1000.0,), seconds=1.0, rate_hz=RATE_HZ, amplitude=32768.0), -3.0103),
    ],
)
def test_active_level_of_steady_signals(samples: np.ndarray, level: float) -> None:
    assert active_rms_dbfs(samples, RATE_HZ) == pytest.approx(level, abs=0.001)


def test_pauses_do_not_lower_the_active_level() -> None:
    burst = tones((1000.0,), seconds=0.5, rate_hz=RATE_HZ, amplitude=3276.8)
    with_pauses = np.concatenate([np.zeros(8000), burst, np.zeros(16000), burst, np.full(8000, 5.0)])
    assert active_rms_dbfs(with_pauses, RATE_HZ) == pytest.approx(active_rms_dbfs(burst, RATE_HZ), abs=0.001)


def test_blocks_far_below_the_mean_are_gated_out() -> None:
    loud = np.full(8000, 3276.8)  # -20 dBFS
    hum = np.full(8000, 32.768)  # -60 dBFS: above the absolute gate, 40 dB under the loud part
    assert active_rms_dbfs(np.concatenate([loud, hum]), RATE_HZ) == pytest.approx(-20.0, abs=0.001)


@pytest.mark.parametrize("samples", [np.zeros(8000), np.full(8000, 8.0), np.zeros(0)])
def test_silence_has_no_active_level(samples: np.ndarray) -> None:
    assert active_rms_dbfs(samples, RATE_HZ) == -math.inf


def test_peak() -> None:
    assert peak_dbfs(np.array([0.0, -16384.0, 100.0])) == pytest.approx(-6.0206, abs=0.0001)
    assert peak_dbfs(np.zeros(0)) == -math.inf


@pytest.mark.parametrize("amplitude", [0.001, 0.03, 0.5, 0.999])
def test_a_sine_is_brought_to_the_target(amplitude: float) -> None:
    sine = tones((440.0,), seconds=2.0, rate_hz=RATE_HZ, amplitude=amplitude).astype(np.float32)
    result = normalise(sine, RATE_HZ)
    assert result.samples.dtype == np.int16
    assert rms_dbfs(result.samples) == pytest.approx(TARGET_RMS_DBFS, abs=0.05)
    assert result.active_rms_dbfs == pytest.approx(TARGET_RMS_DBFS, abs=0.05)
    assert result.gain_db == pytest.approx(TARGET_RMS_DBFS + 3.0103 - 20 * math.log10(amplitude), abs=0.01)


def test_a_peaky_signal_stops_at_the_peak_ceiling() -> None:
    clicks = np.zeros(16000, dtype=np.float32)
    clicks[::400] = 0.2  # crest factor 26 dB: the RMS target would clip
    result = normalise(clicks, RATE_HZ)
    assert result.peak_dbfs == pytest.approx(PEAK_CEILING_DBFS, abs=0.01)
    assert int(np.max(result.samples)) == round(32768 * 10 ** (PEAK_CEILING_DBFS / 20))
    assert result.active_rms_dbfs < TARGET_RMS_DBFS - 5


def test_silence_cannot_be_normalised() -> None:
    with pytest.raises(AnnouncementError) as caught:
        normalise(np.zeros(8000, dtype=np.float32), RATE_HZ)
    assert caught.value.reason == "audio is silent (no 20 ms block above -70 dBFS)"
