"""A straightforward pure-Python implementation of libmic-core's formats.

Two uses: an independent oracle for the tests (written from docs/formats.md,
sharing no code with the Zig side, so a drift in either fails the golden and
cross-check tests), and the "pure Python" column of benchmarks/bench_core.py.
It is deliberately plain: per-item struct calls, a textbook BLAKE3.
"""

from __future__ import annotations

import struct

from micforge.core.codecs import (
    OP_WRITE,
    Decision,
    LandingRecord,
    Message,
    Operation,
    SessionRecord,
)

# ---------------------------------------------------------------- BLAKE3 (spec reference)

_IV = (
    0x6A09E667,
    0xBB67AE85,
    0x3C6EF372,
    0xA54FF53A,
    0x510E527F,
    0x9B05688C,
    0x1F83D9AB,
    0x5BE0CD19,
)
_PERM = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
_CHUNK_START, _CHUNK_END, _PARENT, _ROOT = 1, 2, 4, 8
_M32 = 0xFFFFFFFF


def _g(s: list[int], a: int, b: int, c: int, d: int, x: int, y: int) -> None:
    s[a] = (s[a] + s[b] + x) & _M32
    v = s[d] ^ s[a]
    s[d] = ((v >> 16) | (v << 16)) & _M32
    s[c] = (s[c] + s[d]) & _M32
    v = s[b] ^ s[c]
    s[b] = ((v >> 12) | (v << 20)) & _M32
    s[a] = (s[a] + s[b] + y) & _M32
    v = s[d] ^ s[a]
    s[d] = ((v >> 8) | (v << 24)) & _M32
    s[c] = (s[c] + s[d]) & _M32
    v = s[b] ^ s[c]
    s[b] = ((v >> 7) | (v << 25)) & _M32


def _compress(cv: list[int], block: bytes, counter: int, block_len: int, flags: int) -> list[int]:
    m = list(struct.unpack("<16I", block))
    s = list(cv) + list(_IV[:4]) + [counter & _M32, (counter >> 32) & _M32, block_len, flags]
    for r in range(7):
        _g(s, 0, 4, 8, 12, m[0], m[1])
        _g(s, 1, 5, 9, 13, m[2], m[3])
        _g(s, 2, 6, 10, 14, m[4], m[5])
        _g(s, 3, 7, 11, 15, m[6], m[7])
        _g(s, 0, 5, 10, 15, m[8], m[9])
        _g(s, 1, 6, 11, 12, m[10], m[11])
        _g(s, 2, 7, 8, 13, m[12], m[13])
        _g(s, 3, 4, 9, 14, m[14], m[15])
        if r < 6:
            m = [m[i] for i in _PERM]
    return [s[i] ^ s[i + 8] for i in range(8)] + [s[i + 8] ^ cv[i] for i in range(8)]


def _chunk_output(chunk: bytes, counter: int) -> tuple[list[int], bytes, int, int]:
    """(input cv, last block, block_len, flags) of a chunk's final block, not yet compressed."""
    cv = list(_IV)
    blocks = [chunk[i : i + 64] for i in range(0, len(chunk), 64)] or [b""]
    for i, block in enumerate(blocks[:-1]):
        flags = _CHUNK_START if i == 0 else 0
        cv = _compress(cv, block, counter, 64, flags)[:8]
    last = blocks[-1]
    flags = _CHUNK_END | (_CHUNK_START if len(blocks) == 1 else 0)
    return cv, last.ljust(64, b"\0"), len(last), flags


def blake3(data: bytes, out_len: int = 32) -> bytes:
    chunks = [data[i : i + 1024] for i in range(0, len(data), 1024)] or [b""]
    stack: list[list[int]] = []
    for index, chunk in enumerate(chunks[:-1]):
        cv, block, block_len, flags = _chunk_output(chunk, index)
        cv = _compress(cv, block, index, block_len, flags)[:8]
        total = index + 1
        while total & 1 == 0:  # merge completed subtrees
            left = stack.pop()
            cv = _compress(
                list(_IV), struct.pack("<8I", *left) + struct.pack("<8I", *cv), 0, 64, _PARENT
            )[:8]
            total >>= 1
        stack.append(cv)
    cv_in, block, block_len, flags = _chunk_output(chunks[-1], len(chunks) - 1)
    counter = len(chunks) - 1
    while stack:
        right = _compress(cv_in, block, counter, block_len, flags)[:8]
        left = stack.pop()
        cv_in, block, block_len, flags, counter = (
            list(_IV),
            struct.pack("<8I", *left) + struct.pack("<8I", *right),
            64,
            _PARENT,
            0,
        )
    words = _compress(cv_in, block, counter, block_len, flags | _ROOT)
    return struct.pack("<16I", *words)[:out_len]


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def blob_hash(content: bytes) -> bytes:
    return blake3(b"blob\0" + varint(len(content)) + content)


