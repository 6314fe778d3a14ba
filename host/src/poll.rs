//! The poll loop of a collector component: init, then poll, deliver, and
//! save the checkpoint, in that order, so a checkpoint never runs ahead of
//! delivery.

use crate::config::RunConfig;
use crate::launch::{Failure, RunOptions, Summary, config_failure, describe_metrics, init_failure, runtime, source_failure};
use crate::runtime::SourceError;
use crate::sink::{Sink, Undelivered};
use crate::state::CheckpointStore;
use crate::telemetry::{Health, Telemetry};
use anyhow::anyhow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often the run loop logs a one-line summary.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Runs a collector until `once` completes, `shutdown` is set, or it fails.
pub fn run(config: &RunConfig, options: &RunOptions, sink: &mut dyn Sink, telemetry: Arc<Telemetry>) -> Result<Summary, Failure> {
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
    describe_metrics(&mut instance, &metrics)?;
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
                tracing::warn!(
                    retry_after_ms = t.retry_after_ms,
                    attempt = throttled,
                    "throttled by the API: {}",
                    t.message
                );
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
                source = %metrics.summary(),
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

/// 1 s, 2 s, 4 s ... up to 5 minutes, with up to 25% jitter.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.saturating_sub(1).min(8)).min(Duration::from_secs(300));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base + base.mul_f64(f64::from(nanos % 250) / 1000.0)
}
