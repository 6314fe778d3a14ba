//! The run loop: init the component, then poll, deliver, and save the
//! checkpoint, in that order, so a checkpoint never runs ahead of delivery.

use crate::clock::Clock;
use crate::config::RunConfig;
use crate::egress::Egress;
use crate::output::{Sink, Undelivered};
use crate::runtime::{Limits, Runtime, SourceError};
use crate::state::CheckpointStore;
use crate::telemetry::{Health, Telemetry};
use anyhow::{Result, anyhow, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the run loop logs a one-line summary.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// How a run ended, for the exit code.
#[derive(Debug)]
pub enum Failure {
    /// The configuration or the credentials need fixing (exit 2).
    Config(String),
    /// Anything else (exit 1).
    Other(anyhow::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Config(m) => f.write_str(m),
            Failure::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub batches: u64,
    pub events: u64,
    /// A batch could not be delivered (stdout closed, or a stop while the
    /// receiver refused it); the run stopped cleanly without its checkpoint.
    pub undelivered: bool,
}

/// Options that do not come from the configuration file.
pub struct RunOptions<'a> {
    /// The component to run; `None` runs the embedded one.
    pub component: Option<&'a [u8]>,
    /// Stop once the first collection cycle is complete.
    pub once: bool,
    pub limits: Limits,
    /// Set to stop between batches.
    pub shutdown: Arc<AtomicBool>,
    /// Held while a batch is delivered and its checkpoint saved, so that a
    /// forced exit never lands in between.
    pub critical: Arc<std::sync::Mutex<()>>,
    /// How many consecutive temporary failures `once` tolerates.
    pub max_retries: u32,
    /// Real time, or compressed time for a soak run.
    pub clock: Clock,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            component: None,
            once: false,
            limits: Limits::default(),
            shutdown: Arc::new(AtomicBool::new(false)),
            critical: Arc::new(std::sync::Mutex::new(())),
            max_retries: 5,
            clock: Clock::default(),
        }
    }
}

