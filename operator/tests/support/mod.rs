//! Shared by the operator's tests: the demo CallCenter as the API server would hand it over, and
//! the demo manifests as the loader reads them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use dialtone_model::loader::{SourceFile, read_files};
use dialtone_model::resources::CallCenter;
use dialtone_model::{Environment, Manifests, PromptCatalog};
use dialtone_operator::BuildContext;
use jiff::Timestamp;

/// The uid the demo CallCenter gets, as if the API server had assigned it.
pub const DEMO_UID: &str = "6f1c2a7e-3b4d-4e5f-8a9b-0c1d2e3f4a5b";
/// The internal token the golden files are rendered with (the operator generates a random one).
pub const GOLDEN_INTERNAL_TOKEN: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";
/// The image the golden files are rendered with.
pub const IMAGE: &str = "ghcr.io/dialtone-dev/dialtone:0.1.0";

/// `examples/demo` in the repository.
pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo")
}

/// A demo file as the loader reads it.
pub fn demo_file(name: &str) -> SourceFile {
    let path = demo_dir().join(name);
    SourceFile {
        path: format!("examples/demo/{name}"),
        text: std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    }
}

/// Every `.yaml` file of `examples/demo`, sorted.
pub fn demo_files() -> Vec<SourceFile> {
    let mut names: Vec<String> = std::fs::read_dir(demo_dir())
        .expect("examples/demo is readable")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    names.iter().map(|n| demo_file(n)).collect()
}

/// The prompts of `examples/demo/prompts`.
pub fn demo_env() -> Environment {
    let names = std::fs::read_dir(demo_dir().join("prompts"))
        .expect("examples/demo/prompts is readable")
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_suffix(".wav")
                .map(str::to_owned)
        })
        .collect();
    Environment {
        prompts: PromptCatalog::Known {
            names,
            hint: "examples/demo/prompts".to_owned(),
        },
    }
}

/// `examples/demo/00-callcenter.yaml` read with the model's YAML reader, deserialized, and
/// given a uid as the API server would.
pub fn demo_call_center() -> CallCenter {
    let file = demo_file("00-callcenter.yaml");
    let parsed = dialtone_model::yaml::parse(&file.text);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let doc = parsed.documents.into_iter().next().expect("one document");
    let mut cc: CallCenter = serde_json::from_value(doc.value).expect("a CallCenter");
    cc.metadata.uid = Some(DEMO_UID.to_owned());
    cc
}

/// Reads manifests and asserts that they read cleanly.
pub fn manifests(files: &[SourceFile]) -> Manifests {
    let (manifests, problems) = read_files(files);
    assert!(problems.is_empty(), "{problems:?}");
    manifests
}

/// An RFC 3339 instant.
pub fn at(text: &str) -> Timestamp {
    text.parse().expect("an RFC 3339 instant")
}

/// The context the golden files are rendered with: a week before the demo's campaign.
pub fn golden_context() -> BuildContext {
    let mut ctx = BuildContext::new(IMAGE, at("2026-11-20T12:00:00Z"));
    ctx.operator_namespace = "dialtone-system".to_owned();
    ctx
}
