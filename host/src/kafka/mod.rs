//! A streaming source: reads messages from Kafka (Azure Event Hubs' Kafka
//! endpoint, or any Kafka), has the component map each one
//! (`convert.map-stream`), delivers the events, and only then commits each
//! partition's offsets. A crash repeats at most the batches not yet
//! committed; instances in one consumer group share the partitions.
//!
//! The host still knows nothing of Defender here: it hands the component
//! the bytes of each message and delivers what comes back.

mod backfill;
mod check;
pub mod group;
pub mod settings;

pub use check::check;
pub use settings::Settings;

use group::{GroupConsumer, REQUEST_TIMEOUT, consumer, end_offsets};

use crate::config::RunConfig;
use crate::launch::{Failure, RunOptions, Summary};
use crate::runtime::{Instance, StreamMapped};
use crate::sink::{Sink, Undelivered};
use crate::telemetry::{Health, Telemetry};
use anyhow::anyhow;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Events a batch holds before it is delivered, whatever `batch_messages` says.
const BATCH_BYTES: usize = 8 << 20;
/// How long `--once` waits for the group to assign it partitions.
const ASSIGNMENT_WAIT: Duration = Duration::from_secs(30);
/// How often `stream_consumer_lag` is measured.
const LAG_EVERY: Duration = Duration::from_secs(10);
/// Messages read since the last commit, and what they gave.
#[derive(Default)]
struct Batch {
    events: Vec<u8>,
    count: u32,
    messages: usize,
    /// The next offset to commit, per (topic, partition).
    next: BTreeMap<(String, i32), i64>,
    started: Option<Instant>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.messages == 0
    }
}

