//! Binary codecs of the stored objects: head, session, landing record, rollup.
//! Every byte is documented in docs/formats.md; integers are little-endian.
//!
//! Variable-length parts travel as spans (offset, len) into one buffer: the
//! encoder reads its inputs as spans of a caller buffer, the decoder returns
//! spans of the input, so neither direction allocates per item and the Python
//! side converts whole columns at once. Lists of paths are NUL-separated (a
//! path never contains NUL). Decoders check every length, count and enum
//! against the bytes that remain; encoders check the same rules, then run the
//! decoder over their own output, so whatever encodes also decodes.
const std = @import("std");
const bloom = @import("bloom.zig");
const hash = @import("hash.zig");
const paths = @import("paths.zig");

pub const Error = error{ InvalidArgument, Corrupt, OutOfMemory, LimitExceeded };

// ---- limits (codec ceilings; the service's configurable limits sit below them) ----
pub const owner_bytes_max = 1024;
pub const author_bytes_max = owner_bytes_max;
pub const goal_bytes_max = 16 * 1024 * 1024;
pub const entry_bytes_max = 16 * 1024 * 1024;
pub const operations_max = 1_000_000;
pub const decisions_max = 1_000_000;
pub const messages_max = 1_000_000;
pub const conflict_paths_max = operations_max;
pub const landing_paths_max = operations_max;
pub const session_id_bytes = 16;

comptime {
    // Counts and string lengths are stored as u32.
    std.debug.assert(goal_bytes_max <= std.math.maxInt(u32));
    std.debug.assert(entry_bytes_max <= std.math.maxInt(u32));
    std.debug.assert(operations_max <= std.math.maxInt(u32));
    std.debug.assert(decisions_max <= std.math.maxInt(u32) and messages_max <= std.math.maxInt(u32));
    // The largest path list of a session fits a u64 length with room to spare.
    std.debug.assert(@as(u128, operations_max) * (paths.path_bytes_max + 1) < std.math.maxInt(u64));
    std.debug.assert(author_bytes_max <= goal_bytes_max);
}

pub const OpKind = enum(u8) { write = 1, delete = 2 };
pub const Mode = enum(u8) { file = 0, exec = 1, symlink = 2 };
pub const State = enum(u8) { open = 0, landed = 1, conflicted = 2, abandoned = 3 };
pub const Role = enum(u8) { user = 0, agent = 1, system = 2 };

pub const Span = extern struct {
    offset: u64 = 0,
    len: u64 = 0,
};

/// Reads consecutive spans off a buffer, each checked against what remains.
const Cursor = struct {
    len: u64,
    offset: u64,

    fn take(self: *Cursor, n: u64) error{Corrupt}!Span {
        if (n > self.len - self.offset) return error.Corrupt;
        const span: Span = .{ .offset = self.offset, .len = n };
        self.offset += n;
        return span;
    }
};

fn slice(data: []const u8, span: Span) []const u8 {
    // Spans produced by Cursor or checked by `inBuffer` lie inside `data`.
    return data[@intCast(span.offset)..][0..@intCast(span.len)];
}

fn inBuffer(buffer: []const u8, span: Span) error{InvalidArgument}![]const u8 {
    if (span.offset > buffer.len or span.len > buffer.len - span.offset) return error.InvalidArgument;
    return slice(buffer, span);
}

fn le(comptime T: type, bytes: []const u8, at: usize) T {
    return std.mem.readInt(T, bytes[at..][0..@sizeOf(T)], .little);
}

fn putLe(comptime T: type, bytes: []u8, at: usize, value: T) void {
    std.mem.writeInt(T, bytes[at..][0..@sizeOf(T)], value, .little);
}

fn checkHeader(data: []const u8, magic: *const [4]u8, header_bytes: usize) error{Corrupt}!void {
    if (data.len < header_bytes) return error.Corrupt;
    if (!std.mem.eql(u8, data[0..4], magic)) return error.Corrupt;
    if (data[4] != format_version) return error.Corrupt;
}

fn writeHeader(out: []u8, magic: *const [4]u8) void {
    @memcpy(out[0..4], magic);
    out[4] = format_version;
}

