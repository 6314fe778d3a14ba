//! The host's commands: `run` (each tenant in a thread of its own, each
//! source its loop), `check`, `preflight` and `map`.

use crate::config::RunConfig;
pub use crate::launch::{Failure, RunOptions, Summary};
use crate::launch::{WARNING, cache_dir, config_failure, init_failure, runtime, source_failure};
use crate::runtime::{Limits, Runtime};
use crate::sink::Sink;
use crate::telemetry::Telemetry;
use anyhow::{Result, anyhow, bail};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Runs a source until `once` completes, `shutdown` is set, or it fails.
/// `config` is one instance, as [`RunConfig::instances`] gives it (with
/// the component's description applied); `launch::instances` makes them.
pub fn run(config: &RunConfig, options: &RunOptions, sink: &mut dyn Sink, telemetry: Arc<Telemetry>) -> Result<Summary, Failure> {
    match &config.stream {
        Some(stream) => crate::kafka::run(config, stream, options, sink, telemetry),
        None => crate::poll::run(config, options, sink, telemetry),
    }
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
                let tenant = config.instance_name().to_string();
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
    let tenant = config.instance_name();
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
    // Compiled already when the component was described, in the same cache.
    let runtime = runtime(
        config,
        component.unwrap_or(crate::runtime::DEFAULT_COMPONENT),
        cache_dir(config).as_deref(),
    )?;
    let mut instance = runtime.instantiate(&Limits::default(), Arc::new(Telemetry::default()))?;
    // A stream without a Graph backfill never calls `init`: it has no Graph settings.
    let graph = config.stream.as_ref().is_none_or(|s| s.backfill_with_graph);
    if !graph {
        line(
            true,
            true,
            "configuration",
            &format!("stream source; component contract {}", instance.contract()),
        )?;
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
        Ok(()) => line(
            true,
            true,
            "state directory",
            &format!("{} is writable", config.state_dir.display()),
        )?,
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

/// Maps saved results of `table` through the component's `convert` and
/// writes NDJSON to `out`. What the input may be is the component's to say;
/// of `settings` (the source's, as in a configuration), it takes those its
/// description names; a row without a time takes `collected_at`.
pub fn map(
    table: &str,
    settings: &serde_json::Map<String, serde_json::Value>,
    collected_at: &str,
    input: &[u8],
    component: Option<&[u8]>,
    out: &mut dyn std::io::Write,
) -> Result<MapSummary, Failure> {
    let runtime = Runtime::new(component.unwrap_or(crate::runtime::DEFAULT_COMPONENT), None)?;
    let mut instance = runtime.instantiate(&Limits::default(), Arc::new(Telemetry::default()))?;
    let description = instance.describe()?;
    let mut options = crate::config::convert_options(settings, &description.convert_options);
    options.insert("collected_at".into(), collected_at.into());
    // The component reads an answer or rows one per line (0.5.0).
    let converted = instance
        .map_results(table, &serde_json::Value::Object(options).to_string(), input)?
        .map_err(|e| source_failure(e, "mapping"))?;
    out.write_all(&converted.events)
        .and_then(|_| out.flush())
        .map_err(|e| Failure::Other(anyhow!("writing the events: {e}")))?;
    Ok(MapSummary {
        events: converted.count,
        rejected: converted.rejected,
    })
}
