//! The sandbox: a guest that exceeds its memory cap or its time is stopped
//! with an error that says so, and the host goes on (here: runs another
//! instance to completion).

use chrono::{Duration, Utc};
use defender_ocsf_host::replay::{Credentials, Dataset, ReplayServer};
use defender_ocsf_host::runtime::{DEFAULT_COMPONENT, Limits, Runtime};
use defender_ocsf_host::telemetry::Telemetry;
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
    let err = instance.poll().err().expect("a 40 MB response does not fit in 32 MiB");
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
    let err = instance.poll().err().expect("the poll outlives its deadline");
    assert!(format!("{err:#}").contains("ran longer than"), "{err:#}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
