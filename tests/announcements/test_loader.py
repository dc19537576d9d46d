"""Importing prompt audio with the real ffmpeg: formats, resampling, levels, cache, bad files."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from announcements import cache
from announcements.decode import FfmpegDecoder
from announcements.errors import AnnouncementError
from announcements.levels import TARGET_RMS_DBFS
from announcements.loader import MAX_DURATION_S, PromptLibrary, load_prompt
from announcements.prompts import Prompt, PromptSet
from tests.announcements.sound import convert, ffmpeg, magnitude_at, pcm_of, rms_dbfs, tones, write_wav

SOURCE_RATE_HZ = 44100
SECONDS = 3.0


class CountingDecoder:
    """The real ffmpeg decoder, counting its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, int]] = []
        self._real = FfmpegDecoder()

    def __call__(self, source: Path, *, sample_rate_hz: int, stop_after_s: float) -> npt.NDArray[np.float32]:
        self.calls.append((source, sample_rate_hz))
        return self._real(source, sample_rate_hz=sample_rate_hz, stop_after_s=stop_after_s)


def refusing_decoder(source: Path, *, sample_rate_hz: int, stop_after_s: float) -> npt.NDArray[np.float32]:
    raise AssertionError(f"decoder called for {source} at {sample_rate_hz} Hz")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 3 s of 1 kHz + 6 kHz (equal levels, each -12 dBFS peak) as 44.1 kHz stereo files."""
    folder = tmp_path_factory.mktemp("sources")
    signal = tones((1000.0, 6000.0), seconds=SECONDS, rate_hz=SOURCE_RATE_HZ, amplitude=0.25)
    wav = write_wav(folder / "tones.wav", signal, rate_hz=SOURCE_RATE_HZ, channels=2)
    return {
        "wav": wav,
        "mp3": convert(wav, folder / "tones.mp3", "-c:a", "libmp3lame", "-b:a", "192k"),
        "ogg": convert(wav, folder / "tones.ogg", "-c:a", "libvorbis", "-q:a", "6"),
        "flac": convert(wav, folder / "tones.flac", "-c:a", "flac"),
    }


FORMATS = ["wav", "mp3", "ogg", "flac"]


@pytest.mark.parametrize("kind", FORMATS)
def test_any_format_becomes_3_s_of_20_ms_frames_per_codec(
    sources: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    prompt = load_prompt(sources[kind], cache_dir=tmp_path, prompt_id="welcome", language="nl", text="hi")
    assert (prompt.id, prompt.language, prompt.text, prompt.source) == ("welcome", "nl", "hi", sources[kind])
    assert prompt.duration_ms == 3000
    assert prompt.frame_count == 150
    assert prompt.played_ms == 3000
    assert {codec: len(frames) for codec, frames in prompt.frames.items()} == {
        "pcmu": 150,
        "pcma": 150,
        "g722": 150,
    }
    assert {codec: {len(f) for f in frames} for codec, frames in prompt.frames.items()} == {
        "pcmu": {160},
        "pcma": {160},
        "g722": {160},
    }


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize("codec", ["pcmu", "pcma"])
def test_resampling_to_8_khz_does_not_alias(
    sources: dict[str, Path], tmp_path: Path, kind: str, codec: str
) -> None:
    prompt = load_prompt(sources[kind], cache_dir=tmp_path, prompt_id="welcome", language="nl")
    middle = pcm_of(codec, prompt.frames_for(codec))[4000:20000]  # 2 s away from the edges
    tone_1k = magnitude_at(middle, 8000, 1000.0)
    alias_2k = magnitude_at(middle, 8000, 2000.0)  # where 6 kHz folds to at 8 kHz
    assert 20 * math.log10(alias_2k / tone_1k) < -60.0


def pydub_set_frame_rate(
    source: Path, *, sample_rate_hz: int, stop_after_s: float
) -> npt.NDArray[np.float32]:
    """The trap the importer avoids: pydub's own resampler, which has no anti-alias filter."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from pydub import AudioSegment  # noqa: PLC0415  (imports the deprecated audioop)
    segment = AudioSegment.from_file(str(source)).set_channels(1).set_frame_rate(sample_rate_hz)
    return (np.array(segment.get_array_of_samples(), dtype=np.float32) / 32768).astype(np.float32)


