//! The Fluentd Forward protocol (v1) to Fluent Bit's or Fluentd's
//! `in_forward`: each batch is one PackedForward message with a `chunk` id,
//! and counts as delivered only when the receiver answers `{"ack": id}`.
//! With `shared_key`, the HELO/PING/PONG handshake authenticates both ends.
//! Encoding is `rmpv`'s MessagePack.

use crate::sink::{Sink, Undelivered};
use anyhow::{Context, Result, anyhow, bail};
use rmpv::Value as Mp;
use sha2::{Digest, Sha512};
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Settings of the `forward` output.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardOutput {
    /// `host:port` of the `in_forward` input (Fluent Bit's default port is 24224).
    pub address: String,
    /// The tag of every record.
    #[serde(default = "default_tag")]
    pub tag: String,
    /// The input's `Shared_Key`, to authenticate with; usually `${VAR}`.
    #[serde(default)]
    pub shared_key: Option<String>,
    /// The name this client gives in the handshake.
    #[serde(default = "default_self_hostname")]
    pub self_hostname: String,
    /// How long to wait for the receiver's ack.
    #[serde(default = "default_ack_timeout", with = "crate::humantime_serde")]
    pub timeout: Duration,
}

impl std::fmt::Debug for ForwardOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardOutput")
            .field("address", &self.address)
            .field("tag", &self.tag)
            .field("shared_key", &self.shared_key.as_ref().map(|_| "<redacted>"))
            .field("self_hostname", &self.self_hostname)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub fn default_tag() -> String {
    "defender.ocsf".into()
}
pub fn default_self_hostname() -> String {
    "defender-ocsf".into()
}
pub fn default_ack_timeout() -> Duration {
    Duration::from_secs(60)
}

/// How long to wait for the receiver's HELO before saying it has no
/// Shared_Key (at most the ack timeout).
const HELO_TIMEOUT: Duration = Duration::from_secs(10);

/// The receiver answered the handshake and refused us: sending again with
/// the same key cannot succeed.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Refused {}

