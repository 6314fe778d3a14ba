//! End to end: the `defender-ocsf` binary with the embedded component,
//! against the loopback replay endpoint holding rows these tests write.

#[path = "../../tests/support/ocsf_schema.rs"]
mod ocsf_schema;
#[path = "support/signal.rs"]
mod signal;

use chrono::{Duration, Utc};
use defender_ocsf_replay::{Credentials, Dataset, Fault, ReplayServer, Row};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::process::{Command, Output};

const SECRET: &str = "e2e-Secret~value.with_specials";

fn credentials() -> Credentials {
    Credentials {
        tenant_id: "2f6a1c9e-0000-4000-8000-0000000000e2".into(),
        client_id: "7d1b2c3a-0000-4000-8000-0000000000e2".into(),
        client_secret: SECRET.into(),
    }
}

fn iso(t: chrono::DateTime<Utc>) -> String {
    use chrono::Timelike;
    format!("{}.{:07}Z", t.format("%Y-%m-%dT%H:%M:%S"), t.nanosecond() / 100)
}

/// A DeviceProcessEvents row as advanced hunting returns it.
fn process_row(ts: &str, device: u32, report_id: u64) -> Row {
    let row = json!({
        "Timestamp": ts,
        "DeviceId": format!("{device:040x}"),
        "DeviceName": format!("host-{device}.corp.example"),
        "ActionType": "ProcessCreated",
        "FileName": "rundll32.exe",
        "FolderPath": "C:\\Windows\\System32\\rundll32.exe",
        "SHA1": "0123456789abcdef0123456789abcdef01234567",
        "ProcessId": 4000 + report_id % 1000,
        "ProcessCommandLine": format!("rundll32.exe shell32.dll,Control_RunDLL {report_id}"),
        "ProcessCreationTime": ts,
        "AccountName": "svc-backup",
        "AccountDomain": "corp",
        "InitiatingProcessId": 812,
        "InitiatingProcessFileName": "services.exe",
        "InitiatingProcessFolderPath": "C:\\Windows\\System32\\services.exe",
        "InitiatingProcessCommandLine": "services.exe",
        "InitiatingProcessAccountName": "system",
        "InitiatingProcessParentId": 640,
        "InitiatingProcessParentFileName": "wininit.exe",
        "ReportId": report_id,
        "AdditionalFields": "{\"ProcessStartKey\":123}",
        "ColumnAddedNextYear": "kept",
    });
    row.as_object().unwrap().clone()
}

/// 60 rows over two hours, in groups of up to five that share one timestamp,
/// with ReportIds above 2^53.
fn dataset() -> (Dataset, Vec<Row>, chrono::DateTime<Utc>) {
    let now = Utc::now();
    let first = now - Duration::hours(2) - Duration::minutes(10);
    let mut rows = Vec::new();
    for i in 0..60u64 {
        let group = i / 5;
        let ts = first + Duration::seconds(group as i64 * 577) + Duration::nanoseconds((group * 100) as i64);
        rows.push(process_row(&iso(ts), (i % 3) as u32, (1u64 << 53) + 1 + i));
    }
    let mut d = Dataset::default();
    d.add("DeviceProcessEvents", rows.clone()).unwrap();
    (d, rows, first)
}

fn write_config(dir: &Path, server: &ReplayServer, start: chrono::DateTime<Utc>, extra: &str) -> std::path::PathBuf {
    let c = credentials();
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "tenant_id: {}\nclient_id: {}\nclient_secret: ${{E2E_SECRET}}\nlogin_endpoint: {url}\ngraph_endpoint: {url}\n\
             tables: [DeviceProcessEvents]\nstart_time: {}\ndelay: 1m\nmax_window: 20m\nmax_rows_per_query: 7\n\
             state_dir: {}\nlog_level: debug\n{extra}",
            c.tenant_id,
            c.client_id,
            iso(start - Duration::minutes(1)),
            dir.join("state").display(),
            url = server.url(),
        ),
    )
    .unwrap();
    path
}

/// Points an existing configuration at another replay endpoint.
fn repoint(config: &Path, server: &ReplayServer) {
    let text = std::fs::read_to_string(config).unwrap();
    let old_url = text
        .lines()
        .find(|l| l.starts_with("login_endpoint:"))
        .unwrap()
        .trim_start_matches("login_endpoint: ")
        .to_string();
    std::fs::write(config, text.replace(&old_url, &server.url())).unwrap();
}

fn run_once(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--config"])
        .arg(config)
        .arg("--once")
        .env("E2E_SECRET", SECRET)
        .output()
        .unwrap()
}

