//! Compiles the ceiling's proto with protox (no protoc needed); its messages are Dialtone's
//! own, generated in `dialtone-proto`.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto/echo.proto");
    let fds = protox::compile(["proto/echo.proto"], ["proto", "../proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .extern_path(".dialtone.v1", "::dialtone_proto::v1")
        .compile_fds(fds)?;
    Ok(())
}
