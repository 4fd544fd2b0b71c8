//! Bloom filters keyed by path hashes (hash.pathHash), serialized as "MICB".
//!
//! Bit i of k for a key: (h1 + i*h2) mod bits, where h1, h2 are the two
//! little-endian u64 halves of the 16-byte path hash and h2 is forced odd. bits
//! is a power of two, so "mod" is a mask and an odd h2 visits k distinct bits
//! whenever k <= bits. Any geometry can be tested from the same path hash.
//!
//! Landings, sessions and rollups of every level use one fixed geometry
//! (landing_bits, landing_k) so that a rollup is the union of its landings.
const std = @import("std");
const hash = @import("hash.zig");
const paths = @import("paths.zig");
const varint = @import("varint.zig");
const path_hash_many = @import("path_hash_many.zig");

pub const landing_bits: u64 = 1 << 23; // 1 MiB of bits
pub const landing_k: u8 = 7;
pub const bits_min: u64 = 64;
pub const bits_max: u64 = 1 << 32;
pub const k_max: u8 = 32;

pub const magic = "MICB";
pub const format_version: u8 = 1;
pub const header_bytes = 16;
pub const Encoding = enum(u8) { dense = 0, sparse = 1 };

comptime {
    std.debug.assert(std.math.isPowerOfTwo(landing_bits));
    std.debug.assert(landing_bits >= bits_min and landing_bits <= bits_max);
    std.debug.assert(landing_k >= 1 and landing_k <= k_max);
    std.debug.assert(bits_min % 64 == 0);
}

pub const Error = error{ InvalidArgument, OutOfMemory, Corrupt };
pub const DeserializeError = Error || error{LimitExceeded};

pub const Geometry = struct {
    bits: u64,
    k: u8,

    pub fn valid(self: Geometry) bool {
        return self.bits >= bits_min and self.bits <= bits_max and
            std.math.isPowerOfTwo(self.bits) and self.k >= 1 and self.k <= k_max;
    }

    pub fn eql(self: Geometry, other: Geometry) bool {
        return self.bits == other.bits and self.k == other.k;
    }

    pub const landing: Geometry = .{ .bits = landing_bits, .k = landing_k };
};

/// Smallest power-of-two geometry whose false-positive rate at `expected_items`
/// is at most `fp_rate` (the classic m = -n ln p / ln^2 2, k = m/n ln 2).
pub fn geometryFor(expected_items: u64, fp_rate: f64) error{ InvalidArgument, LimitExceeded }!Geometry {
    if (!(fp_rate > 0.0 and fp_rate < 1.0)) return error.InvalidArgument;
    const n: f64 = @floatFromInt(@max(expected_items, 1));
    const ln2 = std.math.ln2;
    const ideal_bits = -n * @log(fp_rate) / (ln2 * ln2);
    if (!(ideal_bits <= @as(f64, @floatFromInt(bits_max)))) return error.LimitExceeded;
    const wanted: u64 = @max(bits_min, @as(u64, @intFromFloat(@ceil(ideal_bits))));
    const bits = std.math.ceilPowerOfTwo(u64, wanted) catch return error.LimitExceeded;
    if (bits > bits_max) return error.LimitExceeded;
    const ideal_k = @as(f64, @floatFromInt(bits)) / n * ln2;
    const k: u8 = @intFromFloat(std.math.clamp(@round(ideal_k), 1.0, @as(f64, @floatFromInt(k_max))));
    return .{ .bits = bits, .k = k };
}

