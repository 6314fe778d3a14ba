//! `backfill_with_graph`: the history before the stream began, through Graph.

use crate::config::RunConfig;
use crate::launch::{Failure, RunOptions, Summary};
use crate::output::Sink;
use crate::telemetry::Telemetry;
use anyhow::anyhow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// When the stream began, and whether the history before it is in.
#[derive(serde::Serialize, serde::Deserialize)]
struct Backfill {
    began: String,
    done: bool,
}

/// `backfill_with_graph`: before the stream is read for the first time, the
/// history up to the moment it began (30 days, or `start_time`) is
/// collected through Graph's runHuntingQuery, then polling stops for good.
/// Rows of the moments around the start may come both ways, with the same
/// `metadata.uid`.
pub(super) fn backfill(
    config: &RunConfig,
    options: &RunOptions,
    sink: &mut dyn Sink,
    telemetry: Arc<Telemetry>,
) -> Result<Summary, Failure> {
    let path = config.state_dir.join("stream-backfill.json");
    let mut state: Backfill = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Config(format!(
                "{} is not a backfill state ({e}); delete it to backfill again",
                path.display()
            ))
        })?,
        Err(_) => {
            let began = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let state = Backfill { began, done: false };
            save(&path, &state)?;
            state
        }
    };
    if state.done {
        return Ok(Summary::default());
    }
    let mut graph = config.clone();
    graph.stream = None;
    graph.source.insert("end_time".into(), state.began.clone().into());
    if !graph.source.contains_key("start_time") {
        // 30 days before the stream began, less a margin: advanced hunting keeps 30 days.
        let began = chrono::DateTime::parse_from_rfc3339(&state.began).map_err(|e| Failure::Other(anyhow!("{e}")))?;
        let start = began - chrono::Duration::days(30) + chrono::Duration::hours(1);
        graph
            .source
            .insert("start_time".into(), start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into());
    }
    tracing::info!(until = %state.began, "backfilling through Graph up to the moment the stream began");
    let once = RunOptions {
        component: options.component,
        once: true,
        limits: options.limits.clone(),
        shutdown: options.shutdown.clone(),
        critical: options.critical.clone(),
        max_retries: options.max_retries,
        clock: options.clock.clone(),
    };
    let mut summary = Summary::default();
    // A cycle may end with history still left (live edges come first): go
    // on until every table has caught up with the moment the stream began.
    loop {
        let part = crate::poll::run(&graph, &once, sink, telemetry.clone())?;
        summary.batches += part.batches;
        summary.events += part.events;
        if part.undelivered || options.shutdown.load(Ordering::SeqCst) {
            summary.undelivered = part.undelivered;
            return Ok(summary);
        }
        if telemetry.gauge_max("history_left_seconds").unwrap_or(0.0) <= 0.0 {
            break;
        }
    }
    state.done = true;
    save(&path, &state)?;
    tracing::info!(
        events = summary.events,
        "backfill through Graph complete; reading the stream from now on"
    );
    Ok(summary)
}

fn save(path: &std::path::Path, state: &Backfill) -> Result<(), Failure> {
    let bytes = serde_json::to_vec(state).map_err(|e| Failure::Other(e.into()))?;
    crate::state::write_atomically(path, &bytes).map_err(|e| Failure::Config(format!("saving {}: {e:#}", path.display())))
}
