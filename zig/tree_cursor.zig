//! Reading a stored tree: a per-call node source (loader + cache + checks) and
//! cursors over one level of the tree.
//!
//! Nodes come from the caller's loader (in the server: the store through its
//! cache). Every node is checked on arrival: its bytes must hash to the hash
//! that named it, decode cleanly, and agree with the parent entry that led to it
//! (level, last key, count, size). A tree that fails any check is Corrupt.
const std = @import("std");
const assert = std.debug.assert;
const tree_node = @import("tree_node.zig");
const Node = tree_node.Node;
const Entry = tree_node.Entry;
const Hash = tree_node.Hash;

pub const LoadError = error{ NodeNotFound, LoaderFailed };

/// Fetches the bytes of a node by hash. The bytes need only stay valid until the
/// next call of `load_fn` with the same context: the source copies them at once.
pub const Loader = struct {
    ctx: ?*anyopaque,
    load_fn: *const fn (ctx: ?*anyopaque, hash: *const Hash) LoadError![]const u8,
};

pub const Error = error{ Corrupt, OutOfMemory, NodeNotFound, LoaderFailed };

/// Where the nodes of one call come from. Everything it returns lives in `arena`
/// and is freed when the call ends.
pub const Source = struct {
    arena: std.mem.Allocator,
    loader: Loader,
    empty_hash: Hash,
    cache: std.AutoHashMapUnmanaged(Hash, *Node) = .empty,
    loads: u64 = 0,

    pub fn init(arena: std.mem.Allocator, loader: Loader) Source {
        return .{ .arena = arena, .loader = loader, .empty_hash = tree_node.emptyTreeHash() };
    }

    pub fn contains(src: *const Source, hash: Hash) bool {
        return src.cache.contains(hash);
    }

    pub fn fetch(src: *Source, hash: Hash) Error!*Node {
        if (src.cache.get(hash)) |n| return n;
        // The empty tree is known without a store, so a new project needs no node.
        const bytes: []const u8 = if (std.mem.eql(u8, &hash, &src.empty_hash))
            &tree_node.empty_node_bytes
        else blk: {
            const loaded = try src.loader.load_fn(src.loader.ctx, &hash);
            src.loads += 1;
            if (loaded.len > tree_node.node_bytes_max) return error.Corrupt;
            break :blk try src.arena.dupe(u8, loaded);
        };
        if (!std.mem.eql(u8, &tree_node.nodeHash(bytes), &hash)) return error.Corrupt;
        const n = try src.arena.create(Node);
        n.* = try tree_node.decode(src.arena, bytes);
        try src.cache.put(src.arena, hash, n);
        return n;
    }

    /// The root of a tree; any node can be a root except that its level bounds depth.
    pub fn root(src: *Source, hash: Hash) Error!*Node {
        return src.fetch(hash);
    }

    /// The child under entry `i` of `parent`, checked against that entry.
    pub fn child(src: *Source, parent: *const Node, i: usize) Error!*Node {
        assert(parent.level > 0 and i < parent.entries.len);
        const e = parent.entries[i];
        const c = try src.fetch(e.hash);
        if (c.level + 1 != parent.level or c.entries.len == 0) return error.Corrupt;
        if (!std.mem.eql(u8, c.lastKey(), e.key)) return error.Corrupt;
        if (c.count != e.count or c.size != e.size) return error.Corrupt;
        if (i > 0 and std.mem.order(u8, parent.entries[i - 1].key, c.entries[0].key) != .lt) return error.Corrupt;
        return c;
    }
};

/// A position in key space: below everything, a key, or above everything.
pub const Bound = union(enum) {
    neg_inf,
    key: []const u8,
    pos_inf,
};

/// Whether `key` lies above `lo` (or on it, when inclusive).
pub fn above(key: []const u8, lo: Bound, inclusive: bool) bool {
    return switch (lo) {
        .neg_inf => true,
        .pos_inf => false,
        .key => |k| switch (std.mem.order(u8, key, k)) {
            .gt => true,
            .eq => inclusive,
            .lt => false,
        },
    };
}

pub fn atOrBelow(key: []const u8, hi: Bound) bool {
    return switch (hi) {
        .neg_inf => false,
        .pos_inf => true,
        .key => |k| std.mem.order(u8, key, k) != .gt,
    };
}

/// Index of the first entry above `lo`, or null.
pub fn firstAbove(n: *const Node, lo: Bound, inclusive: bool) ?usize {
    var low: usize = 0;
    var high: usize = n.entries.len;
    while (low < high) {
        const mid = low + (high - low) / 2;
        if (above(n.entries[mid].key, lo, inclusive)) high = mid else low = mid + 1;
    }
    return if (low < n.entries.len) low else null;
}

const Frame = struct { node: *Node, idx: usize };

