//! The C ABI of libmic-core: the only file with exported symbols.
//!
//! Every export returns a mic_status; errors from the concept files become a
//! status through `statusOf`, one exhaustive switch without `else`, so adding
//! an error anywhere breaks the build until it is mapped. Handles are allocated
//! with the C allocator (thread-safe malloc) and each owns its memory.
const std = @import("std");
pub const hash = @import("hash.zig");
pub const bloom = @import("bloom.zig");
pub const hlc = @import("hlc.zig");
pub const paths = @import("paths.zig");
pub const codec = @import("codec.zig");

pub const version_string = "0.1.0";

pub const Status = enum(i32) {
    ok = 0,
    invalid_argument = 1,
    corrupt = 2,
    out_of_memory = 3,
    invalid_handle = 4,
    buffer_too_small = 5,
    limit_exceeded = 6,
    size_mismatch = 7,
    node_not_found = 20,
    loader_failed = 21,
};

pub const Error = error{
    InvalidArgument,
    Corrupt,
    OutOfMemory,
    InvalidHandle,
    BufferTooSmall,
    LimitExceeded,
    SizeMismatch,
    SizeExceeded,
};

pub fn statusOf(err: Error) Status {
    return switch (err) {
        error.InvalidArgument => .invalid_argument,
        error.Corrupt => .corrupt,
        error.OutOfMemory => .out_of_memory,
        error.InvalidHandle => .invalid_handle,
        error.BufferTooSmall => .buffer_too_small,
        error.LimitExceeded => .limit_exceeded,
        error.SizeMismatch, error.SizeExceeded => .size_mismatch,
    };
}

fn toC(result: Error!void) i32 {
    result catch |err| return @backingInt(statusOf(err));
    return @backingInt(Status.ok);
}

const allocator = std.heap.c_allocator;

/// Borrowed input bytes: a NULL pointer is allowed only with length 0.
fn inputBytes(ptr: ?[*]const u8, len: u64) Error![]const u8 {
    if (len == 0) return &.{};
    const p = ptr orelse return error.InvalidArgument;
    if (len > std.math.maxInt(usize)) return error.InvalidArgument;
    return p[0..@intCast(len)];
}

pub const Bytes = extern struct {
    ptr: ?[*]u8,
    len: u64,
};

/// Hands an allocator-owned slice to C; mic_bytes_free gives it back.
pub fn bytesOut(out: *Bytes, owned: []u8) void {
    out.* = .{ .ptr = owned.ptr, .len = owned.len };
}

pub export fn mic_status_str(status: i32) [*:0]const u8 {
    const known = std.enums.fromInt(Status, status) orelse return "MIC_UNKNOWN_STATUS";
    return switch (known) {
        .ok => "MIC_OK",
        .invalid_argument => "MIC_INVALID_ARGUMENT",
        .corrupt => "MIC_CORRUPT",
        .out_of_memory => "MIC_OUT_OF_MEMORY",
        .invalid_handle => "MIC_INVALID_HANDLE",
        .buffer_too_small => "MIC_BUFFER_TOO_SMALL",
        .limit_exceeded => "MIC_LIMIT_EXCEEDED",
        .size_mismatch => "MIC_SIZE_MISMATCH",
        .node_not_found => "MIC_NODE_NOT_FOUND",
        .loader_failed => "MIC_LOADER_FAILED",
    };
}

pub export fn mic_version(version_out: ?*[*:0]const u8) i32 {
    const out = version_out orelse return @backingInt(Status.invalid_argument);
    out.* = version_string;
    return @backingInt(Status.ok);
}

pub export fn mic_bytes_free(bytes: ?*Bytes) i32 {
    const b = bytes orelse return @backingInt(Status.ok);
    if (b.ptr) |ptr| allocator.free(ptr[0..@intCast(b.len)]);
    b.* = .{ .ptr = null, .len = 0 };
    return @backingInt(Status.ok);
}

// ---- hashing ----

pub export fn mic_blake3(data: ?[*]const u8, len: u64, digest_out: ?*[hash.digest_bytes]u8) i32 {
    return toC(blake3Impl(data, len, digest_out));
}
fn blake3Impl(data: ?[*]const u8, len: u64, digest_out: ?*[hash.digest_bytes]u8) Error!void {
    const out = digest_out orelse return error.InvalidArgument;
    out.* = hash.blake3(try inputBytes(data, len));
}

pub export fn mic_blob_hash(data: ?[*]const u8, len: u64, digest_out: ?*[hash.digest_bytes]u8) i32 {
    return toC(blobHashImpl(data, len, digest_out));
}
fn blobHashImpl(data: ?[*]const u8, len: u64, digest_out: ?*[hash.digest_bytes]u8) Error!void {
    const out = digest_out orelse return error.InvalidArgument;
    out.* = hash.blobHash(try inputBytes(data, len));
}

pub export fn mic_path_hash(path: ?[*]const u8, len: u64, hash_out: ?*[hash.path_hash_bytes]u8) i32 {
    return toC(pathHashImpl(path, len, hash_out));
}
fn pathHashImpl(path: ?[*]const u8, len: u64, hash_out: ?*[hash.path_hash_bytes]u8) Error!void {
    const out = hash_out orelse return error.InvalidArgument;
    out.* = hash.pathHash(try inputBytes(path, len));
}

pub export fn mic_hasher_new(hasher_out: ?*?*hash.Hasher) i32 {
    return toC(hasherNew(hasher_out, null));
}
pub export fn mic_blob_hasher_new(size_bytes: u64, hasher_out: ?*?*hash.Hasher) i32 {
    return toC(hasherNew(hasher_out, size_bytes));
}
fn hasherNew(hasher_out: ?*?*hash.Hasher, blob_size_bytes: ?u64) Error!void {
    const out = hasher_out orelse return error.InvalidArgument;
    const hasher = try allocator.create(hash.Hasher);
    hasher.* = if (blob_size_bytes) |size| hash.Hasher.initBlob(size) else hash.Hasher.init();
    out.* = hasher;
}

pub export fn mic_hasher_update(hasher: ?*hash.Hasher, data: ?[*]const u8, len: u64) i32 {
    return toC(hasherUpdate(hasher, data, len));
}
fn hasherUpdate(hasher: ?*hash.Hasher, data: ?[*]const u8, len: u64) Error!void {
    const h = hasher orelse return error.InvalidHandle;
    try h.update(try inputBytes(data, len));
}

