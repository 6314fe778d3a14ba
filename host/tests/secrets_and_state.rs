//! Secrets never appear in output, logs, state or metrics, on success or on
//! any error path; and broken or unwritable state is a clear error that
//! names the file, never a silent restart.

#[path = "support/signal.rs"]
mod signal;

use chrono::{Duration, Utc};
use defender_ocsf_replay::{Credentials, Dataset, Fault, ReplayServer};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

const SECRET: &str = "Zq8~known.SECRET_value-42";

fn credentials(secret: &str) -> Credentials {
    Credentials {
        tenant_id: "s-tenant".into(),
        client_id: "s-client".into(),
        client_secret: secret.into(),
    }
}

fn dataset() -> Dataset {
    let t = (Utc::now() - Duration::minutes(20)).to_rfc3339();
    let mut d = Dataset::default();
    d.add(
        "DeviceProcessEvents",
        [
            json!({"Timestamp": t, "DeviceId": "d", "ReportId": 1, "ProcessId": 1, "InitiatingProcessId": 1})
                .as_object()
                .unwrap()
                .clone(),
        ],
    )
    .unwrap();
    d
}

fn write_config(dir: &Path, server: &ReplayServer, extra: &str) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "tenant_id: s-tenant\nclient_id: s-client\nclient_secret: ${{S_SECRET}}\nlogin_endpoint: {u}\ngraph_endpoint: {u}\n\
             tables: [DeviceProcessEvents]\nstart_time: {}\ndelay: 1m\nstate_dir: {}\nlog_level: trace\nlog_file: {}\n{extra}",
            (Utc::now() - Duration::hours(1)).to_rfc3339(),
            dir.join("state").display(),
            dir.join("log.jsonl").display(),
            u = server.url()
        ),
    )
    .unwrap();
    path
}

fn run(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("S_SECRET", SECRET)
        .output()
        .unwrap()
}

/// Every byte the run left behind: stdout, stderr, the log file, the state directory.
fn everything(dir: &Path, out: &Output) -> String {
    let mut all = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    fn walk(p: &Path, all: &mut String) {
        if p.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), all);
            }
        } else if p.extension().is_none_or(|e| e != "cwasm") && p.file_name().is_none_or(|n| n != "config.yaml") {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(p).unwrap()));
        }
    }
    walk(dir, &mut all);
    all
}

#[test]
fn the_secret_never_leaks_on_success_or_on_any_error_path() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cases: Vec<(&str, Credentials, Vec<Fault>)> = vec![
        ("success", credentials(SECRET), vec![]),
        ("wrong secret", credentials("another"), vec![]),
        (
            "throttled then fine",
            credentials(SECRET),
            vec![Fault::throttled(1), Fault::cpu_quota("00:00:01")],
        ),
        (
            "forbidden",
            credentials(SECRET),
            vec![Fault {
                status: 403,
                body: r#"{"error":{"code":"Forbidden","message":"no roles"}}"#.into(),
                retry_after: None,
            }],
        ),
        ("server errors", credentials(SECRET), vec![Fault::unknown_error(); 7]),
    ];
    for (name, creds, faults) in cases {
        let server = ReplayServer::start(dataset(), creds).unwrap();
        server.fail_next(faults);
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &server, "");
        for args in [&["check"][..], &["run", "--once"][..]] {
            let out = run(args, &config);
            let log = std::fs::metadata(dir.path().join("log.jsonl")).map(|m| m.len()).unwrap_or(0);
            assert!(
                log < 2 << 20,
                "{name}: log_level trace must not log the libraries' internals ({log} bytes)"
            );
            let all = everything(dir.path(), &out);
            assert!(!all.contains(SECRET), "{name} / {args:?}: the secret leaked:\n{all}");
            assert!(!all.contains("Zq8"), "{name} / {args:?}: part of the secret leaked");
        }
    }
    // Metrics, while running.
    let server = ReplayServer::start(dataset(), credentials(SECRET)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, &format!("metrics_address: 127.0.0.1:{port}\n"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--config"])
        .arg(&config)
        .env("S_SECRET", SECRET)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::{BufRead, Read, Write};
    // Wait for the first event, so that there are metrics to read.
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("DeviceProcessEvents"), "{first}");
    let mut metrics = String::new();
    if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        s.read_to_string(&mut metrics).unwrap();
    }
    signal::sigterm(&child);
    child.wait().unwrap();
    assert!(metrics.contains("defender_ocsf_"), "{metrics}");
    assert!(!metrics.contains(SECRET));
}

#[test]
fn a_corrupt_checkpoint_is_an_error_naming_the_file_and_the_reset() {
    let server = ReplayServer::start(dataset(), credentials(SECRET)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, "");
    assert!(run(&["run", "--once"], &config).status.success());
    let file = dir.path().join("state/checkpoint.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, &text[..text.len() / 2]).unwrap(); // truncated
    let out = run(&["run", "--once"], &config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing re-collected from scratch");
    assert!(
        stderr.contains(&file.display().to_string()) && stderr.contains("corrupt") && stderr.contains("delete"),
        "{stderr}"
    );
    // Deleting it, as the message says, starts over from start_time.
    std::fs::remove_file(&file).unwrap();
    assert!(run(&["run", "--once"], &config).status.success());
}

#[test]
fn an_unwritable_state_directory_is_a_clear_error_and_nothing_is_lost() {
    let server = ReplayServer::start(dataset(), credentials(SECRET)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &server, "");
    // The state directory is a file: nothing can be written inside it.
    std::fs::write(dir.path().join("state"), "not a directory").unwrap();
    let out = run(&["run", "--once"], &config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a configuration to fix: {stderr}");
    // Checked before the first batch: nothing is delivered that a restart
    // would deliver again.
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    let state = dir.path().join("state").display().to_string();
    assert!(
        stderr.contains(&format!("the state directory {state} cannot be written")) && stderr.contains("the process runs as"),
        "{stderr}"
    );
    assert!(stderr.contains("install -d -o"), "says how to fix it: {stderr}");
    let checked = run(&["check"], &config);
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(
        report.contains("FAIL  state directory") && report.contains("cannot be written"),
        "{report}"
    );
    std::fs::remove_file(dir.path().join("state")).unwrap();
    let again = run(&["run", "--once"], &config);
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout).lines().count(), 1);
}
