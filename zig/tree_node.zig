//! Tree node codec: the bytes of one prolly-tree node (docs/formats.md, "Tree nodes").
//!
//!   magic "MICT" | version u8 (1) | level u8 | count u16 LE | count × entry
//!   leaf entry     (level 0):  key_len u16 | key | blob_hash[32] | mode u8 | size u64
//!   internal entry (level ≥1): key_len u16 | key | child_hash[32] | count u64 | size u64
//!
//! Keys are paths compared as raw bytes and strictly increasing inside a node.
//! An internal entry's key is the last key of its child; its count and size are
//! the number of leaf entries and the sum of their blob sizes below it.
//! node hash = BLAKE3("tree\x00" ‖ node bytes).
//!
//! `decode` trusts nothing: every length, count, enum and ordering is checked
//! against the bytes that remain, and any violation is error.Corrupt.
const std = @import("std");
const assert = std.debug.assert;
const blake3 = @import("blake3.zig");

pub const hash_bytes = 32;
pub const Hash = [hash_bytes]u8;

pub const path_bytes_max = 4096;
pub const magic = "MICT".*;
pub const version: u8 = 1;
pub const header_bytes = 8;
pub const hash_prefix = "tree\x00";

/// Levels 0 (leaves) to depth_max - 1. Every chunk but the last of a level has at
/// least two entries (tree_chunker.zig), so each level at least halves the one
/// below: 64 levels hold far more than 2^63 entries.
pub const depth_max = 64;
/// Entries per node; the chunker closes a node when it reaches this many.
pub const node_entries_max = 1024;
pub const leaf_entry_bytes_max = 2 + path_bytes_max + hash_bytes + 1 + 8;
pub const internal_entry_bytes_max = 2 + path_bytes_max + hash_bytes + 8 + 8;
pub const entry_bytes_max = @max(leaf_entry_bytes_max, internal_entry_bytes_max);
/// The chunker closes a node as soon as its encoded entries reach this size ...
pub const node_split_bytes = 32 * 1024;
/// ... so that no node, even of 4,096-byte keys, exceeds this size.
pub const node_bytes_max = 64 * 1024;

comptime {
    assert(header_bytes + node_split_bytes + entry_bytes_max <= node_bytes_max);
    assert(node_entries_max <= std.math.maxInt(u16));
    assert(path_bytes_max <= std.math.maxInt(u16));
    assert(depth_max <= std.math.maxInt(u8));
}

pub const Mode = enum(u8) {
    file = 0,
    exec = 1,
    symlink = 2,
};

/// One entry of a node. For a leaf: the path, blob hash, mode, count 1 and blob size.
/// For an internal node: the child's last key, the child's node hash, mode .file
/// (unused) and the child's subtree entry count and total size.
pub const Entry = struct {
    key: []const u8,
    hash: Hash,
    mode: Mode = .file,
    count: u64 = 1,
    size: u64 = 0,
};

pub const Node = struct {
    level: u8,
    /// Keys point into the bytes the node was decoded from (or built from).
    entries: []Entry,
    hash: Hash,
    /// Sums over the entries: what a parent entry must claim for this node.
    count: u64,
    size: u64,

    pub fn lastKey(node: *const Node) []const u8 {
        assert(node.entries.len > 0);
        return node.entries[node.entries.len - 1].key;
    }
};

pub const DecodeError = error{ Corrupt, OutOfMemory };

pub fn entryBytes(level: u8, key_len: usize) usize {
    assert(key_len <= path_bytes_max);
    return if (level == 0) 2 + key_len + hash_bytes + 1 + 8 else 2 + key_len + hash_bytes + 8 + 8;
}

pub fn nodeHash(bytes: []const u8) Hash {
    var state = blake3.Hasher.init();
    state.update(hash_prefix);
    state.update(bytes);
    var out: Hash = undefined;
    state.final(&out);
    return out;
}

/// The one node of the empty tree: an empty leaf.
pub const empty_node_bytes = magic ++ [_]u8{ version, 0, 0, 0 };

pub fn emptyTreeHash() Hash {
    return nodeHash(&empty_node_bytes);
}

