//! SIGTERM (what Vector sends an `exec` child on shutdown) exits 0 within
//! 10 seconds and never saves the checkpoint of a batch it did not deliver.

#[path = "support/signal.rs"]
mod signal;

use chrono::{Duration, Utc};
use defender_ocsf_replay::{Credentials, Dataset, ReplayServer};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

fn credentials() -> Credentials {
    Credentials {
        tenant_id: "sig-tenant".into(),
        client_id: "sig-client".into(),
        client_secret: "sig-secret".into(),
    }
}

fn start(dir: &std::path::Path, server: &ReplayServer) -> Child {
    start_with(dir, server, "")
}

fn start_with(dir: &std::path::Path, server: &ReplayServer, extra: &str) -> Child {
    let config = dir.join("config.yaml");
    let start = (Utc::now() - Duration::hours(1)).to_rfc3339();
    std::fs::write(
        &config,
        format!(
            "tenant_id: sig-tenant\nclient_id: sig-client\nclient_secret: sig-secret\nlogin_endpoint: {u}\ngraph_endpoint: {u}\n\
             tables: [DeviceProcessEvents]\nstart_time: {start}\ndelay: 1m\npoll_interval: 1m\nstate_dir: {}\n{extra}",
            dir.join("state").display(),
            u = server.url()
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn terminate(child: &Child) {
    assert!(signal::sigterm(child));
}

fn dataset(n: usize) -> Dataset {
    let mut d = Dataset::default();
    let t = (Utc::now() - Duration::minutes(30)).to_rfc3339();
    let rows = (0..n).map(|i| {
        json!({"Timestamp": t, "DeviceId": "d", "ReportId": i, "ProcessId": i, "InitiatingProcessId": 1})
            .as_object()
            .unwrap()
            .clone()
    });
    d.add("DeviceProcessEvents", rows).unwrap();
    d
}

#[test]
fn sigterm_while_waiting_for_the_next_cycle_exits_0_promptly() {
    let server = ReplayServer::start(dataset(3), credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = start(dir.path(), &server);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        lines.next().unwrap().unwrap();
    }
    // Caught up; the collector now waits a minute for the next cycle.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sent = Instant::now();
    terminate(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(sent.elapsed() < std::time::Duration::from_secs(10), "took {:?}", sent.elapsed());
    let saved = std::fs::read_to_string(dir.path().join("state/checkpoint.json")).unwrap();
    assert!(saved.contains("DeviceProcessEvents"), "{saved}");
}

#[test]
fn sigterm_during_a_slow_query_abandons_it_and_exits_0_within_10s() {
    let server = ReplayServer::start(dataset(3), credentials()).unwrap();
    server.set_delay(std::time::Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let mut child = start(dir.path(), &server);
    // Wait until the query is in flight.
    let t0 = Instant::now();
    while server.queries().is_empty() && t0.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!server.queries().is_empty(), "the collector never queried");
    let sent = Instant::now();
    terminate(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(sent.elapsed() < std::time::Duration::from_secs(10), "took {:?}", sent.elapsed());
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(out.is_empty(), "nothing was delivered");
    assert!(
        !dir.path().join("state/checkpoint.json").exists(),
        "no checkpoint for an undelivered batch"
    );
}

#[test]
fn a_closed_stdout_stops_cleanly_without_saving_the_unwritten_batch() {
    let server = ReplayServer::start(dataset(3), credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = start(dir.path(), &server);
    drop(child.stdout.take()); // the reader goes away before anything is written
    let t0 = Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(t0.elapsed() < std::time::Duration::from_secs(30));
    let saved = std::fs::read_to_string(dir.path().join("state/checkpoint.json")).unwrap_or_default();
    assert!(
        !saved.contains("DeviceProcessEvents"),
        "the batch that could not be written must not be checkpointed: {saved}"
    );
}

#[test]
fn metrics_are_served_in_prometheus_format() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = ReplayServer::start(dataset(4), credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_with(dir.path(), &server, &format!("metrics_address: 127.0.0.1:{port}\n"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..4 {
        lines.next().unwrap().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let get = |path: &str| {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        use std::io::{Read, Write};
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    };
    let text = get("/metrics");
    let healthz = get("/healthz");
    let readyz = get("/readyz");
    terminate(&child);
    child.wait().unwrap();
    assert!(healthz.starts_with("HTTP/1.1 200"), "{healthz}");
    assert!(readyz.starts_with("HTTP/1.1 200") && readyz.ends_with("ready\n"), "{readyz}");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // Prometheus conventions: HELP and TYPE, build_info, counters at 0 from
    // the start, a table label on the query counter.
    assert!(text.contains("# HELP defender_ocsf_events_emitted_total "), "{text}");
    assert!(text.contains("# TYPE defender_ocsf_events_emitted_total counter"), "{text}");
    assert!(text.contains("defender_ocsf_build_info{version=\""), "{text}");
    assert!(text.contains("defender_ocsf_throttled_total 0\n"), "{text}");
    assert!(text.contains("defender_ocsf_errors_total{kind=\"auth\"} 0\n"), "{text}");
    assert!(
        text.contains("defender_ocsf_queries_total{outcome=\"ok\",table=\"DeviceProcessEvents\"} "),
        "{text}"
    );
    assert!(
        text.contains("defender_ocsf_queries_total{outcome=\"throttled\",table=\"DeviceProcessEvents\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("defender_ocsf_events_emitted_total{class_uid=\"1007\",table=\"DeviceProcessEvents\"} 4"),
        "{text}"
    );
    assert!(
        text.contains("defender_ocsf_rows_fetched_total{table=\"DeviceProcessEvents\"} 4"),
        "{text}"
    );
    assert!(text.contains("defender_ocsf_lag_seconds{table=\"DeviceProcessEvents\"}"), "{text}");
    assert!(text.contains("defender_ocsf_last_success_timestamp_seconds "), "{text}");
    assert!(text.contains("defender_ocsf_graph_requests_total{status=\"200\"}"), "{text}");
}

/// `/readyz` answers 503 with the reason while a collector fails (here a
/// wrong secret), and `/healthz` 200 as long as the process runs.
#[test]
fn readyz_says_why_a_collector_is_not_ready() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = ReplayServer::start(dataset(4), credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Two tenants: one with a wrong secret fails, the other collects; the
    // process stays up for the healthy one.
    let extra = format!(
        "metrics_address: 127.0.0.1:{port}\ntenants:\n  - {{tenant_id: sig-tenant}}\n  - {{tenant_id: other-tenant, client_secret: wrong}}\n"
    );
    let mut child = start_with(dir.path(), &server, &extra);
    let get = |path: &str| -> String {
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return String::new();
        };
        use std::io::{Read, Write};
        let _ = stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    };
    let t0 = std::time::Instant::now();
    let mut readyz = String::new();
    while t0.elapsed() < std::time::Duration::from_secs(30) {
        readyz = get("/readyz");
        if readyz.contains("failing") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let healthz = get("/healthz");
    terminate(&child);
    child.wait().unwrap();
    assert!(readyz.starts_with("HTTP/1.1 503"), "{readyz}");
    assert!(readyz.contains("tenant other-tenant: failing: authentication failed"), "{readyz}");
    assert!(!readyz.contains("wrong"), "never the secret: {readyz}");
    assert!(healthz.starts_with("HTTP/1.1 200"), "{healthz}");
}
