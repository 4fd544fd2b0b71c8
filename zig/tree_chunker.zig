//! Where tree nodes end: content-defined boundaries, so that the shape of the
//! tree is a function of its entries alone (history independence) and an edit
//! disturbs only the node it falls in (boundaries resync at the next key).
//!
//! A node at `level` closes after entry e when, counting e:
//!   - it holds node_entries_max entries, or
//!   - its encoded entries reach node_split_bytes, or
//!   - it holds at least chunk_entries_min entries and e.key is a boundary key:
//!     the first 4 bytes of BLAKE3("chunk\x00" ‖ level ‖ key), little-endian,
//!     are 0 modulo chunk_entries_target.
//! Each rule looks only at the node so far, never at the entry that follows: so
//! an old boundary before an unchanged suffix stays a boundary after any edit
//! before it, which is what lets `apply` stop re-chunking once it meets one.
const std = @import("std");
const assert = std.debug.assert;
const blake3 = @import("blake3.zig");
const node = @import("tree_node.zig");
const Entry = node.Entry;

/// Average entries per node (a power of two).
pub const chunk_entries_target = 32;
/// A key boundary closes a node only from this many entries on, so every level
/// but the root has at most half as many nodes as the level below has entries
/// and no crafted set of boundary keys can make the tree deeper than depth_max.
pub const chunk_entries_min = 2;
pub const boundary_prefix = "chunk\x00";

comptime {
    assert(std.math.isPowerOfTwo(chunk_entries_target));
    assert(chunk_entries_min >= 2);
    assert(chunk_entries_target < node.node_entries_max);
}

pub fn isBoundaryKey(level: u8, key: []const u8) bool {
    var state = blake3.Hasher.init();
    state.update(boundary_prefix);
    state.update(&[_]u8{level});
    state.update(key);
    var out: [blake3.digest_bytes]u8 = undefined;
    state.final(&out);
    return std.mem.readInt(u32, out[0..4], .little) % chunk_entries_target == 0;
}

/// The entries of the node being filled at one level.
pub const Chunk = struct {
    level: u8,
    entries: std.ArrayList(Entry) = .empty,
    entry_bytes: usize = 0,

    pub fn deinit(chunk: *Chunk, gpa: std.mem.Allocator) void {
        chunk.entries.deinit(gpa);
    }

    /// Adds an entry (keys must arrive strictly increasing) and says whether the
    /// node closes after it.
    pub fn push(chunk: *Chunk, gpa: std.mem.Allocator, entry: Entry) error{OutOfMemory}!bool {
        assert(chunk.entries.items.len < node.node_entries_max);
        if (chunk.entries.items.len > 0) {
            assert(std.mem.order(u8, chunk.entries.items[chunk.entries.items.len - 1].key, entry.key) == .lt);
        }
        try chunk.entries.append(gpa, entry);
        chunk.entry_bytes += node.entryBytes(chunk.level, entry.key.len);
        const n = chunk.entries.items.len;
        if (n >= node.node_entries_max) return true;
        if (chunk.entry_bytes >= node.node_split_bytes) return true;
        return n >= chunk_entries_min and isBoundaryKey(chunk.level, entry.key);
    }

    pub fn isEmpty(chunk: *const Chunk) bool {
        return chunk.entries.items.len == 0;
    }

    pub fn reset(chunk: *Chunk) void {
        chunk.entries.clearRetainingCapacity();
        chunk.entry_bytes = 0;
    }
};

const testing = std.testing;

test "boundary keys are pinned and depend on the level" {
    // Golden: a change to the boundary rule changes every tree's shape and must fail here.
    var level0: u32 = 0;
    var level1: u32 = 0;
    var both: u32 = 0;
    var buf: [16]u8 = undefined;
    for (0..4096) |i| {
        const key = std.fmt.bufPrint(&buf, "f{d}", .{i}) catch unreachable; // 16 bytes fit
        const b0 = isBoundaryKey(0, key);
        const b1 = isBoundaryKey(1, key);
        level0 += @intFromBool(b0);
        level1 += @intFromBool(b1);
        both += @intFromBool(b0 and b1);
    }
    // About 4096 / 32 = 128 each, and independent across levels (about 4 in both).
    try testing.expect(level0 > 90 and level0 < 170);
    try testing.expect(level1 > 90 and level1 < 170);
    try testing.expect(both < 20);
    try testing.expectEqual(@as(u32, 138), level0);
}

test "chunk closes on boundary keys, never below the minimum, and at the caps" {
    const gpa = testing.allocator;
    var chunk: Chunk = .{ .level = 0 };
    defer chunk.deinit(gpa);
    var keys: [node.node_entries_max + 1][8]u8 = undefined;
    var closes: usize = 0;
    var sizes_sum: usize = 0;
    for (&keys, 0..) |*k, i| {
        _ = std.fmt.bufPrint(k, "{d:0>8}", .{i}) catch unreachable;
        const closed = try chunk.push(gpa, .{ .key = k, .hash = @splat(0) });
        if (closed) {
            try testing.expect(chunk.entries.items.len >= chunk_entries_min);
            try testing.expect(chunk.entries.items.len == node.node_entries_max or
                isBoundaryKey(0, k));
            closes += 1;
            sizes_sum += chunk.entries.items.len;
            chunk.reset();
        }
    }
    try testing.expect(closes > 10);
    // Average close to the target.
    const mean = sizes_sum / closes;
    try testing.expect(mean > 16 and mean < 64);
}

test "chunk closes at node_split_bytes with long keys" {
    const gpa = testing.allocator;
    var chunk: Chunk = .{ .level = 1 };
    defer chunk.deinit(gpa);
    var keys: [16][node.path_bytes_max]u8 = undefined;
    var closed_at: ?usize = null;
    for (&keys, 0..) |*k, i| {
        @memset(k, 'x');
        std.mem.writeInt(u32, k[node.path_bytes_max - 4 ..], @intCast(i), .big);
        if (try chunk.push(gpa, .{ .key = k, .hash = @splat(0) })) {
            closed_at = i + 1;
            break;
        }
    }
    const n = closed_at orelse return error.TestExpectedClose;
    try testing.expect(n <= 8);
    try testing.expect(node.header_bytes + chunk.entry_bytes <= node.node_bytes_max);
}