pub const format_version: u8 = 1;

fn validateLandingBloom(bytes: []const u8) error{Corrupt}!void {
    const parsed = try bloom.validate(bytes);
    if (!parsed.geometry.eql(bloom.Geometry.landing)) return error.Corrupt;
}

/// The canonical serialized landing-geometry bloom of a validated path list.
fn landingBloomOf(allocator: std.mem.Allocator, list: []const u8, count: u64) error{OutOfMemory}![]u8 {
    var filter = bloom.Bloom.init(allocator, bloom.Geometry.landing) catch |err| switch (err) {
        error.OutOfMemory => return error.OutOfMemory,
        error.InvalidArgument, error.Corrupt => unreachable, // the landing geometry is valid (comptime-checked)
    };
    defer filter.deinit();
    filter.addList(list, count);
    return filter.serialize(allocator);
}

/// Encoder-side check of a path list: limits first (LimitExceeded), then syntax.
fn checkPathList(list: []const u8, count: u64, count_max: u64) Error!void {
    if (count > count_max) return error.LimitExceeded;
    paths.validateList(list, count, .sorted_paths) catch return error.InvalidArgument;
}

/// Runs the decoder over an encoder's output: any rule the encoder's own checks
/// missed is the caller's bad input, never a corrupt stored object.
fn verifyEncoded(allocator: std.mem.Allocator, out: []u8, comptime decode: anytype) Error![]u8 {
    _ = decode(out) catch {
        allocator.free(out);
        return error.InvalidArgument;
    };
    return out;
}

// ================================ head ================================

pub const head_magic = "MICH";
pub const head_bytes = 56;

pub const Head = extern struct {
    position: u64,
    tree_hash: [hash.digest_bytes]u8,
    hlc: u64,
};

pub fn encodeHead(head: Head, out: *[head_bytes]u8) void {
    writeHeader(out, head_magic);
    @memset(out[5..8], 0);
    putLe(u64, out, 8, head.position);
    @memcpy(out[16..48], &head.tree_hash);
    putLe(u64, out, 48, head.hlc);
}

pub fn decodeHead(data: []const u8) error{Corrupt}!Head {
    try checkHeader(data, head_magic, head_bytes);
    if (data.len != head_bytes) return error.Corrupt;
    if (data[5] != 0 or data[6] != 0 or data[7] != 0) return error.Corrupt;
    return .{ .position = le(u64, data, 8), .tree_hash = data[16..48].*, .hlc = le(u64, data, 48) };
}

// ================================ rollup ================================

pub const rollup_magic = "MICR";
pub const rollup_header_bytes = 32;
pub const rollup_levels = [_]u64{ 100, 10_000, 1_000_000 }; // landings per window of L1, L2, L3

pub const RollupFields = extern struct {
    level: u8,
    start_position: u64,
    count: u64,
    bloom: Span,
};

fn checkRollupScalars(level: u8, start_position: u64, count: u64) bool {
    if (level < 1 or level > rollup_levels.len) return false;
    return start_position >= 1 and count >= 1 and count <= rollup_levels[level - 1];
}

pub fn decodeRollup(data: []const u8) error{Corrupt}!RollupFields {
    try checkHeader(data, rollup_magic, rollup_header_bytes);
    if (data[6] != 0 or data[7] != 0) return error.Corrupt;
    const fields: RollupFields = .{
        .level = data[5],
        .start_position = le(u64, data, 8),
        .count = le(u64, data, 16),
        .bloom = .{ .offset = rollup_header_bytes, .len = le(u64, data, 24) },
    };
    if (!checkRollupScalars(fields.level, fields.start_position, fields.count)) return error.Corrupt;
    if (fields.bloom.len != data.len - rollup_header_bytes) return error.Corrupt;
    try validateLandingBloom(data[rollup_header_bytes..]);
    return fields;
}

