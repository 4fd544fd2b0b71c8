//! Decoder fuzzer: `python -m ziglang build fuzz [-Dfuzz-iterations=N] [-Dfuzz-seed=S]`.
//!
//! Feeds every decoder of the C ABI (head, session, landing, rollup, bloom)
//! `iterations` inputs each: valid encodings (built with the C encoders) put
//! through truncations, bit flips, byte overwrites, huge counts and lengths,
//! insertions, deletions, splices between formats and plain random bytes.
//! The run fails if any call traps (this binary is built with safety checks:
//! bounds, overflow and assertions), returns a status other than OK or
//! CORRUPT (OUT_OF_MEMORY is allowed for blooms, whose geometry decides the
//! allocation), or accepts input whose spans leave the buffer or whose fields
//! its encoder would refuse.
const std = @import("std");
const core = @import("mic_core");
const options = @import("fuzz_options");

const codec = core.codec;
const ok: i32 = 0;
const corrupt: i32 = 2;
const out_of_memory: i32 = 3;
const scratch_bytes_max = 1 << 16;

const Kind = enum { head, session, landing, rollup, bloom };

const Seed = struct { kind: Kind, bytes: []const u8 };

const Stats = struct { accepted: u64 = 0, rejected: u64 = 0 };

fn fail(comptime fmt: []const u8, args: anytype) noreturn {
    std.debug.print("FUZZ FAILURE: " ++ fmt ++ "\n", args);
    std.process.exit(1);
}

fn expectOk(status: i32, what: []const u8) void {
    if (status != ok) fail("{s} returned {s}", .{ what, std.mem.span(core.mic_status_str(status)) });
}

fn ownBytes(allocator: std.mem.Allocator, out: *core.Bytes) []const u8 {
    const copy = allocator.dupe(u8, out.ptr.?[0..@intCast(out.len)]) catch fail("out of memory", .{});
    _ = core.mic_bytes_free(out);
    return copy;
}

/// Concatenates parts into one buffer and records each part's span.
const Builder = struct {
    buffer: [8192]u8 = undefined,
    len: usize = 0,

    fn add(self: *Builder, part: []const u8) codec.Span {
        const span: codec.Span = .{ .offset = self.len, .len = part.len };
        @memcpy(self.buffer[self.len..][0..part.len], part);
        self.len += part.len;
        return span;
    }

    fn bytes(self: *const Builder) []const u8 {
        return self.buffer[0..self.len];
    }
};

