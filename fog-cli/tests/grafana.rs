//! The Grafana dashboard in `fog-cli/grafana/` is valid JSON, has the
//! variables it refers to, and queries only metrics a fog node exports.

use std::collections::BTreeSet;

use serde_json::Value;

/// Every metric family `fog node` serves at `/metrics` (OpenMetrics names:
/// counters end in `_total`).
const METRICS: &[&str] = &[
    "fog_node_info",
    "fog_node_peers_alive",
    "fog_jobs_submitted_total",
    "fog_jobs_verified_total",
    "fog_jobs_failed_total",
    "fog_jobs_preemptions_total",
    "fog_jobs_evidence_total",
    "fog_tasks_executed_total",
    "fog_jobs",
    "fog_task_duration_seconds",
    "fog_mix_packets_total",
    "fog_mix_latency_seconds",
    "fog_p2p_connected_peers",
    "fog_p2p_gossip_received_total",
    "fog_p2p_queued_messages",
    "fog_harvest_state",
    "fog_harvest_cpu_share",
    "fog_harvest_battery_percent",
    "fog_harvest_temperature_celsius",
    "fog_dao_ledger_height",
    "fog_dao_rewards_paid_total",
    "fog_dao_supply",
    "fog_sched_placements_total",
    "fog_checkpoints_total",
    "fog_sched_reputation",
];

/// The histograms among them, queried through their `_bucket`, `_sum` and
/// `_count` series.
const HISTOGRAMS: &[&str] = &["fog_task_duration_seconds", "fog_mix_latency_seconds"];

fn dashboard() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/grafana/fog-dashboard.json");
    let text = std::fs::read_to_string(path).expect("the dashboard file exists");
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    while let Some(panel) = stack.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            stack.extend(nested);
        }
        all.push(panel);
    }
    all
}

/// The `fog_*` names a PromQL expression mentions.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts_word && expr[i..].starts_with("fog_") {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(expr.len(), |n| i + n);
            names.push(expr[i..end].to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

/// The family a series name belongs to, if it is a known one.
fn family(name: &str) -> Option<&'static str> {
    if let Some(known) = METRICS.iter().find(|m| **m == name) {
        return Some(known);
    }
    HISTOGRAMS.iter().copied().find(|h| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .any(|suffix| name == format!("{h}{suffix}"))
    })
}

#[test]
fn every_query_names_only_exported_metrics() {
    let dashboard = dashboard();
    let mut used = BTreeSet::new();
    let mut queries = 0;
    for panel in panels(&dashboard) {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or("?");
        let targets = panel["targets"].as_array().unwrap_or_else(|| {
            panic!("panel {title:?} has no targets");
        });
        assert!(!targets.is_empty(), "panel {title:?} has no targets");
        for target in targets {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("a target of {title:?} has no expr"));
            let names = metric_names(expr);
            assert!(
                !names.is_empty(),
                "{title:?}: `{expr}` queries no fog metric"
            );
            for name in names {
                let family = family(&name).unwrap_or_else(|| {
                    panic!("{title:?}: `{expr}` queries `{name}`, which no fog node exports")
                });
                if HISTOGRAMS.contains(&family) {
                    assert_ne!(
                        name, family,
                        "{title:?}: a histogram is queried through _bucket/_sum/_count"
                    );
                }
                used.insert(family);
            }
            queries += 1;
        }
    }
    assert!(queries >= METRICS.len(), "only {queries} queries");
    let unused: Vec<_> = METRICS.iter().filter(|m| !used.contains(*m)).collect();
    assert!(unused.is_empty(), "metrics no panel shows: {unused:?}");
}

#[test]
fn the_dashboard_is_importable() {
    let dashboard = dashboard();
    let schema = dashboard["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());

    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let datasource = variables
        .iter()
        .find(|v| v["name"] == "DS_PROMETHEUS")
        .expect("a DS_PROMETHEUS variable");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    let node = variables
        .iter()
        .find(|v| v["name"] == "node")
        .expect("a node variable");
    assert_eq!(node["type"], "query");

    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or("?");
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} is used twice");
        let grid = &panel["gridPos"];
        for key in ["h", "w", "x", "y"] {
            assert!(grid[key].is_u64(), "{title:?}: gridPos.{key}");
        }
        let right = grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap();
        assert!(right <= 24, "{title:?} is wider than the grid");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${DS_PROMETHEUS}",
            "{title:?} does not use the datasource variable"
        );
        for target in panel["targets"].as_array().into_iter().flatten() {
            assert_eq!(target["datasource"]["uid"], "${DS_PROMETHEUS}", "{title:?}");
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(
                expr.contains("instance=~\"$node\""),
                "{title:?}: `{expr}` ignores the node variable"
            );
        }
    }
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names(
            r#"sum by (le) (rate(fog_mix_latency_seconds_bucket{instance=~"$node"}[5m])) / fog_x"#
        ),
        ["fog_mix_latency_seconds_bucket", "fog_x"]
    );
    assert_eq!(metric_names("not_fog_jobs + up"), Vec::<String>::new());
    assert_eq!(family("fog_jobs_total"), None);
    assert_eq!(
        family("fog_task_duration_seconds_count"),
        Some("fog_task_duration_seconds")
    );
}
