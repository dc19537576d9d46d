"""Key files (passphrase-sealed private keys, PEM/base64 public keys) and the wrapped-key stores."""

from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from storage.crypto import KeyFileError, KeyStoreError, WrappedKey, WrongPassphraseError, key_id
from storage.keys import (
    SCRYPT_LOG2_N_MIN,
    FileKeyStore,
    KeyStore,
    MemoryKeyStore,
    decode_private_key,
    encode_private_key,
    generate_private_key,
    load_private_key,
    load_public_key,
    parse_public_key,
    public_key_base64,
    public_key_pem,
    save_private_key,
    save_public_key,
    wrapped_keys_from_json,
    wrapped_keys_to_json,
)
from tests.storage.recordings import REVIEWER, REVIEWER_KEY_ID

FAST = SCRYPT_LOG2_N_MIN  # the cheapest accepted cost keeps the tests quick
REVIEWER_RAW_B64 = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="


@pytest.fixture(scope="module")
def sealed_reviewer() -> bytes:
    return encode_private_key(REVIEWER, "correct horse battery staple", scrypt_log2_n=FAST)


def test_private_key_round_trip(sealed_reviewer: bytes) -> None:
    opened = decode_private_key(sealed_reviewer, "correct horse battery staple")
    assert opened.public_key().public_bytes_raw() == REVIEWER.public_key().public_bytes_raw()
    assert opened.private_bytes_raw() == REVIEWER.private_bytes_raw()


def test_private_key_file_shows_id_and_public_key_but_not_the_key(sealed_reviewer: bytes) -> None:
    document = json.loads(sealed_reviewer)
    assert document["format"] == "callherald-private-key"
    assert document["key_id"] == REVIEWER_KEY_ID
    assert document["public_key"] == REVIEWER_RAW_B64
    assert document["kdf"]["name"] == "scrypt"
    assert (document["kdf"]["log2_n"], document["kdf"]["r"], document["kdf"]["p"]) == (FAST, 8, 1)
    assert REVIEWER.private_bytes_raw() not in sealed_reviewer
    assert REVIEWER.private_bytes_raw().hex().encode() not in sealed_reviewer


@pytest.mark.parametrize(
    "passphrase",
    ["correct horse battery stapl", "Correct horse battery staple", b"correct horse battery staple "],
)
def test_wrong_passphrase_is_named(sealed_reviewer: bytes, passphrase: str | bytes) -> None:
    with pytest.raises(WrongPassphraseError) as info:
        decode_private_key(sealed_reviewer, passphrase, source="reviewer.key")
    assert str(info.value) == (
        f"reviewer.key: wrong passphrase for private key {REVIEWER_KEY_ID} (or the file was altered)"
    )


def test_passphrase_is_unicode_normalised() -> None:
    composed = "cr\u00e8me br\u00fbl\u00e9e"
    decomposed = "cre\u0300me bru\u0302le\u0301e"
    sealed = encode_private_key(REVIEWER, composed, scrypt_log2_n=FAST)
    assert decode_private_key(sealed, decomposed).private_bytes_raw() == REVIEWER.private_bytes_raw()


def test_empty_passphrase_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        encode_private_key(REVIEWER, "", scrypt_log2_n=FAST)


def _edit(path: tuple[str, ...], value: object) -> Callable[[dict[str, Any]], None]:
    def apply(document: dict[str, Any]) -> None:
        target = document
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return apply


