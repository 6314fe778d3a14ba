//! One `defender_ocsf` input of a Fluent Bit pipeline: the collector on a
//! thread of its own, delivering into a [`handoff`] queue that Fluent Bit's
//! collect callback drains. A batch's checkpoint is saved once Fluent Bit
//! has appended it (the cleanup callback that follows the append says so).
//!
//! [`handoff`]: defender_ocsf_host::handoff

use defender_ocsf_host::app::{self, Failure, RunOptions};
use defender_ocsf_host::config::{OutputConfig, RunConfig};
use defender_ocsf_host::handoff::{self, Batch, Taker};
use defender_ocsf_host::telemetry::{self, Telemetry};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// State directories of the inputs running in this process: two inputs
/// sharing one would overwrite each other's checkpoint.
static STATE_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Batches waiting to be taken. One is enough: the tenants of an input
/// deliver one at a time (`app::run_tenants` shares one sink), and the
/// collector waits while Fluent Bit takes none.
const QUEUE: usize = 1;

/// How long a collector that failed rests before it starts again.
const RESTART: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// Buffers by address, each with the batches it holds; they count as
/// delivered when Fluent Bit cleans the buffer up.
type InFlight = HashMap<usize, (Box<[u8]>, Vec<Batch>)>;

pub struct Instance {
    state_dirs: Vec<PathBuf>,
    shutdown: Arc<AtomicBool>,
    taker: Taker,
    /// Buffers handed to Fluent Bit and not yet cleaned up, by address,
    /// with the batches they hold.
    in_flight: Mutex<InFlight>,
    collector: Mutex<Option<JoinHandle<()>>>,
}

impl Instance {
    /// Checks `config` as `run` would (settings, credentials' form, state
    /// directory) and starts collecting. The error is the message to give
    /// the user.
    pub fn start(config: RunConfig) -> Result<Instance, String> {
        if !matches!(config.output, OutputConfig::Stdout) {
            return Err(
                "`output` does not apply to the Fluent Bit plugin, which delivers to Fluent Bit itself: \
                 remove it from config_file and use Fluent Bit's outputs"
                    .into(),
            );
        }
        let tenants = defender_ocsf_host::launch::instances(&config, None).map_err(|e| e.to_string())?;
        if tenants.is_empty() {
            return Err("no tenant falls to this input's `shard`: nothing to collect".into());
        }
        let state_dirs: Vec<PathBuf> = tenants.iter().map(|t| t.state_dir.clone()).collect();
        {
            let mut used = STATE_DIRS.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(dir) = state_dirs.iter().find(|d| used.contains(d)) {
                return Err(format!(
                    "another defender_ocsf input of this Fluent Bit already uses the state directory {}: give each input \
                     its own `state_dir`, or collect several tenants in one input with `config_file` and `tenants:`",
                    dir.display()
                ));
            }
            used.extend(state_dirs.iter().cloned());
        }
        let started = Instance::spawn(config, tenants);
        if started.is_err() {
            release(&state_dirs);
        }
        started.map(|(shutdown, taker, collector)| Instance {
            state_dirs,
            shutdown,
            taker,
            in_flight: Mutex::new(HashMap::new()),
            collector: Mutex::new(Some(collector)),
        })
    }

    fn spawn(config: RunConfig, tenants: Vec<RunConfig>) -> Result<(Arc<AtomicBool>, Taker, JoinHandle<()>), String> {
        for tenant in &tenants {
            app::preflight(tenant, None).map_err(|e| match tenants.len() {
                1 => e.to_string(),
                _ => format!("tenant {}: {e}", tenant.instance_name()),
            })?;
        }
        let metrics = match &config.metrics_address {
            None => Arc::new(Telemetry::default()),
            Some(address) => served_metrics(address)?,
        };
        let shutdown = Arc::new(AtomicBool::new(false));
        let (mut sink, taker) = handoff::channel(QUEUE, shutdown.clone());
        let stop = shutdown.clone();
        let collector = std::thread::Builder::new()
            .name("defender-ocsf".into())
            .spawn(move || {
                let options = RunOptions {
                    shutdown: stop.clone(),
                    ..RunOptions::default()
                };
                while !stop.load(Ordering::SeqCst) {
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        app::run_tenants(&tenants, &options, &mut sink, metrics.clone())
                    }));
                    let failure = match run {
                        Ok(Ok(_)) => continue,
                        Ok(Err(e)) if matches!(e, Failure::Config(_)) => format!("{e}; fix the configuration"),
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "the collector panicked; this is a bug, please report it with the log above".into(),
                    };
                    tracing::error!(
                        "collection stopped: {failure}; the input starts it again in {} min",
                        RESTART.as_secs() / 60
                    );
                    options.clock.sleep(RESTART, &stop);
                }
            })
            .map_err(|e| format!("starting the collector thread: {e}"))?;
        Ok((shutdown, taker, collector))
    }

    /// Every batch waiting, as one buffer of MessagePack records for Fluent
    /// Bit to append, or `None`. Never waits.
    pub fn collect(&self) -> Option<(*mut u8, usize)> {
        let mut batches = Vec::new();
        while let Some(batch) = self.taker.take() {
            batches.push(batch);
        }
        if batches.is_empty() {
            return None;
        }
        let buffer: Box<[u8]> = batches.iter().flat_map(|b| b.records.iter().copied()).collect();
        let (pointer, len) = (buffer.as_ptr() as *mut u8, buffer.len());
        if len == 0 {
            // Nothing for Fluent Bit to append, and no cleanup will come.
            batches.into_iter().for_each(Batch::taken);
            return None;
        }
        tracing::debug!(
            events = batches.iter().map(|b| b.count).sum::<u32>(),
            bytes = len,
            "handing events to Fluent Bit"
        );
        self.lock_in_flight().insert(pointer as usize, (buffer, batches));
        Some((pointer, len))
    }

    /// Fluent Bit has appended the buffer at `pointer`: its batches are
    /// delivered, and it is freed.
    pub fn cleanup(&self, pointer: *mut u8) {
        let entry = self.lock_in_flight().remove(&(pointer as usize));
        match entry {
            Some((_buffer, batches)) => batches.into_iter().for_each(Batch::taken),
            None => tracing::error!("Fluent Bit cleaned up a buffer this input did not hand it"),
        }
    }

    /// Stops the collector: a batch not yet taken is collected again at the
    /// next start.
    pub fn stop(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        // Batches still queued were never handed to Fluent Bit.
        while let Some(batch) = self.taker.take() {
            drop(batch);
        }
        let collector = self.collector.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = collector {
            let _ = handle.join();
        }
        release(&self.state_dirs);
        tracing::info!("stopped");
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Metrics servers of this process, by address. A server keeps its port for
/// the life of the process, so an input started again (Fluent Bit's hot
/// reload) records into the one already serving its address.
static SERVED: Mutex<Vec<(String, Arc<Telemetry>)>> = Mutex::new(Vec::new());

fn served_metrics(address: &str) -> Result<Arc<Telemetry>, String> {
    let mut served = SERVED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, metrics)) = served.iter().find(|(a, _)| a == address) {
        return Ok(metrics.clone());
    }
    let metrics = Arc::new(Telemetry::default());
    let bound = telemetry::serve_metrics(address, metrics.clone()).map_err(|e| format!("{e:#}"))?;
    tracing::info!(%bound, "serving metrics at /metrics, /healthz and /readyz");
    served.push((address.to_string(), metrics.clone()));
    Ok(metrics)
}

