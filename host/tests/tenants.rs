//! Several tenants in one configuration: each with its own credentials,
//! checkpoint and call budget; one failing never stops the others; `shard`
//! splits them between instances, each tenant to exactly one.

use chrono::{Duration, Utc};
use defender_ocsf_replay::{Credentials, Dataset, ReplayServer};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

fn tenant_server(tenant: &str, rows: usize) -> ReplayServer {
    let base = Utc::now() - Duration::minutes(30);
    let mut dataset = Dataset::default();
    let rows = (0..rows).map(|i| {
        json!({"Timestamp": (base + Duration::seconds(i as i64)).to_rfc3339(), "DeviceId": tenant, "ReportId": i, "ProcessId": i, "InitiatingProcessId": 1})
            .as_object()
            .unwrap()
            .clone()
    });
    dataset.add("DeviceProcessEvents", rows).unwrap();
    let credentials = Credentials {
        tenant_id: tenant.into(),
        client_id: format!("{tenant}-client"),
        client_secret: format!("{tenant}-secret"),
    };
    ReplayServer::start(dataset, credentials).unwrap()
}

/// The environment variable that holds `tenant`'s secret.
fn secret_var(tenant: &str) -> String {
    format!("SECRET_{}", tenant.replace('-', "_"))
}

/// A `tenants:` entry for `tenant` served by `server`, its secret from the
/// environment.
fn entry(tenant: &str, server: &ReplayServer) -> String {
    format!(
        "  - tenant_id: {tenant}\n    client_id: {tenant}-client\n    client_secret: ${{{}}}\n    login_endpoint: {url}\n    graph_endpoint: {url}\n",
        secret_var(tenant),
        url = server.url()
    )
}

fn write_config(dir: &Path, entries: &[String]) -> std::path::PathBuf {
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "tables: [DeviceProcessEvents]\nstart_time: {}\ndelay: 1m\nstate_dir: {}\ntenants:\n{}",
            (Utc::now() - Duration::hours(1)).to_rfc3339(),
            dir.join("state").display(),
            entries.concat()
        ),
    )
    .unwrap();
    config
}

fn run(config: &Path, secrets: &[(&str, &str)], extra: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"));
    command.args(["run", "--once", "--config"]).arg(config).args(extra);
    for (tenant, secret) in secrets {
        command.env(secret_var(tenant), secret);
    }
    command.output().unwrap()
}

/// Events per `metadata.tenant_uid`.
fn per_tenant(out: &Output) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        *counts
            .entry(event["metadata"]["tenant_uid"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    counts
}

#[test]
fn one_tenant_failing_never_stops_the_others_and_each_keeps_its_own_checkpoint() {
    let (a, b) = (tenant_server("tenant-a", 4), tenant_server("tenant-b", 3));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[entry("tenant-a", &a), entry("tenant-b", &b)]);

    // tenant-b's secret is wrong.
    let out = run(&config, &[("tenant-a", "tenant-a-secret"), ("tenant-b", "wrong")], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(per_tenant(&out), BTreeMap::from([("tenant-a".to_string(), 4)]), "{stderr}");
    assert!(
        stderr.contains("tenant tenant-b stopped") && stderr.contains("AADSTS7000215"),
        "{stderr}"
    );
    assert!(stderr.contains("1 of 2 tenants failed"), "{stderr}");
    assert!(dir.path().join("state/tenant-a/checkpoint.json").exists());
    assert!(!dir.path().join("state/tenant-b/checkpoint.json").exists());

    // Fixed: tenant-b catches up, tenant-a has nothing new.
    let out = run(&config, &[("tenant-a", "tenant-a-secret"), ("tenant-b", "tenant-b-secret")], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(per_tenant(&out), BTreeMap::from([("tenant-b".to_string(), 3)]));
}

#[test]
fn each_tenants_metrics_carry_its_tenant_label() {
    use defender_ocsf_host::app::{self, RunOptions};
    use defender_ocsf_host::config::RunConfig;
    use defender_ocsf_host::output::Stdout;
    use defender_ocsf_host::telemetry::Telemetry;
    let (a, b) = (tenant_server("tenant-a", 4), tenant_server("tenant-b", 3));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &[entry("tenant-a", &a), entry("tenant-b", &b)]);
    let env = |name: &str| {
        [("tenant-a", "tenant-a-secret"), ("tenant-b", "tenant-b-secret")]
            .iter()
            .find(|(t, _)| secret_var(t) == name)
            .map(|(_, s)| s.to_string())
    };
    let config = RunConfig::from_yaml(&std::fs::read_to_string(config).unwrap(), &env).unwrap();
    let telemetry = std::sync::Arc::new(Telemetry::default());
    let options = RunOptions {
        once: true,
        ..RunOptions::default()
    };
    let mut out = Vec::new();
    let tenants = defender_ocsf_host::launch::instances(&config, None).unwrap();
    app::run_tenants(&tenants, &options, &mut Stdout::new(&mut out), telemetry.clone()).unwrap();
    let text = telemetry.render_prometheus();
    for (tenant, rows) in [("tenant-a", 4), ("tenant-b", 3)] {
        let line =
            format!("defender_ocsf_events_emitted_total{{class_uid=\"1007\",table=\"DeviceProcessEvents\",tenant=\"{tenant}\"}} {rows}\n");
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
}

#[test]
fn shards_split_the_tenants_each_to_exactly_one_instance() {
    let names = ["contoso", "fabrikam", "northwind", "adatum", "litware"];
    let servers: Vec<ReplayServer> = names.iter().map(|t| tenant_server(t, 2)).collect();
    let entries: Vec<String> = names.iter().zip(&servers).map(|(t, s)| entry(t, s)).collect();
    let secrets: Vec<(String, String)> = names.iter().map(|t| (t.to_string(), format!("{t}-secret"))).collect();
    let secrets: Vec<(&str, &str)> = secrets.iter().map(|(t, s)| (t.as_str(), s.as_str())).collect();
    let mut taken = BTreeMap::new();
    for index in 0..3 {
        // Every instance has its own state volume, as in a StatefulSet.
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &entries);
        let shard = format!("shard={{index: {index}, count: 3}}");
        let out = run(&config, &secrets, &["--set", &shard]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for (tenant, events) in per_tenant(&out) {
            assert_eq!(events, 2);
            assert!(taken.insert(tenant.clone(), index).is_none(), "{tenant} collected by two shards");
            assert_eq!(defender_ocsf_host::config::Shard::of(&tenant, 3), index);
        }
    }
    let all: BTreeSet<&str> = names.into_iter().collect();
    assert_eq!(
        taken.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        all,
        "every tenant collected once"
    );
}

#[test]
fn check_covers_every_tenant_whatever_the_shard() {
    let names = ["contoso", "northwind"];
    let servers: Vec<ReplayServer> = names.iter().map(|t| tenant_server(t, 1)).collect();
    let entries: Vec<String> = names.iter().zip(&servers).map(|(t, s)| entry(t, s)).collect();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &entries);
    // Shard 0 of 3 collects neither tenant (pinned in config.rs), but
    // `check` is about the configuration: it checks both.
    let out = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["check", "--config"])
        .arg(&config)
        .args(["--set", "shard={index: 0, count: 3}"])
        .env(secret_var("contoso"), "contoso-secret")
        .env(secret_var("northwind"), "wrong")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("tenant contoso:") && stdout.contains("tenant northwind:"),
        "{stdout}"
    );
    assert!(stdout.contains("AADSTS7000215"), "northwind's wrong secret is reported: {stdout}");
    assert!(!out.status.success());
}