pub export fn mic_hasher_final(hasher: ?*const hash.Hasher, digest_out: ?*[hash.digest_bytes]u8) i32 {
    return toC(hasherFinal(hasher, digest_out));
}
fn hasherFinal(hasher: ?*const hash.Hasher, digest_out: ?*[hash.digest_bytes]u8) Error!void {
    const h = hasher orelse return error.InvalidHandle;
    const out = digest_out orelse return error.InvalidArgument;
    out.* = try h.final();
}

pub export fn mic_hasher_free(hasher: ?*hash.Hasher) i32 {
    if (hasher) |h| allocator.destroy(h);
    return @backingInt(Status.ok);
}

// ---- bloom filters ----

const Bloom = bloom.Bloom;

fn bloomOut(out: ?*?*Bloom, value: Bloom) Error!void {
    var owned = value;
    const o = out orelse {
        owned.deinit();
        return error.InvalidArgument;
    };
    const handle = allocator.create(Bloom) catch {
        owned.deinit();
        return error.OutOfMemory;
    };
    handle.* = owned;
    o.* = handle;
}

pub export fn mic_bloom_new(bits: u64, k: u32, bloom_out: ?*?*Bloom) i32 {
    return toC(bloomNew(bits, k, bloom_out));
}
fn bloomNew(bits: u64, k: u32, bloom_out: ?*?*Bloom) Error!void {
    if (bloom_out == null or k > bloom.k_max) return error.InvalidArgument;
    try bloomOut(bloom_out, try Bloom.init(allocator, .{ .bits = bits, .k = @intCast(k) }));
}

pub export fn mic_bloom_new_for_items(expected_items: u64, fp_rate: f64, bloom_out: ?*?*Bloom) i32 {
    return toC(bloomNewForItems(expected_items, fp_rate, bloom_out));
}
fn bloomNewForItems(expected_items: u64, fp_rate: f64, bloom_out: ?*?*Bloom) Error!void {
    if (bloom_out == null) return error.InvalidArgument;
    const geometry = try bloom.geometryFor(expected_items, fp_rate);
    try bloomOut(bloom_out, try Bloom.init(allocator, geometry));
}

pub export fn mic_bloom_free(handle: ?*Bloom) i32 {
    if (handle) |b| {
        b.deinit();
        allocator.destroy(b);
    }
    return @backingInt(Status.ok);
}

pub export fn mic_bloom_geometry(handle: ?*const Bloom, bits_out: ?*u64, k_out: ?*u32) i32 {
    const b = handle orelse return @backingInt(Status.invalid_handle);
    const bits = bits_out orelse return @backingInt(Status.invalid_argument);
    const k = k_out orelse return @backingInt(Status.invalid_argument);
    bits.* = b.geometry.bits;
    k.* = b.geometry.k;
    return @backingInt(Status.ok);
}

/// A borrowed NUL-separated list of bloom keys (paths), checked before use so a
/// bad batch changes nothing.
fn keyList(list: ?[*]const u8, len: u64, count: u64) Error![]const u8 {
    const buffer = try inputBytes(list, len);
    paths.validateList(buffer, count, .items) catch return error.InvalidArgument;
    return buffer;
}

fn oneKey(path: ?[*]const u8, len: u64) Error![]const u8 {
    return keyList(path, len, 1);
}

pub export fn mic_bloom_add(handle: ?*Bloom, path: ?[*]const u8, len: u64) i32 {
    return toC(bloomAdd(handle, path, len));
}
fn bloomAdd(handle: ?*Bloom, path: ?[*]const u8, len: u64) Error!void {
    const b = handle orelse return error.InvalidHandle;
    b.add(try oneKey(path, len));
}

pub export fn mic_bloom_add_many(handle: ?*Bloom, list: ?[*]const u8, len: u64, count: u64) i32 {
    return toC(bloomAddMany(handle, list, len, count));
}
fn bloomAddMany(handle: ?*Bloom, list: ?[*]const u8, len: u64, count: u64) Error!void {
    const b = handle orelse return error.InvalidHandle;
    b.addList(try keyList(list, len, count), count);
}

pub export fn mic_bloom_may_contain(handle: ?*const Bloom, path: ?[*]const u8, len: u64, result_out: ?*bool) i32 {
    return toC(bloomMayContain(handle, path, len, result_out));
}
fn bloomMayContain(handle: ?*const Bloom, path: ?[*]const u8, len: u64, result_out: ?*bool) Error!void {
    const b = handle orelse return error.InvalidHandle;
    const out = result_out orelse return error.InvalidArgument;
    out.* = b.mayContain(try oneKey(path, len));
}

pub export fn mic_bloom_may_contain_any(handle: ?*const Bloom, list: ?[*]const u8, len: u64, count: u64, result_out: ?*bool) i32 {
    return toC(bloomMayContainAny(handle, list, len, count, result_out));
}
fn bloomMayContainAny(handle: ?*const Bloom, list: ?[*]const u8, len: u64, count: u64, result_out: ?*bool) Error!void {
    const b = handle orelse return error.InvalidHandle;
    const out = result_out orelse return error.InvalidArgument;
    out.* = b.mayContainAnyOf(try keyList(list, len, count), count);
}

pub export fn mic_bloom_intersects(a: ?*const Bloom, b: ?*const Bloom, result_out: ?*bool) i32 {
    return toC(bloomIntersects(a, b, result_out));
}
fn bloomIntersects(a: ?*const Bloom, b: ?*const Bloom, result_out: ?*bool) Error!void {
    const left = a orelse return error.InvalidHandle;
    const right = b orelse return error.InvalidHandle;
    const out = result_out orelse return error.InvalidArgument;
    out.* = try left.intersects(right);
}

pub export fn mic_bloom_union(into: ?*Bloom, from: ?*const Bloom) i32 {
    return toC(bloomUnion(into, from));
}
fn bloomUnion(into: ?*Bloom, from: ?*const Bloom) Error!void {
    const target = into orelse return error.InvalidHandle;
    const source = from orelse return error.InvalidHandle;
    try target.unionWith(source);
}

