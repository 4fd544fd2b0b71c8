//! Placeholder replaced by the decoder fuzzer below once codecs exist.
const std = @import("std");
pub fn main() void {}
