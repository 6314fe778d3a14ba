//! The streaming source against a real Kafka-compatible broker, tansu from
//! `../shared/tools` (no protocol stand-in): Streaming API messages produced
//! with librdkafka are read by `defender-ocsf run`, mapped by the embedded
//! component, delivered, and committed only after delivery.

#[path = "support/broker.rs"]
mod broker;
#[path = "../../tests/support/ocsf_schema.rs"]
mod ocsf_schema;
#[path = "support/pipelines.rs"]
mod pipelines;

use broker::{Broker, message};
use pipelines::signal;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn config(dir: &Path, broker: &Broker, topic: &str, extra: &str) -> PathBuf {
    let path = dir.join("defender.yaml");
    let text = format!(
        "state_dir: {}\nlog_level: info\nsource:\n  type: kafka\n  brokers: {}\n  topics: [{topic}]\n  group_id: defender-ocsf\n  batch_messages: 5\n  batch_wait: 200ms\n{extra}",
        dir.join("state").display(),
        broker.address
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn run_once(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["run", "--once", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

fn events(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn report_ids(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| e["metadata"]["original_event_uid"].as_str()?.parse().ok())
        .collect()
}

#[test]
fn run_once_reads_every_record_to_the_end_and_a_second_run_reads_nothing() {
    let Some(broker) = Broker::start("stream run --once") else { return };
    broker.create_topic("defender", 4);
    let mut messages = Vec::new();
    let mut id = 0;
    for round in 0..6 {
        for partition in 0..4 {
            let ids: Vec<u32> = (0..3)
                .map(|_| {
                    id += 1;
                    id
                })
                .collect();
            messages.push((partition, message(&ids)));
            if round == 2 && partition == 1 {
                // Malformed messages: counted, logged, and the partition moves on.
                messages.push((partition, b"not json at all".to_vec()));
                messages.push((partition, br#"{"value": []}"#.to_vec()));
                messages.push((partition, json!({"records": [
                    {"category": "AdvancedHunting-DeviceProcessEvents", "properties": {"DeviceId": "d1", "ProcessId": 9}},
                    {"category": "AdvancedHunting-SomethingNew", "properties": {"x": 1}},
                    {"category": "AdvancedHunting-IdentityLogonEvents", "properties": {"Timestamp": "2026-01-01T00:00:02Z", "ActionType": "LogonSuccess",
                      "AccountUpn": "a@contoso.com", "Application": "Active Directory", "ReportId": "logon-1"}}
                ]}).to_string().into_bytes()));
            }
        }
    }
    broker.produce("defender", &messages);

    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &broker, "defender", "");
    let out = run_once(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let got = events(&out.stdout);
    let mut ids = report_ids(&got);
    ids.sort_unstable();
    assert_eq!(ids, (1..=id as u64).collect::<Vec<_>>(), "every record once: {stderr}");
    assert_eq!(got.len(), id as usize + 1, "and the logon of the mixed message");
    assert!(got.iter().any(|e| e["metadata"]["log_name"] == "IdentityLogonEvents"));
    assert!(got.iter().all(
        |e| e["metadata"]["tenant_uid"] == "00000000-0000-0000-0000-000000000001" || e["metadata"]["log_name"] == "IdentityLogonEvents"
    ));
    let uids: std::collections::BTreeSet<&str> = got.iter().map(|e| e["metadata"]["uid"].as_str().unwrap()).collect();
    assert_eq!(uids.len(), got.len(), "no duplicate uid");
    assert!(
        stderr.contains("is not JSON") && stderr.contains("has no `records` list"),
        "malformed messages are named: {stderr}"
    );
    assert!(stderr.contains("Timestamp"), "the record without a Timestamp is named: {stderr}");
    assert_eq!(
        stderr.matches("AdvancedHunting-SomethingNew").count(),
        1,
        "an unknown category is logged once: {stderr}"
    );
    assert!(
        stderr.contains(&format!(r#""contract":"{}""#, defender_ocsf_host::runtime::CONTRACT)),
        "{stderr}"
    );
    ocsf_schema::assert_all_valid("stream events", &got);

    // Committed after delivery: the same group reads nothing again...
    let again = run_once(&config);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(
        events(&again.stdout).is_empty(),
        "nothing twice: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    // ... and what arrives later is read by the next run.
    broker.produce("defender", &[(3, message(&[1000]))]);
    let later = run_once(&config);
    assert_eq!(
        report_ids(&events(&later.stdout)),
        [1000],
        "{}",
        String::from_utf8_lossy(&later.stderr)
    );
}

/// A loopback HTTP receiver that takes a while to acknowledge each batch
/// (so that readers are still busy when one is killed), and keeps the
/// NDJSON lines it acknowledged, per path.
struct SlowReceiver {
    url: String,
    lines: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl SlowReceiver {
    fn start(delay: Duration) -> SlowReceiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = lines.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        let mut request = String::new();
                        if reader.read_line(&mut request).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                        let mut length = 0;
                        loop {
                            let mut header = String::new();
                            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                                return;
                            }
                            if header == "\r\n" {
                                break;
                            }
                            if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        std::thread::sleep(delay);
                        if stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_err() {
                            return;
                        }
                        // Acknowledged: only now does the batch count as delivered.
                        let mut kept = kept.lock().unwrap();
                        for line in String::from_utf8_lossy(&body).lines().filter(|l| !l.is_empty()) {
                            kept.push((path.clone(), line.to_string()));
                        }
                    }
                });
            }
        });
        SlowReceiver { url, lines }
    }

    /// How often each record (its ReportId) was acknowledged, and to how many
    /// came through `path` (all paths when `None`).
    fn seen(&self, path: Option<&str>) -> BTreeMap<u64, usize> {
        let mut ids = BTreeMap::new();
        for (p, line) in self.lines.lock().unwrap().iter() {
            if path.is_some_and(|want| want != p) {
                continue;
            }
            let e: Value = serde_json::from_str(line).unwrap();
            *ids.entry(e["metadata"]["original_event_uid"].as_str().unwrap().parse().unwrap())
                .or_default() += 1;
        }
        ids
    }
}

/// Two instances in one group split the partitions; one is killed (SIGKILL)
/// while reading; every record still arrives, and the repeats are no more
/// than the batches it had not committed.
#[test]
fn two_instances_share_the_partitions_and_a_killed_one_loses_nothing() {
    let Some(broker) = Broker::start("stream consumer group") else {
        return;
    };
    broker.create_topic("defender", 4);
    let mut messages = Vec::new();
    let mut total = 0u32;
    for _ in 0..40 {
        for partition in 0..4 {
            total += 1;
            messages.push((partition, message(&[total])));
        }
    }
    let receiver = SlowReceiver::start(Duration::from_millis(150));
    let dir = tempfile::tempdir().unwrap();
    // Each instance has a stable name in the group (static membership), as
    // a StatefulSet's pods do: the restarted `a` takes its partitions back.
    let start = |name: &str, instance: &str| -> Child {
        let sub = dir.path().join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let output = format!("output:\n  type: http\n  url: {}/{name}\n  compression: none\n", receiver.url);
        let config = config(&sub, &broker, "defender", &output).to_path_buf();
        let text = std::fs::read_to_string(&config).unwrap().replace(
            "  group_id: defender-ocsf\n",
            &format!("  group_id: defender-ocsf\n  instance_id: {instance}\n"),
        );
        std::fs::write(&config, text).unwrap();
        Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(sub.join("stderr.log")).unwrap())
            .spawn()
            .unwrap()
    };
    let mut a = start("a", "instance-a");
    let mut b = start("b", "instance-b");
    // Once the group has split the partitions two and two, the records arrive.
    let log = |name: &str| std::fs::read_to_string(dir.path().join(name).join("stderr.log")).unwrap_or_default();
    let split = |name: &str| {
        log(name)
            .lines()
            .rev()
            .find(|l| l.contains("partitions assigned") || l.contains("partitions revoked"))
            .is_some_and(|l| l.contains("partitions assigned") && l.matches("defender/").count() == 2)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(split("a") && split("b")) {
        assert!(
            Instant::now() < deadline,
            "the group should split the partitions:\na: {}\nb: {}",
            log("a"),
            log("b")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    broker.produce("defender", &messages);
    // Kill `a` once both have had batches acknowledged: the group has split,
    // and `a` is still reading (a batch of 5 takes 150 ms to acknowledge).
    let deadline = Instant::now() + Duration::from_secs(60);
    while receiver.seen(Some("/a")).is_empty() || receiver.seen(Some("/b")).is_empty() {
        assert!(Instant::now() < deadline, "both instances should deliver");
        std::thread::sleep(Duration::from_millis(20));
    }
    a.kill().unwrap();
    a.wait().unwrap();
    let by_a = receiver.seen(Some("/a")).len();
    assert!(
        by_a < total as usize / 2,
        "`a` was killed with its partitions half read ({by_a} of {total} in all)"
    );
    // The orchestrator restarts the killed instance under its name; it
    // resumes from the offsets `a` committed.
    let mut c = start("c", "instance-a");
    let deadline = Instant::now() + Duration::from_secs(90);
    while receiver.seen(None).len() < total as usize {
        assert!(
            Instant::now() < deadline,
            "every record should arrive: {} of {total}\nb: {}\nc: {}",
            receiver.seen(None).len(),
            std::fs::read_to_string(dir.path().join("b/stderr.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("c/stderr.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    terminate(&mut b);
    terminate(&mut c);
    let ids = receiver.seen(None);
    assert_eq!(ids.len(), total as usize);
    let repeats: usize = ids.values().map(|n| n - 1).sum();
    // `a` may have had acknowledged batches it had not yet committed when
    // it was killed: at most one batch (5 one-record messages) per partition.
    assert!(repeats <= 4 * 5, "{repeats} repeats");
    let by_c = receiver.seen(Some("/c")).len();
    assert!(by_c > 0, "the replacement read what `a` had left");
}

/// Stops a child with SIGTERM and waits for it (killing it after 20 s).
fn terminate(child: &mut Child) {
    if signal::terminate_within(child, Duration::from_secs(20)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `backfill_with_graph`: the first start collects the history through
/// Graph (the replayed runHuntingQuery) up to the moment the stream began,
/// then reads the stream; the next start only reads the stream.
#[test]
fn a_graph_backfill_comes_first_and_only_once() {
    use defender_ocsf_replay::{Dataset, ReplayServer};
    let Some(broker) = Broker::start("stream backfill") else { return };
    broker.create_topic("defender", 2);
    broker.produce("defender", &[(0, message(&[501])), (1, message(&[502]))]);
    let now = chrono::Utc::now();
    let iso = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let history: Vec<_> = (0..4u32)
        .map(|i| {
            json!({"Timestamp": iso(now - chrono::Duration::minutes(90 - 10 * i as i64)), "DeviceId": "d1", "DeviceName": "pc1",
                   "ActionType": "ProcessCreated", "ProcessId": i, "ReportId": 100 + i})
            .as_object()
            .unwrap()
            .clone()
        })
        .collect();
    let mut dataset = Dataset::default();
    dataset.add("DeviceProcessEvents", history).unwrap();
    let credentials = pipelines::credentials();
    let server = ReplayServer::start(dataset, credentials.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let graph = format!(
        "tenant_id: {}\nclient_id: {}\nclient_secret: {}\nlogin_endpoint: {url}\ngraph_endpoint: {url}\ntables: [DeviceProcessEvents]\n\
         start_time: {}\ndelay: 1m\n",
        credentials.tenant_id,
        credentials.client_id,
        credentials.client_secret,
        iso(now - chrono::Duration::hours(2)),
        url = server.url()
    );
    let config = config(dir.path(), &broker, "defender", &graph);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "  group_id: defender-ocsf\n",
        "  group_id: defender-ocsf\n  backfill_with_graph: true\n",
    );
    std::fs::write(&config, text).unwrap();

    let out = run_once(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let mut ids = report_ids(&events(&out.stdout));
    ids.sort_unstable();
    assert_eq!(
        ids,
        [100, 101, 102, 103, 501, 502],
        "the history through Graph, then the stream: {stderr}"
    );
    assert!(stderr.contains("backfill through Graph complete"), "{stderr}");
    let queries = server.queries().len();
    assert!(queries > 0);

    broker.produce("defender", &[(0, message(&[503]))]);
    let out = run_once(&config);
    assert_eq!(report_ids(&events(&out.stdout)), [503], "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.queries().len(), queries, "no more polling once the backfill is done");
}

fn check(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_defender-ocsf"))
        .args(["check", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

/// `check` for a stream: the brokers and the partitions, and one message
/// read and mapped without committing (the next run still reads it).
#[test]
fn check_reads_one_message_without_committing() {
    let Some(broker) = Broker::start("stream check") else { return };
    broker.create_topic("defender", 2);
    broker.produce("defender", &[(1, message(&[7]))]);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &broker, "defender", "");
    let out = check(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains(&format!("PASS  stream: {}: connected; 2 partition(s)", broker.address)),
        "{stdout}"
    );
    assert!(
        stdout.contains("PASS  stream: read one message: read") && stdout.contains("1 event(s) from DeviceProcessEvents"),
        "{stdout}"
    );
    assert_eq!(report_ids(&events(&run_once(&config).stdout)), [7], "check committed nothing");

    // A broker nobody runs: a clear failure, exit 1.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&broker.address, &format!("127.0.0.1:{port}"));
    std::fs::write(&config, text).unwrap();
    let out = check(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  stream: 127.0.0.1") && stdout.contains("check the brokers"),
        "{stdout}"
    );
}

/// The stream's metrics, from an in-process run: messages, malformed ones,
/// records per table, unknown categories, and each partition's lag.
#[test]
fn the_stream_metrics_count_messages_records_and_lag() {
    use defender_ocsf_host::app::{self, RunOptions};
    use defender_ocsf_host::config::RunConfig;
    use defender_ocsf_host::kafka::Settings;
    use defender_ocsf_host::output::Sink;
    use defender_ocsf_host::telemetry::Telemetry;

    struct Keep(Vec<u8>);
    impl Sink for Keep {
        fn deliver(&mut self, events: &[u8], _count: u32) -> anyhow::Result<()> {
            self.0.extend_from_slice(events);
            Ok(())
        }
    }

    let Some(broker) = Broker::start("stream metrics") else { return };
    broker.create_topic("defender", 2);
    let unknown = json!({"records": [{"category": "AdvancedHunting-SomethingNew", "properties": {}}]})
        .to_string()
        .into_bytes();
    broker.produce(
        "defender",
        &[(0, message(&[1, 2, 3])), (1, message(&[4])), (1, b"garbage".to_vec()), (0, unknown)],
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = RunConfig::for_source(dir.path().to_path_buf(), serde_json::Map::new());
    config.stream = Some(
        Settings::from_value(
            json!({"type": "kafka", "brokers": broker.address, "topics": ["defender"], "group_id": "metrics", "batch_wait": "100ms"}),
        )
        .unwrap(),
    );
    let telemetry = std::sync::Arc::new(Telemetry::default());
    let options = RunOptions {
        once: true,
        ..RunOptions::default()
    };
    let mut sink = Keep(Vec::new());
    let summary = app::run(&config, &options, &mut sink, telemetry.clone()).unwrap();
    assert_eq!(summary.events, 4);
    assert_eq!(telemetry.counter_total("stream_messages_total"), 4);
    assert_eq!(telemetry.counter_total("stream_messages_malformed_total"), 1);
    assert_eq!(telemetry.counter_total("stream_records_total"), 4);
    assert_eq!(telemetry.counter_total("stream_records_unknown_total"), 1);
    assert_eq!(telemetry.counter_total("events_emitted_total"), 4);
    let text = telemetry.render_prometheus();
    assert!(text.contains(r#"stream_records_total{table="DeviceProcessEvents"} 4"#), "{text}");
    assert!(text.contains("# HELP defender_ocsf_stream_consumer_lag "), "{text}");
    assert!(
        text.contains(r#"stream_consumer_lag{partition="0",topic="defender"} 0"#),
        "caught up: {text}"
    );
}

/// A setting the component takes for the stream (here `ocsf.deprecated_classes`)
/// that it refuses stops the run before any message is read, rather than
/// have every message refused and skipped.
#[test]
fn an_option_the_component_refuses_stops_the_run_before_reading() {
    let Some(broker) = Broker::start("stream options") else { return };
    broker.create_topic("refused", 1);
    broker.produce("refused", &[(0, message(&[1]))]);
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &broker, "refused", "ocsf:\n  deprecated_classes: maybe\n");
    let out = run_once(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("deprecated_classes"), "the setting is named: {stderr}");
    assert!(out.stdout.is_empty());
    // Nothing was committed: with the setting fixed, the message is read.
    let fixed = config_text_fixed(&config);
    let again = run_once(&fixed);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(
        report_ids(&events(&again.stdout)),
        [1],
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

fn config_text_fixed(path: &Path) -> PathBuf {
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("deprecated_classes: maybe", "deprecated_classes: false");
    let fixed = path.with_file_name("fixed.yaml");
    std::fs::write(&fixed, text).unwrap();
    fixed
}
