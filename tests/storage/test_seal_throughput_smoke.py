"""The storage benchmark still runs on a tiny budget, reports every figure, and cleans up after itself.

No timing targets: only that each figure is there and positive, and the read-back matched.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import seal_throughput
from callherald import evidence

TINY = ["--seconds", "0.2", "--recordings", "3"]

POSITIVE_FIELDS = [
    ("seal_write", "segments"),
    ("seal_write", "audio_bytes"),
    ("seal_write", "wall_s"),
    ("seal_write", "cpu_s"),
    ("seal_write", "mb_per_s_cpu"),
    ("seal_write", "mb_per_s_wall"),
    ("seal_write", "us_per_segment_cpu"),
    ("seal_write", "us_per_segment_wall"),
    ("seal_write", "close_ms"),
    ("seal_only", "segments"),
    ("seal_only", "cpu_s"),
    ("seal_only", "wall_s"),
    ("seal_only", "mb_per_s_cpu"),
    ("seal_only", "us_per_segment_cpu"),
    ("open_close", "recordings"),
    ("open_close", "open_wall_ms"),
    ("open_close", "open_cpu_ms"),
    ("open_close", "wrap_ms"),
    ("open_close", "key_store_put_ms"),
    ("open_close", "close_wall_ms"),
    ("open_close", "close_cpu_ms"),
    ("capacity", "call_seconds"),
    ("capacity", "cpu_s_per_call_second"),
    ("capacity", "wall_s_per_call_second"),
    ("capacity", "recordings_per_core"),
    ("capacity", "recordings_per_file_thread"),
    ("capacity", "disk_mb_per_s_at_core_limit"),
    ("read_back", "segments"),
    ("read_back", "audio_bytes"),
]

TEXT_MARKERS = [
    "1. Seal + write, one thread, one recording",
    "CPU (thread_time)",
    "seal alone, CPU",
    "2. Open and close, median of 3 recordings",
    "3. Capacity, assuming calls of 180 s",
    "one core keeps up with",
    "4. Read-back (not timed)",
    ": OK",
]


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("seal-json")
    capture = _run([*TINY, "--json", "--directory", str(directory)], directory)
    parsed: dict[str, Any] = json.loads(capture)
    return parsed


def _run(argv: list[str], directory: Path) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = seal_throughput.main(argv)
    assert status == 0
    assert list(directory.iterdir()) == []  # the working directory is removed
    return out.getvalue()


@pytest.mark.parametrize(("part", "name"), POSITIVE_FIELDS, ids=[f"{p}.{n}" for p, n in POSITIVE_FIELDS])
def test_json_field_is_positive(document: dict[str, Any], part: str, name: str) -> None:
    value = document[part][name]
    assert isinstance(value, int | float)
    assert not isinstance(value, bool)
    assert value > 0


@pytest.mark.parametrize(
    ("part", "name", "expected"),
    [
        ("settings", "seconds", 0.2),
        ("settings", "recordings", 3),
        ("settings", "segment_bytes", 32_000),
        ("settings", "fsync", "on_close"),
        ("open_close", "recordings", 3),
        ("open_close", "stopped_by", "count"),
        ("seal_write", "stopped_by", "time"),
        ("read_back", "segments", seal_throughput.DIRTY_TAIL_SECONDS),
        ("read_back", "complete", True),
        ("read_back", "audio_matches", True),
        ("read_back", "file_sha256_matches", True),
        ("read_back", "ok", True),
    ],
)
def test_json_field_has_value(document: dict[str, Any], part: str, name: str, expected: object) -> None:
    assert document[part][name] == expected


def test_capacity_states_its_assumption(document: dict[str, Any]) -> None:
    assert "180 s" in document["capacity"]["assumption"]


def test_audio_is_what_callherald_records() -> None:
    assert seal_throughput.AUDIO_FORMAT == evidence.AUDIO_FORMAT
    assert seal_throughput.SEGMENT_MS == evidence.SEGMENT_MS
    assert seal_throughput.SEGMENT_BYTES == 32_000


def test_text_report_names_every_part(tmp_path: Path) -> None:
    text = _run([*TINY, "--directory", str(tmp_path)], tmp_path)
    missing = [marker for marker in TEXT_MARKERS if marker not in text]
    assert missing == []


@pytest.mark.parametrize(
    "argv", [["--seconds", "0"], ["--seconds", "-1"], ["--recordings", "0"], ["--seconds", "1e9"]]
)
def test_bad_settings_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        seal_throughput.main(argv)
    assert raised.value.code == 2