def test_the_alias_check_fails_for_pydub_set_frame_rate(sources: dict[str, Path], tmp_path: Path) -> None:
    prompt = load_prompt(
        sources["wav"], cache_dir=tmp_path, prompt_id="welcome", language="nl", decoder=pydub_set_frame_rate
    )
    middle = pcm_of("pcmu", prompt.frames_for("pcmu"))[4000:20000]
    alias_db = 20 * math.log10(magnitude_at(middle, 8000, 2000.0) / magnitude_at(middle, 8000, 1000.0))
    assert alias_db > -10.0


@pytest.mark.parametrize("kind", FORMATS)
def test_the_16_khz_rendition_keeps_the_6_khz_tone(
    sources: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    prompt = load_prompt(sources[kind], cache_dir=tmp_path, prompt_id="welcome", language="nl")
    middle = pcm_of("g722", prompt.frames_for("g722"))[8000:40000]
    ratio_db = 20 * math.log10(magnitude_at(middle, 16000, 6000.0) / magnitude_at(middle, 16000, 1000.0))
    assert abs(ratio_db) < 0.5


@pytest.mark.parametrize("amplitude", [0.005, 0.1, 0.9])
@pytest.mark.parametrize("codec", ["pcmu", "pcma", "g722"])
def test_level_is_normalised_to_the_target(tmp_path: Path, amplitude: float, codec: str) -> None:
    source = write_wav(
        tmp_path / "sine.wav", tones((800.0,), seconds=2.0, rate_hz=48000, amplitude=amplitude), rate_hz=48000
    )
    prompt = load_prompt(source, cache_dir=tmp_path / "cache", prompt_id="welcome", language="nl")
    assert abs(rms_dbfs(pcm_of(codec, prompt.frames_for(codec))) - TARGET_RMS_DBFS) < 1.0


def test_version_is_the_sha256_of_the_source_bytes(sources: dict[str, Path], tmp_path: Path) -> None:
    prompt = load_prompt(sources["mp3"], cache_dir=tmp_path, prompt_id="welcome", language="nl")
    expected = hashlib.sha256(sources["mp3"].read_bytes()).hexdigest()
    assert prompt.version == expected
    assert prompt.source_sha256 == expected
    assert dict(prompt.audio_sha256) == {
        codec: hashlib.sha256(b"".join(frames)).hexdigest() for codec, frames in prompt.frames.items()
    }


def test_cache_layout(sources: dict[str, Path], tmp_path: Path) -> None:
    prompt = load_prompt(sources["flac"], cache_dir=tmp_path, prompt_id="welcome", language="nl")
    entry = tmp_path / "v2" / prompt.version
    assert sorted(path.name for path in entry.iterdir()) == [
        "g722.bin",
        "meta.json",
        "pcma.bin",
        "pcmu.bin",
    ]
    assert (entry / "pcmu.bin").read_bytes() == b"".join(prompt.frames["pcmu"])
    assert (entry / "pcma.bin").read_bytes() == b"".join(prompt.frames["pcma"])
    assert (entry / "g722.bin").read_bytes() == b"".join(prompt.frames["g722"])
    meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
    assert meta["format_version"] == cache.FORMAT_VERSION == 2
    assert (meta["source_sha256"], meta["duration_ms"], meta["frame_count"]) == (prompt.version, 3000, 150)
    assert meta["files"]["g722"] == {"file": "g722.bin", "sha256": prompt.audio_sha256["g722"]}


def test_second_load_comes_from_the_cache_without_ffmpeg(
    sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = CountingDecoder()
    first = load_prompt(
        sources["ogg"], cache_dir=tmp_path, prompt_id="welcome", language="nl", decoder=counting
    )
    assert [rate for _, rate in counting.calls] == [8000, 16000]

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("ffmpeg was run")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    second = load_prompt(sources["ogg"], cache_dir=tmp_path, prompt_id="welcome", language="nl")
    third = load_prompt(
        sources["ogg"], cache_dir=tmp_path, prompt_id="welcome", language="nl", decoder=counting
    )
    assert len(counting.calls) == 2
    assert second == first
    assert third == first


def test_the_cache_is_keyed_by_content_not_name(sources: dict[str, Path], tmp_path: Path) -> None:
    first = load_prompt(sources["wav"], cache_dir=tmp_path / "cache", prompt_id="a", language="nl")
    copy = shutil.copyfile(sources["wav"], tmp_path / "renamed.wav")
    second = load_prompt(
        copy, cache_dir=tmp_path / "cache", prompt_id="b", language="en", decoder=refusing_decoder
    )
    assert (second.id, second.language, second.version) == ("b", "en", first.version)
    assert second.frames == first.frames


def test_a_changed_file_is_a_new_version(tmp_path: Path) -> None:
    source = tmp_path / "prompt.wav"
    write_wav(source, tones((500.0,), seconds=1.0, rate_hz=8000, amplitude=0.3), rate_hz=8000)
    first = load_prompt(source, cache_dir=tmp_path / "cache", prompt_id="welcome", language="nl")
    write_wav(source, tones((500.0,), seconds=2.0, rate_hz=8000, amplitude=0.3), rate_hz=8000)
    counting = CountingDecoder()
    second = load_prompt(
        source, cache_dir=tmp_path / "cache", prompt_id="welcome", language="nl", decoder=counting
    )
    assert len(counting.calls) == 2
    assert second.version != first.version
    assert (first.duration_ms, second.duration_ms) == (1000, 2000)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda entry: (entry / "pcmu.bin").write_bytes(b"\xff" * 160), id="truncated-frames"),
        pytest.param(
            lambda entry: (entry / "pcma.bin").write_bytes(b"\x00" * (150 * 160)), id="altered-frames"
        ),
        pytest.param(lambda entry: (entry / "g722.bin").unlink(), id="missing-frames"),
        pytest.param(lambda entry: (entry / "meta.json").write_text("{", encoding="utf-8"), id="broken-meta"),
        pytest.param(lambda entry: (entry / "meta.json").unlink(), id="missing-meta"),
        pytest.param(
            lambda entry: (entry / "meta.json").write_text(
                (entry / "meta.json")
                .read_text(encoding="utf-8")
                .replace('"format_version": 2', '"format_version": 1'),
                encoding="utf-8",
            ),
            id="other-format-version",
        ),
    ],
)
def test_a_damaged_cache_entry_is_prepared_again(
    sources: dict[str, Path], tmp_path: Path, damage: Callable[[Path], object]
) -> None:
    first = load_prompt(sources["wav"], cache_dir=tmp_path, prompt_id="welcome", language="nl")
    damage(tmp_path / "v2" / first.version)
    counting = CountingDecoder()
    second = load_prompt(
        sources["wav"], cache_dir=tmp_path, prompt_id="welcome", language="nl", decoder=counting
    )
    assert len(counting.calls) == 2
    assert second == first
    assert cache.read_entry(tmp_path, first.version) == (3000, dict(first.frames))


