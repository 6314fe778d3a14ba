//! The exports of the WebAssembly component: `source` and `convert`, each a
//! thin adapter from the WIT types to the collector's.

use crate::capabilities::{Capabilities, process_monotonic_ms};
use crate::collector::Collector;
use crate::error::Error;
use crate::time::Ticks;
use crate::wasi_http::WasiHttp;
use std::cell::RefCell;

use crate::bindings::defender_ocsf::collector::types as wit;
use crate::bindings::exports::defender_ocsf::collector::convert::{Converted, Guest as ConvertGuest, StreamMapped, TableCount};
use crate::bindings::exports::defender_ocsf::collector::source::{self as wit_source, Guest};

thread_local! {
    static COLLECTOR: RefCell<Option<Collector>> = const { RefCell::new(None) };
}

struct Component;

impl ConvertGuest for Component {
    fn map_results(table: String, options: String, results: Vec<u8>) -> Result<Converted, wit::Error> {
        let out = crate::convert::convert(&table, &options, results).map_err(to_wit)?;
        Ok(Converted {
            events: out.events,
            count: out.count,
            rejected: out.rejected,
        })
    }

    fn map_stream(options: String, message: Vec<u8>) -> Result<StreamMapped, String> {
        let out = crate::convert::convert_stream(&options, &message)?;
        Ok(StreamMapped {
            events: out.events,
            count: out.count,
            rejected: out.rejected,
            tables: out
                .tables
                .into_iter()
                .map(|t| TableCount {
                    table: t.table,
                    rows: t.rows,
                    errors: t.errors,
                })
                .collect(),
            unknown_categories: out.unknown_categories,
        })
    }
}

impl Guest for Component {
    fn describe() -> wit_source::Description {
        use crate::description::{DESCRIPTION as D, Summary};
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        wit_source::Description {
            secret_keys: strings(D.secret_keys),
            credential_keys: strings(D.credential_keys),
            instance_key: D.instance_key.map(str::to_string),
            host_signer: D.host_signer.map(|(k, v)| (k.to_string(), v.to_string())),
            convert_options: strings(D.convert_options),
            metrics: D
                .metrics
                .iter()
                .map(|m| wit_source::Metric {
                    name: m.name.into(),
                    help: m.help.into(),
                    summary: m.summary.map(|s| match s {
                        Summary::Total => wit_source::Summary::Total,
                        Summary::Max => wit_source::Summary::Max,
                    }),
                })
                .collect(),
        }
    }

    fn init(config: String, last_checkpoint: Option<String>) -> Result<wit::SourceInfo, wit::Error> {
        let (collector, info) = Collector::new(
            &config,
            last_checkpoint.as_deref(),
            Ticks::now(),
            Capabilities {
                signer: Box::new(crate::bindings::sign_client_assertion),
                monotonic_ms: process_monotonic_ms,
            },
        )
        .map_err(to_wit)?;
        COLLECTOR.with(|c| *c.borrow_mut() = Some(collector));
        Ok(wit::SourceInfo {
            name: info.name,
            version: info.version,
            allowed_origins: info.allowed_origins,
        })
    }

    fn poll() -> Result<wit::Batch, wit::Error> {
        COLLECTOR.with(|c| {
            let mut guard = c.borrow_mut();
            let collector = guard
                .as_mut()
                .ok_or_else(|| wit::Error::Fatal("poll was called before a successful init".into()))?;
            let batch = collector.poll(&mut WasiHttp, Ticks::now()).map_err(to_wit)?;
            Ok(wit::Batch {
                events: batch.events,
                count: batch.count,
                checkpoint: batch.checkpoint,
                next_poll_ms: batch.next_poll_ms,
            })
        })
    }

    fn check() -> Vec<wit::CheckStep> {
        COLLECTOR.with(|c| match c.borrow_mut().as_mut() {
            None => vec![wit::CheckStep {
                name: "configuration".into(),
                ok: false,
                detail: "check was called before a successful init".into(),
            }],
            Some(collector) => collector
                .check(&mut WasiHttp, Ticks::now())
                .into_iter()
                .map(|s| wit::CheckStep {
                    name: s.name,
                    ok: s.ok,
                    detail: s.detail,
                })
                .collect(),
        })
    }
}

crate::bindings::export!(Component);

fn to_wit(e: Error) -> wit::Error {
    match e {
        Error::Config(m) => wit::Error::Config(m),
        Error::Auth(m) => wit::Error::Auth(m),
        Error::Permission(m) => wit::Error::Permission(m),
        Error::Throttled { retry_after_ms, message } => wit::Error::Throttled(wit::Throttle { retry_after_ms, message }),
        Error::Transient(m) => wit::Error::Transient(m),
        Error::Fatal(m) => wit::Error::Fatal(m),
    }
}