/// Runs a source until `once` completes, `shutdown` is set, or it fails.
pub fn run(config: &RunConfig, options: &RunOptions, sink: &mut dyn Sink, telemetry: Arc<Telemetry>) -> Result<Summary, Failure> {
    if let Some(stream) = &config.stream {
        return crate::kafka::run(config, stream, options, sink, telemetry);
    }
    let bytes = options.component.unwrap_or(crate::runtime::DEFAULT_COMPONENT);
    crate::state::probe_writable(&config.state_dir).map_err(config_failure)?;
    let runtime = runtime(config, bytes, Some(&config.state_dir.join("cache")))?.with_clock(options.clock.clone());
    let store = CheckpointStore::new(&config.state_dir);
    let saved = store.load()?;
    let metrics = telemetry.clone();
    // Present from the start, at 0, as Prometheus expects.
    metrics.counter_add("throttled_total", vec![], 0);
    metrics.counter_add("batches_delivered_total", vec![], 0);
    for kind in crate::telemetry::ERROR_KINDS {
        metrics.counter_add("errors_total", vec![("kind".into(), (*kind).into())], 0);
    }
    metrics.set_health(Health::Starting);
    let mut instance = runtime.instantiate(&options.limits, telemetry)?;
    let info = match instance.init(&config.source_json(), saved.as_ref().map(|s| s.checkpoint.as_str()))? {
        Ok(info) => info,
        Err(e) => {
            let failure = init_failure(config, e, "starting");
            metrics.set_health(Health::Failing(failure.to_string()));
            return Err(failure);
        }
    };
    if let Some(saved) = &saved {
        store.check_source(saved, &info.name)?;
    }
    tracing::info!(
        source = %info.name,
        version = %info.version,
        contract = instance.contract(),
        network = %instance.allowed_origins().join(", "),
        checkpoint = %store.path().display(),
        resumed = saved.is_some(),
        "collecting"
    );

    let mut summary = Summary::default();
    let mut failures = 0u32;
    let mut throttled = 0u32;
    let mut last_summary = Instant::now();
    while !options.shutdown.load(Ordering::SeqCst) {
        let batch = match instance.poll()? {
            Ok(batch) => {
                failures = 0;
                throttled = 0;
                metrics.set_health(Health::Ready);
                batch
            }
            Err(SourceError::Throttled(t)) => {
                metrics.counter_add("throttled_total", vec![], 1);
                // Bounded as temporary failures are: a throttling that never
                // lifts must not hold `--once` for ever.
                throttled += 1;
                if options.once && throttled > options.max_retries {
                    return Err(Failure::Other(anyhow!(
                        "giving up after {throttled} throttled attempts in a row: {}",
                        t.message
                    )));
                }
                tracing::warn!(retry_after_ms = t.retry_after_ms, attempt = throttled, "throttled by the API: {}", t.message);
                options.clock.sleep(Duration::from_millis(t.retry_after_ms), &options.shutdown);
                continue;
            }
            Err(SourceError::Transient(message)) => {
                metrics.counter_add("errors_total", vec![("kind".into(), "transient".into())], 1);
                metrics.set_health(Health::Failing(format!("temporary failure: {message}")));
                failures += 1;
                if options.once && failures > options.max_retries {
                    return Err(Failure::Other(anyhow!("giving up after {failures} attempts: {message}")));
                }
                let wait = backoff(failures);
                tracing::warn!(
                    attempt = failures,
                    retry_in_ms = wait.as_millis() as u64,
                    "temporary failure: {message}"
                );
                options.clock.sleep(wait, &options.shutdown);
                continue;
            }
            Err(e) => {
                let kind = match &e {
                    SourceError::Config(_) => "config",
                    SourceError::Auth(_) => "auth",
                    SourceError::Permission(_) => "permission",
                    _ => "fatal",
                };
                metrics.counter_add("errors_total", vec![("kind".into(), kind.into())], 1);
                let failure = source_failure(e, "collecting");
                metrics.set_health(Health::Failing(failure.to_string()));
                return Err(failure);
            }
        };
        let guard = options.critical.lock().unwrap_or_else(|p| p.into_inner());
        if options.shutdown.load(Ordering::SeqCst) {
            tracing::info!("stop requested; the last batch is not delivered and is collected again at the next start");
            break;
        }
        if batch.count > 0 {
            match sink.deliver(&batch.events, batch.count) {
                Ok(()) => {}
                Err(e) if e.is::<Undelivered>() => {
                    tracing::info!("{e}; stopping without saving the undelivered batch's checkpoint");
                    summary.undelivered = true;
                    return Ok(summary);
                }
                Err(e) => return Err(Failure::Other(e)),
            }
        }
        store.save(&info.name, &batch.checkpoint)?;
        drop(guard);
        summary.batches += 1;
        summary.events += u64::from(batch.count);
        let now_s = options
            .clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metrics.gauge_set("last_success_timestamp_seconds", vec![], now_s);
        metrics.counter_add("batches_delivered_total", vec![], 1);
        if last_summary.elapsed() >= SUMMARY_EVERY {
            last_summary = Instant::now();
            tracing::info!(
                events = summary.events,
                batches = summary.batches,
                max_lag_seconds = metrics.gauge_max("lag_seconds").unwrap_or(0.0),
                unmappable_rows = metrics.counter_total("rows_unmappable_total"),
                late_rows = metrics.counter_total("late_rows_total"),
                "summary"
            );
        }
        if batch.next_poll_ms > 0 {
            if options.once {
                break;
            }
            options.clock.sleep(Duration::from_millis(batch.next_poll_ms), &options.shutdown);
        }
    }
    tracing::info!(batches = summary.batches, events = summary.events, "stopped");
    Ok(summary)
}