def test_cache_writes_leave_no_temporary_files(sources: dict[str, Path], tmp_path: Path) -> None:
    prompt = load_prompt(sources["wav"], cache_dir=tmp_path, prompt_id="welcome", language="nl")
    load_prompt(sources["wav"], cache_dir=tmp_path, prompt_id="welcome", language="nl")
    assert [path.name for path in tmp_path.rglob("*") if path.name.startswith(".")] == []
    assert sorted(path.name for path in (tmp_path / "v2").iterdir()) == [prompt.version]


def test_an_unwritable_cache_still_gives_the_prompt(
    sources: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_directory = tmp_path / "cache"
    not_a_directory.write_bytes(b"")
    prompt = load_prompt(sources["wav"], cache_dir=not_a_directory, prompt_id="welcome", language="nl")
    assert prompt.frame_count == 150
    assert "announcement cache not written for welcome" in caplog.text


# --- bad files -------------------------------------------------------------------------------------


def _text_file(folder: Path) -> Path:
    path = folder / "notes.wav"
    path.write_text("this is not audio\n" * 20, encoding="utf-8")
    return path


def _empty_file(folder: Path) -> Path:
    path = folder / "empty.mp3"
    path.write_bytes(b"")
    return path


def _no_samples(folder: Path) -> Path:
    return write_wav(folder / "nothing.wav", np.zeros(0), rate_hz=8000)


def _silence(folder: Path) -> Path:
    return write_wav(folder / "silence.wav", np.zeros(8000), rate_hz=8000)


def _too_long(folder: Path) -> Path:
    path = folder / "long.flac"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000", "-t", "601", "-c:a", "flac", str(path))
    return path


def _video_only(folder: Path) -> Path:
    path = folder / "video.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=duration=1:size=64x64:rate=5", "-c:v", "ffv1", str(path))
    return path


