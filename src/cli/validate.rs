//! `dialtone validate DIR`.

use std::path::Path;
use std::process::ExitCode;

use dialtone_model::loader::{Environment, load};

use crate::manifest_dir;

/// Exit code when the folder itself cannot be read (as opposed to manifests with problems).
const USAGE_ERROR: u8 = 2;

/// Prints each error on stdout as `path:line: Kind/name: message` and each warning on stderr;
/// on success, one summary line on stdout.
pub fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    let folder = match manifest_dir::read(dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("dialtone validate: {e}");
            return Ok(ExitCode::from(USAGE_ERROR));
        }
    };
    let env = Environment {
        prompts: folder.prompts.clone(),
    };
    let report = load(&folder.files, &env);
    let errors: Vec<String> = folder
        .problems
        .iter()
        .chain(report.errors())
        .map(ToString::to_string)
        .collect();
    for w in report.warnings() {
        eprintln!("warning: {w}");
    }
    if !errors.is_empty() {
        for e in &errors {
            println!("{e}");
        }
        eprintln!(
            "{}: {} error(s); nothing was loaded",
            dir.display(),
            errors.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    let mut parts: Vec<String> = report
        .counts
        .iter()
        .map(|(kind, n)| format!("{n} {kind}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    if let dialtone_model::PromptCatalog::Known { names, .. } = &folder.prompts {
        let n = names.len();
        parts.push(format!("{n} prompt{}", if n == 1 { "" } else { "s" }));
    }
    println!("{}: valid: {}", dir.display(), parts.join(", "));
    Ok(ExitCode::SUCCESS)
}