/// Runs each tenant of `configs` (see [`RunConfig::instances`]) in a thread
/// of its own, with its own component instance, checkpoint and call budget,
/// all delivering into `sink`. A tenant that fails is logged with its id and
/// never stops the others; without `once` it is started again after
/// [`TENANT_RESTART`]. Each tenant's metrics carry its `tenant` label.
/// With one tenant this is [`run`].
pub fn run_tenants(
    configs: &[RunConfig],
    options: &RunOptions,
    sink: &mut (dyn Sink + Send),
    telemetry: Arc<Telemetry>,
) -> Result<Summary, Failure> {
    if let [config] = configs {
        return run(config, options, sink, telemetry);
    }
    let shared = SharedSink(std::sync::Mutex::new(sink));
    let results: Vec<(String, Result<Summary, Failure>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = configs
            .iter()
            .map(|config| {
                let tenant = config.tenant_id().to_string();
                let (shared, telemetry) = (&shared, Arc::new(telemetry.labelled("tenant", &tenant)));
                let worker = std::thread::Builder::new()
                    .name(format!("tenant-{tenant}"))
                    .spawn_scoped(scope, move || run_tenant(config, options, shared, telemetry));
                (tenant, worker)
            })
            .collect();
        workers
            .into_iter()
            .map(|(tenant, worker)| {
                let result = match worker {
                    Ok(handle) => handle
                        .join()
                        .unwrap_or_else(|_| Err(Failure::Other(anyhow!("the collector of tenant {tenant} panicked")))),
                    Err(e) => Err(Failure::Other(anyhow!("starting the collector of tenant {tenant}: {e}"))),
                };
                (tenant, result)
            })
            .collect()
    });
    let mut summary = Summary::default();
    let mut failed = Vec::new();
    for (tenant, result) in results {
        match result {
            Ok(s) => {
                summary.batches += s.batches;
                summary.events += s.events;
                summary.undelivered |= s.undelivered;
            }
            Err(e) => failed.push((tenant, e)),
        }
    }
    match failed.len() {
        0 => Ok(summary),
        n => {
            let names: Vec<String> = failed.iter().map(|(t, e)| format!("{t} ({e})")).collect();
            let message = format!("{n} of {} tenants failed: {}", configs.len(), names.join("; "));
            if failed.iter().any(|(_, e)| matches!(e, Failure::Config(_))) {
                Err(Failure::Config(message))
            } else {
                Err(Failure::Other(anyhow!(message)))
            }
        }
    }
}

/// How long a failed tenant rests before it is started again.
pub const TENANT_RESTART: Duration = Duration::from_secs(15 * 60);

fn run_tenant(config: &RunConfig, options: &RunOptions, sink: &SharedSink<'_>, telemetry: Arc<Telemetry>) -> Result<Summary, Failure> {
    let tenant = config.tenant_id();
    let _span = tracing::info_span!("tenant", tenant = %tenant).entered();
    loop {
        let mut sink = sink;
        match run(config, options, &mut sink, telemetry.clone()) {
            Ok(summary) => return Ok(summary),
            Err(e) if options.once || options.shutdown.load(Ordering::SeqCst) => {
                tracing::error!(tenant = %tenant, "tenant {tenant} stopped: {e}; the other tenants go on");
                return Err(e);
            }
            Err(e) => {
                tracing::error!(
                    tenant = %tenant,
                    "tenant {tenant} stopped: {e}; the other tenants go on, and this one starts again in {} min",
                    TENANT_RESTART.as_secs() / 60
                );
                options.clock.sleep(TENANT_RESTART, &options.shutdown);
                if options.shutdown.load(Ordering::SeqCst) {
                    return Err(e);
                }
            }
        }
    }
}

/// One sink shared by the tenants' threads, a batch at a time.
struct SharedSink<'a>(std::sync::Mutex<&'a mut (dyn Sink + Send)>);

impl Sink for &SharedSink<'_> {
    fn deliver(&mut self, events: &[u8], count: u32) -> Result<()> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).deliver(events, count)
    }
}

