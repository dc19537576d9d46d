"""The announcement parts the composition root plugs into the proxy: the tones it makes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from announcements import PromptLibrary, beep_frames, pci_paused_frames, pci_resumed_frames, ringback_frames
from callherald.announcing import LibraryPrompts
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
