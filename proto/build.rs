//! Generates the tonic/prost code for package `sixmap.v1`.
//!
//! protoc comes from the `protoc-bin-vendored` crate, so a build needs nothing but cargo and
//! crates.io: no system package, no download at build time. `PROTOC` still wins if set, for
//! platforms the vendored crate does not cover.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY-free: build scripts are single-threaded, and tonic-prost-build reads PROTOC.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("PROTOC", protoc);
        }
    }
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(
            &[
                "proto/sixmap/v1/control.proto",
                "proto/sixmap/v1/measurement.proto",
                "proto/sixmap/v1/campaign.proto",
                "proto/sixmap/v1/query.proto",
            ],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
