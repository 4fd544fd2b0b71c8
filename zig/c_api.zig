//! The C ABI of libmic-core: the only file with exported symbols.
//!
//! Every export returns a mic_status; errors from the concept files become a
//! status through `statusOf`, one exhaustive switch without `else`, so adding
//! an error anywhere breaks the build until it is mapped. Handles are allocated
//! with the C allocator (thread-safe malloc) and each owns its memory.
const std = @import("std");
const hash = @import("hash.zig");
const bloom = @import("bloom.zig");
const hlc = @import("hlc.zig");
const paths = @import("paths.zig");

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
    result catch |err| return @intFromEnum(statusOf(err));
    return @intFromEnum(Status.ok);
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

export fn mic_status_str(status: i32) [*:0]const u8 {
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

export fn mic_version(version_out: ?*[*:0]const u8) i32 {
    const out = version_out orelse return @intFromEnum(Status.invalid_argument);
    out.* = version_string;
    return @intFromEnum(Status.ok);
}

export fn mic_bytes_free(bytes: ?*Bytes) i32 {
    const b = bytes orelse return @intFromEnum(Status.ok);
    if (b.ptr) |ptr| allocator.free(ptr[0..@intCast(b.len)]);
    b.* = .{ .ptr = null, .len = 0 };
    return @intFromEnum(Status.ok);
}

// ---- hashing ----

export fn mic_blake3(data: ?[*]const u8, len: u64, digest_out: ?*[hash.digest_bytes]u8) i32 {
    return toC(blake3Impl(data, len, digest_out));
}
fn blake3Impl(data: ?[*]const u8, len: u64, digest_out: ?*[hash.digest_bytes]u8) Error!void {
    const out = digest_out orelse return error.InvalidArgument;
    out.* = hash.blake3(try inputBytes(data, len));
}

export fn mic_blob_hash(data: ?[*]const u8, len: u64, digest_out: ?*[hash.digest_bytes]u8) i32 {
    return toC(blobHashImpl(data, len, digest_out));
}
fn blobHashImpl(data: ?[*]const u8, len: u64, digest_out: ?*[hash.digest_bytes]u8) Error!void {
    const out = digest_out orelse return error.InvalidArgument;
    out.* = hash.blobHash(try inputBytes(data, len));
}

export fn mic_path_hash(path: ?[*]const u8, len: u64, hash_out: ?*[hash.path_hash_bytes]u8) i32 {
    return toC(pathHashImpl(path, len, hash_out));
}
fn pathHashImpl(path: ?[*]const u8, len: u64, hash_out: ?*[hash.path_hash_bytes]u8) Error!void {
    const out = hash_out orelse return error.InvalidArgument;
    out.* = hash.pathHash(try inputBytes(path, len));
}

export fn mic_hasher_new(hasher_out: ?*?*hash.Hasher) i32 {
    return toC(hasherNew(hasher_out, null));
}
export fn mic_blob_hasher_new(size_bytes: u64, hasher_out: ?*?*hash.Hasher) i32 {
    return toC(hasherNew(hasher_out, size_bytes));
}
fn hasherNew(hasher_out: ?*?*hash.Hasher, blob_size_bytes: ?u64) Error!void {
    const out = hasher_out orelse return error.InvalidArgument;
    const hasher = try allocator.create(hash.Hasher);
    hasher.* = if (blob_size_bytes) |size| hash.Hasher.initBlob(size) else hash.Hasher.init();
    out.* = hasher;
}

export fn mic_hasher_update(hasher: ?*hash.Hasher, data: ?[*]const u8, len: u64) i32 {
    return toC(hasherUpdate(hasher, data, len));
}
fn hasherUpdate(hasher: ?*hash.Hasher, data: ?[*]const u8, len: u64) Error!void {
    const h = hasher orelse return error.InvalidHandle;
    try h.update(try inputBytes(data, len));
}

export fn mic_hasher_final(hasher: ?*const hash.Hasher, digest_out: ?*[hash.digest_bytes]u8) i32 {
    return toC(hasherFinal(hasher, digest_out));
}
fn hasherFinal(hasher: ?*const hash.Hasher, digest_out: ?*[hash.digest_bytes]u8) Error!void {
    const h = hasher orelse return error.InvalidHandle;
    const out = digest_out orelse return error.InvalidArgument;
    out.* = try h.final();
}

export fn mic_hasher_free(hasher: ?*hash.Hasher) i32 {
    if (hasher) |h| allocator.destroy(h);
    return @intFromEnum(Status.ok);
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

export fn mic_bloom_new(bits: u64, k: u32, bloom_out: ?*?*Bloom) i32 {
    return toC(bloomNew(bits, k, bloom_out));
}
fn bloomNew(bits: u64, k: u32, bloom_out: ?*?*Bloom) Error!void {
    if (bloom_out == null or k > bloom.k_max) return error.InvalidArgument;
    try bloomOut(bloom_out, try Bloom.init(allocator, .{ .bits = bits, .k = @intCast(k) }));
}

export fn mic_bloom_new_for_items(expected_items: u64, fp_rate: f64, bloom_out: ?*?*Bloom) i32 {
    return toC(bloomNewForItems(expected_items, fp_rate, bloom_out));
}
fn bloomNewForItems(expected_items: u64, fp_rate: f64, bloom_out: ?*?*Bloom) Error!void {
    if (bloom_out == null) return error.InvalidArgument;
    const geometry = try bloom.geometryFor(expected_items, fp_rate);
    try bloomOut(bloom_out, try Bloom.init(allocator, geometry));
}

export fn mic_bloom_free(handle: ?*Bloom) i32 {
    if (handle) |b| {
        b.deinit();
        allocator.destroy(b);
    }
    return @intFromEnum(Status.ok);
}

export fn mic_bloom_geometry(handle: ?*const Bloom, bits_out: ?*u64, k_out: ?*u32) i32 {
    const b = handle orelse return @intFromEnum(Status.invalid_handle);
    const bits = bits_out orelse return @intFromEnum(Status.invalid_argument);
    const k = k_out orelse return @intFromEnum(Status.invalid_argument);
    bits.* = b.geometry.bits;
    k.* = b.geometry.k;
    return @intFromEnum(Status.ok);
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

export fn mic_bloom_add(handle: ?*Bloom, path: ?[*]const u8, len: u64) i32 {
    return toC(bloomAdd(handle, path, len));
}
fn bloomAdd(handle: ?*Bloom, path: ?[*]const u8, len: u64) Error!void {
    const b = handle orelse return error.InvalidHandle;
    b.add(try oneKey(path, len));
}

export fn mic_bloom_add_many(handle: ?*Bloom, list: ?[*]const u8, len: u64, count: u64) i32 {
    return toC(bloomAddMany(handle, list, len, count));
}
fn bloomAddMany(handle: ?*Bloom, list: ?[*]const u8, len: u64, count: u64) Error!void {
    const b = handle orelse return error.InvalidHandle;
    b.addList(try keyList(list, len, count), count);
}

export fn mic_bloom_may_contain(handle: ?*const Bloom, path: ?[*]const u8, len: u64, result_out: ?*bool) i32 {
    return toC(bloomMayContain(handle, path, len, result_out));
}
fn bloomMayContain(handle: ?*const Bloom, path: ?[*]const u8, len: u64, result_out: ?*bool) Error!void {
    const b = handle orelse return error.InvalidHandle;
    const out = result_out orelse return error.InvalidArgument;
    out.* = b.mayContain(try oneKey(path, len));
}

export fn mic_bloom_may_contain_any(handle: ?*const Bloom, list: ?[*]const u8, len: u64, count: u64, result_out: ?*bool) i32 {
    return toC(bloomMayContainAny(handle, list, len, count, result_out));
}
fn bloomMayContainAny(handle: ?*const Bloom, list: ?[*]const u8, len: u64, count: u64, result_out: ?*bool) Error!void {
    const b = handle orelse return error.InvalidHandle;
    const out = result_out orelse return error.InvalidArgument;
    out.* = b.mayContainAnyOf(try keyList(list, len, count), count);
}

export fn mic_bloom_intersects(a: ?*const Bloom, b: ?*const Bloom, result_out: ?*bool) i32 {
    return toC(bloomIntersects(a, b, result_out));
}
fn bloomIntersects(a: ?*const Bloom, b: ?*const Bloom, result_out: ?*bool) Error!void {
    const left = a orelse return error.InvalidHandle;
    const right = b orelse return error.InvalidHandle;
    const out = result_out orelse return error.InvalidArgument;
    out.* = try left.intersects(right);
}

export fn mic_bloom_union(into: ?*Bloom, from: ?*const Bloom) i32 {
    return toC(bloomUnion(into, from));
}
fn bloomUnion(into: ?*Bloom, from: ?*const Bloom) Error!void {
    const target = into orelse return error.InvalidHandle;
    const source = from orelse return error.InvalidHandle;
    try target.unionWith(source);
}

export fn mic_bloom_estimated_count(handle: ?*const Bloom, count_out: ?*f64) i32 {
    const b = handle orelse return @intFromEnum(Status.invalid_handle);
    const out = count_out orelse return @intFromEnum(Status.invalid_argument);
    out.* = b.estimatedCount();
    return @intFromEnum(Status.ok);
}

export fn mic_bloom_serialize(handle: ?*const Bloom, bytes_out: ?*Bytes) i32 {
    return toC(bloomSerialize(handle, bytes_out));
}
fn bloomSerialize(handle: ?*const Bloom, bytes_out: ?*Bytes) Error!void {
    const b = handle orelse return error.InvalidHandle;
    const out = bytes_out orelse return error.InvalidArgument;
    bytesOut(out, try b.serialize(allocator));
}

export fn mic_bloom_deserialize(data: ?[*]const u8, len: u64, bloom_out: ?*?*Bloom) i32 {
    return toC(bloomDeserialize(data, len, bloom_out));
}
fn bloomDeserialize(data: ?[*]const u8, len: u64, bloom_out: ?*?*Bloom) Error!void {
    if (bloom_out == null) return error.InvalidArgument;
    try bloomOut(bloom_out, try Bloom.deserialize(allocator, try inputBytes(data, len)));
}

// ---- hybrid logical clock ----

export fn mic_hlc_new(hlc_out: ?*?*hlc.Hlc) i32 {
    const out = hlc_out orelse return @intFromEnum(Status.invalid_argument);
    const clock = allocator.create(hlc.Hlc) catch return @intFromEnum(Status.out_of_memory);
    clock.* = .{};
    out.* = clock;
    return @intFromEnum(Status.ok);
}

export fn mic_hlc_free(clock: ?*hlc.Hlc) i32 {
    if (clock) |c| allocator.destroy(c);
    return @intFromEnum(Status.ok);
}

export fn mic_hlc_now(clock: ?*hlc.Hlc, wall_ms: u64, hlc_out: ?*u64) i32 {
    return toC(hlcAdvance(clock, null, wall_ms, hlc_out));
}

export fn mic_hlc_update(clock: ?*hlc.Hlc, remote: u64, wall_ms: u64, hlc_out: ?*u64) i32 {
    return toC(hlcAdvance(clock, remote, wall_ms, hlc_out));
}
fn hlcAdvance(clock: ?*hlc.Hlc, remote: ?u64, wall_ms: u64, hlc_out: ?*u64) Error!void {
    const c = clock orelse return error.InvalidHandle;
    const out = hlc_out orelse return error.InvalidArgument;
    out.* = if (remote) |r| try c.update(r, wall_ms) else try c.now(wall_ms);
}

// ==== tree (owned by the tree engineer) ====
// ==== end tree ====

test {
    std.testing.refAllDecls(@This());
    _ = hash;
    _ = @import("varint.zig");
    _ = bloom;
    _ = hlc;
    _ = paths;
}

test "status codes are pinned to the header's numbers" {
    try std.testing.expectEqual(@as(i32, 0), @intFromEnum(Status.ok));
    try std.testing.expectEqual(@as(i32, 2), @intFromEnum(Status.corrupt));
    try std.testing.expectEqual(@as(i32, 20), @intFromEnum(Status.node_not_found));
    try std.testing.expectEqual(@as(i32, 21), @intFromEnum(Status.loader_failed));
    try std.testing.expectEqualStrings("MIC_CORRUPT", std.mem.span(mic_status_str(2)));
    try std.testing.expectEqualStrings("MIC_UNKNOWN_STATUS", std.mem.span(mic_status_str(1234)));
}