pub const Bloom = struct {
    allocator: std.mem.Allocator,
    geometry: Geometry,
    words: []u64,

    pub fn init(allocator: std.mem.Allocator, geometry: Geometry) Error!Bloom {
        if (!geometry.valid()) return error.InvalidArgument;
        const words = try allocator.alloc(u64, @intCast(geometry.bits / 64));
        @memset(words, 0);
        return .{ .allocator = allocator, .geometry = geometry, .words = words };
    }

    pub fn deinit(self: *Bloom) void {
        self.allocator.free(self.words);
        self.* = undefined;
    }

    inline fn halves(key: [hash.path_hash_bytes]u8) [2]u64 {
        return .{
            std.mem.readInt(u64, key[0..8], .little),
            std.mem.readInt(u64, key[8..16], .little) | 1,
        };
    }

    pub fn addKey(self: *Bloom, key: [hash.path_hash_bytes]u8) void {
        const h = halves(key);
        const mask = self.geometry.bits - 1;
        var i: u64 = 0;
        while (i < self.geometry.k) : (i += 1) {
            const bit = (h[0] +% i *% h[1]) & mask;
            self.words[@intCast(bit >> 6)] |= @as(u64, 1) << @intCast(bit & 63);
        }
    }

    pub fn containsKey(self: *const Bloom, key: [hash.path_hash_bytes]u8) bool {
        const h = halves(key);
        const mask = self.geometry.bits - 1;
        var i: u64 = 0;
        while (i < self.geometry.k) : (i += 1) {
            const bit = (h[0] +% i *% h[1]) & mask;
            if (self.words[@intCast(bit >> 6)] & (@as(u64, 1) << @intCast(bit & 63)) == 0) return false;
        }
        return true;
    }

    pub fn add(self: *Bloom, path: []const u8) void {
        self.addKey(hash.pathHash(path));
    }

    pub fn mayContain(self: *const Bloom, path: []const u8) bool {
        return self.containsKey(hash.pathHash(path));
    }

    /// Adds every item of a validated NUL-separated list (see paths.validateList).
    /// Keys are hashed a batch at a time in SIMD lanes (path_hash_many.zig).
    pub fn addList(self: *Bloom, list: []const u8, count: u64) void {
        var it = paths.Iterator.init(list, count);
        var keys: [list_batch][]const u8 = undefined;
        var hashes: [list_batch][hash.path_hash_bytes]u8 = undefined;
        while (true) {
            const n = fillBatch(&it, &keys);
            if (n == 0) break;
            path_hash_many.pathHashMany(keys[0..n], hashes[0..n]);
            for (hashes[0..n]) |key| self.addKey(key);
        }
    }

    pub fn mayContainAnyOf(self: *const Bloom, list: []const u8, count: u64) bool {
        var it = paths.Iterator.init(list, count);
        var keys: [list_batch][]const u8 = undefined;
        var hashes: [list_batch][hash.path_hash_bytes]u8 = undefined;
        while (true) {
            const n = fillBatch(&it, &keys);
            if (n == 0) return false;
            path_hash_many.pathHashMany(keys[0..n], hashes[0..n]);
            for (hashes[0..n]) |key| if (self.containsKey(key)) return true;
        }
    }

    const list_batch = 4 * path_hash_many.lanes;

    fn fillBatch(it: *paths.Iterator, keys: *[list_batch][]const u8) usize {
        var n: usize = 0;
        while (n < list_batch) : (n += 1) keys[n] = it.next() orelse break;
        return n;
    }

    /// Could the two filters share an item: is their bitwise AND non-empty?
    pub fn intersects(self: *const Bloom, other: *const Bloom) Error!bool {
        if (!self.geometry.eql(other.geometry)) return error.InvalidArgument;
        // Blocks of 8 words: the inner loop has no branch, so it vectorizes.
        const block = 8;
        var i: usize = 0;
        while (i < self.words.len) : (i += block) {
            const end = @min(self.words.len, i + block);
            var any: u64 = 0;
            for (self.words[i..end], other.words[i..end]) |a, b| any |= a & b;
            if (any != 0) return true;
        }
        return false;
    }

    pub fn unionWith(self: *Bloom, other: *const Bloom) Error!void {
        if (!self.geometry.eql(other.geometry)) return error.InvalidArgument;
        for (self.words, other.words) |*a, b| a.* |= b;
    }

    /// Words per vector in the whole-filter scans (a small filter's tail is
    /// scanned word by word).
    const scan_words = 8;
    const ScanBlock = @Vector(scan_words, u64);

    pub fn popCount(self: *const Bloom) u64 {
        var total: u64 = 0;
        var i: usize = 0;
        while (i + scan_words <= self.words.len) : (i += scan_words) {
            const block: ScanBlock = self.words[i..][0..scan_words].*;
            total += @reduce(.Add, @as(ScanBlock, @popCount(block)));
        }
        for (self.words[i..]) |word| total += @popCount(word);
        return total;
    }

    /// Calls `visit.bit(index)` for every set bit in increasing order, skipping
    /// all-zero blocks with one vector test (sparse filters are mostly zeros).
    fn forEachSetBit(self: *const Bloom, visit: anytype) void {
        var i: usize = 0;
        while (i < self.words.len) : (i += scan_words) {
            const end = @min(self.words.len, i + scan_words);
            if (end - i == scan_words) {
                const block: ScanBlock = self.words[i..][0..scan_words].*;
                if (@reduce(.Or, block) == 0) continue;
            }
            for (self.words[i..end], i..) |word, w| {
                var rest = word;
                while (rest != 0) {
                    visit.bit(@as(u64, w) * 64 + @ctz(rest));
                    rest &= rest - 1;
                }
            }
        }
    }

    /// Swamidass & Baldi: n ≈ -(m/k) ln(1 - X/m); +inf when every bit is set.
    pub fn estimatedCount(self: *const Bloom) f64 {
        const m: f64 = @floatFromInt(self.geometry.bits);
        const x: f64 = @floatFromInt(self.popCount());
        const k: f64 = @floatFromInt(self.geometry.k);
        if (x >= m) return std.math.inf(f64);
        return -(m / k) * @log(1.0 - x / m);
    }

    /// Largest sparse delta: indices are < bits <= 2^32, so a delta takes <= 5 varint bytes.
    const sparse_delta_bytes_max = 5;

    comptime {
        std.debug.assert(varint.encodedLength(bits_max - 1) <= sparse_delta_bytes_max);
    }

    /// The canonical serialization: whichever encoding is smaller (dense on a tie).
    /// The sparse body is written once into a buffer of its worst-case size and
    /// kept only if it wins; a separate sizing pass cost as much as the writing.
    pub fn serialize(self: *const Bloom, allocator: std.mem.Allocator) error{OutOfMemory}![]u8 {
        const dense_bytes = self.geometry.bits / 8;
        const set_bits = self.popCount();
        // Every sparse index takes at least one byte: no need to try when it cannot win.
        if (set_bits < dense_bytes) {
            const worst = header_bytes + varint.max_bytes + set_bits * sparse_delta_bytes_max;
            const scratch = try allocator.alloc(u8, @intCast(worst));
            defer allocator.free(scratch);
            const body_bytes = self.writeSparse(scratch[header_bytes..], set_bits);
            if (body_bytes < dense_bytes) {
                self.writeHeader(scratch, .sparse);
                return allocator.dupe(u8, scratch[0 .. header_bytes + body_bytes]);
            }
        }
        const out = try allocator.alloc(u8, @intCast(header_bytes + dense_bytes));
        self.serializeInto(out, .dense);
        return out;
    }

    fn writeHeader(self: *const Bloom, out: []u8, encoding: Encoding) void {
        @memcpy(out[0..4], magic);
        out[4] = format_version;
        out[5] = @backingInt(encoding);
        out[6] = self.geometry.k;
        out[7] = 0;
        std.mem.writeInt(u64, out[8..16], self.geometry.bits, .little);
    }

    /// Writes the sparse body (count, then deltas) and returns its length.
    fn writeSparse(self: *const Bloom, body: []u8, set_bits: u64) usize {
        const Writer = struct {
            body: []u8,
            offset: usize,
            previous: ?u64 = null,
            fn bit(writer: *@This(), index: u64) void {
                const delta = if (writer.previous) |prev| index - prev else index;
                writer.offset += varint.write(writer.body[writer.offset..], delta);
                writer.previous = index;
            }
        };
        var writer: Writer = .{ .body = body, .offset = varint.write(body, set_bits) };
        self.forEachSetBit(&writer);
        return writer.offset;
    }

    /// Writes the given encoding into `out`, which must be exactly its size (tests, fuzz seeds).
    pub fn serializeInto(self: *const Bloom, out: []u8, encoding: Encoding) void {
        self.writeHeader(out, encoding);
        const body = out[header_bytes..];
        switch (encoding) {
            .dense => {
                std.debug.assert(body.len == self.words.len * 8);
                for (self.words, 0..) |word, w| std.mem.writeInt(u64, body[w * 8 ..][0..8], word, .little);
            },
            .sparse => std.debug.assert(self.writeSparse(body, self.popCount()) == body.len),
        }
    }

    /// Any geometry the format allows: up to bits_max (512 MiB) from a 17-byte
    /// sparse input. Untrusted bytes go through `deserializeAtMost`.
    pub fn deserialize(allocator: std.mem.Allocator, data: []const u8) Error!Bloom {
        return fromValidated(allocator, data, try validate(data));
    }

    /// Like `deserialize`, but a well-formed filter of more than `filter_bits_max`
    /// bits is LimitExceeded before anything is allocated: the size of the
    /// allocation is the caller's choice, not the input's.
    pub fn deserializeAtMost(
        allocator: std.mem.Allocator,
        data: []const u8,
        filter_bits_max: u64,
    ) DeserializeError!Bloom {
        const parsed = try validate(data);
        if (parsed.geometry.bits > filter_bits_max) return error.LimitExceeded;
        return fromValidated(allocator, data, parsed);
    }

    fn fromValidated(allocator: std.mem.Allocator, data: []const u8, parsed: Parsed) Error!Bloom {
        var bloom = try Bloom.init(allocator, parsed.geometry);
        errdefer bloom.deinit();
        const body = data[header_bytes..];
        switch (parsed.encoding) {
            .dense => for (bloom.words, 0..) |*word, w| {
                word.* = std.mem.readInt(u64, body[w * 8 ..][0..8], .little);
            },
            .sparse => {
                var it = try SparseIterator.init(body); // validated above; errors cannot occur
                while (try it.next()) |index| {
                    bloom.words[@intCast(index >> 6)] |= @as(u64, 1) << @intCast(index & 63);
                }
            },
        }
        return bloom;
    }
};

