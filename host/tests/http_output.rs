//! The `http` output against a stand-in for Vector's `http_server` source
//! with acknowledgements: it answers a request only after it has "delivered"
//! the events (here: recorded them), and can be scripted to refuse (503) or
//! to answer slowly, as Vector does when its sink fails or lags.

#[path = "support/signal.rs"]
mod signal;

use bytes::Bytes;
use chrono::{Duration, Utc};
use defender_ocsf_replay::{Credentials, Dataset, ReplayServer};
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
    /// Requests being answered right now, and the most there ever were.
    in_flight: usize,
    max_in_flight: usize,
    /// Graph queries the collector had made when each request arrived, and
    /// when it was answered.
    queries_seen: Vec<(usize, usize)>,
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

type Probe = Arc<dyn Fn() -> usize + Send + Sync>;

impl FakeVector {
    fn start() -> FakeVector {
        Self::start_probing(Arc::new(|| 0))
    }

    /// `probe` is read when each request arrives (the collector's query count).
    fn start_probing(probe: Probe) -> FakeVector {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/ingest", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Received::default()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let (r, s, p) = (received.clone(), script.clone(), probe);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let (r, s, p) = (r.clone(), s.clone(), p.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let (r, s, p) = (r.clone(), s.clone(), p.clone());
                            async move {
                                {
                                    let mut r = r.lock().unwrap();
                                    r.in_flight += 1;
                                    r.max_in_flight = r.max_in_flight.max(r.in_flight);
                                    r.queries_seen.push((p(), usize::MAX));
                                }
                                let headers: BTreeMap<String, String> = req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                                    .collect();
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
                                    if let Some(last) = r.queries_seen.last_mut() {
                                        last.1 = p();
                                    }
                                    r.in_flight -= 1;
                                    r.requests += 1;
                                    r.headers.push(headers);
                                    if answer.status < 300 {
                                        r.delivered.push(body);
                                    }
                                }
                                Ok::<_, hyper::Error>(
                                    hyper::Response::builder()
                                        .status(answer.status)
                                        .body(Full::new(Bytes::new()))
                                        .unwrap(),
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
            .flat_map(|b| {
                b.lines().map(|l| {
                    serde_json::from_str::<Value>(l).unwrap()["metadata"]["original_event_uid"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
            })
            .collect()
    }
}

fn credentials() -> Credentials {
    Credentials {
        tenant_id: "h-tenant".into(),
        client_id: "h-client".into(),
        client_secret: "h-secret".into(),
    }
}

/// `n` rows spread over the 40 minutes that end 10 minutes ago.
fn dataset(n: usize) -> Dataset {
    let mut d = Dataset::default();
    let base = Utc::now() - Duration::minutes(50);
    let step_ms = 40 * 60 * 1000 / n as i64;
    let rows = (0..n).map(|i| {
        let t = (base + Duration::milliseconds(i as i64 * step_ms)).to_rfc3339();
        json!({"Timestamp": t, "DeviceId": "d", "ReportId": i, "ProcessId": i, "InitiatingProcessId": 1})
            .as_object()
            .unwrap()
            .clone()
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
    vector.answer([
        Answer { status: 503, delay_ms: 0 },
        Answer { status: 500, delay_ms: 0 },
        Answer {
            status: 200,
            delay_ms: 700,
        },
    ]);
    let dir = tempfile::tempdir().unwrap();
    let out = run_once(&config(dir.path(), &server, &vector, "  compression: gzip\n"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "events go to the receiver, not stdout");
    let ids = vector.delivered_ids();
    let unique: std::collections::BTreeSet<_> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), 60, "every event arrives at least once");
    assert_eq!(ids.len(), 60, "a refused batch is not delivered twice once accepted");
    assert!(
        stderr.contains("batch not delivered, retrying") && stderr.contains("503"),
        "{stderr}"
    );
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
    assert!(signal::sigterm(&child));
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(vector.delivered_ids().is_empty());
    let saved = std::fs::read_to_string(dir.path().join("state/checkpoint.json")).unwrap_or_default();
    assert!(
        !saved.contains("DeviceProcessEvents"),
        "the checkpoint never passes an unacknowledged batch: {saved}"
    );

    // A restart with a healthy receiver sends exactly those events.
    vector.script.lock().unwrap().clear();
    let out = run_once(&path);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(vector.delivered_ids().len(), 10);
}

/// A slow receiver slows collection down: one batch in flight, no querying
/// ahead of delivery, and memory that does not grow with the backlog.
#[test]
fn a_slow_receiver_applies_backpressure() {
    let server = Arc::new(ReplayServer::start(dataset(200), credentials()).unwrap());
    let probe_server = server.clone();
    let vector = FakeVector::start_probing(Arc::new(move || probe_server.queries().len()));
    vector.answer(std::iter::repeat_n(
        Answer {
            status: 200,
            delay_ms: 150,
        },
        1000,
    ));
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join("collector.log");
    let path = config(
        dir.path(),
        &server,
        &vector,
        &format!("log_file: {}\nmax_rows_per_query: 10\nmax_window: 5m\n", log_file.display()),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--once", "--config"])
        .arg(&path)
        .env("VECTOR_TOKEN", "vt-123")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(rss) = status.lines().find(|l| l.starts_with("VmRSS:"))
        {
            peak_kib = peak_kib.max(rss.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");
    let r = vector.received.lock().unwrap();
    assert!(r.requests >= 10, "many small batches: {}", r.requests);
    assert_eq!(r.max_in_flight, 1, "one batch at a time");
    // While a batch waits for its answer the collector makes no query: it
    // does not collect ahead of delivery into memory.
    for (n, (arrived, answered)) in r.queries_seen.iter().enumerate() {
        assert_eq!(arrived, answered, "queries were made while batch {n} awaited its answer");
    }
    drop(r);
    assert_eq!(vector.delivered_ids().len(), 200);
    assert!(peak_kib > 0 && peak_kib < 400 * 1024, "peak RSS {peak_kib} KiB");
    // Logs went to the file, not to stderr.
    assert!(stderr.is_empty(), "{stderr}");
    let logged = std::fs::read_to_string(&log_file).unwrap();
    assert!(
        logged.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()) && logged.contains("collecting"),
        "{logged}"
    );
}