def path_hash(path: str) -> bytes:
    return blake3(b"path\0" + path.encode("utf-8"))[:16]


# ---------------------------------------------------------------- bloom


class PyBloom:
    def __init__(self, bits: int, k: int) -> None:
        self.bits, self.k = bits, k
        self.array = bytearray(bits // 8)

    def add(self, path: str) -> None:
        h = path_hash(path)
        h1 = int.from_bytes(h[:8], "little")
        h2 = int.from_bytes(h[8:], "little") | 1
        for i in range(self.k):
            bit = (h1 + i * h2) % self.bits
            self.array[bit >> 3] |= 1 << (bit & 7)

    def add_many(self, paths: list[str]) -> None:
        for p in paths:
            self.add(p)

    def may_contain(self, path: str) -> bool:
        h = path_hash(path)
        h1 = int.from_bytes(h[:8], "little")
        h2 = int.from_bytes(h[8:], "little") | 1
        for i in range(self.k):
            bit = (h1 + i * h2) % self.bits
            if not self.array[bit >> 3] & (1 << (bit & 7)):
                return False
        return True

    def intersects(self, other: PyBloom) -> bool:
        return any(a & b for a, b in zip(self.array, other.array, strict=True))

    def to_bytes(self) -> bytes:
        indices = [
            i * 8 + b
            for i, byte in enumerate(self.array)
            if byte
            for b in range(8)
            if byte >> b & 1
        ]
        sparse = bytearray(varint(len(indices)))
        previous = None
        for index in indices:
            sparse += varint(index if previous is None else index - previous)
            previous = index
        header = b"MICB\x01"
        if len(sparse) < len(self.array):
            return header + bytes([1, self.k, 0]) + struct.pack("<Q", self.bits) + bytes(sparse)
        return header + bytes([0, self.k, 0]) + struct.pack("<Q", self.bits) + bytes(self.array)


def validate_bloom(data: bytes) -> tuple[int, int]:
    """Checks a serialized bloom like the decoders do; returns (bits, k)."""
    if len(data) < 16 or data[:5] != b"MICB\x01" or data[7] != 0:
        raise ValueError("bad bloom header")
    encoding, k = data[5], data[6]
    (bits,) = struct.unpack_from("<Q", data, 8)
    if bits < 64 or bits > 1 << 32 or bits & (bits - 1) or not 1 <= k <= 32:
        raise ValueError("bad geometry")
    if encoding == 0:
        if len(data) - 16 != bits // 8:
            raise ValueError("bad dense length")
    elif encoding == 1:
        count, at = read_varint(data, 16)
        previous = None
        for _ in range(count):
            step, at = read_varint(data, at)
            index = step if previous is None else previous + step
            if (previous is not None and step == 0) or index >= bits:
                raise ValueError("bad index")
            previous = index
        if at != len(data):
            raise ValueError("trailing bytes")
    else:
        raise ValueError("bad encoding")
    return bits, k


LANDING_BITS, LANDING_K = 1 << 23, 7

# ---------------------------------------------------------------- codecs


def _path_block(paths: list[str]) -> bytes:
    return "\0".join(paths).encode("utf-8")


def encode_session(s: SessionRecord) -> bytes:
    bloom = PyBloom(LANDING_BITS, LANDING_K)
    for op in s.operations:
        bloom.add(op.path)
    bloom_bytes = bloom.to_bytes()
    owner, goal = s.owner.encode("utf-8"), s.goal.encode("utf-8")
    kinds = bytearray()
    modes = bytearray()
    sizes = bytearray()
    hashes = bytearray()
    for op in s.operations:
        kinds.append(op.op)
        modes.append(op.mode)
        sizes += struct.pack("<Q", op.size)
        if op.op == OP_WRITE:
            hashes += op.blob_hash
    op_paths = _path_block([op.path for op in s.operations])
    d_ats, d_lens, d_text = bytearray(), bytearray(), bytearray()
    for d in s.decisions:
        text = d.content.encode("utf-8")
        d_ats += struct.pack("<Q", d.at)
        d_lens += struct.pack("<I", len(text))
        d_text += text
    m_roles, m_ats, m_lens, m_text = bytearray(), bytearray(), bytearray(), bytearray()
    for m in s.conversation:
        text = m.content.encode("utf-8")
        m_roles.append(m.role)
        m_ats += struct.pack("<Q", m.at)
        m_lens += struct.pack("<I", len(text))
        m_text += text
    conflicts = _path_block(s.conflict_paths)
    header = b"MICS" + struct.pack(
        "<BBH16sQQQQQIIIIIIQQQQQ",
        1,
        s.state,
        0,
        s.id,
        s.base_position,
        s.landed_position,
        s.attempt_position,
        s.created_at,
        s.updated_at,
        len(s.operations),
        len(s.decisions),
        len(s.conversation),
        len(s.conflict_paths),
        len(owner),
        len(goal),
        len(op_paths),
        len(d_text),
        len(m_text),
        len(conflicts),
        len(bloom_bytes),
    )
    return b"".join(
        [header, owner, goal, kinds, modes, sizes, hashes, op_paths, d_ats, d_lens, d_text]
        + [m_roles, m_ats, m_lens, m_text, conflicts, bloom_bytes]
    )


def decode_session(data: bytes) -> SessionRecord:
    if data[:5] != b"MICS\x01":
        raise ValueError("bad magic")
    (
        _,
        state,
        _,
        sid,
        base,
        landed,
        attempt,
        created,
        updated,
        n,
        nd,
        nm,
        nc,
        lo,
        lg,
        lp,
        ld,
        lm,
        lc,
        lb,
    ) = struct.unpack_from("<BBH16sQQQQQIIIIIIQQQQQ", data, 4)
    at = 128

    def take(length: int) -> bytes:
        nonlocal at
        if at + length > len(data):
            raise ValueError("truncated")
        part = data[at : at + length]
        at += length
        return part

    owner = take(lo).decode("utf-8")
    goal = take(lg).decode("utf-8")
    kinds = take(n)
    modes = take(n)
    sizes_block = take(8 * n)
    writes = sum(1 for k in kinds if k == OP_WRITE)
    hashes = take(32 * writes)
    paths = take(lp).decode("utf-8").split("\0") if n else []
    operations = []
    h = 0
    for i in range(n):
        (size,) = struct.unpack_from("<Q", sizes_block, 8 * i)
        if kinds[i] == OP_WRITE:
            blob = hashes[h : h + 32]
            h += 32
        else:
            blob = None
        operations.append(Operation(kinds[i], paths[i], blob, modes[i], size))
    d_ats, d_lens, d_text = take(8 * nd), take(4 * nd), take(ld)
    decisions, t = [], 0
    for i in range(nd):
        (length,) = struct.unpack_from("<I", d_lens, 4 * i)
        (when,) = struct.unpack_from("<Q", d_ats, 8 * i)
        decisions.append(Decision(d_text[t : t + length].decode("utf-8"), when))
        t += length
    m_roles, m_ats, m_lens, m_text = take(nm), take(8 * nm), take(4 * nm), take(lm)
    conversation, t = [], 0
    for i in range(nm):
        (length,) = struct.unpack_from("<I", m_lens, 4 * i)
        (when,) = struct.unpack_from("<Q", m_ats, 8 * i)
        conversation.append(Message(m_roles[i], m_text[t : t + length].decode("utf-8"), when))
        t += length
    conflicts = take(lc).decode("utf-8").split("\0") if nc else []
    bits, k = validate_bloom(take(lb))
    if (bits, k) != (LANDING_BITS, LANDING_K) or at != len(data):
        raise ValueError("bad bloom or trailing bytes")
    return SessionRecord(
        sid,
        state,
        base,
        landed,
        attempt,
        owner,
        goal,
        created,
        updated,
        operations,
        decisions,
        conversation,
        conflicts,
    )


def encode_landing(r: LandingRecord) -> bytes:
    bloom = PyBloom(LANDING_BITS, LANDING_K)
    for p in r.paths:
        bloom.add(p)
    bloom_bytes = bloom.to_bytes()
    author, goal, paths = r.author.encode("utf-8"), r.goal.encode("utf-8"), _path_block(r.paths)
    header = b"MICL" + struct.pack(
        "<B3xQ16s32s32sQIIIIQQ",
        1,
        r.position,
        r.session_id,
        r.parent_tree,
        r.tree_hash,
        r.hlc,
        len(r.paths),
        len(author),
        len(goal),
        0,
        len(paths),
        len(bloom_bytes),
    )
    return header + author + goal + paths + bloom_bytes
