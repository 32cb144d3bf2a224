//! The Helm chart `charts/dialtone`: its CRDs are the generated ones, byte for byte; its values
//! schema accepts the defaults and rejects bad values; its templates use only values that exist
//! and grant the operator the eight kinds without wildcards. (No `helm` binary is available
//! here, so the templates themselves are checked by these text-level rules only.)

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart() -> PathBuf {
    repo().join("charts/dialtone")
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn chart_crds_equal_the_generated_crds() {
    let generated = repo().join("crds");
    let copied = chart().join("crds");
    let names = file_names(&generated);
    assert_eq!(names.len(), 8, "one CRD per kind in crds/");
    assert_eq!(
        file_names(&copied),
        names,
        "charts/dialtone/crds lists other files than crds/: cp crds/*.yaml charts/dialtone/crds/"
    );
    for name in &names {
        let a = std::fs::read(generated.join(name)).expect("read crds/");
        let b = std::fs::read(copied.join(name)).expect("read charts/dialtone/crds/");
        assert!(
            a == b,
            "charts/dialtone/crds/{name} differs from crds/{name}: cp crds/*.yaml charts/dialtone/crds/"
        );
    }
}

fn default_values() -> Value {
    let text = std::fs::read_to_string(chart().join("values.yaml")).expect("values.yaml");
    let parsed = dialtone_model::yaml::parse(&text);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let mut docs = parsed.documents.into_iter();
    let doc = docs.next().expect("values.yaml has a document");
    assert!(docs.next().is_none(), "values.yaml is one document");
    doc.value
}

fn validator() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(chart().join("values.schema.json")).expect("values.schema.json");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    assert_eq!(
        schema["$schema"], "http://json-schema.org/draft-07/schema#",
        "Helm validates with draft-07"
    );
    jsonschema::draft7::new(&schema).expect("a valid draft-07 schema")
}

fn errors(v: &jsonschema::Validator, values: &Value) -> Vec<String> {
    v.iter_errors(values).map(|e| e.to_string()).collect()
}

/// The defaults with the value at `pointer` replaced (or added).
fn with(pointer: &str, value: Value) -> Value {
    let mut values = default_values();
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let target = values
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {parent}"));
    target.insert(key.to_owned(), value);
    values
}

#[test]
fn the_values_schema_accepts_the_defaults() {
    let v = validator();
    let defaults = default_values();
    assert_eq!(errors(&v, &defaults), Vec::<String>::new());
    assert_eq!(defaults["replicas"], 2, "two replicas, leader election");
    assert_eq!(defaults["watchNamespaces"], json!([]));
    assert_eq!(defaults["serviceMonitor"]["enabled"], false);
}

#[test]
fn the_values_schema_accepts_good_overrides() {
    let v = validator();
    for (pointer, value) in [
        ("/watchNamespaces", json!(["telephony", "sales-2"])),
        ("/logLevel", json!("debug")),
        ("/replicas", json!(1)),
        ("/image/tag", json!("0.2.0-rc.1")),
        ("/image/pullPolicy", json!("Always")),
        (
            "/otlpEndpoint",
            json!("http://otel-collector.observability:4317"),
        ),
        ("/serviceMonitor/enabled", json!(true)),
        ("/serviceMonitor/labels", json!({"release": "prometheus"})),
        ("/sipServiceType", json!("NodePort")),
        ("/resources/limits", json!({"cpu": 1, "memory": "512Mi"})),
        ("/global", json!({"imageRegistry": "example.com"})),
    ] {
        let values = with(pointer, value.clone());
        assert_eq!(
            errors(&v, &values),
            Vec::<String>::new(),
            "{pointer} = {value} should be accepted"
        );
    }
}

#[test]
fn the_values_schema_rejects_bad_values() {
    let v = validator();
    for (pointer, value) in [
        ("/logLevel", json!("verbose")),
        ("/logLevel", json!("INFO")),
        ("/replicas", json!(0)),
        ("/replicas", json!("2")),
        ("/replicas", json!(1.5)),
        ("/image/pullPolicy", json!("Sometimes")),
        ("/image/repository", json!("")),
        ("/image/tag", json!("has space")),
        ("/watchNamespaces", json!(["Bad_NS"])),
        ("/watchNamespaces", json!("telephony")),
        ("/watchNamespaces", json!(["telephony", "telephony"])),
        ("/watchNamespaces", json!(["-leading-dash"])),
        ("/otlpEndpoint", json!("collector:4317")),
        ("/sipServiceType", json!("Ingress")),
        ("/serviceMonitor/enabled", json!("yes")),
        ("/serviceMonitor/interval", json!("often")),
        ("/replica", json!(2)),
        ("/image/pullpolicy", json!("Always")),
    ] {
        let values = with(pointer, value.clone());
        assert!(
            !v.is_valid(&values),
            "{pointer} = {value} should be rejected"
        );
    }
}

fn templates() -> Vec<(String, String)> {
    let dir = chart().join("templates");
    file_names(&dir)
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(&name)).expect("read a template");
            (name, text)
        })
        .collect()
}

#[test]
fn templates_use_only_values_that_exist() {
    let defaults = default_values();
    let mut problems = Vec::new();
    for (name, text) in templates() {
        for (i, _) in text.match_indices(".Values.") {
            let path: String = text[i + ".Values.".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
                .collect();
            let pointer = format!("/{}", path.trim_end_matches('.').replace('.', "/"));
            if defaults.pointer(&pointer).is_none() {
                problems.push(format!(
                    "{name}: .Values.{path} has no default in values.yaml"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn operator_rbac_covers_the_eight_kinds_without_wildcards() {
    let helpers =
        std::fs::read_to_string(chart().join("templates/_helpers.tpl")).expect("_helpers.tpl");
    for crd in dialtone_model::resources::crds() {
        let plural = &crd.spec.names.plural;
        assert!(
            helpers.contains(&format!("- {plural}\n")),
            "the operator cannot watch {plural}"
        );
        assert!(
            helpers.contains(&format!("- {plural}/status\n")),
            "the operator cannot write {plural}/status"
        );
    }
    for (name, text) in templates() {
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            assert!(
                !line.contains("\"*\"") && !line.contains("'*'") && !line.contains("- *"),
                "{name}: wildcard in {line:?}"
            );
            assert!(
                !line.contains("\"delete\""),
                "{name}: the operator deletes nothing"
            );
        }
    }
    // Every rule in the operator's rule list is preceded by a comment naming who needs it.
    let rules = helpers
        .split("define \"dialtone.operatorRules\"")
        .nth(1)
        .expect("the operatorRules template");
    let lines: Vec<&str> = rules.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("- apiGroups:") {
            assert!(
                i > 0 && lines[i - 1].starts_with('#'),
                "rule without a comment: {line}"
            );
        }
    }
}

#[test]
fn chart_metadata_is_as_released() {
    let text = std::fs::read_to_string(chart().join("Chart.yaml")).expect("Chart.yaml");
    let parsed = dialtone_model::yaml::parse(&text);
    let chart = &parsed.documents.first().expect("a document").value;
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "dialtone");
    assert_eq!(chart["version"], "0.1.0");
    assert_eq!(chart["appVersion"], "0.1.0");
    let readme = std::fs::read_to_string(chart_dir_readme()).expect("README.md");
    assert!(
        readme.contains(
            "helm install dialtone charts/dialtone -n dialtone-system --create-namespace"
        )
    );
    assert!(readme.contains("kubectl apply -f examples/demo/"));
}

fn chart_dir_readme() -> PathBuf {
    chart().join("README.md")
}