pub const Parsed = struct { geometry: Geometry, encoding: Encoding };

/// Checks a serialized filter without allocating: header, geometry, and for a
/// sparse body a strictly increasing index list below `bits` with no trailing bytes.
pub fn validate(data: []const u8) error{Corrupt}!Parsed {
    if (data.len < header_bytes) return error.Corrupt;
    if (!std.mem.eql(u8, data[0..4], magic)) return error.Corrupt;
    if (data[4] != format_version) return error.Corrupt;
    const encoding = std.enums.fromInt(Encoding, data[5]) orelse return error.Corrupt;
    if (data[7] != 0) return error.Corrupt;
    const geometry: Geometry = .{ .bits = std.mem.readInt(u64, data[8..16], .little), .k = data[6] };
    if (!geometry.valid()) return error.Corrupt;
    const body = data[header_bytes..];
    switch (encoding) {
        .dense => if (body.len != geometry.bits / 8) return error.Corrupt,
        .sparse => {
            var it = try SparseIterator.init(body);
            if (it.remaining > geometry.bits) return error.Corrupt;
            while (try it.next()) |index| {
                if (index >= geometry.bits) return error.Corrupt;
            }
            if (it.offset != body.len) return error.Corrupt;
        },
    }
    return .{ .geometry = geometry, .encoding = encoding };
}