pub export fn mic_bloom_estimated_count(handle: ?*const Bloom, count_out: ?*f64) i32 {
    const b = handle orelse return @backingInt(Status.invalid_handle);
    const out = count_out orelse return @backingInt(Status.invalid_argument);
    out.* = b.estimatedCount();
    return @backingInt(Status.ok);
}

pub export fn mic_bloom_serialize(handle: ?*const Bloom, bytes_out: ?*Bytes) i32 {
    return toC(bloomSerialize(handle, bytes_out));
}
fn bloomSerialize(handle: ?*const Bloom, bytes_out: ?*Bytes) Error!void {
    const b = handle orelse return error.InvalidHandle;
    const out = bytes_out orelse return error.InvalidArgument;
    bytesOut(out, try b.serialize(allocator));
}

pub export fn mic_bloom_deserialize(data: ?[*]const u8, len: u64, bloom_out: ?*?*Bloom) i32 {
    return toC(bloomDeserialize(data, len, bloom_out));
}
fn bloomDeserialize(data: ?[*]const u8, len: u64, bloom_out: ?*?*Bloom) Error!void {
    if (bloom_out == null) return error.InvalidArgument;
    try bloomOut(bloom_out, try Bloom.deserialize(allocator, try inputBytes(data, len)));
}

pub export fn mic_bloom_deserialize_at_most(data: ?[*]const u8, len: u64, filter_bits_max: u64, bloom_out: ?*?*Bloom) i32 {
    return toC(bloomDeserializeAtMost(data, len, filter_bits_max, bloom_out));
}
fn bloomDeserializeAtMost(data: ?[*]const u8, len: u64, filter_bits_max: u64, bloom_out: ?*?*Bloom) Error!void {
    if (bloom_out == null) return error.InvalidArgument;
    try bloomOut(bloom_out, try Bloom.deserializeAtMost(allocator, try inputBytes(data, len), filter_bits_max));
}

// ---- hybrid logical clock ----

pub export fn mic_hlc_new(hlc_out: ?*?*hlc.Hlc) i32 {
    const out = hlc_out orelse return @backingInt(Status.invalid_argument);
    const clock = allocator.create(hlc.Hlc) catch return @backingInt(Status.out_of_memory);
    clock.* = .{};
    out.* = clock;
    return @backingInt(Status.ok);
}

pub export fn mic_hlc_free(clock: ?*hlc.Hlc) i32 {
    if (clock) |c| allocator.destroy(c);
    return @backingInt(Status.ok);
}

pub export fn mic_hlc_now(clock: ?*hlc.Hlc, wall_ms: u64, hlc_out: ?*u64) i32 {
    return toC(hlcAdvance(clock, null, wall_ms, hlc_out));
}

pub export fn mic_hlc_update(clock: ?*hlc.Hlc, remote: u64, wall_ms: u64, hlc_out: ?*u64) i32 {
    return toC(hlcAdvance(clock, remote, wall_ms, hlc_out));
}
fn hlcAdvance(clock: ?*hlc.Hlc, remote: ?u64, wall_ms: u64, hlc_out: ?*u64) Error!void {
    const c = clock orelse return error.InvalidHandle;
    const out = hlc_out orelse return error.InvalidArgument;
    out.* = if (remote) |r| try c.update(r, wall_ms) else try c.now(wall_ms);
}

// ---- codecs ----

pub export fn mic_head_encode(head: ?*const codec.Head, bytes_out: ?*[codec.head_bytes]u8) i32 {
    const h = head orelse return @backingInt(Status.invalid_argument);
    const out = bytes_out orelse return @backingInt(Status.invalid_argument);
    codec.encodeHead(h.*, out);
    return @backingInt(Status.ok);
}

pub export fn mic_head_decode(data: ?[*]const u8, len: u64, head_out: ?*codec.Head) i32 {
    return toC(headDecode(data, len, head_out));
}
fn headDecode(data: ?[*]const u8, len: u64, head_out: ?*codec.Head) Error!void {
    const out = head_out orelse return error.InvalidArgument;
    out.* = try codec.decodeHead(try inputBytes(data, len));
}

/// Shared shape of the span-based encoders: borrow, encode, hand the bytes to C.
fn encodeWith(
    comptime Fields: type,
    comptime encode: fn (std.mem.Allocator, *const Fields, []const u8) codec.Error![]u8,
    fields: ?*const Fields,
    buffer: ?[*]const u8,
    len: u64,
    bytes_out: ?*Bytes,
) Error!void {
    const f = fields orelse return error.InvalidArgument;
    const out = bytes_out orelse return error.InvalidArgument;
    bytesOut(out, try encode(allocator, f, try inputBytes(buffer, len)));
}

fn decodeWith(
    comptime Fields: type,
    comptime decode: fn ([]const u8) error{Corrupt}!Fields,
    data: ?[*]const u8,
    len: u64,
    fields_out: ?*Fields,
) Error!void {
    const out = fields_out orelse return error.InvalidArgument;
    out.* = try decode(try inputBytes(data, len));
}

pub export fn mic_rollup_encode(fields: ?*const codec.RollupFields, buffer: ?[*]const u8, len: u64, bytes_out: ?*Bytes) i32 {
    return toC(encodeWith(codec.RollupFields, codec.encodeRollup, fields, buffer, len, bytes_out));
}
pub export fn mic_rollup_decode(data: ?[*]const u8, len: u64, fields_out: ?*codec.RollupFields) i32 {
    return toC(decodeWith(codec.RollupFields, codec.decodeRollup, data, len, fields_out));
}
pub export fn mic_landing_encode(fields: ?*const codec.LandingFields, buffer: ?[*]const u8, len: u64, bytes_out: ?*Bytes) i32 {
    return toC(encodeWith(codec.LandingFields, codec.encodeLanding, fields, buffer, len, bytes_out));
}
pub export fn mic_landing_decode(data: ?[*]const u8, len: u64, fields_out: ?*codec.LandingFields) i32 {
    return toC(decodeWith(codec.LandingFields, codec.decodeLanding, data, len, fields_out));
}
pub export fn mic_session_encode(fields: ?*const codec.SessionFields, buffer: ?[*]const u8, len: u64, bytes_out: ?*Bytes) i32 {
    return toC(encodeWith(codec.SessionFields, codec.encodeSession, fields, buffer, len, bytes_out));
}
pub export fn mic_session_decode(data: ?[*]const u8, len: u64, fields_out: ?*codec.SessionFields) i32 {
    return toC(decodeWith(codec.SessionFields, codec.decodeSession, data, len, fields_out));
}

