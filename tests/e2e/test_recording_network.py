"""Recorded calls over a network that loses, reorders, delays and duplicates packets.

Both parties' RTP peers play distinct tone packets (``tone_payloads``) through an ``Impairment``:
a burst loss and a single loss, a packet overtaken by the next and one three places late, a
stall of 900 ms whose packets then come in a burst, a duplicate, and one packet so late that its
place is already past the reorder window. The decrypted recording is checked sample by sample against what
each party sent: every packet that came in time at its timestamp's place, whatever order it came
in, silence where one never came or came too late; and the evidence's media quality says what
the network cost each channel (RFC 3550 §A.3: lost, late, duplicate). A second call goes over a
jittery network (a third of the packets 20 to 100 ms late, 3 % lost): the silence lost packets
leave in the file is exactly what the evidence calls lost.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from proxy.rtp.g711 import ulaw_decode
from storage.records import ChannelQuality, EvidenceStore, MediaQuality, RecordingRecord, RecordingState
from tests.e2e.announce_support import call_with_tones, policy_yaml, write_prompt_wavs
from tests.e2e.media_peer import SAMPLES_PER_PACKET, Impairment, tone_payloads
from tests.e2e.test_recording_calls import CALL_MS, OUTSIDE_HZ, PBX_HZ, TONE_PACKETS, decrypt, requires_sipp
from tests.e2e.test_sipp_calls import Direction

pytestmark = pytest.mark.e2e


# Inbound: the caller's packets from about 125 on are recorded (the notice, the question and
# its answer window come first), up to about 300, when it hangs up; the PBX is called only then,
# so its packets are recorded from about its first to about 175.
OUTSIDE_NETWORK = Impairment(
    lost=frozenset({145, 146, 147, 190}),
    held_for={155: 1, 165: 3, 260: 12},  # 260: 240 ms late, past the 160 ms reorder window
    stalls={200: 45},  # 900 ms: whenever a flush comes in it, it waits for them
    doubled=frozenset({180}),
)
PBX_NETWORK = Impairment(
    lost=frozenset({40}),
    held_for={60: 2},
    stalls={90: 30},
    doubled=frozenset({130}),
)
TOO_LATE = {260}  # came after the audio around its place was stored


OUTSIDE_PAYLOADS = tone_payloads(OUTSIDE_HZ, TONE_PACKETS)
PBX_PAYLOADS = tone_payloads(PBX_HZ, TONE_PACKETS)


def impaired_call(
    tmp_path: Path, direction: Direction, *, outside_network: Impairment, pbx_network: Impairment
) -> tuple[RecordingRecord, npt.NDArray[np.int16]]:
    """One recorded call, each party sending its distinct tone packets through its network: the
    recording's record and its decrypted audio."""
    write_prompt_wavs(tmp_path)
    outside = (OUTSIDE_PAYLOADS, outside_network)
    pbx = (PBX_PAYLOADS, pbx_network)
    (caller_payloads, caller_network), (callee_payloads, callee_network) = (
        (outside, pbx) if direction is Direction.INBOUND else (pbx, outside)
    )
    call = call_with_tones(
        tmp_path,
        direction,
        caller_payloads=caller_payloads,
        callee_payloads=callee_payloads,
        policies=policy_yaml(),
        pause_ms=CALL_MS,
        caller_impairment=caller_network,
        callee_impairment=callee_network,
    )
    data_dir = call.proxy.data_dir
    with EvidenceStore(data_dir / "evidence.sqlite") as store:
        (record,) = store.recordings_list()
        return record, decrypt(data_dir, record, store)


def place_of(channel: npt.NDArray[np.int16], sent: npt.NDArray[np.int16]) -> int:
    """Where the recorded ``channel`` starts in ``sent`` (the party's audio as played): the offset
    at which a clean stretch of it matches exactly."""
    windows = np.lib.stride_tricks.sliding_window_view(sent, SAMPLES_PER_PACKET)
    for start in range(0, len(channel) - SAMPLES_PER_PACKET, SAMPLES_PER_PACKET):
        stretch = channel[start : start + SAMPLES_PER_PACKET]
        (found,) = np.nonzero((windows == stretch).all(axis=1))
        if len(found) == 1:
            return int(found[0]) - start
    raise AssertionError("no stretch of the recording matches what the party sent")


def expected_channel(
    sent: npt.NDArray[np.int16], offset: int, length: int, missing: set[int]
) -> npt.NDArray[np.int16]:
    """``length`` samples of ``sent`` from ``offset``, silent in the packets of ``missing``."""
    padded = np.concatenate([np.zeros(max(0, -offset), dtype=np.int16), sent])
    offset_in_padded = offset + max(0, -offset)
    expected = padded[offset_in_padded : offset_in_padded + length].copy()
    for index in missing:
        first, last = index * SAMPLES_PER_PACKET - offset, (index + 1) * SAMPLES_PER_PACKET - offset
        expected[max(0, first) : max(0, last)] = 0
    return expected