const SparseIterator = struct {
    body: []const u8,
    offset: usize,
    remaining: u64,
    previous: ?u64 = null,

    fn init(body: []const u8) error{Corrupt}!SparseIterator {
        const count = try varint.read(body);
        // Each index takes at least one byte: a count larger than what remains is corrupt.
        if (count.value > body.len - count.len) return error.Corrupt;
        return .{ .body = body, .offset = count.len, .remaining = count.value };
    }

    fn next(self: *SparseIterator) error{Corrupt}!?u64 {
        if (self.remaining == 0) return null;
        self.remaining -= 1;
        const step = try varint.read(self.body[self.offset..]);
        self.offset += step.len;
        const index = if (self.previous) |prev| blk: {
            if (step.value == 0) return error.Corrupt; // strictly increasing
            break :blk std.math.add(u64, prev, step.value) catch return error.Corrupt;
        } else step.value;
        self.previous = index;
        return index;
    }
};

const testing = std.testing;

test "geometry for items" {
    const g = try geometryFor(10_000, 0.01);
    try testing.expect(g.bits >= 95_851 and std.math.isPowerOfTwo(g.bits));
    try testing.expect(g.k >= 7);
    try testing.expectError(error.InvalidArgument, geometryFor(10, 0.0));
    try testing.expectError(error.InvalidArgument, geometryFor(10, 1.0));
    try testing.expectError(error.InvalidArgument, geometryFor(10, std.math.nan(f64)));
    try testing.expectError(error.LimitExceeded, geometryFor(std.math.maxInt(u64), 1e-9));
}

test "add, contains, no false negatives, serialize both encodings" {
    var bloom = try Bloom.init(testing.allocator, .{ .bits = 1 << 12, .k = 5 });
    defer bloom.deinit();
    var buf: [32]u8 = undefined;
    var i: u32 = 0;
    while (i < 100) : (i += 1) bloom.add(try std.fmt.bufPrint(&buf, "dir/file{d}", .{i}));
    i = 0;
    while (i < 100) : (i += 1) try testing.expect(bloom.mayContain(try std.fmt.bufPrint(&buf, "dir/file{d}", .{i})));
    const estimate = bloom.estimatedCount();
    try testing.expect(estimate > 90 and estimate < 110);

    const bytes = try bloom.serialize(testing.allocator);
    defer testing.allocator.free(bytes);
    try testing.expectEqual(@as(u8, @backingInt(Encoding.sparse)), bytes[5]);
    var copy = try Bloom.deserialize(testing.allocator, bytes);
    defer copy.deinit();
    try testing.expectEqualSlices(u64, bloom.words, copy.words);

    var dense = try testing.allocator.alloc(u8, header_bytes + bloom.words.len * 8);
    defer testing.allocator.free(dense);
    bloom.serializeInto(dense, .dense);
    var copy2 = try Bloom.deserialize(testing.allocator, dense);
    defer copy2.deinit();
    try testing.expectEqualSlices(u64, bloom.words, copy2.words);
    try testing.expectError(error.Corrupt, validate(dense[0 .. dense.len - 1]));
}