fn buildSeeds(allocator: std.mem.Allocator) []const Seed {
    var seeds: std.ArrayList(Seed) = .empty;
    const append = struct {
        fn f(list: *std.ArrayList(Seed), a: std.mem.Allocator, seed: Seed) void {
            list.append(a, seed) catch fail("out of memory", .{});
        }
    }.f;

    // head
    var head_bytes: [codec.head_bytes]u8 = undefined;
    const head: codec.Head = .{ .position = 12345, .tree_hash = @splat(0xab), .hlc = 0x0000_0190_0000_0001 };
    expectOk(core.mic_head_encode(&head, &head_bytes), "mic_head_encode");
    append(&seeds, allocator, .{ .kind = .head, .bytes = allocator.dupe(u8, &head_bytes) catch unreachable });

    // blooms: a sparse landing-geometry filter and a small dense one
    var landing_filter: ?*core.bloom.Bloom = null;
    expectOk(core.mic_bloom_new(core.bloom.landing_bits, core.bloom.landing_k, &landing_filter), "mic_bloom_new");
    const some_paths = "README.md\x00src/a.zig\x00src/b/c.zig\x00z/\xc3\xa9t\xc3\xa9.txt";
    expectOk(core.mic_bloom_add_many(landing_filter, some_paths, some_paths.len, 4), "mic_bloom_add_many");
    var landing_bloom: core.Bytes = .{ .ptr = null, .len = 0 };
    expectOk(core.mic_bloom_serialize(landing_filter, &landing_bloom), "mic_bloom_serialize");
    _ = core.mic_bloom_free(landing_filter);
    const landing_bloom_bytes = ownBytes(allocator, &landing_bloom);
    append(&seeds, allocator, .{ .kind = .bloom, .bytes = landing_bloom_bytes });

    var small_filter: ?*core.bloom.Bloom = null;
    expectOk(core.mic_bloom_new(256, 3, &small_filter), "mic_bloom_new");
    expectOk(core.mic_bloom_add_many(small_filter, some_paths, some_paths.len, 4), "mic_bloom_add_many");
    var small_bloom: core.Bytes = .{ .ptr = null, .len = 0 };
    expectOk(core.mic_bloom_serialize(small_filter, &small_bloom), "mic_bloom_serialize");
    _ = core.mic_bloom_free(small_filter);
    append(&seeds, allocator, .{ .kind = .bloom, .bytes = ownBytes(allocator, &small_bloom) });

    // rollup
    const rollup: codec.RollupFields = .{ .level = 2, .start_position = 10_001, .count = 10_000, .bloom = .{ .offset = 0, .len = landing_bloom_bytes.len } };
    var rollup_out: core.Bytes = .{ .ptr = null, .len = 0 };
    expectOk(core.mic_rollup_encode(&rollup, landing_bloom_bytes.ptr, landing_bloom_bytes.len, &rollup_out), "mic_rollup_encode");
    append(&seeds, allocator, .{ .kind = .rollup, .bytes = ownBytes(allocator, &rollup_out) });

    // landing record
    {
        var b: Builder = .{};
        const landing: codec.LandingFields = .{
            .position = 77,
            .session_id = @splat(0x11),
            .parent_tree = @splat(0x22),
            .tree_hash = @splat(0x33),
            .hlc = 99,
            .path_count = 4,
            .author = b.add("ada@example.com"),
            .goal = b.add("make the fuzzer happy \xe2\x9c\x93"),
            .paths = b.add(some_paths),
            .bloom = .{},
        };
        var out: core.Bytes = .{ .ptr = null, .len = 0 };
        expectOk(core.mic_landing_encode(&landing, &b.buffer, b.len, &out), "mic_landing_encode");
        append(&seeds, allocator, .{ .kind = .landing, .bytes = ownBytes(allocator, &out) });
    }

    // sessions: a full one and an empty one
    for ([_]bool{ true, false }) |full| {
        var b: Builder = .{};
        const u64le = struct {
            fn f(comptime values: []const u64) [values.len * 8]u8 {
                var out: [values.len * 8]u8 = undefined;
                for (values, 0..) |v, i| std.mem.writeInt(u64, out[i * 8 ..][0..8], v, .little);
                return out;
            }
        }.f;
        const u32le = struct {
            fn f(comptime values: []const u32) [values.len * 4]u8 {
                var out: [values.len * 4]u8 = undefined;
                for (values, 0..) |v, i| std.mem.writeInt(u32, out[i * 4 ..][0..4], v, .little);
                return out;
            }
        }.f;
        const hashes: [64]u8 = @splat(0x5a);
        var session: codec.SessionFields = std.mem.zeroes(codec.SessionFields);
        session.id = @splat(0x42);
        session.state = if (full) 2 else 0;
        session.base_position = 5;
        session.created_at = 1 << 20;
        session.updated_at = (1 << 20) + 1;
        session.owner = b.add("grace");
        session.goal = b.add(if (full) "rewrite everything" else "");
        if (full) {
            session.op_count = 4;
            session.decision_count = 2;
            session.message_count = 3;
            session.conflict_count = 1;
            session.op_kinds = b.add("\x01\x02\x01\x02");
            session.op_modes = b.add("\x01\x00\x02\x00");
            session.op_sizes = b.add(&u64le(&.{ 1 << 40, 0, 12, 0 }));
            session.op_hashes = b.add(&hashes);
            session.op_paths = b.add(some_paths);
            session.decision_ats = b.add(&u64le(&.{ 7, 8 }));
            session.decision_lens = b.add(&u32le(&.{ 3, 0 }));
            session.decision_text = b.add("yes");
            session.message_roles = b.add("\x00\x01\x02");
            session.message_ats = b.add(&u64le(&.{ 1, 2, 3 }));
            session.message_lens = b.add(&u32le(&.{ 2, 5, 1 }));
            session.message_text = b.add("hi\xc3\xa9t\xc3\xa9!"); // "hi" + "été" (5 bytes) + "!"
            session.conflict_paths = b.add("src/a.zig");
        }
        var out: core.Bytes = .{ .ptr = null, .len = 0 };
        expectOk(core.mic_session_encode(&session, &b.buffer, b.len, &out), "mic_session_encode");
        append(&seeds, allocator, .{ .kind = .session, .bytes = ownBytes(allocator, &out) });
    }
    return seeds.items;
}

