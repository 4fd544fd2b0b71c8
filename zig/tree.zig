//! The content-addressed chunked tree (prolly tree): path → (blob hash, mode, size).
//!
//! Operations (each one call; nodes come from the handle's loader on demand):
//!   build   sorted entries → root + every node, in one pass
//!   apply   root + sorted edits → new root + only the new nodes: O(k·log n) nodes
//!   lookup  one path; list a prefix (sorted, paginated); stats from the root alone
//!   ceilings  the first entry at or above each of many keys, in one call
//!   diff    two roots; subtrees with equal hashes are skipped unread
//!
//! Wire formats of the batch buffers (little-endian; docs/formats.md "Tree nodes"):
//!   entry record  path_len u16 | path | blob_hash[32] | mode u8 | size u64
//!   edit record   op u8 (1 write, 2 delete) | path_len u16 | path | write only: hash[32] | mode u8 | size u64
//!   key record    path_len u16 | path (1..path_bytes_max bytes)
//!   ceiling record  found u8 (0 or 1) | found only: entry record
//!   node record   hash[32] | len u32 | node bytes
//!   change record kind u8 (1 added, 2 modified, 3 deleted) | path_len u16 | path |
//!                 old hash[32] | old mode u8 | old size u64 | new hash[32] | new mode u8 | new size u64
//!                 (the absent side is all zeros)
//!
//! How apply stays local: edits are applied level by level. At each level the
//! entries around each edit are re-chunked starting at the start of the old node
//! the edit falls in, and re-chunking stops as soon as a new node ends exactly
//! where an old one ended with no edit pending in the next old node: boundaries
//! depend only on the node so far (tree_chunker.zig), so everything after is
//! unchanged. Each such region replaces a run of old nodes, which is an edit of
//! the level above. The result is the tree `build` would make from the same
//! entries (tests below and in tests/tree/ hold apply to that).
const std = @import("std");
const assert = std.debug.assert;
const tree_node = @import("tree_node.zig");
const tree_chunker = @import("tree_chunker.zig");
const tree_cursor = @import("tree_cursor.zig");

pub const Hash = tree_node.Hash;
pub const Entry = tree_node.Entry;
pub const Mode = tree_node.Mode;
pub const Node = tree_node.Node;
pub const Loader = tree_cursor.Loader;
pub const LoadError = tree_cursor.LoadError;
const Source = tree_cursor.Source;
const Cursor = tree_cursor.Cursor;
const LazyCursor = tree_cursor.LazyCursor;
const Bound = tree_cursor.Bound;
const Chunk = tree_chunker.Chunk;

pub const path_bytes_max = tree_node.path_bytes_max;
/// Entries one list call may return.
pub const list_entries_max = 100_000;
/// Keys one ceilings call may take: its output (up to one entry record per key,
/// ~4 KiB at most) stays under ~41 MiB; callers with more send them in batches.
pub const ceilings_keys_max = 10_000;
pub const op_write: u8 = 1;
pub const op_delete: u8 = 2;
pub const change_added: u8 = 1;
pub const change_modified: u8 = 2;
pub const change_deleted: u8 = 3;
pub const entry_record_bytes_max = 2 + path_bytes_max + 32 + 1 + 8;
pub const node_record_header_bytes = 32 + 4;

comptime {
    assert(tree_node.node_bytes_max <= std.math.maxInt(u32));
}

pub const Error = error{
    InvalidArgument,
    Corrupt,
    OutOfMemory,
    LimitExceeded,
    NodeNotFound,
    LoaderFailed,
};

