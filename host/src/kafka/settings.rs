//! The `source:` section: where a streaming source reads from. `kafka` is
//! the general form; `event_hubs` fills in what Azure Event Hubs' Kafka
//! endpoint needs (port 9093, TLS, SASL PLAIN with `$ConnectionString`).

use anyhow::{Result, anyhow, bail};
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// A Kafka consumer's settings, whichever form they were written in.
#[derive(Clone)]
pub struct Settings {
    /// `host:port` of the bootstrap brokers, comma-separated.
    pub brokers: String,
    /// The topics (Event Hubs) to read.
    pub topics: Vec<String>,
    /// The consumer group: instances in one group share the partitions.
    pub group_id: String,
    /// A stable name for this instance in the group (Kafka static
    /// membership): a restarted instance takes its partitions back at once,
    /// with no rebalance of the others. A StatefulSet pod's name, say.
    pub instance_id: Option<String>,
    /// SASL authentication, if any.
    pub sasl: Option<Sasl>,
    /// TLS, if any.
    pub tls: Option<Tls>,
    /// Before reading the stream for the first time, collect the history
    /// (30 days, or `start_time`) through Graph up to the moment it began.
    pub backfill_with_graph: bool,
    /// The most messages one batch holds.
    pub batch_messages: usize,
    /// How long a batch waits to fill before it is delivered as it is.
    pub batch_wait: Duration,
}

/// SASL credentials. The password never appears in logs or errors.
#[derive(Clone)]
pub struct Sasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

