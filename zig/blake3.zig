//! BLAKE3, plain unkeyed hashing with a 32-byte digest, many chunks at a time.
//!
//! Why not std.crypto.hash.Blake3: its wide kernel gathers the message words of
//! its lanes with scalar loads and lane-by-lane inserts (`transposeMsg`), which
//! caps it at about half the speed of the reference implementation on AVX-512.
//! Here a block of each lane is read with whole-vector loads and transposed with
//! @shuffle, and the parent nodes of a subtree are compressed `lanes` at a time
//! from chaining values kept word-major (one vector per CV word), so pairing two
//! children is a deinterleave shuffle rather than a transpose.
//!
//! The incremental hasher is the one of the BLAKE3 paper and reference code: a
//! stack of subtree CVs merged lazily on the bits of the chunk counter, so that
//! the last chunk (which may be the root) is never finalized before `final`.
//! Input is hashed in the largest whole subtrees (power-of-two chunk counts,
//! aligned to their size, at most subtree_chunks_max) that leave the last chunk
//! behind; anything smaller goes through single-chunk compression.
const std = @import("std");
const builtin = @import("builtin");
const assert = std.debug.assert;

pub const digest_bytes = 32;
pub const block_bytes = 64;
pub const chunk_bytes = 1024;
const chunk_blocks = chunk_bytes / block_bytes;

/// Lanes of the widest kernel: the target's u32 vector length (16 with AVX-512,
/// 8 with AVX2, 4 with SSE2 or NEON), never fewer than 4 (LLVM splits what the
/// target lacks into scalar operations).
pub const lanes_max = @min(16, @max(4, std.simd.suggestVectorLength(u32) orelse 4));
/// Largest subtree hashed wide in one go; its chunk CVs live on the stack
/// (8 words * 4 bytes * this = 4 KiB). Bigger inputs are several such subtrees
/// whose roots meet on the CV stack (one scalar parent per 128 chunks).
pub const subtree_chunks_max = 128;
/// 2^64 bytes are 2^54 chunks: the CV stack holds one CV per bit of the chunk
/// count, plus the one pushed before the lazy merge.
const cv_stack_depth_max = 54 + 1;

comptime {
    assert(std.math.isPowerOfTwo(lanes_max));
    assert(std.math.isPowerOfTwo(subtree_chunks_max));
    assert(subtree_chunks_max >= 2 * lanes_max);
    assert(chunk_blocks * block_bytes == chunk_bytes);
}

pub const flag_chunk_start: u32 = 1 << 0;
pub const flag_chunk_end: u32 = 1 << 1;
pub const flag_parent: u32 = 1 << 2;
pub const flag_root: u32 = 1 << 3;

pub const iv = [8]u32{ 0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19 };