fn release(dirs: &[PathBuf]) {
    STATE_DIRS.lock().unwrap_or_else(|p| p.into_inner()).retain(|d| !dirs.contains(d));
}

#[cfg(test)]
mod tests {
    use super::*;
    use defender_ocsf_replay::{Credentials, Dataset, ReplayServer};

    fn replay(rows: usize) -> ReplayServer {
        let first = chrono::Utc::now() - chrono::Duration::minutes(58);
        let mut dataset = Dataset::default();
        let rows = (0..rows).map(|i| {
            serde_json::json!({
                "Timestamp": (first + chrono::Duration::minutes(i as i64)).to_rfc3339(),
                "DeviceId": "d", "ReportId": i, "ProcessId": i, "InitiatingProcessId": 1,
            })
            .as_object()
            .unwrap()
            .clone()
        });
        dataset.add("DeviceProcessEvents", rows).unwrap();
        let credentials = Credentials {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
        };
        ReplayServer::start(dataset, credentials).unwrap()
    }

    fn config(server: &ReplayServer, state: &std::path::Path) -> RunConfig {
        let yaml = format!(
            "tenant_id: t\nclient_id: c\nclient_secret: s\nlogin_endpoint: {u}\ngraph_endpoint: {u}\ntables: [DeviceProcessEvents]\n\
             start_time: {}\ndelay: 1m\nmax_window: 5m\npoll_interval: 1s\nstate_dir: {}\n",
            (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339(),
            state.display(),
            u = server.url()
        );
        RunConfig::from_yaml(&yaml, &|_| None).unwrap()
    }

    /// Fluent Bit calls nothing while the input is paused: collection
    /// waits after one batch instead of running ahead, and saves no
    /// checkpoint for it.
    #[test]
    fn a_paused_input_holds_collection_back() {
        let server = replay(55);
        let dir = tempfile::tempdir().unwrap();
        let instance = Instance::start(config(&server, dir.path())).unwrap();
        std::thread::sleep(std::time::Duration::from_secs(2));
        let held = server.query_count();
        std::thread::sleep(std::time::Duration::from_secs(2));
        assert_eq!(server.query_count(), held, "no queries while nothing is taken");
        assert!(
            !dir.path().join("checkpoint.json").exists(),
            "no checkpoint before Fluent Bit has the batch"
        );

        // Resumed: batches are taken, each cleaned up after its append.
        let mut events = 0usize;
        let t0 = std::time::Instant::now();
        while events < 55 && t0.elapsed() < std::time::Duration::from_secs(60) {
            if let Some((pointer, len)) = instance.collect() {
                let mut records = unsafe { std::slice::from_raw_parts(pointer, len) };
                while !records.is_empty() {
                    rmpv_count(&mut records);
                    events += 1;
                }
                instance.cleanup(pointer);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(events, 55);
        assert!(server.query_count() > held);
        assert!(dir.path().join("checkpoint.json").exists());
        instance.stop();
        let again = Instance::start(config(&server, dir.path())).expect("a stopped input frees its state directory");
        again.stop();
    }

    /// Skips one MessagePack value: a `[EventTime, record]` entry.
    fn rmpv_count(records: &mut &[u8]) {
        let entry = rmpv::decode::read_value(records).unwrap();
        assert!(matches!(entry[0], rmpv::Value::Ext(0, _)), "{entry}");
    }
}
