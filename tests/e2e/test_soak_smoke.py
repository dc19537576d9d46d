"""The soak benchmark: its figures from waves, and two tiny real waves through SIPp and callherald."""

from __future__ import annotations

import json

import pytest

from benchmarks import soak
from benchmarks.soak import SoakResult, WaveResult, format_report, growth_per_call_kib

# A real run binds a block of ports and measures a process: alone, after the side-by-side tests.
pytestmark = pytest.mark.serial


def _wave(number: int, rss_kib: int | None, placed: int = 100) -> WaveResult:
    return WaveResult(
        wave=number, placed=placed, successful=placed, failed=0, rss_kib=rss_kib, fds=22, threads=9
    )


def test_growth_is_counted_from_the_end_of_the_first_wave_over_the_calls_after_it() -> None:
    waves = [_wave(1, 120_000), _wave(2, 120_300, placed=100), _wave(3, 120_500, placed=300)]
    assert growth_per_call_kib(waves) == pytest.approx(500 / 400)


@pytest.mark.parametrize(
    "waves",
    [
        [],
        [_wave(1, 120_000)],  # one wave: nothing to compare it with
        [_wave(1, None), _wave(2, 120_000)],  # callherald gone at a reading
        [_wave(1, 120_000), _wave(2, 120_000, placed=0)],
    ],
)
def test_no_growth_figure_without_two_readings_and_calls_between_them(waves: list[WaveResult]) -> None:
    assert growth_per_call_kib(waves) is None


def test_the_report_shows_every_wave_and_says_what_failed() -> None:
    result = SoakResult(
        calls_per_wave=100,
        concurrent=50,
        hold_s=10.0,
        rate_cps=5,
        rss_kib_before=90_000,
        fds_before=22,
        threads_before=8,
        waves=(_wave(1, 120_000), _wave(2, None)),
        recordings=None,
        error="callherald exited during wave 2",
    )
    lines = format_report(result).splitlines()
    assert lines[2].split() == ["before", "90,000", "KiB", "22", "8"]
    assert lines[3].split() == ["wave", "1", "100", "0", "120,000", "KiB", "22", "9"]
    assert lines[4].split() == ["wave", "2", "100", "0", "-", "22", "9"]
    assert lines[-1] == "  error: callherald exited during wave 2"


def test_the_call_rate_keeps_about_the_concurrency_asked_for() -> None:
    assert soak.call_rate(100, 10.0) == 9  # 100 calls over 11.3 s of call each
    assert soak.call_rate(1, 600.0) == 1


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_two_tiny_waves_are_placed_recorded_and_leave_no_call_socket(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--waves", "2", "--calls", "4", "--concurrent", "2", "--hold-s", "2", "--json"]
    assert soak.main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["error"] is None
    assert [(w["placed"], w["successful"], w["failed"]) for w in document["waves"]] == [(4, 4, 0)] * 2
    for wave in document["waves"]:
        # Every call's sockets closed (the benchmark waits for that), files and threads settled.
        assert wave["fds"] == document["fds_before"]
        assert wave["rss_kib"] > 0
        assert wave["threads"] >= document["threads_before"]
    recordings = document["recordings"]
    assert recordings["recordings"] == recordings["complete"] == 8
    assert 8 * 1.0 <= recordings["complete_s"] <= 8 * (2 + 1)