@requires_sipp
@pytest.mark.timeout(60)
def test_a_recording_over_a_lossy_reordering_network_holds_every_packet_in_its_place(tmp_path: Path) -> None:
    record, audio = impaired_call(
        tmp_path, Direction.INBOUND, outside_network=OUTSIDE_NETWORK, pbx_network=PBX_NETWORK
    )
    assert record.state is RecordingState.COMPLETE
    # What the network cost each channel: the packets that never came (20 ms each), the one that
    # came too late to be placed, the duplicate ignored; nothing else.
    assert record.media_quality == MediaQuality(
        outside_party=ChannelQuality(
            lost_ms=20 * len(OUTSIDE_NETWORK.lost), late_packets=1, late_ms=20, duplicate_packets=1
        ),
        pbx_side=ChannelQuality(lost_ms=20 * len(PBX_NETWORK.lost), duplicate_packets=1),
    )
    for column, payloads, network, too_late in (
        (0, OUTSIDE_PAYLOADS, OUTSIDE_NETWORK, TOO_LATE),
        (1, PBX_PAYLOADS, PBX_NETWORK, set()),
    ):
        sent = ulaw_decode(b"".join(payloads))
        channel = audio[:, column]
        offset = place_of(channel, sent)
        first, last = offset // SAMPLES_PER_PACKET, (offset + len(channel)) // SAMPLES_PER_PACKET
        impaired = {*network.lost, *network.held_for, *network.stalls, *network.doubled}
        assert first < min(impaired), (column, first)
        assert max(impaired) + 12 < last, (column, last)
        expected = expected_channel(sent, offset, len(channel), set(network.lost) | too_late)
        # Recording starts within a packet; if that packet came before the start, the part of it
        # the recording covers is silence (nothing heard before the start is kept). It ends at
        # the BYE, which may come before the packets of the last few tens of ms: silence too.
        lead, tail = -offset % SAMPLES_PER_PACKET, len(channel) - 2 * SAMPLES_PER_PACKET
        for edge in (slice(0, lead), slice(tail, None)):
            assert ((channel[edge] == 0) | (channel[edge] == expected[edge])).all(), (column, edge)
        differ = np.nonzero(channel[lead:tail] != expected[lead:tail])[0] + lead
        assert len(differ) == 0, (
            column,
            sorted({(offset + sample) // SAMPLES_PER_PACKET for sample in differ}),
        )


def jittery(seed: int) -> Impairment:
    """A network that delays about a third of the packets by 20 to 100 ms (each behind the
    packets it lets by) and loses about 3 % of the others, from ``seed``."""
    rng = random.Random(seed)
    held_for = {index: rng.randint(1, 5) for index in range(TONE_PACKETS) if rng.random() < 0.3}
    lost = frozenset(index for index in range(TONE_PACKETS) if index not in held_for and rng.random() < 0.03)
    return Impairment(lost=lost, held_for=held_for)


@requires_sipp
@pytest.mark.timeout(60)
def test_over_a_jittery_network_the_evidence_counts_exactly_the_silence_lost_packets_leave(
    tmp_path: Path,
) -> None:
    # Outbound: the PBX side calls, the outside party answers. Every packet that came is in its
    # place; every place between a channel's first and last packet that none filled is silence,
    # and is what the evidence calls lost: the packets the network lost, and at the end those it
    # still held when the call ended.
    pbx_network, outside_network = jittery(1), jittery(2)
    record, audio = impaired_call(
        tmp_path, Direction.OUTBOUND, outside_network=outside_network, pbx_network=pbx_network
    )
    assert record.media_quality is not None
    for column, payloads, network, quality in (
        (0, OUTSIDE_PAYLOADS, outside_network, record.media_quality.outside_party),
        (1, PBX_PAYLOADS, pbx_network, record.media_quality.pbx_side),
    ):
        sent = ulaw_decode(b"".join(payloads))
        channel = audio[:, column]
        offset = place_of(channel, sent)
        # Each packet's place in the recording (the first and last in part) holds it as sent, or silence.
        places = range(offset // SAMPLES_PER_PACKET, -(-(offset + len(channel)) // SAMPLES_PER_PACKET))
        silent = []
        for index in places:
            lo = max(0, index * SAMPLES_PER_PACKET - offset)
            hi = min(len(channel), (index + 1) * SAMPLES_PER_PACKET - offset)
            if not channel[lo:hi].any():
                silent.append(index)
            else:
                assert np.array_equal(channel[lo:hi], sent[lo + offset : hi + offset]), (column, index)
        heard = [index for index in places if index not in silent]
        between = [index for index in silent if heard[0] < index < heard[-1]]
        assert {index for index in network.lost if heard[0] < index < heard[-1]} <= set(between)
        still_held = set(between) - network.lost
        assert all(index in network.held_for and index > heard[-1] - 5 for index in still_held), still_held
        assert quality == ChannelQuality(lost_ms=20 * len(between)), (column, between)
