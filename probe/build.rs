//! Link options of the probe's binaries.

fn main() {
    let cfg = |key: &str| std::env::var(format!("CARGO_CFG_TARGET_{key}")).unwrap_or_default();
    // Packed relative relocations (DT_RELR): the position-independent binary carries about
    // 18,000 relative relocations (vtables, panic locations, string tables). As a RELA table
    // that is 0.4 MiB the loader reads at every start and that then stays resident, a fifth of
    // the idle probe's memory target; packed it is a few KiB. Needs glibc 2.36 at run time
    // (Debian 12, the oldest system the probe supports; an older loader refuses the binary by
    // name). Only x86_64 for now: its linker (rust-lld) is known to support it; the Pi cross
    // builds link with Debian's GNU ld, not yet checked.
    // SIXMAP_PROBE_OLD_GLIBC=1 leaves them out, for a probe built for an older system (RHEL 9,
    // Ubuntu 22.04: glibc 2.34/2.35), at about 0.4 MiB more resident memory.
    let old_glibc = std::env::var("SIXMAP_PROBE_OLD_GLIBC").is_ok_and(|v| v == "1");
    if !old_glibc && cfg("ARCH") == "x86_64" && cfg("OS") == "linux" && cfg("ENV") == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SIXMAP_PROBE_OLD_GLIBC");
}