/// A cursor over the entries of one level (0 = leaves), holding the path from
/// the root down to that level.
pub const Cursor = struct {
    src: *Source,
    frames: [tree_node.depth_max]Frame = undefined,
    top: u8,
    level: u8,
    exhausted: bool = false,

    /// Positions at the first entry of `level` above `lo`; with `node_start`, at
    /// the start of the node holding it instead (or of the level's last node if
    /// no entry is above `lo`). A level above the root is empty: exhausted.
    pub fn seek(src: *Source, root: *Node, level: u8, lo: Bound, inclusive: bool, node_start: bool) Error!Cursor {
        var c: Cursor = .{ .src = src, .top = root.level, .level = level };
        if (level > root.level or root.entries.len == 0) {
            c.exhausted = true;
            return c;
        }
        var n = root;
        var l = root.level;
        while (l > level) : (l -= 1) {
            const i = firstAbove(n, lo, inclusive) orelse n.entries.len - 1;
            c.frames[l] = .{ .node = n, .idx = i };
            n = try src.child(n, i);
        }
        if (node_start) {
            c.frames[level] = .{ .node = n, .idx = 0 };
        } else if (firstAbove(n, lo, inclusive)) |i| {
            c.frames[level] = .{ .node = n, .idx = i };
        } else {
            c.frames[level] = .{ .node = n, .idx = n.entries.len - 1 };
            try c.advance();
        }
        return c;
    }

    pub fn peek(c: *const Cursor) ?*const Entry {
        if (c.exhausted) return null;
        const f = c.frames[c.level];
        return &f.node.entries[f.idx];
    }

    pub fn advance(c: *Cursor) Error!void {
        assert(!c.exhausted);
        c.frames[c.level].idx += 1;
        if (c.frames[c.level].idx < c.frames[c.level].node.entries.len) return;
        var l: u8 = c.level + 1;
        while (true) : (l += 1) {
            if (l > c.top) {
                c.exhausted = true;
                return;
            }
            c.frames[l].idx += 1;
            if (c.frames[l].idx < c.frames[l].node.entries.len) break;
        }
        while (l > c.level) : (l -= 1) {
            const next = try c.src.child(c.frames[l].node, c.frames[l].idx);
            c.frames[l - 1] = .{ .node = next, .idx = 0 };
        }
    }

    pub fn atNodeStart(c: *const Cursor) bool {
        return !c.exhausted and c.frames[c.level].idx == 0;
    }

    /// The last key of the node before the current one at this level.
    pub fn prevNodeLastKey(c: *const Cursor) Bound {
        assert(!c.exhausted);
        var l: usize = c.level + 1;
        while (l <= c.top) : (l += 1) {
            const f = c.frames[l];
            if (f.idx > 0) return .{ .key = f.node.entries[f.idx - 1].key };
        }
        return .neg_inf;
    }

    pub fn nodeLastKey(c: *const Cursor) []const u8 {
        assert(!c.exhausted);
        return c.frames[c.level].node.lastKey();
    }

    pub fn nodeIsLast(c: *const Cursor) bool {
        assert(!c.exhausted);
        var l: usize = c.level + 1;
        while (l <= c.top) : (l += 1) {
            const f = c.frames[l];
            if (f.idx + 1 < f.node.entries.len) return false;
        }
        return true;
    }
};

/// A cursor that stays as high in the tree as it can: it points at an entry of
/// some level and only descends when asked, so a diff can compare whole
/// subtrees by hash without loading them.
pub const LazyCursor = struct {
    src: *Source,
    frames: [tree_node.depth_max]Frame = undefined,
    top: u8,
    level: u8,
    exhausted: bool,

    pub fn init(src: *Source, root: *Node) LazyCursor {
        var c: LazyCursor = .{ .src = src, .top = root.level, .level = root.level, .exhausted = root.entries.len == 0 };
        c.frames[root.level] = .{ .node = root, .idx = 0 };
        return c;
    }

    pub fn entry(c: *const LazyCursor) *const Entry {
        assert(!c.exhausted);
        const f = c.frames[c.level];
        return &f.node.entries[f.idx];
    }

    pub fn descend(c: *LazyCursor) Error!void {
        assert(!c.exhausted and c.level > 0);
        const f = c.frames[c.level];
        const next = try c.src.child(f.node, f.idx);
        c.level -= 1;
        c.frames[c.level] = .{ .node = next, .idx = 0 };
    }

    /// Past the current entry (and the whole subtree under it).
    pub fn advance(c: *LazyCursor) void {
        assert(!c.exhausted);
        while (true) {
            const f = &c.frames[c.level];
            f.idx += 1;
            if (f.idx < f.node.entries.len) return;
            if (c.level == c.top) {
                c.exhausted = true;
                return;
            }
            c.level += 1;
        }
    }
};
