//! Test support: a tansu broker (`../shared/tools/tansu`, the real
//! Kafka-compatible broker) on a free loopback port, topics, a producer, and
//! Streaming API messages.
//!
//! Include it with `#[path]` next to `pipelines.rs`, which finds the tool.

#![allow(dead_code)]

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A tansu broker on a free loopback port, stopped when dropped.
pub struct Broker {
    child: Child,
    pub address: String,
}

impl Broker {
    pub fn start(test: &str) -> Option<Broker> {
        let tansu = super::pipelines::tool_or_skip("tansu", test)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {address}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Broker { child, address })
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &self.address).create().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let results = runtime
            .block_on(admin.create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            ))
            .unwrap();
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
        }
    }

    /// Sends each message to its partition and waits until all are
    /// acknowledged. One message per produce request: tansu 0.6.0 reports a
    /// partition's end (ListOffsets) as its last record batch's base offset
    /// plus one, which is the true end only when each batch holds one
    /// record. (Event Hubs and Kafka report the true end whatever the
    /// batching; `--once` reads up to it.)
    pub fn produce(&self, topic: &str, messages: &[(i32, Vec<u8>)]) {
        let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &self.address).create().unwrap();
        for (partition, payload) in messages {
            producer.flush(Duration::from_secs(30)).unwrap();
            let mut record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(payload.as_slice()).partition(*partition);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        producer.poll(Duration::from_millis(50));
                        record = r;
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Streaming API message with one DeviceProcessEvents record per id.
pub fn message(ids: &[u32]) -> Vec<u8> {
    let records: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"time": "2026-01-01T00:00:05Z", "tenantId": "00000000-0000-0000-0000-000000000001", "operationName": "Publish",
                   "category": "AdvancedHunting-DeviceProcessEvents",
                   "properties": {"Timestamp": "2026-01-01T00:00:01.0000000Z", "DeviceId": "d1", "DeviceName": "pc1.contoso.com",
                                  "ActionType": "ProcessCreated", "ProcessId": id, "FileName": "cmd.exe", "ReportId": id,
                                  "InitiatingProcessId": 4, "MachineGroup": "Tier0", "AdditionalFields": "{\"ProcessStartKey\":1}"}})
        })
        .collect();
    json!({"records": records}).to_string().into_bytes()
}
