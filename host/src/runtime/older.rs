//! Components built for older contracts (`wit/since_v0.4.0`,
//! `wit/since_v0.3.0`), still run: their imports are served by the same
//! host functions and their types convert to the current ones. What they
//! cannot do (0.3.0: `map-stream`; both: `describe`) is said, or filled in
//! from what their contract's text documented.

use super::contract::bindings;
use super::contract::{Batch, CheckStep, Converted, Description, SourceError, SourceInfo, StreamMapped, TableCount, Throttle};
use super::host_state::HostState;
use anyhow::{Result, anyhow};
use bindings::defender_ocsf::collector::host::{self as wit_host, Level};
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker};

/// Contract 0.4.0: before `describe`.
mod since_v0_4_0 {
    wasmtime::component::bindgen!({
        world: "collector",
        path: "../wit/since_v0.4.0",
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
        },
    });
}

/// Contract 0.3.0: before `map-stream`.
mod since_v0_3_0 {
    wasmtime::component::bindgen!({
        world: "collector",
        path: "../wit/since_v0.3.0",
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
        },
    });
}

/// The host's imports and the exports' types of one older contract.
macro_rules! older_contract {
    ($m:ident) => {
        impl $m::defender_ocsf::collector::types::Host for HostState {}

        impl $m::defender_ocsf::collector::host::Host for HostState {
            fn log(&mut self, level: $m::defender_ocsf::collector::host::Level, message: String, fields: Vec<(String, String)>) {
                use $m::defender_ocsf::collector::host::Level as Old;
                let level = match level {
                    Old::Trace => Level::Trace,
                    Old::Debug => Level::Debug,
                    Old::Info => Level::Info,
                    Old::Warn => Level::Warn,
                    Old::Error => Level::Error,
                };
                wit_host::Host::log(self, level, message, fields)
            }

            fn counter_add(&mut self, name: String, labels: Vec<(String, String)>, value: u64) {
                wit_host::Host::counter_add(self, name, labels, value)
            }

            fn gauge_set(&mut self, name: String, labels: Vec<(String, String)>, value: f64) {
                wit_host::Host::gauge_set(self, name, labels, value)
            }
        }

        impl $m::defender_ocsf::collector::credentials::Host for HostState {
            fn sign_client_assertion(&mut self, claims: String) -> Result<String, String> {
                bindings::defender_ocsf::collector::credentials::Host::sign_client_assertion(self, claims)
            }
        }

        impl From<$m::defender_ocsf::collector::types::Error> for SourceError {
            fn from(e: $m::defender_ocsf::collector::types::Error) -> Self {
                use $m::defender_ocsf::collector::types::Error as Old;
                match e {
                    Old::Config(m) => SourceError::Config(m),
                    Old::Auth(m) => SourceError::Auth(m),
                    Old::Permission(m) => SourceError::Permission(m),
                    Old::Throttled(t) => SourceError::Throttled(Throttle {
                        retry_after_ms: t.retry_after_ms,
                        message: t.message,
                    }),
                    Old::Transient(m) => SourceError::Transient(m),
                    Old::Fatal(m) => SourceError::Fatal(m),
                }
            }
        }

        impl From<$m::defender_ocsf::collector::types::SourceInfo> for SourceInfo {
            fn from(i: $m::defender_ocsf::collector::types::SourceInfo) -> Self {
                SourceInfo {
                    name: i.name,
                    version: i.version,
                    allowed_origins: i.allowed_origins,
                }
            }
        }

        impl From<$m::defender_ocsf::collector::types::Batch> for Batch {
            fn from(b: $m::defender_ocsf::collector::types::Batch) -> Self {
                Batch {
                    events: b.events,
                    count: b.count,
                    checkpoint: b.checkpoint,
                    next_poll_ms: b.next_poll_ms,
                }
            }
        }

        impl From<$m::exports::defender_ocsf::collector::convert::Converted> for Converted {
            fn from(c: $m::exports::defender_ocsf::collector::convert::Converted) -> Self {
                Converted {
                    events: c.events,
                    count: c.count,
                    rejected: c.rejected,
                }
            }
        }

        impl From<$m::defender_ocsf::collector::types::CheckStep> for CheckStep {
            fn from(s: $m::defender_ocsf::collector::types::CheckStep) -> Self {
                CheckStep {
                    name: s.name,
                    ok: s.ok,
                    detail: s.detail,
                }
            }
        }
    };
}

older_contract!(since_v0_4_0);
older_contract!(since_v0_3_0);

/// The exports of a component of an older contract.
pub enum Exports {
    V0_4(since_v0_4_0::Collector),
    V0_3(since_v0_3_0::Collector),
}