const huge_values = [_]u64{
    0,             1,                     0x7f,                  0x80,
    0xff,          0xffff,                0x7fff_ffff,           0xffff_ffff,
    0x1_0000_0000, 0x7fff_ffff_ffff_ffff, 0xffff_ffff_ffff_ffff, 1_000_000,
    1_000_001,     16 * 1024 * 1024 + 1,  1 << 23,               1 << 32,
};

fn mutate(random: std.Random, seeds: []const Seed, input: []const u8, out: []u8) usize {
    var len = @min(input.len, out.len);
    @memcpy(out[0..len], input[0..len]);
    const rounds = 1 + random.uintLessThan(u8, 3);
    var round: u8 = 0;
    while (round < rounds) : (round += 1) {
        switch (random.uintLessThan(u8, 9)) {
            0 => len = random.uintAtMost(usize, len), // truncate
            1 => { // bit flips
                if (len == 0) continue;
                const flips = 1 + random.uintLessThan(u8, 8);
                for (0..flips) |_| out[random.uintLessThan(usize, len)] ^= @as(u8, 1) << random.int(u3);
            },
            2 => { // random bytes
                if (len == 0) continue;
                for (0..1 + random.uintLessThan(u8, 4)) |_| out[random.uintLessThan(usize, len)] = random.int(u8);
            },
            3, 4 => { // a huge or off-by-one count/length in the header region
                if (len < 8) continue;
                const limit = @min(len, 160);
                const value = if (random.boolean())
                    huge_values[random.uintLessThan(usize, huge_values.len)]
                else
                    @as(u64, random.uintLessThan(u32, 4096)) -% 2048 +% std.mem.readInt(u32, out[(random.uintLessThan(usize, limit - 3))..][0..4], .little);
                if (random.boolean() and limit >= 8) {
                    const at = random.uintLessThan(usize, (limit - 8) / 8 + 1) * 8;
                    std.mem.writeInt(u64, out[at..][0..8], value, .little);
                } else {
                    const at = random.uintLessThan(usize, (limit - 4) / 4 + 1) * 4;
                    std.mem.writeInt(u32, out[at..][0..4], @truncate(value), .little);
                }
            },
            5 => { // insert bytes
                const n = 1 + random.uintLessThan(usize, 16);
                if (len + n > out.len) continue;
                const at = random.uintAtMost(usize, len);
                std.mem.copyBackwards(u8, out[at + n .. len + n], out[at..len]);
                random.bytes(out[at..][0..n]);
                len += n;
            },
            6 => { // delete a range
                if (len == 0) continue;
                const at = random.uintLessThan(usize, len);
                const n = 1 + random.uintLessThan(usize, @min(len - at, 64));
                std.mem.copyForwards(u8, out[at .. len - n], out[at + n .. len]);
                len -= n;
            },
            7 => { // splice with another seed
                const other = seeds[random.uintLessThan(usize, seeds.len)].bytes;
                const cut = random.uintAtMost(usize, len);
                const from = random.uintAtMost(usize, other.len);
                const n = @min(other.len - from, out.len - cut);
                @memcpy(out[cut..][0..n], other[from..][0..n]);
                len = cut + n;
            },
            8 => { // random bytes, possibly behind a valid magic
                len = random.uintAtMost(usize, 512);
                random.bytes(out[0..len]);
                if (random.boolean() and len >= 5) {
                    const magics = [_][]const u8{ "MICH\x01", "MICS\x01", "MICL\x01", "MICR\x01", "MICB\x01" };
                    @memcpy(out[0..5], magics[random.uintLessThan(usize, magics.len)]);
                }
            },
            else => unreachable, // uintLessThan(9)
        }
    }
    return len;
}

fn spanInside(span: codec.Span, len: usize) bool {
    return span.offset <= len and span.len <= len - span.offset;
}

fn checkSpans(comptime Fields: type, fields: *const Fields, len: usize, what: []const u8) void {
    const info = @typeInfo(Fields).@"struct";
    inline for (info.field_names, info.field_types) |name, field_type| {
        if (field_type == codec.Span) {
            if (!spanInside(@field(fields, name), len)) fail("{s}: span {s} leaves the input", .{ what, name });
        }
    }
}

