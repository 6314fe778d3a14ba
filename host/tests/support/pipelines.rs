//! Test support for running the example pipelines in the real Vector and
//! Fluent Bit of `../shared/tools`: finding the binaries, rewriting an
//! example's paths and ports for this machine, the replayed rows, and
//! reading what the pipeline's sinks wrote.
//!
//! A test whose binary is absent prints SKIPPED and returns, except under CI
//! (`CI` set), where the absence is a failure, as with the OCSF schemas.
//!
//! Include it with `#[path]` next to `ocsf_schema.rs`, which finds `shared/`.

#![allow(dead_code)]

#[path = "signal.rs"]
pub mod signal;

use chrono::{Duration, Utc};
use defender_ocsf_replay::{Credentials, Dataset, ReplayServer};
use serde_json::{Value, json};
use serde_yaml_ng::Value as Yaml;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `../shared/tools/NAME`, or `None` after announcing that `test` is skipped.
pub fn tool_or_skip(name: &str, test: &str) -> Option<PathBuf> {
    let found = super::ocsf_schema::shared_dir()
        .map(|shared| shared.join("tools").join(name))
        .filter(|path| path.is_file());
    match found {
        Some(path) => Some(path),
        None if std::env::var_os("CI").is_some() => {
            panic!("{test}: ../shared/tools/{name} is missing, and CI guarantees it")
        }
        None => {
            eprintln!("\n*** SKIPPED {test}: ../shared/tools/{name} (the real pipeline binary) was not found ***\n");
            None
        }
    }
}

/// The credentials the replayed Graph accepts; the examples read them from
/// these environment variables.
pub fn credentials() -> Credentials {
    Credentials {
        tenant_id: "5c1e0d6b-0000-4000-8000-00000000e7a1".into(),
        client_id: "9a8b7c6d-0000-4000-8000-00000000e7a1".into(),
        client_secret: "pipeline-Secret~value.with_specials".into(),
    }
}

/// The environment a user gives the pipeline: `DEFENDER_TENANT_ID`,
/// `DEFENDER_CLIENT_ID`, `DEFENDER_CLIENT_SECRET`.
pub fn environment() -> Vec<(&'static str, String)> {
    let c = credentials();
    vec![
        ("DEFENDER_TENANT_ID", c.tenant_id),
        ("DEFENDER_CLIENT_ID", c.client_id),
        ("DEFENDER_CLIENT_SECRET", c.client_secret),
    ]
}

/// `n` DeviceProcessEvents rows spread over the last hour, old enough for
/// any `delay` up to 5 minutes, each with a distinct ReportId.
pub fn replay(n: usize) -> ReplayServer {
    replay_for(n, credentials())
}

/// As [`replay`], for a tenant of its own.
pub fn replay_for(n: usize, credentials: Credentials) -> ReplayServer {
    let mut dataset = Dataset::default();
    let first = Utc::now() - Duration::minutes(55);
    let rows = (0..n).map(|i| {
        let ts = (first + Duration::milliseconds(i as i64 * 2_900_000 / n.max(1) as i64)).to_rfc3339();
        json!({
            "Timestamp": ts, "DeviceId": format!("{:040x}", i % 7), "DeviceName": format!("host-{}.corp.example", i % 7),
            "ActionType": "ProcessCreated", "FileName": "cmd.exe", "FolderPath": "C:\\Windows\\System32\\cmd.exe",
            "ProcessId": 5000 + i, "ProcessCommandLine": format!("cmd.exe /c echo {i}"), "ProcessCreationTime": ts,
            "AccountName": "alice", "AccountDomain": "corp", "InitiatingProcessId": 812,
            "InitiatingProcessFileName": "explorer.exe", "ReportId": 1000 + i,
        })
        .as_object()
        .unwrap()
        .clone()
    });
    dataset.add("DeviceProcessEvents", rows).unwrap();
    ReplayServer::start(dataset, credentials).unwrap()
}

/// The collector settings that point an example at the replayed Graph
/// instead of Microsoft's, and make it poll quickly.
pub fn replay_settings(server: &ReplayServer) -> Vec<(&'static str, String)> {
    vec![
        ("login_endpoint", server.url()),
        ("graph_endpoint", server.url()),
        ("tables", "[DeviceProcessEvents]".into()),
        ("start_time", (Utc::now() - Duration::hours(1)).to_rfc3339()),
        ("delay", "1m".into()),
        ("poll_interval", "2s".into()),
    ]
}

