//! The current contract, `wit/source.wit`: its generated bindings and the
//! types the rest of the host uses.

/// The current contract, `wit/source.wit`.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        world: "collector",
        path: "../wit",
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
        },
    });
}

pub use bindings::defender_ocsf::collector::types::{Batch, CheckStep, Error as SourceError, SourceInfo, Throttle};
pub use bindings::exports::defender_ocsf::collector::convert::{Converted, StreamMapped, TableCount};
pub use bindings::exports::defender_ocsf::collector::source::{Description, Metric, Summary};

/// The contract version of `wit/source.wit`.
pub const CONTRACT: &str = "0.5.0";