pub fn encodeRollup(allocator: std.mem.Allocator, fields: *const RollupFields, buffer: []const u8) Error![]u8 {
    if (!checkRollupScalars(fields.level, fields.start_position, fields.count)) return error.InvalidArgument;
    const bloom_bytes = try inBuffer(buffer, fields.bloom);
    validateLandingBloom(bloom_bytes) catch return error.InvalidArgument;
    const out = try allocator.alloc(u8, rollup_header_bytes + bloom_bytes.len);
    writeHeader(out, rollup_magic);
    out[5] = fields.level;
    out[6] = 0;
    out[7] = 0;
    putLe(u64, out, 8, fields.start_position);
    putLe(u64, out, 16, fields.count);
    putLe(u64, out, 24, bloom_bytes.len);
    @memcpy(out[rollup_header_bytes..], bloom_bytes);
    return verifyEncoded(allocator, out, decodeRollup);
}

// ================================ landing record ================================

pub const landing_magic = "MICL";
pub const landing_header_bytes = 136;

pub const LandingFields = extern struct {
    position: u64,
    session_id: [session_id_bytes]u8,
    parent_tree: [hash.digest_bytes]u8,
    tree_hash: [hash.digest_bytes]u8,
    hlc: u64,
    path_count: u64,
    author: Span,
    goal: Span,
    paths: Span,
    /// Decode only: the serialized bloom of `paths` (landing geometry).
    bloom: Span,
};

pub fn decodeLanding(data: []const u8) error{Corrupt}!LandingFields {
    try checkHeader(data, landing_magic, landing_header_bytes);
    if (data[5] != 0 or data[6] != 0 or data[7] != 0 or le(u32, data, 116) != 0) return error.Corrupt;
    var fields: LandingFields = .{
        .position = le(u64, data, 8),
        .session_id = data[16..32].*,
        .parent_tree = data[32..64].*,
        .tree_hash = data[64..96].*,
        .hlc = le(u64, data, 96),
        .path_count = le(u32, data, 104),
        .author = .{},
        .goal = .{},
        .paths = .{},
        .bloom = .{},
    };
    if (fields.position < 1) return error.Corrupt;
    if (fields.path_count > landing_paths_max) return error.Corrupt;
    const author_len = le(u32, data, 108);
    const goal_len = le(u32, data, 112);
    if (author_len > author_bytes_max or goal_len > goal_bytes_max) return error.Corrupt;
    var cursor: Cursor = .{ .len = data.len, .offset = landing_header_bytes };
    fields.author = try cursor.take(author_len);
    fields.goal = try cursor.take(goal_len);
    fields.paths = try cursor.take(le(u64, data, 120));
    fields.bloom = try cursor.take(le(u64, data, 128));
    if (cursor.offset != data.len) return error.Corrupt;
    if (!std.unicode.utf8ValidateSlice(slice(data, fields.author))) return error.Corrupt;
    if (!std.unicode.utf8ValidateSlice(slice(data, fields.goal))) return error.Corrupt;
    paths.validateList(slice(data, fields.paths), fields.path_count, .sorted_paths) catch return error.Corrupt;
    try validateLandingBloom(slice(data, fields.bloom));
    return fields;
}

pub fn encodeLanding(allocator: std.mem.Allocator, fields: *const LandingFields, buffer: []const u8) Error![]u8 {
    if (fields.position < 1) return error.InvalidArgument;
    const author = try inBuffer(buffer, fields.author);
    const goal = try inBuffer(buffer, fields.goal);
    const list = try inBuffer(buffer, fields.paths);
    if (author.len > author_bytes_max or goal.len > goal_bytes_max) return error.LimitExceeded;
    try checkPathList(list, fields.path_count, landing_paths_max);
    const bloom_bytes = try landingBloomOf(allocator, list, fields.path_count);
    defer allocator.free(bloom_bytes);

    const total = landing_header_bytes + author.len + goal.len + list.len + bloom_bytes.len;
    const out = try allocator.alloc(u8, total);
    writeHeader(out, landing_magic);
    @memset(out[5..8], 0);
    putLe(u64, out, 8, fields.position);
    @memcpy(out[16..32], &fields.session_id);
    @memcpy(out[32..64], &fields.parent_tree);
    @memcpy(out[64..96], &fields.tree_hash);
    putLe(u64, out, 96, fields.hlc);
    putLe(u32, out, 104, @intCast(fields.path_count));
    putLe(u32, out, 108, @intCast(author.len));
    putLe(u32, out, 112, @intCast(goal.len));
    putLe(u32, out, 116, 0);
    putLe(u64, out, 120, list.len);
    putLe(u64, out, 128, bloom_bytes.len);
    var offset: usize = landing_header_bytes;
    for ([_][]const u8{ author, goal, list, bloom_bytes }) |part| {
        @memcpy(out[offset..][0..part.len], part);
        offset += part.len;
    }
    std.debug.assert(offset == total);
    return verifyEncoded(allocator, out, decodeLanding);
}

