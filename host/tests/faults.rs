//! Graph's failure modes, injected by the replay endpoint: the collector
//! waits as told, says clearly what happened, and still emits every row once.

use chrono::{Duration, Utc};
use defender_ocsf_replay::{Credentials, Dataset, Fault, ReplayServer};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::Command;

fn credentials() -> Credentials {
    Credentials {
        tenant_id: "f-tenant".into(),
        client_id: "f-client".into(),
        client_secret: "f-secret".into(),
    }
}

fn run(server: &ReplayServer, dir: &std::path::Path) -> (Vec<Value>, String, bool) {
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "tenant_id: f-tenant\nclient_id: f-client\nclient_secret: f-secret\nlogin_endpoint: {u}\ngraph_endpoint: {u}\n\
             tables: [DeviceProcessEvents]\nstart_time: {}\ndelay: 1m\nmax_window: 10m\nstate_dir: {}\n",
            (Utc::now() - Duration::hours(1)).to_rfc3339(),
            dir.join("state").display(),
            u = server.url()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--once", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (events, String::from_utf8_lossy(&out.stderr).into_owned(), out.status.success())
}

fn dataset(n: usize) -> Dataset {
    let mut d = Dataset::default();
    let base = Utc::now() - Duration::minutes(50);
    let rows = (0..n).map(|i| {
        let t = (base + Duration::seconds(i as i64 * 30)).to_rfc3339();
        json!({"Timestamp": t, "DeviceId": "d", "ReportId": i, "ProcessId": i, "InitiatingProcessId": 1})
            .as_object()
            .unwrap()
            .clone()
    });
    d.add("DeviceProcessEvents", rows).unwrap();
    d
}

fn ids(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .map(|e| e["metadata"]["original_event_uid"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn throttling_server_errors_and_the_cpu_quota_are_waited_out_with_clear_messages() {
    let server = ReplayServer::start(dataset(40), credentials()).unwrap();
    server.fail_next([
        Fault::throttled(1),
        Fault::unknown_error(),
        Fault::unknown_error(),
        Fault::cpu_quota("00:00:02"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (events, stderr, ok) = run(&server, dir.path());
    assert!(ok, "{stderr}");
    assert_eq!(events.len(), 40, "{stderr}");
    assert_eq!(ids(&events).len(), 40, "no duplicates");
    assert!(stderr.contains("throttled by the API"), "{stderr}");
    assert_eq!(
        stderr.matches("CPU quota is used up").count(),
        1,
        "the quota pause is logged once: {stderr}"
    );
    assert!(stderr.contains("UnknownError"), "{stderr}");
    // Retry-After 1 s, backoff 1 s and 2 s, quota 2 s.
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(5),
        "waited only {:?}",
        started.elapsed()
    );
    // After two server errors in a row the window was halved.
    let windows: Vec<String> = server
        .queries()
        .iter()
        .map(|q| q.split(" | ").nth(1).unwrap_or("").to_string())
        .collect();
    assert!(windows.windows(2).any(|w| w[0] != w[1]), "{windows:?}");
}

#[test]
fn persistent_server_errors_fail_once_runs_with_the_reason() {
    let server = ReplayServer::start(dataset(5), credentials()).unwrap();
    server.fail_next(std::iter::repeat_n(Fault::unknown_error(), 20));
    let dir = tempfile::tempdir().unwrap();
    let (events, stderr, ok) = run(&server, dir.path());
    assert!(!ok);
    assert!(events.is_empty());
    assert!(stderr.contains("giving up after") && stderr.contains("HTTP 500"), "{stderr}");
    assert!(
        !dir.path().join("state/checkpoint.json").exists(),
        "nothing was delivered, so nothing is checkpointed"
    );
}

/// A throttling that never lifts ends `--once` after a bounded number of
/// attempts, as repeated server errors do, naming the table; nothing is
/// delivered, and no checkpoint passes the rows.
#[test]
fn once_gives_up_on_a_permanent_429_and_names_the_table() {
    let server = ReplayServer::start(dataset(5), credentials()).unwrap();
    server.fail_next(std::iter::repeat_n(Fault::throttled(1), 50));
    let dir = tempfile::tempdir().unwrap();
    let (events, stderr, ok) = run(&server, dir.path());
    assert!(!ok, "{stderr}");
    assert!(events.is_empty());
    assert!(
        stderr.contains("giving up after 6 throttled attempts in a row: DeviceProcessEvents: "),
        "{stderr}"
    );
    assert!(stderr.contains("throttled by the API: DeviceProcessEvents"), "{stderr}");
}