/// What a failed read while waiting for the handshake's `expected` message
/// (HELO or PONG) usually means, in words that say what to check.
fn handshake_error(config: &ForwardOutput, expected: &str, e: &rmpv::decode::Error) -> anyhow::Error {
    use std::io::ErrorKind;
    let kind = match e {
        rmpv::decode::Error::InvalidMarkerRead(io) | rmpv::decode::Error::InvalidDataRead(io) => Some(io.kind()),
        rmpv::decode::Error::DepthLimitExceeded => None,
    };
    let address = &config.address;
    match kind {
        Some(ErrorKind::WouldBlock | ErrorKind::TimedOut) if expected == "HELO" => anyhow!(
            "the forward receiver {address} sent no HELO within {}s: its input has no Shared_Key set; set the same key there as \
             `output.shared_key`, or remove `output.shared_key`",
            config.timeout.min(HELO_TIMEOUT).as_secs()
        ),
        Some(ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => anyhow!(
            "the forward receiver {address} closed the connection during the shared-key handshake (waiting for its {expected}): \
             this usually means its Shared_Key differs from `output.shared_key`, or it has no Shared_Key set; its log says which"
        ),
        _ => anyhow!("waiting for the forward receiver's {expected}: {e}"),
    }
}

fn hex_sha512(parts: &[&[u8]]) -> String {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn as_bytes(v: &Mp) -> Option<Vec<u8>> {
    match v {
        Mp::Binary(b) => Some(b.clone()),
        Mp::String(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

fn field<'a>(map: &'a Mp, key: &str) -> Option<&'a Mp> {
    map.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}

pub struct Forward {
    config: ForwardOutput,
    connection: Option<(TcpStream, BufReader<TcpStream>)>,
    shutdown: Arc<AtomicBool>,
    sequence: u64,
    max_attempts: Option<u32>,
}

impl Forward {
    /// A sink that re-sends an unacknowledged batch until the receiver acks
    /// it or `shutdown` is set.
    pub fn new(config: &ForwardOutput, shutdown: Arc<AtomicBool>) -> Forward {
        Forward {
            config: config.clone(),
            connection: None,
            shutdown,
            sequence: 0,
            max_attempts: None,
        }
    }

    /// Gives a batch up after `attempts` failed sends (`run --once`), with
    /// the last failure's message, instead of re-sending it for ever.
    pub fn give_up_after(mut self, attempts: u32) -> Forward {
        self.max_attempts = Some(attempts.max(1));
        self
    }

    fn connect(&mut self) -> Result<()> {
        let stream = TcpStream::connect(&self.config.address)
            .with_context(|| format!("connecting to the forward receiver {}", self.config.address))?;
        stream.set_read_timeout(Some(self.config.timeout))?;
        stream.set_write_timeout(Some(self.config.timeout))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut writer = stream;
        if let Some(key) = &self.config.shared_key {
            // A receiver without Shared_Key sends no HELO: do not wait the
            // whole ack timeout to say so.
            writer.set_read_timeout(Some(self.config.timeout.min(HELO_TIMEOUT)))?;
            // HELO: ["HELO", {"nonce", "auth", "keepalive"}]
            let helo = rmpv::decode::read_value(&mut reader).map_err(|e| handshake_error(&self.config, "HELO", &e))?;
            writer.set_read_timeout(Some(self.config.timeout))?;
            let options = helo
                .as_array()
                .filter(|a| a.first().and_then(Mp::as_str) == Some("HELO"))
                .and_then(|a| a.get(1))
                .ok_or_else(|| anyhow!("the receiver did not start with HELO"))?;
            let nonce = field(options, "nonce").and_then(as_bytes).unwrap_or_default();
            let salt = format!("{:x}", crate::sink::nanos_now());
            let host = self.config.self_hostname.as_bytes();
            let digest = hex_sha512(&[salt.as_bytes(), host, &nonce, key.as_bytes()]);
            // PING: ["PING", self_hostname, shared_key_salt, digest, username, password digest].
            // The salt is a str: Fluent Bit's in_forward refuses a bin salt
            // ("Invalid shared_key_salt type message") and closes the connection.
            let ping = Mp::Array(vec![
                Mp::from("PING"),
                Mp::from(self.config.self_hostname.as_str()),
                Mp::from(salt.as_str()),
                Mp::from(digest),
                Mp::from(""),
                Mp::from(""),
            ]);
            // In one write: Fluent Bit reads the PING with a single read and
            // fails the handshake on a partial message, which an encoder
            // writing field by field into the socket produces under load.
            let mut message = Vec::new();
            rmpv::encode::write_value(&mut message, &ping)?;
            writer.write_all(&message)?;
            writer.flush()?;
            // PONG: ["PONG", ok, reason, server_hostname, digest]
            let pong = rmpv::decode::read_value(&mut reader).map_err(|e| handshake_error(&self.config, "PONG", &e))?;
            let items = pong.as_array().ok_or_else(|| anyhow!("the receiver did not answer PONG"))?;
            if items.first().and_then(Mp::as_str) != Some("PONG") {
                bail!("the receiver did not answer PONG");
            }
            if items.get(1).and_then(Mp::as_bool) != Some(true) {
                let reason = items.get(2).and_then(Mp::as_str).unwrap_or("no reason given");
                return Err(Refused(format!(
                    "the forward receiver refused the shared key ({reason}); check `output.shared_key` against its Shared_Key"
                ))
                .into());
            }
            let server = items.get(3).and_then(as_bytes).unwrap_or_default();
            let expected = hex_sha512(&[salt.as_bytes(), &server, &nonce, key.as_bytes()]);
            if items.get(4).and_then(as_bytes).as_deref() != Some(expected.as_bytes()) {
                return Err(Refused(
                    "the forward receiver's PONG digest is wrong: it does not know the shared key; check `output.shared_key` against its Shared_Key".into(),
                )
                .into());
            }
        }
        self.connection = Some((writer, reader));
        Ok(())
    }

    /// Connects, with the shared-key handshake when one is set, and closes
    /// the connection again (`check`).
    pub fn probe(&mut self) -> Result<()> {
        let connected = self.connect();
        self.connection = None;
        connected
    }

    /// Sends one PackedForward message and waits for its ack.
    fn send(&mut self, message: &[u8], chunk: &str) -> Result<()> {
        if self.connection.is_none() {
            self.connect()?;
        }
        let (writer, reader) = self.connection.as_mut().expect("connected above");
        writer.write_all(message)?;
        writer.flush()?;
        let answer = rmpv::decode::read_value(reader).context("waiting for the receiver's ack")?;
        match field(&answer, "ack").and_then(Mp::as_str) {
            Some(ack) if ack == chunk => Ok(()),
            Some(other) => bail!("the receiver acked chunk {other}, not {chunk}"),
            None => bail!("the receiver answered without an ack"),
        }
    }
}

impl Sink for Forward {
    fn deliver(&mut self, events: &[u8], count: u32) -> Result<()> {
        let entries = crate::msgpack::event_entries(events)?;
        self.sequence += 1;
        let chunk = format!("{:016x}{:08x}", std::process::id() as u64 ^ crate::sink::nanos_now(), self.sequence);
        let message = Mp::Array(vec![
            Mp::from(self.config.tag.as_str()),
            Mp::Binary(entries),
            Mp::Map(vec![
                (Mp::from("chunk"), Mp::from(chunk.as_str())),
                (Mp::from("size"), Mp::from(count)),
            ]),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &message)?;
        let mut attempt = 0u32;
        loop {
            let (reason, refused) = match self.send(&bytes, &chunk) {
                Ok(()) => return Ok(()),
                Err(e) => (format!("{e:#}"), e.is::<Refused>()),
            };
            // The connection state is unknown after a failure: start afresh.
            self.connection = None;
            attempt += 1;
            if refused {
                return Err(anyhow!(reason));
            }
            if self.max_attempts.is_some_and(|max| attempt >= max) {
                bail!(
                    "the forward receiver {} did not take the batch in {attempt} attempts: {reason}",
                    self.config.address
                );
            }
            let wait = Duration::from_millis((500u64 << attempt.min(7)).min(60_000));
            tracing::warn!(
                address = %self.config.address, events = count, attempt, retry_in_ms = wait.as_millis() as u64,
                "batch not acknowledged, re-sending; the checkpoint stays before it: {reason}"
            );
            let until = std::time::Instant::now() + wait;
            while std::time::Instant::now() < until {
                if self.shutdown.load(Ordering::SeqCst) {
                    return Err(Undelivered(format!("stop requested while the batch was unacknowledged ({reason})")).into());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
