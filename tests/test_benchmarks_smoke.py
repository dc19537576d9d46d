"""The parser benchmark and fuzzer still run, on tiny budgets, and the fuzzer still catches bugs."""

from __future__ import annotations

import json
import random

import pytest

from benchmarks import fuzz_parser, recording_cpu, sip_parse
from proxy.sip import SipError, parse_message

EXPECTED_ROWS = [
    ("parse", "INVITE + SDP"),
    ("parse", "200 OK + SDP"),
    ("parse, same headers decoded", "INVITE + SDP"),
    ("parse, same headers decoded", "200 OK + SDP"),
    ("parse + serialise", "INVITE + SDP"),
    ("parse + serialise", "200 OK + SDP"),
    ("parse + proxy fields", "INVITE + SDP"),
    ("parse + proxy fields", "200 OK + SDP"),
    ("parse + SDP parse + serialise", "INVITE + SDP"),
    ("parse + SDP parse + serialise", "200 OK + SDP"),
]


def test_benchmark_json_has_one_timed_row_per_case_and_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert sip_parse.main(["--seconds", "0.02", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    rows = document["results"]
    assert [(row["case"], row["message"]) for row in rows] == EXPECTED_ROWS
    assert [row["message_bytes"] for row in rows] == [
        len(sip_parse.INVITE_WITH_SDP),
        len(sip_parse.OK_WITH_SDP),
    ] * 5
    for row in rows:
        assert row["ours_us"] > 0
        assert row["sippy_us"] > 0
        assert row["ratio"] == pytest.approx(row["sippy_us"] / row["ours_us"])
    assert document["rounds"] == sip_parse.ROUNDS
    assert document["environment"]["sippy"] == "2.5.0"


def test_benchmark_table_prints_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert sip_parse.main(["--seconds", "0.02"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.endswith("x") and "SDP" in line]
    assert len(rows) == len(EXPECTED_ROWS)
    for line, (case, message) in zip(rows, EXPECTED_ROWS, strict=True):
        assert line.startswith(f"{case:<30} {message:<14}")


def test_benchmark_messages_are_about_a_kilobyte() -> None:
    assert 1_000 <= len(sip_parse.INVITE_WITH_SDP) <= 1_400
    assert 800 <= len(sip_parse.OK_WITH_SDP) <= 1_200


@pytest.mark.parametrize("seed_message", fuzz_parser.SEEDS, ids=lambda data: data.split(b" ", 2)[1].decode())
def test_fuzz_seed_parses_and_is_clean(seed_message: bytes) -> None:
    parse_message(seed_message)
    assert fuzz_parser.examine(seed_message, len(seed_message) // 2) == (None, None)


@pytest.mark.parametrize(
    ("data", "expected_hint"),
    [
        (b"", 400),
        (b"\r\n\r\n", 400),
        (b"hello\r\n\r\n", 400),
        (b"INVITE sip:a@b SIP/3.0\r\n\r\n", 505),
        (b"INVITE http://a/ SIP/2.0\r\n\r\n", 416),
        (b"X" * 70_000, 513),
    ],
)
def test_examine_counts_sip_errors_by_status_hint(data: bytes, expected_hint: int) -> None:
    assert fuzz_parser.examine(data, 0) == (expected_hint, None)


def test_examine_reports_a_crash_as_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    def crashing_parse(data: bytes) -> object:
        raise ValueError("boom")

    monkeypatch.setattr(fuzz_parser, "parse_message", crashing_parse)
    hint, bug = fuzz_parser.examine(b"anything", -1)
    assert hint is None
    assert bug is not None
    assert bug.signature.startswith("parse: ValueError at test_benchmarks_smoke.py:")
    assert bug.data == b"anything"
    assert "boom" in bug.details


def test_examine_reports_an_unstable_round_trip_as_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []

    def forgetful_parse(data: bytes) -> object:
        seen.append(data)
        if len(seen) == 1:
            return parse_message(data)
        return parse_message(fuzz_parser.SEEDS[3])

    monkeypatch.setattr(fuzz_parser, "parse_message", forgetful_parse)
    hint, bug = fuzz_parser.examine(fuzz_parser.SEEDS[4], -1)
    assert hint is None
    assert bug is not None
    assert bug.signature == "round trip: serialisation changes (content of start line)"


def test_examine_does_not_flag_sip_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def refusing_parse(data: bytes) -> object:
        raise SipError("no", 400)

    monkeypatch.setattr(fuzz_parser, "parse_message", refusing_parse)
    assert fuzz_parser.examine(b"anything", -1) == (400, None)


def test_mutations_are_deterministic_for_a_seed() -> None:
    first = [fuzz_parser.mutate(random.Random(42)) for _ in range(3)]
    second_rng = random.Random(42)
    again = [fuzz_parser.mutate(random.Random(42)) for _ in range(3)]
    assert first == again
    assert fuzz_parser.mutate(second_rng) == first[0]
    assert [fuzz_parser.mutate(random.Random(seed)) for seed in range(20)] != [first[0]] * 20


def test_fuzz_run_counts_add_up() -> None:
    report = fuzz_parser.run_fuzz(2_000, seed=3, hypothesis_examples=200)
    assert report.total == 2_000
    assert report.inputs["hypothesis binary()"] == 100
    assert report.inputs["hypothesis header lines"] == 100
    assert report.inputs["seed corpus"] == len(fuzz_parser.SEEDS)
    assert report.inputs["random mutations"] == 2_000 - 200 - len(fuzz_parser.SEEDS)
    assert report.parsed + sum(report.errors.values()) + report.bug_count >= report.total
    assert report.parsed >= len(fuzz_parser.SEEDS)
    assert report.errors[400] > 0


def test_fuzz_main_finds_no_bug(capsys: pytest.CaptureFixture[str]) -> None:
    status = fuzz_parser.main(["--count", "2000", "--seed", "1"])
    out = capsys.readouterr().out
    assert "SIP parser fuzz, seed 1: 2000 inputs" in out
    assert "\nbugs: 0\n" in out + "\n"
    assert status == 0


def test_recording_cpu_measures_every_part(capsys: pytest.CaptureFixture[str]) -> None:
    figures = recording_cpu.measure(calls=3, seconds=3)
    assert figures.tap_us > 0
    # Measured apart (the masking again on copies of the blocks), so at 3 calls either may be larger.
    assert figures.flush_us > 0
    assert figures.masking_us > 0
    assert figures.first_flush_us > 0
    assert figures.relay_renumber_us > figures.relay_unchanged_us > 0
    assert figures.core_percent(100.0) == pytest.approx(0.03)  # 100 µs a second at 3 calls
    cold = recording_cpu.measure(calls=3, seconds=3, cold_caches=True)
    assert cold.flush_us > 0
    assert cold.masking_us > 0
    assert recording_cpu.main(["--calls", "2", "--seconds", "2"]) == 0
    report = capsys.readouterr().out
    assert "flush (feed, drain, DTMF masking, hand-over)" in report
    assert "the same flush, the caches emptied before each slot" in report
    assert "a recording's first flush, once per call" in report
    assert "renumbered into the leg's stream" in report