/// The component compiled (or loaded from `cache`), with the egress and the
/// client certificate `config` asks for.
pub(crate) fn runtime(config: &RunConfig, component: &[u8], cache: Option<&std::path::Path>) -> Result<Runtime, Failure> {
    let certificate = config
        .client_certificate
        .as_ref()
        .map(|c| c.load())
        .transpose()
        .map_err(config_failure)?;
    Ok(Runtime::new(component, cache)?
        .with_egress(Egress::new(config.egress.clone()).map_err(config_failure)?)
        .with_certificate(certificate))
}

/// A component instance for `config`, not yet initialised (a stream needs
/// only its `convert` export): the state directory must be writable, as the
/// compiled component is cached there.
pub(crate) fn instance(config: &RunConfig, options: &RunOptions, telemetry: Arc<Telemetry>) -> Result<crate::runtime::Instance, Failure> {
    crate::state::probe_writable(&config.state_dir).map_err(config_failure)?;
    let bytes = options.component.unwrap_or(crate::runtime::DEFAULT_COMPONENT);
    let runtime = runtime(config, bytes, Some(&config.state_dir.join("cache")))?;
    Ok(runtime.instantiate(&options.limits, telemetry)?)
}

/// A setting the host could not use (a proxy URL, a certificate file): fix
/// the configuration.
fn config_failure(e: anyhow::Error) -> Failure {
    Failure::Config(format!("{e:#}"))
}

/// [`source_failure`] for the component's `init`, whose configuration errors
/// are about `config`: they point at the line and suggest the key.
fn init_failure(config: &RunConfig, e: SourceError, doing: &str) -> Failure {
    match e {
        SourceError::Config(m) => Failure::Config(format!("configuration error: {}", config.explain(&m))),
        other => source_failure(other, doing),
    }
}

fn source_failure(e: SourceError, doing: &str) -> Failure {
    match e {
        SourceError::Config(m) => Failure::Config(format!("configuration error: {m}")),
        SourceError::Auth(m) => Failure::Config(format!("authentication failed: {m}")),
        SourceError::Permission(m) => Failure::Config(format!("permission missing: {m}")),
        SourceError::Fatal(m) => Failure::Other(anyhow!("{doing} failed: {m}")),
        SourceError::Transient(m) => Failure::Other(anyhow!("{doing} failed: {m}")),
        SourceError::Throttled(t) => Failure::Other(anyhow!("{doing} failed: throttled: {}", t.message)),
    }
}

/// 1 s, 2 s, 4 s ... up to 5 minutes, with up to 25% jitter.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.saturating_sub(1).min(8)).min(Duration::from_secs(300));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 250) / 1000.0)
}

/// What `check` found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// A step failed.
    pub failed: bool,
    /// A failed step is the configuration's or the credentials' (exit 2).
    pub to_fix: bool,
    /// Steps that passed with a warning.
    pub warnings: usize,
}

impl Checked {
    /// The exit code of `check`, as for `run`: 2 for a configuration or the
    /// credentials to fix, 1 for any other failure, 0 when every step passed
    /// (warnings allowed).
    pub fn exit_code(&self) -> u8 {
        match (self.to_fix, self.failed) {
            (true, _) => 2,
            (false, true) => 1,
            (false, false) => 0,
        }
    }

    pub fn and(self, other: Checked) -> Checked {
        Checked {
            failed: self.failed || other.failed,
            to_fix: self.to_fix || other.to_fix,
            warnings: self.warnings + other.warnings,
        }
    }
}

/// How a `check` step that passed with a warning begins its detail.
pub(crate) const WARNING: &str = "warning: ";