/// A tree handle: an allocator and a loader. It keeps nothing between calls.
pub const Tree = struct {
    gpa: std.mem.Allocator,
    loader: Loader,

    pub fn init(gpa: std.mem.Allocator, loader: Loader) Tree {
        return .{ .gpa = gpa, .loader = loader };
    }

    pub fn emptyHash() Hash {
        return tree_node.emptyTreeHash();
    }

    /// Builds the tree of `entries` (entry records, strictly increasing paths) and
    /// appends every node to `nodes_out` as node records. Returns the root.
    pub fn build(tree: *const Tree, entries: []const u8, nodes_out: *std.ArrayList(u8)) Error!Hash {
        var builder: Builder = .{ .gpa = tree.gpa, .out = nodes_out };
        defer builder.deinit();
        var r: Reader = .{ .bytes = entries };
        var previous: ?[]const u8 = null;
        while (!r.done()) {
            const e = try r.entry();
            if (previous) |p| if (std.mem.order(u8, p, e.key) != .lt) return error.InvalidArgument;
            previous = e.key;
            try builder.push(0, e);
        }
        return builder.finish();
    }

    /// Applies `edits` (edit records, strictly increasing paths) to `root`; appends
    /// the nodes the new tree needs that `root` does not have to `nodes_out`.
    pub fn apply(tree: *const Tree, root: Hash, edits: []const u8, nodes_out: *std.ArrayList(u8)) Error!Hash {
        var arena_state = std.heap.ArenaAllocator.init(tree.gpa);
        defer arena_state.deinit();
        const arena = arena_state.allocator();
        var src = Source.init(arena, tree.loader);
        const level0 = try parseEdits(arena, edits);
        if (level0.len == 0) return root;
        var applier: Applier = .{ .arena = arena, .src = &src, .root = try src.root(root) };
        const new_root = try applier.run(level0);
        try applier.writeNodes(tree.gpa, nodes_out, new_root);
        return new_root.hash;
    }

    pub fn lookup(tree: *const Tree, root: Hash, path: []const u8) Error!?Entry {
        if (path.len == 0 or path.len > path_bytes_max) return error.InvalidArgument;
        var arena_state = std.heap.ArenaAllocator.init(tree.gpa);
        defer arena_state.deinit();
        var src = Source.init(arena_state.allocator(), tree.loader);
        var n = try src.root(root);
        while (n.level > 0) {
            const i = tree_cursor.firstAbove(n, .{ .key = path }, true) orelse return null;
            n = try src.child(n, i);
        }
        const i = tree_cursor.firstAbove(n, .{ .key = path }, true) orelse return null;
        const e = n.entries[i];
        if (!std.mem.eql(u8, e.key, path)) return null;
        // The key points into the call's arena: hand back the caller's own path.
        return .{ .key = path, .hash = e.hash, .mode = e.mode, .count = 1, .size = e.size };
    }

    /// Appends up to `limit` entry records of paths starting with `prefix` (bytes)
    /// and greater than `start_after`, in path order.
    pub fn list(
        tree: *const Tree,
        root: Hash,
        prefix: []const u8,
        start_after: ?[]const u8,
        limit: usize,
        out: *std.ArrayList(u8),
    ) Error!usize {
        if (prefix.len > path_bytes_max or limit > list_entries_max) return error.InvalidArgument;
        if (start_after) |s| if (s.len > path_bytes_max) return error.InvalidArgument;
        var arena_state = std.heap.ArenaAllocator.init(tree.gpa);
        defer arena_state.deinit();
        var src = Source.init(arena_state.allocator(), tree.loader);
        const root_node = try src.root(root);
        var lo: Bound = if (prefix.len == 0) .neg_inf else .{ .key = prefix };
        var inclusive = true;
        if (start_after) |s| if (std.mem.order(u8, s, prefix) != .lt) {
            lo = .{ .key = s };
            inclusive = false;
        };
        var cur = try Cursor.seek(&src, root_node, 0, lo, inclusive, false);
        var listed: usize = 0;
        while (listed < limit) : (listed += 1) {
            const e = cur.peek() orelse break;
            if (!std.mem.startsWith(u8, e.key, prefix)) break;
            try writeEntry(tree.gpa, out, e.*);
            try cur.advance();
        }
        return listed;
    }

    /// For each key of `keys` (key records, any order), appends its ceiling, the
    /// first entry at or above it in path order: a byte 1 and that entry record,
    /// or a byte 0 when every path sorts below the key. One node source serves the
    /// whole call, so a node is loaded and checked once however many keys pass
    /// through it (n lookups or "anything below p/?" probes for the price of the
    /// nodes they touch). Returns how many keys were read.
    pub fn ceilings(tree: *const Tree, root: Hash, keys: []const u8, out: *std.ArrayList(u8)) Error!usize {
        var arena_state = std.heap.ArenaAllocator.init(tree.gpa);
        defer arena_state.deinit();
        var src = Source.init(arena_state.allocator(), tree.loader);
        const root_node = try src.root(root);
        var r: Reader = .{ .bytes = keys };
        var count: usize = 0;
        while (!r.done()) : (count += 1) {
            if (count == ceilings_keys_max) return error.LimitExceeded;
            const key = try r.path();
            const cur = try Cursor.seek(&src, root_node, 0, .{ .key = key }, true, false);
            if (cur.peek()) |e| {
                try out.append(tree.gpa, 1);
                try writeEntry(tree.gpa, out, e.*);
            } else {
                try out.append(tree.gpa, 0);
            }
        }
        return count;
    }

    /// What `diff` did: how many nodes it loaded (the cost, for tests and
    /// benchmarks), and whether it stopped at `max_changes` with more to come.
    pub const DiffStats = struct { loads: u64, truncated: bool };

    /// Appends change records turning `old_root` into `new_root`, in path order:
    /// all of them, or (`max_changes` > 0) at most `max_changes`, stopping with
    /// `truncated` set as soon as one more exists. A caller that refuses a diff
    /// over its bound so never holds more than the bound's worth of changes.
    pub fn diff(tree: *const Tree, old_root: Hash, new_root: Hash, out: *std.ArrayList(u8), max_changes: u64) Error!DiffStats {
        if (std.mem.eql(u8, &old_root, &new_root)) return .{ .loads = 0, .truncated = false };
        var arena_state = std.heap.ArenaAllocator.init(tree.gpa);
        defer arena_state.deinit();
        var src = Source.init(arena_state.allocator(), tree.loader);
        var changes: Changes = .{ .gpa = tree.gpa, .out = out, .max = max_changes };
        var a = LazyCursor.init(&src, try src.root(old_root));
        var b = LazyCursor.init(&src, try src.root(new_root));
        while (!a.exhausted or !b.exhausted) {
            if (a.exhausted or b.exhausted) {
                const c = if (a.exhausted) &b else &a;
                if (c.level > 0) {
                    try c.descend();
                    continue;
                }
                const e = c.entry().*;
                if (!try changes.add(if (a.exhausted) change_added else change_deleted, e.key, if (a.exhausted) null else e, if (a.exhausted) e else null)) {
                    return .{ .loads = src.loads, .truncated = true };
                }
                c.advance();
                continue;
            }
            if (a.level != b.level) {
                try (if (a.level > b.level) &a else &b).descend();
                continue;
            }
            const ea = a.entry().*;
            const eb = b.entry().*;
            if (a.level > 0) {
                if (std.mem.eql(u8, &ea.hash, &eb.hash)) {
                    a.advance();
                    b.advance();
                } else {
                    try a.descend();
                    try b.descend();
                }
                continue;
            }
            const added = switch (std.mem.order(u8, ea.key, eb.key)) {
                .lt => added: {
                    const ok = try changes.add(change_deleted, ea.key, ea, null);
                    a.advance();
                    break :added ok;
                },
                .gt => added: {
                    const ok = try changes.add(change_added, eb.key, null, eb);
                    b.advance();
                    break :added ok;
                },
                .eq => added: {
                    var ok = true;
                    if (!std.mem.eql(u8, &ea.hash, &eb.hash) or ea.mode != eb.mode or ea.size != eb.size) {
                        ok = try changes.add(change_modified, ea.key, ea, eb);
                    }
                    a.advance();
                    b.advance();
                    break :added ok;
                },
            };
            if (!added) return .{ .loads = src.loads, .truncated = true };
        }
        return .{ .loads = src.loads, .truncated = false };
    }

    /// (entries, total size in bytes), read from the root node alone.
    pub fn stats(tree: *const Tree, root: Hash) Error!struct { count: u64, size: u64 } {
        var arena_state = std.heap.ArenaAllocator.init(tree.gpa);
        defer arena_state.deinit();
        var src = Source.init(arena_state.allocator(), tree.loader);
        const n = try src.root(root);
        return .{ .count = n.count, .size = n.size };
    }
};

