//! `dialtone validate` against the fixtures in `tests/fixtures/`.
//!
//! Every folder under `tests/fixtures/broken/` is a small configuration with one deliberate
//! problem (a few show several related ones) and an `expected.txt` holding the exact lines
//! `validate` must print on stdout (`path:line: Kind/name: message`). The binary runs from the
//! crate root with the fixture's relative path, so the paths in the messages are the ones written
//! in `expected.txt`. All fixtures are checked before the test fails, so one run shows every
//! mismatch.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

/// Fewer broken fixtures than this means some were lost.
const MIN_BROKEN_FIXTURES: usize = 20;

fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `dialtone validate <rel>` from the crate root.
fn validate(rel: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .arg("validate")
        .arg(rel)
        .current_dir(crate_root())
        .env_remove("DIALTONE_CONFIG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run dialtone validate {rel}: {e}"))
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r').to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    lines(&text)
}

fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A readable difference between expected and actual lines: what is missing, what is extra, and
/// whether only the order differs.
fn diff(expected: &[String], actual: &[String]) -> String {
    let mut text = String::new();
    let missing: Vec<&String> = expected.iter().filter(|l| !actual.contains(l)).collect();
    let extra: Vec<&String> = actual.iter().filter(|l| !expected.contains(l)).collect();
    for l in &missing {
        let _ = writeln!(text, "  - expected, not printed: {l}");
    }
    for l in &extra {
        let _ = writeln!(text, "  + printed, not expected: {l}");
    }
    if missing.is_empty() && extra.is_empty() {
        let _ = writeln!(
            text,
            "  same lines, different order or count; expected:\n{}\n  printed:\n{}",
            indent(expected),
            indent(actual)
        );
    }
    text
}

fn indent(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names of the folders under `tests/fixtures/broken/`, sorted.
fn broken_fixtures() -> Vec<String> {
    let dir = crate_root().join("tests/fixtures/broken");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())))
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Checks one broken fixture; `Err` describes every way it failed.
fn check_broken(name: &str) -> Result<(), String> {
    let rel = format!("tests/fixtures/broken/{name}");
    let expected = read_lines(&crate_root().join(&rel).join("expected.txt"));
    let mut problems = String::new();
    if expected.is_empty() {
        let _ = writeln!(problems, "  expected.txt is empty");
    }
    let prefix = format!("{rel}/");
    for l in expected.iter().filter(|l| !l.starts_with(&prefix)) {
        let _ = writeln!(
            problems,
            "  expected.txt line does not start with {prefix}: {l}"
        );
    }
    let out = validate(&rel);
    let actual = lines(&stdout_of(&out));
    if out.status.code() != Some(1) {
        let _ = writeln!(
            problems,
            "  exit status {} (expected 1)",
            out.status
                .code()
                .map_or_else(|| "none (killed by a signal)".to_owned(), |c| c.to_string())
        );
        let stderr = stderr_of(&out);
        if !stderr.trim().is_empty() {
            let head: Vec<&str> = stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(4)
                .collect();
            let _ = writeln!(problems, "  stderr:\n{}", indent_str(&head));
        }
    }
    if actual != expected {
        problems.push_str(&diff(&expected, &actual));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{rel}:\n{problems}"))
    }
}

fn indent_str(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn broken_fixtures_print_exactly_their_expected_problems() {
    let names = broken_fixtures();
    assert!(
        names.len() >= MIN_BROKEN_FIXTURES,
        "only {} broken fixtures under tests/fixtures/broken (at least {MIN_BROKEN_FIXTURES} expected)",
        names.len()
    );
    let failures: Vec<String> = names
        .iter()
        .filter_map(|name| check_broken(name).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} broken fixtures did not give their expected output:\n\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

/// Runs a folder that must validate: exit 0 and one `<rel>: valid: …` line on stdout.
/// Returns stderr.
fn assert_valid(rel: &str) -> String {
    let out = validate(rel);
    let stdout = stdout_of(&out);
    let stderr = stderr_of(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "dialtone validate {rel} should succeed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let printed = lines(&stdout);
    assert_eq!(
        printed.len(),
        1,
        "dialtone validate {rel} should print one summary line, printed:\n{stdout}"
    );
    let summary_prefix = format!("{rel}: valid: ");
    assert!(
        printed[0].starts_with(&summary_prefix),
        "the summary should start with {summary_prefix:?}, got {:?}",
        printed[0]
    );
    stderr
}

#[test]
fn minimal_configuration_validates_without_warnings() {
    let stderr = assert_valid("tests/fixtures/valid-minimal");
    assert!(
        stderr.trim().is_empty(),
        "the minimal configuration should give no warning, stderr:\n{stderr}"
    );
}

#[test]
fn hangup_step_and_missing_routes_are_warnings_only() {
    let rel = "tests/fixtures/valid-warnings";
    let stderr = assert_valid(rel);
    let expected = read_lines(&crate_root().join(rel).join("expected-warnings.txt"));
    let actual = lines(&stderr);
    assert!(
        actual == expected,
        "{rel}: warnings on stderr differ:\n{}",
        diff(&expected, &actual)
    );
}

#[test]
fn demo_example_validates() {
    assert_valid("examples/demo");
}

#[test]
fn missing_folder_exits_2_with_a_message_on_stderr() {
    let rel = "tests/fixtures/no-such-folder";
    assert!(
        !crate_root().join(rel).exists(),
        "{rel} must not exist for this test"
    );
    let out = validate(rel);
    let stderr = stderr_of(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a folder that cannot be read should exit 2, stderr:\n{stderr}"
    );
    assert!(
        stdout_of(&out).trim().is_empty(),
        "nothing should be printed on stdout, got:\n{}",
        stdout_of(&out)
    );
    assert!(
        stderr.contains(rel),
        "stderr should name the folder {rel}, got:\n{stderr}"
    );
}
