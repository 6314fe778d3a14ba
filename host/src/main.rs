//! The `defender-ocsf` command line.

use clap::{Parser, Subcommand};
use defender_ocsf_host::app::{self, Failure, RunOptions};
use defender_ocsf_host::config::OutputConfig;
use defender_ocsf_host::config::RunConfig;
use defender_ocsf_host::forward::Forward;
use defender_ocsf_host::launch;
use defender_ocsf_host::output::{Http, Sink, Stdout};
use defender_ocsf_host::shutdown::Shutdown;
use defender_ocsf_host::telemetry::{self, Telemetry};
use defender_ocsf_replay::Demo;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Collects Microsoft Defender XDR advanced-hunting data and emits OCSF 1.8.0 events.
///
/// It polls Microsoft Graph (runHuntingQuery) for every configured table, maps each row to OCSF, and
/// delivers the events to stdout (for Vector's exec source), to Vector's http_server or to Fluent
/// Bit's forward input, saving its checkpoint only after delivery. Fluent Bit can also load it as
/// its input plugin (see the README). Start with `defender-ocsf demo`, then `defender-ocsf check
/// --config FILE`.
#[derive(Parser)]
#[command(name = "defender-ocsf", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the configuration comes from.
#[derive(clap::Args)]
struct ConfigArgs {
    /// The YAML configuration file.
    #[arg(long, value_name = "FILE", conflicts_with = "config_env")]
    config: Option<PathBuf>,
    /// An environment variable that holds the whole YAML configuration (for
    /// example set in a Vector `exec` source's `environment`).
    #[arg(long, value_name = "VAR")]
    config_env: Option<String>,
    /// Sets one key, overriding the file: `--set tables=[DeviceEvents]`,
    /// `--set output.url=http://127.0.0.1:8687/`. Repeatable. Keep secrets in
    /// `${ENV_VAR}` references, not on the command line.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

impl ConfigArgs {
    fn load(&self) -> anyhow::Result<RunConfig> {
        RunConfig::load(self.config.as_deref(), self.config_env.as_deref(), &self.sets)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Collect events and deliver them (stdout NDJSON by default; logs go to stderr).
    Run {
        #[command(flatten)]
        config: ConfigArgs,
        /// Collect every table up to now minus `delay`, then exit.
        #[arg(long)]
        once: bool,
        /// On a configuration or credential error, stay running instead of
        /// exiting: log what to fix, report it on `/readyz` and in
        /// `errors_total`, and try again every `--retry-interval`. For
        /// supervisors that restart an exited program at once, such as
        /// Vector's `exec` source, which would otherwise ask Entra ID for a
        /// token every few seconds with a wrong secret.
        #[arg(long, conflicts_with = "once")]
        stay_up: bool,
        /// With `--stay-up`, the wait between attempts.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
        retry_interval: std::time::Duration,
        /// Run this component instead of the embedded one.
        #[arg(long, value_name = "PATH")]
        component: Option<PathBuf>,
    },
    /// Check a configuration: the settings, the state directory, the
    /// credentials, and one tiny query per table. Prints PASS or FAIL per step.
    Check {
        #[command(flatten)]
        config: ConfigArgs,
        /// Check with this component instead of the embedded one.
        #[arg(long, value_name = "PATH")]
        component: Option<PathBuf>,
    },
    /// Run the real collector against a built-in replay endpoint on loopback
    /// and print the OCSF events it produces. Needs no credentials.
    Demo,
    /// Map saved advanced-hunting results to OCSF NDJSON on stdout, without
    /// collecting: a runHuntingQuery answer, or one row per line. Rows that
    /// cannot be mapped are named on stderr, and the exit code is then 1.
    Map {
        /// The table the rows come from, such as `DeviceProcessEvents`.
        #[arg(long)]
        table: String,
        /// The file to read; standard input when absent.
        input: Option<PathBuf>,
        /// A setting of the source, written as in the configuration (dotted
        /// keys for sections), such as `--set tenant_id=...` or `--set
        /// ocsf.deprecated_classes=false`; repeatable. Those the component
        /// maps with are used.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Map with this component instead of the embedded one.
        #[arg(long, value_name = "PATH")]
        component: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            config,
            once,
            stay_up,
            retry_interval,
            component,
        } => {
            let shutdown = match Shutdown::install() {
                Ok(s) => s,
                Err(e) => return fail(&Failure::Other(anyhow::anyhow!("installing signal handlers: {e}"))),
            };
            let metrics = Arc::new(Telemetry::default());
            let mut served = None;
            loop {
                let code = run(&config, once, component.as_deref(), &shutdown, &metrics, &mut served);
                if !stay_up || code != ExitCode::from(2) {
                    return code;
                }
                // Staying up was the plan: a stop that came during the failed
                // attempt ends it as a stop during the wait would, with 0.
                if shutdown.requested.load(std::sync::atomic::Ordering::SeqCst) {
                    return ExitCode::SUCCESS;
                }
                tracing::error!(
                    retry_in_s = retry_interval.as_secs(),
                    "staying up (--stay-up): fix the configuration or the credentials; trying again in {}",
                    humantime::format_duration(retry_interval)
                );
                defender_ocsf_host::clock::Clock::default().sleep(retry_interval, &shutdown.requested);
                if shutdown.requested.load(std::sync::atomic::Ordering::SeqCst) {
                    return ExitCode::SUCCESS;
                }
            }
        }
        Command::Check { config, component } => {
            let config = match config.load() {
                Ok(c) => c,
                Err(e) => {
                    println!("FAIL  configuration: {e:#}");
                    return fail(&Failure::Config(format!("{e:#}")));
                }
            };
            let _ = telemetry::init_logging("error", None);
            let bytes = match component.as_deref().map(std::fs::read).transpose() {
                Ok(b) => b,
                Err(e) => return fail(&Failure::Config(format!("reading --component: {e}"))),
            };
            // Every tenant of the configuration, whichever shard collects it.
            let everyone = RunConfig {
                shard: None,
                ..config.clone()
            };
            let tenants = match launch::instances(&everyone, bytes.as_deref()) {
                Ok(tenants) => tenants,
                Err(e) => {
                    println!("FAIL  configuration: {e}");
                    return fail(&e);
                }
            };
            let mut all = Ok(app::Checked::default());
            for tenant in &tenants {
                if tenants.len() > 1 {
                    println!("tenant {}:", tenant.instance_name());
                }
                match app::check(tenant, bytes.as_deref(), &mut std::io::stdout()) {
                    Ok(checked) => all = all.map(|a| a.and(checked)),
                    Err(e) if tenants.len() > 1 => {
                        println!("FAIL  {e}");
                        let to_fix = matches!(e, Failure::Config(_));
                        all = all.map(|a| {
                            a.and(app::Checked {
                                failed: true,
                                to_fix,
                                warnings: 0,
                            })
                        });
                    }
                    Err(e) => all = Err(e),
                }
            }
            let origin = config.origin.as_ref().map_or("<file>".to_string(), |o| o.name.clone());
            match all {
                Ok(checked) if !checked.failed => {
                    let warned = match checked.warnings {
                        0 => String::new(),
                        n => format!(" ({n} warnings above)"),
                    };
                    let how = match config
                        .origin
                        .as_ref()
                        .and_then(|o| o.name.strip_prefix("the environment variable "))
                    {
                        Some(var) => format!("--config-env {var}"),
                        None => format!("--config {origin}"),
                    };
                    println!("All checks passed{warned}. Start collecting with: defender-ocsf run {how}");
                    ExitCode::SUCCESS
                }
                Ok(checked) => {
                    println!("Some checks failed; see docs/setup-azure.md for what each message means.");
                    ExitCode::from(checked.exit_code())
                }
                Err(e) => fail(&e),
            }
        }
        Command::Demo => demo(),
        Command::Map {
            table,
            input,
            sets,
            component,
        } => {
            let _ = telemetry::init_logging("warn", None);
            let read = |path: Option<&std::path::Path>| -> std::io::Result<Vec<u8>> {
                match path {
                    Some(p) => std::fs::read(p),
                    None => {
                        let mut buf = Vec::new();
                        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
                        Ok(buf)
                    }
                }
            };
            let input = match read(input.as_deref()) {
                Ok(b) => b,
                Err(e) => return fail(&Failure::Config(format!("reading the input: {e}"))),
            };
            let bytes = match component.as_deref().map(std::fs::read).transpose() {
                Ok(b) => b,
                Err(e) => return fail(&Failure::Config(format!("reading --component: {e}"))),
            };
            // A row without a Timestamp takes the time it is mapped, as in
            // collection, labelled `time-is-collection-time`.
            let collected_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let settings = match RunConfig::from_yaml_with_sets("", &sets, &|name| std::env::var(name).ok()) {
                Ok(config) => config.source,
                Err(e) => return fail(&Failure::Config(format!("{e:#}"))),
            };
            match app::map(
                &table,
                &settings,
                &collected_at,
                &input,
                bytes.as_deref(),
                &mut std::io::stdout().lock(),
            ) {
                Ok(summary) if summary.rejected.is_empty() => ExitCode::SUCCESS,
                Ok(summary) => {
                    for reason in &summary.rejected {
                        eprintln!("defender-ocsf: row not mapped: {reason}");
                    }
                    eprintln!(
                        "defender-ocsf: {} events written, {} rows not mapped",
                        summary.events,
                        summary.rejected.len()
                    );
                    ExitCode::from(1)
                }
                Err(e) => fail(&e),
            }
        }
    }
}

/// `run`: one attempt, from reading the configuration to the end of the
/// collection. The exit code says how it ended (2: configuration or
/// credentials).
fn run(
    args: &ConfigArgs,
    once: bool,
    component: Option<&std::path::Path>,
    shutdown: &Shutdown,
    metrics: &Arc<Telemetry>,
    served: &mut Option<String>,
) -> ExitCode {
    let config = match args.load() {
        Ok(c) => c,
        Err(e) => return fail(&Failure::Config(format!("{e:#}"))),
    };
    if let Err(e) = telemetry::init_logging(&config.log_level, config.log_file.as_deref()) {
        return fail(&Failure::Config(format!("{e:#}")));
    }
    let bytes = match component.map(std::fs::read).transpose() {
        Ok(b) => b,
        Err(e) => return fail(&Failure::Config(format!("reading --component: {e}"))),
    };
    let options = RunOptions {
        component: bytes.as_deref(),
        once,
        shutdown: shutdown.requested.clone(),
        critical: shutdown.critical.clone(),
        ..RunOptions::default()
    };
    // With --once a receiver that never takes a batch ends the run,
    // as repeated API failures do, instead of holding it for ever.
    let attempts = options.max_retries + 1;
    let mut sink: Box<dyn Sink + Send> = match &config.output {
        OutputConfig::Stdout => Box::new(Stdout::new(std::io::stdout())),
        OutputConfig::Http(http) => match Http::new(http, options.shutdown.clone()) {
            Ok(s) if once => Box::new(s.give_up_after(attempts)),
            Ok(s) => Box::new(s),
            Err(e) => return fail(&Failure::Config(format!("{e:#}"))),
        },
        OutputConfig::Forward(forward) => {
            let sink = Forward::new(forward, options.shutdown.clone());
            Box::new(if once { sink.give_up_after(attempts) } else { sink })
        }
    };
    // Served once, across the attempts of --stay-up.
    if let Some(address) = config.metrics_address.as_ref().filter(|a| served.as_ref() != Some(*a)) {
        match telemetry::serve_metrics(address, metrics.clone()) {
            Ok(bound) => {
                tracing::info!(%bound, "serving metrics at /metrics, /healthz and /readyz");
                *served = Some(address.clone());
            }
            Err(e) => return fail(&Failure::Config(format!("{e:#}"))),
        }
    }
    let tenants = match launch::instances(&config, options.component) {
        Ok(tenants) => tenants,
        Err(e) => return fail(&e),
    };
    if tenants.is_empty() {
        // Another shard has every tenant: wait (a pod that exited
        // would only be restarted), or with --once, done.
        tracing::warn!(shard = ?config.shard, "no tenant falls to this shard; nothing to collect");
        while !once && !options.shutdown.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        return ExitCode::SUCCESS;
    }
    if let Some(shard) = config.shard {
        let ids: Vec<&str> = tenants.iter().map(|t| t.instance_name()).collect();
        tracing::info!(index = shard.index, count = shard.count, tenants = %ids.join(", "), "collecting this shard's tenants");
    }
    match app::run_tenants(&tenants, &options, sink.as_mut(), metrics.clone()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(failure: &Failure) -> ExitCode {
    telemetry::fatal(&failure.to_string());
    match failure {
        Failure::Config(_) => ExitCode::from(2),
        Failure::Other(_) => ExitCode::from(1),
    }
}

fn demo() -> ExitCode {
    let _ = telemetry::init_logging("info", None);
    let demo = match Demo::start(chrono::Utc::now()) {
        Ok(demo) => demo,
        Err(e) => return fail(&Failure::Other(e)),
    };
    let server = &demo.server;
    let state = std::env::temp_dir().join(format!("defender-ocsf-demo-{}", std::process::id()));
    let config = RunConfig::for_source(state.clone(), demo.source.clone());
    tracing::info!(replay = %server.url(), "demo: replaying {} through the embedded component", demo.what);
    let options = RunOptions {
        once: true,
        ..RunOptions::default()
    };
    let mut sink = Stdout::new(std::io::stdout().lock());
    let result = app::run(&config, &options, &mut sink, Arc::new(Telemetry::default()));
    let _ = std::fs::remove_dir_all(&state);
    match result {
        Ok(summary) => {
            tracing::info!(
                events = summary.events,
                queries = server.queries().len(),
                "demo: done; point `run --config` at a real tenant next (see README)"
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}
