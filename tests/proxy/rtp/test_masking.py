"""DTMF masking of recorded blocks: the screen's bins, computed by one matrix product, decide exactly
as a 256-point FFT of each 25 ms frame would, and it passes every DTMF key to the exact detector."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from proxy.rtp.masking import channels_to_check, frames_might_hold_dtmf, mask_dtmf

RATE = 8000
KEYS = {"1": (697, 1209), "5": (770, 1336), "9": (852, 1477), "D": (941, 1633)}


def _fft_screen(frames: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
    # The reference: the band powers of a zero-padded 256-point FFT per 200-sample frame.
    power = np.abs(np.fft.rfft(frames.astype(np.float64), n=256, axis=1)) ** 2
    total = power.sum(axis=1)
    low = power[:, 20:32].sum(axis=1)
    high = power[:, 37:55].sum(axis=1)
    loud = total > 200.0**2 * 200 * 256 / 2
    pair = (low > 0.1 * total) & (high > 0.05 * total) & (low + high > 0.5 * total)
    result: npt.NDArray[np.bool_] = loud & pair
    return result


def _tone(
    freqs: tuple[float, ...], seconds: float, level: float = 8000.0, start: float = 0.0
) -> npt.NDArray[np.float64]:
    t = np.arange(round(seconds * RATE)) / RATE + start
    return sum((level * np.sin(2 * np.pi * f * t) for f in freqs), np.zeros_like(t))


def _frames(signal: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    usable = len(signal) // 200 * 200
    return np.clip(signal[:usable], -32768, 32767).astype(np.int16).reshape(-1, 200).astype(np.float32)


def _signals() -> list[tuple[str, npt.NDArray[np.float64]]]:
    rng = np.random.default_rng(7)
    out: list[tuple[str, npt.NDArray[np.float64]]] = []
    for key, pair in KEYS.items():
        out.append((f"key-{key}", _tone(pair, 1.0)))
        out.append((f"key-{key}-off-1.5%", _tone(tuple(f * 1.015 for f in pair), 1.0)))
        out.append((f"key-{key}-twist", _tone((pair[0],), 1.0, 3000) + _tone((pair[1],), 1.0, 9000)))
        out.append((f"key-{key}-in-noise", _tone(pair, 1.0) + rng.normal(0, 2000, RATE)))
    out.append(("noise", rng.normal(0, 5000, RATE)))
    out.append(("quiet-noise", rng.normal(0, 100, RATE)))
    out.append(("silence", np.zeros(RATE)))
    out.append(("dc", np.full(RATE, -32000.0)))
    out.append(("single-tone", _tone((1000,), 1.0)))
    out.append(("vowel-like", sum((_tone((150 * h,), 1.0, 4000 / h) for h in range(1, 20)), np.zeros(RATE))))
    out.append(("random-walk", np.cumsum(rng.normal(0, 300, RATE))))
    return out


@pytest.mark.parametrize(("name", "signal"), _signals(), ids=[name for name, _ in _signals()])
def test_screen_decides_as_the_fft(name: str, signal: npt.NDArray[np.float64]) -> None:
    frames = _frames(signal)
    reference = _fft_screen(frames)
    assert frames_might_hold_dtmf(frames).tolist() == reference.tolist()
    assert reference.any() == name.startswith("key-")


@pytest.mark.parametrize("key", sorted(KEYS))
@pytest.mark.parametrize("column", [0, 1])
@pytest.mark.parametrize("length", [8000, 7990, 8137])
def test_a_key_on_either_channel_goes_to_the_detector_and_is_masked(
    key: str, column: int, length: int
) -> None:
    # 60 ms of the key anywhere in a block of any length, the tail included; the other channel talks.
    rng = np.random.default_rng(3)
    for start in (0, 2000, length - 480):
        block = np.zeros((length, 2), dtype=np.int16)
        block[:, 1 - column] = rng.normal(0, 1500, length).astype(np.int16)
        block[start : start + 480, column] = _tone(KEYS[key], 0.06).astype(np.int16)
        assert column in channels_to_check(block)
        mask_dtmf(block)
        assert not block[start + 80 : start + 400, column].any(), "the key's samples are stored"


def test_blocks_without_keys_skip_the_detector() -> None:
    rng = np.random.default_rng(5)
    block = rng.normal(0, 3000, (8000, 2)).astype(np.int16)
    assert channels_to_check(block) == []
    assert channels_to_check(np.zeros((0, 2), dtype=np.int16)) == []
    assert channels_to_check(block[:150]) == [0, 1]  # shorter than a frame: checked exactly
