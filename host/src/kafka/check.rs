//! `check` for a stream source.

use super::group::{consumer, end_offsets};
use super::settings::Settings;
use crate::config::RunConfig;
use crate::runtime::Instance;
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// `check` for a stream: the brokers answer and authenticate, the topics'
/// partitions, and one message read (without committing) and mapped.
pub fn check(config: &RunConfig, settings: &Settings, instance: &mut Instance) -> Vec<(bool, String, String)> {
    let mut steps = Vec::new();
    let options = match instance.describe() {
        Ok(description) => {
            serde_json::Value::Object(crate::config::convert_options(&config.source, &description.convert_options)).to_string()
        }
        Err(e) => {
            steps.push((false, "component".into(), format!("{e:#}")));
            return steps;
        }
    };
    let consumer = match consumer(settings) {
        Ok(c) => c,
        Err(e) => {
            steps.push((false, "stream".into(), format!("{e:#}")));
            return steps;
        }
    };
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    let ends = match end_offsets(&consumer, &topics) {
        Ok(ends) => ends,
        Err(e) => {
            steps.push((
                false,
                format!("stream: {}", settings.brokers),
                format!("{e:#}; check the brokers, the credentials and the topic"),
            ));
            return steps;
        }
    };
    steps.push((
        true,
        format!("stream: {}", settings.brokers),
        format!(
            "connected; {} partition(s): {}",
            ends.len(),
            ends.iter()
                .map(|((t, p), end)| format!("{t}/{p} (end {end})"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
    // One message, from where the group would read, without committing.
    let mut list = TopicPartitionList::new();
    for (topic, partition) in ends.keys() {
        let _ = list.add_partition_offset(topic, *partition, Offset::Stored);
    }
    if let Err(e) = consumer.assign(&list) {
        steps.push((false, "stream: read one message".into(), e.to_string()));
        return steps;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let step = loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let payload = m.payload().unwrap_or_default().to_vec();
                let at = format!("{}/{} offset {}", m.topic(), m.partition(), m.offset());
                drop(m);
                break match instance.map_stream(&options, &payload) {
                    Ok(Ok(mapped)) => (
                        true,
                        format!(
                            "read {} bytes at {at}, not committed: {} event(s){}",
                            payload.len(),
                            mapped.count,
                            match mapped.tables.is_empty() {
                                true => String::new(),
                                false => format!(
                                    " from {}",
                                    mapped.tables.iter().map(|t| t.table.as_str()).collect::<Vec<_>>().join(", ")
                                ),
                            }
                        ),
                    ),
                    Ok(Err(reason)) => (
                        true,
                        format!(
                            "{}read {} bytes at {at}, which is not a Streaming API message: {reason}",
                            crate::launch::WARNING,
                            payload.len()
                        ),
                    ),
                    Err(e) => (false, format!("{e:#}")),
                };
            }
            Some(Err(e)) => break (false, format!("reading: {e}")),
            None if Instant::now() > deadline => {
                break (
                    true,
                    format!(
                        "{}no message arrived within 10 s (nothing new to read, or Defender does not stream yet)",
                        crate::launch::WARNING
                    ),
                );
            }
            None => {}
        }
    };
    steps.push((step.0, "stream: read one message".into(), step.1));
    steps
}
