"""DTMF masking of recorded blocks: every key is masked, and judging in full only the frames that
pass the detector's cheap checks, looked for on a lattice of every third frame, masks what judging
every frame does (a run of one or two frames showing a pair, alone, may be left)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.rtp.inband import _NO_PAIR, InbandDtmfDetector, _strided_screen, dtmf_mask, dtmf_masks
from proxy.rtp.masking import mask_dtmf, mask_dtmf_many

RATE = 8000
KEYS = {"1": (697, 1209), "5": (770, 1336), "9": (852, 1477), "D": (941, 1633)}


def _tone(
    freqs: tuple[float, ...], seconds: float, level: float = 8000.0, start: float = 0.0
) -> npt.NDArray[np.float64]:
    t = np.arange(round(seconds * RATE)) / RATE + start
    return sum((level * np.sin(2 * np.pi * f * t) for f in freqs), np.zeros_like(t))


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
        mask_dtmf(block)
        assert not block[start + 80 : start + 400, column].any(), "the key's samples are stored"


@pytest.mark.parametrize("rate", [8000, 16000])
def test_what_is_silenced_is_either_channel_s_spans_widened_by_10_ms(rate: int) -> None:
    rng = np.random.default_rng(11)
    step = rate // RATE
    blocks = []
    tone = np.repeat(_tone(KEYS["9"], 0.05), step).astype(np.int16)
    for starts in ((30, 5000), (2000, 2300), (7700, 7700)):
        block = rng.normal(0, 800, (8000 * step, 2)).astype(np.int16)
        for column, start in enumerate(starts):
            piece = block[start * step : start * step + len(tone), column]  # cut by the block's end
            piece[:] = tone[: len(piece)]
        blocks.append(block)
    originals = [block.copy() for block in blocks]
    mask_dtmf_many([(block, rate) for block in blocks])
    guard = np.ones(2 * 80 * step + 1)
    for block, original in zip(blocks, originals, strict=True):
        spans = dtmf_mask(original[:, 0].copy(), rate) | dtmf_mask(original[:, 1].copy(), rate)
        widened = np.convolve(spans, guard, "same") > 0
        assert widened.any()
        assert not block[widened].any()
        assert (block[~widened] == original[~widened]).all()


def test_blocks_without_keys_are_left_as_they_are() -> None:
    rng = np.random.default_rng(5)
    block = rng.normal(0, 3000, (8000, 2)).astype(np.int16)
    for rows in (8000, 150, 0):
        kept = block[:rows].copy()
        mask_dtmf(kept)
        assert (kept == block[:rows]).all()


def _voice(rng: np.random.Generator, length: int, level: float) -> npt.NDArray[np.float64]:
    # Voiced speech, roughly: harmonics of a gliding pitch under two formant peaks, with noise.
    t = np.arange(length) / RATE
    pitch = rng.uniform(90, 260) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    formants = rng.uniform(300, 900), rng.uniform(900, 2500)
    voice = np.zeros(length)
    for harmonic in range(1, 25):
        centre = harmonic * float(pitch.mean())
        gain = sum(np.exp(-(((centre - f) / 150) ** 2)) for f in formants) + 0.05
        voice += gain * np.sin(harmonic * phase + rng.uniform(0, 2 * np.pi))
    voice *= level / max(float(np.abs(voice).max()), 1e-9)
    return voice + rng.normal(0, level / 30, length)


@settings(max_examples=150, deadline=None)
@given(
    key=st.sampled_from(sorted(KEYS)),
    start=st.integers(-400, 7990),
    duration_ms=st.integers(3, 160),
    deviation=st.floats(-0.025, 0.025),
    twist_db=st.floats(-12.0, 8.0),
    level=st.floats(300.0, 14000.0),
    background=st.sampled_from(["silence", "noise", "voice"]),
    rate=st.sampled_from([8000, 16000]),
    seed=st.integers(0, 2**32 - 1),
    other_length=st.integers(0, 9000),
)
def test_judging_only_the_frames_left_by_the_cheap_checks_masks_what_judging_all_does(
    key: str,
    start: int,
    duration_ms: int,
    deviation: float,
    twist_db: float,
    level: float,
    background: str,
    rate: int,
    seed: int,
    other_length: int,
) -> None:
    # Any key, near or past the detector's limits, anywhere (cut by either end of the buffer), over
    # silence, noise or a voice, at 8 or 16 kHz: dtmf_masks masks what judging every frame does,
    # for each of several buffers of any length judged together, a strided one among them. It
    # may leave only what a run of one or two frames showing a pair would mask alone.
    rng = np.random.default_rng(seed)
    length = rate
    if background == "voice":
        signal = np.repeat(_voice(rng, 8000, level), rate // 8000)
    elif background == "noise":
        signal = rng.normal(0, level / 4, length)
    else:
        signal = np.zeros(length)
    low, high = KEYS[key]
    first = max(0, start * rate // 8000)
    last = min(length, start * rate // 8000 + round(duration_ms * rate / 1000))
    if first < last:
        t = np.arange(first, last) / rate
        gain = 10 ** (twist_db / 20)
        signal[first:last] += level * (
            np.sin(2 * np.pi * low * (1 + deviation) * t)
            + gain * np.sin(2 * np.pi * high * (1 + deviation) * t)
        )
    pcm = np.clip(np.round(signal), -32768, 32767).astype(np.int16)
    other = np.resize(pcm[::-1], other_length)  # the audio backwards, cut or repeated
    stereo = np.stack((np.roll(pcm, length // 3), pcm), axis=1)  # a recorder's (samples, 2) block
    buffers = [other, pcm, stereo[:, 0]]
    for buffer, mask in zip(buffers, dtmf_masks([(buffer, rate) for buffer in buffers]), strict=True):
        every_frame = _mask_judging_every_frame(np.ascontiguousarray(buffer), rate)
        assert not (mask & ~every_frame).any(), "masked where no frame showed a pair"
        assert not (_mask_of_runs(buffer, rate, 3) & ~mask).any(), "a run of 3 pair frames left"
    # The streaming detector rules frames out by the same checks, and finds the same too.
    assert dtmf_mask(pcm, rate).tolist() == _mask_judging_every_frame(pcm, rate).tolist()


def _mask_judging_every_frame(pcm: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.bool_]:
    detector = InbandDtmfDetector(rate, screen=False)
    detector.feed(pcm, 0)
    detector.flush()
    mask = np.zeros(len(pcm), dtype=np.bool_)
    for span in detector.take_spans():
        mask[span.rtp_timestamp : span.rtp_timestamp + span.duration] = True
    return mask


def _mask_of_runs(pcm: npt.NDArray[np.int16], rate: int, shortest: int) -> npt.NDArray[np.bool_]:
    # What the reference masks around the frames in runs of at least ``shortest`` frames showing
    # a pair (any pair), each frame's reach alone; spans that join runs are not counted.
    detector = InbandDtmfDetector(rate, screen=False)
    frame, hop, reach = detector._frame, detector._hop, detector._reach
    padded = np.concatenate((np.zeros(frame // 2), pcm, np.zeros(frame // 2 + hop)))
    count = (len(padded) - frame) // hop + 1
    windows = np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop][:count]
    shows = detector._classify(np.ascontiguousarray(windows))[0] != _NO_PAIR
    mask = np.zeros(len(pcm), dtype=np.bool_)
    run_start = 0
    for k in range(count + 1):
        if k < count and shows[k]:
            continue
        if k - run_start >= shortest:
            for shown in range(run_start, k):
                mask[max(0, shown * hop - reach) : shown * hop + reach + 1] = True
        run_start = k + 1
    return mask


@settings(max_examples=300, deadline=None)
@given(shows=st.lists(st.booleans(), max_size=60), gaps=st.sets(st.integers(0, 59), max_size=4))
def test_the_lattice_finds_every_run_of_three_frames_that_pass(shows: list[bool], gaps: set[int]) -> None:
    # Frames on a grid of rows, some rows skipped (where two buffers meet), candidates the frames
    # loud enough: every candidate in a run of at least 3 that pass is found, nothing else is, and
    # the checks asked about are candidates.
    rows = np.asarray([row for row in range(len(shows) + len(gaps)) if row not in gaps][: len(shows)])
    candidates = np.flatnonzero(np.asarray(shows, dtype=np.bool_) | (np.arange(len(shows)) % 2 == 0))
    passes = np.asarray(shows, dtype=np.bool_)
    asked: list[int] = []

    def may_show_pair(chosen: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
        asked.extend(chosen.tolist())
        return passes[chosen]

    found = set(_strided_screen(rows, candidates, may_show_pair).tolist()) if len(shows) else set()
    assert found <= set(np.flatnonzero(passes).tolist())
    assert set(asked) <= set(candidates.tolist())
    assert len(asked) == len(set(asked)), "a frame was checked twice"
    for k in range(len(shows)):
        run = [j for j in range(k, k + 3) if j < len(shows) and passes[j] and rows[j] == rows[k] + j - k]
        if len(run) == 3:
            assert set(run) <= found


def test_buffers_of_both_rates_are_judged_together() -> None:
    tone = _tone(KEYS["5"], 0.2).astype(np.int16)
    narrow = np.concatenate((np.zeros(2000, np.int16), tone, np.zeros(4400, np.int16)))
    wide = np.repeat(narrow, 2)
    quiet = np.zeros(8000, np.int16)
    masks = dtmf_masks([(narrow, 8000), (wide, 16000), (quiet, 8000), (narrow[:100], 8000)])
    assert [mask.tolist() for mask in masks] == [
        dtmf_mask(narrow, 8000).tolist(),
        dtmf_mask(wide, 16000).tolist(),
        [False] * 8000,
        dtmf_mask(narrow[:100], 8000).tolist(),
    ]
    assert masks[0][2100:3500].all()
    assert masks[1][4200:7000].all()
