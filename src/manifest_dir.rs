//! Reading a folder of manifests and prompts (standalone mode and `dialtone validate`).
//!
//! The loader itself does no I/O; this is the edge that lists the folder, reads the YAML files
//! and the names of `prompts/*.wav`, and hands them over.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dialtone_model::loader::{PromptCatalog, SourceFile};
use dialtone_model::{Problem, Severity};

/// A folder's manifest files and prompt catalogue.
#[derive(Debug)]
pub struct ManifestDir {
    /// The `.yaml` / `.yml` files, sorted by name.
    pub files: Vec<SourceFile>,
    /// `prompts/<name>.wav` beside the manifests.
    pub prompts: PromptCatalog,
    /// Files that could not be read as text.
    pub problems: Vec<Problem>,
}

/// The folder could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ManifestDirError {
    /// Missing or unreadable folder.
    #[error("cannot read the manifest folder {path}: {source}")]
    Unreadable {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The folder holds no manifests.
    #[error("{0} holds no .yaml or .yml files: point at the folder with your manifests")]
    Empty(PathBuf),
}

/// Reads every `.yaml`/`.yml` file directly in `dir` and lists `dir/prompts/*.wav`.
pub fn read(dir: &Path) -> Result<ManifestDir, ManifestDirError> {
    let unreadable = |source| ManifestDirError::Unreadable {
        path: dir.to_owned(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| e == "yaml" || e == "yml")
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(ManifestDirError::Empty(dir.to_owned()));
    }
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        let shown = path.display().to_string();
        match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => files.push(SourceFile { path: shown, text }),
                Err(_) => problems.push(file_problem(shown, "the file is not UTF-8 text")),
            },
            Err(e) => problems.push(file_problem(shown, &format!("cannot read the file: {e}"))),
        }
    }
    let prompt_dir = dir.join("prompts");
    let names: BTreeSet<String> = std::fs::read_dir(&prompt_dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let p = e.path();
                    (p.extension().and_then(|x| x.to_str()) == Some("wav"))
                        .then(|| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
                        .flatten()
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ManifestDir {
        files,
        prompts: PromptCatalog::Known {
            names,
            hint: format!("no {}/<name>.wav", prompt_dir.display()),
        },
        problems,
    })
}

fn file_problem(path: String, message: &str) -> Problem {
    Problem {
        file: Some(path),
        line: 1,
        object: None,
        message: message.to_owned(),
        severity: Severity::Error,
    }
}
