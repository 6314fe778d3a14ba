//! What the component tells the host about itself (`source.describe`, WIT
//! 0.5.0): which of its settings are secrets and credentials, which one
//! names an instance (a tenant), how it is told that the host signs for it,
//! which settings `convert` takes, and the metrics it reports. The host
//! applies these without knowing what they mean.

/// How the host's periodic summary line shows a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Summary {
    /// The sum over its series.
    Total,
    /// The largest value among its series.
    Max,
}

/// A metric the component reports.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    pub name: &'static str,
    /// One line for `# HELP`.
    pub help: &'static str,
    pub summary: Option<Summary>,
}

const fn metric(name: &'static str, help: &'static str) -> Metric {
    Metric { name, help, summary: None }
}

/// The component's description.
#[derive(Debug)]
pub struct Description {
    pub secret_keys: &'static [&'static str],
    pub credential_keys: &'static [&'static str],
    pub instance_key: Option<&'static str>,
    pub host_signer: Option<(&'static str, &'static str)>,
    pub convert_options: &'static [&'static str],
    pub metrics: &'static [Metric],
}

/// This component: an app registration's secret or a certificate the host
/// holds, one tenant per instance.
pub static DESCRIPTION: Description = Description {
    secret_keys: &["client_secret"],
    credential_keys: &["client_secret", "client_assertion"],
    instance_key: Some("tenant_id"),
    host_signer: Some(("client_assertion", "host")),
    convert_options: &["tenant_id", "ocsf.deprecated_classes"],
    metrics: &[
        metric("budget_waits_total", "Times a query waited for the per-minute call budget."),
        metric("events_emitted_total", "OCSF events emitted, by table and class."),
        metric("graph_requests_total", "Requests to Microsoft Graph, by HTTP status."),
        metric(
            "history_left_seconds",
            "Data time each table still has to backfill below its live edge (0 once caught up).",
        ),
        Metric {
            summary: Some(Summary::Max),
            ..metric("lag_seconds", "How far each table's live edge is behind real time.")
        },
        Metric {
            summary: Some(Summary::Total),
            ..metric(
                "late_rows_total",
                "Rows found by the look-back over `overlap` that arrived after their window was collected.",
            )
        },
        metric(
            "queries_total",
            "Advanced-hunting window queries, by table and outcome (ok, too_large, unavailable, throttled, error).",
        ),
        metric("rows_fetched_total", "Rows received from advanced hunting, by table."),
        Metric {
            summary: Some(Summary::Total),
            ..metric(
                "rows_unmappable_total",
                "Rows that could not be mapped to OCSF (logged with their table and key).",
            )
        },
        metric(
            "tables_unavailable_total",
            "Times a table was found unavailable in the tenant (no license).",
        ),
        metric("token_requests_total", "Token requests to the identity platform, by HTTP status."),
        metric(
            "window_splits_total",
            "Windows split or shortened because their answer was too large, by table.",
        ),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CollectorConfig;

    /// Every metric the code reports is described, and nothing else is.
    #[test]
    fn every_metric_reported_is_described() {
        let mut reported = std::collections::BTreeSet::new();
        let mut files = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if path.ends_with("description.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for call in ["telemetry::counter(", "telemetry::gauge("] {
                for (at, _) in text.match_indices(call) {
                    let rest = text[at + call.len()..].trim_start();
                    if let Some(name) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                        reported.insert(name.to_string());
                    }
                }
            }
        }
        let described: std::collections::BTreeSet<String> = DESCRIPTION.metrics.iter().map(|m| m.name.to_string()).collect();
        assert_eq!(reported, described);
    }

    /// The keys it names are settings the configuration reads.
    #[test]
    fn the_keys_it_names_are_settings() {
        let keys = DESCRIPTION
            .secret_keys
            .iter()
            .chain(DESCRIPTION.credential_keys)
            .chain(DESCRIPTION.instance_key.iter())
            .chain(DESCRIPTION.convert_options);
        for key in keys {
            // A value of the wrong type: the error names the setting, and
            // never calls it unknown.
            let top = key.split('.').next().unwrap();
            let config = format!(r#"{{"tenant_id":"t","client_id":"c","client_secret":"s","{top}":[]}}"#);
            let message = CollectorConfig::from_json(&config).map_or_else(|e| e.to_string(), |_| String::new());
            assert!(!message.contains("unknown"), "{key} is not a setting: {message}");
        }
        let (key, value) = DESCRIPTION.host_signer.unwrap();
        let config = format!(r#"{{"tenant_id":"t","client_id":"c","{key}":"{value}"}}"#);
        assert!(CollectorConfig::from_json(&config).is_ok(), "the host signer's setting is accepted");
    }
}
