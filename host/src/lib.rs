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
//! - [`sink`]: what every output is, and the error of a batch not delivered;
//! - [`output`]: the stdout and HTTP outputs, and their settings;
//! - [`forward`]: the Fluentd Forward protocol sink;
//! - [`handoff`]: the sink that hands batches to another thread (the Fluent
//!   Bit input plugin) and waits until they are taken;
//! - [`msgpack`]: events as MessagePack records, as Fluent Bit takes them;
//! - [`launch`]: a run's options and outcome, and the component instance;
//! - [`poll`]: the poll-deliver-save loop of a collector;
//! - [`app`]: the commands: run (tenants, sources), check, preflight, map;
//! - [`kafka`]: the streaming source: read, map, deliver, then commit;
//! - [`shutdown`]: SIGTERM/SIGINT handling;
//! - [`clock`]: real time, or compressed time for soak runs;
//! - [`humantime_serde`]: durations in settings (`30s`);
//! - [`telemetry`]: logs and metrics;
//!
//! It knows nothing of Defender: the loopback Graph stand-in behind `demo`
//! and the tests is the `defender-ocsf-replay` crate, which only the binary
//! links.

pub mod app;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod egress;
pub mod forward;
pub mod handoff;
pub mod humantime_serde;
pub mod kafka;
pub mod launch;
pub mod msgpack;
pub mod output;
pub mod policy;
pub mod poll;
pub mod runtime;
pub mod shutdown;
pub mod sink;
pub mod state;
pub mod telemetry;
