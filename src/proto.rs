//! Code generated from `proto/` by `build.rs`.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod v1 {
    tonic::include_proto!("portcullis.v1");
}

/// Encoded `FileDescriptorSet` of every served proto file (imports included),
/// for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/portcullis_descriptor.bin"));

/// Encoded `FileDescriptorSet` of Envoy's `envoy.service.auth.v3`
/// (`proto/vendor/`), served on the same port: reflection lists it too.
pub const ENVOY_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptor.bin"));
