"""Malformed input through the Python binding: every decoder either decodes or
raises Corrupt, never anything else (the exhaustive run is `zig build fuzz`,
which drives the C ABI with 100,000 mutated inputs per decoder). The one
exception is Bloom.from_bytes refusing, with LimitExceeded, well-formed bytes
that declare a filter larger than its max_bits (a mutated size field can)."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from micforge import core

_SESSION = core.encode_session(
    core.SessionRecord(
        b"\x07" * 16, core.STATE_OPEN, 1, 0, 0, "owner", "goal", 1, 2,
        [core.Operation(core.OP_WRITE, "a/b", b"\x01" * 32, core.MODE_EXEC, 9),
         core.Operation(core.OP_DELETE, "c", None)],
        [core.Decision("why", 3)], [core.Message(core.ROLE_AGENT, "hello", 4)], ["a/b"],
    )
)  # fmt: skip
_LANDING = core.encode_landing(
    core.LandingRecord(5, b"\x01" * 16, b"\x02" * 32, b"\x03" * 32, 6, "ada", "g", ["a", "b/c"])
)
_BLOOM = core.Bloom.landing()
_BLOOM.add_many(["x", "y/z"])
_ROLLUP = core.encode_rollup(core.Rollup(1, 1, 2, _BLOOM.to_bytes()))
_HEAD = core.encode_head(core.Head(3, b"\x04" * 32, 7))

DECODERS: list[tuple[bytes, Callable[[bytes], object]]] = [
    (_SESSION, core.decode_session),
    (_LANDING, core.decode_landing),
    (_ROLLUP, core.decode_rollup),
    (_HEAD, core.decode_head),
    (_BLOOM.to_bytes(), core.Bloom.from_bytes),
]


def _rejection(decode: Callable[[bytes], object]) -> tuple[type[Exception], ...]:
    if decode == core.Bloom.from_bytes:
        return (core.Corrupt, core.LimitExceeded)
    return (core.Corrupt,)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, Callable[[bytes], object]]:
    seed, decode = draw(st.sampled_from(DECODERS))
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 3))
        if kind == 0 and data:
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif kind == 1 and data:
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == 2 and len(data) >= 8:
            at = draw(st.integers(0, min(len(data), 160) - 4))
            data[at : at + 4] = draw(
                st.sampled_from([b"\xff\xff\xff\xff", b"\x40\x42\x0f\x00", b"\x00\x00\x00\x80"])
            )
        else:
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data), decode


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_inputs_decode_or_raise_corrupt(
    case: tuple[bytes, Callable[[bytes], object]],
) -> None:
    data, decode = case
    try:
        decode(data)
    except _rejection(decode):
        pass


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([d for _, d in DECODERS]))
def test_random_bytes_decode_or_raise_corrupt(
    data: bytes, decode: Callable[[bytes], object]
) -> None:
    try:
        decode(data)
    except _rejection(decode):
        pass