// ================================ session ================================

pub const session_magic = "MICS";
pub const session_header_bytes = 128;

pub const SessionFields = extern struct {
    id: [session_id_bytes]u8,
    state: u8,
    base_position: u64,
    landed_position: u64,
    attempt_position: u64,
    created_at: u64,
    updated_at: u64,
    op_count: u64,
    decision_count: u64,
    message_count: u64,
    conflict_count: u64,
    owner: Span,
    goal: Span,
    op_kinds: Span, // op_count bytes (OpKind)
    op_modes: Span, // op_count bytes (Mode)
    op_sizes: Span, // op_count u64
    op_hashes: Span, // 32 bytes per write, in operation order
    op_paths: Span, // op_count paths, strictly increasing
    decision_ats: Span, // decision_count u64
    decision_lens: Span, // decision_count u32
    decision_text: Span,
    message_roles: Span, // message_count bytes (Role)
    message_ats: Span, // message_count u64
    message_lens: Span, // message_count u32
    message_text: Span,
    conflict_paths: Span, // conflict_count paths, strictly increasing
    /// Decode only: the serialized bloom of the operation paths (landing geometry).
    bloom: Span,
};

/// Kinds, modes and sizes of the operations: returns the number of writes.
fn checkOperations(kinds: []const u8, modes: []const u8, sizes: []const u8) error{Corrupt}!u64 {
    std.debug.assert(kinds.len == modes.len and sizes.len == kinds.len * 8);
    var writes: u64 = 0;
    for (kinds, modes, 0..) |kind_byte, mode_byte, i| {
        const kind = std.enums.fromInt(OpKind, kind_byte) orelse return error.Corrupt;
        _ = std.enums.fromInt(Mode, mode_byte) orelse return error.Corrupt;
        switch (kind) {
            .write => writes += 1,
            // A delete carries no blob: its mode and size are zero.
            .delete => if (mode_byte != 0 or le(u64, sizes, i * 8) != 0) return error.Corrupt,
        }
    }
    return writes;
}

/// Entry lengths (u32 each) must each be <= entry_bytes_max, sum to the text
/// length, and cut the text into valid UTF-8 entries.
fn checkEntries(lens: []const u8, text: []const u8) error{ Corrupt, LimitExceeded }!void {
    var offset: u64 = 0;
    var i: usize = 0;
    while (i < lens.len) : (i += 4) {
        const len = le(u32, lens, i);
        if (len > entry_bytes_max) return error.LimitExceeded;
        if (len > text.len - offset) return error.Corrupt;
        if (!std.unicode.utf8ValidateSlice(text[@intCast(offset)..][0..len])) return error.Corrupt;
        offset += len;
    }
    if (offset != text.len) return error.Corrupt;
}

fn checkRoles(roles: []const u8) error{Corrupt}!void {
    for (roles) |role| _ = std.enums.fromInt(Role, role) orelse return error.Corrupt;
}