/// Reads the stream until stopped (with `--once`, up to the end offsets the
/// partitions had when it started), delivering each batch before its
/// offsets are committed.
pub fn run(
    config: &RunConfig,
    settings: &Settings,
    options: &RunOptions,
    sink: &mut dyn Sink,
    telemetry: Arc<Telemetry>,
) -> Result<Summary, Failure> {
    let mut summary = Summary::default();
    if settings.backfill_with_graph {
        let history = backfill::backfill(config, options, sink, telemetry.clone())?;
        summary.batches += history.batches;
        summary.events += history.events;
        if history.undelivered || options.shutdown.load(Ordering::SeqCst) {
            summary.undelivered |= history.undelivered;
            return Ok(summary);
        }
    }
    let mut instance = crate::launch::instance(config, options, telemetry.clone())?;
    let description = crate::launch::describe_metrics(&mut instance, &telemetry)?;
    let map_options = serde_json::Value::Object(crate::config::convert_options(&config.source, &description.convert_options)).to_string();
    if instance.contract() == crate::runtime::CONTRACT {
        // An empty message checks the options (0.5.0): a setting the
        // component refuses stops the run here, before any message is read
        // and skipped for it.
        if let Err(e) = instance.map_stream(&map_options, b"")? {
            return Err(Failure::Config(e));
        }
    }
    let metrics = telemetry;
    metrics.counter_add("batches_delivered_total", vec![], 0);
    metrics.set_health(Health::Starting);
    let consumer = consumer(settings).map_err(|e| Failure::Config(format!("{e:#}")))?;
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    // With --once: the end of every partition of the topics, now.
    let ends = match options.once {
        true => Some(end_offsets(&consumer, &topics).map_err(Failure::Other)?),
        false => None,
    };
    if let Some(ends) = &ends {
        tracing::info!(
            ends = %ends.iter().map(|((t, p), end)| format!("{t}/{p}:{end}")).collect::<Vec<_>>().join(", "),
            "--once: reading up to the end offsets the partitions have now"
        );
    }
    consumer
        .subscribe(&topics)
        .map_err(|e| Failure::Other(anyhow!("subscribing to {}: {e}", topics.join(", "))))?;
    tracing::info!(
        brokers = %settings.brokers,
        topics = %topics.join(", "),
        group = %settings.group_id,
        contract = instance.contract(),
        once = options.once,
        "reading the stream"
    );

    let mut batch = Batch::default();
    let mut unknown: BTreeSet<String> = BTreeSet::new();
    // Per assigned partition: the next offset this instance will read.
    let mut position: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let started = Instant::now();
    let mut last_summary = Instant::now();
    let mut last_lag = Instant::now();
    while !options.shutdown.load(Ordering::SeqCst) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let key = (message.topic().to_string(), message.partition());
                let offset = message.offset();
                let payload = message.payload().unwrap_or_default().to_vec();
                drop(message);
                read(
                    &mut instance,
                    &map_options,
                    &key,
                    offset,
                    &payload,
                    &mut batch,
                    &mut unknown,
                    &metrics,
                )?;
                position.insert(key, offset + 1);
                metrics.set_health(Health::Ready);
            }
            Some(Err(e)) => {
                metrics.counter_add("errors_total", vec![("kind".into(), "transient".into())], 1);
                metrics.set_health(Health::Failing(format!("reading the stream: {e}")));
                tracing::warn!("reading the stream: {e}");
            }
            None => {}
        }
        if consumer.context().revoked.swap(false, Ordering::SeqCst) {
            if !batch.is_empty() {
                tracing::info!(
                    messages = batch.messages,
                    "the group took partitions away: the batch read from them, not delivered and not committed, is left to their next owner"
                );
            }
            batch = Batch::default();
            position.clear();
        }
        let reached_end = match &ends {
            Some(ends) => {
                let assigned = assignment(&consumer, &mut position);
                if assigned.is_empty() {
                    if started.elapsed() > ASSIGNMENT_WAIT {
                        tracing::warn!(
                            "no partition was assigned to this instance (the group has more members than partitions?); nothing to read"
                        );
                        break;
                    }
                    false
                } else {
                    assigned
                        .iter()
                        .all(|p| position.get(p).copied().unwrap_or(0) >= ends.get(p).copied().unwrap_or(0))
                }
            }
            None => false,
        };
        let full = batch.messages >= settings.batch_messages || batch.events.len() >= BATCH_BYTES;
        let due = batch.started.is_some_and(|s| s.elapsed() >= settings.batch_wait);
        if !batch.is_empty() && (full || due || reached_end) {
            let done = std::mem::take(&mut batch);
            if !deliver(&consumer, done, sink, options, &metrics, &mut summary)? {
                return Ok(summary);
            }
        }
        if reached_end && batch.is_empty() {
            break;
        }
        if last_lag.elapsed() >= LAG_EVERY {
            last_lag = Instant::now();
            report_lag(&consumer, &position, &metrics);
            // In the group with partitions, even while nothing arrives: ready.
            if consumer.assignment().is_ok_and(|a| a.count() > 0) {
                metrics.set_health(Health::Ready);
            }
        }
        if last_summary.elapsed() >= Duration::from_secs(60) {
            last_summary = Instant::now();
            tracing::info!(events = summary.events, batches = summary.batches, "summary");
        }
    }
    report_lag(&consumer, &position, &metrics);
    if !batch.is_empty() {
        tracing::info!(
            messages = batch.messages,
            "stopping: the batch not delivered is not committed, and is read again at the next start"
        );
    }
    tracing::info!(batches = summary.batches, events = summary.events, "stopped");
    Ok(summary)
}

/// Maps one message into the batch. A message the component cannot read is
/// counted and logged, and its offset still moves on: the partition is
/// never stuck behind it.
#[allow(clippy::too_many_arguments)]
fn read(
    instance: &mut Instance,
    map_options: &str,
    key: &(String, i32),
    offset: i64,
    payload: &[u8],
    batch: &mut Batch,
    unknown: &mut BTreeSet<String>,
    metrics: &Telemetry,
) -> Result<(), Failure> {
    let topic = vec![("topic".to_string(), key.0.clone())];
    metrics.counter_add("stream_messages_total", topic.clone(), 1);
    batch.messages += 1;
    batch.started.get_or_insert_with(Instant::now);
    batch.next.insert(key.clone(), offset + 1);
    let mapped: StreamMapped = match instance.map_stream(map_options, payload)? {
        Ok(m) => m,
        Err(reason) => {
            metrics.counter_add("stream_messages_malformed_total", topic, 1);
            tracing::warn!(topic = %key.0, partition = key.1, offset, "a message could not be read and is skipped: {reason}");
            return Ok(());
        }
    };
    for t in &mapped.tables {
        let table = vec![("table".to_string(), t.table.clone())];
        metrics.counter_add("stream_records_total", table.clone(), u64::from(t.rows + t.errors));
        metrics.counter_add("events_emitted_total", table.clone(), u64::from(t.rows));
        metrics.counter_add("rows_unmappable_total", table, u64::from(t.errors));
    }
    for reason in &mapped.rejected {
        tracing::warn!(topic = %key.0, partition = key.1, offset, "{reason}");
    }
    for (category, n) in &mapped.unknown_categories {
        metrics.counter_add(
            "stream_records_unknown_total",
            vec![("category".into(), category.clone())],
            u64::from(*n),
        );
        if unknown.insert(category.clone()) {
            tracing::warn!(
                category = %category,
                "records of a category this collector does not map are left out (counted in stream_records_unknown_total; logged once)"
            );
        }
    }
    batch.events.extend_from_slice(&mapped.events);
    batch.count += mapped.count;
    Ok(())
}

