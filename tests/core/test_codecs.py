"""Codec round trips (hypothesis), golden bytes, rejections, and a cross-check
against the independent pure-Python implementation in tests/core/pyref.py."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from micforge import core
from micforge.core import (
    Decision,
    Head,
    LandingRecord,
    Message,
    Operation,
    Rollup,
    SessionRecord,
)
from tests.core import pyref

u64 = st.integers(0, (1 << 64) - 1)
hash32 = st.binary(min_size=32, max_size=32)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
segment = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"), min_size=1, max_size=12
).filter(lambda s: s not in (".", ".."))
path = (
    st.lists(segment, min_size=1, max_size=4)
    .map("/".join)
    .filter(lambda p: len(p.encode()) <= 4096)
)
sorted_paths = st.lists(path, unique=True, max_size=30).map(
    lambda ps: sorted(ps, key=lambda p: p.encode())
)


@st.composite
def operations(draw: st.DrawFn) -> list[Operation]:
    ops = []
    for p in draw(sorted_paths):
        if draw(st.booleans()):
            ops.append(
                Operation(
                    core.OP_WRITE, p, draw(hash32), draw(st.sampled_from([0, 1, 2])), draw(u64)
                )
            )
        else:
            ops.append(Operation(core.OP_DELETE, p, None, core.MODE_FILE, 0))
    return ops


sessions = st.builds(
    SessionRecord,
    id=st.binary(min_size=16, max_size=16),
    state=st.sampled_from([0, 1, 2, 3]),
    base_position=u64,
    landed_position=u64,
    attempt_position=u64,
    owner=st.text(max_size=40).filter(lambda s: "\ud800" > s or True).filter(lambda s: _utf8_ok(s)),
    goal=text.filter(lambda s: _utf8_ok(s)),
    created_at=u64,
    updated_at=u64,
    operations=operations(),
    decisions=st.lists(st.builds(Decision, content=text, at=u64), max_size=5),
    conversation=st.lists(
        st.builds(Message, role=st.sampled_from([0, 1, 2]), content=text, at=u64), max_size=5
    ),
    conflict_paths=sorted_paths,
)


def _utf8_ok(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


landings = st.builds(
    LandingRecord,
    position=st.integers(1, (1 << 64) - 1),
    session_id=st.binary(min_size=16, max_size=16),
    parent_tree=hash32,
    tree_hash=hash32,
    hlc=u64,
    author=text,
    goal=text,
    paths=sorted_paths,
)


@settings(deadline=None)
@given(position=u64, tree_hash=hash32, hlc=u64)
def test_head_round_trip(position: int, tree_hash: bytes, hlc: int) -> None:
    head = Head(position, tree_hash, hlc)
    data = core.encode_head(head)
    assert len(data) == core.HEAD_BYTES == 56
    assert data == b"MICH\x01\0\0\0" + struct.pack("<Q32sQ", position, tree_hash, hlc)
    assert core.decode_head(data) == head


@settings(max_examples=150, deadline=None)
@given(sessions)
def test_session_round_trip_and_bloom(session: SessionRecord) -> None:
    data = core.encode_session(session)
    assert core.decode_session(data) == session
    bloom = core.session_bloom(data)
    assert (bloom.bits, bloom.k) == (core.LANDING_BLOOM_BITS, core.LANDING_BLOOM_K)
    assert all(bloom.may_contain(op.path) for op in session.operations)


@settings(max_examples=25, deadline=None)
@given(sessions)
def test_session_matches_independent_reference(session: SessionRecord) -> None:
    data = core.encode_session(session)
    assert data == pyref.encode_session(session)
    assert pyref.decode_session(data) == session


@pytest.mark.parametrize("op_count", [0, 1, 255, 256, 257, 600])
@pytest.mark.parametrize("delete_every", [0, 1, 3])
def test_session_decode_cuts_hashes_across_chunks(op_count: int, delete_every: int) -> None:
    # decode_session cuts the blob hashes out 256 at a time: sessions around and
    # past that size, with no, some and only deletes, against the reference decoder.
    ops = []
    for i in range(op_count):
        path = f"d/{i:05d}"
        if delete_every and i % delete_every == 0:
            ops.append(Operation(core.OP_DELETE, path, None))
        else:
            ops.append(Operation(core.OP_WRITE, path, i.to_bytes(32, "little"), 0, i))
    session = SessionRecord(b"\x01" * 16, core.STATE_OPEN, 1, 0, 0, "o", "g", 1, 2, ops)
    data = core.encode_session(session)
    decoded = core.decode_session(data)
    assert decoded == session == pyref.decode_session(data)
    assert [op.blob_hash for op in decoded.operations] == [op.blob_hash for op in ops]


@settings(max_examples=150, deadline=None)
@given(landings)
def test_landing_round_trip(record: LandingRecord) -> None:
    data = core.encode_landing(record)
    assert core.decode_landing(data) == record
    bloom = core.landing_bloom(data)
    assert all(bloom.may_contain(p) for p in record.paths)


@settings(max_examples=25, deadline=None)
@given(landings)
def test_landing_matches_independent_reference(record: LandingRecord) -> None:
    assert core.encode_landing(record) == pyref.encode_landing(record)


@settings(deadline=None)
@given(st.sampled_from([(1, 100), (2, 10_000), (3, 1_000_000)]), st.integers(1, 1 << 40), st.data())
def test_rollup_round_trip(level_window: tuple[int, int], start: int, data: st.DataObject) -> None:
    level, window = level_window
    count = data.draw(st.integers(1, window))
    bloom = core.Bloom.landing()
    bloom.add_many(data.draw(st.lists(path, max_size=20)))
    rollup = Rollup(level, start, count, bloom.to_bytes())
    assert core.decode_rollup(core.encode_rollup(rollup)) == rollup


def test_golden_bytes() -> None:
    # Pinned: a change to any format must change these on purpose (docs/formats.md).
    session = SessionRecord(
        b"\x01" * 16, core.STATE_OPEN, 3, 0, 0, "ada", "fix", 10, 11,
        [Operation(core.OP_WRITE, "a.txt", b"\x02" * 32, core.MODE_FILE, 5)],
        [Decision("d", 12)], [Message(core.ROLE_USER, "m", 13)], [],
    )  # fmt: skip
    data = core.encode_session(session)
    assert data[:8] == b"MICS\x01\x00\x00\x00"
    assert (
        core.blake3(data).hex()
        == "8a9879d93bd4e3bd0255cf222811e3162f3398c5a213413dae98c06cb23fdeb9"
    )
    landing = LandingRecord(1, b"\x03" * 16, b"\x04" * 32, b"\x05" * 32, 7, "ada", "fix", ["a.txt"])
    landing_bytes = core.encode_landing(landing)
    assert landing_bytes[:16].hex() == "4d49434c010000000100000000000000"
    assert (
        core.blake3(landing_bytes).hex()
        == "3aa39c809b52ec42cee0a7d229922965b7a07607def4d2bde6365bb0b4b2d8e6"
    )
    bloom = core.Bloom.landing()
    bloom.add("a.txt")
    assert core.encode_rollup(Rollup(2, 101, 7, bloom.to_bytes())).hex() == (
        "4d494352010200006500000000000000070000000000000027000000000000004d4943420101070000008000"
        "0000000007b38d37f2ef0cf2ef0ca3e8df01f2ef0cf2ef0cf2ef0c"
    )


def test_enum_values_are_pinned() -> None:
    # The header's numbers are the stored bytes: they may never change.
    assert (core.OP_WRITE, core.OP_DELETE) == (1, 2)
    assert (core.MODE_FILE, core.MODE_EXEC, core.MODE_SYMLINK) == (0, 1, 2)
    assert (core.STATE_OPEN, core.STATE_LANDED, core.STATE_CONFLICTED, core.STATE_ABANDONED) == (
        0,
        1,
        2,
        3,
    )
    assert (core.ROLE_USER, core.ROLE_AGENT, core.ROLE_SYSTEM) == (0, 1, 2)
    statuses = [
        core.InvalidArgument, core.Corrupt, core.OutOfMemory, core.InvalidHandle,
        core.BufferTooSmall, core.LimitExceeded, core.SizeMismatch, core.NotFoundNode, core.LoaderFailed,
    ]  # fmt: skip
    assert [cls.status for cls in statuses] == [1, 2, 3, 4, 5, 6, 7, 20, 21]
    assert [cls.name for cls in statuses][:2] == ["MIC_INVALID_ARGUMENT", "MIC_CORRUPT"]


@pytest.mark.parametrize(
    "bad",
    [
        lambda s: setattr(s, "state", 4),
        lambda s: setattr(s, "id", b"short"),
        lambda s: setattr(
            s,
            "operations",
            [Operation(core.OP_WRITE, "b", b"x" * 32), Operation(core.OP_WRITE, "a", b"x" * 32)],
        ),
        lambda s: setattr(
            s,
            "operations",
            [Operation(core.OP_WRITE, "a", b"x" * 32), Operation(core.OP_DELETE, "a", None)],
        ),
        lambda s: setattr(s, "operations", [Operation(core.OP_WRITE, "a", None)]),
        lambda s: setattr(s, "operations", [Operation(core.OP_WRITE, "a", b"x" * 31)]),
        lambda s: setattr(s, "operations", [Operation(core.OP_DELETE, "a", b"x" * 32)]),
        lambda s: setattr(s, "operations", [Operation(core.OP_DELETE, "a", None, core.MODE_EXEC)]),
        lambda s: setattr(s, "operations", [Operation(3, "a", None)]),
        lambda s: setattr(s, "operations", [Operation(core.OP_WRITE, "a//b", b"x" * 32)]),
        lambda s: setattr(s, "operations", [Operation(core.OP_WRITE, "../a", b"x" * 32)]),
        lambda s: setattr(s, "operations", [Operation(core.OP_WRITE, "a\0b", b"x" * 32)]),
        lambda s: setattr(s, "operations", [Operation(core.OP_WRITE, "a", b"x" * 32, 0, -1)]),
        lambda s: setattr(s, "conversation", [Message(9, "x", 0)]),
        lambda s: setattr(s, "conflict_paths", ["b", "a"]),
        lambda s: setattr(s, "goal", "\ud800"),
        lambda s: setattr(s, "base_position", 1 << 64),
    ],
)
def test_session_encoder_rejects_bad_input(bad) -> None:  # type: ignore[no-untyped-def]
    session = SessionRecord(b"\0" * 16, core.STATE_OPEN, 0, 0, 0, "o", "g", 0, 0)
    core.encode_session(session)
    bad(session)
    with pytest.raises(core.InvalidArgument):
        core.encode_session(session)


def test_limits_raise_limit_exceeded() -> None:
    session = SessionRecord(b"\0" * 16, core.STATE_OPEN, 0, 0, 0, "o" * 1025, "g", 0, 0)
    with pytest.raises(core.LimitExceeded):
        core.encode_session(session)


def test_decoders_reject_every_truncation_and_foreign_magic() -> None:
    session = SessionRecord(
        b"\x01" * 16, core.STATE_CONFLICTED, 1, 0, 0, "o", "g", 1, 2,
        [Operation(core.OP_WRITE, "a", b"\x02" * 32, 0, 1)], [Decision("x", 1)], [Message(1, "y", 2)], ["a"],
    )  # fmt: skip
    landing = LandingRecord(
        1, b"\x03" * 16, b"\x04" * 32, b"\x05" * 32, 7, "ada", "fix", ["a", "b/c"]
    )
    cases = [
        (core.encode_session(session), core.decode_session),
        (core.encode_landing(landing), core.decode_landing),
        (core.encode_head(Head(1, b"\0" * 32, 2)), core.decode_head),
        (core.encode_rollup(Rollup(1, 1, 1, core.Bloom.landing().to_bytes())), core.decode_rollup),
    ]
    for data, decode in cases:
        for cut in range(len(data)):
            with pytest.raises(core.Corrupt):
                decode(data[:cut])
        with pytest.raises(core.Corrupt):
            decode(data + b"\0")
    for i, (data, _) in enumerate(cases):
        for j, (_, decode) in enumerate(cases):
            if i != j:  # another format's bytes
                with pytest.raises(core.Corrupt):
                    decode(data)


def test_decoder_rejects_huge_counts() -> None:
    data = bytearray(core.encode_session(SessionRecord(b"\0" * 16, 0, 0, 0, 0, "o", "g", 0, 0)))
    for offset in (64, 68, 72, 76, 80, 84, 88, 96, 104, 112, 120):
        for value in (0xFFFFFFFF, 1_000_001, 7):
            mutated = bytearray(data)
            mutated[offset : offset + 4] = struct.pack("<I", value)
            with pytest.raises(core.Corrupt):
                core.decode_session(bytes(mutated))


def test_rollup_rejects_wrong_geometry_and_window() -> None:
    small = core.Bloom.with_geometry(1 << 10, 7).to_bytes()
    with pytest.raises(core.InvalidArgument):
        core.encode_rollup(Rollup(1, 1, 1, small))
    landing = core.Bloom.landing().to_bytes()
    for level, start, count in [
        (0, 1, 1),
        (4, 1, 1),
        (1, 0, 1),
        (1, 1, 0),
        (1, 1, 101),
        (2, 1, 10_001),
    ]:
        with pytest.raises(core.InvalidArgument):
            core.encode_rollup(Rollup(level, start, count, landing))


def test_struct_layouts_match_zig() -> None:
    # The same numbers are pinned in zig/codec.zig's layout test.
    ffi = core._ffi.ffi
    assert ffi.sizeof("mic_span") == 16
    assert ffi.sizeof("mic_head") == 48
    assert ffi.sizeof("mic_rollup_fields") == 40
    assert ffi.sizeof("mic_landing_fields") == 168
    assert ffi.sizeof("mic_session_fields") == 352
    assert ffi.offsetof("mic_session_fields", "base_position") == 24
    assert ffi.offsetof("mic_session_fields", "owner") == 96
    assert ffi.offsetof("mic_session_fields", "bloom") == 336
    assert ffi.offsetof("mic_landing_fields", "path_count") == 96


def test_pure_python_blake3_reference_is_correct() -> None:
    for size in (0, 1, 64, 65, 1023, 1024, 1025, 2048, 3 * 1024 + 7, 9000):
        data = bytes(i % 251 for i in range(size))
        assert pyref.blake3(data) == core.blake3(data)


# ---- the lazy Operations view of a decoded session ----


@settings(max_examples=100, deadline=None)
@given(sessions)
def test_decoded_operations_view_agrees_with_the_list(session: SessionRecord) -> None:
    data = core.encode_session(session)
    view = core.decode_session(data).operations
    assert isinstance(view, core.Operations)
    expected = list(session.operations)
    assert len(view) == len(expected)
    assert view.paths == [op.path for op in expected] == core.operation_paths(view)
    assert core.operation_paths(expected) == view.paths
    assert list(view) == expected and view == expected and expected == view
    assert view[:] == expected and view[::2] == expected[::2]
    if expected:
        assert view[0] == expected[0] and view[-1] == expected[-1]
    # Re-encoding reuses the decoded columns: the same bytes as encoding the list.
    decoded = core.decode_session(data)
    assert core.encode_session(decoded) == data
    again = dataclasses.replace(decoded, state=core.STATE_LANDED, landed_position=7)
    assert core.encode_session(again) == core.encode_session(
        dataclasses.replace(again, operations=expected)
    )


def test_decoded_operations_are_built_only_when_asked_for() -> None:
    ops = [
        Operation(core.OP_WRITE, f"a/{i:03d}", bytes([i]) * 32, core.MODE_FILE, i) for i in range(5)
    ]
    ops.append(Operation(core.OP_DELETE, "b", None))
    session = SessionRecord(b"\x02" * 16, core.STATE_OPEN, 3, 0, 0, "o", "g", 1, 2, ops)
    data = core.encode_session(session)
    decoded = core.decode_session(data)
    view = decoded.operations
    assert view._items is None  # header only
    assert len(view) == 6 and view.paths == [op.path for op in ops]
    core.encode_session(dataclasses.replace(decoded, state=core.STATE_ABANDONED))
    assert view._items is None  # paths and re-encoding use the columns alone
    assert view[5] == Operation(core.OP_DELETE, "b", None, core.MODE_FILE, 0)
    assert view._items is not None
    assert view[2] is view[2]  # built once
    with pytest.raises(IndexError):
        view[6]
    assert "Operation(op=" in repr(view)


def test_decoded_operations_view_is_immutable_and_unhashable() -> None:
    session = SessionRecord(
        b"\x03" * 16, core.STATE_OPEN, 1, 0, 0, "o", "g", 1, 2,
        [Operation(core.OP_WRITE, "x", b"\x01" * 32, core.MODE_FILE, 1)],
    )  # fmt: skip
    data = core.encode_session(session)
    view = core.decode_session(data).operations
    with pytest.raises(TypeError):
        view[0] = Operation(core.OP_DELETE, "x", None)  # type: ignore[index]
    with pytest.raises(AttributeError):
        view.append(Operation(core.OP_DELETE, "y", None))  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        hash(view)
    # Two views of equal bytes are equal without building objects; a change is not.
    other = core.decode_session(data).operations
    assert view == other and other._items is None
    changed = dataclasses.replace(session, operations=[Operation(core.OP_DELETE, "x", None)])
    assert core.decode_session(core.encode_session(changed)).operations != view
    assert (
        view != []
        and view != "x"
        and core.decode_session(
            core.encode_session(dataclasses.replace(session, operations=[]))
        ).operations
        == []
    )


def test_encoding_a_view_still_checks_the_rest_of_the_session() -> None:
    session = SessionRecord(b"\x04" * 16, core.STATE_OPEN, 1, 0, 0, "o", "g", 1, 2, [])
    decoded = core.decode_session(core.encode_session(session))
    with pytest.raises(core.InvalidArgument):
        core.encode_session(dataclasses.replace(decoded, id=b"short"))
    with pytest.raises(core.InvalidArgument):
        core.encode_session(dataclasses.replace(decoded, conflict_paths=["b", "a"]))
