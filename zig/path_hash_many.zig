//! Path hashes of many paths at once: BLAKE3 of "path\x00" ‖ path, truncated to
//! 16 bytes, computed in SIMD lanes (one path per lane).
//!
//! Why: a bloom of thousands of paths spends nearly all its time hashing short
//! inputs, and the std BLAKE3 hasher works on one input at a time. Paths fit in
//! one BLAKE3 chunk (<= 1024 bytes with the prefix), so each lane is a plain
//! chain of block compressions; lanes with fewer blocks are masked. Longer keys
//! fall back to hash.pathHash. Equality with hash.pathHash is tested below.
const std = @import("std");
const hash = @import("hash.zig");

pub const lanes = @min(16, @max(4, std.simd.suggestVectorLength(u32) orelse 4));
const V = @Vector(lanes, u32);
const chunk_bytes = 1024;
const block_bytes = 64;
/// Longest key hashed in lanes: prefix + key must fit one chunk.
pub const lane_key_bytes_max = chunk_bytes - hash.path_prefix.len;

const chunk_start: u32 = 1;
const chunk_end: u32 = 2;
const root: u32 = 8;

const iv = [8]u32{ 0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19 };

const schedule = [7][16]u8{
    .{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
    .{ 2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8 },
    .{ 3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1 },
    .{ 10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6 },
    .{ 12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4 },
    .{ 9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7 },
    .{ 11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13 },
};

inline fn rotr(v: V, comptime n: comptime_int) V {
    return (v >> @splat(n)) | (v << @splat(32 - n));
}

inline fn g(s: *[16]V, comptime a: usize, comptime b: usize, comptime c: usize, comptime d: usize, x: V, y: V) void {
    s[a] +%= s[b] +% x;
    s[d] = rotr(s[d] ^ s[a], 16);
    s[c] +%= s[d];
    s[b] = rotr(s[b] ^ s[c], 12);
    s[a] +%= s[b] +% y;
    s[d] = rotr(s[d] ^ s[a], 8);
    s[c] +%= s[d];
    s[b] = rotr(s[b] ^ s[c], 7);
}

/// One compression per lane with counter 0; returns the first 8 output words.
fn compress(cv: [8]V, m: [16]V, block_len: V, flags: V) [8]V {
    var s: [16]V = .{
        cv[0],         cv[1],         cv[2],         cv[3],
        cv[4],         cv[5],         cv[6],         cv[7],
        @splat(iv[0]), @splat(iv[1]), @splat(iv[2]), @splat(iv[3]),
        @splat(0),     @splat(0),     block_len,     flags,
    };
    inline for (schedule) |sigma| {
        g(&s, 0, 4, 8, 12, m[sigma[0]], m[sigma[1]]);
        g(&s, 1, 5, 9, 13, m[sigma[2]], m[sigma[3]]);
        g(&s, 2, 6, 10, 14, m[sigma[4]], m[sigma[5]]);
        g(&s, 3, 7, 11, 15, m[sigma[6]], m[sigma[7]]);
        g(&s, 0, 5, 10, 15, m[sigma[8]], m[sigma[9]]);
        g(&s, 1, 6, 11, 12, m[sigma[10]], m[sigma[11]]);
        g(&s, 2, 7, 8, 13, m[sigma[12]], m[sigma[13]]);
        g(&s, 3, 4, 9, 14, m[sigma[14]], m[sigma[15]]);
    }
    var out: [8]V = undefined;
    inline for (0..8) |i| out[i] = s[i] ^ s[i + 8];
    return out;
}

/// Hashes up to `lanes` keys, each at most lane_key_bytes_max bytes.
fn hashLanes(keys: []const []const u8, out: [][hash.path_hash_bytes]u8) void {
    std.debug.assert(keys.len <= lanes and keys.len == out.len);
    var message_bytes: [lanes]usize = @splat(0);
    var blocks: [lanes]u32 = @splat(1);
    var max_blocks: u32 = 1;
    for (keys, 0..) |key, lane| {
        std.debug.assert(key.len <= lane_key_bytes_max);
        message_bytes[lane] = hash.path_prefix.len + key.len;
        blocks[lane] = @intCast(@max(1, (message_bytes[lane] + block_bytes - 1) / block_bytes));
        max_blocks = @max(max_blocks, blocks[lane]);
    }
    var cv: [8]V = undefined;
    inline for (0..8) |i| cv[i] = @splat(iv[i]);
    var block_index: u32 = 0;
    while (block_index < max_blocks) : (block_index += 1) {
        var words: [16][lanes]u32 = @splat(@splat(0));
        var block_len: [lanes]u32 = @splat(0);
        var flags: [lanes]u32 = @splat(0);
        var active: [lanes]bool = @splat(false);
        for (keys, 0..) |key, lane| {
            if (block_index >= blocks[lane]) continue; // this lane is done; masked below
            active[lane] = true;
            // The lane's 64-byte block of prefix ‖ key, zero-padded.
            var block: [block_bytes]u8 = @splat(0);
            const start = @as(usize, block_index) * block_bytes;
            const end = @min(message_bytes[lane], start + block_bytes);
            const prefix_len = hash.path_prefix.len;
            if (start < prefix_len) {
                // Only the first block holds the prefix (it is shorter than a block).
                @memcpy(block[0..prefix_len], hash.path_prefix);
                const key_end = end - prefix_len;
                @memcpy(block[prefix_len..][0..key_end], key[0..key_end]);
            } else {
                @memcpy(block[0 .. end - start], key[start - prefix_len .. end - prefix_len]);
            }
            for (0..16) |w| words[w][lane] = std.mem.readInt(u32, block[w * 4 ..][0..4], .little);
            block_len[lane] = @intCast(end - start);
            flags[lane] = (if (block_index == 0) chunk_start else 0) |
                (if (block_index + 1 == blocks[lane]) chunk_end | root else 0);
        }
        var m: [16]V = undefined;
        inline for (0..16) |w| m[w] = words[w];
        const next = compress(cv, m, block_len, flags);
        const mask: @Vector(lanes, bool) = active;
        inline for (0..8) |i| cv[i] = @select(u32, mask, next[i], cv[i]);
    }
    var words: [4][lanes]u32 = undefined;
    inline for (0..4) |i| words[i] = cv[i];
    for (out, 0..) |*digest, lane| {
        for (0..4) |i| std.mem.writeInt(u32, digest[i * 4 ..][0..4], words[i][lane], .little);
    }
}

/// Hashes every key of `keys`; `out` has the same length.
pub fn pathHashMany(keys: []const []const u8, out: [][hash.path_hash_bytes]u8) void {
    std.debug.assert(keys.len == out.len);
    var batch: [lanes][]const u8 = undefined;
    var batch_index: [lanes]usize = undefined;
    var batch_out: [lanes][hash.path_hash_bytes]u8 = undefined;
    var n: usize = 0;
    for (keys, 0..) |key, i| {
        if (key.len > lane_key_bytes_max) {
            out[i] = hash.pathHash(key);
            continue;
        }
        batch[n] = key;
        batch_index[n] = i;
        n += 1;
        if (n == lanes) {
            hashLanes(batch[0..n], batch_out[0..n]);
            for (0..n) |j| out[batch_index[j]] = batch_out[j];
            n = 0;
        }
    }
    if (n > 0) {
        hashLanes(batch[0..n], batch_out[0..n]);
        for (0..n) |j| out[batch_index[j]] = batch_out[j];
    }
}

test "lane hashes equal the std BLAKE3 path hash for every length" {
    var prng = std.Random.DefaultPrng.init(42);
    const random = prng.random();
    var storage: [64][1100]u8 = undefined;
    var keys: [64][]const u8 = undefined;
    var out: [64][hash.path_hash_bytes]u8 = undefined;
    var round: usize = 0;
    while (round < 40) : (round += 1) {
        const count = 1 + random.uintLessThan(usize, 64);
        for (0..count) |i| {
            const len = switch (random.uintLessThan(u8, 4)) {
                0 => random.uintLessThan(usize, 8),
                1 => 55 + random.uintLessThan(usize, 20), // around the first block boundary
                2 => random.uintLessThan(usize, 1100),
                else => lane_key_bytes_max - 2 + random.uintLessThan(usize, 5), // around the lane limit
            };
            random.bytes(storage[i][0..len]);
            keys[i] = storage[i][0..len];
        }
        pathHashMany(keys[0..count], out[0..count]);
        for (0..count) |i| try std.testing.expectEqual(hash.pathHash(keys[i]), out[i]);
    }
}