pub fn decodeSession(data: []const u8) error{Corrupt}!SessionFields {
    try checkHeader(data, session_magic, session_header_bytes);
    if (data[6] != 0 or data[7] != 0) return error.Corrupt;
    _ = std.enums.fromInt(State, data[5]) orelse return error.Corrupt;
    var f: SessionFields = .{
        .id = data[8..24].*,
        .state = data[5],
        .base_position = le(u64, data, 24),
        .landed_position = le(u64, data, 32),
        .attempt_position = le(u64, data, 40),
        .created_at = le(u64, data, 48),
        .updated_at = le(u64, data, 56),
        .op_count = le(u32, data, 64),
        .decision_count = le(u32, data, 68),
        .message_count = le(u32, data, 72),
        .conflict_count = le(u32, data, 76),
        .owner = .{},
        .goal = .{},
        .op_kinds = .{},
        .op_modes = .{},
        .op_sizes = .{},
        .op_hashes = .{},
        .op_paths = .{},
        .decision_ats = .{},
        .decision_lens = .{},
        .decision_text = .{},
        .message_roles = .{},
        .message_ats = .{},
        .message_lens = .{},
        .message_text = .{},
        .conflict_paths = .{},
        .bloom = .{},
    };
    if (f.op_count > operations_max or f.decision_count > decisions_max or
        f.message_count > messages_max or f.conflict_count > conflict_paths_max) return error.Corrupt;
    const owner_len = le(u32, data, 80);
    const goal_len = le(u32, data, 84);
    if (owner_len > owner_bytes_max or goal_len > goal_bytes_max) return error.Corrupt;

    var cursor: Cursor = .{ .len = data.len, .offset = session_header_bytes };
    f.owner = try cursor.take(owner_len);
    f.goal = try cursor.take(goal_len);
    f.op_kinds = try cursor.take(f.op_count);
    f.op_modes = try cursor.take(f.op_count);
    f.op_sizes = try cursor.take(f.op_count * 8);
    const writes = try checkOperations(slice(data, f.op_kinds), slice(data, f.op_modes), slice(data, f.op_sizes));
    f.op_hashes = try cursor.take(writes * hash.digest_bytes);
    f.op_paths = try cursor.take(le(u64, data, 88));
    f.decision_ats = try cursor.take(f.decision_count * 8);
    f.decision_lens = try cursor.take(f.decision_count * 4);
    f.decision_text = try cursor.take(le(u64, data, 96));
    f.message_roles = try cursor.take(f.message_count);
    f.message_ats = try cursor.take(f.message_count * 8);
    f.message_lens = try cursor.take(f.message_count * 4);
    f.message_text = try cursor.take(le(u64, data, 104));
    f.conflict_paths = try cursor.take(le(u64, data, 112));
    f.bloom = try cursor.take(le(u64, data, 120));
    if (cursor.offset != data.len) return error.Corrupt;

    if (!std.unicode.utf8ValidateSlice(slice(data, f.owner))) return error.Corrupt;
    if (!std.unicode.utf8ValidateSlice(slice(data, f.goal))) return error.Corrupt;
    paths.validateList(slice(data, f.op_paths), f.op_count, .sorted_paths) catch return error.Corrupt;
    checkEntries(slice(data, f.decision_lens), slice(data, f.decision_text)) catch return error.Corrupt;
    try checkRoles(slice(data, f.message_roles));
    checkEntries(slice(data, f.message_lens), slice(data, f.message_text)) catch return error.Corrupt;
    paths.validateList(slice(data, f.conflict_paths), f.conflict_count, .sorted_paths) catch return error.Corrupt;
    try validateLandingBloom(slice(data, f.bloom));
    return f;
}

