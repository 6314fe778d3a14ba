//! The `http` output against a stand-in for Vector's `http_server` source
//! with acknowledgements: it answers a request only after it has "delivered"
//! the events (here: recorded them), and can be scripted to refuse (503) or
//! to answer slowly, as Vector does when its sink fails or lags.

use bytes::Bytes;
use chrono::{Duration, Utc};
use defender_ocsf_host::replay::{Credentials, Dataset, ReplayServer};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// What the stand-in answers: a status and a delay before answering.
#[derive(Clone, Copy)]
struct Answer {
    status: u16,
    delay_ms: u64,
}

#[derive(Default)]
struct Received {
    /// Bodies of the requests answered 2xx (delivered), decoded.
    delivered: Vec<String>,
    requests: usize,
    headers: Vec<BTreeMap<String, String>>,
}

struct FakeVector {
    url: String,
    received: Arc<Mutex<Received>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl FakeVector {
    fn start() -> FakeVector {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/ingest", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Received::default()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let (r, s) = (received.clone(), script.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let (r, s) = (r.clone(), s.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let (r, s) = (r.clone(), s.clone());
                            async move {
                                let headers: BTreeMap<String, String> =
                                    req.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
                                let gzip = headers.get("content-encoding").is_some_and(|v| v == "gzip");
                                let raw = req.into_body().collect().await?.to_bytes();
                                let body = if gzip {
                                    let mut text = String::new();
                                    flate2::read::GzDecoder::new(&raw[..]).read_to_string(&mut text).unwrap();
                                    text
                                } else {
                                    String::from_utf8(raw.to_vec()).unwrap()
                                };
                                let answer = s.lock().unwrap().pop_front().unwrap_or(Answer { status: 200, delay_ms: 0 });
                                tokio::time::sleep(std::time::Duration::from_millis(answer.delay_ms)).await;
                                {
                                    let mut r = r.lock().unwrap();
                                    r.requests += 1;
                                    r.headers.push(headers);
                                    if answer.status < 300 {
                                        r.delivered.push(body);
                                    }
                                }
                                Ok::<_, hyper::Error>(
                                    hyper::Response::builder().status(answer.status).body(Full::new(Bytes::new())).unwrap(),
                                )
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        FakeVector { url, received, script }
    }

    fn answer(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().unwrap().extend(answers);
    }

    /// ReportIds of every delivered event, with repeats.
    fn delivered_ids(&self) -> Vec<String> {
        let r = self.received.lock().unwrap();
        r.delivered
            .iter()
            .flat_map(|b| b.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["metadata"]["original_event_uid"].as_str().unwrap().to_string()))
            .collect()
    }
}

fn credentials() -> Credentials {
    Credentials { tenant_id: "h-tenant".into(), client_id: "h-client".into(), client_secret: "h-secret".into() }
}

fn dataset(n: usize) -> Dataset {
    let mut d = Dataset::default();
    let base = Utc::now() - Duration::minutes(50);
    let rows = (0..n).map(|i| {
        let t = (base + Duration::seconds(i as i64 * 40)).to_rfc3339();
        json!({"Timestamp": t, "DeviceId": "d", "ReportId": i, "ProcessId": i, "InitiatingProcessId": 1}).as_object().unwrap().clone()
    });
    d.add("DeviceProcessEvents", rows).unwrap();
    d
}

fn config(dir: &std::path::Path, server: &ReplayServer, vector: &FakeVector, extra: &str) -> std::path::PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "tenant_id: h-tenant\nclient_id: h-client\nclient_secret: h-secret\nlogin_endpoint: {u}\ngraph_endpoint: {u}\n\
             tables: [DeviceProcessEvents]\nstart_time: {}\ndelay: 1m\nmax_window: 10m\nstate_dir: {}\n\
             output:\n  type: http\n  url: {}\n  headers:\n    Authorization: Bearer ${{VECTOR_TOKEN}}\n{extra}",
            (Utc::now() - Duration::hours(1)).to_rfc3339(),
            dir.join("state").display(),
            vector.url,
            u = server.url()
        ),
    )
    .unwrap();
    path
}

fn run_once(config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--once", "--config"])
        .arg(config)
        .env("VECTOR_TOKEN", "vt-123")
        .output()
        .unwrap()
}

#[test]
fn refused_batches_are_retried_and_every_event_arrives() {
    let server = ReplayServer::start(dataset(60), credentials()).unwrap();
    let vector = FakeVector::start();
    // The sink fails twice, then lags.
    vector.answer([Answer { status: 503, delay_ms: 0 }, Answer { status: 500, delay_ms: 0 }, Answer { status: 200, delay_ms: 700 }]);
    let dir = tempfile::tempdir().unwrap();
    let out = run_once(&config(dir.path(), &server, &vector, "  compression: gzip\n"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "events go to the receiver, not stdout");
    let ids = vector.delivered_ids();
    let unique: std::collections::BTreeSet<_> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), 60, "every event arrives at least once");
    assert_eq!(ids.len(), 60, "a refused batch is not delivered twice once accepted");
    assert!(stderr.contains("batch not delivered, retrying") && stderr.contains("503"), "{stderr}");
    assert!(!stderr.contains("vt-123"), "header values are never logged");
    let r = vector.received.lock().unwrap();
    assert_eq!(r.headers[0].get("authorization").map(String::as_str), Some("Bearer vt-123"));
    assert_eq!(r.headers[0].get("content-type").map(String::as_str), Some("application/x-ndjson"));
}

#[test]
fn a_stop_while_the_receiver_refuses_keeps_the_checkpoint_before_that_batch() {
    let server = ReplayServer::start(dataset(10), credentials()).unwrap();
    let vector = FakeVector::start();
    vector.answer(std::iter::repeat_n(Answer { status: 503, delay_ms: 0 }, 1000));
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), &server, &vector, "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--once", "--config"])
        .arg(&path)
        .env("VECTOR_TOKEN", "vt-123")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while vector.received.lock().unwrap().requests < 2 && t0.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(vector.delivered_ids().is_empty());
    let saved = std::fs::read_to_string(dir.path().join("state/checkpoint.json")).unwrap_or_default();
    assert!(!saved.contains("DeviceProcessEvents"), "the checkpoint never passes an unacknowledged batch: {saved}");

    // A restart with a healthy receiver sends exactly those events.
    vector.script.lock().unwrap().clear();
    let out = run_once(&path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(vector.delivered_ids().len(), 10);
}
