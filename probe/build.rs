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
    // The functions the probe runs, first and together in its text (deploy/probe-link-order.sh
    // makes the list): the kernel maps text 64 KiB around each page touched, so scattered
    // start-up code kept nearly all 4.6 MiB of it resident in the idle daemon. The option
    // is lld's; rustc links x86_64 Linux with lld from 1.90 on (GNU ld, which the Pi cross
    // builds use, has no equivalent). The list names one compiler's and profile's symbols:
    // debug builds would only pay the lookups. SIXMAP_PROBE_NO_LINK_ORDER=1 leaves it out
    // (a build told to link with another linker).
    let profile = std::env::var("PROFILE").unwrap_or_default();
    let skip_order = std::env::var("SIXMAP_PROBE_NO_LINK_ORDER").is_ok_and(|v| v == "1");
    // (`links_with_lld` checks the target: x86_64-unknown-linux-gnu only.)
    if !skip_order && profile == "release" && links_with_lld() {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        let order = std::path::Path::new(&dir).join("link-order.txt");
        if order.exists() {
            println!(
                "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
                order.display()
            );
            // Names the list has and this build does not (another compiler, changed code)
            // are skipped quietly; `probe_footprint` reports how much of the list matches.
            println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SIXMAP_PROBE_OLD_GLIBC");
    println!("cargo:rerun-if-env-changed=SIXMAP_PROBE_NO_LINK_ORDER");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    println!("cargo:rerun-if-changed=link-order.txt");
}

/// True when rustc links this build with its own lld: x86_64-unknown-linux-gnu from Rust 1.90
/// on, with the `rust-lld` it ships (rustup's toolchains; a distribution's rustc may leave it
/// out), and no linker chosen by the builder (`RUSTC_LINKER`, `-C linker=`, `-fuse-ld=`,
/// `-C linker-features`): GNU ld and mold would refuse the option and fail the build.
fn links_with_lld() -> bool {
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
        || std::env::var_os("RUSTC_LINKER").is_some()
    {
        return false;
    }
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if ["linker", "fuse-ld", "link-self-contained"]
        .iter()
        .any(|chosen| flags.contains(chosen))
    {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let run = |args: &[&str]| {
        std::process::Command::new(&rustc)
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)", "rustc 1.96.0-nightly (...)"
    let Some(version) = run(&["--version"]) else {
        return false;
    };
    let mut numbers = version
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .split(['.', '-'])
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if (major, minor) < (1, 90) {
        return false;
    }
    let Some(sysroot) = run(&["--print", "sysroot"]) else {
        return false;
    };
    std::path::Path::new(&sysroot)
        .join("lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld/ld.lld")
        .exists()
}
