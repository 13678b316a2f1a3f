//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and feeds the
//! descriptors to tonic. The encoded descriptor set is also written to
//! `OUT_DIR` for gRPC server reflection, beside one of Envoy's ext_authz
//! service (`proto/vendor/`, no code generated from it).

use std::path::PathBuf;

const PROTO_FILES: &[&str] = &[
    "portcullis/v1/common.proto",
    "portcullis/v1/authentication.proto",
    "portcullis/v1/authorization.proto",
    "portcullis/v1/service_credentials.proto",
    "portcullis/v1/administration.proto",
    "portcullis/v1/watch.proto",
];

/// The vendored Envoy service whose descriptors reflection serves.
const ENVOY_FILES: &[&str] = &["envoy/service/auth/v3/external_auth.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=migrations");

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut compiler = protox::Compiler::new(["proto"])?;
    // Reflection clients (grpcurl) need google/protobuf/timestamp.proto too.
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTO_FILES)?;
    std::fs::write(
        out_dir.join("portcullis_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    // Envoy's ext_authz service, for reflection only: its message types
    // come from the envoy-types crate.
    let mut envoy = protox::Compiler::new(["proto/vendor"])?;
    envoy.include_imports(true).include_source_info(false);
    envoy.open_files(ENVOY_FILES)?;
    std::fs::write(
        out_dir.join("envoy_descriptor.bin"),
        envoy.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