pub fn encodeSession(allocator: std.mem.Allocator, f: *const SessionFields, buffer: []const u8) Error![]u8 {
    _ = std.enums.fromInt(State, f.state) orelse return error.InvalidArgument;
    if (f.op_count > operations_max or f.decision_count > decisions_max or
        f.message_count > messages_max or f.conflict_count > conflict_paths_max) return error.LimitExceeded;
    const owner = try inBuffer(buffer, f.owner);
    const goal = try inBuffer(buffer, f.goal);
    if (owner.len > owner_bytes_max or goal.len > goal_bytes_max) return error.LimitExceeded;

    // Columns whose length follows from a count must have exactly that length.
    const Column = struct { span: Span, len: u64 };
    const columns = [_]Column{
        .{ .span = f.op_kinds, .len = f.op_count },
        .{ .span = f.op_modes, .len = f.op_count },
        .{ .span = f.op_sizes, .len = f.op_count * 8 },
        .{ .span = f.decision_ats, .len = f.decision_count * 8 },
        .{ .span = f.decision_lens, .len = f.decision_count * 4 },
        .{ .span = f.message_roles, .len = f.message_count },
        .{ .span = f.message_ats, .len = f.message_count * 8 },
        .{ .span = f.message_lens, .len = f.message_count * 4 },
    };
    for (columns) |column| {
        _ = try inBuffer(buffer, column.span);
        if (column.span.len != column.len) return error.InvalidArgument;
    }
    const writes = checkOperations(
        slice(buffer, f.op_kinds),
        slice(buffer, f.op_modes),
        slice(buffer, f.op_sizes),
    ) catch return error.InvalidArgument;
    const hashes = try inBuffer(buffer, f.op_hashes);
    if (hashes.len != writes * hash.digest_bytes) return error.InvalidArgument;
    const op_paths = try inBuffer(buffer, f.op_paths);
    try checkPathList(op_paths, f.op_count, operations_max);
    const conflict_paths = try inBuffer(buffer, f.conflict_paths);
    try checkPathList(conflict_paths, f.conflict_count, conflict_paths_max);
    const decision_text = try inBuffer(buffer, f.decision_text);
    checkEntries(slice(buffer, f.decision_lens), decision_text) catch |err| return switch (err) {
        error.LimitExceeded => error.LimitExceeded,
        error.Corrupt => error.InvalidArgument,
    };
    const message_text = try inBuffer(buffer, f.message_text);
    checkEntries(slice(buffer, f.message_lens), message_text) catch |err| return switch (err) {
        error.LimitExceeded => error.LimitExceeded,
        error.Corrupt => error.InvalidArgument,
    };

    const bloom_bytes = try landingBloomOf(allocator, op_paths, f.op_count);
    defer allocator.free(bloom_bytes);

    const parts = [_][]const u8{
        owner,                          goal,
        slice(buffer, f.op_kinds),      slice(buffer, f.op_modes),
        slice(buffer, f.op_sizes),      hashes,
        op_paths,                       slice(buffer, f.decision_ats),
        slice(buffer, f.decision_lens), decision_text,
        slice(buffer, f.message_roles), slice(buffer, f.message_ats),
        slice(buffer, f.message_lens),  message_text,
        conflict_paths,                 bloom_bytes,
    };
    var total: usize = session_header_bytes;
    for (parts) |part| total += part.len;
    const out = try allocator.alloc(u8, total);
    writeHeader(out, session_magic);
    out[5] = f.state;
    out[6] = 0;
    out[7] = 0;
    @memcpy(out[8..24], &f.id);
    putLe(u64, out, 24, f.base_position);
    putLe(u64, out, 32, f.landed_position);
    putLe(u64, out, 40, f.attempt_position);
    putLe(u64, out, 48, f.created_at);
    putLe(u64, out, 56, f.updated_at);
    putLe(u32, out, 64, @intCast(f.op_count));
    putLe(u32, out, 68, @intCast(f.decision_count));
    putLe(u32, out, 72, @intCast(f.message_count));
    putLe(u32, out, 76, @intCast(f.conflict_count));
    putLe(u32, out, 80, @intCast(owner.len));
    putLe(u32, out, 84, @intCast(goal.len));
    putLe(u64, out, 88, op_paths.len);
    putLe(u64, out, 96, decision_text.len);
    putLe(u64, out, 104, message_text.len);
    putLe(u64, out, 112, conflict_paths.len);
    putLe(u64, out, 120, bloom_bytes.len);
    var offset: usize = session_header_bytes;
    for (parts) |part| {
        @memcpy(out[offset..][0..part.len], part);
        offset += part.len;
    }
    std.debug.assert(offset == total);
    return verifyEncoded(allocator, out, decodeSession);
}

// ================================ tests ================================

const testing = std.testing;

