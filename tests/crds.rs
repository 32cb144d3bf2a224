//! `crds/` is generated from the types: this fails when someone changes a type and forgets to
//! run `dialtone crds --write crds`, or edits a file by hand.

use std::path::Path;
use std::process::Command;

#[test]
fn crds_folder_matches_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let drift = dialtone::crds::drift(&dir).expect("CRDs render");
    assert!(
        drift.is_empty(),
        "crds/ is out of date; run `cargo run -- crds --write crds`:\n{}",
        drift.join("\n")
    );
}

#[test]
fn dialtone_crds_prints_what_crds_holds() {
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .arg("crds")
        .output()
        .expect("dialtone runs");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let files = dialtone::crds::render().expect("CRDs render");
    assert_eq!(files.len(), 8, "one CRD per kind");
    let mut expected = String::new();
    for f in files {
        let on_disk = std::fs::read_to_string(dir.join(&f.file_name)).expect("file exists");
        expected.push_str("---\n");
        expected.push_str(&on_disk);
    }
    assert_eq!(stdout, expected);
    // Logs never mix into the output.
    assert!(
        stdout
            .lines()
            .all(|l| !l.contains("INFO") && !l.contains("WARN"))
    );
}

#[test]
fn crds_check_fails_on_a_hand_edit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    dialtone::crds::write(tmp.path()).expect("write");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_dialtone"))
            .args(["crds", "--check"])
            .arg(tmp.path())
            .output()
            .expect("dialtone runs")
    };
    assert!(run().status.success());
    let file = tmp.path().join("dialtone.dev_agents.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replace("maxConcurrentCalls", "maxCalls")).expect("write");
    let out = run();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("dialtone.dev_agents.yaml is out of date")
    );
}