// ---------------------------------------------------------------- wire formats

/// Reads the caller's batch buffers; malformed input is InvalidArgument.
const Reader = struct {
    bytes: []const u8,
    pos: usize = 0,

    fn done(r: *const Reader) bool {
        return r.pos == r.bytes.len;
    }

    fn take(r: *Reader, n: usize) Error![]const u8 {
        if (n > r.bytes.len - r.pos) return error.InvalidArgument;
        const s = r.bytes[r.pos .. r.pos + n];
        r.pos += n;
        return s;
    }

    fn int(r: *Reader, comptime T: type) Error!T {
        return std.mem.readInt(T, (try r.take(@sizeOf(T)))[0..@sizeOf(T)], .little);
    }

    fn path(r: *Reader) Error![]const u8 {
        const len = try r.int(u16);
        if (len == 0 or len > path_bytes_max) return error.InvalidArgument;
        return r.take(len);
    }

    fn value(r: *Reader, key: []const u8) Error!Entry {
        const hash = (try r.take(32))[0..32].*;
        const mode = std.enums.fromInt(Mode, try r.int(u8)) orelse return error.InvalidArgument;
        return .{ .key = key, .hash = hash, .mode = mode, .count = 1, .size = try r.int(u64) };
    }

    fn entry(r: *Reader) Error!Entry {
        const key = try r.path();
        return r.value(key);
    }
};

fn appendInt(gpa: std.mem.Allocator, out: *std.ArrayList(u8), comptime T: type, v: T) error{OutOfMemory}!void {
    var buf: [@sizeOf(T)]u8 = undefined;
    std.mem.writeInt(T, &buf, v, .little);
    try out.appendSlice(gpa, &buf);
}

fn writeEntry(gpa: std.mem.Allocator, out: *std.ArrayList(u8), e: Entry) error{OutOfMemory}!void {
    try appendInt(gpa, out, u16, @intCast(e.key.len));
    try out.appendSlice(gpa, e.key);
    try writeValue(gpa, out, e);
}

fn writeValue(gpa: std.mem.Allocator, out: *std.ArrayList(u8), e: ?Entry) error{OutOfMemory}!void {
    const v = e orelse Entry{ .key = "", .hash = @splat(0), .mode = .file, .size = 0 };
    try out.appendSlice(gpa, &v.hash);
    try out.append(gpa, @backingInt(v.mode));
    try appendInt(gpa, out, u64, v.size);
}

/// `diff`'s output, bounded: `add` writes a change record unless `max` (> 0)
/// records are written already, and then returns false instead.
const Changes = struct {
    gpa: std.mem.Allocator,
    out: *std.ArrayList(u8),
    max: u64,
    written: u64 = 0,

    fn add(c: *Changes, kind: u8, key: []const u8, old: ?Entry, new: ?Entry) error{OutOfMemory}!bool {
        if (c.max != 0 and c.written == c.max) return false;
        try writeChange(c.gpa, c.out, kind, key, old, new);
        c.written += 1;
        return true;
    }
};

fn writeChange(gpa: std.mem.Allocator, out: *std.ArrayList(u8), kind: u8, key: []const u8, old: ?Entry, new: ?Entry) error{OutOfMemory}!void {
    try out.append(gpa, kind);
    try appendInt(gpa, out, u16, @intCast(key.len));
    try out.appendSlice(gpa, key);
    try writeValue(gpa, out, old);
    try writeValue(gpa, out, new);
}

fn writeNodeRecord(gpa: std.mem.Allocator, out: *std.ArrayList(u8), hash: Hash, bytes: []const u8) error{OutOfMemory}!void {
    assert(bytes.len <= tree_node.node_bytes_max);
    try out.ensureUnusedCapacity(gpa, node_record_header_bytes + bytes.len);
    out.appendSliceAssumeCapacity(&hash);
    var len: [4]u8 = undefined;
    std.mem.writeInt(u32, &len, @intCast(bytes.len), .little);
    out.appendSliceAssumeCapacity(&len);
    out.appendSliceAssumeCapacity(bytes);
}

/// Sums of the entries of a node-to-be: the parent entry's count and size.
fn totals(entries: []const Entry) Error!struct { count: u64, size: u64 } {
    var count: u64 = 0;
    var size: u64 = 0;
    for (entries) |e| {
        count = std.math.add(u64, count, e.count) catch return error.LimitExceeded;
        size = std.math.add(u64, size, e.size) catch return error.LimitExceeded;
    }
    return .{ .count = count, .size = size };
}

// ---------------------------------------------------------------- build