fn decodeOne(kind: Kind, data: []const u8, stats: *[5]Stats) void {
    const status: i32 = switch (kind) {
        .head => blk: {
            var head: codec.Head = undefined;
            break :blk core.mic_head_decode(data.ptr, data.len, &head);
        },
        .rollup => blk: {
            var fields: codec.RollupFields = undefined;
            const s = core.mic_rollup_decode(data.ptr, data.len, &fields);
            if (s == ok) checkSpans(codec.RollupFields, &fields, data.len, "rollup");
            break :blk s;
        },
        .landing => blk: {
            var fields: codec.LandingFields = undefined;
            const s = core.mic_landing_decode(data.ptr, data.len, &fields);
            if (s == ok) {
                checkSpans(codec.LandingFields, &fields, data.len, "landing");
                var out: core.Bytes = .{ .ptr = null, .len = 0 };
                expectOk(core.mic_landing_encode(&fields, data.ptr, data.len, &out), "re-encode of an accepted landing");
                _ = core.mic_bytes_free(&out);
            }
            break :blk s;
        },
        .session => blk: {
            var fields: codec.SessionFields = undefined;
            const s = core.mic_session_decode(data.ptr, data.len, &fields);
            if (s == ok) {
                checkSpans(codec.SessionFields, &fields, data.len, "session");
                var out: core.Bytes = .{ .ptr = null, .len = 0 };
                expectOk(core.mic_session_encode(&fields, data.ptr, data.len, &out), "re-encode of an accepted session");
                _ = core.mic_bytes_free(&out);
            }
            break :blk s;
        },
        .bloom => blk: {
            var filter: ?*core.bloom.Bloom = null;
            const s = core.mic_bloom_deserialize(data.ptr, data.len, &filter);
            if (s == ok) {
                var out: core.Bytes = .{ .ptr = null, .len = 0 };
                expectOk(core.mic_bloom_serialize(filter, &out), "re-serialize of an accepted bloom");
                _ = core.mic_bytes_free(&out);
                _ = core.mic_bloom_free(filter);
            } else if (s == out_of_memory) break :blk corrupt;
            break :blk s;
        },
    };
    const index = @backingInt(kind);
    if (status == ok) {
        stats[index].accepted += 1;
    } else if (status == corrupt) {
        stats[index].rejected += 1;
    } else fail("{s} decoder returned {s}", .{ @tagName(kind), std.mem.span(core.mic_status_str(status)) });
}

pub fn main() void {
    var arena_state: std.heap.ArenaAllocator = .init(std.heap.page_allocator);
    defer arena_state.deinit();
    const arena = arena_state.allocator();
    const seeds = buildSeeds(arena);
    var prng = std.Random.DefaultPrng.init(options.seed);
    const random = prng.random();
    const scratch = arena.alloc(u8, scratch_bytes_max) catch fail("out of memory", .{});
    var stats: [5]Stats = @splat(.{});

    // Unmutated seeds must be accepted by their own decoder.
    for (seeds) |seed| {
        const before = stats[@backingInt(seed.kind)].accepted;
        decodeOne(seed.kind, seed.bytes, &stats);
        if (stats[@backingInt(seed.kind)].accepted != before + 1) fail("a valid {s} seed was rejected", .{@tagName(seed.kind)});
    }
    // NULL input with a length is an argument error, never a read.
    if (core.mic_session_decode(null, 10, null) != 1) fail("NULL input was not rejected as an invalid argument", .{});

    for (std.enums.values(Kind)) |kind| {
        var own: std.ArrayList(Seed) = .empty;
        for (seeds) |seed| if (seed.kind == kind) own.append(arena, seed) catch fail("out of memory", .{});
        var i: u64 = 0;
        while (i < options.iterations) : (i += 1) {
            // Mostly this decoder's own formats; sometimes another's, to cross magic checks.
            const pool = if (random.uintLessThan(u8, 10) == 0) seeds else own.items;
            const seed = pool[random.uintLessThan(usize, pool.len)];
            const len = mutate(random, seeds, seed.bytes, scratch);
            decodeOne(kind, scratch[0..len], &stats);
        }
        const s = stats[@backingInt(kind)];
        std.debug.print("fuzz {s:<8} inputs={d} accepted={d} rejected={d}\n", .{ @tagName(kind), options.iterations, s.accepted, s.rejected });
        if (s.rejected == 0) fail("{s}: no input was rejected; the mutations are not reaching the decoder", .{@tagName(kind)});
    }
    std.debug.print("fuzz ok: {d} inputs per decoder, seed 0x{x}\n", .{ options.iterations, options.seed });
}
