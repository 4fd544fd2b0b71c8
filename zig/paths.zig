//! Repository paths and NUL-separated path lists.
//!
//! A path (DESIGN.md): UTF-8, '/'-separated, relative, no empty, '.' or '..'
//! segment, no NUL, 1..path_bytes_max bytes. Because a path never contains NUL,
//! a list of paths crosses the C ABI (and is stored) as one buffer: the paths
//! separated by single NUL bytes, no trailing NUL, with the count alongside.
const std = @import("std");

pub const path_bytes_max = 4096;

pub const Error = error{InvalidPath};

/// The syntax rules of a repository path; UTF-8 is checked too.
pub fn validate(path: []const u8) Error!void {
    if (path.len == 0 or path.len > path_bytes_max) return error.InvalidPath;
    if (path[0] == '/') return error.InvalidPath;
    var segment_start: usize = 0;
    for (path, 0..) |byte, i| {
        if (byte == 0) return error.InvalidPath;
        if (byte == '/') {
            try validateSegment(path[segment_start..i]);
            segment_start = i + 1;
        }
    }
    try validateSegment(path[segment_start..]);
    if (!std.unicode.utf8ValidateSlice(path)) return error.InvalidPath;
}

fn validateSegment(segment: []const u8) Error!void {
    if (segment.len == 0) return error.InvalidPath;
    if (std.mem.eql(u8, segment, ".") or std.mem.eql(u8, segment, "..")) return error.InvalidPath;
}

/// Finds the NUL bytes of a buffer in order, 64 bytes per vector compare.
/// Why: lists of thousands of ~40-byte paths are split twice per call (check,
/// then use), and a per-item `indexOfScalar` cost more than hashing the item.
const NulScanner = struct {
    buffer: []const u8,
    /// Start of the 64-byte window `mask` describes.
    base: usize,
    /// Bit i set = buffer[base + i] is NUL and not yet returned.
    mask: u64,

    const window = 64;
    const Window = @Vector(window, u8);

    fn init(buffer: []const u8) NulScanner {
        return .{ .buffer = buffer, .base = 0, .mask = windowMask(buffer, 0) };
    }

    fn windowMask(buffer: []const u8, base: usize) u64 {
        if (base >= buffer.len) return 0;
        const rest = buffer[base..];
        const bytes: [window]u8 = if (rest.len >= window) rest[0..window].* else blk: {
            var padded: [window]u8 = @splat(0xff); // padding is never NUL
            @memcpy(padded[0..rest.len], rest);
            break :blk padded;
        };
        const v: Window = bytes;
        return @bitCast(v == @as(Window, @splat(0)));
    }

    /// Position of the next NUL, or null at the end of the buffer.
    fn next(self: *NulScanner) ?usize {
        while (self.mask == 0) {
            self.base += window;
            if (self.base >= self.buffer.len) return null;
            self.mask = windowMask(self.buffer, self.base);
        }
        const position = self.base + @ctz(self.mask);
        self.mask &= self.mask - 1;
        return position;
    }
};

/// Iterates `count` NUL-separated items of `buffer`. `validateList` must have
/// accepted the pair first; then `next` returns exactly `count` items.
pub const Iterator = struct {
    scanner: NulScanner,
    offset: usize = 0,
    remaining: u64,

    pub fn init(buffer: []const u8, count: u64) Iterator {
        return .{ .scanner = .init(buffer), .remaining = count };
    }

    pub fn next(self: *Iterator) ?[]const u8 {
        if (self.remaining == 0) return null;
        self.remaining -= 1;
        const buffer = self.scanner.buffer;
        const end = self.scanner.next() orelse buffer.len;
        std.debug.assert(end >= self.offset and end <= buffer.len);
        const item = buffer[self.offset..end];
        self.offset = end + 1; // past the separator (or past the end for the last item)
        return item;
    }
};