/// One pass over sorted entries, one open chunk per level; nodes are written to
/// the output as they close.
const Builder = struct {
    gpa: std.mem.Allocator,
    out: *std.ArrayList(u8),
    chunks: [tree_node.depth_max]Chunk = blk: {
        var chunks: [tree_node.depth_max]Chunk = undefined;
        for (&chunks, 0..) |*c, l| c.* = .{ .level = l };
        break :blk chunks;
    },
    emitted: [tree_node.depth_max]u64 = @splat(0),

    fn deinit(b: *Builder) void {
        for (&b.chunks) |*c| c.deinit(b.gpa);
    }

    fn push(b: *Builder, level: u8, e: Entry) Error!void {
        if (try b.chunks[level].push(b.gpa, e)) {
            const parent = try b.close(level);
            if (level + 1 >= tree_node.depth_max) return error.LimitExceeded;
            try b.push(level + 1, parent);
        }
    }

    /// Writes the open chunk of `level` as a node; returns its parent entry.
    fn close(b: *Builder, level: u8) Error!Entry {
        const chunk = &b.chunks[level];
        assert(!chunk.isEmpty());
        const entries = chunk.entries.items;
        const sums = try totals(entries);
        const start = b.out.items.len;
        try b.out.appendNTimes(b.gpa, 0, node_record_header_bytes);
        try tree_node.encode(b.gpa, b.out, level, entries);
        const bytes = b.out.items[start + node_record_header_bytes ..];
        const hash = tree_node.nodeHash(bytes);
        b.out.items[start..][0..32].* = hash;
        std.mem.writeInt(u32, b.out.items[start + 32 ..][0..4], @intCast(bytes.len), .little);
        const last = entries[entries.len - 1].key;
        chunk.reset();
        b.emitted[level] += 1;
        return .{ .key = last, .hash = hash, .count = sums.count, .size = sums.size };
    }

    fn finish(b: *Builder) Error!Hash {
        var level: u8 = 0;
        while (true) : (level += 1) {
            const pending = !b.chunks[level].isEmpty();
            const nodes = b.emitted[level] + @intFromBool(pending);
            if (nodes == 0) {
                assert(level == 0);
                try writeNodeRecord(b.gpa, b.out, tree_node.emptyTreeHash(), &tree_node.empty_node_bytes);
                return tree_node.emptyTreeHash();
            }
            if (nodes == 1) {
                if (pending) return (try b.close(level)).hash;
                // The one node of this level already went up as the only entry above.
                const above = &b.chunks[level + 1];
                assert(above.entries.items.len == 1 and b.emitted[level + 1] == 0);
                return above.entries.items[0].hash;
            }
            if (pending) {
                const parent = try b.close(level);
                if (level + 1 >= tree_node.depth_max) return error.LimitExceeded;
                try b.push(level + 1, parent);
            }
        }
    }
};

// ---------------------------------------------------------------- apply

/// An edit of one level: drop the old entries in (lo, hi] (lo inclusive for the
/// path edits of level 0) and put `entries` in their place.
const Edit = struct {
    lo: Bound,
    lo_inclusive: bool,
    hi: Bound,
    entries: []const Entry,

    fn removes(e: *const Edit, key: []const u8) bool {
        return tree_cursor.above(key, e.lo, e.lo_inclusive) and tree_cursor.atOrBelow(key, e.hi);
    }
};

fn parseEdits(arena: std.mem.Allocator, bytes: []const u8) Error![]Edit {
    var edits: std.ArrayList(Edit) = .empty;
    var r: Reader = .{ .bytes = bytes };
    var previous: ?[]const u8 = null;
    while (!r.done()) {
        const op = try r.int(u8);
        const key = try r.path();
        if (previous) |p| if (std.mem.order(u8, p, key) != .lt) return error.InvalidArgument;
        previous = key;
        const entries: []const Entry = switch (op) {
            op_write => blk: {
                const one = try arena.alloc(Entry, 1);
                one[0] = try r.value(key);
                break :blk one;
            },
            op_delete => &.{},
            else => return error.InvalidArgument,
        };
        try edits.append(arena, .{ .lo = .{ .key = key }, .lo_inclusive = true, .hi = .{ .key = key }, .entries = entries });
    }
    return edits.items;
}

const NewNode = struct { hash: Hash, level: u8, bytes: []const u8 };

