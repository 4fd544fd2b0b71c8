//! Path hashes of many paths at once: BLAKE3 of "path\x00" ‖ path, truncated to
//! 16 bytes, computed in SIMD lanes (one path per lane).
//!
//! Why: a bloom of thousands of paths spends nearly all its time hashing short
//! inputs, and a BLAKE3 hasher works on one input at a time. Paths fit in one
//! BLAKE3 chunk (<= 1024 bytes with the prefix), so each lane is a plain chain
//! of block compressions (blake3.zig's lane kernel, counter 0); lanes with fewer
//! blocks are masked. Longer keys fall back to hash.pathHash. Equality with
//! hash.pathHash is tested below.
const std = @import("std");
const hash = @import("hash.zig");
const blake3 = @import("blake3.zig");

pub const lanes = blake3.lanes_max;
const V = @Vector(lanes, u32);
const block_bytes = blake3.block_bytes;
/// Longest key hashed in lanes: prefix + key must fit one chunk.
pub const lane_key_bytes_max = blake3.chunk_bytes - hash.path_prefix.len;

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
    inline for (0..8) |i| cv[i] = @splat(blake3.iv[i]);
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
            flags[lane] = (if (block_index == 0) blake3.flag_chunk_start else 0) |
                (if (block_index + 1 == blocks[lane]) blake3.flag_chunk_end | blake3.flag_root else 0);
        }
        var m: [16]V = undefined;
        inline for (0..16) |w| m[w] = words[w];
        const next = blake3.compressWide(V, cv, &m, @splat(0), @splat(0), block_len, flags);
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
