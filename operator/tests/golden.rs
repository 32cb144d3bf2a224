//! Golden files: the objects the operator builds for `examples/demo`, one YAML file each under
//! `tests/golden/`, plus `apply-order.txt`. They are read by humans reviewing what the operator
//! runs in a cluster; any change to them is a change to the platform's deployment.
//!
//! `UPDATE_GOLDEN=1 cargo test -p dialtone-operator --test golden` rewrites them (and removes
//! files no object produces any more); review the diff before committing.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dialtone_operator::DesiredObject;
use dialtone_operator::desired::access::internal_token_secret;
use dialtone_operator::desired::{SnapshotBundle, desired_objects, desired_snapshot_objects};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// What the golden folder should hold: file name → contents.
fn rendered() -> BTreeMap<String, String> {
    let cc = support::demo_call_center();
    let ctx = support::golden_context();
    let mut objects: Vec<DesiredObject> = Vec::new();
    // The snapshot is built from the CallCenter and the Secrets it references (the full demo
    // bundle is checked by round trip in tests/desired.rs, not frozen here).
    let manifests = support::manifests(&[
        support::demo_file("00-callcenter.yaml"),
        support::demo_file("secrets.yaml"),
    ]);
    let bundle = SnapshotBundle::render(&manifests).expect("the bundle renders");
    objects.extend(desired_snapshot_objects(&cc, &bundle, &ctx).expect("snapshot objects"));
    // The generated internal token (the demo names no Secret of its own), with a fixed value:
    // the operator generates a random one when the Secret does not exist yet.
    let secret = internal_token_secret(&cc, support::GOLDEN_INTERNAL_TOKEN)
        .expect("the internal token Secret builds")
        .expect("the demo has no internalTokenSecretRef");
    objects.push(DesiredObject::GeneratedSecret(secret));
    objects.extend(desired_objects(&cc, &ctx).expect("desired objects"));

    let mut files = BTreeMap::new();
    let mut order = String::from(
        "# Apply order of the objects built for examples/demo/00-callcenter.yaml\n\
         # (snapshot first, the generated internal token, then desired_objects), at\n\
         # 2026-11-20T12:00:00Z.\n",
    );
    for object in &objects {
        order.push_str(&format!("{}/{}\n", object.kind(), object.name()));
        let file = format!("{}-{}.yaml", object.kind().to_lowercase(), object.name());
        let yaml = object.to_yaml().expect("the object renders");
        assert!(
            files.insert(file.clone(), yaml).is_none(),
            "two objects would share {file}"
        );
    }
    files.insert("apply-order.txt".to_owned(), order);
    files
}

fn first_difference(expected: &str, actual: &str) -> String {
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            return format!("line {}:\n  golden:   {e}\n  rendered: {a}", i + 1);
        }
    }
    format!(
        "lengths differ: golden {} lines, rendered {} lines",
        expected.lines().count(),
        actual.lines().count()
    )
}

#[test]
fn demo_objects_match_the_golden_files() {
    let dir = golden_dir();
    let files = rendered();
    let on_disk: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();

    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).expect("create tests/golden");
        for stale in on_disk.iter().filter(|f| !files.contains_key(*f)) {
            std::fs::remove_file(dir.join(stale)).expect("remove a stale golden file");
        }
        for (name, text) in &files {
            std::fs::write(dir.join(name), text).expect("write a golden file");
        }
        return;
    }

    let mut problems = Vec::new();
    for stale in on_disk.iter().filter(|f| !files.contains_key(*f)) {
        problems.push(format!("{stale}: no object produces it any more"));
    }
    for (name, text) in &files {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(golden) if golden == *text => {}
            Ok(golden) => problems.push(format!("{name}: {}", first_difference(&golden, text))),
            Err(_) => problems.push(format!("{name}: missing")),
        }
    }
    assert!(
        problems.is_empty(),
        "the built objects differ from tests/golden (UPDATE_GOLDEN=1 rewrites them; review the \
         diff):\n{}",
        problems.join("\n")
    );
}
