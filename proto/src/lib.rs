//! Protobuf and gRPC definitions for fengqiao (package `fengqiao.v1`).
//!
//! The `.proto` sources live in `proto/fengqiao/v1/` and are the public contract that clients
//! written by other teams depend on. They are compiled by `build.rs` with protox, so building
//! needs no system `protoc`.
//!
//! Generated enum getters silently map unknown values to the default; callers decode enums with
//! `TryFrom<i32>` instead (see `fengqiao-node`'s conversion layer).

#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("fengqiao.v1");
}

/// Encoded `FileDescriptorSet` of every fengqiao proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("fengqiao_descriptor");
