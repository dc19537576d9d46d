"""Key wrap (RFC 9180 HPKE), segment sealing and key ids, checked against published and independent values."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.crypto import (
    KeyEntryMismatchError,
    SegmentOpener,
    SegmentSealer,
    WrappedKey,
    hpke_open_base,
    hpke_seal_base,
    key_id,
    new_data_key,
    segment_nonce,
    unwrap_data_key,
    wrap_data_key,
    wrap_info,
)
from tests.storage.recordings import ESCROW, OUTSIDER, REVIEWER, REVIEWER_KEY_ID

h = bytes.fromhex

# RFC 9180 Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, base mode,
# sequence number 0.
RFC9180_A21 = {
    "info": h("4f6465206f6e2061204772656369616e2055726e"),
    "skEm": h("f4ec9b33b792c372c1d2c2063507b684ef925b8c75a42dbcbf57d63ccd381600"),
    "skRm": h("8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb"),
    "pkRm": h("4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a"),
    "enc": h("1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a"),
    "pt": h("4265617574792069732074727574682c20747275746820626561757479"),
    "aad": h("436f756e742d30"),
    "ct": h("1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28"),
}
HEADER = b"H" * 64
RID = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")


def test_hpke_seal_reproduces_rfc9180_a21() -> None:
    recipient = X25519PrivateKey.from_private_bytes(RFC9180_A21["skRm"]).public_key()
    assert recipient.public_bytes_raw() == RFC9180_A21["pkRm"]
    enc, ct = hpke_seal_base(
        recipient,
        RFC9180_A21["pt"],
        info=RFC9180_A21["info"],
        aad=RFC9180_A21["aad"],
        ephemeral=X25519PrivateKey.from_private_bytes(RFC9180_A21["skEm"]),
    )
    assert (enc, ct) == (RFC9180_A21["enc"], RFC9180_A21["ct"])


def test_hpke_open_reads_rfc9180_a21() -> None:
    private = X25519PrivateKey.from_private_bytes(RFC9180_A21["skRm"])
    pt = hpke_open_base(
        private, RFC9180_A21["enc"], RFC9180_A21["ct"], info=RFC9180_A21["info"], aad=RFC9180_A21["aad"]
    )
    assert pt == RFC9180_A21["pt"]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"info": b"other info"}, id="info"),
        pytest.param({"aad": b"Count-1"}, id="aad"),
        pytest.param({"ct": RFC9180_A21["ct"][:-1] + b"\x00"}, id="ciphertext"),
        pytest.param({"enc": RFC9180_A21["pkRm"]}, id="enc"),
    ],
)
def test_hpke_open_rejects_any_change(change: dict[str, bytes]) -> None:
    vector = {**RFC9180_A21, **change}
    private = X25519PrivateKey.from_private_bytes(vector["skRm"])
    with pytest.raises(InvalidTag):
        hpke_open_base(private, vector["enc"], vector["ct"], info=vector["info"], aad=vector["aad"])


@pytest.mark.parametrize("point", [bytes(32), b"\x01" + bytes(31)], ids=["zero", "one"])
def test_hpke_refuses_low_order_points(point: bytes) -> None:
    with pytest.raises(ValueError, match="low-order"):
        hpke_seal_base(X25519PublicKey.from_public_bytes(point), b"k", info=b"", aad=b"")
    with pytest.raises(ValueError, match="low-order"):
        hpke_open_base(REVIEWER, point, bytes(48), info=b"", aad=b"")


def _library_hpke() -> Any:
    module = pytest.importorskip("cryptography.hazmat.primitives.hpke")
    if not hasattr(module, "Suite"):
        pytest.skip("this cryptography release has no HPKE")
    return module.Suite(module.KEM.X25519, module.KDF.HKDF_SHA256, module.AEAD.CHACHA20_POLY1305)


def test_wrapped_key_opens_with_the_cryptography_hpke_implementation() -> None:
    suite = _library_hpke()
    data_key = new_data_key()
    wrapped = wrap_data_key(data_key, REVIEWER.public_key(), recording_id=RID, header=HEADER)
    opened = suite.decrypt(wrapped.encapsulated_key + wrapped.sealed_key, REVIEWER, info=wrap_info(HEADER))
    assert opened == data_key


def test_hpke_open_reads_the_cryptography_hpke_implementation() -> None:
    suite = _library_hpke()
    sealed = suite.encrypt(b"thirty-two bytes of a data key!!", REVIEWER.public_key(), info=b"context")
    assert hpke_open_base(REVIEWER, sealed[:32], sealed[32:], info=b"context", aad=b"") == (
        b"thirty-two bytes of a data key!!"
    )


def test_wrap_info_is_label_then_header_digest() -> None:
    info = wrap_info(HEADER)
    assert info == b"callherald recording v1 data key" + hashlib.sha256(HEADER).digest()
    assert len(info) == 64


def test_wrap_round_trip_for_each_recipient() -> None:
    data_key = new_data_key()
    for private in (REVIEWER, ESCROW):
        wrapped = wrap_data_key(data_key, private.public_key(), recording_id=RID, header=HEADER)
        assert wrapped.recording_id == RID
        assert wrapped.recipient_key_id == key_id(private.public_key())
        assert len(wrapped.encapsulated_key) == 32
        assert len(wrapped.sealed_key) == 48
        assert unwrap_data_key(wrapped, private, header=HEADER) == data_key


def test_each_wrap_uses_a_fresh_ephemeral_key() -> None:
    data_key = new_data_key()
    first = wrap_data_key(data_key, REVIEWER.public_key(), recording_id=RID, header=HEADER)
    second = wrap_data_key(data_key, REVIEWER.public_key(), recording_id=RID, header=HEADER)
    assert first.encapsulated_key != second.encapsulated_key
    assert first.sealed_key != second.sealed_key


@pytest.mark.parametrize(
    ("private", "header", "sealed_change"),
    [
        pytest.param(REVIEWER, b"h" + HEADER[1:], False, id="other-header"),
        pytest.param(OUTSIDER, HEADER, False, id="other-private-key"),
        pytest.param(REVIEWER, HEADER, True, id="altered-sealed-key"),
    ],
)
def test_unwrap_fails_closed(private: X25519PrivateKey, header: bytes, sealed_change: bool) -> None:
    wrapped = wrap_data_key(new_data_key(), REVIEWER.public_key(), recording_id=RID, header=HEADER)
    if sealed_change:
        wrapped = dataclasses.replace(
            wrapped, sealed_key=bytes([wrapped.sealed_key[0] ^ 1]) + wrapped.sealed_key[1:]
        )
    with pytest.raises(KeyEntryMismatchError, match="does not authenticate against this header"):
        unwrap_data_key(wrapped, private, header=header)


def test_key_id_is_the_sha256_prefix_of_the_raw_public_key() -> None:
    assert key_id(REVIEWER.public_key()) == REVIEWER_KEY_ID
    assert hashlib.sha256(REVIEWER.public_key().public_bytes_raw()).hexdigest()[:16] == REVIEWER_KEY_ID


@pytest.mark.parametrize(
    ("counter", "nonce_hex"),
    [
        (0, "000000000000000000000000"),
        (1, "000000000000000000000001"),
        (0x0102030405060708, "000000000102030405060708"),
        ((1 << 64) - 1, "00000000ffffffffffffffff"),
    ],
)
def test_segment_nonce(counter: int, nonce_hex: str) -> None:
    assert segment_nonce(counter).hex() == nonce_hex


@pytest.mark.parametrize("counter", [-1, 1 << 64])
def test_segment_nonce_range(counter: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        segment_nonce(counter)


def test_segment_sealing_matches_an_independent_derivation() -> None:
    data_key = bytes(range(32))
    segment_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"callherald recording v1 segment key"
    ).derive(data_key)
    expected = ChaCha20Poly1305(segment_key).encrypt(bytes(4) + (7).to_bytes(8, "big"), b"audio", b"aad")
    sealed = SegmentSealer(data_key).seal(7, b"audio", b"aad")
    assert sealed == expected
    assert SegmentOpener(data_key).open(7, sealed, b"aad") == b"audio"


@pytest.mark.parametrize(
    ("counter", "aad"),
    [pytest.param(8, b"aad", id="other-counter"), pytest.param(7, b"aaD", id="other-aad")],
)
def test_segment_open_rejects_other_counter_or_aad(counter: int, aad: bytes) -> None:
    sealed = SegmentSealer(bytes(32)).seal(7, b"audio", b"aad")
    with pytest.raises(InvalidTag):
        SegmentOpener(bytes(32)).open(counter, sealed, aad)


def test_sealer_offers_only_seal() -> None:
    assert [name for name in dir(SegmentSealer) if not name.startswith("_")] == ["seal"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("encapsulated_key", bytes(31), "encapsulated key must be 32 bytes"),
        ("sealed_key", bytes(32), "sealed key must be 48 bytes"),
        ("recipient_key_id", "300C9C9603B92A4B", "16 lowercase hex digits"),
        ("recipient_key_id", "300c9c9603b92a4", "16 lowercase hex digits"),
    ],
)
def test_wrapped_key_validation(field: str, value: object, message: str) -> None:
    valid: dict[str, Any] = {
        "recording_id": RID,
        "recipient_key_id": REVIEWER_KEY_ID,
        "encapsulated_key": bytes(32),
        "sealed_key": bytes(48),
    }
    with pytest.raises(ValueError, match=message):
        WrappedKey(**{**valid, field: value})
