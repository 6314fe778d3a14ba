//! The defender-ocsf collector component.
//!
//! It gets an app-only token, runs advanced-hunting queries through
//! Microsoft Graph window by window, and maps every row to an OCSF 1.8.0
//! event. Built for `wasm32-wasip2` it is a WebAssembly component exporting
//! the `source` interface of `wit/source.wit`; built natively it is a plain
//! library, which is how its tests run.
//!
//! Modules, one job each:
//! - [`config`]: the settings and their defaults;
//! - [`auth`]: OAuth 2.0 client credentials and the token cache;
//! - [`graph`]: the runHuntingQuery request, response and errors;
//! - [`budget`]: the tenant's call budget;
//! - [`bytes`]: byte searches eight bytes a step;
//! - [`kql`]: the query text;
//! - [`planner`]: windows, cycles and the checkpoint;
//! - [`progress`]: backfill progress lines;
//! - [`snapshot`]: entity tables' rows merged into the latest state per entity;
//! - [`mapping`]: rows to OCSF events, one file per table family;
//! - [`streams`]: the optional incident and alert streams of the security API;
//! - [`collector`]: one poll, tying the above together;
//! - [`convert`]: mapping a saved answer without collecting;
//! - [`stream_api`]: mapping a Streaming API message (Event Hubs) with the same mapping;
//! - `component` (wasm only): the WIT bindings and the `wasi:http` client.

pub mod answer;
pub mod auth;
pub mod budget;
pub mod bytes;
pub mod capabilities;
pub mod collector;
pub mod config;
pub mod convert;
pub mod description;
pub mod error;
pub mod graph;
pub mod http;
pub mod kql;
pub mod mapping;
pub mod planner;
pub mod progress;
pub mod snapshot;
pub mod stream_api;
pub mod streams;
pub mod telemetry;
pub mod time;

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(target_arch = "wasm32")]
mod component;
#[cfg(target_arch = "wasm32")]
mod wasi_http;

pub use collector::{Batch, Collector, SourceInfo};
pub use error::Error;
