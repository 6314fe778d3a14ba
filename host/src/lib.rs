//! The `defender-ocsf` host: runs a source component in wasmtime, gives it
//! HTTP to the endpoints it was configured for and nothing else, delivers
//! its events and saves its checkpoints after delivery.
//!
//! Modules, one job each:
//! - [`config`]: the YAML configuration and `${VAR}` interpolation;
//! - [`runtime`]: wasmtime, the component, its limits and bindings;
//! - [`policy`]: the network allow-list enforced on every request;
//! - [`egress`]: how allowed requests leave: proxy, trust roots, timeouts;
//! - [`credentials`]: the client certificate, signing on the component's behalf;
//! - [`state`]: checkpoints on disk, written atomically;
//! - [`output`]: the sinks events are delivered to (stdout, HTTP);
//! - [`forward`]: the Fluentd Forward protocol sink;
//! - [`handoff`]: the sink that hands batches to another thread (the Fluent
//!   Bit input plugin) and waits until they are taken;
//! - [`msgpack`]: events as MessagePack records, as Fluent Bit takes them;
//! - [`app`]: the poll-deliver-save loop;
//! - [`kafka`]: the streaming source: read, map, deliver, then commit;
//! - [`shutdown`]: SIGTERM/SIGINT handling;
//! - [`clock`]: real time, or compressed time for soak runs;
//! - [`telemetry`]: logs and metrics;
//! - [`replay`]: the loopback replay endpoint behind `demo` and the tests.

pub mod app;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod egress;
pub mod forward;
pub mod handoff;
pub mod kafka;
pub mod msgpack;
pub mod output;
pub mod policy;
pub mod replay;
pub mod runtime;
pub mod shutdown;
pub mod state;
pub mod telemetry;
