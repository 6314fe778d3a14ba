//! Where batches go. Every sink returns only once the batch is as delivered
//! as that sink can tell; only then is the batch's checkpoint saved.

pub use crate::sink::{Sink, Undelivered};
use anyhow::Result;
use std::io::{ErrorKind, Write};
use std::path::PathBuf;

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
    pub fn new(config: &crate::output::HttpOutput, shutdown: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Result<Http> {
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
        let gzip = config.compression == crate::output::Compression::Gzip;
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

/// Settings of the `http` output.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOutput {
    /// The receiver's URL, such as `http://127.0.0.1:8080/` for a Vector
    /// `http_server` source with acknowledgements.
    pub url: String,
    /// Extra request headers, such as `Authorization: Bearer ${TOKEN}`.
    /// Their values are never logged.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// `gzip` compresses each request body; `none` (the default) does not.
    #[serde(default)]
    pub compression: Compression,
    /// A PEM file of CA certificates to trust as well as the public roots
    /// (a private CA, or a TLS-inspecting proxy).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How long to wait for an answer; Vector answers only once the batch
    /// is delivered, so allow for its sinks.
    #[serde(default = "default_http_timeout", with = "crate::humantime_serde")]
    pub timeout: std::time::Duration,
}

impl std::fmt::Debug for HttpOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOutput")
            .field("url", &self.url)
            .field("headers", &self.headers.keys().map(|k| (k, "<redacted>")).collect::<Vec<_>>())
            .field("compression", &self.compression)
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub fn default_http_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(120)
}

/// Request body compression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
}
