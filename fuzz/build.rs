//! Embeds the RFC 4475 / RFC 5118 torture messages of `media-node/tests/` as templates for
//! the transaction-layer target: an op names a template by index (and may flip one byte),
//! so short fuzz inputs drive whole hostile messages through the layer.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../media-node/tests");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["rfc4475", "rfc5118"] {
        let dir = root.join(dir);
        println!("cargo::rerun-if-changed={}", dir.display());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            panic!("missing seed messages in {}", dir.display());
        };
        files.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "dat")),
        );
    }
    // Sorted, so an input names the same template on every machine.
    files.sort();
    let mut code = String::from(
        "/// RFC 4475 / 5118 messages, sorted by path.\npub const TEMPLATES: &[(&str, &[u8])] = &[\n",
    );
    for f in &files {
        let name = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = f.canonicalize().unwrap_or_else(|_| f.clone());
        let _ = writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("templates.rs");
    if let Err(e) = std::fs::write(&out, code) {
        panic!("cannot write {}: {e}", out.display());
    }
}