/// Message word order of each of the 7 rounds.
const schedule = [7][16]u8{
    .{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
    .{ 2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8 },
    .{ 3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1 },
    .{ 10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6 },
    .{ 12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4 },
    .{ 9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7 },
    .{ 11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13 },
};

// ---- one block at a time: the four rows of the state as 4-lane vectors ----

const Row = @Vector(4, u32);

inline fn rotr(comptime V: type, v: V, comptime n: comptime_int) V {
    return (v >> @splat(n)) | (v << @splat(32 - n));
}

inline fn gRows(a: *Row, b: *Row, c: *Row, d: *Row, x: Row, y: Row) void {
    a.* +%= b.* +% x;
    d.* = rotr(Row, d.* ^ a.*, 16);
    c.* +%= d.*;
    b.* = rotr(Row, b.* ^ c.*, 12);
    a.* +%= b.* +% y;
    d.* = rotr(Row, d.* ^ a.*, 8);
    c.* +%= d.*;
    b.* = rotr(Row, b.* ^ c.*, 7);
}

/// The first 8 output words of one compression: the next CV, or the root digest.
fn compressBlock(cv: *const [8]u32, words: *const [16]u32, counter: u64, block_len: u32, flags: u32) [8]u32 {
    var a: Row = cv[0..4].*;
    var b: Row = cv[4..8].*;
    var c: Row = iv[0..4].*;
    var d: Row = .{ @truncate(counter), @truncate(counter >> 32), block_len, flags };
    inline for (schedule) |s| {
        const m = words;
        gRows(&a, &b, &c, &d, .{ m[s[0]], m[s[2]], m[s[4]], m[s[6]] }, .{ m[s[1]], m[s[3]], m[s[5]], m[s[7]] });
        // Diagonals into columns: lane i of b, c, d moves to lane i - 1, i - 2, i - 3.
        b = @shuffle(u32, b, undefined, [4]i32{ 1, 2, 3, 0 });
        c = @shuffle(u32, c, undefined, [4]i32{ 2, 3, 0, 1 });
        d = @shuffle(u32, d, undefined, [4]i32{ 3, 0, 1, 2 });
        gRows(&a, &b, &c, &d, .{ m[s[8]], m[s[10]], m[s[12]], m[s[14]] }, .{ m[s[9]], m[s[11]], m[s[13]], m[s[15]] });
        b = @shuffle(u32, b, undefined, [4]i32{ 3, 0, 1, 2 });
        c = @shuffle(u32, c, undefined, [4]i32{ 2, 3, 0, 1 });
        d = @shuffle(u32, d, undefined, [4]i32{ 1, 2, 3, 0 });
    }
    const low: [4]u32 = a ^ c;
    const high: [4]u32 = b ^ d;
    return low ++ high;
}

fn blockWords(block: *const [block_bytes]u8) [16]u32 {
    var words: [16]u32 = undefined;
    for (&words, 0..) |*word, i| word.* = std.mem.readInt(u32, block[i * 4 ..][0..4], .little);
    return words;
}

fn parentWords(left: *const [8]u32, right: *const [8]u32) [16]u32 {
    return left.* ++ right.*;
}

fn parentCv(left: *const [8]u32, right: *const [8]u32) [8]u32 {
    return compressBlock(&iv, &parentWords(left, right), 0, block_bytes, flag_parent);
}

/// CV of one whole chunk that is not the root.
fn chunkCv(chunk: *const [chunk_bytes]u8, counter: u64) [8]u32 {
    var cv = iv;
    for (0..chunk_blocks) |i| {
        var flags: u32 = 0;
        if (i == 0) flags |= flag_chunk_start;
        if (i == chunk_blocks - 1) flags |= flag_chunk_end;
        cv = compressBlock(&cv, &blockWords(chunk[i * block_bytes ..][0..block_bytes]), counter, block_bytes, flags);
    }
    return cv;
}

// ---- many at a time: one input per lane, state word w of every lane in one vector ----

inline fn g(comptime V: type, s: *[16]V, comptime a: usize, comptime b: usize, comptime c: usize, comptime d: usize, x: V, y: V) void {
    s[a] +%= s[b] +% x;
    s[d] = rotr(V, s[d] ^ s[a], 16);
    s[c] +%= s[d];
    s[b] = rotr(V, s[b] ^ s[c], 12);
    s[a] +%= s[b] +% y;
    s[d] = rotr(V, s[d] ^ s[a], 8);
    s[c] +%= s[d];
    s[b] = rotr(V, s[b] ^ s[c], 7);
}

/// One compression per lane, each lane with its own counter, block length and
/// flags; returns the chaining values (the first 8 output words) per lane. Also
/// the kernel of path_hash_many.zig, whose lanes are separate short inputs.
pub fn compressWide(comptime V: type, cv: [8]V, m: *const [16]V, counter_low: V, counter_high: V, block_len: V, flags: V) [8]V {
    var s: [16]V = .{
        cv[0],         cv[1],         cv[2],         cv[3],
        cv[4],         cv[5],         cv[6],         cv[7],
        @splat(iv[0]), @splat(iv[1]), @splat(iv[2]), @splat(iv[3]),
        counter_low,   counter_high,  block_len,     flags,
    };
    inline for (schedule) |sigma| {
        g(V, &s, 0, 4, 8, 12, m[sigma[0]], m[sigma[1]]);
        g(V, &s, 1, 5, 9, 13, m[sigma[2]], m[sigma[3]]);
        g(V, &s, 2, 6, 10, 14, m[sigma[4]], m[sigma[5]]);
        g(V, &s, 3, 7, 11, 15, m[sigma[6]], m[sigma[7]]);
        g(V, &s, 0, 5, 10, 15, m[sigma[8]], m[sigma[9]]);
        g(V, &s, 1, 6, 11, 12, m[sigma[10]], m[sigma[11]]);
        g(V, &s, 2, 7, 8, 13, m[sigma[12]], m[sigma[13]]);
        g(V, &s, 3, 4, 9, 14, m[sigma[14]], m[sigma[15]]);
    }
    var out: [8]V = undefined;
    inline for (0..8) |i| out[i] = s[i] ^ s[i + 8];
    return out;
}

/// Shuffle mask of one transpose step: rows r and r | bit exchange the elements
/// whose column has `bit` set in r, and has it clear in r | bit. After one step
/// per bit, element (row, column) is where (column, row) was.
fn transposeMask(comptime lanes: comptime_int, comptime bit: comptime_int, comptime upper_row: bool) @Vector(lanes, i32) {
    @setEvalBranchQuota(10_000);
    var mask: [lanes]i32 = undefined;
    for (&mask, 0..) |*m, column| {
        if (!upper_row) {
            m.* = if (column & bit == 0) column else ~@as(i32, column ^ bit);
        } else {
            m.* = if (column & bit == 0) column | bit else ~@as(i32, column);
        }
    }
    return mask;
}

inline fn transpose(comptime lanes: comptime_int, rows: *[lanes]@Vector(lanes, u32)) void {
    comptime var bit = 1;
    inline while (bit < lanes) : (bit *= 2) {
        inline for (0..lanes) |r| {
            if (r & bit == 0) {
                const lower = rows[r];
                const upper = rows[r | bit];
                rows[r] = @shuffle(u32, lower, upper, transposeMask(lanes, bit, false));
                rows[r | bit] = @shuffle(u32, lower, upper, transposeMask(lanes, bit, true));
            }
        }
    }
}

inline fn loadLittle(comptime lanes: comptime_int, bytes: *const [lanes * 4]u8) @Vector(lanes, u32) {
    // A pointer cast, not @bitCast of the array: that one is lowered byte by byte.
    const v = @as(*align(1) const @Vector(lanes, u32), @ptrCast(bytes)).*;
    return if (builtin.cpu.arch.endian() == .little) v else @byteSwap(v);
}

/// Message words of block `block_index` of one chunk per lane: m[w][lane].
/// Each lane's block is `16 / lanes` vector loads; each group of `lanes` such
/// vectors (one per lane) is a lanes x lanes transpose.
inline fn chunkMessage(comptime lanes: comptime_int, chunks: *const [lanes]*const [chunk_bytes]u8, block_index: usize) [16]@Vector(lanes, u32) {
    assert(block_index < chunk_blocks);
    // Ask for each lane's block 4 ahead, as the reference implementation does: the lanes
    // are `lanes` streams, more than the hardware prefetcher follows alone. Past the
    // last block this names the next chunk or past the input: a prefetch never faults.
    // The address is integer arithmetic: `+` on a pointer is an in-bounds offset
    // (LLVM `getelementptr inbounds`), and past the end of the input it is not.
    inline for (chunks) |chunk| {
        const ahead = @intFromPtr(chunk) +% (block_index + 4) * block_bytes;
        @prefetch(@as([*]allowzero const u8, @ptrFromInt(ahead)), .{});
    }
    var m: [16]@Vector(lanes, u32) = undefined;
    inline for (0..16 / lanes) |group| {
        var rows: [lanes]@Vector(lanes, u32) = undefined;
        inline for (chunks, 0..) |chunk, lane| {
            const offset = block_index * block_bytes + group * lanes * 4;
            rows[lane] = loadLittle(lanes, chunk[offset..][0 .. lanes * 4]);
        }
        transpose(lanes, &rows);
        inline for (0..lanes) |j| m[group * lanes + j] = rows[j];
    }
    return m;
}

/// CVs of one whole chunk per lane, lane i numbered `counter + i`, none of
/// them the root. Word-major: result[w][lane].
fn chunkCvsWide(comptime lanes: comptime_int, chunks: *const [lanes]*const [chunk_bytes]u8, counter: u64) [8]@Vector(lanes, u32) {
    const V = @Vector(lanes, u32);
    const counters = @as(@Vector(lanes, u64), @splat(counter)) +% std.simd.iota(u64, lanes);
    const counter_low: V = @truncate(counters);
    const counter_high: V = @truncate(counters >> @splat(32));
    var cv: [8]V = undefined;
    inline for (0..8) |w| cv[w] = @splat(iv[w]);
    for (0..chunk_blocks) |block_index| {
        var flags: u32 = 0;
        if (block_index == 0) flags |= flag_chunk_start;
        if (block_index == chunk_blocks - 1) flags |= flag_chunk_end;
        const m = chunkMessage(lanes, chunks, block_index);
        cv = compressWide(V, cv, &m, counter_low, counter_high, @splat(block_bytes), @splat(flags));
    }
    return cv;
}

/// CVs of a subtree, word-major: columns[w][i] is word w of the i-th CV.
const Columns = [8][subtree_chunks_max]u32;

fn storeColumns(comptime lanes: comptime_int, columns: *Columns, first: usize, cvs: [8]@Vector(lanes, u32)) void {
    inline for (0..8) |w| columns[w][first..][0..lanes].* = cvs[w];
}

fn loadColumn(columns: *const Columns, index: usize) [8]u32 {
    var cv: [8]u32 = undefined;
    inline for (0..8) |w| cv[w] = columns[w][index];
    return cv;
}

fn storeColumn(columns: *Columns, index: usize, cv: [8]u32) void {
    inline for (0..8) |w| columns[w][index] = cv[w];
}

/// Parents of the `lanes` CV pairs that start at column `first_left` (pairs
/// (first_left + 2p, first_left + 2p + 1)), none of them the root. Pairing is a
/// deinterleave of two vectors per CV word.
fn parentCvsWide(comptime lanes: comptime_int, columns: *const Columns, first_left: usize) [8]@Vector(lanes, u32) {
    const V = @Vector(lanes, u32);
    const evens, const odds = comptime blk: {
        var evens: [lanes]i32 = undefined;
        var odds: [lanes]i32 = undefined;
        for (0..lanes) |i| {
            evens[i] = if (2 * i < lanes) 2 * i else ~@as(i32, 2 * i - lanes);
            odds[i] = if (2 * i + 1 < lanes) 2 * i + 1 else ~@as(i32, 2 * i + 1 - lanes);
        }
        break :blk .{ evens, odds };
    };
    var m: [16]V = undefined;
    inline for (0..8) |w| {
        const pairs: *const [2 * lanes]u32 = columns[w][first_left..][0 .. 2 * lanes];
        const low: V = pairs[0..lanes].*;
        const high: V = pairs[lanes..].*;
        m[w] = @shuffle(u32, low, high, evens); // left child's word w
        m[w + 8] = @shuffle(u32, low, high, odds); // right child's word w
    }
    var cv: [8]V = undefined;
    inline for (0..8) |w| cv[w] = @splat(iv[w]);
    return compressWide(V, cv, &m, @splat(0), @splat(0), @splat(block_bytes), @splat(flag_parent));
}

fn laneChunks(comptime lanes: comptime_int, chunks: []const u8, first: usize, count: usize) [lanes]*const [chunk_bytes]u8 {
    assert(count >= 1 and count <= lanes);
    var lane_chunks: [lanes]*const [chunk_bytes]u8 = undefined;
    // Lanes past `count` repeat the last chunk; their CVs are dropped.
    for (&lane_chunks, 0..) |*chunk, lane| chunk.* = chunks[(first + @min(lane, count - 1)) * chunk_bytes ..][0..chunk_bytes];
    return lane_chunks;
}

/// Chunk CVs of `chunks` (whole chunks, the first numbered `counter`) into
/// columns[.][0..count]: lanes_max at a time; the rest (fewer) in one call of
/// the narrowest kernel that holds them, or alone if it is one chunk.
fn chunkCvsInto(columns: *Columns, chunks: []const u8, counter: u64) void {
    assert(chunks.len % chunk_bytes == 0);
    const count = chunks.len / chunk_bytes;
    assert(count <= subtree_chunks_max);
    var done: usize = 0;
    while (count - done >= lanes_max) : (done += lanes_max) {
        const group = laneChunks(lanes_max, chunks, done, lanes_max);
        storeColumns(lanes_max, columns, done, chunkCvsWide(lanes_max, &group, counter + done));
    }
    const rest = count - done;
    if (rest == 1) storeColumn(columns, done, chunkCv(chunks[done * chunk_bytes ..][0..chunk_bytes], counter + done));
    if (rest <= 1) return;
    comptime var lanes = 2;
    inline while (lanes <= lanes_max) : (lanes *= 2) {
        if (rest <= lanes and rest > lanes / 2) {
            const group = laneChunks(lanes, chunks, done, rest);
            const cvs = chunkCvsWide(lanes, &group, counter + done);
            inline for (0..8) |w| {
                const words: [lanes]u32 = cvs[w];
                @memcpy(columns[w][done..][0..rest], words[0..rest]);
            }
            return;
        }
    }
    unreachable; // 2 <= rest < lanes_max
}

/// Replaces columns[.][base..base + 2 * pair_count] by the parents of its
/// pairs, written to columns[.][base..base + pair_count], in place.
fn parentCvsInto(columns: *Columns, base: usize, pair_count: usize) void {
    assert(base + 2 * pair_count <= subtree_chunks_max);
    var done: usize = 0;
    comptime var lanes = lanes_max;
    // A group reads pairs [done, done + lanes) before writing parents [done, done + lanes):
    // later groups read only at or past base + 2 * (done + lanes), above every write.
    inline while (lanes >= 2) : (lanes /= 2) {
        while (pair_count - done >= lanes) : (done += lanes) {
            storeColumns(lanes, columns, base + done, parentCvsWide(lanes, columns, base + 2 * done));
        }
    }
    if (done < pair_count) {
        const left = loadColumn(columns, base + 2 * done);
        const right = loadColumn(columns, base + 2 * done + 1);
        storeColumn(columns, base + done, parentCv(&left, &right));
    }
}

/// The two child CVs of the root of the subtree whose chunk CVs are
/// columns[.][base..base + chunk_count] (a power of two >= 2). The children,
/// not the subtree root: the subtree may be the whole input, whose root is
/// finalized differently. Overwrites those columns.
fn subtreeChildren(columns: *Columns, base: usize, chunk_count: usize) [2][8]u32 {
    assert(chunk_count >= 2 and std.math.isPowerOfTwo(chunk_count));
    assert(base + chunk_count <= subtree_chunks_max);
    var count = chunk_count;
    while (count > 2) : (count /= 2) parentCvsInto(columns, base, count / 2);
    return .{ loadColumn(columns, base), loadColumn(columns, base + 1) };
}

/// Consecutive whole subtrees of the input hashed as one batch of chunks, so
/// that the small subtrees of an unaligned start (1, 2, 4, ... chunks, as when
/// the blob header shifts every update) still fill the lanes.
const Run = struct {
    /// The subtree sizes, in chunks, in input order; they add up to chunk_count.
    subtree_chunks: [run_subtrees_max]u64,
    subtree_count: usize,
    chunk_count: u64,

    /// Sizes never grow then shrink more than once over subtree_chunks_max
    /// chunks: at most 2 * log2(subtree_chunks_max) + 1 subtrees.
    const run_subtrees_max = 2 * std.math.log2_int(usize, subtree_chunks_max) + 1;

    /// The run at the start of `input`, the first chunk numbered `counter`.
    /// It ends at the next multiple of subtree_chunks_max at the latest, so
    /// that an unaligned start costs one run of small subtrees, not every run.
    /// Each subtree is the largest power of two of chunks that fits, starts at
    /// a multiple of its size (as every subtree of the BLAKE3 tree does) and
    /// leaves at least one byte after it or ends the input with 2+ chunks:
    /// the last chunk alone is never hashed before `final`.
    fn plan(input_len: usize, counter: u64) Run {
        var run: Run = .{ .subtree_chunks = undefined, .subtree_count = 0, .chunk_count = 0 };
        const run_chunks_max = subtree_chunks_max - counter % subtree_chunks_max;
        while (run.subtree_count < run_subtrees_max) {
            const left_bytes = input_len - run.chunk_count * chunk_bytes;
            if (left_bytes <= chunk_bytes) break;
            const fit_chunks = @min(left_bytes / chunk_bytes, run_chunks_max - run.chunk_count);
            if (fit_chunks == 0) break;
            var size: u64 = std.math.floorPowerOfTwo(u64, fit_chunks);
            while ((counter + run.chunk_count) & (size - 1) != 0) size /= 2;
            run.subtree_chunks[run.subtree_count] = size;
            run.subtree_count += 1;
            run.chunk_count += size;
        }
        assert(run.chunk_count <= subtree_chunks_max);
        return run;
    }
};

// ---- the incremental hasher ----

/// The last compression of a node, kept unfinished: it is a CV, or the root.
const Output = struct {
    cv: [8]u32,
    words: [16]u32,
    counter: u64,
    block_len: u32,
    flags: u32,

    fn chainingValue(self: *const Output) [8]u32 {
        return compressBlock(&self.cv, &self.words, self.counter, self.block_len, self.flags);
    }

    fn root(self: *const Output, out: *[digest_bytes]u8) void {
        const words = compressBlock(&self.cv, &self.words, 0, self.block_len, self.flags | flag_root);
        for (words, 0..) |word, i| std.mem.writeInt(u32, out[i * 4 ..][0..4], word, .little);
    }

    fn parent(left: *const [8]u32, right: *const [8]u32) Output {
        return .{ .cv = iv, .words = parentWords(left, right), .counter = 0, .block_len = block_bytes, .flags = flag_parent };
    }
};

/// The chunk being filled: up to 15 compressed blocks and the last one buffered.
const ChunkState = struct {
    cv: [8]u32,
    counter: u64,
    /// Zero past block_len: the last block is compressed zero-padded.
    block: [block_bytes]u8,
    block_len: u8,
    blocks_compressed: u8,

    fn init(counter: u64) ChunkState {
        return .{ .cv = iv, .counter = counter, .block = @splat(0), .block_len = 0, .blocks_compressed = 0 };
    }

    fn len(self: *const ChunkState) usize {
        return @as(usize, self.blocks_compressed) * block_bytes + self.block_len;
    }

    fn startFlag(self: *const ChunkState) u32 {
        return if (self.blocks_compressed == 0) flag_chunk_start else 0;
    }

    /// Appends at most the room left in the chunk. A block is compressed only
    /// once more input follows it, so the chunk's last block stays buffered.
    fn update(self: *ChunkState, input: []const u8) void {
        assert(input.len <= chunk_bytes - self.len());
        var rest = input;
        while (rest.len > 0) {
            if (self.block_len == block_bytes) {
                self.cv = compressBlock(&self.cv, &blockWords(&self.block), self.counter, block_bytes, self.startFlag());
                self.blocks_compressed += 1;
                self.block = @splat(0);
                self.block_len = 0;
            }
            if (self.block_len == 0 and rest.len > block_bytes) {
                // A whole block with more behind it: compress it from the input, no copy.
                self.cv = compressBlock(&self.cv, &blockWords(rest[0..block_bytes]), self.counter, block_bytes, self.startFlag());
                self.blocks_compressed += 1;
                rest = rest[block_bytes..];
                continue;
            }
            const take = @min(block_bytes - self.block_len, rest.len);
            @memcpy(self.block[self.block_len..][0..take], rest[0..take]);
            self.block_len += @intCast(take);
            rest = rest[take..];
        }
        assert(self.blocks_compressed < chunk_blocks);
    }

    fn output(self: *const ChunkState) Output {
        return .{
            .cv = self.cv,
            .words = blockWords(&self.block),
            .counter = self.counter,
            .block_len = self.block_len,
            .flags = self.startFlag() | flag_chunk_end,
        };
    }
};

/// Streaming BLAKE3. `final` does not consume the state: updates may follow.
pub const Hasher = struct {
    chunk: ChunkState,
    cv_stack: [cv_stack_depth_max][8]u32,
    cv_stack_len: u8,

    pub fn init() Hasher {
        return .{ .chunk = ChunkState.init(0), .cv_stack = undefined, .cv_stack_len = 0 };
    }

    /// Merges the stack down to one CV per set bit of `chunk_count`, the number
    /// of chunks before the next one: what remains are the roots of complete
    /// subtrees that a later chunk cannot join.
    fn mergeCvStack(self: *Hasher, chunk_count: u64) void {
        const merged_len = @popCount(chunk_count);
        while (self.cv_stack_len > merged_len) {
            const top = self.cv_stack_len;
            self.cv_stack[top - 2] = parentCv(&self.cv_stack[top - 2], &self.cv_stack[top - 1]);
            self.cv_stack_len -= 1;
        }
    }

    /// Pushes the CV of the subtree that starts at chunk `counter`, merging the
    /// ones before it first (never the new one: it may be the last).
    fn pushCv(self: *Hasher, cv: [8]u32, counter: u64) void {
        self.mergeCvStack(counter);
        assert(self.cv_stack_len < cv_stack_depth_max);
        self.cv_stack[self.cv_stack_len] = cv;
        self.cv_stack_len += 1;
    }

    pub fn update(self: *Hasher, input: []const u8) void {
        var rest = input;
        if (self.chunk.len() > 0) {
            const take = @min(chunk_bytes - self.chunk.len(), rest.len);
            self.chunk.update(rest[0..take]);
            rest = rest[take..];
            if (rest.len == 0) return;
            // The chunk is full and more input follows: it is not the last one.
            const counter = self.chunk.counter;
            self.pushCv(self.chunk.output().chainingValue(), counter);
            self.chunk = ChunkState.init(counter + 1);
        }
        // Whole subtrees while more than a chunk remains, a run of them at a time.
        while (rest.len > chunk_bytes) {
            const counter = self.chunk.counter;
            const run = Run.plan(rest.len, counter);
            assert(run.chunk_count > 0);
            const run_bytes: usize = @intCast(run.chunk_count * chunk_bytes);
            var columns: Columns = undefined;
            chunkCvsInto(&columns, rest[0..run_bytes], counter);
            var base: usize = 0;
            for (run.subtree_chunks[0..run.subtree_count]) |size| {
                if (size == 1) {
                    self.pushCv(loadColumn(&columns, base), counter + base);
                } else {
                    const children = subtreeChildren(&columns, base, @intCast(size));
                    self.pushCv(children[0], counter + base);
                    self.pushCv(children[1], counter + base + size / 2);
                }
                base += @intCast(size);
            }
            self.chunk.counter += run.chunk_count;
            rest = rest[run_bytes..];
        }
        if (rest.len > 0) {
            self.chunk.update(rest);
            self.mergeCvStack(self.chunk.counter);
        }
    }

    pub fn final(self: *const Hasher, out: *[digest_bytes]u8) void {
        if (self.cv_stack_len == 0) return self.chunk.output().root(out);
        var output: Output = undefined;
        var remaining: usize = self.cv_stack_len;
        if (self.chunk.len() > 0) {
            output = self.chunk.output();
        } else {
            // The input ended with a whole subtree: its two children are on top.
            assert(remaining >= 2);
            remaining -= 2;
            output = Output.parent(&self.cv_stack[remaining], &self.cv_stack[remaining + 1]);
        }
        while (remaining > 0) {
            remaining -= 1;
            const right = output.chainingValue();
            output = Output.parent(&self.cv_stack[remaining], &right);
        }
        output.root(out);
    }
};

pub fn hash(input: []const u8, out: *[digest_bytes]u8) void {
    var hasher = Hasher.init();
    hasher.update(input);
    hasher.final(out);
}

// ---- tests ----

const testing = std.testing;
const StdBlake3 = std.crypto.hash.Blake3;

fn stdHash(input: []const u8) [digest_bytes]u8 {
    var out: [digest_bytes]u8 = undefined;
    StdBlake3.hash(input, &out, .{});
    return out;
}

fn oneShot(input: []const u8) [digest_bytes]u8 {
    var out: [digest_bytes]u8 = undefined;
    hash(input, &out);
    return out;
}

/// Streams `input` in updates of `step` bytes, after a first update of `first` bytes.
fn streamed(input: []const u8, first: usize, step: usize) [digest_bytes]u8 {
    var hasher = Hasher.init();
    var offset = @min(first, input.len);
    hasher.update(input[0..offset]);
    while (offset < input.len) {
        const end = @min(input.len, offset + step);
        hasher.update(input[offset..end]);
        offset = end;
    }
    var out: [digest_bytes]u8 = undefined;
    hasher.final(&out);
    return out;
}

/// Input byte i is i % 251, as in the official test vectors; other tests use it too.
fn fillPattern(bytes: []u8) void {
    for (bytes, 0..) |*byte, i| byte.* = @intCast(i % 251);
}

const split_steps = [_]usize{ 1, 63, 64, 65, 1023, 1024, 1025, 16 * 1024, 97, 1031, 4099, 256 * 1024 };

test "a lanes x lanes transpose of shuffles moves (r, c) to (c, r)" {
    inline for (.{ 2, 4, 8, 16 }) |lanes| {
        var rows: [lanes]@Vector(lanes, u32) = undefined;
        for (0..lanes) |r| {
            var row: [lanes]u32 = undefined;
            for (&row, 0..) |*x, c| x.* = @intCast(r * 100 + c);
            rows[r] = row;
        }
        transpose(lanes, &rows);
        for (0..lanes) |r| {
            const row: [lanes]u32 = rows[r];
            for (row, 0..) |x, c| try testing.expectEqual(@as(u32, @intCast(c * 100 + r)), x);
        }
    }
}

test "official test vectors (first 32 bytes, hard-coded from BLAKE3-team test_vectors.json)" {
    const cases = [_]struct { len: usize, hex: *const [64]u8 }{
        .{ .len = 0, .hex = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262" },
        .{ .len = 1, .hex = "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213" },
        .{ .len = 1024, .hex = "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7" },
        .{ .len = 1025, .hex = "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444" },
        .{ .len = 2048, .hex = "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a" },
        .{ .len = 4096, .hex = "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969" },
        .{ .len = 31744, .hex = "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47" },
        .{ .len = 102400, .hex = "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085" },
    };
    var input: [102400]u8 = undefined;
    fillPattern(&input);
    for (cases) |case| {
        var expected: [digest_bytes]u8 = undefined;
        _ = try std.fmt.hexToBytes(&expected, case.hex);
        try testing.expectEqual(expected, oneShot(input[0..case.len]));
        try testing.expectEqual(expected, streamed(input[0..case.len], 0, 251));
    }
}

test "every official test vector length agrees with std, one-shot and streamed" {
    const lengths = [_]usize{ 0, 1, 1023, 1024, 1025, 2048, 2049, 3072, 3073, 4096, 4097, 5120, 5121, 6144, 6145, 7168, 7169, 8192, 8193, 16384, 31744, 102400 };
    var input: [102400]u8 = undefined;
    fillPattern(&input);
    for (lengths) |len| {
        const expected = stdHash(input[0..len]);
        try testing.expectEqual(expected, oneShot(input[0..len]));
        for (split_steps) |step| try testing.expectEqual(expected, streamed(input[0..len], 0, step));
    }
}

test "every length up to 10 KiB agrees with std, one-shot and in several splits" {
    const len_max = 10 * 1024 + 17;
    var input: [len_max]u8 = undefined;
    fillPattern(&input);
    for (0..len_max + 1) |len| {
        const expected = stdHash(input[0..len]);
        try testing.expectEqual(expected, oneShot(input[0..len]));
        // Splits at block and chunk edges and off them, starting aligned and not.
        try testing.expectEqual(expected, streamed(input[0..len], 0, 1024));
        try testing.expectEqual(expected, streamed(input[0..len], 9, 1024));
        try testing.expectEqual(expected, streamed(input[0..len], 0, 1031));
        if (len % 7 == 0) {
            for (split_steps) |step| try testing.expectEqual(expected, streamed(input[0..len], 0, step));
        }
        if (len <= 3 * 1024 + 1) try testing.expectEqual(expected, streamed(input[0..len], 0, 1));
    }
}

test "larger lengths around chunk, lane and subtree edges agree with std in every split" {
    const k = chunk_bytes;
    const mib = 1024 * 1024;
    const lengths = [_]usize{
        k - 1,   k,      k + 1,      16 * k - 1,    16 * k,  16 * k + 1,  17 * k,      31 * k,
        32 * k,  33 * k, 33 * k + 5, 127 * k,       128 * k, 129 * k + 1, 255 * k + 3, 256 * k + 1,
        mib - 1, mib,    mib + 1,    3 * mib + 517, 5 * mib,
    };
    const input = try testing.allocator.alloc(u8, lengths[lengths.len - 1]);
    defer testing.allocator.free(input);
    for (input, 0..) |*byte, i| byte.* = @truncate(i *% 2654435761 >> 13);
    for (lengths) |len| {
        const expected = stdHash(input[0..len]);
        try testing.expectEqual(expected, oneShot(input[0..len]));
        for (split_steps) |step| {
            if (step == 1 and len > mib + 1) continue; // a byte at a time: slow, and covered above
            try testing.expectEqual(expected, streamed(input[0..len], 0, step));
        }
        // The blob hash feeds a 5-byte tag and a varint first: every later update starts unaligned.
        for ([_]usize{ 1, 6, 9, 14, 1023 }) |first| {
            try testing.expectEqual(expected, streamed(input[0..len], first, 256 * 1024));
            try testing.expectEqual(expected, streamed(input[0..len], first, 16 * 1024));
            try testing.expectEqual(expected, streamed(input[0..len], first, 4099));
        }
    }
}

test "final does not consume the state, and a copied hasher is independent" {
    var input: [40 * 1024]u8 = undefined;
    fillPattern(&input);
    var hasher = Hasher.init();
    var out: [digest_bytes]u8 = undefined;
    hasher.final(&out);
    try testing.expectEqual(stdHash(""), out);
    var offset: usize = 0;
    for ([_]usize{ 3, 2048, 1, 16 * 1024, 1021, 7000 }) |step| {
        hasher.update(input[offset..][0..step]);
        offset += step;
        hasher.final(&out);
        try testing.expectEqual(stdHash(input[0..offset]), out);
        const copy = hasher;
        hasher.update(input[offset..]);
        hasher.final(&out);
        try testing.expectEqual(stdHash(&input), out);
        hasher = copy;
    }
}

// A plain reference compression, written as in the BLAKE3 paper (a 16-word state,
// the message permuted between rounds), independent of the row and wide kernels.

const reference_permutation = [16]u8{ 2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8 };

fn referenceG(state: *[16]u32, a: usize, b: usize, c: usize, d: usize, x: u32, y: u32) void {
    state[a] = state[a] +% state[b] +% x;
    state[d] = std.math.rotr(u32, state[d] ^ state[a], 16);
    state[c] = state[c] +% state[d];
    state[b] = std.math.rotr(u32, state[b] ^ state[c], 12);
    state[a] = state[a] +% state[b] +% y;
    state[d] = std.math.rotr(u32, state[d] ^ state[a], 8);
    state[c] = state[c] +% state[d];
    state[b] = std.math.rotr(u32, state[b] ^ state[c], 7);
}

fn referenceCompress(cv: [8]u32, block: [16]u32, counter: u64, flags: u32) [8]u32 {
    var state = cv ++ iv[0..4].* ++ [4]u32{ @truncate(counter), @truncate(counter >> 32), block_bytes, flags };
    var m = block;
    for (0..7) |_| {
        referenceG(&state, 0, 4, 8, 12, m[0], m[1]);
        referenceG(&state, 1, 5, 9, 13, m[2], m[3]);
        referenceG(&state, 2, 6, 10, 14, m[4], m[5]);
        referenceG(&state, 3, 7, 11, 15, m[6], m[7]);
        referenceG(&state, 0, 5, 10, 15, m[8], m[9]);
        referenceG(&state, 1, 6, 11, 12, m[10], m[11]);
        referenceG(&state, 2, 7, 8, 13, m[12], m[13]);
        referenceG(&state, 3, 4, 9, 14, m[14], m[15]);
        var permuted: [16]u32 = undefined;
        for (&permuted, reference_permutation) |*word, from| word.* = m[from];
        m = permuted;
    }
    var out: [8]u32 = undefined;
    for (&out, 0..) |*word, i| word.* = state[i] ^ state[i + 8];
    return out;
}

fn referenceChunkCv(chunk: *const [chunk_bytes]u8, counter: u64) [8]u32 {
    var cv = iv;
    for (0..chunk_blocks) |i| {
        var block: [16]u32 = undefined;
        for (&block, 0..) |*word, w| word.* = std.mem.readInt(u32, chunk[i * block_bytes + w * 4 ..][0..4], .little);
        const start = if (i == 0) flag_chunk_start else 0;
        const end = if (i == chunk_blocks - 1) flag_chunk_end else 0;
        cv = referenceCompress(cv, block, counter, start | end);
    }
    return cv;
}

test "every kernel width, not only this CPU's, agrees with the plain reference compression" {
    // The hashing tests run only the widths up to lanes_max of the CPU the tests are
    // built for: this runs 2, 4, 8 and 16 lanes on any CPU, from unaligned input, with
    // chunk counters whose high word is set or carries between lanes (past 4 TiB).
    var buffer: [16 * chunk_bytes + 1]u8 = undefined;
    for (&buffer, 0..) |*byte, i| byte.* = @truncate(i *% 2654435761 >> 13);
    const bytes = buffer[1..];
    var columns: Columns = undefined;
    for (&columns, 0..) |*column, w| {
        for (column, 0..) |*word, i| word.* = @truncate((w * subtree_chunks_max + i + 1) *% 0x9E3779B97F4A7C15 >> 17);
    }
    inline for (.{ 2, 4, 8, 16 }) |lanes| {
        var chunks: [lanes]*const [chunk_bytes]u8 = undefined;
        for (&chunks, 0..) |*chunk, lane| chunk.* = bytes[lane * chunk_bytes ..][0..chunk_bytes];
        for ([_]u64{ 0, 7, (1 << 32) - lanes / 2, (1 << 54) - lanes }) |counter| {
            const cvs = chunkCvsWide(lanes, &chunks, counter);
            for (chunks, 0..) |chunk, lane| {
                const expected = referenceChunkCv(chunk, counter + lane);
                try testing.expectEqual(expected, chunkCv(chunk, counter + lane));
                var wide: [8]u32 = undefined;
                for (&wide, cvs) |*word, vector| word.* = @as([lanes]u32, vector)[lane];
                try testing.expectEqual(expected, wide);
            }
        }
        const first_left = 6; // any column, not only a multiple of the width
        const parents = parentCvsWide(lanes, &columns, first_left);
        for (0..lanes) |pair| {
            const left = loadColumn(&columns, first_left + 2 * pair);
            const right = loadColumn(&columns, first_left + 2 * pair + 1);
            const expected = referenceCompress(iv, left ++ right, 0, flag_parent);
            try testing.expectEqual(expected, parentCv(&left, &right));
            var wide: [8]u32 = undefined;
            for (&wide, parents) |*word, vector| word.* = @as([lanes]u32, vector)[pair];
            try testing.expectEqual(expected, wide);
        }
    }
}