// ==== tree (owned by the tree engineer) ====
//
// The prolly tree (zig/tree.zig). Nodes are fetched through the caller's loader,
// a C function pointer: the library never touches storage. Batches cross as one
// buffer each way (record formats in tree.zig and docs/formats.md).
const tree = @import("tree.zig");
const tree_node = @import("tree_node.zig");

/// Fills *data_out/*len_out with the bytes of the node named `hash`; the bytes
/// must stay valid until the loader is called again or the tree call returns.
/// MIC_NODE_NOT_FOUND when absent; any other non-zero status is a loader failure.
pub const TreeLoadFn = *const fn (ctx: ?*anyopaque, hash: *const [32]u8, data_out: *?[*]const u8, len_out: *u64) callconv(.c) i32;

pub const TreeHandle = struct {
    load: TreeLoadFn,
    load_ctx: ?*anyopaque,
    tree: tree.Tree,
};

const TreeCallError = tree.Error || error{InvalidHandle};

fn treeStatusOf(err: TreeCallError) Status {
    return switch (err) {
        error.InvalidArgument => .invalid_argument,
        error.Corrupt => .corrupt,
        error.OutOfMemory => .out_of_memory,
        error.LimitExceeded => .limit_exceeded,
        error.NodeNotFound => .node_not_found,
        error.LoaderFailed => .loader_failed,
        error.InvalidHandle => .invalid_handle,
    };
}

fn treeToC(result: TreeCallError!void) i32 {
    result catch |err| return @backingInt(treeStatusOf(err));
    return @backingInt(Status.ok);
}

fn treeLoadThunk(ctx: ?*anyopaque, node_hash: *const tree_node.Hash) tree.LoadError![]const u8 {
    const handle: *TreeHandle = @ptrCast(@alignCast(ctx orelse return error.LoaderFailed));
    var ptr: ?[*]const u8 = null;
    var len: u64 = 0;
    const status = handle.load(handle.load_ctx, node_hash, &ptr, &len);
    if (status == @backingInt(Status.node_not_found)) return error.NodeNotFound;
    if (status != @backingInt(Status.ok)) return error.LoaderFailed;
    if (len == 0) return &.{};
    const p = ptr orelse return error.LoaderFailed;
    // Never look past what the loader handed over; an oversized node fails the
    // size check of the source as Corrupt.
    return p[0..@intCast(@min(len, tree_node.node_bytes_max + 1))];
}

fn treeInput(ptr: ?[*]const u8, len: u64) TreeCallError![]const u8 {
    return inputBytes(ptr, len) catch error.InvalidArgument;
}

fn treeBytesOut(list: *std.ArrayList(u8), out: *Bytes) TreeCallError!void {
    bytesOut(out, try list.toOwnedSlice(allocator));
}

pub export fn mic_tree_new(load: ?TreeLoadFn, ctx: ?*anyopaque, tree_out: ?*?*TreeHandle) i32 {
    return treeToC(treeNew(load, ctx, tree_out));
}
fn treeNew(load: ?TreeLoadFn, ctx: ?*anyopaque, tree_out: ?*?*TreeHandle) TreeCallError!void {
    const out = tree_out orelse return error.InvalidArgument;
    const load_fn = load orelse return error.InvalidArgument;
    const handle = try allocator.create(TreeHandle);
    handle.* = .{
        .load = load_fn,
        .load_ctx = ctx,
        .tree = tree.Tree.init(allocator, .{ .ctx = handle, .load_fn = treeLoadThunk }),
    };
    out.* = handle;
}

pub export fn mic_tree_free(handle: ?*TreeHandle) i32 {
    if (handle) |h| allocator.destroy(h);
    return @backingInt(Status.ok);
}

pub export fn mic_tree_empty_hash(hash_out: ?*[32]u8) i32 {
    const out = hash_out orelse return @backingInt(Status.invalid_argument);
    out.* = tree.Tree.emptyHash();
    return @backingInt(Status.ok);
}

pub export fn mic_tree_node_check(data: ?[*]const u8, len: u64, level_out: ?*u8, entries_out: ?*u32) i32 {
    return treeToC(treeNodeCheck(data, len, level_out, entries_out));
}
fn treeNodeCheck(data: ?[*]const u8, len: u64, level_out: ?*u8, entries_out: ?*u32) TreeCallError!void {
    const bytes = try treeInput(data, len);
    var node = try tree_node.decode(allocator, bytes);
    defer tree_node.freeNode(allocator, &node);
    if (level_out) |out| out.* = node.level;
    if (entries_out) |out| out.* = @intCast(node.entries.len);
}

pub export fn mic_tree_build(handle: ?*TreeHandle, entries: ?[*]const u8, entries_len: u64, root_out: ?*[32]u8, nodes_out: ?*Bytes) i32 {
    return treeToC(treeBuild(handle, entries, entries_len, root_out, nodes_out));
}
fn treeBuild(handle: ?*TreeHandle, entries: ?[*]const u8, entries_len: u64, root_out: ?*[32]u8, nodes_out: ?*Bytes) TreeCallError!void {
    const h = handle orelse return error.InvalidHandle;
    const root = root_out orelse return error.InvalidArgument;
    const out = nodes_out orelse return error.InvalidArgument;
    var nodes: std.ArrayList(u8) = .empty;
    defer nodes.deinit(allocator);
    root.* = try h.tree.build(try treeInput(entries, entries_len), &nodes);
    try treeBytesOut(&nodes, out);
}

pub export fn mic_tree_apply(handle: ?*TreeHandle, root: ?*const [32]u8, edits: ?[*]const u8, edits_len: u64, root_out: ?*[32]u8, nodes_out: ?*Bytes) i32 {
    return treeToC(treeApply(handle, root, edits, edits_len, root_out, nodes_out));
}
fn treeApply(handle: ?*TreeHandle, root: ?*const [32]u8, edits: ?[*]const u8, edits_len: u64, root_out: ?*[32]u8, nodes_out: ?*Bytes) TreeCallError!void {
    const h = handle orelse return error.InvalidHandle;
    const old_root = root orelse return error.InvalidArgument;
    const new_root = root_out orelse return error.InvalidArgument;
    const out = nodes_out orelse return error.InvalidArgument;
    var nodes: std.ArrayList(u8) = .empty;
    defer nodes.deinit(allocator);
    new_root.* = try h.tree.apply(old_root.*, try treeInput(edits, edits_len), &nodes);
    try treeBytesOut(&nodes, out);
}