/// Reads an example pipeline file.
pub fn example(relative: &str) -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../example-pipelines").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Moves every absolute path under `/etc`, `/var`, `/usr` or `/opt` in
/// `doc` below `root`, creating its directory (or its parent's, for a file),
/// so an example runs as written but in a test's own directory.
pub fn localize(doc: &mut Yaml, root: &Path) {
    match doc {
        Yaml::String(s) if ["/etc/", "/var/", "/usr/", "/opt/"].iter().any(|p| s.starts_with(p)) => {
            let moved = root.join(&s[1..]);
            let dir = if Path::new(s.as_str()).extension().is_some() || s.contains('%') {
                moved.parent().unwrap().to_path_buf()
            } else {
                moved.clone()
            };
            std::fs::create_dir_all(dir).unwrap();
            *s = moved.display().to_string();
        }
        Yaml::Sequence(items) => items.iter_mut().for_each(|v| localize(v, root)),
        Yaml::Mapping(map) => map.iter_mut().for_each(|(_, v)| localize(v, root)),
        _ => {}
    }
}

/// Replaces `from` with `to` in every string of `doc` (ports, addresses).
pub fn replace_in_strings(doc: &mut Yaml, from: &str, to: &str) {
    match doc {
        Yaml::String(s) => *s = s.replace(from, to),
        Yaml::Number(n) if n.to_string() == from => *doc = Yaml::Number(to.parse::<u64>().unwrap().into()),
        Yaml::Sequence(items) => items.iter_mut().for_each(|v| replace_in_strings(v, from, to)),
        Yaml::Mapping(map) => map.iter_mut().for_each(|(_, v)| replace_in_strings(v, from, to)),
        _ => {}
    }
}

/// A TCP port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn write_yaml(path: &Path, doc: &Yaml) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_yaml_ng::to_string(doc).unwrap()).unwrap();
}

/// A child process that is stopped when the test ends, however it ends.
pub struct Running {
    child: Child,
    pub log: PathBuf,
}

impl Running {
    /// Starts `command` with its stdout and stderr in `log`.
    pub fn start(mut command: Command, log: PathBuf) -> Running {
        let file = std::fs::File::create(&log).unwrap();
        command.stdin(Stdio::null()).stdout(file.try_clone().unwrap()).stderr(file);
        Running {
            child: command.spawn().unwrap(),
            log,
        }
    }

    /// Sends SIGTERM and waits for the exit, as a service manager would.
    pub fn stop(mut self) -> std::process::ExitStatus {
        match signal::terminate_within(&mut self.child, std::time::Duration::from_secs(60)) {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                panic!("{} did not stop within 60 s of SIGTERM:\n{}", self.child.id(), self.output());
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every complete JSON line in the files below `dir`, in file then line
/// order. A last line without its newline is still being written by the
/// pipeline's file output and is left for the next look; a line that never
/// completes shows up as a missing row in the caller's count.
pub fn events_in(dir: &Path) -> Vec<Value> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut events = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        for line in complete.lines().filter(|l| !l.trim().is_empty()) {
            let event: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: a line is not JSON ({e}): {line}", file.display()));
            events.push(event);
        }
    }
    events
}

/// Waits up to `seconds` for `ready`, checking every 200 ms.
pub fn wait_until(seconds: u64, mut ready: impl FnMut() -> bool) -> bool {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(seconds) {
        if ready() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    ready()
}

/// Starts a pipeline with `start(name)`, waits until `rows` events are in
/// `sink_dir`, stops it, checks them, then starts it again, waits until its
/// collector has polled `server` again, and checks that nothing was added.
/// Returns the first run's output.
pub fn run_then_restart(start: impl Fn(&str) -> Running, sink_dir: &Path, server: &ReplayServer, rows: usize) -> String {
    let first = start("first");
    let arrived = wait_until(120, || events_in(sink_dir).len() >= rows);
    let output = first.output();
    assert!(arrived, "not every row arrived:\n{output}");
    let status = first.stop();
    assert!(status.success(), "{status}\n{output}");
    assert_each_row_once(&events_in(sink_dir), rows, "first run");

    let queries = server.query_count();
    let second = start("second");
    assert!(
        wait_until(60, || server.query_count() > queries + 1),
        "the restarted collector polls again: {}",
        second.output()
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let status = second.stop();
    assert!(status.success(), "{status}");
    assert_each_row_once(&events_in(sink_dir), rows, "after a restart");
    output
}

/// Checks that `events` are the `n` replayed rows, each exactly once, as
/// OCSF that validates against its class schema.
pub fn assert_each_row_once(events: &[Value], n: usize, context: &str) {
    let ids: Vec<&str> = events
        .iter()
        .map(|e| {
            e["metadata"]["original_event_uid"]
                .as_str()
                .unwrap_or_else(|| panic!("{context}: no original_event_uid: {e}"))
        })
        .collect();
    let distinct: BTreeSet<&str> = ids.iter().copied().collect();
    let expected: BTreeSet<String> = (0..n).map(|i| (1000 + i).to_string()).collect();
    let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(distinct, expected, "{context}: every replayed row arrives");
    assert_eq!(ids.len(), n, "{context}: each row arrives once");
    super::ocsf_schema::assert_all_valid(context, events);
}
