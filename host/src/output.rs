//! Where batches go. Every sink returns only once the batch is as delivered
//! as that sink can tell; only then is the batch's checkpoint saved.

use anyhow::Result;
use std::io::{ErrorKind, Write};

/// The batch was not delivered and the run should stop without saving its
/// checkpoint: the reader of stdout went away, or a stop was requested
/// while a receiver was refusing the batch.
#[derive(Debug)]
pub struct Undelivered(pub String);

impl std::fmt::Display for Undelivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Undelivered {}

pub trait Sink {
    /// Delivers NDJSON `events` (`count` lines).
    fn deliver(&mut self, events: &[u8], count: u32) -> Result<()>;
}

/// NDJSON on stdout, for Vector's `exec` source. "Delivered" here means
/// written and flushed into the pipe: accepted by the reader, no more.
pub struct Stdout<W: Write> {
    out: W,
}

impl<W: Write> Stdout<W> {
    pub fn new(out: W) -> Self {
        Stdout { out }
    }
}

impl<W: Write> Sink for Stdout<W> {
    fn deliver(&mut self, events: &[u8], _count: u32) -> Result<()> {
        let result = self.out.write_all(events).and_then(|_| self.out.flush());
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => Err(Undelivered("the reader of stdout closed the pipe".into()).into()),
            Err(e) => Err(anyhow::Error::new(e).context("writing events to stdout")),
        }
    }
}

/// NDJSON batches POSTed to an HTTP receiver: Vector's `http_server` source,
/// which with acknowledgements answers only once its sinks have the events,
/// or Fluent Bit's `http` input. A batch counts as delivered on a 2xx answer
/// only; anything else is retried, with backoff, until it is accepted or a
/// stop is requested. One batch at a time: a slow receiver slows collection
/// down instead of filling memory.
pub struct Http {
    client: reqwest::blocking::Client,
    url: String,
    headers: reqwest::header::HeaderMap,
    gzip: bool,
    shutdown: std::sync::Arc<std::sync::atomic::AtomicBool>,
    max_attempts: Option<u32>,
}

impl Http {
    pub fn new(config: &crate::config::HttpOutput, shutdown: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Result<Http> {
        use anyhow::Context;
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(std::time::Duration::from_secs(30));
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).with_context(|| format!("reading `output.ca_file` {}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("`output.ca_file` {} is not a PEM certificate bundle", path.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            "application/x-ndjson".parse().expect("a valid header"),
        );
        for (name, value) in &config.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| anyhow::anyhow!("`output.headers` has an invalid header name `{name}`"))?;
            let mut value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| anyhow::anyhow!("`output.headers.{name}` has a value that is not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let gzip = config.compression == crate::config::Compression::Gzip;
        if gzip {
            headers.insert(reqwest::header::CONTENT_ENCODING, "gzip".parse().expect("a valid header"));
        }
        Ok(Http {
            client: builder.build().context("building the HTTP client")?,
            url: config.url.clone(),
            headers,
            gzip,
            shutdown,
            max_attempts: None,
        })
    }

    /// Gives a batch up after `attempts` failed sends (`run --once`), with
    /// the last failure's message, instead of re-sending it for ever.
    pub fn give_up_after(mut self, attempts: u32) -> Http {
        self.max_attempts = Some(attempts.max(1));
        self
    }
}

impl Sink for Http {
    fn deliver(&mut self, events: &[u8], count: u32) -> Result<()> {
        use std::sync::atomic::Ordering;
        let body = if self.gzip {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(events)?;
            encoder.finish()?
        } else {
            events.to_vec()
        };
        let mut attempt = 0u32;
        loop {
            let outcome = self.client.post(&self.url).headers(self.headers.clone()).body(body.clone()).send();
            let reason = match outcome {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let text: String = response.text().unwrap_or_default().chars().take(300).collect();
                    format!("the receiver answered {status}: {text}")
                }
                Err(e) => format!("the request failed: {e}"),
            };
            attempt += 1;
            if self.max_attempts.is_some_and(|max| attempt >= max) {
                anyhow::bail!("the receiver {} did not take the batch in {attempt} attempts: {reason}", self.url);
            }
            let wait = std::time::Duration::from_millis((500u64 << attempt.min(7)).min(60_000));
            tracing::warn!(
                url = %self.url, events = count, attempt, retry_in_ms = wait.as_millis() as u64,
                "batch not delivered, retrying; the checkpoint stays before it: {reason}"
            );
            let until = std::time::Instant::now() + wait;
            while std::time::Instant::now() < until {
                if self.shutdown.load(Ordering::SeqCst) {
                    return Err(Undelivered(format!("stop requested while the receiver refused the batch ({reason})")).into());
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// Nanoseconds of the wall clock, for ids that must differ across runs.
pub fn nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