def _playlist(folder: Path) -> Path:
    inner = write_wav(
        folder / "inner.wav", tones((440.0,), seconds=1.0, rate_hz=8000, amplitude=0.5), rate_hz=8000
    )
    path = folder / "list.m3u8"
    path.write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{inner}\n#EXT-X-ENDLIST\n", encoding="utf-8"
    )
    return path


def _concat_script(folder: Path) -> Path:
    inner = write_wav(
        folder / "inner.wav", tones((440.0,), seconds=1.0, rate_hz=8000, amplitude=0.5), rate_hz=8000
    )
    path = folder / "list.txt"
    path.write_text(f"ffconcat version 1.0\nfile '{inner}'\n", encoding="utf-8")
    return path


def _missing(folder: Path) -> Path:
    return folder / "missing.ogg"


def _directory(folder: Path) -> Path:
    path = folder / "prompts.wav"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_missing, "file not found"),
        (_directory, "not a regular file"),
        (_empty_file, "file is empty"),
        (_text_file, "is not a readable audio file (ffmpeg: Invalid data found when processing input)"),
        (_no_samples, "contains no audio (0 ms)"),
        (_silence, "audio is silent (no 20 ms block above -70 dBFS)"),
        (_too_long, "audio is longer than 600 s"),
        (_video_only, "has no audio stream"),
        (_playlist, "is in a format not accepted for announcements (hls)"),
        (_concat_script, "is in a format not accepted for announcements (concat)"),
    ],
)
def test_bad_files_raise_an_error_naming_prompt_and_file(
    tmp_path: Path, make: Callable[[Path], Path], reason: str
) -> None:
    source = make(tmp_path)
    with pytest.raises(AnnouncementError) as caught:
        load_prompt(source, cache_dir=tmp_path / "cache", prompt_id="welcome", language="nl")
    error = caught.value
    assert (error.prompt_id, error.language, error.source) == ("welcome", "nl", source)
    assert error.reason == reason
    assert str(error) == f"announcement 'welcome' (nl): {source}: {error.reason}"
    assert not (tmp_path / "cache" / "v2").exists()


def test_the_duration_limit_is_inclusive(tmp_path: Path) -> None:
    exact = write_wav(
        tmp_path / "exact.wav", tones((440.0,), seconds=2.0, rate_hz=8000, amplitude=0.3), rate_hz=8000
    )
    over = write_wav(
        tmp_path / "over.wav", tones((440.0,), seconds=2.02, rate_hz=8000, amplitude=0.3), rate_hz=8000
    )
    assert (
        load_prompt(exact, cache_dir=tmp_path, prompt_id="p", language="en", max_duration_s=2.0).duration_ms
        == 2000
    )
    with pytest.raises(AnnouncementError, match=r"audio is longer than 2 s$"):
        load_prompt(over, cache_dir=tmp_path, prompt_id="p", language="en", max_duration_s=2.0)
    assert MAX_DURATION_S == 600.0


