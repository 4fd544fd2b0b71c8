"""BLAKE3 hashing through the C ABI, checked against the independent `blake3` package."""

from __future__ import annotations

import blake3 as reference
import pytest
from hypothesis import given
from hypothesis import strategies as st

from micforge import core


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_version_is_a_semver_string() -> None:
    assert core.version().count(".") == 2


def test_blake3_empty_reference_vector() -> None:
    assert (
        core.blake3(b"").hex() == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    )


@given(st.binary(max_size=5000))
def test_blake3_matches_reference(data: bytes) -> None:
    assert core.blake3(data) == reference.blake3(data).digest()


@given(st.binary(max_size=3000))
def test_blob_hash_is_prefixed_blake3(content: bytes) -> None:
    expected = reference.blake3(b"blob\0" + _varint(len(content)) + content).digest()
    assert core.blob_hash(content) == expected


def test_blob_hash_golden() -> None:
    # Pinned so a change to the blob address scheme fails loudly.
    assert core.blob_hash(b"hello world").hex() == (
        "f2eccae107ae6aa6fba350d1fa14d17ffd0339f681af3d04c77ede8af1c6ebae"
    )


def test_path_hash_is_16_byte_prefix() -> None:
    assert core.path_hash("src/a.py") == reference.blake3(b"path\0src/a.py").digest()[:16]
    assert core.path_hash("é/ü") == reference.blake3("path\0é/ü".encode()).digest()[:16]


@given(st.lists(st.binary(max_size=2000), max_size=8))
def test_streaming_equals_one_shot(chunks: list[bytes]) -> None:
    whole = b"".join(chunks)
    with core.Hasher() as hasher:
        for chunk in chunks:
            hasher.update(chunk)
        assert hasher.digest() == core.blake3(whole)
        assert hasher.hexdigest() == core.blake3(whole).hex()
    with core.BlobHasher(len(whole)) as blob:
        for chunk in chunks:
            blob.update(chunk)
        assert blob.digest() == core.blob_hash(whole)


def test_blob_hasher_rejects_wrong_sizes_without_changing_state() -> None:
    blob = core.BlobHasher(5)
    blob.update(b"abc")
    with pytest.raises(core.InvalidArgument):
        blob.digest()
    with pytest.raises(core.SizeMismatch):
        blob.update(b"def")  # would make 6 > 5; rejected whole
    blob.update(b"de")
    assert blob.digest() == core.blob_hash(b"abcde")
    blob.close()
    blob.close()  # idempotent
    with pytest.raises(core.InvalidHandle):
        blob.update(b"x")


def test_negative_blob_size_is_rejected() -> None:
    with pytest.raises(ValueError):
        core.BlobHasher(-1)


def test_buffer_protocol_inputs() -> None:
    data = bytearray(b"abc")
    assert core.blake3(data) == core.blake3(b"abc")
    assert core.blake3(memoryview(b"xabc")[1:]) == core.blake3(b"abc")
