//! The generated CRD schemas accept every demo manifest, reject broken ones, and are
//! structural (what the Kubernetes API server requires of a CRD schema).

use std::path::Path;

use dialtone_model::resources::crds;
use dialtone_model::yaml;
use serde_json::Value;

fn schema_for(kind: &str) -> Value {
    let crd = crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    let version = &crd.spec.versions[0];
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("every CRD has an openAPIV3Schema");
    serde_json::to_value(schema).expect("schema serializes")
}

fn validate(doc: &Value) -> Vec<String> {
    let kind = doc["kind"].as_str().expect("documents have a kind");
    let schema = schema_for(kind);
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    validator
        .iter_errors(doc)
        .map(|e| format!("{kind}: {e} at {}", e.instance_path()))
        .collect()
}

fn demo_documents() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo");
    let mut docs = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/demo exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path).expect("readable");
        let parsed = yaml::parse(&text);
        assert!(
            parsed.errors.is_empty(),
            "{}: {:?}",
            path.display(),
            parsed.errors
        );
        docs.extend(
            parsed
                .documents
                .into_iter()
                .map(|d| d.value)
                .filter(|v| v["apiVersion"] == "dialtone.dev/v1alpha1"),
        );
    }
    docs
}

#[test]
fn every_demo_manifest_validates_against_its_crd_schema() {
    let docs = demo_documents();
    let kinds: std::collections::BTreeSet<&str> =
        docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds.len(), 8, "the demo has every kind: {kinds:?}");
    let errors: Vec<String> = docs.iter().flat_map(validate).collect();
    assert!(errors.is_empty(), "schema errors:\n{}", errors.join("\n"));
}

#[test]
fn schemas_reject_what_they_promise_to() {
    let docs = demo_documents();
    let find = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("demo has a {kind}"))
    };
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "PhoneNumber",
            Box::new(|d| d["spec"]["number"] = "+0441".into()),
        ),
        (
            "PhoneNumber",
            Box::new(|d| d["spec"]["recording"]["mode"] = "half".into()),
        ),
        (
            "CallQueue",
            Box::new(|d| d["spec"]["strategy"] = "mostIdle".into()),
        ),
        (
            "CallQueue",
            Box::new(|d| d["spec"]["ringTimeoutSeconds"] = 0.into()),
        ),
        (
            "Schedule",
            Box::new(|d| d["spec"]["weekly"][0]["open"] = "9:00".into()),
        ),
        (
            "Schedule",
            Box::new(|d| d["spec"]["weekly"][0]["close"] = "24:30".into()),
        ),
        ("Agent", Box::new(|d| d["spec"]["extension"] = "1a".into())),
        (
            "Agent",
            Box::new(|d| d["spec"]["destinations"] = serde_json::json!([])),
        ),
        (
            "Blocklist",
            Box::new(|d| {
                d["spec"]["entries"][0]
                    .as_object_mut()
                    .expect("entry is an object")
                    .remove("reason");
            }),
        ),
        (
            "ForwardingScheme",
            Box::new(|d| d["spec"]["steps"] = serde_json::json!([])),
        ),
        (
            "ForwardingScheme",
            Box::new(|d| d["spec"]["steps"][0] = serde_json::json!({"hangup": {"x": 1}})),
        ),
        (
            "Carrier",
            Box::new(|d| d["spec"]["transport"] = "sctp".into()),
        ),
        (
            "CallCenter",
            Box::new(|d| d["spec"]["webhooks"][0]["url"] = "ftp://x".into()),
        ),
    ];
    for (i, (kind, mutate)) in cases.iter().enumerate() {
        let mut doc = find(kind);
        mutate(&mut doc);
        assert!(
            !validate(&doc).is_empty(),
            "case {i}: the {kind} schema accepted {}",
            serde_json::to_string(&doc["spec"]).unwrap_or_default()
        );
    }
}

/// Kubernetes requires structural schemas: every node typed, no `additionalProperties: false`,
/// no `$ref`, and `oneOf`/`anyOf`/`allOf` carrying no types of their own.
#[test]
fn schemas_are_structural() {
    fn walk(path: &str, node: &Value, problems: &mut Vec<String>) {
        let Some(obj) = node.as_object() else { return };
        let preserves = obj.contains_key("x-kubernetes-preserve-unknown-fields")
            || obj.contains_key("x-kubernetes-int-or-string");
        if !obj.contains_key("type") && !preserves {
            problems.push(format!("{path}: no type"));
        }
        if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
            problems.push(format!("{path}: additionalProperties: false"));
        }
        if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
            problems.push(format!(
                "{path}: properties and additionalProperties together"
            ));
        }
        for key in ["$ref", "definitions", "$defs"] {
            if obj.contains_key(key) {
                problems.push(format!("{path}: {key}"));
            }
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            for (i, sub) in obj
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if sub.get("type").is_some() {
                    problems.push(format!("{path}.{key}[{i}]: typed subschema"));
                }
            }
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                walk(&format!("{path}.{k}"), v, problems);
            }
        }
        if let Some(items) = obj.get("items") {
            walk(&format!("{path}[]"), items, problems);
        }
        if let Some(ap) = obj.get("additionalProperties").filter(|v| v.is_object()) {
            walk(&format!("{path}{{}}"), ap, problems);
        }
    }
    let mut problems = Vec::new();
    for crd in crds() {
        let kind = crd.spec.names.kind.clone();
        let schema = schema_for(&kind);
        walk(&kind, &schema, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "non-structural schema nodes:\n{}",
        problems.join("\n")
    );
}

/// Every rule that spans fields is a CEL `x-kubernetes-validations` rule in the schema.
#[test]
fn cross_field_rules_are_in_the_schema() {
    let all: String = crds()
        .iter()
        .map(|c| serde_json::to_string(c).unwrap_or_default())
        .collect();
    for rule in [
        "has(self.number) != has(self.prefix)",
        "[has(self.play), has(self.menu), has(self.ring), has(self.queue), has(self.ownerLookup), has(self.voicemail), has(self.hangup)].filter(x, x).size() == 1",
        "self.maxReplicas >= self.minReplicas",
        "self.close > self.open",
        "[has(self.softphone), has(self.number), has(self.sipUri)].filter(x, x).size() == 1",
    ] {
        let escaped = serde_json::to_string(rule).unwrap_or_default();
        assert!(all.contains(&escaped), "missing CEL rule {rule}");
    }
}
