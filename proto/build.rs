//! Compiles `fengqiao/v1/*.proto` with protox (pure Rust): no system `protoc` is needed.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "fengqiao/v1/case.proto",
        "fengqiao/v1/stats.proto",
        "fengqiao/v1/federation.proto",
        "fengqiao/v1/users.proto",
        "fengqiao/v1/backup.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // `compile_fds` does not write the descriptor set (only a protoc run does), so the file that
    // `FILE_DESCRIPTOR_SET` includes is written here.
    std::fs::write(
        out.join("fengqiao_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
