"""The live per-packet relay benchmark: one tiny real run over loopback sockets, and how a form's
figures are chosen from its rounds."""

from __future__ import annotations

import json

import pytest

from benchmarks import relay_packet_cost
from benchmarks.relay_packet_cost import FORMS, form_figures

pytestmark = pytest.mark.serial  # pins CPUs and measures CPU


def test_a_tiny_run_relays_every_form_as_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert relay_packet_cost.main(["--calls", "4", "--seconds", "0.3", "--rounds", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    forms = {figures["form"]: figures for figures in report["forms"]}
    assert list(forms) == list(FORMS)
    for name, figures in forms.items():
        # 4 calls, 50 packets a second each way: about 400 relayed a second in every form.
        assert 300 <= figures["packets_per_s"] <= 500, name
        assert figures["us_per_packet"] > 0
        tapped = name in ("tapped", "renumbered and tapped")
        assert (figures["tapped_packets"] > 0) == tapped, name
    assert report["ratios"]["unchanged"] == 1.0
    # Packets came back renumbered (a new SSRC) in two forms of four, and hardly any were lost.
    assert 0.3 * report["received"] <= report["received_renumbered"] <= 0.7 * report["received"]
    assert report["received"] >= 0.98 * report["sent"]


def test_the_text_report_has_a_row_per_form(capsys: pytest.CaptureFixture[str]) -> None:
    assert relay_packet_cost.main(["--calls", "2", "--seconds", "0.2", "--rounds", "1", "--no-pin"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.split("  ")[0].strip() in FORMS]
    assert [row[:24].strip() for row in rows] == list(FORMS)
    assert lines[-1].startswith("traffic: ")


def test_a_form_stands_by_its_round_of_median_cost_per_packet() -> None:
    # (user s, kernel s, elapsed s, packets): 10, 30 and 20 µs a packet.
    samples = [(0.5, 0.5, 4.0, 100_000), (1.0, 2.0, 4.0, 100_000), (1.0, 1.0, 4.0, 100_000)]
    figures = form_figures("renumbered", samples, tapped=7)
    assert figures.us_per_packet == pytest.approx(20.0)
    assert figures.cpu_percent == pytest.approx(50.0)
    assert figures.user_percent == pytest.approx(25.0)
    assert figures.kernel_percent == pytest.approx(25.0)
    assert figures.packets_per_s == pytest.approx(25_000)
    assert figures.tapped_packets == 7
