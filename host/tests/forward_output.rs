//! The `forward` output against a stand-in for Fluent Bit's `in_forward`,
//! built to the Forward protocol v1: optional HELO/PING/PONG shared-key
//! handshake, PackedForward messages, and `{"ack": chunk}` answers, which it
//! can withhold (closing the connection instead), as a receiver that crashed
//! before buffering the chunk would.

#[path = "support/signal.rs"]
mod signal;

use chrono::{Duration, Utc};
use defender_ocsf_replay::{Credentials, Dataset, ReplayServer};
use rmpv::Value as Mp;
use serde_json::json;
use sha2::{Digest, Sha512};
use std::io::{BufReader, Write};
use std::process::Command;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Log {
    /// ReportIds of records in acknowledged messages, with repeats.
    acked: Vec<String>,
    /// Messages received, acknowledged or not.
    messages: usize,
    tags: Vec<String>,
    time_ext_types: Vec<i8>,
}

struct FakeFluentBit {
    address: String,
    log: Arc<Mutex<Log>>,
    /// How many of the next messages get no ack (the connection is closed instead).
    withhold: Arc<Mutex<usize>>,
}

/// A receiver that closes every connection right after accepting it, as
/// Fluent Bit's in_forward does during the handshake when the keys differ.
fn closing_receiver() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let helo = Mp::Array(vec![
                Mp::from("HELO"),
                Mp::Map(vec![(Mp::from("nonce"), Mp::Binary(b"n".to_vec()))]),
            ]);
            let _ = rmpv::encode::write_value(&mut stream, &helo);
            let _ = rmpv::decode::read_value(&mut stream);
        }
    });
    address
}

fn sha512_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn bytes(v: &Mp) -> Vec<u8> {
    match v {
        Mp::Binary(b) => b.clone(),
        Mp::String(s) => s.as_bytes().to_vec(),
        _ => Vec::new(),
    }
}

fn get<'a>(map: &'a Mp, key: &str) -> Option<&'a Mp> {
    map.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}

impl FakeFluentBit {
    fn start(shared_key: Option<&str>) -> FakeFluentBit {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Log::default()));
        let withhold = Arc::new(Mutex::new(0usize));
        let (l, w, key) = (log.clone(), withhold.clone(), shared_key.map(str::to_string));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if let Some(key) = &key {
                    let nonce = b"fake-nonce-123".to_vec();
                    let helo = Mp::Array(vec![
                        Mp::from("HELO"),
                        Mp::Map(vec![
                            (Mp::from("nonce"), Mp::Binary(nonce.clone())),
                            (Mp::from("auth"), Mp::Binary(vec![])),
                            (Mp::from("keepalive"), Mp::Boolean(true)),
                        ]),
                    ]);
                    rmpv::encode::write_value(&mut stream, &helo).unwrap();
                    let Ok(ping) = rmpv::decode::read_value(&mut reader) else {
                        continue;
                    };
                    let p = ping.as_array().unwrap();
                    // As Fluent Bit's in_forward: a salt that is not a str
                    // is refused by closing the connection, without a PONG.
                    if !p[2].is_str() {
                        continue;
                    }
                    let (host, salt, digest) = (bytes(&p[1]), bytes(&p[2]), bytes(&p[3]));
                    let ok = digest == sha512_hex(&[&salt, &host, &nonce, key.as_bytes()]).into_bytes();
                    let pong = Mp::Array(vec![
                        Mp::from("PONG"),
                        Mp::Boolean(ok),
                        Mp::from(if ok { "" } else { "shared_key mismatch" }),
                        Mp::from("fake-fluent-bit"),
                        Mp::from(sha512_hex(&[&salt, b"fake-fluent-bit", &nonce, key.as_bytes()])),
                    ]);
                    rmpv::encode::write_value(&mut stream, &pong).unwrap();
                    if !ok {
                        continue;
                    }
                }
                while let Ok(message) = rmpv::decode::read_value(&mut reader) {
                    let m = message.as_array().unwrap();
                    let tag = m[0].as_str().unwrap().to_string();
                    let entries = bytes(&m[1]);
                    let chunk = get(&m[2], "chunk").and_then(Mp::as_str).unwrap().to_string();
                    let mut cursor = &entries[..];
                    let mut ids = Vec::new();
                    let mut exts = Vec::new();
                    while !cursor.is_empty() {
                        let entry = rmpv::decode::read_value(&mut cursor).unwrap();
                        let e = entry.as_array().unwrap();
                        if let Mp::Ext(t, _) = &e[0] {
                            exts.push(*t);
                        }
                        let uid = get(get(&e[1], "metadata").unwrap(), "original_event_uid")
                            .and_then(Mp::as_str)
                            .unwrap()
                            .to_string();
                        ids.push(uid);
                    }
                    assert_eq!(
                        get(&m[2], "size").and_then(Mp::as_u64),
                        Some(ids.len() as u64),
                        "size matches the entries"
                    );
                    let withheld = {
                        let mut w = w.lock().unwrap();
                        let skip = *w > 0;
                        if skip {
                            *w -= 1;
                        }
                        skip
                    };
                    let mut log = l.lock().unwrap();
                    log.messages += 1;
                    if withheld {
                        break; // no ack: drop the connection
                    }
                    log.acked.extend(ids);
                    log.tags.push(tag);
                    log.time_ext_types.extend(exts);
                    drop(log);
                    let ack = Mp::Map(vec![(Mp::from("ack"), Mp::from(chunk.as_str()))]);
                    rmpv::encode::write_value(&mut stream, &ack).unwrap();
                    stream.flush().unwrap();
                }
            }
        });
        FakeFluentBit { address, log, withhold }
    }
}