const Applier = struct {
    arena: std.mem.Allocator,
    src: *Source,
    root: *Node,
    new_nodes: std.ArrayList(NewNode) = .empty,
    new_index: std.AutoHashMapUnmanaged(Hash, usize) = .empty,

    const Root = struct { hash: Hash, level: u8 };

    fn run(a: *Applier, level0: []const Edit) Error!Root {
        var edits = level0;
        var level: u8 = 0;
        const top: Root = while (true) {
            const next = try a.processLevel(level, edits);
            if (level >= a.root.level) {
                // At and above the old root's level there is one node at most, so one
                // region covered the whole level.
                assert(next.len == 1);
                const parents = next[0].entries;
                if (parents.len == 0) break .{ .hash = try a.emptyRoot(), .level = 0 };
                if (parents.len == 1) break .{ .hash = parents[0].hash, .level = level };
            }
            level += 1;
            if (level >= tree_node.depth_max) return error.LimitExceeded;
            edits = next;
        };
        // A root with one child is not canonical (build stops at the first level
        // with one node): go down to the first node with more than one entry.
        var root = top;
        while (root.level > 0) {
            const n = try a.node(root.hash);
            if (n.entries.len != 1) break;
            root = .{ .hash = n.entries[0].hash, .level = root.level - 1 };
        }
        return root;
    }

    fn emptyRoot(a: *Applier) Error!Hash {
        const hash = tree_node.emptyTreeHash();
        if (!std.mem.eql(u8, &hash, &a.root.hash)) try a.record(hash, 0, &tree_node.empty_node_bytes);
        return hash;
    }

    fn node(a: *Applier, hash: Hash) Error!*const Node {
        if (a.new_index.get(hash)) |i| {
            const n = try a.arena.create(Node);
            n.* = tree_node.decode(a.arena, a.new_nodes.items[i].bytes) catch |err| switch (err) {
                error.OutOfMemory => return error.OutOfMemory,
                error.Corrupt => unreachable, // we encoded it ourselves
            };
            return n;
        }
        return a.src.fetch(hash);
    }

    fn record(a: *Applier, hash: Hash, level: u8, bytes: []const u8) Error!void {
        if (a.src.contains(hash) or a.new_index.contains(hash)) return;
        try a.new_index.put(a.arena, hash, a.new_nodes.items.len);
        try a.new_nodes.append(a.arena, .{ .hash = hash, .level = level, .bytes = bytes });
    }

    fn close(a: *Applier, chunk: *Chunk) Error!Entry {
        const entries = chunk.entries.items;
        assert(entries.len > 0);
        const sums = try totals(entries);
        var bytes: std.ArrayList(u8) = .empty;
        try tree_node.encode(a.arena, &bytes, chunk.level, entries);
        const hash = tree_node.nodeHash(bytes.items);
        try a.record(hash, chunk.level, bytes.items);
        const last = entries[entries.len - 1].key;
        chunk.reset();
        return .{ .key = last, .hash = hash, .count = sums.count, .size = sums.size };
    }

    /// Re-chunks the regions of `level` touched by `edits`; returns the edits of
    /// the level above (one per region: the old nodes it replaced and the new ones).
    fn processLevel(a: *Applier, level: u8, edits: []const Edit) Error![]Edit {
        var out: std.ArrayList(Edit) = .empty;
        var chunk: Chunk = .{ .level = level };
        // Above the old root's level there is nothing to resync with.
        const may_stop_early = level < a.root.level;
        var ei: usize = 0;
        var ej: usize = 0;
        while (ei < edits.len) {
            assert(ej == 0 and chunk.isEmpty());
            const first = edits[ei];
            var cur = try Cursor.seek(a.src, a.root, level, first.lo, first.lo_inclusive, true);
            const region_lo: Bound = if (cur.exhausted) .neg_inf else cur.prevNodeLastKey();
            var parents: std.ArrayList(Entry) = .empty;
            var last_key: ?[]const u8 = null;
            const region_hi: Bound = while (true) {
                const item = try nextMerged(&cur, edits, &ei, &ej) orelse {
                    if (!chunk.isEmpty()) try parents.append(a.arena, try a.close(&chunk));
                    break .pos_inf;
                };
                // A stored tree whose keys are out of order across nodes is corrupt.
                if (last_key) |k| if (std.mem.order(u8, k, item.key) != .lt) return error.Corrupt;
                last_key = item.key;
                if (try chunk.push(a.arena, item)) {
                    try parents.append(a.arena, try a.close(&chunk));
                    if (may_stop_early and ej == 0 and cur.atNodeStart() and
                        (ei == edits.len or
                            (!cur.nodeIsLast() and !tree_cursor.above(cur.nodeLastKey(), edits[ei].lo, edits[ei].lo_inclusive))))
                    {
                        break cur.prevNodeLastKey();
                    }
                }
            };
            try out.append(a.arena, .{ .lo = region_lo, .lo_inclusive = false, .hi = region_hi, .entries = parents.items });
        }
        return out.items;
    }

    /// The next entry of the edited level: old entries not removed, with the
    /// edits' entries merged in at their places.
    fn nextMerged(cur: *Cursor, edits: []const Edit, ei: *usize, ej: *usize) Error!?Entry {
        while (true) {
            const old = cur.peek();
            if (ei.* < edits.len) {
                const e = &edits[ei.*];
                if (old) |x| if (e.removes(x.key)) {
                    try cur.advance();
                    continue;
                };
                const reached = if (old) |x| !tree_cursor.atOrBelow(x.key, e.hi) else true;
                if (reached) {
                    if (ej.* < e.entries.len) {
                        const item = e.entries[ej.*];
                        ej.* += 1;
                        if (ej.* == e.entries.len) {
                            ei.* += 1;
                            ej.* = 0;
                        }
                        return item;
                    }
                    ei.* += 1;
                    ej.* = 0;
                    continue;
                }
            }
            const x = (old orelse return null).*;
            try cur.advance();
            return x;
        }
    }

    /// Appends the new nodes the final tree references (those above a pruned
    /// root are dropped).
    fn writeNodes(a: *const Applier, gpa: std.mem.Allocator, out: *std.ArrayList(u8), root: Root) Error!void {
        for (a.new_nodes.items) |n| {
            if (n.level > root.level) continue;
            try writeNodeRecord(gpa, out, n.hash, n.bytes);
        }
    }
};

// ---------------------------------------------------------------- tests

const testing = std.testing;

/// An in-memory node store with a load counter: a real store, no mock.
const MemStore = struct {
    gpa: std.mem.Allocator,
    nodes: std.AutoHashMapUnmanaged(Hash, []u8) = .empty,
    loads: usize = 0,

    fn deinit(s: *MemStore) void {
        var it = s.nodes.valueIterator();
        while (it.next()) |v| s.gpa.free(v.*);
        s.nodes.deinit(s.gpa);
    }

    fn loader(s: *MemStore) Loader {
        return .{ .ctx = s, .load_fn = load };
    }

    fn load(ctx: ?*anyopaque, hash: *const Hash) LoadError![]const u8 {
        const s: *MemStore = @ptrCast(@alignCast(ctx.?)); // always a MemStore
        s.loads += 1;
        return s.nodes.get(hash.*) orelse error.NodeNotFound;
    }

    /// Stores node records; returns how many were new.
    fn putAll(s: *MemStore, records: []const u8) !usize {
        var pos: usize = 0;
        var added: usize = 0;
        while (pos < records.len) {
            const hash = records[pos..][0..32].*;
            const len = std.mem.readInt(u32, records[pos + 32 ..][0..4], .little);
            const bytes = records[pos + 36 .. pos + 36 + len];
            try testing.expectEqualSlices(u8, &hash, &tree_node.nodeHash(bytes));
            const gop = try s.nodes.getOrPut(s.gpa, hash);
            if (!gop.found_existing) {
                gop.value_ptr.* = try s.gpa.dupe(u8, bytes);
                added += 1;
            }
            pos += 36 + len;
        }
        return added;
    }
};

