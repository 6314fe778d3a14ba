//! Runs a source component in wasmtime: compiles it once (and caches the
//! compiled artefact), links WASI, `wasi:http` behind the network policy and
//! the host's log and metric interface, and caps the guest's memory and time.

mod contract;
mod host_state;
mod older;

pub use contract::{
    Batch, CONTRACT, CheckStep, Converted, Description, Metric, SourceError, SourceInfo, StreamMapped, Summary, TableCount, Throttle,
};
pub use host_state::HostState;

use contract::bindings;

use crate::clock::Clock;
use crate::credentials::ClientCertificate;
use crate::egress::Egress;
use crate::policy::{AllowList, Policy};
use crate::telemetry::Telemetry;
use anyhow::{Context as _, Result, anyhow};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimitsBuilder};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;

/// The collector component built from this repository, embedded at build time.
pub static DEFAULT_COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/collector.wasm"));

/// Limits for one component instance.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The most linear memory the guest may use.
    pub memory_bytes: usize,
    /// The longest one call (`init` or `poll`) may run before it is stopped.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 512 << 20,
            call_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// How often the epoch advances; the unit of `call_timeout`.
const EPOCH_TICK: Duration = Duration::from_millis(100);

/// A compiled component, ready to be instantiated.
pub struct Runtime {
    engine: Engine,
    component: Component,
    linker: Linker<HostState>,
    egress: Egress,
    clock: Clock,
    certificate: Option<Arc<ClientCertificate>>,
}

impl Runtime {
    /// Compiles `bytes`, or loads the compiled artefact from `cache_dir` when
    /// this exact component was compiled before by this exact engine.
    pub fn new(bytes: &[u8], cache_dir: Option<&Path>) -> Result<Runtime> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| anyhow!("{e}"))?;
        let component = load_component(&engine, bytes, cache_dir)?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| anyhow!("{e}"))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker).map_err(|e| anyhow!("{e}"))?;
        bindings::defender_ocsf::collector::host::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(|e| anyhow!("{e}"))?;
        bindings::defender_ocsf::collector::credentials::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(|e| anyhow!("{e}"))?;
        bindings::defender_ocsf::collector::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(|e| anyhow!("{e}"))?;
        // The same linker serves components of older contracts: their
        // imports have names of their own (`...@0.4.0`, `...@0.3.0`).
        older::add_to_linker(&mut linker)?;

        // One ticker per engine advances the epoch that bounds each call.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .context("starting the epoch thread")?;
        Ok(Runtime {
            engine,
            component,
            linker,
            egress: Egress::default(),
            clock: Clock::default(),
            certificate: None,
        })
    }

    /// Lets the components have client assertions signed with `certificate`.
    pub fn with_certificate(mut self, certificate: Option<Arc<ClientCertificate>>) -> Runtime {
        self.certificate = certificate;
        self
    }

    /// Gives the components this clock's time (a compressed clock for soak
    /// runs) instead of real time.
    pub fn with_clock(mut self, clock: Clock) -> Runtime {
        self.clock = clock;
        self
    }

    /// Sends the components' allowed requests through `egress` (proxy, extra
    /// trust roots) instead of the environment's defaults.
    pub fn with_egress(mut self, egress: Egress) -> Runtime {
        self.egress = egress;
        self
    }

    /// A fresh instance with no network access until `init` says what it needs.
    pub fn instantiate(&self, limits: &Limits, telemetry: Arc<Telemetry>) -> Result<Instance> {
        let state = HostState {
            // No files, no environment, no sockets: HTTP through the policy only.
            wasi: WasiCtx::builder()
                .wall_clock(self.clock.wall())
                .monotonic_clock(self.clock.monotonic())
                .build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            policy: Policy {
                allow: AllowList::default(),
                egress: self.egress.clone(),
            },
            certificate: self.certificate.clone(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .instances(4)
                .trap_on_grow_failure(true)
                .build(),
            telemetry,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(u64::MAX / 2);
        store.epoch_deadline_trap();
        // The current contract first, then the older ones, newest first.
        let collector = match bindings::Collector::instantiate(&mut store, &self.component, &self.linker) {
            Ok(c) => Exports::Current(c),
            Err(current) => match older::instantiate(&mut store, &self.component, &self.linker) {
                Some(older) => Exports::Older(older),
                None => return Err(anyhow!("the component could not be instantiated: {current}")),
            },
        };
        let ticks = (limits.call_timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        Ok(Instance {
            store,
            collector,
            call_ticks: ticks,
            call_timeout: limits.call_timeout,
        })
    }
}

/// Compiles a component once per (component, engine) and reuses the result.
fn load_component(engine: &Engine, bytes: &[u8], cache_dir: Option<&Path>) -> Result<Component> {
    let Some(dir) = cache_dir else {
        return Component::new(engine, bytes).map_err(|e| anyhow!("the component does not compile: {e}"));
    };
    let path = cache_path(engine, bytes, dir);
    if path.exists() {
        // SAFETY: the file was written by `precompile_component` of an engine
        // with the same compatibility hash (part of the file name), in a
        // directory only this program writes.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring an unusable compiled-component cache file: {e}")
            }
        }
    }
    let compiled = engine
        .precompile_component(bytes)
        .map_err(|e| anyhow!("the component does not compile: {e}"))?;
    if let Err(e) = crate::state::write_atomically(&path, &compiled) {
        tracing::warn!(path = %path.display(), "could not cache the compiled component: {e:#}");
    }
    // SAFETY: produced by this engine just now.
    unsafe { Component::deserialize(engine, &compiled) }.map_err(|e| anyhow!("{e}"))
}