/// Appends the encoding of a node to `out`. The entries must be valid (keys
/// 1..path_bytes_max bytes, strictly increasing, at most node_entries_max):
/// callers validate input before it becomes an entry.
pub fn encode(gpa: std.mem.Allocator, out: *std.ArrayList(u8), level: u8, entries: []const Entry) error{OutOfMemory}!void {
    assert(level < depth_max);
    assert(entries.len <= node_entries_max);
    assert(level == 0 or entries.len > 0);
    var total: usize = header_bytes;
    for (entries) |e| total += entryBytes(level, e.key.len);
    try out.ensureUnusedCapacity(gpa, total);
    out.appendSliceAssumeCapacity(&magic);
    out.appendAssumeCapacity(version);
    out.appendAssumeCapacity(level);
    appendInt(out, u16, @intCast(entries.len));
    for (entries, 0..) |e, i| {
        assert(e.key.len > 0 and e.key.len <= path_bytes_max);
        if (i > 0) assert(std.mem.order(u8, entries[i - 1].key, e.key) == .lt);
        appendInt(out, u16, @intCast(e.key.len));
        out.appendSliceAssumeCapacity(e.key);
        out.appendSliceAssumeCapacity(&e.hash);
        if (level == 0) {
            out.appendAssumeCapacity(@backingInt(e.mode));
            appendInt(out, u64, e.size);
        } else {
            appendInt(out, u64, e.count);
            appendInt(out, u64, e.size);
        }
    }
}

fn appendInt(out: *std.ArrayList(u8), comptime T: type, value: T) void {
    var buf: [@sizeOf(T)]u8 = undefined;
    std.mem.writeInt(T, &buf, value, .little);
    out.appendSliceAssumeCapacity(&buf);
}

/// Reads fixed-size fields from untrusted bytes; every read is bounds-checked.
const Reader = struct {
    bytes: []const u8,
    pos: usize = 0,

    fn take(r: *Reader, n: usize) DecodeError![]const u8 {
        if (n > r.bytes.len - r.pos) return error.Corrupt;
        const s = r.bytes[r.pos .. r.pos + n];
        r.pos += n;
        return s;
    }

    fn int(r: *Reader, comptime T: type) DecodeError!T {
        const s = try r.take(@sizeOf(T));
        return std.mem.readInt(T, s[0..@sizeOf(T)], .little);
    }
};

/// Decodes and validates a node. The entries are allocated with `gpa` (free them
/// with `freeNode`); their keys point into `bytes`, which must outlive the node.
pub fn decode(gpa: std.mem.Allocator, bytes: []const u8) DecodeError!Node {
    if (bytes.len > node_bytes_max or bytes.len < header_bytes) return error.Corrupt;
    var r: Reader = .{ .bytes = bytes };
    if (!std.mem.eql(u8, try r.take(4), &magic)) return error.Corrupt;
    if ((try r.int(u8)) != version) return error.Corrupt;
    const level = try r.int(u8);
    if (level >= depth_max) return error.Corrupt;
    const count = try r.int(u16);
    if (count > node_entries_max) return error.Corrupt;
    // Only the empty tree's root is an empty node, and it is a leaf.
    if (count == 0 and level != 0) return error.Corrupt;
    // Each entry takes at least this many bytes: reject an impossible count
    // before allocating for it.
    const entry_bytes_min = entryBytes(level, 1);
    if (@as(usize, count) * entry_bytes_min > bytes.len - r.pos) return error.Corrupt;

    const entries = try gpa.alloc(Entry, count);
    errdefer gpa.free(entries);
    var total_count: u64 = 0;
    var total_size: u64 = 0;
    for (entries, 0..) |*e, i| {
        const key_len = try r.int(u16);
        if (key_len == 0 or key_len > path_bytes_max) return error.Corrupt;
        const key = try r.take(key_len);
        if (i > 0 and std.mem.order(u8, entries[i - 1].key, key) != .lt) return error.Corrupt;
        e.* = .{ .key = key, .hash = (try r.take(hash_bytes))[0..hash_bytes].* };
        if (level == 0) {
            e.mode = std.enums.fromInt(Mode, try r.int(u8)) orelse return error.Corrupt;
            e.count = 1;
            e.size = try r.int(u64);
        } else {
            e.count = try r.int(u64);
            if (e.count == 0) return error.Corrupt;
            e.size = try r.int(u64);
        }
        total_count = std.math.add(u64, total_count, e.count) catch return error.Corrupt;
        total_size = std.math.add(u64, total_size, e.size) catch return error.Corrupt;
    }
    if (r.pos != bytes.len) return error.Corrupt;
    return .{
        .level = level,
        .entries = entries,
        .hash = nodeHash(bytes),
        .count = total_count,
        .size = total_size,
    };
}