fn keyOf(buf: []u8, i: usize) []const u8 {
    return std.fmt.bufPrint(buf, "dir{d}/file{d:0>7}.txt", .{ i % 7, i }) catch unreachable; // buffers are 64 bytes
}

fn entryRecords(gpa: std.mem.Allocator, keys: []const []const u8, seed: u8) !std.ArrayList(u8) {
    var out: std.ArrayList(u8) = .empty;
    for (keys, 0..) |k, i| {
        var h: Hash = @splat(seed);
        h[0] = @truncate(i);
        try writeEntry(gpa, &out, .{ .key = k, .hash = h, .mode = .file, .size = k.len });
    }
    return out;
}

fn lessThan(_: void, x: []const u8, y: []const u8) bool {
    return std.mem.order(u8, x, y) == .lt;
}

/// `n` keys from `keyOf`, sorted, and the tree of them (entry values from
/// `entryRecords(seed)`) built into `store`: the set-up several tests share.
const StoredKeys = struct {
    bufs: [][64]u8,
    keys: [][]const u8,
    root: Hash,

    fn init(gpa: std.mem.Allocator, tree: *const Tree, store: *MemStore, n: usize, seed: u8) !StoredKeys {
        const bufs = try gpa.alloc([64]u8, n);
        errdefer gpa.free(bufs);
        const keys = try gpa.alloc([]const u8, n);
        errdefer gpa.free(keys);
        for (keys, bufs, 0..) |*k, *b, i| k.* = keyOf(b, i);
        std.mem.sort([]const u8, keys, {}, lessThan);
        var records = try entryRecords(gpa, keys, seed);
        defer records.deinit(gpa);
        var nodes: std.ArrayList(u8) = .empty;
        defer nodes.deinit(gpa);
        const root = try tree.build(records.items, &nodes);
        _ = try store.putAll(nodes.items);
        return .{ .bufs = bufs, .keys = keys, .root = root };
    }

    fn deinit(self: StoredKeys, gpa: std.mem.Allocator) void {
        gpa.free(self.keys);
        gpa.free(self.bufs);
    }
};

test "empty build is the pinned empty tree; apply on it inserts" {
    const gpa = testing.allocator;
    var store: MemStore = .{ .gpa = gpa };
    defer store.deinit();
    const tree = Tree.init(gpa, store.loader());
    var nodes: std.ArrayList(u8) = .empty;
    defer nodes.deinit(gpa);
    const root = try tree.build("", &nodes);
    try testing.expectEqualSlices(u8, &Tree.emptyHash(), &root);
    // The empty tree is readable without being stored.
    const s = try tree.stats(root);
    try testing.expectEqual(@as(u64, 0), s.count);
    try testing.expect((try tree.lookup(root, "a")) == null);

    var edits: std.ArrayList(u8) = .empty;
    defer edits.deinit(gpa);
    try edits.append(gpa, op_write);
    try writeEntry(gpa, &edits, .{ .key = "a", .hash = @splat(7), .mode = .exec, .size = 5 });
    nodes.clearRetainingCapacity();
    const one = try tree.apply(root, edits.items, &nodes);
    _ = try store.putAll(nodes.items);
    const got = (try tree.lookup(one, "a")).?;
    try testing.expectEqual(Mode.exec, got.mode);
    try testing.expectEqual(@as(u64, 5), got.size);

    // Deleting it gives the empty tree back.
    edits.clearRetainingCapacity();
    try edits.append(gpa, op_delete);
    try appendInt(gpa, &edits, u16, 1);
    try edits.append(gpa, 'a');
    nodes.clearRetainingCapacity();
    const none = try tree.apply(one, edits.items, &nodes);
    try testing.expectEqualSlices(u8, &Tree.emptyHash(), &none);
}

test "a fixed small tree has a pinned root hash" {
    const gpa = testing.allocator;
    var store: MemStore = .{ .gpa = gpa };
    defer store.deinit();
    const tree = Tree.init(gpa, store.loader());
    const keys = [_][]const u8{ "README.md", "a", "a.b", "a/b", "src/main.zig", "\xc3\xa9t\xc3\xa9" };
    var records = try entryRecords(gpa, &keys, 1);
    defer records.deinit(gpa);
    var nodes: std.ArrayList(u8) = .empty;
    defer nodes.deinit(gpa);
    const root = try tree.build(records.items, &nodes);
    try testing.expectEqualStrings(
        "f9ee7aa653f43b6c8227c6556298346ffd95e0610ccd2cda263ad33bef9cea54",
        &std.fmt.bytesToHex(root, .lower),
    );
}