test "sparse validation rejects disorder, duplicates, range and trailing bytes" {
    const header = "MICB\x01\x01\x03\x00" ++ "\x40\x00\x00\x00\x00\x00\x00\x00"; // 64 bits, k=3, sparse
    _ = try validate(header ++ "\x02\x05\x01");
    try testing.expectError(error.Corrupt, validate(header ++ "\x02\x05\x00")); // duplicate
    try testing.expectError(error.Corrupt, validate(header ++ "\x01\x40")); // index 64 >= bits
    try testing.expectError(error.Corrupt, validate(header ++ "\x01\x05\x00")); // trailing
    try testing.expectError(error.Corrupt, validate(header ++ "\x05\x01")); // count > remaining
    try testing.expectError(error.Corrupt, validate(header ++ "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"));
    try testing.expectError(error.Corrupt, validate("MICB\x01\x01\x03\x00" ++ "\x41\x00\x00\x00\x00\x00\x00\x00\x00"));
    try testing.expectError(error.Corrupt, validate("MICB\x01\x02\x03\x00" ++ "\x40\x00\x00\x00\x00\x00\x00\x00\x00"));
}

test "deserializeAtMost refuses a filter larger than the caller allows, before allocating" {
    // 17 bytes claiming 2^32 bits (512 MiB): an empty sparse body is well formed.
    const huge = "MICB\x01\x01\x07\x00" ++ "\x00\x00\x00\x00\x01\x00\x00\x00" ++ "\x00";
    _ = try validate(huge);
    // failing_allocator: any allocation attempt would be OutOfMemory, not LimitExceeded.
    try testing.expectError(error.LimitExceeded, Bloom.deserializeAtMost(testing.failing_allocator, huge, 1 << 27));
    try testing.expectError(error.Corrupt, Bloom.deserializeAtMost(testing.failing_allocator, huge[0..16], 1 << 27));

    var filter = try Bloom.init(testing.allocator, .{ .bits = 1 << 12, .k = 3 });
    defer filter.deinit();
    filter.add("a/b");
    const bytes = try filter.serialize(testing.allocator);
    defer testing.allocator.free(bytes);
    try testing.expectError(error.LimitExceeded, Bloom.deserializeAtMost(testing.allocator, bytes, (1 << 12) - 1));
    var copy = try Bloom.deserializeAtMost(testing.allocator, bytes, 1 << 12);
    defer copy.deinit();
    try testing.expectEqualSlices(u64, filter.words, copy.words);
}

test "golden bits of a fixed input in the landing geometry" {
    var bloom = try Bloom.init(testing.allocator, Geometry.landing);
    defer bloom.deinit();
    bloom.add("src/main.zig");
    const bytes = try bloom.serialize(testing.allocator);
    defer testing.allocator.free(bytes);
    // 16-byte header + varint count 7 + 7 varint deltas: pinned by tests/core/test_bloom.py too.
    try testing.expectEqual(@as(u8, 1), bytes[5]);
    try testing.expectEqual(@as(u64, 7), bloom.popCount());
}

test "union and intersects" {
    const g: Geometry = .{ .bits = 1 << 10, .k = 4 };
    var a = try Bloom.init(testing.allocator, g);
    defer a.deinit();
    var b = try Bloom.init(testing.allocator, g);
    defer b.deinit();
    a.add("a");
    b.add("b");
    try testing.expect(!(try a.intersects(&b)) or a.mayContain("b"));
    try a.unionWith(&b);
    try testing.expect(a.mayContain("a") and a.mayContain("b"));
    try testing.expect(try a.intersects(&b));
    var c = try Bloom.init(testing.allocator, .{ .bits = 1 << 11, .k = 4 });
    defer c.deinit();
    try testing.expectError(error.InvalidArgument, a.intersects(&c));
    try testing.expectError(error.InvalidArgument, a.unionWith(&c));
}