pub const ListRule = enum {
    /// Items of 1..path_bytes_max bytes (blooms: any key that is not empty).
    items,
    /// Valid repository paths, strictly increasing bytewise (sorted, unique).
    sorted_paths,
};

pub const ListError = error{ InvalidList, InvalidPath };

/// Checks that `buffer` holds exactly `count` items separated by single NULs.
pub fn validateList(buffer: []const u8, count: u64, rule: ListRule) ListError!void {
    if (count == 0) {
        if (buffer.len != 0) return error.InvalidList;
        return;
    }
    // count items need count - 1 separators and at least one byte each.
    if (count > buffer.len / 2 + 1) return error.InvalidList;
    var scanner: NulScanner = .init(buffer);
    var seen: u64 = 0;
    var previous: ?[]const u8 = null;
    var start: usize = 0;
    while (true) {
        const separator = scanner.next();
        const end = separator orelse buffer.len;
        const item = buffer[start..end];
        seen += 1;
        if (seen > count) return error.InvalidList;
        switch (rule) {
            .items => if (item.len == 0 or item.len > path_bytes_max) return error.InvalidPath,
            .sorted_paths => {
                try validate(item);
                if (previous) |prev| {
                    if (std.mem.order(u8, prev, item) != .lt) return error.InvalidPath;
                }
                previous = item;
            },
        }
        if (separator == null) break; // last item, no trailing separator
        start = end + 1;
    }
    if (seen != count) return error.InvalidList;
}

test "path rules" {
    try validate("a");
    try validate("src/main.zig");
    try validate("é/ü.txt");
    for ([_][]const u8{ "", "/a", "a/", "a//b", ".", "a/./b", "a/..", "a\x00b", "\xff" }) |bad| {
        try std.testing.expectError(error.InvalidPath, validate(bad));
    }
    const long: [path_bytes_max + 1]u8 = @splat('a');
    try std.testing.expectError(error.InvalidPath, validate(&long));
    try validate(long[0..path_bytes_max]);
}

test "lists" {
    try validateList("", 0, .sorted_paths);
    try validateList("a\x00b\x00c", 3, .sorted_paths);
    try std.testing.expectError(error.InvalidPath, validateList("b\x00a", 2, .sorted_paths));
    try std.testing.expectError(error.InvalidPath, validateList("a\x00a", 2, .sorted_paths));
    try std.testing.expectError(error.InvalidList, validateList("a\x00b", 3, .items));
    try std.testing.expectError(error.InvalidList, validateList("a\x00b", 1, .items));
    try std.testing.expectError(error.InvalidList, validateList("a\x00", 1, .items));
    try std.testing.expectError(error.InvalidList, validateList("a", 0, .items));
    try std.testing.expectError(error.InvalidPath, validateList("\x00a", 2, .items));
    // Separators on both sides of 64-byte window edges, checked against a naive split.
    var long_list: [300]u8 = @splat('a');
    for ([_]usize{ 1, 63, 65, 127, 129, 200, 298 }) |at| long_list[at] = 0;
    try validateList(&long_list, 8, .items);
    try std.testing.expectError(error.InvalidList, validateList(&long_list, 7, .items));
    try std.testing.expectError(error.InvalidList, validateList(&long_list, 9, .items));
    var long_it = Iterator.init(&long_list, 8);
    var naive = std.mem.splitScalar(u8, &long_list, 0);
    while (naive.next()) |expected| try std.testing.expectEqualSlices(u8, expected, long_it.next().?);
    try std.testing.expect(long_it.next() == null);
    long_list[64] = 0; // adjacent separators: an empty item
    try std.testing.expectError(error.InvalidPath, validateList(&long_list, 9, .items));
    var it = Iterator.init("x\x00yy\x00z", 3);
    try std.testing.expectEqualStrings("x", it.next().?);
    try std.testing.expectEqualStrings("yy", it.next().?);
    try std.testing.expectEqualStrings("z", it.next().?);
    try std.testing.expect(it.next() == null);
}