/// Builds `count` entries, then checks incremental applies against fresh builds.
fn checkApplyMatchesBuild(count: usize, edit_count: usize, seed: u64) !void {
    const gpa = testing.allocator;
    var store: MemStore = .{ .gpa = gpa };
    defer store.deinit();
    const tree = Tree.init(gpa, store.loader());
    var prng = std.Random.DefaultPrng.init(seed);
    const random = prng.random();

    // The model: a sorted key list with values (hash seed) per key.
    const universe = count + edit_count;
    const bufs = try gpa.alloc([64]u8, universe);
    defer gpa.free(bufs);
    const all = try gpa.alloc([]const u8, universe);
    defer gpa.free(all);
    for (all, bufs, 0..) |*k, *b, i| k.* = keyOf(b, i);
    std.mem.sort([]const u8, all, {}, lessThan);
    const present = try gpa.alloc(?u8, universe);
    defer gpa.free(present);
    for (present, 0..) |*p, i| p.* = if (i % (universe / count + 1) != 1 or random.boolean()) 1 else null;

    var nodes: std.ArrayList(u8) = .empty;
    defer nodes.deinit(gpa);
    var root = try buildModel(gpa, &tree, all, present, &nodes);
    _ = try store.putAll(nodes.items);

    for (0..3) |_| {
        // A batch of random writes, rewrites and deletes at distinct keys.
        var edits: std.ArrayList(u8) = .empty;
        defer edits.deinit(gpa);
        var i: usize = random.uintLessThan(usize, universe / edit_count + 1);
        while (i < universe) : (i += 1 + random.uintLessThan(usize, 2 * universe / edit_count + 1)) {
            if (random.boolean()) {
                const v = random.uintLessThan(u8, 4);
                present[i] = v;
                try edits.append(gpa, op_write);
                try writeEntry(gpa, &edits, valueOf(all[i], v));
            } else {
                present[i] = null;
                try edits.append(gpa, op_delete);
                try appendInt(gpa, &edits, u16, @intCast(all[i].len));
                try edits.appendSlice(gpa, all[i]);
            }
        }
        nodes.clearRetainingCapacity();
        root = try tree.apply(root, edits.items, &nodes);
        _ = try store.putAll(nodes.items);

        var fresh_nodes: std.ArrayList(u8) = .empty;
        defer fresh_nodes.deinit(gpa);
        const fresh = try buildModel(gpa, &tree, all, present, &fresh_nodes);
        try testing.expectEqualSlices(u8, &fresh, &root);
        // Everything the new tree needs is in the store: no new node went missing.
        try testing.expectEqual(@as(usize, 0), try store.putAll(fresh_nodes.items));
    }
}

fn valueOf(key: []const u8, v: u8) Entry {
    return .{ .key = key, .hash = @splat(v), .mode = @fromBackingInt(@intCast(v % 3)), .size = @as(u64, v) * 10 };
}

fn buildModel(gpa: std.mem.Allocator, tree: *const Tree, all: []const []const u8, present: []const ?u8, nodes: *std.ArrayList(u8)) !Hash {
    var records: std.ArrayList(u8) = .empty;
    defer records.deinit(gpa);
    for (all, present) |k, p| if (p) |v| try writeEntry(gpa, &records, valueOf(k, v));
    return tree.build(records.items, nodes);
}

test "apply equals build: small trees, many edits" {
    try checkApplyMatchesBuild(10, 5, 1);
    try checkApplyMatchesBuild(50, 50, 2);
    try checkApplyMatchesBuild(300, 20, 3);
}

test "apply equals build: deep trees, few and many edits" {
    try checkApplyMatchesBuild(20_000, 3, 4);
    try checkApplyMatchesBuild(20_000, 400, 5);
    try checkApplyMatchesBuild(5_000, 4_000, 6);
}

test "one-file change writes a few small nodes and diff reads O(depth) nodes" {
    const gpa = testing.allocator;
    var store: MemStore = .{ .gpa = gpa };
    defer store.deinit();
    const tree = Tree.init(gpa, store.loader());
    const n = 100_000;
    const stored = try StoredKeys.init(gpa, &tree, &store, n, 3);
    defer stored.deinit(gpa);
    const keys = stored.keys;
    const root = stored.root;
    var nodes: std.ArrayList(u8) = .empty;
    defer nodes.deinit(gpa);
    const s = try tree.stats(root);
    try testing.expectEqual(@as(u64, n), s.count);

    var edits: std.ArrayList(u8) = .empty;
    defer edits.deinit(gpa);
    try edits.append(gpa, op_write);
    try writeEntry(gpa, &edits, .{ .key = keys[n / 2], .hash = @splat(0xee), .size = 1 });
    nodes.clearRetainingCapacity();
    const loads_before = store.loads;
    const changed = try tree.apply(root, edits.items, &nodes);
    const written = try store.putAll(nodes.items);
    try testing.expect(written >= 3 and written <= 8);
    try testing.expect(nodes.items.len <= 64 * 1024);
    try testing.expect(store.loads - loads_before <= 16);

    var changes: std.ArrayList(u8) = .empty;
    defer changes.deinit(gpa);
    const diff_loads = (try tree.diff(root, changed, &changes, 0)).loads;
    try testing.expect(diff_loads <= 2 * 8);
    try testing.expectEqual(@as(u8, change_modified), changes.items[0]);
    const path_len = std.mem.readInt(u16, changes.items[1..3], .little);
    try testing.expectEqualStrings(keys[n / 2], changes.items[3 .. 3 + path_len]);
    try testing.expectEqual(1 + 2 + path_len + 2 * 41, changes.items.len);

    // Writing the same content again changes nothing and writes nothing.
    nodes.clearRetainingCapacity();
    const same = try tree.apply(changed, edits.items, &nodes);
    try testing.expectEqualSlices(u8, &changed, &same);
    try testing.expectEqual(@as(usize, 0), nodes.items.len);

    // Lookup and list.
    const got = (try tree.lookup(changed, keys[n / 2])).?;
    try testing.expectEqual(@as(u8, 0xee), got.hash[0]);
    var listed: std.ArrayList(u8) = .empty;
    defer listed.deinit(gpa);
    const count = try tree.list(changed, "dir3/", keys[n / 2], 10, &listed);
    try testing.expectEqual(@as(usize, 10), count);
}

