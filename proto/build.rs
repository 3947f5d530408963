//! Compiles `fengqiao/v1/*.proto` with protox (pure Rust): no system `protoc` is needed.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["fengqiao/v1/case.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("fengqiao_descriptor.bin"))
        .compile_fds(fds)?;
    Ok(())
}