pub export fn mic_tree_lookup(handle: ?*TreeHandle, root: ?*const [32]u8, path: ?[*]const u8, path_len: u64, found_out: ?*bool, blob_hash_out: ?*[32]u8, mode_out: ?*u8, size_out: ?*u64) i32 {
    return treeToC(treeLookup(handle, root, path, path_len, found_out, blob_hash_out, mode_out, size_out));
}
fn treeLookup(handle: ?*TreeHandle, root: ?*const [32]u8, path: ?[*]const u8, path_len: u64, found_out: ?*bool, blob_hash_out: ?*[32]u8, mode_out: ?*u8, size_out: ?*u64) TreeCallError!void {
    const h = handle orelse return error.InvalidHandle;
    const r = root orelse return error.InvalidArgument;
    const found = found_out orelse return error.InvalidArgument;
    const blob_hash = blob_hash_out orelse return error.InvalidArgument;
    const mode = mode_out orelse return error.InvalidArgument;
    const size = size_out orelse return error.InvalidArgument;
    if (try h.tree.lookup(r.*, try treeInput(path, path_len))) |e| {
        found.* = true;
        blob_hash.* = e.hash;
        mode.* = @backingInt(e.mode);
        size.* = e.size;
    } else {
        found.* = false;
        blob_hash.* = @splat(0);
        mode.* = 0;
        size.* = 0;
    }
}

pub export fn mic_tree_list(
    handle: ?*TreeHandle,
    root: ?*const [32]u8,
    prefix: ?[*]const u8,
    prefix_len: u64,
    start_after: ?[*]const u8,
    start_after_len: u64,
    has_start_after: bool,
    limit: u64,
    entries_out: ?*Bytes,
    count_out: ?*u64,
) i32 {
    return treeToC(treeList(handle, root, prefix, prefix_len, start_after, start_after_len, has_start_after, limit, entries_out, count_out));
}
fn treeList(
    handle: ?*TreeHandle,
    root: ?*const [32]u8,
    prefix: ?[*]const u8,
    prefix_len: u64,
    start_after: ?[*]const u8,
    start_after_len: u64,
    has_start_after: bool,
    limit: u64,
    entries_out: ?*Bytes,
    count_out: ?*u64,
) TreeCallError!void {
    const h = handle orelse return error.InvalidHandle;
    const r = root orelse return error.InvalidArgument;
    const out = entries_out orelse return error.InvalidArgument;
    const count = count_out orelse return error.InvalidArgument;
    if (limit > tree.list_entries_max) return error.InvalidArgument;
    const after: ?[]const u8 = if (has_start_after) try treeInput(start_after, start_after_len) else null;
    var entries: std.ArrayList(u8) = .empty;
    defer entries.deinit(allocator);
    count.* = try h.tree.list(r.*, try treeInput(prefix, prefix_len), after, @intCast(limit), &entries);
    try treeBytesOut(&entries, out);
}

pub export fn mic_tree_ceilings(handle: ?*TreeHandle, root: ?*const [32]u8, keys: ?[*]const u8, keys_len: u64, ceilings_out: ?*Bytes, count_out: ?*u64) i32 {
    return treeToC(treeCeilings(handle, root, keys, keys_len, ceilings_out, count_out));
}
fn treeCeilings(handle: ?*TreeHandle, root: ?*const [32]u8, keys: ?[*]const u8, keys_len: u64, ceilings_out: ?*Bytes, count_out: ?*u64) TreeCallError!void {
    const h = handle orelse return error.InvalidHandle;
    const r = root orelse return error.InvalidArgument;
    const out = ceilings_out orelse return error.InvalidArgument;
    const count = count_out orelse return error.InvalidArgument;
    var ceilings: std.ArrayList(u8) = .empty;
    defer ceilings.deinit(allocator);
    count.* = try h.tree.ceilings(r.*, try treeInput(keys, keys_len), &ceilings);
    try treeBytesOut(&ceilings, out);
}

pub export fn mic_tree_diff(handle: ?*TreeHandle, old_root: ?*const [32]u8, new_root: ?*const [32]u8, changes_out: ?*Bytes, nodes_read_out: ?*u64) i32 {
    return treeToC(treeDiff(handle, old_root, new_root, 0, changes_out, nodes_read_out, null));
}
pub export fn mic_tree_diff_bounded(handle: ?*TreeHandle, old_root: ?*const [32]u8, new_root: ?*const [32]u8, max_changes: u64, changes_out: ?*Bytes, nodes_read_out: ?*u64, truncated_out: ?*u8) i32 {
    return treeToC(treeDiff(handle, old_root, new_root, max_changes, changes_out, nodes_read_out, truncated_out));
}
fn treeDiff(handle: ?*TreeHandle, old_root: ?*const [32]u8, new_root: ?*const [32]u8, max_changes: u64, changes_out: ?*Bytes, nodes_read_out: ?*u64, truncated_out: ?*u8) TreeCallError!void {
    const h = handle orelse return error.InvalidHandle;
    const a = old_root orelse return error.InvalidArgument;
    const b = new_root orelse return error.InvalidArgument;
    const out = changes_out orelse return error.InvalidArgument;
    var changes: std.ArrayList(u8) = .empty;
    defer changes.deinit(allocator);
    const stats = try h.tree.diff(a.*, b.*, &changes, max_changes);
    try treeBytesOut(&changes, out);
    if (nodes_read_out) |n| n.* = stats.loads;
    if (truncated_out) |t| t.* = @intFromBool(stats.truncated);
}

pub export fn mic_tree_stats(handle: ?*TreeHandle, root: ?*const [32]u8, count_out: ?*u64, size_bytes_out: ?*u64) i32 {
    return treeToC(treeStats(handle, root, count_out, size_bytes_out));
}
fn treeStats(handle: ?*TreeHandle, root: ?*const [32]u8, count_out: ?*u64, size_bytes_out: ?*u64) TreeCallError!void {
    const h = handle orelse return error.InvalidHandle;
    const r = root orelse return error.InvalidArgument;
    const count = count_out orelse return error.InvalidArgument;
    const size = size_bytes_out orelse return error.InvalidArgument;
    const s = try h.tree.stats(r.*);
    count.* = s.count;
    size.* = s.size;
}