test "diff stops at max_changes, and says so only when more changes exist" {
    const gpa = testing.allocator;
    var store: MemStore = .{ .gpa = gpa };
    defer store.deinit();
    const tree = Tree.init(gpa, store.loader());
    const n = 3_000; // several leaves, so the bound is met inside a walk, not at its end
    const stored = try StoredKeys.init(gpa, &tree, &store, n, 3);
    defer stored.deinit(gpa);
    const full = stored.root;
    const empty = Tree.emptyHash(); // known to the library, never loaded

    var all: std.ArrayList(u8) = .empty;
    defer all.deinit(gpa);
    try testing.expect(!(try tree.diff(empty, full, &all, 0)).truncated);
    var changes: std.ArrayList(u8) = .empty;
    defer changes.deinit(gpa);
    for ([_]u64{ 1, 7, n - 1, n, n + 1 }) |max| {
        changes.clearRetainingCapacity();
        const stats = try tree.diff(empty, full, &changes, max);
        try testing.expectEqual(max < n, stats.truncated);
        // The first min(max, n) records of the whole diff, byte for byte.
        var reader: Reader = .{ .bytes = all.items };
        var records_read: u64 = 0;
        while (records_read < @min(max, n)) : (records_read += 1) {
            _ = try reader.take(1);
            _ = try reader.path();
            _ = try reader.take(2 * 41); // old (zeroed: added) and new values
        }
        try testing.expectEqualSlices(u8, all.items[0..reader.pos], changes.items);
    }
    // Deletions are bounded as well (the walk's other side; modifications: the bounded
    // diff test in tests/tree/test_tree_edges.py).
    changes.clearRetainingCapacity();
    try testing.expect((try tree.diff(full, empty, &changes, 5)).truncated);
    try testing.expectEqual(@as(u8, change_deleted), changes.items[0]);
}

test "bad input is InvalidArgument, missing and corrupt nodes are reported" {
    const gpa = testing.allocator;
    var store: MemStore = .{ .gpa = gpa };
    defer store.deinit();
    const tree = Tree.init(gpa, store.loader());
    var nodes: std.ArrayList(u8) = .empty;
    defer nodes.deinit(gpa);
    // Unsorted entries, bad mode, truncated record, empty path.
    var records = try entryRecords(gpa, &.{ "b", "a" }, 1);
    defer records.deinit(gpa);
    try testing.expectError(error.InvalidArgument, tree.build(records.items, &nodes));
    try testing.expectError(error.InvalidArgument, tree.build(records.items[0 .. records.items.len - 1], &nodes));
    try testing.expectError(error.InvalidArgument, tree.build("\x00\x00", &nodes));
    try testing.expectError(error.InvalidArgument, tree.apply(Tree.emptyHash(), "\x03\x01\x00a", &nodes));
    try testing.expectError(error.InvalidArgument, tree.lookup(Tree.emptyHash(), ""));
    // A root nobody stored.
    try testing.expectError(error.NodeNotFound, tree.lookup(@splat(1), "a"));
    // A node whose bytes do not hash to its name.
    try store.nodes.put(gpa, @splat(2), try gpa.dupe(u8, &tree_node.empty_node_bytes));
    try testing.expectError(error.Corrupt, tree.lookup(@splat(2), "a"));
}

test "ceilings: the first entry at or above each key, each node loaded once per call" {
    const gpa = testing.allocator;
    var store: MemStore = .{ .gpa = gpa };
    defer store.deinit();
    const tree = Tree.init(gpa, store.loader());
    const n = 4_000; // 2n + 1 probes: within ceilings_keys_max
    const stored = try StoredKeys.init(gpa, &tree, &store, n, 5);
    defer stored.deinit(gpa);
    const keys = stored.keys;
    const root = stored.root;

    // Probes: every stored key, a key just below each (its ceiling is that key), and
    // keys above everything.
    var probes: std.ArrayList(u8) = .empty;
    defer probes.deinit(gpa);
    for (keys) |k| {
        try appendInt(gpa, &probes, u16, @intCast(k.len));
        try probes.appendSlice(gpa, k);
        try appendInt(gpa, &probes, u16, @intCast(k.len - 1)); // "dir3/file0000012.tx" < key
        try probes.appendSlice(gpa, k[0 .. k.len - 1]);
    }
    try appendInt(gpa, &probes, u16, 1);
    try probes.append(gpa, 0xff);
    const loads_before = store.loads;
    var out: std.ArrayList(u8) = .empty;
    defer out.deinit(gpa);
    try testing.expectEqual(@as(usize, 2 * n + 1), try tree.ceilings(root, probes.items, &out));
    // One call loads each node at most once: no more loads than the tree has nodes.
    try testing.expect(store.loads - loads_before <= store.nodes.count());
    var r: Reader = .{ .bytes = out.items };
    for (keys) |k| {
        for (0..2) |_| {
            try testing.expectEqual(@as(u8, 1), try r.int(u8));
            const e = try r.entry();
            try testing.expectEqualStrings(k, e.key);
        }
    }
    try testing.expectEqual(@as(u8, 0), try r.int(u8));
    try testing.expect(r.done());

    // Bad key records: empty, too long, cut short. Nothing is returned as found.
    const bad = [_][]const u8{ "\x00\x00", "\x01", "\x05\x00abc", "\x01\x10" };
    for (bad) |b| {
        out.clearRetainingCapacity();
        try testing.expectError(error.InvalidArgument, tree.ceilings(root, b, &out));
    }
    // No keys: nothing to do. One key too many: refused, whatever the keys.
    out.clearRetainingCapacity();
    try testing.expectEqual(@as(usize, 0), try tree.ceilings(root, "", &out));
    probes.clearRetainingCapacity();
    for (0..ceilings_keys_max) |_| try probes.appendSlice(gpa, "\x01\x00a");
    out.clearRetainingCapacity();
    try testing.expectEqual(@as(usize, ceilings_keys_max), try tree.ceilings(root, probes.items, &out));
    try probes.appendSlice(gpa, "\x01\x00a");
    out.clearRetainingCapacity();
    try testing.expectError(error.LimitExceeded, tree.ceilings(root, probes.items, &out));
}