_DELETE = object()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(_edit(("format",), "pem"), "not a callherald private key file", id="format"),
        pytest.param(_edit(("version",), 2), "version 2 is not supported", id="version"),
        pytest.param(_edit(("kdf", "name"), "pbkdf2"), "kdf.name must be scrypt", id="kdf-name"),
        pytest.param(_edit(("kdf", "log2_n"), 30), r"kdf.log2_n: 30 is outside 14..20", id="scrypt-cost-dos"),
        pytest.param(
            _edit(("kdf", "log2_n"), 10), r"kdf.log2_n: 10 is outside 14..20", id="scrypt-cost-weak"
        ),
        pytest.param(_edit(("kdf", "r"), True), "r: missing or not a int", id="bool-is-not-int"),
        pytest.param(_edit(("kdf", "salt"), "@@@"), "kdf.salt: not valid base64", id="salt-base64"),
        pytest.param(_edit(("nonce",), "AAAA"), "nonce: expected 12 bytes, got 3", id="nonce-length"),
        pytest.param(
            _edit(("ciphertext",), _DELETE), "ciphertext: expected a base64 string", id="no-ciphertext"
        ),
        pytest.param(_edit(("algorithm",), "X448"), "algorithm must be X25519", id="algorithm"),
    ],
)
def test_malformed_private_key_files(
    sealed_reviewer: bytes, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    document = json.loads(sealed_reviewer)
    edit(document)
    with pytest.raises(KeyFileError, match=message) as info:
        decode_private_key(json.dumps(document).encode(), "correct horse battery staple", source="k.json")
    assert not isinstance(info.value, WrongPassphraseError)
    assert str(info.value).startswith("k.json: ")


@pytest.mark.parametrize("data", [b"", b"\xff\xfe", b"[1, 2]", b"-----BEGIN PRIVATE KEY-----\n"])
def test_not_a_private_key_file(data: bytes) -> None:
    with pytest.raises(KeyFileError, match="not a callherald private key file"):
        decode_private_key(data, "x")


def test_altered_public_key_fails_like_a_wrong_passphrase(sealed_reviewer: bytes) -> None:
    document = json.loads(sealed_reviewer)
    document["public_key"] = public_key_base64(generate_private_key().public_key())
    with pytest.raises(WrongPassphraseError):
        decode_private_key(json.dumps(document).encode(), "correct horse battery staple")


def test_private_key_mismatching_its_key_id_is_refused(sealed_reviewer: bytes) -> None:
    document = json.loads(sealed_reviewer)
    document["key_id"] = "0000000000000000"
    with pytest.raises(KeyFileError, match="does not match the public key or key id"):
        decode_private_key(json.dumps(document).encode(), "correct horse battery staple")


def test_save_and_load_private_key_file(tmp_path: Path) -> None:
    path = tmp_path / "reviewer.key"
    save_private_key(path, REVIEWER, "pass phrase", scrypt_log2_n=FAST)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_private_key(path, "pass phrase").private_bytes_raw() == REVIEWER.private_bytes_raw()
    with pytest.raises(WrongPassphraseError, match=str(path)):
        load_private_key(path, "pass phrase!")
    with pytest.raises(FileExistsError):
        save_private_key(path, generate_private_key(), "other", scrypt_log2_n=FAST)
    assert load_private_key(path, "pass phrase").private_bytes_raw() == REVIEWER.private_bytes_raw()


def test_default_scrypt_cost_is_2_to_the_17() -> None:
    document = json.loads(encode_private_key(REVIEWER, "p"))
    assert document["kdf"]["log2_n"] == 17


def test_public_key_pem_names_the_key_id() -> None:
    text = public_key_pem(REVIEWER.public_key())
    assert text == (
        f"# callherald X25519 recording key, key id {REVIEWER_KEY_ID}\n"
        "-----BEGIN PUBLIC KEY-----\n"
        f"MCowBQYDK2VuAyEA{REVIEWER_RAW_B64}\n"
        "-----END PUBLIC KEY-----\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(public_key_pem(REVIEWER.public_key()), id="pem-with-comment"),
        pytest.param(
            REVIEWER.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
            id="bare-pem-bytes",
        ),
        pytest.param(REVIEWER_RAW_B64, id="base64"),
        pytest.param(REVIEWER_RAW_B64.rstrip("="), id="base64-unpadded"),
        pytest.param(f"  {REVIEWER_RAW_B64}\n", id="base64-whitespace"),
    ],
)
def test_parse_public_key(text: str | bytes) -> None:
    assert key_id(parse_public_key(text)) == REVIEWER_KEY_ID


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "a raw X25519 public key is 32 bytes, got 0", id="empty"),
        pytest.param("AAAA", "a raw X25519 public key is 32 bytes, got 3", id="short"),
        pytest.param("not base64!", "must be PEM or the raw 32-byte key in base64", id="junk"),
        pytest.param(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "malformed PEM public key",
            id="bad-pem",
        ),
        pytest.param(
            Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            .decode(),
            "expected an X25519 public key, got Ed25519PublicKey",
            id="ed25519",
        ),
    ],
)
def test_parse_public_key_errors(text: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        parse_public_key(text)


def test_save_and_load_public_key(tmp_path: Path) -> None:
    path = tmp_path / "reviewer.pub"
    save_public_key(path, REVIEWER.public_key())
    assert key_id(load_public_key(path)) == REVIEWER_KEY_ID
    path.write_text("nonsense!", encoding="ascii")
    with pytest.raises(KeyFileError, match=f"^{path}: "):
        load_public_key(path)


# --------------------------------------------------------------------------------------------------
# Key stores

RID_A = uuid.UUID("aaaaaaaa-0000-4000-8000-000000000001")
RID_B = uuid.UUID("bbbbbbbb-0000-4000-8000-000000000002")


def _entry(rid: uuid.UUID, fill: int) -> WrappedKey:
    return WrappedKey(
        recording_id=rid,
        recipient_key_id=REVIEWER_KEY_ID,
        encapsulated_key=bytes([fill]) * 32,
        sealed_key=bytes(48),
    )


def _stores(tmp_path: Path) -> dict[str, KeyStore]:
    return {"memory": MemoryKeyStore(), "file": FileKeyStore(tmp_path / "keys")}


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_key_store_contract(tmp_path: Path, kind: str) -> None:
    store = _stores(tmp_path)[kind]
    entries = (_entry(RID_A, 1), _entry(RID_A, 2))
    assert store.get(RID_A) == ()
    store.put(RID_A, entries)
    store.put(RID_B, [_entry(RID_B, 3)])
    assert store.get(RID_A) == entries
    with pytest.raises(KeyStoreError, match=f"wrapped keys for recording {RID_A} are already stored"):
        store.put(RID_A, [_entry(RID_A, 9)])
    assert store.get(RID_A) == entries
    assert store.destroy(RID_A) is True
    assert store.get(RID_A) == ()
    assert store.destroy(RID_A) is False
    assert store.get(RID_B) == (_entry(RID_B, 3),)


def test_file_key_store_files(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys")
    store.put(RID_A, [_entry(RID_A, 1)])
    path = tmp_path / "keys" / f"{RID_A}.keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert path.read_bytes() == wrapped_keys_to_json(RID_A, [_entry(RID_A, 1)])
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == [f"{RID_A}.keys.json"]
    store.destroy(RID_A)
    assert list((tmp_path / "keys").iterdir()) == []


def test_wrapped_keys_json_round_trip() -> None:
    entries = (_entry(RID_A, 1), _entry(RID_B, 2))
    document = json.loads(wrapped_keys_to_json(RID_A, entries))
    assert document["format"] == "callherald-wrapped-keys"
    assert document["recording_id"] == str(RID_A)
    assert document["entries"][0] == {
        "recording_id": str(RID_A),
        "recipient_key_id": REVIEWER_KEY_ID,
        "encapsulated_key": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        "sealed_key": "A" * 64,
    }
    assert wrapped_keys_from_json(wrapped_keys_to_json(RID_A, entries)) == entries


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"[]", id="list"),
        pytest.param(b'{"format": "callherald-wrapped-keys", "version": 1}', id="no-entries"),
        pytest.param(b'{"format": "other", "version": 1, "entries": []}', id="format"),
        pytest.param(
            b'{"format": "callherald-wrapped-keys", "version": 1, "entries": [{"recording_id": "x"}]}',
            id="bad-uuid",
        ),
    ],
)
def test_malformed_wrapped_key_documents(tmp_path: Path, data: bytes) -> None:
    store = FileKeyStore(tmp_path)
    (tmp_path / f"{RID_A}.keys.json").write_bytes(data)
    with pytest.raises(KeyStoreError):
        store.get(RID_A)