fn cache_path(engine: &Engine, bytes: &[u8], dir: &Path) -> PathBuf {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut engine_hash);
    let digest = Sha256::digest(bytes);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("component-{hex}-{:016x}.cwasm", engine_hash.finish()))
}

/// A component's exports, by the contract version it was built for.
enum Exports {
    Current(bindings::Collector),
    Older(older::Exports),
}

/// One running component.
pub struct Instance {
    store: Store<HostState>,
    collector: Exports,
    call_ticks: u64,
    call_timeout: Duration,
}

impl Instance {
    /// Configures the component; on success, opens the network to the
    /// origins it named, after checking them.
    pub fn init(&mut self, config_json: &str, checkpoint: Option<&str>) -> Result<Result<SourceInfo, SourceError>> {
        self.store.set_epoch_deadline(self.call_ticks);
        let result = match &self.collector {
            Exports::Current(c) => c
                .defender_ocsf_collector_source()
                .call_init(&mut self.store, config_json, checkpoint),
            Exports::Older(c) => c.init(&mut self.store, config_json, checkpoint),
        }
        .map_err(|e| self.trap("init", e))?;
        if let Ok(info) = &result {
            let allow = AllowList::new(&info.allowed_origins)
                .map_err(|e| anyhow!("the component asked for network access the host does not grant: {e}"))?;
            self.store.data_mut().policy.allow = allow;
        }
        Ok(result)
    }

    /// The next batch.
    pub fn poll(&mut self) -> Result<Result<Batch, SourceError>> {
        self.store.set_epoch_deadline(self.call_ticks);
        match &self.collector {
            Exports::Current(c) => c.defender_ocsf_collector_source().call_poll(&mut self.store),
            Exports::Older(c) => c.poll(&mut self.store),
        }
        .map_err(|e| self.trap("poll", e))
    }

    /// The component's own check of its configuration.
    pub fn check(&mut self) -> Result<Vec<CheckStep>> {
        self.store.set_epoch_deadline(self.call_ticks);
        match &self.collector {
            Exports::Current(c) => c.defender_ocsf_collector_source().call_check(&mut self.store),
            Exports::Older(c) => c.check(&mut self.store),
        }
        .map_err(|e| self.trap("check", e))
    }

    /// Maps a saved runHuntingQuery answer of `table` without collecting.
    pub fn map_results(&mut self, table: &str, options: &str, results: &[u8]) -> Result<Result<Converted, SourceError>> {
        self.store.set_epoch_deadline(self.call_ticks);
        match &self.collector {
            Exports::Current(c) => c
                .defender_ocsf_collector_convert()
                .call_map_results(&mut self.store, table, options, results),
            Exports::Older(c) => c.map_results(&mut self.store, table, options, results),
        }
        .map_err(|e| self.trap("map-results", e))
    }

    /// Maps one message a streaming source read (`convert.map-stream`,
    /// 0.4.0): the inner error says what is wrong with the message. A 0.3.0
    /// component cannot, and says so.
    pub fn map_stream(&mut self, options: &str, message: &[u8]) -> Result<Result<StreamMapped, String>> {
        self.store.set_epoch_deadline(self.call_ticks);
        match &self.collector {
            Exports::Current(c) => c
                .defender_ocsf_collector_convert()
                .call_map_stream(&mut self.store, options, message)
                .map_err(|e| self.trap("map-stream", e)),
            Exports::Older(c) => match c.map_stream(&mut self.store, options, message) {
                Some(mapped) => mapped.map_err(|e| self.trap("map-stream", e)),
                None => Err(anyhow!(
                    "the component was built for contract {}, which has no `map-stream`: rebuild it against 0.4.0 or later to read a stream",
                    c.contract()
                )),
            },
        }
    }

    /// The contract version the component was built for.
    pub fn contract(&self) -> &'static str {
        match &self.collector {
            Exports::Current(_) => CONTRACT,
            Exports::Older(c) => c.contract(),
        }
    }

    /// What the component says of its settings and metrics
    /// (`source.describe`, 0.5.0). A component of an older contract cannot
    /// say: it gets what its contract's text documented.
    pub fn describe(&mut self) -> Result<Description> {
        self.store.set_epoch_deadline(self.call_ticks);
        match &self.collector {
            Exports::Current(c) => c
                .defender_ocsf_collector_source()
                .call_describe(&mut self.store)
                .map_err(|e| self.trap("describe", e)),
            Exports::Older(c) => Ok(c.description()),
        }
    }

    /// The origins the component may reach.
    pub fn allowed_origins(&self) -> Vec<String> {
        self.store.data().policy.allow.origins().iter().map(|o| o.to_string()).collect()
    }

    fn trap(&self, call: &str, e: wasmtime::Error) -> anyhow::Error {
        let text = format!("{e:?}");
        if text.contains("interrupt") {
            anyhow!(
                "the component's {call} call ran longer than {:?} and was stopped",
                self.call_timeout
            )
        } else if text.contains("memory") && text.contains("limit") || text.contains("grow") {
            anyhow!("the component's {call} call exceeded its memory limit and was stopped: {e}")
        } else {
            anyhow!("the component crashed during {call} (a bug in the component): {e}")
        }
    }
}
