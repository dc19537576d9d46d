"""Announcements: prompt sets imported once from any audio file into cached 20 ms frames per codec,
the shipped default announcements, and generated tones (agent beep, ringback, PCI pause
confirmations).

Imports nothing else of callherald.
"""

from announcements.decode import Decoder, FfmpegDecoder
from announcements.defaults import (
    default_consent_prompt_set,
    default_notice_prompt_set,
    default_prompt_set,
)
from announcements.errors import AnnouncementError
from announcements.frames import CODECS, FRAME_BYTES, FRAME_MS, Codec, silence_frame
from announcements.loader import PromptLibrary, load_prompt
from announcements.prompts import PreparedPrompt, Prompt, PromptSet
from announcements.tones import (
    beep_frames,
    iter_beep,
    iter_ringback,
    pci_paused_frames,
    pci_resumed_frames,
    ringback_frames,
)

__all__ = [
    "CODECS",
    "FRAME_BYTES",
    "FRAME_MS",
    "AnnouncementError",
    "Codec",
    "Decoder",
    "FfmpegDecoder",
    "PreparedPrompt",
    "Prompt",
    "PromptLibrary",
    "PromptSet",
    "beep_frames",
    "default_consent_prompt_set",
    "default_notice_prompt_set",
    "default_prompt_set",
    "iter_beep",
    "iter_ringback",
    "load_prompt",
    "pci_paused_frames",
    "pci_resumed_frames",
    "ringback_frames",
    "silence_frame",
]