/// Delivers a batch, then commits its offsets. `false` when the output did
/// not take it (the run stops; nothing is committed).
fn deliver(
    consumer: &GroupConsumer,
    batch: Batch,
    sink: &mut dyn Sink,
    options: &RunOptions,
    metrics: &Telemetry,
    summary: &mut Summary,
) -> Result<bool, Failure> {
    let guard = options.critical.lock().unwrap_or_else(|p| p.into_inner());
    if batch.count > 0 {
        match sink.deliver(&batch.events, batch.count) {
            Ok(()) => {}
            Err(e) if e.is::<Undelivered>() => {
                tracing::info!("{e}; stopping without committing the undelivered batch");
                summary.undelivered = true;
                return Ok(false);
            }
            Err(e) => return Err(Failure::Other(e)),
        }
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), next) in &batch.next {
        list.add_partition_offset(topic, *partition, Offset::Offset(*next))
            .map_err(|e| Failure::Other(anyhow!("{e}")))?;
    }
    if let Err(e) = consumer.commit(&list, CommitMode::Sync) {
        // Delivered but not committed: the batch comes again after a
        // restart or a rebalance, never lost.
        metrics.counter_add("errors_total", vec![("kind".into(), "transient".into())], 1);
        tracing::warn!("committing the offsets of a delivered batch failed ({e}); its messages may be delivered again");
    }
    drop(guard);
    summary.batches += 1;
    summary.events += u64::from(batch.count);
    metrics.counter_add("batches_delivered_total", vec![], 1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    metrics.gauge_set("last_success_timestamp_seconds", vec![], now);
    Ok(true)
}

/// `stream_consumer_lag` of each partition read: its end less where this
/// instance will read next.
fn report_lag(consumer: &GroupConsumer, position: &BTreeMap<(String, i32), i64>, metrics: &Telemetry) {
    for ((topic, partition), next) in position {
        if let Ok((_, high)) = consumer.fetch_watermarks(topic, *partition, Duration::from_secs(1)) {
            let labels = vec![
                ("topic".to_string(), topic.clone()),
                ("partition".to_string(), partition.to_string()),
            ];
            metrics.gauge_set("stream_consumer_lag", labels, (high - next).max(0) as f64);
        }
    }
}

/// The partitions assigned now; for one new to `position`, where reading
/// resumes (its committed offset, else its beginning).
fn assignment(consumer: &GroupConsumer, position: &mut BTreeMap<(String, i32), i64>) -> Vec<(String, i32)> {
    let Ok(list) = consumer.assignment() else { return Vec::new() };
    let assigned: Vec<(String, i32)> = list.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
    let new: Vec<&(String, i32)> = assigned.iter().filter(|p| !position.contains_key(*p)).collect();
    if !new.is_empty() {
        let mut query = TopicPartitionList::new();
        for (topic, partition) in &new {
            query.add_partition(topic, *partition);
        }
        if let Ok(committed) = consumer.committed_offsets(query, REQUEST_TIMEOUT) {
            for e in committed.elements() {
                let start = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => consumer
                        .fetch_watermarks(e.topic(), e.partition(), REQUEST_TIMEOUT)
                        .map_or(0, |(low, _)| low),
                };
                position.insert((e.topic().to_string(), e.partition()), start);
            }
        }
    }
    assigned
}
