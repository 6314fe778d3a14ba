//! The streaming source's throughput (issue #21), against a real broker on
//! loopback, tansu from `../shared/tools`: rows a second that one instance
//! reads, maps (the embedded component's `convert.map-stream`), delivers and
//! commits, and the ratio two instances in one consumer group reach.
//!
//! `cargo bench --bench stream` prints `BENCH name=... value=... unit=...`
//! lines as the summary bench does; docs/performance.md records them.
//! Both instances, the broker and the producer share this machine's cores,
//! so the ratio says what a second instance adds here, not on its own host.

#[path = "workload.rs"]
#[allow(dead_code)]
mod workload;

use defender_ocsf_host::app::{self, RunOptions};
use defender_ocsf_host::config::RunConfig;
use defender_ocsf_host::kafka::Settings;
use defender_ocsf_host::output::Sink;
use defender_ocsf_host::telemetry::Telemetry;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 4;
const ROWS: usize = 40_000;
const RECORDS_PER_MESSAGE: usize = 100;

/// Counts delivered rows; stops every instance once all have arrived, and
/// keeps the times of the first and the last delivery.
struct Counter {
    rows: Arc<AtomicU64>,
    first: Arc<Mutex<Option<(Instant, u64)>>>,
    last: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
}

impl Sink for Counter {
    fn deliver(&mut self, _events: &[u8], count: u32) -> anyhow::Result<()> {
        let total = self.rows.fetch_add(u64::from(count), Ordering::SeqCst) + u64::from(count);
        let now = Instant::now();
        self.first.lock().unwrap().get_or_insert((now, total));
        *self.last.lock().unwrap() = Some(now);
        if total >= ROWS as u64 {
            self.stop.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

fn main() {
    let tansu = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/tansu");
    if !tansu.is_file() {
        println!("SKIPPED stream benchmark: {} is missing", tansu.display());
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let url = format!("tcp://{address}");
    let mut broker = std::process::Command::new(&tansu)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(&address).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mapping = map_only();
    println!("BENCH name=stream_rows_per_s.mapping_only value={mapping:.3} unit=rows/s");
    let one = measure(&address, "one", 1);
    let two = measure(&address, "two", 2);
    println!("BENCH name=stream_rows_per_s.one_instance value={one:.3} unit=rows/s");
    println!("BENCH name=stream_rows_per_s.two_instances value={two:.3} unit=rows/s");
    println!("BENCH name=stream_two_instances_ratio value={:.3} unit=ratio", two / one);
    let _ = broker.kill();
    let _ = broker.wait();
}

/// The workload's messages, as the producer sends them.
fn messages() -> Vec<Vec<u8>> {
    let rows = workload::rows("DeviceProcessEvents", ROWS, chrono::Utc::now() - chrono::Duration::hours(1));
    rows.chunks(RECORDS_PER_MESSAGE)
        .map(|chunk| {
            let records: Vec<_> = chunk
                .iter()
                .map(|row| json!({"time": "2026-01-01T00:00:00Z", "tenantId": "t", "category": "AdvancedHunting-DeviceProcessEvents", "properties": row}))
                .collect();
            serde_json::to_vec(&json!({"records": records})).unwrap()
        })
        .collect()
}

/// Rows a second the component maps from the same messages with no broker:
/// what the stream's figures compare with.
fn map_only() -> f64 {
    use defender_ocsf_host::runtime::{Limits, Runtime};
    let messages = messages();
    let runtime = Runtime::new(defender_ocsf_host::runtime::DEFAULT_COMPONENT, None).unwrap();
    let mut instance = runtime.instantiate(&Limits::default(), Arc::new(Telemetry::default())).unwrap();
    let start = Instant::now();
    let mut rows = 0u64;
    for m in &messages {
        rows += u64::from(instance.map_stream("{}", m).unwrap().unwrap().count);
    }
    rows as f64 / start.elapsed().as_secs_f64()
}

/// Rows a second `instances` instances in one group deliver, from the first
/// delivery to the last (joining the group is not counted).
fn measure(address: &str, topic: &str, instances: usize) -> f64 {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", address).create().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for r in runtime
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap()
    {
        r.unwrap();
    }
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for (i, payload) in messages().iter().enumerate() {
        let mut record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(payload.as_slice()).partition(i as i32 % PARTITIONS);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    producer.poll(Duration::from_millis(20));
                    record = r;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();

    let rows_delivered = Arc::new(AtomicU64::new(0));
    let first = Arc::new(Mutex::new(None));
    let last = Arc::new(Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = || Counter {
        rows: rows_delivered.clone(),
        first: first.clone(),
        last: last.clone(),
        stop: stop.clone(),
    };
    let dir = std::env::temp_dir().join(format!("defender-ocsf-stream-bench-{}", std::process::id()));
    let stalled = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // A group that stops making progress (tansu's coordinator has been
        // seen to stall) ends the measurement instead of hanging the bench.
        scope.spawn(|| {
            let mut seen = 0;
            let mut still = 0;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(1));
                let now = rows_delivered.load(Ordering::SeqCst);
                still = if now == seen { still + 1 } else { 0 };
                seen = now;
                if still >= 60 {
                    stalled.store(true, Ordering::SeqCst);
                    stop.store(true, Ordering::SeqCst);
                }
            }
        });
        for i in 0..instances {
            let mut sink = counter();
            let stop = stop.clone();
            let dir = dir.join(format!("{topic}-{i}"));
            scope.spawn(move || {
                let mut config = RunConfig::for_source(dir, serde_json::Map::new());
                config.stream = Some(
                    Settings::from_value(
                        json!({"type": "kafka", "brokers": address, "topics": [topic], "group_id": format!("bench-{topic}"),
                        "batch_messages": 20, "batch_wait": "100ms"}),
                    )
                    .unwrap(),
                );
                let options = RunOptions {
                    shutdown: stop,
                    ..RunOptions::default()
                };
                app::run(&config, &options, &mut sink, Arc::new(Telemetry::default())).unwrap();
            });
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    if stalled.load(Ordering::SeqCst) {
        eprintln!(
            "stream bench ({instances} instance(s)): no progress for a minute at {} of {ROWS} rows; the figure is not valid",
            rows_delivered.load(Ordering::SeqCst)
        );
        return f64::NAN;
    }
    let (start, at_first) = first.lock().unwrap().unwrap();
    let end = last.lock().unwrap().unwrap();
    (rows_delivered.load(Ordering::SeqCst) - at_first) as f64 / (end - start).as_secs_f64()
}