fn credentials() -> Credentials {
    Credentials {
        tenant_id: "fw-tenant".into(),
        client_id: "fw-client".into(),
        client_secret: "fw-secret".into(),
    }
}

fn dataset(n: usize) -> Dataset {
    let mut d = Dataset::default();
    let base = Utc::now() - Duration::minutes(50);
    let rows = (0..n).map(|i| {
        let t = (base + Duration::seconds(i as i64 * 40)).to_rfc3339();
        json!({"Timestamp": t, "DeviceId": "d", "ReportId": i, "ProcessId": i, "InitiatingProcessId": 1})
            .as_object()
            .unwrap()
            .clone()
    });
    d.add("DeviceProcessEvents", rows).unwrap();
    d
}

fn config(dir: &std::path::Path, server: &ReplayServer, fluent: &FakeFluentBit, extra: &str) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "tenant_id: fw-tenant\nclient_id: fw-client\nclient_secret: fw-secret\nlogin_endpoint: {u}\ngraph_endpoint: {u}\n\
             tables: [DeviceProcessEvents]\nstart_time: {}\ndelay: 1m\nmax_window: 10m\nstate_dir: {}\n\
             output:\n  type: forward\n  address: {}\n  tag: ocsf.defender\n  timeout: 5s\n{extra}",
            (Utc::now() - Duration::hours(1)).to_rfc3339(),
            dir.join("state").display(),
            fluent.address,
            u = server.url()
        ),
    )
    .unwrap();
    path
}

fn run_once(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--once", "--config"])
        .arg(path)
        .env("FW_KEY", "s3cret-key")
        .output()
        .unwrap()
}

#[test]
fn every_batch_is_acknowledged_with_the_shared_key_handshake() {
    let server = ReplayServer::start(dataset(30), credentials()).unwrap();
    let fluent = FakeFluentBit::start(Some("s3cret-key"));
    let dir = tempfile::tempdir().unwrap();
    let out = run_once(&config(dir.path(), &server, &fluent, "  shared_key: ${FW_KEY}\n"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let log = fluent.log.lock().unwrap();
    assert_eq!(log.acked.len(), 30, "{stderr}");
    assert_eq!(log.acked.iter().collect::<std::collections::BTreeSet<_>>().len(), 30);
    assert!(log.tags.iter().all(|t| t == "ocsf.defender"));
    assert!(
        !log.time_ext_types.is_empty() && log.time_ext_types.iter().all(|t| *t == 0),
        "EventTime is ext type 0"
    );
    assert!(!stderr.contains("s3cret-key"));
}

#[test]
fn a_wrong_shared_key_is_a_clear_error() {
    let server = ReplayServer::start(dataset(3), credentials()).unwrap();
    let fluent = FakeFluentBit::start(Some("the-real-key"));
    let dir = tempfile::tempdir().unwrap();
    let out = run_once(&config(dir.path(), &server, &fluent, "  shared_key: ${FW_KEY}\n"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("refused the shared key") && stderr.contains("Shared_Key"),
        "{stderr}"
    );
    assert!(!dir.path().join("state/checkpoint.json").exists());
}

#[test]
fn withheld_acks_are_resent_and_a_restart_resends_exactly_the_unacked_batches() {
    let server = ReplayServer::start(dataset(30), credentials()).unwrap();
    let fluent = FakeFluentBit::start(None);
    *fluent.withhold.lock().unwrap() = 2;
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), &server, &fluent, "");
    let out = run_once(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("batch not acknowledged, re-sending"), "{stderr}");
    {
        let log = fluent.log.lock().unwrap();
        assert_eq!(
            log.acked.iter().collect::<std::collections::BTreeSet<_>>().len(),
            30,
            "every event arrives"
        );
        assert_eq!(log.acked.len(), 30, "only acked messages count as delivered, each once");
        assert!(log.messages > 2);
    }

    // A receiver that never acks: stop, then restart against a healthy one.
    let server = ReplayServer::start(dataset(10), credentials()).unwrap();
    let stuck = FakeFluentBit::start(None);
    *stuck.withhold.lock().unwrap() = usize::MAX;
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), &server, &stuck, "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--once", "--config"])
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while stuck.log.lock().unwrap().messages < 2 && t0.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(signal::sigterm(&child));
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let saved = std::fs::read_to_string(dir.path().join("state/checkpoint.json")).unwrap_or_default();
    assert!(
        !saved.contains("DeviceProcessEvents"),
        "the checkpoint never passes an unacknowledged batch"
    );
    let healthy = FakeFluentBit::start(None);
    let text = std::fs::read_to_string(&path).unwrap().replace(&stuck.address, &healthy.address);
    std::fs::write(&path, text).unwrap();
    let out = run_once(&path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        healthy.log.lock().unwrap().acked.len(),
        10,
        "exactly the unacknowledged events are re-sent"
    );
}

#[test]
fn once_gives_up_on_a_receiver_that_closes_the_handshake_and_says_why() {
    let server = ReplayServer::start(dataset(3), credentials()).unwrap();
    let fluent = FakeFluentBit {
        address: closing_receiver(),
        log: Arc::default(),
        withhold: Arc::default(),
    };
    let dir = tempfile::tempdir().unwrap();
    let out = run_once(&config(dir.path(), &server, &fluent, "  shared_key: ${FW_KEY}\n"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("closed the connection during the shared-key handshake")
            && stderr.contains("Shared_Key differs from `output.shared_key`"),
        "{stderr}"
    );
    assert!(stderr.contains("did not take the batch in 6 attempts"), "{stderr}");
    assert!(!stderr.contains("s3cret-key"));
    assert!(!dir.path().join("state/checkpoint.json").exists());
}