test "tree constants match the header" {
    const header = @embedFile("include/mic_core.h");
    var buf: [128]u8 = undefined;
    const pinned = [_]struct { name: []const u8, value: u64 }{
        .{ .name = "MIC_TREE_PATH_BYTES_MAX", .value = tree_node.path_bytes_max },
        .{ .name = "MIC_TREE_NODE_BYTES_MAX", .value = tree_node.node_bytes_max },
        .{ .name = "MIC_TREE_LIST_ENTRIES_MAX", .value = tree.list_entries_max },
        .{ .name = "MIC_TREE_CEILINGS_KEYS_MAX", .value = tree.ceilings_keys_max },
        .{ .name = "MIC_TREE_OP_WRITE", .value = tree.op_write },
        .{ .name = "MIC_TREE_OP_DELETE", .value = tree.op_delete },
        .{ .name = "MIC_TREE_CHANGE_ADDED", .value = tree.change_added },
        .{ .name = "MIC_TREE_CHANGE_MODIFIED", .value = tree.change_modified },
        .{ .name = "MIC_TREE_CHANGE_DELETED", .value = tree.change_deleted },
    };
    for (pinned) |p| {
        const line = try std.fmt.bufPrint(&buf, "#define {s} {d}\n", .{ p.name, p.value });
        try std.testing.expect(std.mem.indexOf(u8, header, line) != null);
    }
    _ = tree;
    _ = @import("tree_chunker.zig");
    _ = @import("tree_cursor.zig");
}

/// A node store behind the C loader signature, for the C-ABI tests and fuzzer.
const TreeTestStore = struct {
    nodes: std.AutoHashMapUnmanaged([32]u8, []const u8) = .empty,
    gpa: std.mem.Allocator,

    fn deinit(s: *TreeTestStore) void {
        var it = s.nodes.valueIterator();
        while (it.next()) |v| s.gpa.free(v.*);
        s.nodes.deinit(s.gpa);
    }

    fn load(ctx: ?*anyopaque, node_hash: *const [32]u8, data_out: *?[*]const u8, len_out: *u64) callconv(.c) i32 {
        const s: *TreeTestStore = @ptrCast(@alignCast(ctx orelse return @backingInt(Status.invalid_argument)));
        const bytes = s.nodes.get(node_hash.*) orelse return @backingInt(Status.node_not_found);
        data_out.* = bytes.ptr;
        len_out.* = bytes.len;
        return @backingInt(Status.ok);
    }

    fn putRecords(s: *TreeTestStore, records: []const u8) !void {
        var pos: usize = 0;
        while (pos < records.len) {
            const h = records[pos..][0..32].*;
            const len = std.mem.readInt(u32, records[pos + 32 ..][0..4], .little);
            const gop = try s.nodes.getOrPut(s.gpa, h);
            if (!gop.found_existing) gop.value_ptr.* = try s.gpa.dupe(u8, records[pos + 36 .. pos + 36 + len]);
            pos += 36 + len;
        }
    }
};

