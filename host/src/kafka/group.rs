//! A consumer in a Kafka consumer group, and what it asks the brokers:
//! librdkafka's logs and rebalances reported through ours.

use super::settings::Settings;
use anyhow::anyhow;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Timeout of one request to the brokers (metadata, offsets, commits).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The consumer's callbacks: librdkafka's logs go to ours, and a rebalance
/// that takes partitions away is noted, so the batch read from them (not
/// delivered, not committed) is left to their next owner.
#[derive(Default)]
pub struct GroupContext {
    pub revoked: AtomicBool,
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(target: "kafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "kafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(target: "kafka", facility, "{message}"),
            RDKafkaLogLevel::Debug => tracing::debug!(target: "kafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "kafka", "{error}: {reason}");
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            self.revoked.store(true, Ordering::SeqCst);
            tracing::info!(partitions = %describe(partitions), "partitions revoked by the group");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(partitions = %describe(partitions), "partitions assigned by the group");
        }
    }
}

fn describe(partitions: &TopicPartitionList) -> String {
    partitions
        .elements()
        .iter()
        .map(|p| format!("{}/{}", p.topic(), p.partition()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub type GroupConsumer = BaseConsumer<GroupContext>;

/// A consumer in the group `settings` name (not yet subscribed).
pub fn consumer(settings: &Settings) -> anyhow::Result<GroupConsumer> {
    let mut config = ClientConfig::new();
    for (key, value) in settings.client_config() {
        config.set(key, value);
    }
    config
        .create_with_context(GroupContext::default())
        .map_err(|e| anyhow!("creating the Kafka consumer for {}: {e}", settings.brokers))
}

/// The end (high watermark) of every partition of `topics`.
pub fn end_offsets(consumer: &GroupConsumer, topics: &[&str]) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut ends = BTreeMap::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .map_err(|e| anyhow!("reading the partitions of `{topic}`: {e}"))?;
        for t in metadata.topics() {
            if let Some(e) = t.error() {
                return Err(anyhow!("topic `{topic}`: {e:?}; check its name (for Event Hubs, the event hub's)"));
            }
            for p in t.partitions() {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p.id(), REQUEST_TIMEOUT)
                    .map_err(|e| anyhow!("reading the end of `{topic}` partition {}: {e}", p.id()))?;
                ends.insert((topic.to_string(), p.id()), high);
            }
        }
    }
    Ok(ends)
}
