//! Compiles the `.proto` files with protox (pure Rust), so no system `protoc`
//! is needed on a fresh machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = [
        "proto/common.proto",
        "proto/peering.proto",
        "proto/gateway.proto",
        "proto/admin.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    // For gRPC server reflection: the same descriptors, encoded.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("fedmesh_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
