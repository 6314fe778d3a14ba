//! Starting a source component: the options of a run, how it ends, and
//! the component instance built from the configuration.

use crate::clock::Clock;
use crate::config::RunConfig;
use crate::egress::Egress;
use crate::runtime::{self, Description, Instance, Limits, Runtime, SourceError};
use crate::telemetry::Telemetry;
use anyhow::anyhow;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

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

/// The description of the component a run of `config` uses
/// (`source.describe`): what `RunConfig::instances` applies. Compiled into
/// the state directory's cache when it can be written, so that the run
/// that follows loads it from there instead of compiling it again.
pub fn describe(config: &RunConfig, component: Option<&[u8]>) -> Result<Description, Failure> {
    let runtime = Runtime::new(component.unwrap_or(crate::runtime::DEFAULT_COMPONENT), cache_dir(config).as_deref())?;
    let mut instance = runtime.instantiate(&Limits::default(), Arc::new(Telemetry::default()))?;
    Ok(instance.describe()?)
}

/// Where the compiled component is cached, when the state directory can
/// be written; a command that cannot write it compiles without a cache.
pub(crate) fn cache_dir(config: &RunConfig) -> Option<std::path::PathBuf> {
    crate::state::probe_writable(&config.state_dir)
        .ok()
        .map(|()| config.state_dir.join("cache"))
}

/// The instances of `config` with the component's description applied,
/// a setting the host could not use being the configuration's to fix.
pub fn instances(config: &RunConfig, component: Option<&[u8]>) -> Result<Vec<RunConfig>, Failure> {
    let description = describe(config, component)?;
    config.instances(&description).map_err(config_failure)
}

/// Asks the component for its description and hands its metrics' help
/// texts and summary to `telemetry`; returns the description.
pub(crate) fn describe_metrics(instance: &mut Instance, telemetry: &Telemetry) -> Result<Description, Failure> {
    let description = instance.describe()?;
    telemetry.describe(description.metrics.iter().map(|m| {
        let summary = m.summary.map(|s| match s {
            runtime::Summary::Total => crate::telemetry::Summary::Total,
            runtime::Summary::Max => crate::telemetry::Summary::Max,
        });
        (m.name.clone(), m.help.clone(), summary)
    }));
    Ok(description)
}

/// A setting the host could not use (a proxy URL, a certificate file): fix
/// the configuration.
pub(crate) fn config_failure(e: anyhow::Error) -> Failure {
    Failure::Config(format!("{e:#}"))
}

/// [`source_failure`] for the component's `init`, whose configuration errors
/// are about `config`: they point at the line and suggest the key.
pub(crate) fn init_failure(config: &RunConfig, e: SourceError, doing: &str) -> Failure {
    match e {
        SourceError::Config(m) => Failure::Config(format!("configuration error: {}", config.explain(&m))),
        other => source_failure(other, doing),
    }
}

pub(crate) fn source_failure(e: SourceError, doing: &str) -> Failure {
    match e {
        SourceError::Config(m) => Failure::Config(format!("configuration error: {m}")),
        SourceError::Auth(m) => Failure::Config(format!("authentication failed: {m}")),
        SourceError::Permission(m) => Failure::Config(format!("permission missing: {m}")),
        SourceError::Fatal(m) => Failure::Other(anyhow!("{doing} failed: {m}")),
        SourceError::Transient(m) => Failure::Other(anyhow!("{doing} failed: {m}")),
        SourceError::Throttled(t) => Failure::Other(anyhow!("{doing} failed: throttled: {}", t.message)),
    }
}

/// How a `check` step that passed with a warning begins its detail.
pub(crate) const WARNING: &str = "warning: ";