test "tree C ABI: build, apply, lookup, list, diff, stats and error statuses" {
    const gpa = std.testing.allocator;
    var store: TreeTestStore = .{ .gpa = gpa };
    defer store.deinit();
    var handle: ?*TreeHandle = null;
    try std.testing.expectEqual(@as(i32, 0), mic_tree_new(TreeTestStore.load, &store, &handle));
    defer _ = mic_tree_free(handle);

    var records: std.ArrayList(u8) = .empty;
    defer records.deinit(gpa);
    var key_buf: [16]u8 = undefined;
    for (0..500) |i| {
        const key = try std.fmt.bufPrint(&key_buf, "k{d:0>5}", .{i});
        var rec: [2]u8 = undefined;
        std.mem.writeInt(u16, &rec, @intCast(key.len), .little);
        try records.appendSlice(gpa, &rec);
        try records.appendSlice(gpa, key);
        try records.appendNTimes(gpa, @truncate(i), 32);
        try records.append(gpa, 0);
        try records.appendSlice(gpa, &[_]u8{ 1, 0, 0, 0, 0, 0, 0, 0 });
    }
    var root: [32]u8 = undefined;
    var nodes: Bytes = .{ .ptr = null, .len = 0 };
    try std.testing.expectEqual(@as(i32, 0), mic_tree_build(handle, records.items.ptr, records.items.len, &root, &nodes));
    try store.putRecords(nodes.ptr.?[0..@intCast(nodes.len)]);
    _ = mic_bytes_free(&nodes);

    var count: u64 = 0;
    var size: u64 = 0;
    try std.testing.expectEqual(@as(i32, 0), mic_tree_stats(handle, &root, &count, &size));
    try std.testing.expectEqual(@as(u64, 500), count);
    try std.testing.expectEqual(@as(u64, 500), size);

    var found = false;
    var blob: [32]u8 = undefined;
    var mode: u8 = 9;
    try std.testing.expectEqual(@as(i32, 0), mic_tree_lookup(handle, &root, "k00042", 6, &found, &blob, &mode, &size));
    try std.testing.expect(found and blob[0] == 42 and mode == 0);

    const edit = "\x02\x06\x00k00042";
    var new_root: [32]u8 = undefined;
    try std.testing.expectEqual(@as(i32, 0), mic_tree_apply(handle, &root, edit, edit.len, &new_root, &nodes));
    try store.putRecords(nodes.ptr.?[0..@intCast(nodes.len)]);
    _ = mic_bytes_free(&nodes);

    var listed: u64 = 0;
    try std.testing.expectEqual(@as(i32, 0), mic_tree_list(handle, &new_root, "k0004", 5, "k00041", 6, true, 3, &nodes, &listed));
    try std.testing.expectEqual(@as(u64, 3), listed);
    try std.testing.expectEqualStrings("k00043", nodes.ptr.?[2..8]);
    _ = mic_bytes_free(&nodes);

    var reads: u64 = 0;
    try std.testing.expectEqual(@as(i32, 0), mic_tree_diff(handle, &root, &new_root, &nodes, &reads));
    try std.testing.expectEqual(@as(u8, tree.change_deleted), nodes.ptr.?[0]);
    try std.testing.expectEqual(@as(u64, 1 + 2 + 6 + 82), nodes.len);
    _ = mic_bytes_free(&nodes);
    // Bounded: one change exists, so a bound of 1 holds it all and a bound of 0 means none.
    var truncated: u8 = 9;
    for ([_]u64{ 0, 1, 2 }) |max| {
        truncated = 9;
        try std.testing.expectEqual(@as(i32, 0), mic_tree_diff_bounded(handle, &root, &new_root, max, &nodes, null, &truncated));
        try std.testing.expectEqual(@as(u8, 0), truncated);
        try std.testing.expectEqual(@as(u64, 1 + 2 + 6 + 82), nodes.len);
        _ = mic_bytes_free(&nodes);
    }
    // Diffed against the empty tree, every entry is a change: a bound below their count stops.
    const empty_tree: [32]u8 = tree.Tree.emptyHash();
    try std.testing.expectEqual(@as(i32, 0), mic_tree_diff_bounded(handle, &empty_tree, &new_root, 2, &nodes, null, &truncated));
    try std.testing.expectEqual(@as(u8, 1), truncated);
    try std.testing.expectEqual(@as(u64, 2 * (1 + 2 + 6 + 82)), nodes.len);
    _ = mic_bytes_free(&nodes);
    try std.testing.expectEqual(@as(i32, 0), mic_tree_diff_bounded(handle, &empty_tree, &new_root, 2, &nodes, null, null));
    _ = mic_bytes_free(&nodes);

    // Ceilings: of a stored key, of a key between two, of a key above all.
    const probes = "\x05\x00k0004\x06\x00k00041\x01\x00\xff";
    try std.testing.expectEqual(@as(i32, 0), mic_tree_ceilings(handle, &new_root, probes, probes.len, &nodes, &listed));
    try std.testing.expectEqual(@as(u64, 3), listed);
    const ceilings = nodes.ptr.?[0..@intCast(nodes.len)];
    try std.testing.expectEqual(@as(u8, 1), ceilings[0]);
    try std.testing.expectEqualStrings("k00040", ceilings[3..9]); // "k0004" is no key: its ceiling is
    try std.testing.expectEqual(@as(u8, 1), ceilings[1 + 2 + 6 + 41]);
    try std.testing.expectEqualStrings("k00041", ceilings[1 + 2 + 6 + 41 + 3 ..][0..6]);
    try std.testing.expectEqual(@as(u8, 0), ceilings[ceilings.len - 1]);
    try std.testing.expectEqual(2 * (1 + 2 + 6 + 41) + 1, ceilings.len);
    _ = mic_bytes_free(&nodes);
    try std.testing.expectEqual(@as(i32, 1), mic_tree_ceilings(handle, &new_root, "\x00\x00", 2, &nodes, &listed));
    try std.testing.expectEqual(@as(i32, 1), mic_tree_ceilings(handle, &new_root, probes, probes.len, null, &listed));

    // Statuses: missing node, bad handle, bad input, loader failure.
    const missing: [32]u8 = @splat(7);
    try std.testing.expectEqual(@as(i32, 20), mic_tree_stats(handle, &missing, &count, &size));
    try std.testing.expectEqual(@as(i32, 4), mic_tree_stats(null, &root, &count, &size));
    try std.testing.expectEqual(@as(i32, 1), mic_tree_apply(handle, &root, "\x09", 1, &new_root, &nodes));
    var failing: ?*TreeHandle = null;
    try std.testing.expectEqual(@as(i32, 0), mic_tree_new(TreeTestStore.load, null, &failing));
    defer _ = mic_tree_free(failing);
    try std.testing.expectEqual(@as(i32, 21), mic_tree_stats(failing, &root, &count, &size));
}

