//! Hybrid logical clock: 64-bit timestamps = 48-bit wall milliseconds << 16 |
//! 16-bit logical counter. Monotonic even when the wall clock steps back.
//!
//! Because the logical counter sits in the low bits, "advance" is just
//! max(last + 1, wall_ms << 16): a logical overflow (65535 + 1) carries into
//! the millisecond field instead of wrapping. The state is one atomic u64, so
//! a shared clock needs no lock and no global.
const std = @import("std");

pub const logical_bits = 16;
pub const ms_max: u64 = (1 << 48) - 1;

pub const Error = error{ InvalidArgument, LimitExceeded };

pub fn pack(ms: u64, logical: u16) u64 {
    std.debug.assert(ms <= ms_max);
    return (ms << logical_bits) | logical;
}

pub const Hlc = struct {
    last: std.atomic.Value(u64) = .init(0),

    pub fn now(self: *Hlc, wall_ms: u64) Error!u64 {
        return self.advance(0, wall_ms);
    }

    /// Merge a timestamp received from elsewhere: the result is later than both.
    pub fn update(self: *Hlc, remote: u64, wall_ms: u64) Error!u64 {
        return self.advance(remote, wall_ms);
    }

    fn advance(self: *Hlc, remote: u64, wall_ms: u64) Error!u64 {
        if (wall_ms > ms_max) return error.InvalidArgument;
        const physical = wall_ms << logical_bits;
        var last = self.last.load(.monotonic);
        while (true) {
            const floor = @max(last, remote);
            const next_logical = std.math.add(u64, floor, 1) catch return error.LimitExceeded;
            const next = @max(next_logical, physical);
            if (self.last.cmpxchgWeak(last, next, .monotonic, .monotonic)) |actual| {
                last = actual;
            } else return next;
        }
    }
};

test "monotonic under clock steps and logical overflow" {
    var clock: Hlc = .{};
    const a = try clock.now(1000);
    try std.testing.expectEqual(pack(1000, 0), a);
    const b = try clock.now(1000);
    try std.testing.expectEqual(pack(1000, 1), b);
    const c = try clock.now(10); // wall clock stepped back
    try std.testing.expectEqual(pack(1000, 2), c);
    const d = try clock.update(pack(5000, 7), 10);
    try std.testing.expectEqual(pack(5000, 8), d);
    const e = try clock.now(6000);
    try std.testing.expectEqual(pack(6000, 0), e);

    var overflow: Hlc = .{};
    try std.testing.expectEqual(pack(7, 65535), try overflow.update(pack(7, 65534), 0));
    try std.testing.expectEqual(pack(8, 0), try overflow.now(0));
    try std.testing.expectError(error.InvalidArgument, overflow.now(ms_max + 1));
    try std.testing.expectError(error.LimitExceeded, overflow.update(std.math.maxInt(u64), 0));
}