fn events(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn run_once_emits_each_row_once_and_a_second_run_emits_nothing() {
    let (dataset, rows, first) = dataset();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, first, "");

    let out = run_once(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stderr}", out.status);
    assert!(!stderr.contains(SECRET) && !String::from_utf8_lossy(&out.stdout).contains(SECRET));
    let got = events(&out);

    // None lost, none repeated: the ReportIds out are exactly the ReportIds in.
    let expected: BTreeSet<String> = rows.iter().map(|r| r["ReportId"].to_string()).collect();
    let emitted: Vec<String> = got
        .iter()
        .map(|e| e["metadata"]["original_event_uid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(emitted.len(), rows.len(), "one event per row");
    assert_eq!(emitted.iter().cloned().collect::<BTreeSet<_>>(), expected);
    let uids: HashSet<&str> = got.iter().map(|e| e["metadata"]["uid"].as_str().unwrap()).collect();
    assert_eq!(uids.len(), rows.len(), "metadata.uid is unique per row");

    // The windows were split: 7 rows per query cannot hold 20 minutes here.
    let queries = server.queries();
    assert!(queries.len() > 6, "expected split windows, got {} queries", queries.len());
    assert!(
        queries
            .iter()
            .all(|q| q.starts_with("DeviceProcessEvents | where Timestamp >= datetime("))
    );

    // Exact fields of one event.
    let e = got
        .iter()
        .find(|e| e["metadata"]["original_event_uid"] == json!(((1u64 << 53) + 1).to_string()))
        .unwrap();
    assert_eq!(e["class_uid"], 1007);
    assert_eq!(e["type_uid"], 100701);
    assert_eq!(e["activity_name"], "Launch");
    assert_eq!(e["metadata"]["original_time"], rows[0]["Timestamp"]);
    assert_eq!(e["metadata"]["tenant_uid"], credentials().tenant_id);
    assert_eq!(e["metadata"]["log_name"], "DeviceProcessEvents");
    assert_eq!(e["process"]["pid"], rows[0]["ProcessId"]);
    assert_eq!(e["actor"]["process"]["name"], "services.exe");
    assert_eq!(e["actor"]["process"]["parent_process"]["name"], "wininit.exe");
    assert_eq!(
        e["process"]["parent_process"]["pid"], 812,
        "the initiating process is copied as the parent"
    );
    assert_eq!(e["process"]["user"]["name"], "svc-backup");
    assert_eq!(e["actor"]["user"]["name"], "system");
    assert_eq!(e["unmapped"]["ColumnAddedNextYear"], "kept");
    assert_eq!(e["unmapped"]["AdditionalFields"]["ProcessStartKey"], 123);
    let ms = chrono::DateTime::parse_from_rfc3339(rows[0]["Timestamp"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert_eq!(e["time"], ms);

    ocsf_schema::assert_all_valid("e2e schema validation", &got);

    // The compiled component was cached for the next start.
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("state/cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(cached.iter().any(|n| n.to_string_lossy().ends_with(".cwasm")), "{cached:?}");

    // Same state, same data: nothing new.
    let again = run_once(&config);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(events(&again).len(), 0, "a second run re-emitted rows");
}

/// Six hours behind, the first events out are the current hour's; a run
/// stopped in the middle of the history after it (a 403 on a later query)
/// leaves a checkpoint with the hour collected ahead, and the next run
/// collects the rest of the history: every row once over both runs.
#[test]
fn a_backfill_delivers_the_current_hour_first_and_resumes_its_history_after_a_stop() {
    let now = Utc::now();
    let first = now - Duration::hours(6);
    let rows: Vec<Row> = (0..48u64)
        .map(|i| process_row(&iso(first + Duration::seconds(i as i64 * 449)), (i % 3) as u32, 7_000 + i))
        .collect();
    let mut dataset = Dataset::default();
    dataset.add("DeviceProcessEvents", rows.clone()).unwrap();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, first, "max_calls_per_minute: 1000\n");
    // Four answers, then a permission error that ends `--once`.
    let forbidden = Fault {
        status: 403,
        body: json!({"error": {"code": "Forbidden", "message": "Missing role permissions on the request."}}).to_string(),
        retry_after: None,
    };
    server.schedule([None, None, None, None, Some(forbidden)]);
    let stopped = run_once(&config);
    assert_eq!(stopped.status.code(), Some(2), "{}", String::from_utf8_lossy(&stopped.stderr));
    let early = events(&stopped);
    assert!(!early.is_empty(), "{}", String::from_utf8_lossy(&stopped.stderr));
    let hour_ago = (now - Duration::minutes(62)).timestamp_millis();
    assert!(
        early[0]["time"].as_i64().unwrap() >= hour_ago,
        "the first event is the current hour's: {}",
        early[0]["metadata"]["original_time"]
    );
    let saved = std::fs::read_to_string(dir.path().join("state/checkpoint.json")).unwrap();
    assert!(saved.contains(r#""ahead":"#) && saved.contains(r#"{"version":2,"#), "{saved}");
    let queries = server.queries();
    let from = queries[0]
        .split("Timestamp >= datetime(")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap();
    let from = chrono::DateTime::parse_from_rfc3339(from).unwrap();
    assert!(
        from > now - Duration::minutes(62) && from < now - Duration::minutes(60),
        "the first query is the live hour: {}",
        queries[0]
    );

    let finished = run_once(&config);
    assert!(finished.status.success(), "{}", String::from_utf8_lossy(&finished.stderr));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in early.iter().chain(&events(&finished)) {
        *counts
            .entry(e["metadata"]["original_event_uid"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let expected: BTreeSet<String> = rows.iter().map(|r| r["ReportId"].as_u64().unwrap().to_string()).collect();
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), expected, "every row");
    assert!(counts.values().all(|n| *n == 1), "each once: {counts:?}");
    let saved = std::fs::read_to_string(dir.path().join("state/checkpoint.json")).unwrap();
    assert!(
        saved.contains(r#"{"version":1,"#),
        "caught up, readable by earlier versions: {saved}"
    );
}

/// The replay endpoint with the usual rows, whose app has another secret
/// than the one the configuration gives, and the first row's time.
fn expecting_another_secret() -> (ReplayServer, chrono::DateTime<Utc>) {
    let (dataset, _, first) = dataset();
    let credentials = Credentials {
        client_secret: "the-real-one".into(),
        ..credentials()
    };
    (ReplayServer::start(dataset, credentials).unwrap(), first)
}

#[test]
fn a_wrong_secret_exits_2_with_advice_and_without_the_secret() {
    let (server, first) = expecting_another_secret();
    let dir = tempfile::tempdir().unwrap();
    let out = run_once(&write_config(dir.path(), &server, first, ""));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("AADSTS7000215") && stderr.contains("instead of its Value"),
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET), "the secret leaked: {stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        !dir.path().join("state/checkpoint.json").exists(),
        "nothing delivered, nothing saved"
    );
}

#[test]
fn plain_http_to_a_non_loopback_host_is_refused_before_any_request() {
    let (dataset, _, first) = dataset();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, first, "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("graph_endpoint: {}", server.url()),
        "graph_endpoint: http://graph.example.com",
    );
    std::fs::write(&config, text).unwrap();
    let out = run_once(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("http://graph.example.com") && stderr.contains("loopback"),
        "{stderr}"
    );
    assert_eq!(server.token_requests(), 0);
}

#[test]
fn unknown_keys_exit_2_and_name_the_key() {
    let (dataset, _, first) = dataset();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, first, "tabels: [DeviceEvents]\n");
    let out = run_once(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown field `tabels`"), "{stderr}");
    // Where it stands, what was meant, and the host's own keys.
    let text = std::fs::read_to_string(&config).unwrap();
    let line = text.lines().position(|l| l.starts_with("tabels:")).unwrap() + 1;
    assert!(
        stderr.contains(&format!("in {}, line {line} column 1: ", config.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("did you mean `tables`?") && stderr.contains("`state_dir`"),
        "{stderr}"
    );
    // A value of the wrong form names its key and line too.
    let config = write_config(dir.path(), &server, first, "max_window: 5\n");
    let stderr = String::from_utf8_lossy(&run_once(&config).stderr).to_string();
    assert!(stderr.contains("`max_window`: invalid type: integer `5`"), "{stderr}");
    assert!(stderr.contains(", line ") && !stderr.contains("line 1 column 2"), "{stderr}");
}

#[test]
fn the_demo_prints_valid_process_activity() {
    let out = Command::new(env!("CARGO_BIN_EXE_defender-ocsf")).arg("demo").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = events(&out);
    assert_eq!(got.len(), 5, "the demo replays five rows");
    assert!(got.iter().all(|e| e["class_uid"] == 1007));
    assert_eq!(got.iter().filter(|e| e["activity_name"] == "Open").count(), 1);
    ocsf_schema::assert_all_valid("demo schema validation", &got);
}

#[test]
fn an_unlicensed_table_is_reported_once_and_the_others_are_collected() {
    let (dataset, rows, first) = dataset();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, first, "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("tables: [DeviceProcessEvents]", "tables: [EmailEvents, DeviceProcessEvents]");
    std::fs::write(&config, text).unwrap();
    let out = run_once(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(events(&out).len(), rows.len(), "DeviceProcessEvents is collected in full");
    assert_eq!(stderr.matches("EmailEvents is not available").count(), 1, "{stderr}");
    assert!(
        stderr.contains("Defender for Office 365"),
        "the message says what license is missing: {stderr}"
    );
    assert_eq!(
        server.queries().iter().filter(|q| q.starts_with("EmailEvents")).count(),
        1,
        "not retried within the hour"
    );
}

fn incident(id: &str, updated: chrono::DateTime<Utc>, assigned: Option<&str>, status: &str) -> Row {
    json!({
        "@odata.type": "#microsoft.graph.security.incident", "id": id, "displayName": format!("Incident {id}"),
        "createdDateTime": iso(updated - Duration::hours(1)), "lastUpdateDateTime": iso(updated),
        "assignedTo": assigned, "status": status, "severity": "high", "classification": null,
        "tenantId": credentials().tenant_id, "alerts": [{"id": format!("da{id}"), "title": "An alert"}],
    })
    .as_object()
    .unwrap()
    .clone()
}

#[test]
fn incidents_and_alerts_are_paged_resumed_and_updates_emitted_once() {
    let now = Utc::now();
    let base = now - Duration::hours(3);
    let mut dataset = Dataset::default();
    // 120 incidents: more than two pages of 50. Ten share one update time.
    let incidents: Vec<Row> = (0..120)
        .map(|i| {
            incident(
                &format!("{i}"),
                base + Duration::seconds(if i < 10 { 30 } else { i * 60 }),
                if i % 2 == 0 { None } else { Some("kai@contoso.com") },
                "active",
            )
        })
        .collect();
    dataset.add_security("incidents", incidents);
    dataset.add_security(
        "alerts_v2",
        [json!({"id": "da1", "title": "Hidden file", "status": "new", "severity": "low", "createdDateTime": iso(base), "lastUpdateDateTime": iso(base + Duration::minutes(5))})
            .as_object()
            .unwrap()
            .clone()],
    );
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, base, "incidents: true\nalerts: true\n");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("tables: [DeviceProcessEvents]", "tables: [AlertInfo]");
    std::fs::write(&config, text).unwrap();

    let out = run_once(&config);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = events(&out);
    let found: Vec<&Value> = got.iter().filter(|e| e["class_uid"] == 2005).collect();
    assert_eq!(found.len(), 120, "every incident once");
    assert_eq!(found.iter().filter(|e| e["assignee_group"]["name"] == "Unassigned").count(), 60);
    assert_eq!(got.iter().filter(|e| e["class_uid"] == 2004).count(), 1, "the alert");
    assert!(
        server.queries().iter().filter(|q| q.contains("/security/incidents")).count() >= 3,
        "three pages"
    );
    ocsf_schema::assert_all_valid("incident schema validation", &got);

    // Same data again: nothing new. The ten that share the newest time are not repeated either.
    let again = run_once(&config);
    assert_eq!(events(&again).len(), 0, "{}", String::from_utf8_lossy(&again.stderr));
    drop(server);

    // Incident 5 is resolved later: exactly that update comes out, as a Close.
    let mut dataset = Dataset::default();
    let mut updated: Vec<Row> = (0..120)
        .map(|i| {
            incident(
                &format!("{i}"),
                base + Duration::seconds(if i < 10 { 30 } else { i * 60 }),
                None,
                "active",
            )
        })
        .collect();
    updated[5] = incident("5", now - Duration::minutes(2), Some("kai@contoso.com"), "resolved");
    dataset.add_security("incidents", updated);
    dataset.add_security("alerts_v2", []);
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    repoint(&config, &server);
    let third = events(&run_once(&config));
    assert_eq!(third.len(), 1, "{third:?}");
    assert_eq!(third[0]["finding_info_list"][0]["uid"], "da5");
    assert_eq!(
        (third[0]["activity_id"].clone(), third[0]["status_id"].clone()),
        (json!(3), json!(4))
    );
}

#[test]
fn alert_evidence_is_folded_into_its_alert_and_orphans_stand_alone() {
    let now = Utc::now();
    let t = iso(now - Duration::hours(1));
    let row = |v: Value| v.as_object().unwrap().clone();
    let mut dataset = Dataset::default();
    dataset
        .add(
            "AlertInfo",
            [row(
                json!({"Timestamp": t, "AlertId": "da1", "Title": "Mimikatz", "Severity": "High", "Category": "CredentialAccess"}),
            )],
        )
        .unwrap();
    dataset
        .add(
            "AlertEvidence",
            [
                row(json!({"Timestamp": t, "AlertId": "da1", "EntityType": "Machine", "DeviceId": "d1", "DeviceName": "pc1", "EvidenceRole": "Impacted"})),
                row(json!({"Timestamp": t, "AlertId": "da1", "EntityType": "File", "FileName": "m.exe", "SHA1": "ab", "EvidenceRole": "Related"})),
                row(json!({"Timestamp": t, "AlertId": "da2", "EntityType": "User", "AccountName": "eve", "AccountSid": "S-1-5-21-7"})),
            ],
        )
        .unwrap();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, now - Duration::hours(2), "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("tables: [DeviceProcessEvents]", "tables: [AlertInfo, AlertEvidence]");
    std::fs::write(&config, text).unwrap();
    let out = run_once(&config);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = events(&out);
    assert_eq!(got.len(), 2, "one alert with its evidence, one orphan evidence: {got:#?}");
    let alert = got.iter().find(|e| e["finding_info"]["uid"] == "da1").unwrap();
    assert_eq!(alert["activity_id"], 1);
    assert_eq!(alert["evidences"].as_array().unwrap().len(), 2);
    assert_eq!(alert["evidences"][0]["device"]["uid"], "d1");
    assert_eq!(alert["unmapped"]["AlertEvidence"][1]["EvidenceRole"], "Related");
    let orphan = got.iter().find(|e| e["finding_info"]["uid"] == "da2").unwrap();
    assert_eq!(orphan["activity_id"], 2, "standalone evidence is an Update");
    assert_eq!(orphan["evidences"][0]["user"]["uid"], "S-1-5-21-7");
    ocsf_schema::assert_all_valid("alert join schema validation", &got);
    assert!(events(&run_once(&config)).is_empty(), "nothing twice");
}

#[test]
fn without_deprecated_classes_attachments_and_urls_fold_into_their_message() {
    let now = Utc::now();
    let t = iso(now - Duration::hours(1));
    let row = |v: Value| v.as_object().unwrap().clone();
    let mut dataset = Dataset::default();
    dataset
        .add("EmailEvents", [
            row(json!({"Timestamp": t, "NetworkMessageId": "m1", "SenderFromAddress": "eve@evil.example", "RecipientEmailAddress": "a@contoso.com", "EmailDirection": "Inbound", "ReportId": "r1"})),
            row(json!({"Timestamp": t, "NetworkMessageId": "m1", "SenderFromAddress": "eve@evil.example", "RecipientEmailAddress": "b@contoso.com", "EmailDirection": "Inbound", "ReportId": "r2"})),
        ])
        .unwrap();
    dataset
        .add("EmailAttachmentInfo", [row(json!({"Timestamp": t, "NetworkMessageId": "m1", "SenderFromAddress": "eve@evil.example", "RecipientEmailAddress": "a@contoso.com", "FileName": "x.docm", "SHA256": "ff"}))])
        .unwrap();
    dataset
        .add(
            "EmailUrlInfo",
            [
                row(json!({"Timestamp": t, "NetworkMessageId": "m1", "Url": "https://bad.example/a", "UrlLocation": "Body"})),
                row(json!({"Timestamp": t, "NetworkMessageId": "m-unknown", "Url": "https://other.example/"})),
            ],
        )
        .unwrap();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &server,
        now - Duration::hours(2),
        "ocsf:\n  deprecated_classes: false\n",
    );
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "tables: [DeviceProcessEvents]",
        "tables: [EmailEvents, EmailAttachmentInfo, EmailUrlInfo]",
    );
    std::fs::write(&config, text).unwrap();
    let out = run_once(&config);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = events(&out);
    let messages: Vec<&Value> = got.iter().filter(|e| e["class_uid"] == 4009).collect();
    assert_eq!(messages.len(), 2, "one event per recipient: {got:#?}");
    for m in &messages {
        assert_eq!(m["email"]["files"][0]["name"], "x.docm");
        assert_eq!(m["email"]["urls"][0]["url_string"], "https://bad.example/a");
        assert_eq!(m["unmapped"]["EmailUrlInfo"][0]["UrlLocation"], "Body");
    }
    let orphans: Vec<&Value> = got.iter().filter(|e| e["class_uid"] == 4012).collect();
    assert_eq!(orphans.len(), 1, "the URL of a message outside the window stands alone");
    ocsf_schema::assert_all_valid("email join schema validation", &got);
}

#[test]
fn a_row_that_arrives_late_is_emitted_once_by_the_next_cycle() {
    let (dataset, rows, first) = dataset();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, first, "overlap: 30m\n");
    let out = run_once(&config);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(events(&out).len(), rows.len());
    drop(server);

    // The same rows plus one that reached advanced hunting late: its
    // timestamp is five minutes behind the watermark the first run reached.
    let mut dataset = Dataset::default();
    let late_ts = iso(Utc::now() - Duration::minutes(6));
    let mut all = rows.clone();
    all.push(process_row(&late_ts, 9, 424242));
    dataset.add("DeviceProcessEvents", all).unwrap();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    repoint(&config, &server);
    let out = run_once(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let got = events(&out);
    assert_eq!(got.len(), 1, "only the late row: {got:#?}");
    assert_eq!(got[0]["metadata"]["original_event_uid"], "424242");
    assert!(stderr.contains("late rows of DeviceProcessEvents"), "{stderr}");

    // And never again.
    assert!(events(&run_once(&config)).is_empty());
}

fn check(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["check", "--config"])
        .arg(config)
        .env("E2E_SECRET", SECRET)
        .output()
        .unwrap()
}

#[test]
fn check_passes_each_step_and_names_what_fails() {
    let (mut dataset, _, first) = dataset();
    dataset.add("GraphApiAuditEvents", Vec::<Row>::new()).unwrap();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, first, "");
    let out = check(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for step in [
        "PASS  configuration",
        "PASS  state directory",
        "PASS  output: events go to stdout",
        "PASS  credentials: token from",
        "PASS  advanced hunting: DeviceProcessEvents",
        // A licensed table not collected: whether the tenant has it, never a failure.
        "PASS  optional table: CloudAppEvents: not in this tenant (it needs Microsoft Defender for Cloud Apps",
        "PASS  optional table: EntraIdSignInEvents: not in this tenant (it needs Microsoft Entra ID P2)",
        "PASS  optional table: GraphApiAuditEvents: this tenant has it; add it to `tables` to collect it",
        "PASS  optional table: CloudProcessEvents: not in this tenant (it needs Microsoft Defender for Cloud integrated with Defender XDR)",
        "PASS  optional table: OAuthAppInfo: not in this tenant (it needs Microsoft Defender for Cloud Apps with app governance)",
    ] {
        assert!(stdout.contains(step), "missing `{step}` in:\n{stdout}");
    }
    assert!(
        stdout.contains(&format!(
            "All checks passed. Start collecting with: defender-ocsf run --config {}",
            config.display()
        )),
        "the success line names the real file: {stdout}"
    );
    assert!(
        server.queries().iter().all(|q| q.ends_with("| take 0")),
        "check collects nothing: {:?}",
        server.queries()
    );
    assert!(!dir.path().join("state/checkpoint.json").exists());

    // An unlicensed table is a warning with the reason, and a `tables:` line
    // of those that answered is ready to paste; the others pass.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("tables: [DeviceProcessEvents]", "tables: [DeviceProcessEvents, EmailEvents]");
    std::fs::write(&config, text).unwrap();
    let out = check(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "warnings allowed: {stdout}");
    assert!(
        stdout.contains("WARN  advanced hunting: EmailEvents") && stdout.contains("Defender for Office 365"),
        "{stdout}"
    );
    assert!(stdout.contains("PASS  advanced hunting: DeviceProcessEvents"), "{stdout}");
    assert!(
        stdout.contains("PASS  tables that answered: tables: [DeviceProcessEvents]\n"),
        "{stdout}"
    );
    assert!(stdout.contains("All checks passed (1 warnings above)"), "{stdout}");

    // One 429 is retried before it counts.
    server.fail_next([Fault::throttled(1)]);
    let out = check(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("PASS  advanced hunting: DeviceProcessEvents"), "{stdout}");

    // The output is tested too: a receiver that is not there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let with_output = dir.path().join("with-output.yaml");
    std::fs::write(
        &with_output,
        std::fs::read_to_string(&config).unwrap() + &format!("output: {{type: http, url: 'http://127.0.0.1:{closed}/'}}\n"),
    )
    .unwrap();
    let out = check(&with_output);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  output: ") && stdout.contains("connection refused"),
        "{stdout}"
    );

    // A wrong secret stops at the token step, with the advice.
    drop(server);
    let (dataset, _, _) = self::dataset();
    let server = ReplayServer::start(
        dataset,
        Credentials {
            client_secret: "other".into(),
            ..credentials()
        },
    )
    .unwrap();
    repoint(&config, &server);
    let out = check(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "credentials to fix, as `run` says: {stdout}");
    assert!(
        stdout.contains("FAIL  credentials: token from") && stdout.contains("AADSTS7000215"),
        "{stdout}"
    );
    assert!(!stdout.contains("advanced hunting:"), "no queries without a token: {stdout}");
    assert!(!stdout.contains(SECRET));

    // A configuration error is exit code 2.
    std::fs::write(&config, std::fs::read_to_string(&config).unwrap() + "bogus_key: 1\n").unwrap();
    let out = check(&config);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL  configuration"));
}

#[test]
fn the_configuration_can_come_from_an_environment_variable_and_sets() {
    let (dataset, rows, first) = dataset();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(write_config(dir.path(), &server, first, ""))
        .unwrap()
        .replace("tables: [DeviceProcessEvents]", "tables: [EmailEvents]");
    let out = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args([
            "run",
            "--once",
            "--config-env",
            "INLINE_CONFIG",
            "--set",
            "tables=[DeviceProcessEvents]",
            "--set",
            "log_level=warn",
        ])
        .env("INLINE_CONFIG", yaml)
        .env("E2E_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(events(&out).len(), rows.len(), "--set replaced the table list");
    let missing = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--config-env", "NOT_SET_ANYWHERE"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NOT_SET_ANYWHERE is not set"));
}

/// `defender-ocsf map` maps saved rows through the embedded component:
/// every sample row of every table, one row per line, to valid OCSF; a bad
/// row is named and makes the exit code 1 without losing its neighbours.
#[test]
fn map_turns_saved_rows_into_valid_events_and_names_the_rows_it_cannot_map() {
    let Some(shared) = ocsf_schema::shared_or_skip("map over the shared samples") else {
        return;
    };
    let dir = shared.join("samples").join("normalized");
    let mut events = Vec::new();
    let tables = [
        "AlertInfo",
        "AlertEvidence",
        "DeviceProcessEvents",
        "DeviceNetworkEvents",
        "DeviceFileEvents",
        "DeviceRegistryEvents",
        "DeviceLogonEvents",
        "DeviceImageLoadEvents",
        "DeviceEvents",
        "DeviceInfo",
        "DeviceNetworkInfo",
        "DeviceFileCertificateInfo",
        "IdentityLogonEvents",
        "IdentityQueryEvents",
        "IdentityDirectoryEvents",
        "EmailEvents",
        "EmailAttachmentInfo",
        "EmailUrlInfo",
        "EmailPostDeliveryEvents",
        "UrlClickEvents",
    ];
    for table in tables {
        let path = dir.join(format!("{table}.ndjson"));
        let rows = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        let out = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
            .args(["map", "--table", table, "--set", "tenant_id=t-1"])
            .arg(&path)
            .output()
            .unwrap();
        // Every sample row maps: one without a Timestamp takes the time of
        // mapping, as in collection (docs/mapping.md, decision 11).
        let stderr = String::from_utf8_lossy(&out.stderr);
        let rejected = stderr.lines().filter(|l| l.contains("row not mapped")).collect::<Vec<_>>();
        assert!(rejected.is_empty(), "{table}: {stderr}");
        assert_eq!(out.status.code(), Some(0), "{table}: {stderr}");
        let mapped: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            mapped.len() + rejected.len(),
            rows,
            "{table}: one event per row, or its name on stderr"
        );
        assert!(
            mapped.iter().all(|e| e["metadata"]["tenant_uid"] == "t-1"),
            "{table}: the source's settings given with --set are used"
        );
        events.extend(mapped);
    }
    assert!(events.len() > 20, "the samples were read");
    ocsf_schema::assert_all_valid("map schema validation", &events);

    let input = "{\"Timestamp\":\"2025-03-01T10:00:00Z\",\"DeviceId\":\"d\",\"ActionType\":\"ProcessCreated\",\"ReportId\":1,\"ProcessId\":5}\n\
                 {\"DeviceId\":\"d\",\"ActionType\":\"ProcessCreated\",\"ReportId\":2,\"ProcessId\":6}\n\
                 {\"Timestamp\":\"2024-03-26T09:39:50.7688641Z\",\"FileName\":\"cmd.exe\",\"InitiatingProcessFileName\":\"powershell.exe\"}\n";
    let mut child = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["map", "--table", "DeviceProcessEvents"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let mapped: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(mapped.len(), 2, "the good rows are kept");
    assert_eq!(mapped[1]["metadata"]["labels"], serde_json::json!(["time-is-collection-time"]));
    // A row projected to a few columns, as in Microsoft's examples, is
    // named with what OCSF needs and it lacks.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("requires `device`") && err.contains("DeviceId") && err.contains("1 rows not mapped"),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["map", "--table", "NoSuchTable", "/dev/null"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown table is a usage error");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DeviceProcessEvents"),
        "it lists the tables"
    );
}

/// Rows of three low-volume tables for `union_tables`, `n` of each, the
/// last `minutes_ago` before now.
fn low_volume_rows(n: usize, minutes_ago: i64) -> Vec<(&'static str, Row)> {
    let base = Utc::now() - Duration::minutes(minutes_ago);
    let mut rows = Vec::new();
    for i in 0..n {
        // Rows of different tables share timestamps.
        let ts = iso(base - Duration::minutes(7 * (n - 1 - i) as i64));
        let obj = |v: Value| v.as_object().unwrap().clone();
        rows.push(("UrlClickEvents", obj(json!({"Timestamp": ts, "ActionType": "ClickAllowed", "Url": format!("https://example.com/{i}"), "AccountUpn": "a@example.com", "NetworkMessageId": format!("m{i}"), "ReportId": format!("u{i}")}))));
        rows.push(("IdentityLogonEvents", obj(json!({"Timestamp": ts, "ActionType": "LogonSuccess", "AccountUpn": "a@example.com", "DeviceName": "dc1", "Application": "Active Directory", "Protocol": "Kerberos", "ReportId": format!("l{i}")}))));
        rows.push(("IdentityDirectoryEvents", obj(json!({"Timestamp": ts, "ActionType": "Account Password changed", "AccountUpn": "a@example.com", "Application": "Active Directory", "ReportId": format!("d{i}")}))));
    }
    rows
}

fn union_dataset(rows: &[(&'static str, Row)]) -> Dataset {
    let mut d = Dataset::default();
    for table in ["UrlClickEvents", "IdentityLogonEvents", "IdentityDirectoryEvents"] {
        d.add(table, rows.iter().filter(|(t, _)| *t == table).map(|(_, r)| r.clone()))
            .unwrap();
    }
    d
}

/// A configuration that collects the tables of `union` (a YAML list) in
/// one union query.
fn union_config(dir: &Path, server: &ReplayServer, union: &str) -> std::path::PathBuf {
    let config = write_config(dir, server, Utc::now() - Duration::hours(1), "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("tables: [DeviceProcessEvents]", &format!("tables: {union}\nunion_tables: {union}"));
    std::fs::write(&config, text).unwrap();
    config
}

/// Events per `metadata.log_name`.
fn per_table(out: &Output) -> BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for e in events(out) {
        *counts.entry(e["metadata"]["log_name"].as_str().unwrap().to_string()).or_default() += 1;
    }
    counts
}

#[test]
fn union_tables_share_one_query_and_each_row_is_mapped_by_its_own_table_once() {
    let rows = low_volume_rows(6, 3);
    let server = ReplayServer::start(union_dataset(&rows), credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = union_config(
        dir.path(),
        &server,
        "[UrlClickEvents, IdentityLogonEvents, IdentityDirectoryEvents]",
    );

    let out = run_once(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let expected = std::collections::BTreeMap::from([
        ("IdentityDirectoryEvents".to_string(), 6),
        ("IdentityLogonEvents".to_string(), 6),
        ("UrlClickEvents".to_string(), 6),
    ]);
    assert_eq!(per_table(&out), expected, "{stderr}");
    ocsf_schema::assert_all_valid("union schema validation", &events(&out));
    let queries = server.queries();
    assert!(
        queries
            .iter()
            .all(|q| q.starts_with("union withsource=SourceTable UrlClickEvents, IdentityLogonEvents, IdentityDirectoryEvents | where")),
        "{queries:#?}"
    );
    for e in events(&out) {
        assert!(e["unmapped"].get("SourceTable").is_none(), "the union's column is not data: {e}");
        // Each row went through its own table's mapping.
        let class = e["class_uid"].as_u64().unwrap();
        match e["metadata"]["log_name"].as_str().unwrap() {
            "UrlClickEvents" => assert_eq!(class, 4012, "{e}"),
            "IdentityLogonEvents" => assert_eq!(class, 3002, "{e}"),
            _ => assert_eq!(e["category_uid"], 3, "{e}"),
        }
    }
    drop(server);

    // A row of one of them arrives late: the next run emits it alone.
    let mut later = rows.clone();
    let late = json!({"Timestamp": iso(Utc::now() - Duration::minutes(5)), "ActionType": "LogonFailed", "AccountUpn": "b@example.com", "DeviceName": "dc2", "Application": "Active Directory", "Protocol": "Ntlm", "ReportId": "late"});
    later.push(("IdentityLogonEvents", late.as_object().unwrap().clone()));
    let server = ReplayServer::start(union_dataset(&later), credentials()).unwrap();
    repoint(&config, &server);
    let out = run_once(&config);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = events(&out);
    assert_eq!(got.len(), 1, "only the late row: {got:#?}");
    assert_eq!(got[0]["metadata"]["log_name"], "IdentityLogonEvents");
}

/// `ReportId` is a `long` in DeviceRegistryEvents and a `string` in
/// UrlClickEvents, so Kusto's union of the two answers `ReportId_long` and
/// `ReportId_string` (the replay does as Kusto does). Every row keeps its
/// key: two registry rows of one device at one instant stay two events
/// with their own `metadata.uid`.
#[test]
fn a_union_of_tables_whose_columns_differ_in_type_keeps_each_rows_key() {
    let ts = iso(Utc::now() - Duration::minutes(10));
    let obj = |v: Value| v.as_object().unwrap().clone();
    let registry = |report_id: i64, value: &str| {
        obj(
            json!({"Timestamp": ts, "DeviceId": "d1", "DeviceName": "pc1", "ActionType": "RegistryValueSet",
                   "RegistryKey": "HKEY_LOCAL_MACHINE\\SOFTWARE\\Contoso", "RegistryValueName": value, "RegistryValueData": "1",
                   "InitiatingProcessId": 4, "InitiatingProcessFileName": "reg.exe", "ReportId": report_id}),
        )
    };
    let mut dataset = Dataset::default();
    dataset
        .add("DeviceRegistryEvents", [registry(101, "a"), registry(102, "b")])
        .unwrap();
    let click = obj(
        json!({"Timestamp": ts, "ActionType": "ClickAllowed", "Url": "https://example.com/x", "AccountUpn": "a@example.com",
                           "NetworkMessageId": "m1", "ReportId": "u1"}),
    );
    dataset.add("UrlClickEvents", [click]).unwrap();
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = union_config(dir.path(), &server, "[DeviceRegistryEvents, UrlClickEvents]");

    let out = run_once(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let got = events(&out);
    ocsf_schema::assert_all_valid("union with renamed columns", &got);
    let mut report_ids: Vec<String> = got
        .iter()
        .map(|e| e["metadata"]["original_event_uid"].as_str().unwrap_or("").to_string())
        .collect();
    report_ids.sort();
    assert_eq!(report_ids, ["101", "102", "u1"], "{stderr}");
    let uids: std::collections::BTreeSet<&str> = got.iter().map(|e| e["metadata"]["uid"].as_str().unwrap()).collect();
    assert_eq!(uids.len(), 3, "each row its own uid");
    for e in &got {
        let unmapped = e["unmapped"]
            .as_object()
            .map(|u| u.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        assert!(unmapped.iter().all(|k| !k.starts_with("ReportId")), "{e}");
    }
    assert!(
        server
            .queries()
            .iter()
            .any(|q| q.starts_with("union withsource=SourceTable DeviceRegistryEvents, UrlClickEvents")),
        "{:#?}",
        server.queries()
    );
}

#[test]
fn a_union_with_an_unavailable_table_falls_back_to_a_query_per_table() {
    let rows = low_volume_rows(3, 3);
    let server = ReplayServer::start(union_dataset(&rows), credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // IdentityQueryEvents is not in this tenant.
    let config = union_config(
        dir.path(),
        &server,
        "[UrlClickEvents, IdentityQueryEvents, IdentityLogonEvents, IdentityDirectoryEvents]",
    );
    let out = run_once(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("the union of `union_tables` failed"), "{stderr}");
    assert!(stderr.contains("IdentityQueryEvents is not available"), "{stderr}");
    let expected = std::collections::BTreeMap::from([
        ("IdentityDirectoryEvents".to_string(), 3),
        ("IdentityLogonEvents".to_string(), 3),
        ("UrlClickEvents".to_string(), 3),
    ]);
    assert_eq!(per_table(&out), expected, "{stderr}");
    assert!(server.queries().iter().any(|q| q.starts_with("UrlClickEvents | where")));
}

#[test]
fn help_opens_with_what_the_program_is() {
    for flag in ["--help", "-h"] {
        let out = Command::new(env!("CARGO_BIN_EXE_defender-ocsf")).arg(flag).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(
            text.starts_with("Collects Microsoft Defender XDR advanced-hunting data and emits OCSF 1.8.0 events"),
            "{flag}: {text}"
        );
    }
}

/// Logs are JSON lines whose fields are fields (never `"fields":"k=v"`),
/// `RUST_LOG=debug` shows each query of the collector without flooding the
/// log with wasmtime's, and `demo` logs as `run` does.
#[test]
fn logs_are_json_with_real_fields_and_debug_shows_each_query() {
    let out = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .arg("demo")
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    for line in &lines {
        let target = line["target"].as_str().unwrap();
        assert!(
            target.starts_with("defender_ocsf") || target == "component",
            "a dependency's log: {line}"
        );
        assert!(line.get("fields").is_none() && line.get("component_fields").is_none(), "{line}");
        assert!(
            line["timestamp"].is_string() && line["level"].is_string() && line["message"].is_string(),
            "{line}"
        );
    }
    let query = lines.iter().find(|l| l["message"] == "query").unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(query["table"], "DeviceProcessEvents");
    assert_eq!(query["rows"], 5);
    assert!(
        query["duration_ms"].is_u64() && query["start"].is_string() && query["end"].is_string(),
        "{query}"
    );
    assert!(
        lines.iter().any(|l| l["message"].as_str().unwrap().starts_with("demo: done")),
        "{stderr}"
    );
}

/// The error that ends a run is printed once, as a JSON line, with exit 2
/// for a configuration to fix.
#[test]
fn a_fatal_error_is_one_json_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--config", "/nonexistent/defender.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert!(line["message"].as_str().unwrap().contains("/nonexistent/defender.yaml"), "{line}");
}

/// With `--stay-up` a wrong secret does not end the program, which a
/// supervisor such as Vector's exec source would restart at once: it logs
/// what to fix, asks again only after `--retry-interval`, and a SIGTERM still
/// stops it at once with exit 0.
#[test]
fn stay_up_retries_a_wrong_secret_slowly_instead_of_exiting() {
    let (server, first) = expecting_another_secret();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, first, "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--stay-up", "--retry-interval", "2s", "--config"])
        .arg(&config)
        .env("E2E_SECRET", SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while server.token_requests() < 2 && started.elapsed() < std::time::Duration::from_secs(90) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(child.try_wait().unwrap().is_none(), "still running after the credential error");
    let requests = server.token_requests();
    let allowed = started.elapsed().as_secs() / 2 + 1;
    assert!(
        (2..=allowed as usize).contains(&requests),
        "tried again, at most once per 2 s attempt: {requests} requests in {:?}",
        started.elapsed()
    );
    let t0 = std::time::Instant::now();
    assert!(signal::sigterm(&child));
    let status = child.wait().unwrap();
    assert!(t0.elapsed() < std::time::Duration::from_secs(5), "a stop while waiting is prompt");
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("AADSTS7000215"), "{stderr}");
    assert!(stderr.contains("staying up (--stay-up)"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
}

/// The tables beyond the first twenty (#18, and Defender for Cloud's): each
/// is collected end to end when `tables` names it, BehaviorEntities folds into its BehaviorInfo,
/// and every event is valid OCSF with true captions.
#[test]
fn the_cloud_identity_and_sign_in_tables_are_collected_when_named() {
    let now = Utc::now();
    let t = iso(now - Duration::hours(1));
    // An entity table's rows are merged per window, and collected only up
    // to the last hour boundary the delay (1m) has passed, which is less
    // than 61 minutes ago whatever the minute the test runs at. From the
    // start (2h and 1m ago) its windows are 20 minutes long (`max_window`),
    // so these two times share one window before that boundary.
    let (earlier, later) = (iso(now - Duration::minutes(100)), iso(now - Duration::minutes(90)));
    let row = |v: Value| v.as_object().unwrap().clone();
    let oid = "aead923d-498b-4f64-a66c-2af91447a8b6";
    let mut dataset = Dataset::default();
    let tables: [(&str, Vec<Row>); 12] = [
        (
            "CloudAppEvents",
            vec![
                row(
                    json!({"Timestamp": t, "ReportId": "c1", "ActionType": "MailItemsAccessed", "Application": "Microsoft Exchange Online", "ApplicationId": 20893,
                       "AccountObjectId": oid, "IPAddress": "198.51.100.1", "RawEventData": "{\"UserId\":\"a@contoso.com\"}"}),
                ),
                row(
                    json!({"Timestamp": t, "ReportId": "c2", "ActionType": "UserLoggedIn", "Application": "Office 365", "AccountObjectId": oid, "IPAddress": "198.51.100.2"}),
                ),
            ],
        ),
        (
            "IdentityInfo",
            vec![row(
                json!({"Timestamp": earlier, "ReportId": "i1", "AccountObjectId": oid, "AccountUpn": "a@contoso.com", "Type": "User", "IsAccountEnabled": true}),
            )],
        ),
        (
            "EntraIdSignInEvents",
            vec![row(
                json!({"Timestamp": t, "ReportId": "s1", "ErrorCode": 0, "Application": "Teams", "AccountObjectId": oid, "AccountUpn": "a@contoso.com", "IPAddress": "198.51.100.3"}),
            )],
        ),
        (
            "AADSignInEventsBeta",
            vec![row(
                json!({"Timestamp": t, "ReportId": "s2", "ErrorCode": 50126, "Application": "Azure Portal", "AccountUpn": "b@contoso.com"}),
            )],
        ),
        (
            "EntraIdSpnSignInEvents",
            vec![row(
                json!({"Timestamp": t, "ReportId": "p1", "ErrorCode": 0, "ServicePrincipalName": "job", "ServicePrincipalId": "sp1", "ResourceDisplayName": "Microsoft Graph"}),
            )],
        ),
        (
            "AADSpnSignInEventsBeta",
            vec![row(
                json!({"Timestamp": t, "ReportId": "p2", "ErrorCode": 0, "ServicePrincipalName": "job2", "ResourceDisplayName": "Azure Storage"}),
            )],
        ),
        (
            "GraphApiAuditEvents",
            vec![row(
                json!({"Timestamp": t, "ReportId": "g1", "RequestId": "q1", "RequestMethod": "GET", "RequestUri": "https://graph.microsoft.com/v1.0/users", "ResponseStatusCode": "200", "AccountObjectId": oid, "IpAddress": "198.51.100.4"}),
            )],
        ),
        (
            "CloudAuditEvents",
            vec![row(
                json!({"Timestamp": t, "ReportId": "ca1", "ActionType": "CloudAuditEventOther", "DataSource": "Azure Kubernetes Service", "OperationName": "watch",
                   "AzureResourceId": "/subscriptions/s/x/aks1", "IPAddress": "1.1.1.1,2.2.2.2", "UserAgent": "controller/v0.0.0",
                   "RawEventData": {"AuditID": "k1", "ResponseStatus": {"code": 200}, "User": {"username": "system:serviceaccount:x"}}}),
            )],
        ),
        (
            "CloudProcessEvents",
            vec![row(
                json!({"Timestamp": t, "ReportId": "cp1", "ActionType": "ProcessCreated", "AzureResourceId": "/subscriptions/s/x/aks1", "FileName": "/usr/bin/bash",
                   "FolderPath": "/usr/bin/bash", "ProcessId": 123, "ProcessName": "bash", "ParentProcessId": "456", "InitiatingProcessId": "456", "AdditionalFields": {"uid": "0"}}),
            )],
        ),
        (
            // An entity table: the app's partial rows merge into its latest state.
            "OAuthAppInfo",
            vec![
                row(
                    json!({"Timestamp": earlier, "ReportId": "o1", "OAuthAppId": "app-1", "ServicePrincipalId": "sp-9", "AppName": "Contoso Expenses",
                       "AppStatus": "Enabled", "Permissions": "[{\"PermissionValue\":\"Mail.Read\",\"PermissionType\":\"Application\"}]", "RiskScore": 40}),
                ),
                row(
                    json!({"Timestamp": later, "ReportId": "o2", "OAuthAppId": "app-1", "ServicePrincipalId": "sp-9", "AppStatus": "Disabled"}),
                ),
            ],
        ),
        (
            "BehaviorInfo",
            vec![row(
                json!({"Timestamp": t, "BehaviorId": "b1", "ActionType": "MassDownload", "ServiceSource": "Microsoft Cloud App Security", "AccountUpn": "a@contoso.com"}),
            )],
        ),
        (
            "BehaviorEntities",
            vec![
                row(
                    json!({"Timestamp": t, "BehaviorId": "b1", "ActionType": "MassDownload", "EntityType": "Ip", "RemoteIP": "198.51.100.5", "EntityRole": "Related"}),
                ),
                row(
                    json!({"Timestamp": t, "BehaviorId": "b1", "ActionType": "MassDownload", "EntityType": "File", "FileName": "q3.xlsx", "EntityRole": "Impacted"}),
                ),
            ],
        ),
    ];
    let names: Vec<&str> = tables.iter().map(|(n, _)| *n).collect();
    for (name, rows) in tables {
        dataset.add(name, rows).unwrap();
    }
    let server = ReplayServer::start(dataset, credentials()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, now - Duration::hours(2), "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("tables: [DeviceProcessEvents]", &format!("tables: [{}]", names.join(", ")));
    std::fs::write(&config, text).unwrap();
    let out = run_once(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("could not be mapped"), "{stderr}");
    let expected = BTreeMap::from(
        [
            ("AADSignInEventsBeta", 1),
            ("AADSpnSignInEventsBeta", 1),
            ("BehaviorInfo", 1),
            ("CloudAppEvents", 2),
            ("CloudAuditEvents", 1),
            ("CloudProcessEvents", 1),
            ("EntraIdSignInEvents", 1),
            ("EntraIdSpnSignInEvents", 1),
            ("GraphApiAuditEvents", 1),
            ("IdentityInfo", 1),
            ("OAuthAppInfo", 1),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    assert_eq!(per_table(&out), expected, "the entity rows fold into their behavior: {stderr}");
    let got = events(&out);
    let behavior = got.iter().find(|e| e["metadata"]["log_name"] == "BehaviorInfo").unwrap();
    // The behavior's own account, then its two entity rows.
    assert_eq!(behavior["evidences"].as_array().map(Vec::len), Some(3), "{behavior}");
    let classes: BTreeMap<String, u64> = got
        .iter()
        .map(|e| {
            (
                format!(
                    "{} {}",
                    e["metadata"]["log_name"].as_str().unwrap(),
                    e["metadata"]["original_event_uid"]
                ),
                e["class_uid"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(classes["CloudAppEvents \"c1\""], 6003);
    assert_eq!(classes["CloudAppEvents \"c2\""], 3002);
    assert_eq!(classes["IdentityInfo \"i1\""], 5003);
    assert_eq!(classes["CloudAuditEvents \"ca1\""], 6003);
    assert_eq!(classes["CloudProcessEvents \"cp1\""], 1007);
    assert_eq!(classes["OAuthAppInfo \"o2\""], 5023);
    let app = got.iter().find(|e| e["metadata"]["log_name"] == "OAuthAppInfo").unwrap();
    let resource = &app["resources"][0];
    assert_eq!(
        (
            &resource["name"],
            &resource["data"]["AppStatus"],
            &resource["data"]["Permissions"][0]["PermissionValue"]
        ),
        (&json!("Contoso Expenses"), &json!("Disabled"), &json!("Mail.Read")),
        "the later row's status over the earlier row's name and permissions: {app}"
    );
    ocsf_schema::assert_all_valid("cloud and identity tables schema validation", &got);
    assert!(events(&run_once(&config)).is_empty(), "nothing twice");
}
