//! Compiles `dialtone/v1/*.proto` with protox (pure Rust, no `protoc` needed)
//! and generates the prost messages and tonic clients and servers.
//!
//! Writes to `OUT_DIR`:
//! - `dialtone.v1.rs`: the generated code (included by `src/lib.rs`);
//! - `dialtone_descriptor.bin`: the encoded `FileDescriptorSet` of every
//!   file, imports (the google.protobuf well-known types) included, for
//!   tonic-reflection.

use std::error::Error;
use std::path::{Path, PathBuf};

use protox::prost::Message as _;

/// Where the `.proto` files live, relative to the crate root (which is also
/// the include root, so imports read `dialtone/v1/common.proto`).
const PROTO_DIR: &str = "dialtone/v1";

fn main() -> Result<(), Box<dyn Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    println!("cargo:rerun-if-changed={PROTO_DIR}");
    println!("cargo:rerun-if-changed=build.rs");

    let files = proto_files(&root.join(PROTO_DIR))?;
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let relative: Vec<PathBuf> = files
        .iter()
        .map(|file| file.strip_prefix(&root).map(Path::to_path_buf))
        .collect::<Result<_, _>>()?;

    // Source info is kept so that the proto comments become rustdoc and so
    // that reflection clients see them. Imports are kept so the descriptor
    // set is self-contained (well-known types included).
    let fds = protox::Compiler::new([&root])?
        .include_source_info(true)
        .include_imports(true)
        .open_files(&relative)?
        .file_descriptor_set();

    std::fs::write(out_dir.join("dialtone_descriptor.bin"), fds.encode_to_vec())?;

    // google.protobuf types map to prost_types (prost-build's default
    // extern path), so only dialtone.v1 code is generated.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .compile_fds(fds)?;

    Ok(())
}

/// Every `.proto` file directly in `dir`, sorted for reproducible output.
fn proto_files(dir: &Path) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(format!("no .proto files in {}", dir.display()).into());
    }
    Ok(files)
}