/// Registers the imports of every older contract.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    use since_v0_3_0::defender_ocsf::collector as v0_3;
    use since_v0_4_0::defender_ocsf::collector as v0_4;
    let e = |e: wasmtime::Error| anyhow!("{e}");
    v0_4::host::add_to_linker::<_, HasSelf<_>>(linker, |s| s).map_err(e)?;
    v0_4::credentials::add_to_linker::<_, HasSelf<_>>(linker, |s| s).map_err(e)?;
    v0_4::types::add_to_linker::<_, HasSelf<_>>(linker, |s| s).map_err(e)?;
    v0_3::host::add_to_linker::<_, HasSelf<_>>(linker, |s| s).map_err(e)?;
    v0_3::credentials::add_to_linker::<_, HasSelf<_>>(linker, |s| s).map_err(e)?;
    v0_3::types::add_to_linker::<_, HasSelf<_>>(linker, |s| s).map_err(e)?;
    Ok(())
}

/// The component as one of an older contract, newest first; `None` when it
/// is none of them.
pub fn instantiate(store: &mut Store<HostState>, component: &Component, linker: &Linker<HostState>) -> Option<Exports> {
    if let Ok(c) = since_v0_4_0::Collector::instantiate(&mut *store, component, linker) {
        return Some(Exports::V0_4(c));
    }
    since_v0_3_0::Collector::instantiate(store, component, linker)
        .ok()
        .map(Exports::V0_3)
}

/// One call's result in the current types.
fn current<A: Into<B>, B, E: Into<SourceError>>(result: std::result::Result<A, E>) -> std::result::Result<B, SourceError> {
    result.map(Into::into).map_err(Into::into)
}

type Call<T> = wasmtime::Result<std::result::Result<T, SourceError>>;

impl Exports {
    pub fn contract(&self) -> &'static str {
        match self {
            Exports::V0_4(_) => "0.4.0",
            Exports::V0_3(_) => "0.3.0",
        }
    }

    /// What the contract's text documented, for `describe`: the settings
    /// `convert` took (0.3.0 and 0.4.0 named `tenant_id` and
    /// `deprecated_classes`); nothing of secrets, credentials, instances or
    /// metrics, which those contracts did not say.
    pub fn description(&self) -> Description {
        Description {
            secret_keys: Vec::new(),
            credential_keys: Vec::new(),
            instance_key: None,
            host_signer: None,
            convert_options: vec!["tenant_id".into(), "ocsf.deprecated_classes".into()],
            metrics: Vec::new(),
        }
    }

    pub fn init(&self, store: &mut Store<HostState>, config: &str, checkpoint: Option<&str>) -> Call<SourceInfo> {
        match self {
            Exports::V0_4(c) => c.defender_ocsf_collector_source().call_init(store, config, checkpoint).map(current),
            Exports::V0_3(c) => c.defender_ocsf_collector_source().call_init(store, config, checkpoint).map(current),
        }
    }

    pub fn poll(&self, store: &mut Store<HostState>) -> Call<Batch> {
        match self {
            Exports::V0_4(c) => c.defender_ocsf_collector_source().call_poll(store).map(current),
            Exports::V0_3(c) => c.defender_ocsf_collector_source().call_poll(store).map(current),
        }
    }

    pub fn check(&self, store: &mut Store<HostState>) -> wasmtime::Result<Vec<CheckStep>> {
        match self {
            Exports::V0_4(c) => c
                .defender_ocsf_collector_source()
                .call_check(store)
                .map(|steps| steps.into_iter().map(Into::into).collect()),
            Exports::V0_3(c) => c
                .defender_ocsf_collector_source()
                .call_check(store)
                .map(|steps| steps.into_iter().map(Into::into).collect()),
        }
    }

    pub fn map_results(&self, store: &mut Store<HostState>, table: &str, options: &str, results: &[u8]) -> Call<Converted> {
        match self {
            Exports::V0_4(c) => c
                .defender_ocsf_collector_convert()
                .call_map_results(store, table, options, results)
                .map(current),
            Exports::V0_3(c) => c
                .defender_ocsf_collector_convert()
                .call_map_results(store, table, options, results)
                .map(current),
        }
    }

    /// `None`: the contract has no `map-stream`.
    pub fn map_stream(
        &self,
        store: &mut Store<HostState>,
        options: &str,
        message: &[u8],
    ) -> Option<wasmtime::Result<std::result::Result<StreamMapped, String>>> {
        match self {
            Exports::V0_4(c) => Some(
                c.defender_ocsf_collector_convert()
                    .call_map_stream(store, options, message)
                    .map(|r| {
                        r.map(|m| StreamMapped {
                            events: m.events,
                            count: m.count,
                            rejected: m.rejected,
                            tables: m
                                .tables
                                .into_iter()
                                .map(|t| TableCount {
                                    table: t.table,
                                    rows: t.rows,
                                    errors: t.errors,
                                })
                                .collect(),
                            unknown_categories: m.unknown_categories,
                        })
                    }),
            ),
            Exports::V0_3(_) => None,
        }
    }
}
