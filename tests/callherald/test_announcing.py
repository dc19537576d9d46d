"""The announcement parts the composition root plugs into the proxy: the tones it makes, and the
call policy it hands the core for a configured policy."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from announcements import PromptLibrary, beep_frames, pci_paused_frames, pci_resumed_frames, ringback_frames
from callherald.announcing import LibraryPrompts, call_policy
from config import default_config
from proxy.b2bua.effects import Tone

TONE_FRAMES: dict[Tone, Callable[[str], tuple[bytes, ...]]] = {
    Tone.RINGBACK: ringback_frames,
    Tone.BEEP: beep_frames,
    Tone.PCI_PAUSED: pci_paused_frames,
    Tone.PCI_RESUMED: pci_resumed_frames,
}


def test_every_tone_is_listed_here() -> None:
    assert set(TONE_FRAMES) == set(Tone)


@pytest.mark.parametrize("tone", list(Tone))
@pytest.mark.parametrize("codec", ["pcmu", "pcma", "g722"])
def test_each_tone_the_proxy_asks_for_is_that_tone(tmp_path: Path, tone: Tone, codec: str) -> None:
    assert LibraryPrompts(PromptLibrary(tmp_path)).tone(tone, codec) == TONE_FRAMES[tone](codec)


@pytest.mark.parametrize("tones", [True, False])
def test_the_call_policy_carries_the_pci_code_and_whether_its_tones_play(tmp_path: Path, tones: bool) -> None:
    config = default_config(tmp_path)
    policy = dataclasses.replace(config.policies[0], pci_pause_code="#9", pci_pause_tones=tones)
    called = call_policy(config, policy)
    assert (called.pci_pause_code, called.pci_pause_tones) == ("#9", tones)
