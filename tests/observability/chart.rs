//! The Helm chart's observability: the metric names its Grafana dashboard and alert rules use,
//! and its values schema accepting the flags that ship them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/dialtone")
}

/// The `dialtone_*` metric names in a PromQL expression.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("dialtone_"))
        .map(str::to_owned)
        .collect()
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let parsed = dialtone_model::yaml::parse(&text);
    assert!(
        parsed.errors.is_empty(),
        "{}: {:?}",
        path.display(),
        parsed.errors
    );
    parsed
        .documents
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{} has a document", path.display()))
        .value
}

/// Every PromQL expression of the dashboard's panels, with the panel's title.
pub fn dashboard_exprs() -> Vec<(String, String)> {
    let path = chart().join("dashboards/dialtone.json");
    let text = std::fs::read_to_string(&path).expect("dashboards/dialtone.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty(), "the dashboard has panels");
    let mut out = Vec::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("a panel title").to_owned();
        let targets = panel["targets"].as_array().expect("panel targets");
        assert!(!targets.is_empty(), "panel {title} queries nothing");
        for t in targets {
            let expr = t["expr"].as_str().expect("a PromQL expr");
            out.push((title.clone(), expr.to_owned()));
        }
    }
    out
}

/// Every alert rule's expression, with the alert's name.
pub fn rule_exprs() -> Vec<(String, String)> {
    let rules = yaml(&chart().join("alerts/dialtone.rules.yaml"));
    let groups = rules["groups"].as_array().expect("rule groups");
    let mut out = Vec::new();
    for group in groups {
        for rule in group["rules"].as_array().expect("rules of a group") {
            let name = rule["alert"].as_str().expect("an alert name").to_owned();
            let expr = rule["expr"].as_str().expect("an alert expr").to_owned();
            assert!(
                rule["annotations"]["summary"].is_string(),
                "{name} has no summary"
            );
            out.push((name, expr));
        }
    }
    assert!(!out.is_empty(), "the rules file has alerts");
    out
}

/// The names in the dashboard and the rules that are not in `exported`.
pub fn unknown_names(exported: &BTreeSet<String>) -> Vec<String> {
    let mut unknown = Vec::new();
    for (what, expr) in dashboard_exprs().into_iter().chain(rule_exprs()) {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{what}: no dialtone_ metric in {expr}");
        for name in names {
            if !exported.contains(&name) {
                unknown.push(format!("{what}: {name}"));
            }
        }
    }
    unknown
}

#[test]
fn metric_names_are_read_from_promql() {
    assert_eq!(
        metric_names(r#"sum by (code) (rate(dialtone_sip_responses_total{code=~"5.."}[5m])) > 0"#),
        BTreeSet::from(["dialtone_sip_responses_total".to_owned()])
    );
    assert_eq!(
        metric_names("max(dialtone_a) / max(dialtone_b_total)").len(),
        2
    );
}

#[test]
fn the_values_schema_accepts_the_observability_flags() {
    let text = std::fs::read_to_string(chart().join("values.schema.json")).expect("schema");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    let validator = jsonschema::draft7::new(&schema).expect("a draft-07 schema");
    let defaults = yaml(&chart().join("values.yaml"));
    for flag in ["podMonitor", "prometheusRule", "grafanaDashboard"] {
        assert_eq!(defaults[flag]["enabled"], false, "{flag} is off by default");
    }
    let errors = |v: &Value| {
        validator
            .iter_errors(v)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(errors(&defaults), Vec::<String>::new());

    let mut on = defaults.clone();
    on["podMonitor"] = json!({"enabled": true, "interval": "15s", "labels": {"release": "prom"}});
    on["prometheusRule"] = json!({"enabled": true, "labels": {"release": "prom"}});
    on["grafanaDashboard"] = json!({
        "enabled": true, "namespace": "monitoring",
        "labels": {"team": "ops"}, "annotations": {"grafana_folder": "Telephony"}
    });
    assert_eq!(errors(&on), Vec::<String>::new());

    for (flag, bad) in [
        ("prometheusRule", json!({"enabled": "yes"})),
        ("prometheusRule", json!({"enabled": true, "extra": 1})),
        (
            "grafanaDashboard",
            json!({"enabled": true, "namespace": "Bad_NS"}),
        ),
        ("grafanaDashboard", json!({"labels": {}})),
        ("podMonitor", json!({"enabled": true, "interval": "often"})),
    ] {
        let mut values = defaults.clone();
        values[flag] = bad.clone();
        assert!(
            !validator.is_valid(&values),
            "{flag} = {bad} should be rejected"
        );
    }
}

#[test]
fn the_templates_ship_the_dashboard_and_the_rules_files() {
    let dashboard = std::fs::read_to_string(chart().join("templates/grafana-dashboard.yaml"))
        .expect("grafana-dashboard.yaml");
    assert!(dashboard.contains(r#".Files.Get "dashboards/dialtone.json""#));
    assert!(dashboard.contains(r#"grafana_dashboard: "1""#));
    assert!(dashboard.contains(".Values.grafanaDashboard.enabled"));
    let rules = std::fs::read_to_string(chart().join("templates/prometheusrule.yaml"))
        .expect("prometheusrule.yaml");
    assert!(rules.contains(r#".Files.Get "alerts/dialtone.rules.yaml""#));
    assert!(rules.contains("kind: PrometheusRule"));
    assert!(rules.contains(".Values.prometheusRule.enabled"));
    // The rules file is included verbatim, so its Prometheus templates must not look like
    // Helm's to a reader either: every `{{` is a `$labels`/`$value` reference.
    let text = std::fs::read_to_string(chart().join("alerts/dialtone.rules.yaml")).expect("rules");
    for (i, _) in text.match_indices("{{") {
        let rest = text[i + 2..].trim_start();
        assert!(
            rest.starts_with("$labels.") || rest.starts_with("$value"),
            "alerts/dialtone.rules.yaml: unexpected template at byte {i}"
        );
    }
}