test "head round trip and golden bytes" {
    var tree: [32]u8 = undefined;
    for (&tree, 0..) |*b, i| b.* = @intCast(i);
    var out: [head_bytes]u8 = undefined;
    encodeHead(.{ .position = 7, .tree_hash = tree, .hlc = 0x0102 }, &out);
    try testing.expectEqualSlices(u8, "MICH\x01\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00", out[0..16]);
    const head = try decodeHead(&out);
    try testing.expectEqual(@as(u64, 7), head.position);
    try testing.expectEqual(tree, head.tree_hash);
    try testing.expectError(error.Corrupt, decodeHead(out[0..55]));
    out[5] = 1;
    try testing.expectError(error.Corrupt, decodeHead(&out));
}

test "landing round trip and rejections" {
    const buffer = "alicefix it\x00a/b\x00a/c";
    var fields: LandingFields = .{
        .position = 3,
        .session_id = @splat(9),
        .parent_tree = @splat(1),
        .tree_hash = @splat(2),
        .hlc = 42,
        .path_count = 2,
        .author = .{ .offset = 0, .len = 5 },
        .goal = .{ .offset = 5, .len = 6 },
        .paths = .{ .offset = 12, .len = 7 },
        .bloom = .{},
    };
    const bytes = try encodeLanding(testing.allocator, &fields, buffer);
    defer testing.allocator.free(bytes);
    const decoded = try decodeLanding(bytes);
    try testing.expectEqualStrings("a/b\x00a/c", slice(bytes, decoded.paths));
    try testing.expectEqualStrings("alice", slice(bytes, decoded.author));
    var filter = try bloom.Bloom.deserialize(testing.allocator, slice(bytes, decoded.bloom));
    defer filter.deinit();
    try testing.expect(filter.mayContain("a/b") and filter.mayContain("a/c"));
    var i: usize = 0;
    while (i < bytes.len) : (i += 1) try testing.expectError(error.Corrupt, decodeLanding(bytes[0..i]));

    fields.path_count = 3;
    try testing.expectError(error.InvalidArgument, encodeLanding(testing.allocator, &fields, buffer));
    fields.path_count = 2;
    fields.paths.len = 100;
    try testing.expectError(error.InvalidArgument, encodeLanding(testing.allocator, &fields, buffer));
}

test "session round trip" {
    // owner "bob", goal "g", ops: write a (mode 1, size 5), delete b; one decision; one message.
    const buffer = "bob" ++ "g" ++ "\x01\x02" ++ "\x01\x00" ++
        "\x05\x00\x00\x00\x00\x00\x00\x00" ++ "\x00\x00\x00\x00\x00\x00\x00\x00" ++
        "\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaa" ++ "a\x00b" ++
        "\x09\x00\x00\x00\x00\x00\x00\x00" ++ "\x02\x00\x00\x00" ++ "ok" ++
        "\x01" ++ "\x0a\x00\x00\x00\x00\x00\x00\x00" ++ "\x02\x00\x00\x00" ++ "hi" ++
        "a";
    var offset: u64 = 0;
    const lens = [_]u64{ 3, 1, 2, 2, 16, 32, 3, 8, 4, 2, 1, 8, 4, 2, 1 };
    var spans: [lens.len]Span = undefined;
    for (lens, 0..) |len, i| {
        spans[i] = .{ .offset = offset, .len = len };
        offset += len;
    }
    try testing.expectEqual(@as(u64, buffer.len), offset);
    const fields: SessionFields = .{
        .id = @splat(7),
        .state = 2,
        .base_position = 1,
        .landed_position = 0,
        .attempt_position = 0,
        .created_at = 100,
        .updated_at = 200,
        .op_count = 2,
        .decision_count = 1,
        .message_count = 1,
        .conflict_count = 1,
        .owner = spans[0],
        .goal = spans[1],
        .op_kinds = spans[2],
        .op_modes = spans[3],
        .op_sizes = spans[4],
        .op_hashes = spans[5],
        .op_paths = spans[6],
        .decision_ats = spans[7],
        .decision_lens = spans[8],
        .decision_text = spans[9],
        .message_roles = spans[10],
        .message_ats = spans[11],
        .message_lens = spans[12],
        .message_text = spans[13],
        .conflict_paths = spans[14],
        .bloom = .{},
    };
    const bytes = try encodeSession(testing.allocator, &fields, buffer);
    defer testing.allocator.free(bytes);
    const decoded = try decodeSession(bytes);
    try testing.expectEqualStrings(buffer, bytes[session_header_bytes..][0..buffer.len]);
    try testing.expectEqual(@as(u64, 2), decoded.op_count);
    try testing.expectEqualStrings("hi", slice(bytes, decoded.message_text));

    var bad = fields;
    bad.op_hashes.len = 0; // the write needs its hash
    try testing.expectError(error.InvalidArgument, encodeSession(testing.allocator, &bad, buffer));
    bad = fields;
    bad.state = 9;
    try testing.expectError(error.InvalidArgument, encodeSession(testing.allocator, &bad, buffer));
    bad = fields;
    bad.op_count = operations_max + 1;
    try testing.expectError(error.LimitExceeded, encodeSession(testing.allocator, &bad, buffer));

    const copy = try testing.allocator.dupe(u8, bytes);
    defer testing.allocator.free(copy);
    copy[session_header_bytes + 4] = 3; // an op kind that does not exist
    try testing.expectError(error.Corrupt, decodeSession(copy));
}