def test_missing_ffmpeg_is_reported(sources: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(AnnouncementError) as caught:
        load_prompt(
            sources["wav"],
            cache_dir=tmp_path,
            prompt_id="welcome",
            language="nl",
            decoder=FfmpegDecoder(binary=str(tmp_path / "no-ffmpeg")),
        )
    assert caught.value.reason == f"ffmpeg is not installed (no {str(tmp_path / 'no-ffmpeg')!r})"


def test_ffmpeg_resamples_and_mixes_down_and_opens_only_local_audio_files() -> None:
    command = FfmpegDecoder(binary="ffmpeg").command(
        Path("/p/a b.mp3"), sample_rate_hz=8000, stop_after_s=600.02
    )
    assert command[command.index("-i") + 1] == "file:/p/a b.mp3"
    assert command[command.index("-ar") + 1] == "8000"
    assert command[command.index("-ac") + 1] == "1"
    assert command[command.index("-t") + 1] == "600.020"
    assert command[command.index("-protocol_whitelist") + 1] == "file"
    allowed = command[command.index("-format_whitelist") + 1].split(",")
    assert {"wav", "mp3", "ogg", "flac", "mov", "matroska"} <= set(allowed)
    assert not {"hls", "concat", "image2", "lavfi"} & set(allowed)
    assert command.index("-i") < command.index("-ar") < command.index("pipe:1")


# --- the library ------------------------------------------------------------------------------------


def test_library_prepares_sets_and_looks_prompts_up(sources: dict[str, Path], tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path)
    prompt_set = PromptSet(
        id="welcome",
        prompts=(
            Prompt(language="nl", source=sources["mp3"], text="Welkom"),
            Prompt(language="en", source=sources["ogg"]),
        ),
    )
    prepared = library.prepare(prompt_set)
    assert sorted(prepared) == ["en", "nl"]
    assert library.prompt_ids == ("welcome",)
    assert library.get("welcome", "nl") is prepared["nl"]
    assert (prepared["nl"].text, prepared["en"].text) == ("Welkom", None)
    with pytest.raises(AnnouncementError, match=r"^announcement 'welcome': no prompt in language 'de'$"):
        library.get("welcome", "de")
    with pytest.raises(AnnouncementError, match=r"^announcement 'other': not prepared$"):
        library.get("other", "nl")


def test_a_failed_reload_keeps_the_previous_set(sources: dict[str, Path], tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path)
    good = library.prepare(PromptSet(id="welcome", prompts=(Prompt(language="nl", source=sources["wav"]),)))
    broken = PromptSet(
        id="welcome",
        prompts=(
            Prompt(language="nl", source=sources["flac"]),
            Prompt(language="en", source=tmp_path / "gone.wav"),
        ),
    )
    with pytest.raises(
        AnnouncementError, match=r"^announcement 'welcome' \(en\): .*gone\.wav: file not found$"
    ):
        library.prepare(broken)
    assert library.get("welcome", "nl") is good["nl"]


def test_check_lists_every_problem(sources: dict[str, Path], tmp_path: Path) -> None:
    library = PromptLibrary(tmp_path)
    prompt_set = PromptSet(
        id="welcome",
        prompts=(
            Prompt(language="nl", source=tmp_path / "a.wav"),
            Prompt(language="en", source=sources["wav"]),
            Prompt(language="de", source=_empty_file(tmp_path)),
        ),
    )
    problems = library.check(prompt_set)
    assert [str(problem) for problem in problems] == [
        f"announcement 'welcome' (nl): {tmp_path / 'a.wav'}: file not found",
        f"announcement 'welcome' (de): {tmp_path / 'empty.mp3'}: file is empty",
    ]
    assert library.prompt_ids == ()
    assert library.check(PromptSet(id="ok", prompts=(Prompt(language="en", source=sources["wav"]),))) == ()


def test_library_passes_its_decoder_and_limit(sources: dict[str, Path], tmp_path: Path) -> None:
    counting = CountingDecoder()
    library = PromptLibrary(tmp_path, decoder=counting, max_duration_s=1.0)
    with pytest.raises(AnnouncementError, match=r"audio is longer than 1 s$"):
        library.prepare(PromptSet(id="welcome", prompts=(Prompt(language="nl", source=sources["wav"]),)))
    assert counting.calls == [(sources["wav"], 8000)]
    assert os.listdir(tmp_path) == []