/// TLS towards the brokers.
#[derive(Clone, Debug, Default)]
pub struct Tls {
    /// Trust these CA certificates (PEM) instead of the system's.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("brokers", &self.brokers)
            .field("topics", &self.topics)
            .field("group_id", &self.group_id)
            .field("instance_id", &self.instance_id)
            .field("sasl", &self.sasl.as_ref().map(|s| (&s.mechanism, &s.username, "<redacted>")))
            .field("tls", &self.tls)
            .field("backfill_with_graph", &self.backfill_with_graph)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Written {
    Kafka {
        /// Comma-separated `host:port` list.
        brokers: String,
        topics: Vec<String>,
        group_id: String,
        #[serde(default)]
        instance_id: Option<String>,
        #[serde(default)]
        sasl: Option<WrittenSasl>,
        #[serde(default)]
        tls: Option<WrittenTls>,
        #[serde(default)]
        backfill_with_graph: bool,
        #[serde(default = "default_batch_messages")]
        batch_messages: usize,
        #[serde(default = "default_batch_wait", with = "crate::humantime_serde")]
        batch_wait: Duration,
    },
    EventHubs {
        /// The namespace (`contoso-defender`, or its full host name); taken
        /// from the connection string when left out.
        #[serde(default)]
        namespace: Option<String>,
        /// The event hub; taken from the connection string's `EntityPath`
        /// when left out.
        #[serde(default)]
        event_hub: Option<String>,
        /// The consumer group (`$Default` unless set).
        #[serde(default = "default_consumer_group")]
        consumer_group: String,
        #[serde(default)]
        instance_id: Option<String>,
        /// The shared access policy's connection string
        /// (`Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...`).
        connection_string: String,
        #[serde(default)]
        ca_file: Option<PathBuf>,
        #[serde(default)]
        backfill_with_graph: bool,
        #[serde(default = "default_batch_messages")]
        batch_messages: usize,
        #[serde(default = "default_batch_wait", with = "crate::humantime_serde")]
        batch_wait: Duration,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenSasl {
    #[serde(default = "default_mechanism")]
    mechanism: String,
    username: String,
    password: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WrittenTls {
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

fn default_consumer_group() -> String {
    "$Default".into()
}
fn default_mechanism() -> String {
    "PLAIN".into()
}
fn default_batch_messages() -> usize {
    500
}
fn default_batch_wait() -> Duration {
    Duration::from_secs(1)
}

impl Settings {
    /// Reads the `source:` section, with errors that say what to write.
    pub fn from_value(value: Value) -> Result<Settings> {
        let written: Written = serde_json::from_value(value).map_err(|e| {
            anyhow!(
                "`source`: {e}; write either `type: event_hubs` with `connection_string` (and optionally `namespace`, `event_hub`, \
                 `consumer_group`), or `type: kafka` with `brokers`, `topics`, `group_id` (and optionally `sasl`, `tls`)"
            )
        })?;
        let settings = match written {
            Written::Kafka {
                brokers,
                topics,
                group_id,
                instance_id,
                sasl,
                tls,
                backfill_with_graph,
                batch_messages,
                batch_wait,
            } => Settings {
                brokers,
                topics,
                group_id,
                instance_id,
                sasl: sasl.map(|s| Sasl {
                    mechanism: s.mechanism.to_ascii_uppercase(),
                    username: s.username,
                    password: s.password,
                }),
                tls: tls.map(|t| Tls { ca_file: t.ca_file }),
                backfill_with_graph,
                batch_messages,
                batch_wait,
            },
            Written::EventHubs {
                namespace,
                event_hub,
                consumer_group,
                instance_id,
                connection_string,
                ca_file,
                backfill_with_graph,
                batch_messages,
                batch_wait,
            } => {
                let parts = ConnectionString::parse(&connection_string)?;
                let host = match namespace.or(parts.endpoint_host) {
                    Some(n) if n.contains('.') => n,
                    Some(n) => format!("{n}.servicebus.windows.net"),
                    None => bail!("`source.namespace` is required when the connection string has no `Endpoint=sb://<namespace>...`"),
                };
                let hub = event_hub.or(parts.entity_path).ok_or_else(|| {
                    anyhow!(
                        "`source.event_hub` is required: name the event hub Defender streams to (the connection string has no `EntityPath`)"
                    )
                })?;
                let brokers = if host.contains(':') { host } else { format!("{host}:9093") };
                Settings {
                    brokers,
                    topics: vec![hub],
                    group_id: consumer_group,
                    instance_id,
                    sasl: Some(Sasl {
                        mechanism: "PLAIN".into(),
                        username: "$ConnectionString".into(),
                        password: connection_string,
                    }),
                    tls: Some(Tls { ca_file }),
                    backfill_with_graph,
                    batch_messages,
                    batch_wait,
                }
            }
        };
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<()> {
        if self.brokers.split(',').all(|b| b.trim().is_empty()) {
            bail!("`source.brokers` is empty: list the brokers as host:port, comma-separated");
        }
        for broker in self.brokers.split(',').map(str::trim) {
            let Some((host, port)) = broker.rsplit_once(':') else {
                bail!("`source.brokers`: `{broker}` has no port; write host:port, such as 127.0.0.1:9092");
            };
            if port.parse::<u16>().is_err() {
                bail!("`source.brokers`: `{broker}` has no valid port");
            }
            // Plain text only on loopback, as for the component's own requests.
            if self.tls.is_none() && !is_loopback(host) {
                bail!(
                    "`source.brokers`: `{broker}` is not a loopback address, and the connection would be plain text: \
                     set `tls: {{}}` (and `sasl`) to reach it"
                );
            }
        }
        if self.topics.is_empty() || self.topics.iter().any(|t| t.trim().is_empty()) {
            bail!("`source.topics` must name at least one topic (for Event Hubs, the event hub)");
        }
        if self.instance_id.as_ref().is_some_and(|i| i.trim().is_empty()) {
            bail!("`source.instance_id` is empty: give each instance a stable name of its own, or leave it out");
        }
        if self.group_id.trim().is_empty() {
            bail!("`source.group_id` is empty: instances that share a group split the partitions");
        }
        if let Some(sasl) = &self.sasl
            && !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&sasl.mechanism.as_str())
        {
            bail!(
                "`source.sasl.mechanism` `{}` is not supported: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                sasl.mechanism
            );
        }
        if self.batch_messages == 0 {
            bail!("`source.batch_messages` must be at least 1");
        }
        Ok(())
    }

    /// The librdkafka settings of a consumer in the group.
    pub fn client_config(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("bootstrap.servers", self.brokers.clone()),
            ("group.id", self.group_id.clone()),
            ("client.id", format!("defender-ocsf/{}", env!("CARGO_PKG_VERSION"))),
            // Offsets are committed by hand, after delivery.
            ("enable.auto.commit", "false".into()),
            ("enable.auto.offset.store", "false".into()),
            ("auto.offset.reset", "earliest".into()),
            ("enable.partition.eof", "false".into()),
            ("session.timeout.ms", "10000".into()),
            // Streaming API messages run to about a megabyte (Event Hubs'
            // limit): fetch several per partition and round trip.
            ("max.partition.fetch.bytes", (8 << 20).to_string()),
            ("heartbeat.interval.ms", "1000".into()),
        ];
        if let Some(id) = &self.instance_id {
            out.push(("group.instance.id", id.clone()));
        }
        let protocol = match (&self.tls, &self.sasl) {
            (Some(_), Some(_)) => "SASL_SSL",
            (Some(_), None) => "SSL",
            (None, Some(_)) => "SASL_PLAINTEXT",
            (None, None) => "PLAINTEXT",
        };
        out.push(("security.protocol", protocol.into()));
        if let Some(sasl) = &self.sasl {
            out.push(("sasl.mechanism", sasl.mechanism.clone()));
            out.push(("sasl.username", sasl.username.clone()));
            out.push(("sasl.password", sasl.password.clone()));
        }
        if let Some(ca) = self.tls.as_ref().and_then(|t| t.ca_file.as_ref()) {
            out.push(("ssl.ca.location", ca.display().to_string()));
        } else if self.tls.is_some() {
            out.push(("ssl.ca.location", "probe".into()));
        }
        out
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The parts of an Event Hubs connection string the consumer needs.
struct ConnectionString {
    endpoint_host: Option<String>,
    entity_path: Option<String>,
}

impl ConnectionString {
    fn parse(text: &str) -> Result<ConnectionString> {
        let mut endpoint_host = None;
        let mut entity_path = None;
        let mut has_key = false;
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                bail!("`source.connection_string` is not `Key=Value;...` (copy it from the event hub's shared access policy)");
            };
            match key.to_ascii_lowercase().as_str() {
                "endpoint" => {
                    let host = value.trim_start_matches("sb://").trim_end_matches('/');
                    endpoint_host = Some(host.to_string()).filter(|h| !h.is_empty());
                }
                "entitypath" => entity_path = Some(value.to_string()).filter(|v| !v.is_empty()),
                "sharedaccesskey" | "sharedaccesssignature" => has_key = true,
                _ => {}
            }
        }
        if !has_key {
            bail!(
                "`source.connection_string` has no `SharedAccessKey`: copy the whole connection string of a shared access policy \
                 with the Listen right"
            );
        }
        Ok(ConnectionString {
            endpoint_host,
            entity_path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    const SECRET: &str = "c2VjcmV0LWtleS1ub3QtZm9yLWxvZ3M=";

    #[test]
    fn event_hubs_fills_in_the_kafka_endpoint_and_hides_the_key() {
        let s = Settings::from_value(json!({"type": "event_hubs",
            "connection_string": format!("Endpoint=sb://contoso-defender.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey={SECRET};EntityPath=defender")}))
        .unwrap();
        assert_eq!(s.brokers, "contoso-defender.servicebus.windows.net:9093");
        assert_eq!(
            (s.topics.as_slice(), s.group_id.as_str()),
            (["defender".to_string()].as_slice(), "$Default")
        );
        let config = s.client_config();
        let get = |k: &str| config.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(get("sasl.username"), Some("$ConnectionString"));
        assert!(!format!("{s:?}").contains(SECRET), "{s:?}");
        // The namespace may be given on its own, and the hub when the policy is the namespace's.
        let s = Settings::from_value(
            json!({"type": "event_hubs", "namespace": "other", "event_hub": "hub2", "consumer_group": "siem",
            "connection_string": format!("Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=l;SharedAccessKey={SECRET}")}),
        )
        .unwrap();
        assert_eq!(
            (s.brokers.as_str(), s.topics[0].as_str(), s.group_id.as_str()),
            ("other.servicebus.windows.net:9093", "hub2", "siem")
        );
    }

    #[test]
    fn wrong_settings_say_what_to_write() {
        let err = |v: Value| Settings::from_value(v).unwrap_err().to_string();
        let e = err(json!({"type": "event_hubs", "connection_string": "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=l"}));
        assert!(e.contains("SharedAccessKey"), "{e}");
        let e = err(
            json!({"type": "event_hubs", "connection_string": format!("Endpoint=sb://x.servicebus.windows.net/;SharedAccessKey={SECRET}")}),
        );
        assert!(e.contains("event_hub") && !e.contains(SECRET), "{e}");
        let e = err(json!({"type": "kafka", "brokers": "kafka.internal:9092", "topics": ["t"], "group_id": "g"}));
        assert!(e.contains("plain text") && e.contains("tls"), "{e}");
        let e = err(json!({"type": "kafka", "brokers": "127.0.0.1", "topics": ["t"], "group_id": "g"}));
        assert!(e.contains("no port"), "{e}");
        let e = err(json!({"type": "kafka", "brokers": "127.0.0.1:9092", "topics": [], "group_id": "g"}));
        assert!(e.contains("topics"), "{e}");
        let e = err(json!({"type": "kafka", "brokers": "127.0.0.1:9092", "topics": ["t"], "group_id": "g", "groupid": "x"}));
        assert!(e.contains("groupid"), "{e}");
        let e = err(json!({"type": "nats"}));
        assert!(e.contains("event_hubs") && e.contains("kafka"), "{e}");
        let ok = Settings::from_value(
            json!({"type": "kafka", "brokers": "127.0.0.1:9092,[::1]:9093", "topics": ["t"], "group_id": "g", "batch_wait": "250ms",
            "sasl": {"username": "u", "password": "p"}}),
        )
        .unwrap();
        assert_eq!(
            (ok.batch_wait, ok.sasl.as_ref().map(|s| s.mechanism.as_str())),
            (Duration::from_millis(250), Some("PLAIN"))
        );
    }
}