test "enum values are pinned (must match mic_core.h and the stored bytes)" {
    try testing.expectEqual(@as(u8, 1), @backingInt(OpKind.write));
    try testing.expectEqual(@as(u8, 2), @backingInt(OpKind.delete));
    try testing.expectEqual(@as(u8, 2), @backingInt(Mode.symlink));
    try testing.expectEqual(@as(u8, 3), @backingInt(State.abandoned));
    try testing.expectEqual(@as(u8, 2), @backingInt(Role.system));
    try testing.expectEqual(@as(u8, 1), @backingInt(bloom.Encoding.sparse));
}

test "extern struct layouts are pinned (must match mic_core.h)" {
    try testing.expectEqual(@as(usize, 16), @sizeOf(Span));
    try testing.expectEqual(@as(usize, 48), @sizeOf(Head));
    try testing.expectEqual(@as(usize, 40), @sizeOf(RollupFields));
    try testing.expectEqual(@as(usize, 168), @sizeOf(LandingFields));
    try testing.expectEqual(@as(usize, 352), @sizeOf(SessionFields));
    try testing.expectEqual(@as(usize, 24), @offsetOf(SessionFields, "base_position"));
    try testing.expectEqual(@as(usize, 96), @offsetOf(SessionFields, "owner"));
    try testing.expectEqual(@as(usize, 336), @offsetOf(SessionFields, "bloom"));
    try testing.expectEqual(@as(usize, 96), @offsetOf(LandingFields, "path_count"));
}

test "no leaks on any rejected input (std.testing.allocator checks)" {
    // Every truncation of a valid bloom, landing and session through the
    // allocating paths: deserialize and the encoders' verify step.
    var filter = try bloom.Bloom.init(testing.allocator, bloom.Geometry.landing);
    defer filter.deinit();
    filter.add("a/b");
    filter.add("c");
    const bloom_bytes = try filter.serialize(testing.allocator);
    defer testing.allocator.free(bloom_bytes);
    var cut: usize = 0;
    while (cut < bloom_bytes.len) : (cut += 1) {
        try testing.expectError(error.Corrupt, bloom.Bloom.deserialize(testing.allocator, bloom_bytes[0..cut]));
    }
    const rollup: RollupFields = .{ .level = 1, .start_position = 1, .count = 1, .bloom = .{ .offset = 0, .len = bloom_bytes.len } };
    const rollup_bytes = try encodeRollup(testing.allocator, &rollup, bloom_bytes);
    defer testing.allocator.free(rollup_bytes);
    cut = 0;
    while (cut < bloom_bytes.len) : (cut += 1) {
        var bad = rollup;
        bad.bloom.len = cut;
        try testing.expectError(error.InvalidArgument, encodeRollup(testing.allocator, &bad, bloom_bytes));
    }
}