/// `defender-ocsf check`: the configuration, the state directory, the
/// output, then the component's own checks (credentials, one tiny request
/// per data source). Prints one PASS, WARN or FAIL line per step to `out`.
pub fn check(config: &RunConfig, component: Option<&[u8]>, out: &mut dyn std::io::Write) -> Result<Checked, Failure> {
    let mut checked = Checked::default();
    let mut line = |ok: bool, to_fix: bool, name: &str, detail: &str| -> Result<(), Failure> {
        let (label, detail) = match (ok, detail.strip_prefix(WARNING)) {
            (true, Some(warning)) => {
                checked.warnings += 1;
                ("WARN", warning)
            }
            (true, None) => ("PASS", detail),
            (false, _) => {
                checked.failed = true;
                checked.to_fix |= to_fix;
                ("FAIL", detail)
            }
        };
        writeln!(out, "{label}  {name}: {detail}").map_err(|e| Failure::Other(e.into()))
    };
    let runtime = runtime(config, component.unwrap_or(crate::runtime::DEFAULT_COMPONENT), None)?;
    let mut instance = runtime.instantiate(&Limits::default(), Arc::new(Telemetry::default()))?;
    // A stream without a Graph backfill never calls `init`: it has no Graph settings.
    let graph = config.stream.as_ref().is_none_or(|s| s.backfill_with_graph);
    if !graph {
        line(true, true, "configuration", &format!("stream source; component contract {}", instance.contract()))?;
    } else {
        match instance.init(&config.source_json(), None)? {
            Ok(info) => line(
                true,
                true,
                "configuration",
                &format!(
                    "{} {}; network access to {}",
                    info.name,
                    info.version,
                    instance.allowed_origins().join(", ")
                ),
            )?,
            Err(e) => {
                let failure = init_failure(config, e, "checking");
                line(false, true, "configuration", &failure.to_string())?;
                return Err(failure);
            }
        }
    }
    match crate::state::probe_writable(&config.state_dir) {
        Ok(()) => line(true, true, "state directory", &format!("{} is writable", config.state_dir.display()))?,
        Err(e) => line(false, true, "state directory", &format!("{e:#}"))?,
    }
    match probe_output(&config.output) {
        Ok(detail) => line(true, false, "output", &detail)?,
        Err(e) => line(false, false, "output", &format!("{e:#}"))?,
    }
    if let Some(stream) = &config.stream {
        // The brokers, the partitions, one message read and mapped.
        for (ok, name, detail) in crate::kafka::check(config, stream, &mut instance) {
            line(ok, false, &name, &detail)?;
        }
    }
    if graph {
        for step in instance.check()? {
            let credentials = step.name.starts_with("credentials");
            line(step.ok, credentials, &step.name, &step.detail)?;
        }
    }
    Ok(checked)
}

/// Whether events can reach the output: the HTTP receiver or the forward
/// receiver accepts a connection (the forward one also the shared-key
/// handshake); stdout needs nothing.
fn probe_output(output: &crate::config::OutputConfig) -> anyhow::Result<String> {
    use crate::config::OutputConfig;
    use anyhow::Context;
    match output {
        OutputConfig::Stdout => Ok("events go to stdout, one OCSF object per line".into()),
        OutputConfig::Http(http) => {
            let url = reqwest::Url::parse(&http.url).with_context(|| format!("`output.url` {} is not a URL", http.url))?;
            let host = url.host_str().context("`output.url` has no host")?;
            let port = url.port_or_known_default().context("`output.url` has no port")?;
            let address = format!("{host}:{port}");
            connect(&address).map(|()| format!("{address} accepts connections ({})", http.url))
        }
        OutputConfig::Forward(forward) => {
            let mut sink = crate::forward::Forward::new(forward, Arc::new(AtomicBool::new(false)));
            sink.probe()?;
            Ok(match forward.shared_key {
                Some(_) => format!("{} accepts connections and the shared key", forward.address),
                None => format!("{} accepts connections", forward.address),
            })
        }
    }
}

