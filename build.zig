//! Build of libmic-core: `python -m ziglang build` (ReleaseSafe by default).
//!
//! Steps:
//!   install (default)  zig-out/lib/libmic_core.so + zig-out/include/mic_core.h
//!   test               unit tests of every zig/*.zig file (std.testing.allocator catches leaks)
//!   fuzz               builds and runs zig/fuzz.zig, which drives every decoder through
//!                      the exported C functions; `-Dfuzz-iterations=N -Dfuzz-seed=S`
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    // ReleaseSafe unless asked otherwise: a failed internal assertion must trap, never be
    // undefined behaviour inside the server process (STYLE.md).
    const optimize = b.option(
        std.builtin.Optimize,
        "optimize",
        "Optimization mode (default ReleaseSafe)",
    ) orelse .safe;

    const core_module = b.createModule(.{
        .root_source_file = b.path("zig/c_api.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true, // c_allocator: thread-safe, stateless from our side
    });

    const lib = b.addLibrary(.{
        .name = "mic_core",
        .linkage = .dynamic,
        .root_module = core_module,
    });
    b.installArtifact(lib);
    b.getInstallStep().dependOn(&b.addInstallHeaderFile(b.path("zig/include/mic_core.h"), "mic_core.h").step);

    const unit_tests = b.addTest(.{ .root_module = core_module });
    const run_unit_tests = b.addRunArtifact(unit_tests);
    const test_step = b.step("test", "Run the libmic-core unit tests");
    test_step.dependOn(&run_unit_tests.step);

    const fuzz_iterations = b.option(u64, "fuzz-iterations", "Inputs per decoder for `zig build fuzz`") orelse 100_000;
    const fuzz_seed = b.option(u64, "fuzz-seed", "PRNG seed for `zig build fuzz`") orelse 0x6d69_6366_6f72_6765;
    const fuzz_options = b.addOptions();
    fuzz_options.addOption(u64, "iterations", fuzz_iterations);
    fuzz_options.addOption(u64, "seed", fuzz_seed);
    const fuzz_exe = b.addExecutable(.{
        .name = "mic_core_fuzz",
        .root_module = b.createModule(.{
            .root_source_file = b.path("zig/fuzz.zig"),
            .target = target,
            // The fuzzer always runs with safety checks on: any out-of-bounds access,
            // overflow or failed assertion in a decoder traps and fails the step.
            .optimize = if (optimize == .fast or optimize == .small) .safe else optimize,
            .link_libc = true,
            .imports = &.{.{ .name = "mic_core", .module = core_module }},
        }),
    });
    fuzz_exe.root_module.addOptions("fuzz_options", fuzz_options);
    const run_fuzz = b.addRunArtifact(fuzz_exe);
    const fuzz_step = b.step("fuzz", "Fuzz every decoder through the C ABI");
    fuzz_step.dependOn(&run_fuzz.step);
}
