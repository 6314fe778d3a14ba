//! The generated bindings of `wit/source.wit`, and the host's imports as
//! plain functions: logs and metrics (`host`) and the certificate signer
//! (`credentials`). Nothing here knows what the component does with them.

wit_bindgen::generate!({
    world: "collector",
    path: "wit",
    with: {
        "wasi:http/outgoing-handler@0.2.12": wasip2::http::outgoing_handler,
        "wasi:http/types@0.2.12": wasip2::http::types,
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:clocks/monotonic-clock@0.2.12": wasip2::clocks::monotonic_clock,
    },
    pub_export_macro: true,
    default_bindings_module: "crate::bindings",
});

use defender_ocsf::collector::credentials;
use defender_ocsf::collector::host;

pub use host::Level;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Logs a line through the host.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    host::log(level, message, &pairs(fields));
}

/// Adds to a counter the host exports.
pub fn counter(name: &str, labels: &[(&str, &str)], value: u64) {
    host::counter_add(name, &pairs(labels), value);
}

/// Sets a gauge the host exports.
pub fn gauge(name: &str, labels: &[(&str, &str)], value: f64) {
    host::gauge_set(name, &pairs(labels), value);
}

/// Has the host sign a client assertion with the certificate it holds.
pub fn sign_client_assertion(claims: &str) -> Result<String, String> {
    credentials::sign_client_assertion(claims)
}
