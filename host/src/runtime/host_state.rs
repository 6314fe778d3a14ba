//! What a store holds for one instance, and the host's imports of the
//! current contract: logs and metrics (`host`) and the signer
//! (`credentials`), with WASI and `wasi:http` behind the network policy.

use super::contract::bindings;
use crate::credentials::ClientCertificate;
use crate::policy::Policy;
use crate::telemetry::Telemetry;
use bindings::defender_ocsf::collector::host::{self as wit_host, Level};
use std::sync::Arc;
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// What a store holds for one instance.
pub struct HostState {
    pub(super) wasi: WasiCtx,
    pub(super) http: WasiHttpCtx,
    pub(super) table: ResourceTable,
    pub(super) policy: Policy,
    /// The client certificate this instance may have signatures from.
    pub(super) certificate: Option<Arc<ClientCertificate>>,
    pub(super) limits: StoreLimits,
    pub(super) telemetry: Arc<Telemetry>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.policy,
        }
    }
}

impl wit_host::Host for HostState {
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        // The log line spreads these out as fields of its own.
        let fields = crate::telemetry::component_fields(&fields);
        match level {
            Level::Trace => tracing::trace!(target: "component", component_fields = %fields, "{message}"),
            Level::Debug => tracing::debug!(target: "component", component_fields = %fields, "{message}"),
            Level::Info => tracing::info!(target: "component", component_fields = %fields, "{message}"),
            Level::Warn => tracing::warn!(target: "component", component_fields = %fields, "{message}"),
            Level::Error => tracing::error!(target: "component", component_fields = %fields, "{message}"),
        }
    }

    fn counter_add(&mut self, name: String, labels: Vec<(String, String)>, value: u64) {
        self.telemetry.counter_add(&name, labels, value);
    }

    fn gauge_set(&mut self, name: String, labels: Vec<(String, String)>, value: f64) {
        self.telemetry.gauge_set(&name, labels, value);
    }
}

impl bindings::defender_ocsf::collector::types::Host for HostState {}

impl bindings::defender_ocsf::collector::credentials::Host for HostState {
    fn sign_client_assertion(&mut self, claims: String) -> Result<String, String> {
        match &self.certificate {
            Some(certificate) => certificate.sign(&claims),
            None => Err("no client certificate is configured in the host; set `client_certificate_file`".into()),
        }
    }
}
