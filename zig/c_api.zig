//! The C ABI of libmic-core: the only file with exported symbols.
//!
//! Every export returns a mic_status; errors from the concept files become a
//! status through `statusOf`, one exhaustive switch without `else`, so adding
//! an error anywhere breaks the build until it is mapped. Handles are allocated
//! with the C allocator (thread-safe malloc) and each owns its memory.
const std = @import("std");
const hash = @import("hash.zig");

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

// ==== tree (owned by the tree engineer) ====
// ==== end tree ====

test {
    std.testing.refAllDecls(@This());
    _ = hash;
    _ = @import("varint.zig");
}

test "status codes are pinned to the header's numbers" {
    try std.testing.expectEqual(@as(i32, 0), @intFromEnum(Status.ok));
    try std.testing.expectEqual(@as(i32, 2), @intFromEnum(Status.corrupt));
    try std.testing.expectEqual(@as(i32, 20), @intFromEnum(Status.node_not_found));
    try std.testing.expectEqual(@as(i32, 21), @intFromEnum(Status.loader_failed));
    try std.testing.expectEqualStrings("MIC_CORRUPT", std.mem.span(mic_status_str(2)));
    try std.testing.expectEqualStrings("MIC_UNKNOWN_STATUS", std.mem.span(mic_status_str(1234)));
}