/// Opens and closes a TCP connection to `address`, with a short timeout.
fn connect(address: &str) -> anyhow::Result<()> {
    use std::net::ToSocketAddrs;
    let addresses: Vec<_> = address
        .to_socket_addrs()
        .map_err(|e| anyhow!("cannot resolve {address}: {e}"))?
        .collect();
    let mut last = None;
    for a in addresses {
        match std::net::TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            bail!("{address}: connection refused; is the receiver running and listening there?")
        }
        Some(e) => bail!("{address}: {e}"),
        None => bail!("{address} resolves to no address"),
    }
}

/// Starts the component with `config` as [`run`] would, without collecting:
/// the state directory must be writable and the component must accept the
/// settings. A program that embeds the collector (the Fluent Bit plugin)
/// calls it to refuse a bad configuration at once, with the message `run`
/// would give. It needs no network; the compiled component is cached in
/// the state directory for the run that follows.
pub fn preflight(config: &RunConfig, component: Option<&[u8]>) -> Result<(), Failure> {
    crate::state::probe_writable(&config.state_dir).map_err(config_failure)?;
    let bytes = component.unwrap_or(crate::runtime::DEFAULT_COMPONENT);
    let runtime = runtime(config, bytes, Some(&config.state_dir.join("cache")))?;
    let mut instance = runtime.instantiate(&Limits::default(), Arc::new(Telemetry::default()))?;
    if config.stream.as_ref().is_some_and(|s| !s.backfill_with_graph) {
        // A stream without a Graph backfill needs no `init`.
        return Ok(());
    }
    match instance.init(&config.source_json(), None)? {
        Ok(_) => Ok(()),
        Err(e) => Err(init_failure(config, e, "starting")),
    }
}

/// What `map` did.
#[derive(Debug, Default)]
pub struct MapSummary {
    pub events: u32,
    pub rejected: Vec<String>,
}

/// Maps saved advanced-hunting results of `table` (a runHuntingQuery answer,
/// or one row per line) through the component and writes NDJSON to `out`.
pub fn map(
    table: &str,
    options: &str,
    input: &[u8],
    component: Option<&[u8]>,
    out: &mut dyn std::io::Write,
) -> Result<MapSummary, Failure> {
    let runtime = Runtime::new(component.unwrap_or(crate::runtime::DEFAULT_COMPONENT), None)?;
    let mut instance = runtime.instantiate(&Limits::default(), Arc::new(Telemetry::default()))?;
    let body = as_hunting_answer(input);
    let converted = instance
        .map_results(table, options, &body)?
        .map_err(|e| source_failure(e, "mapping"))?;
    out.write_all(&converted.events)
        .and_then(|_| out.flush())
        .map_err(|e| Failure::Other(anyhow!("writing the events: {e}")))?;
    Ok(MapSummary {
        events: converted.count,
        rejected: converted.rejected,
    })
}

/// The input as a runHuntingQuery answer: a JSON object with `results` is
/// taken as it is; anything else as one row per line (blank lines skipped),
/// as advanced hunting rows are often saved; a file of one row is one line.
fn as_hunting_answer(input: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default, alias = "Results")]
        results: Option<serde::de::IgnoredAny>,
    }
    if serde_json::from_slice::<Probe>(input).is_ok_and(|p| p.results.is_some()) {
        return std::borrow::Cow::Borrowed(input);
    }
    let mut body = b"{\"results\":[".to_vec();
    let lines = input.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    for (i, line) in lines.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(line);
    }
    body.extend_from_slice(b"]}");
    std::borrow::Cow::Owned(body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn saved_rows_are_an_answer_or_one_row_per_line() {
        let answer = br#"{"schema":[],"Results":[{"a":1}]}"#;
        assert_eq!(&*super::as_hunting_answer(answer), answer, "an answer is taken as it is");
        assert_eq!(&*super::as_hunting_answer(b"{\"a\":1}\n"), br#"{"results":[{"a":1}]}"#, "one row");
        assert_eq!(
            &*super::as_hunting_answer(b"{\"a\":1}\n\n{\"a\":2}"),
            br#"{"results":[{"a":1},{"a":2}]}"#
        );
    }
}
