//! Hostile and broken input: each malformed response is a clear, counted
//! error with no crash, and one bad row never loses the good rows around it.

use chrono::{Duration, Utc};
use defender_ocsf_replay::{Credentials, Dataset, Fault, ReplayServer};
use serde_json::{Value, json};
use std::process::Command;

fn credentials() -> Credentials {
    Credentials {
        tenant_id: "x-tenant".into(),
        client_id: "x-client".into(),
        client_secret: "x-secret".into(),
    }
}

fn run(server: &ReplayServer, dir: &std::path::Path, start: chrono::DateTime<Utc>) -> (Vec<Value>, String, bool) {
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "tenant_id: x-tenant\nclient_id: x-client\nclient_secret: x-secret\nlogin_endpoint: {u}\ngraph_endpoint: {u}\n\
             tables: [DeviceProcessEvents]\nstart_time: {}\ndelay: 1m\nstate_dir: {}\n",
            start.to_rfc3339(),
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
    let events = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (events, String::from_utf8_lossy(&out.stderr).into_owned(), out.status.success())
}

fn good_row(t: &str, id: u64) -> serde_json::Map<String, Value> {
    json!({"Timestamp": t, "DeviceId": "d", "ReportId": id, "ProcessId": id, "InitiatingProcessId": 1, "ActionType": "ProcessCreated"})
        .as_object()
        .unwrap()
        .clone()
}

#[test]
fn malformed_responses_are_clear_errors_and_collection_recovers() {
    let t = (Utc::now() - Duration::minutes(30)).to_rfc3339();
    let mut dataset = Dataset::default();
    dataset.add("DeviceProcessEvents", [good_row(&t, 1), good_row(&t, 2)]).unwrap();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let html = Fault {
        status: 200,
        body: "<html><body>502 Bad Gateway (proxy)</body></html>".into(),
        retry_after: None,
    };
    let truncated = Fault {
        status: 200,
        body: r#"{"schema":[{"name":"Timestamp","type":"DateTime"}],"results":[{"Timest"#.into(),
        retry_after: None,
    };
    let empty = Fault {
        status: 200,
        body: String::new(),
        retry_after: None,
    };
    let latin1 = Fault {
        status: 200,
        body: String::from_utf8_lossy(b"{\"results\":[{\"a\":\"caf\xe9\"}]}").replace('\u{FFFD}', "\u{0}"),
        retry_after: None,
    };
    server.fail_next([html, truncated, empty, latin1]);
    let dir = tempfile::tempdir().unwrap();
    let (events, stderr, ok) = run(&server, dir.path(), Utc::now() - Duration::hours(1));
    assert!(ok, "{stderr}");
    assert_eq!(events.len(), 2, "collection recovered: {stderr}");
    assert!(
        stderr.contains("not valid hunting results") && stderr.contains("<html>"),
        "the error shows what came back: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_rows_never_lose_the_good_rows_around_them() {
    let t = (Utc::now() - Duration::minutes(30)).to_rfc3339();
    let huge = "A".repeat(10 * 1024 * 1024);
    let mut nested = String::from("1");
    for _ in 0..5000 {
        nested = format!("{{\"n\":{nested}}}");
    }
    let mut dataset = Dataset::default();
    dataset
        .add(
            "DeviceProcessEvents",
            [
                good_row(&t, 1),
                // Wrong types in every column.
                json!({"Timestamp": t, "DeviceId": 17, "ReportId": 2, "ProcessId": "not-a-pid", "ProcessUniqueId": "u2", "FileSize": {"x": 1}, "FileName": ["a"],
                       "InitiatingProcessId": "one", "ProcessCreationTime": "yesterday", "IsInitiatingProcessRemoteSession": "maybe",
                       "ActionType": 5, "LocalIP": "999.1.1.1"}).as_object().unwrap().clone(),
                // A 10 MB field and deeply nested AdditionalFields.
                json!({"Timestamp": t, "DeviceId": "d", "ReportId": 3, "ProcessId": 3, "InitiatingProcessId": 1, "ProcessCommandLine": huge,
                       "AdditionalFields": nested}).as_object().unwrap().clone(),
                good_row(&t, 4),
                // No usable process at all: OCSF 1007 cannot be filled, so the
                // row is rejected by name, and its neighbours still go out.
                json!({"Timestamp": t, "DeviceId": "d", "ReportId": 5, "ProcessId": "not-a-pid"}).as_object().unwrap().clone(),
            ],
        )
        .unwrap();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (events, stderr, ok) = run(&server, dir.path(), Utc::now() - Duration::hours(1));
    assert!(ok, "{stderr}");
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["metadata"]["original_event_uid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["1", "2", "3", "4"], "{stderr}");
    assert!(
        stderr.contains("requires `process`") && stderr.contains("ProcessId"),
        "the rejected row is named: {stderr}"
    );
    let typed = events.iter().find(|e| e["metadata"]["original_event_uid"] == "2").unwrap();
    assert_eq!(
        typed["unmapped"]["ProcessId"], "not-a-pid",
        "a value that does not convert is kept, not dropped"
    );
    assert_eq!(typed["unmapped"]["LocalIP"], "999.1.1.1");
    let big = events.iter().find(|e| e["metadata"]["original_event_uid"] == "3").unwrap();
    assert_eq!(big["process"]["cmd_line"].as_str().unwrap().len(), 10 * 1024 * 1024);
    assert!(big["unmapped"]["AdditionalFields"].is_string(), "too deep to parse: kept verbatim");
}

#[test]
fn an_entry_that_is_not_a_row_and_a_row_without_a_time_do_not_sink_their_neighbours() {
    let t = (Utc::now() - Duration::minutes(30)).to_rfc3339();
    let server = ReplayServer::start(Dataset::default(), credentials()).unwrap();
    // The window's whole answer: two good rows around an entry that is not a
    // row and a row whose Timestamp is not a time.
    server.fail_next([Fault {
        status: 200,
        body: json!({"schema": [], "results": [good_row(&t, 10), 42, {"Timestamp": "not a time", "DeviceId": "d", "ReportId": 11}, good_row(&t, 12)]}).to_string(),
        retry_after: None,
    }]);
    let dir = tempfile::tempdir().unwrap();
    let (events, stderr, ok) = run(&server, dir.path(), Utc::now() - Duration::hours(1));
    assert!(ok, "{stderr}");
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["metadata"]["original_event_uid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["10", "12"], "{stderr}");
    assert!(stderr.contains("result 1 is not a row"), "{stderr}");
    assert!(
        stderr.contains("DeviceProcessEvents row [DeviceId=d, Timestamp=not a time, ReportId=11") && stderr.contains("bad Timestamp"),
        "{stderr}"
    );
}