// Drives every tree operation through the C ABI over stored trees with one
// node mutated and its ancestors re-hashed, so that mutations reach the
// structural checks (order, counts, levels) and not only the hash check; and
// drives mic_tree_node_check with 100,000 mutated node encodings. Any trap
// (out-of-bounds, overflow, failed assertion) fails the test.
test "fuzz: tree C ABI over mutated stored trees and 100,000 node encodings" {
    const gpa = std.testing.allocator;
    var prng = std.Random.DefaultPrng.init(0x6d69_6374);
    const random = prng.random();

    var store: TreeTestStore = .{ .gpa = gpa };
    defer store.deinit();
    var handle: ?*TreeHandle = null;
    try std.testing.expectEqual(@as(i32, 0), mic_tree_new(TreeTestStore.load, &store, &handle));
    defer _ = mic_tree_free(handle);

    var records: std.ArrayList(u8) = .empty;
    defer records.deinit(gpa);
    var key_buf: [16]u8 = undefined;
    for (0..3000) |i| {
        const key = try std.fmt.bufPrint(&key_buf, "d{d}/f{d:0>5}", .{ i % 3, i });
        var rec: [2]u8 = undefined;
        std.mem.writeInt(u16, &rec, @intCast(key.len), .little);
        try records.appendSlice(gpa, &rec);
        try records.appendSlice(gpa, key);
        try records.appendNTimes(gpa, @truncate(i), 32);
        try records.append(gpa, @intCast(i % 3));
        try records.appendSlice(gpa, &[_]u8{ @truncate(i), 0, 0, 0, 0, 0, 0, 0 });
    }
    // Sort the records by key: build wants them sorted; rebuild in key order.
    var sorted: std.ArrayList(u8) = .empty;
    defer sorted.deinit(gpa);
    for (0..3) |d| {
        var pos: usize = 0;
        while (pos < records.items.len) {
            const klen = std.mem.readInt(u16, records.items[pos..][0..2], .little);
            const rec_len = 2 + klen + 41;
            if (records.items[pos + 3] == '0' + @as(u8, @intCast(d))) try sorted.appendSlice(gpa, records.items[pos .. pos + rec_len]);
            pos += rec_len;
        }
    }
    var root: [32]u8 = undefined;
    var nodes: Bytes = .{ .ptr = null, .len = 0 };
    try std.testing.expectEqual(@as(i32, 0), mic_tree_build(handle, sorted.items.ptr, sorted.items.len, &root, &nodes));
    const all_nodes = try gpa.dupe(u8, nodes.ptr.?[0..@intCast(nodes.len)]);
    defer gpa.free(all_nodes);
    _ = mic_bytes_free(&nodes);
    try store.putRecords(all_nodes);

    // Index the node records: (hash, bytes) in build order (children before parents).
    var spans: std.ArrayList([]const u8) = .empty;
    defer spans.deinit(gpa);
    var pos: usize = 0;
    while (pos < all_nodes.len) {
        const len = std.mem.readInt(u32, all_nodes[pos + 32 ..][0..4], .little);
        try spans.append(gpa, all_nodes[pos .. pos + 36 + len]);
        pos += 36 + len;
    }
    try std.testing.expect(spans.items.len > 3);

    var scratch: [3][tree_node.node_bytes_max + 64]u8 = undefined;
    var accepted: usize = 0;
    for (0..100_000) |iteration| {
        const span = spans.items[random.uintLessThan(usize, spans.items.len)];
        const orig = span[36..];
        var len = orig.len;
        const buf = &scratch[0];
        @memcpy(buf[0..len], orig);
        switch (random.uintLessThan(u8, 4)) {
            0 => buf[random.uintLessThan(usize, len)] ^= @as(u8, 1) << random.int(u3),
            1 => buf[random.uintLessThan(usize, len)] = random.int(u8),
            2 => len = random.uintLessThan(usize, len + 1),
            else => {
                const at = random.uintLessThan(usize, len);
                buf[at] +%= 1;
                buf[random.uintLessThan(usize, len)] -%= 1;
            },
        }
        var level: u8 = 0;
        var entries: u32 = 0;
        const status = mic_tree_node_check(buf, len, &level, &entries);
        if (status == 0) accepted += 1 else try std.testing.expectEqual(@as(i32, 2), status);

        // Every 20th input also goes into a stored tree: re-hash the ancestors of
        // the mutated node so the whole tree refers to it, then run every operation.
        if (iteration % 20 != 0) continue;
        var child_old: [32]u8 = span[0..32].*;
        var child_new = tree_node.nodeHash(buf[0..len]);
        const mutated = try gpa.dupe(u8, buf[0..len]);
        var stored = std.ArrayList([32]u8).empty;
        defer {
            for (stored.items) |h| if (store.nodes.fetchRemove(h)) |kv| gpa.free(kv.value);
            stored.deinit(gpa);
        }
        if (store.nodes.contains(child_new)) gpa.free(mutated) else {
            try store.nodes.put(gpa, child_new, mutated);
            try stored.append(gpa, child_new);
        }
        var fuzz_root = child_new;
        var level_hash_old = child_old;
        // Walk up: find the parent that references child_old and patch it.
        var climbing = true;
        while (climbing and !std.mem.eql(u8, &level_hash_old, &root)) {
            climbing = false;
            for (spans.items) |parent| {
                const pbytes = parent[36..];
                const at = std.mem.indexOf(u8, pbytes, &child_old) orelse continue;
                const pbuf = &scratch[1];
                @memcpy(pbuf[0..pbytes.len], pbytes);
                pbuf[at..][0..32].* = child_new;
                child_old = parent[0..32].*;
                child_new = tree_node.nodeHash(pbuf[0..pbytes.len]);
                if (!store.nodes.contains(child_new)) {
                    try store.nodes.put(gpa, child_new, try gpa.dupe(u8, pbuf[0..pbytes.len]));
                    try stored.append(gpa, child_new);
                }
                fuzz_root = child_new;
                level_hash_old = child_old;
                climbing = true;
                break;
            }
        }
        var count: u64 = 0;
        var size: u64 = 0;
        _ = mic_tree_stats(handle, &fuzz_root, &count, &size);
        var found = false;
        var blob: [32]u8 = undefined;
        var mode: u8 = 0;
        _ = mic_tree_lookup(handle, &fuzz_root, "d1/f01000", 9, &found, &blob, &mode, &size);
        var listed: u64 = 0;
        if (mic_tree_list(handle, &fuzz_root, "d2", 2, null, 0, false, 1000, &nodes, &listed) == 0) _ = mic_bytes_free(&nodes);
        var reads: u64 = 0;
        if (mic_tree_diff(handle, &root, &fuzz_root, &nodes, &reads) == 0) _ = mic_bytes_free(&nodes);
        var truncated: u8 = 0;
        if (mic_tree_diff_bounded(handle, &root, &fuzz_root, 3, &nodes, &reads, &truncated) == 0) _ = mic_bytes_free(&nodes);
        const probes = "\x02\x00d1\x09\x00d0/f00007\x01\x00\xff";
        if (mic_tree_ceilings(handle, &fuzz_root, probes, probes.len, &nodes, &listed) == 0) _ = mic_bytes_free(&nodes);
        var edits: [2 * (3 + 9) + 41]u8 = @splat(5);
        @memcpy(edits[0..12], "\x01\x09\x00d0/f00003");
        edits[12 + 32] = 0; // mode
        @memset(edits[12 + 33 .. 12 + 41], 0); // size
        @memcpy(edits[53..65], "\x02\x09\x00d2/f02999");
        var new_root: [32]u8 = undefined;
        if (mic_tree_apply(handle, &fuzz_root, &edits, edits.len, &new_root, &nodes) == 0) _ = mic_bytes_free(&nodes);
    }
    try std.testing.expect(accepted > 0);
}
// ==== end tree ====

test {
    std.testing.refAllDecls(@This());
    _ = hash;
    _ = @import("blake3.zig");
    _ = @import("varint.zig");
    _ = bloom;
    _ = hlc;
    _ = paths;
    _ = codec;
}

test "status codes are pinned to the header's numbers" {
    try std.testing.expectEqual(@as(i32, 0), @backingInt(Status.ok));
    try std.testing.expectEqual(@as(i32, 2), @backingInt(Status.corrupt));
    try std.testing.expectEqual(@as(i32, 20), @backingInt(Status.node_not_found));
    try std.testing.expectEqual(@as(i32, 21), @backingInt(Status.loader_failed));
    try std.testing.expectEqualStrings("MIC_CORRUPT", std.mem.span(mic_status_str(2)));
    try std.testing.expectEqualStrings("MIC_UNKNOWN_STATUS", std.mem.span(mic_status_str(1234)));
}
