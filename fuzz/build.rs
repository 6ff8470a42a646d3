//! The peer protocol's messages (no client, no server) from `../proto/peer.proto`, with the
//! same generator and vendored protoc as the product, so the target decodes exactly what
//! tonic decodes off the wire.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded at this point.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=../proto/peer.proto");
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_protos(&["../proto/peer.proto"], &["../proto"])?;
    Ok(())
}