pub fn freeNode(gpa: std.mem.Allocator, node: *Node) void {
    gpa.free(node.entries);
    node.entries = &.{};
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

fn hexOf(h: Hash) [64]u8 {
    return std.fmt.bytesToHex(h, .lower);
}

test "empty tree hash is pinned" {
    const node = try decode(testing.allocator, &empty_node_bytes);
    try testing.expectEqual(@as(usize, 0), node.entries.len);
    try testing.expectEqualStrings(
        "9d64d302ad451434581da742bc366d3e62995cd10a6416e91717537ce5932c36",
        &hexOf(emptyTreeHash()),
    );
}

test "leaf node bytes round-trip and are pinned" {
    const gpa = testing.allocator;
    const entries = [_]Entry{
        .{ .key = "a", .hash = @as(Hash, @splat(1)), .mode = .file, .size = 3 },
        .{ .key = "a/b", .hash = @as(Hash, @splat(2)), .mode = .exec, .size = 0 },
        .{ .key = "a.b", .hash = @as(Hash, @splat(3)), .mode = .symlink, .size = 7 },
    };
    var sorted = entries;
    std.mem.sort(Entry, &sorted, {}, struct {
        fn lt(_: void, x: Entry, y: Entry) bool {
            return std.mem.order(u8, x.key, y.key) == .lt;
        }
    }.lt);
    var out: std.ArrayList(u8) = .empty;
    defer out.deinit(gpa);
    try encode(gpa, &out, 0, &sorted);
    try testing.expectEqualSlices(u8, "MICT\x01\x00\x03\x00\x01\x00a", out.items[0..11]);
    var node = try decode(gpa, out.items);
    defer freeNode(gpa, &node);
    try testing.expectEqual(@as(u64, 3), node.count);
    try testing.expectEqual(@as(u64, 10), node.size);
    try testing.expectEqualStrings("a.b", node.entries[1].key);
    try testing.expectEqual(Mode.symlink, node.entries[1].mode);
    try testing.expectEqualStrings("a/b", node.lastKey());
}

test "internal node round-trips with counts and sizes" {
    const gpa = testing.allocator;
    const entries = [_]Entry{
        .{ .key = "m", .hash = @as(Hash, @splat(9)), .count = 40, .size = 1000 },
        .{ .key = "z", .hash = @as(Hash, @splat(8)), .count = 2, .size = 5 },
    };
    var out: std.ArrayList(u8) = .empty;
    defer out.deinit(gpa);
    try encode(gpa, &out, 3, &entries);
    var node = try decode(gpa, out.items);
    defer freeNode(gpa, &node);
    try testing.expectEqual(@as(u8, 3), node.level);
    try testing.expectEqual(@as(u64, 42), node.count);
    try testing.expectEqual(@as(u64, 1005), node.size);
    try testing.expectEqualSlices(u8, &nodeHash(out.items), &node.hash);
}

test "decode rejects malformed nodes" {
    const gpa = testing.allocator;
    const entries = [_]Entry{
        .{ .key = "a", .hash = @as(Hash, @splat(1)), .size = 3 },
        .{ .key = "b", .hash = @as(Hash, @splat(2)), .size = 4 },
    };
    var out: std.ArrayList(u8) = .empty;
    defer out.deinit(gpa);
    try encode(gpa, &out, 0, &entries);
    const good = out.items;

    // Every truncation fails.
    for (0..good.len) |n| try testing.expectError(error.Corrupt, decode(gpa, good[0..n]));
    // Trailing bytes fail.
    var long: [256]u8 = undefined;
    @memcpy(long[0..good.len], good);
    long[good.len] = 0;
    try testing.expectError(error.Corrupt, decode(gpa, long[0 .. good.len + 1]));

    var bad: [256]u8 = undefined;
    const cases = [_]struct { at: usize, value: u8 }{
        .{ .at = 0, .value = 'X' }, // magic
        .{ .at = 4, .value = 2 }, // version
        .{ .at = 5, .value = depth_max }, // level
        .{ .at = 6, .value = 3 }, // count larger than the bytes
        .{ .at = 8, .value = 0 }, // key length 0
        .{ .at = 11 + 32, .value = 3 }, // mode
        .{ .at = 11 + 32 + 9 + 2, .value = 'a' }, // second key not greater than the first
    };
    for (cases) |c| {
        @memcpy(bad[0..good.len], good);
        bad[c.at] = c.value;
        try testing.expectError(error.Corrupt, decode(gpa, bad[0..good.len]));
    }
    // An empty internal node is corrupt; an empty leaf is the empty tree.
    const empty_internal = magic ++ [_]u8{ version, 1, 0, 0 };
    try testing.expectError(error.Corrupt, decode(gpa, &empty_internal));
}

test "decode rejects summed counts that overflow" {
    const gpa = testing.allocator;
    const max = std.math.maxInt(u64);
    const entries = [_]Entry{
        .{ .key = "a", .hash = @as(Hash, @splat(1)), .count = max, .size = 1 },
        .{ .key = "b", .hash = @as(Hash, @splat(2)), .count = 1, .size = 1 },
    };
    var out: std.ArrayList(u8) = .empty;
    defer out.deinit(gpa);
    try encode(gpa, &out, 1, &entries);
    try testing.expectError(error.Corrupt, decode(gpa, out.items));
}

test "node of 4,096-byte keys stays within node_bytes_max" {
    const gpa = testing.allocator;
    var keys: [16][path_bytes_max]u8 = undefined;
    var entries: [16]Entry = undefined;
    for (&keys, &entries, 0..) |*k, *e, i| {
        @memset(k, 'p');
        k[path_bytes_max - 1] = @intCast('a' + i);
        e.* = .{ .key = k, .hash = @as(Hash, @splat(0)), .count = 1, .size = 1 };
    }
    var out: std.ArrayList(u8) = .empty;
    defer out.deinit(gpa);
    try encode(gpa, &out, 1, entries[0..15]);
    try testing.expect(out.items.len <= node_bytes_max);
    var node = try decode(gpa, out.items);
    defer freeNode(gpa, &node);
    try testing.expectEqual(@as(usize, 15), node.entries.len);
}

// The decoder on ≥ 100,000 inputs: mutations of valid nodes (bit flips, byte
// overwrites, truncations, splices) and random bytes behind a valid header.
// Anything but a clean Corrupt or a valid node (safety checks trap) fails.
test "fuzz: node decoder on 100,000 inputs" {
    const gpa = testing.allocator;
    var prng = std.Random.DefaultPrng.init(0x7472_6565);
    const random = prng.random();

    var seeds: [3]std.ArrayList(u8) = .{ .empty, .empty, .empty };
    defer for (&seeds) |*s| s.deinit(gpa);
    var key_store: [64][12]u8 = undefined;
    var entries: [64]Entry = undefined;
    for (&key_store, &entries, 0..) |*k, *e, i| {
        _ = std.fmt.bufPrint(k, "dir/f{d:0>6}", .{i}) catch unreachable; // 12 bytes always fit
        e.* = .{ .key = k, .hash = @as(Hash, @splat(@intCast(i))), .mode = @fromBackingInt(@intCast(i % 3)), .count = i + 1, .size = i * 7 };
    }
    try encode(gpa, &seeds[0], 0, entries[0..5]);
    try encode(gpa, &seeds[1], 2, entries[0..64]);
    try seeds[2].appendSlice(gpa, &empty_node_bytes);

    var buf: [8192]u8 = undefined;
    var accepted: usize = 0;
    const iterations = 100_000;
    for (0..iterations) |i| {
        const seed = seeds[i % seeds.len].items;
        var len = seed.len;
        @memcpy(buf[0..len], seed);
        switch (random.uintLessThan(u8, 5)) {
            0 => for (0..random.uintLessThan(u8, 4) + 1) |_| {
                const at = random.uintLessThan(usize, len);
                buf[at] ^= @as(u8, 1) << random.int(u3);
            },
            1 => for (0..random.uintLessThan(u8, 4) + 1) |_| {
                buf[random.uintLessThan(usize, len)] = random.int(u8);
            },
            2 => len = random.uintLessThan(usize, len + 1),
            3 => {
                const extra = random.uintLessThan(usize, 64);
                random.bytes(buf[len .. len + extra]);
                len += extra;
            },
            else => {
                len = header_bytes + random.uintLessThan(usize, 512);
                random.bytes(buf[header_bytes..len]);
            },
        }
        var node = decode(gpa, buf[0..len]) catch |err| switch (err) {
            error.Corrupt => continue,
            error.OutOfMemory => return err,
        };
        accepted += 1;
        // A node that decodes re-encodes to the same bytes.
        var again: std.ArrayList(u8) = .empty;
        defer again.deinit(gpa);
        try encode(gpa, &again, node.level, node.entries);
        try testing.expectEqualSlices(u8, buf[0..len], again.items);
        freeNode(gpa, &node);
    }
    try testing.expect(accepted > 0);
}
