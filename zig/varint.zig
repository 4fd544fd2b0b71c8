//! Unsigned LEB128 varints (7 bits per byte, least significant group first,
//! high bit = "more bytes follow"), as used by blob hashes and sparse blooms.
const std = @import("std");

pub const max_bytes = 10; // ceil(64 / 7)

pub const DecodeError = error{Corrupt};

pub fn write(out: []u8, value: u64) usize {
    std.debug.assert(out.len >= encodedLength(value));
    var rest = value;
    var i: usize = 0;
    while (rest >= 0x80) : (i += 1) {
        out[i] = @as(u8, @truncate(rest)) | 0x80;
        rest >>= 7;
    }
    out[i] = @truncate(rest);
    return i + 1;
}

pub fn encodedLength(value: u64) usize {
    var rest = value;
    var n: usize = 1;
    while (rest >= 0x80) : (n += 1) rest >>= 7;
    return n;
}

pub const Decoded = struct { value: u64, len: usize };

/// Rejects truncation, overlong (non-canonical) encodings and values above 2^64-1,
/// so every value has exactly one encoding and formats stay byte-stable.
pub fn read(in: []const u8) DecodeError!Decoded {
    var value: u64 = 0;
    var i: usize = 0;
    while (i < max_bytes) : (i += 1) {
        if (i >= in.len) return error.Corrupt;
        const byte = in[i];
        const group: u64 = byte & 0x7f;
        if (i == max_bytes - 1 and group > 1) return error.Corrupt;
        value |= group << @intCast(7 * i);
        if (byte & 0x80 == 0) {
            if (i > 0 and group == 0) return error.Corrupt; // overlong
            return .{ .value = value, .len = i + 1 };
        }
    }
    return error.Corrupt;
}

test "varint round trip and rejection" {
    var buf: [max_bytes]u8 = undefined;
    const values = [_]u64{ 0, 1, 127, 128, 300, 16383, 16384, std.math.maxInt(u32), std.math.maxInt(u64) };
    for (values) |value| {
        const n = write(&buf, value);
        try std.testing.expectEqual(encodedLength(value), n);
        const decoded = try read(buf[0..n]);
        try std.testing.expectEqual(value, decoded.value);
        try std.testing.expectEqual(n, decoded.len);
        if (n > 1) try std.testing.expectError(error.Corrupt, read(buf[0 .. n - 1]));
    }
    try std.testing.expectError(error.Corrupt, read(&.{ 0x80, 0x00 }));
    try std.testing.expectError(error.Corrupt, read(&.{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02 }));
    try std.testing.expectError(error.Corrupt, read(&.{}));
}
