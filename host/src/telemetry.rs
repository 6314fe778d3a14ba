//! Logs (structured JSON on stderr) and the metrics the component reports.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Sets up JSON logs at `level` (`error`..`trace`; `RUST_LOG` overrides it)
/// on stderr, or appended to `file`. Stdout is reserved for events.
pub fn init_logging(level: &str, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let builder = json_logs(level);
    match file {
        None => {
            let _ = builder.with_writer(std::io::stderr).try_init();
        }
        Some(path) => {
            use anyhow::Context;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("`log_file` {}: cannot open it for appending", path.display()))?;
            let _ = builder.with_writer(std::sync::Mutex::new(f)).try_init();
        }
    }
    Ok(())
}

/// Sets up the same JSON logs written through `writer`, such as a host
/// program's own log (the Fluent Bit plugin's). The first call in a process
/// wins; later ones change nothing.
pub fn init_logging_to<W>(level: &str, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let _ = json_logs(level).with_writer(writer).try_init();
}

/// JSON lines, one event each, with the fields at the top level.
fn json_logs(
    level: &str,
) -> tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::JsonFields,
    tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json>,
    tracing_subscriber::EnvFilter,
> {
    // The level applies to the collector's own logs; libraries (wasmtime,
    // cranelift, hyper) stay at warn, or `trace` would log every compiled
    // instruction. RUST_LOG overrides all of it.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("warn,defender_ocsf_host={level},defender_ocsf={level},component={level}"))
    });
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
}

type Key = (String, Vec<(String, String)>);

/// Counters and gauges, keyed by name and labels.
#[derive(Default)]
pub struct Telemetry {
    counters: std::sync::Arc<Mutex<BTreeMap<Key, u64>>>,
    gauges: std::sync::Arc<Mutex<BTreeMap<Key, f64>>>,
    /// Added to every series recorded through this handle.
    labels: Vec<(String, String)>,
}

impl Telemetry {
    /// A handle on the same series that adds the label `key="value"` to
    /// everything recorded through it: each tenant's collector records
    /// through one with its `tenant` label, so that `/metrics` keeps the
    /// tenants apart.
    pub fn labelled(&self, key: &str, value: &str) -> Telemetry {
        let mut labels = self.labels.clone();
        labels.push((key.to_string(), value.to_string()));
        Telemetry {
            counters: self.counters.clone(),
            gauges: self.gauges.clone(),
            labels,
        }
    }

    pub fn counter_add(&self, name: &str, mut labels: Vec<(String, String)>, value: u64) {
        labels.extend(self.labels.iter().cloned());
        labels.sort();
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *counters.entry((name.to_string(), labels)).or_default() += value;
    }

    pub fn gauge_set(&self, name: &str, mut labels: Vec<(String, String)>, value: f64) {
        labels.extend(self.labels.iter().cloned());
        labels.sort();
        let mut gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        gauges.insert((name.to_string(), labels), value);
    }

    /// Prometheus text exposition of every counter and gauge, prefixed
    /// `defender_ocsf_`.
    pub fn render_prometheus(&self) -> String {
        use std::fmt::Write;
        fn labels(l: &[(String, String)]) -> String {
            if l.is_empty() {
                return String::new();
            }
            let inner: Vec<String> = l
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        let mut out = String::new();
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = "";
        for ((name, l), v) in counters.iter() {
            if name != last {
                let _ = writeln!(out, "# TYPE defender_ocsf_{name} counter");
                last = name;
            }
            let _ = writeln!(out, "defender_ocsf_{name}{} {v}", labels(l));
        }
        let gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = "";
        for ((name, l), v) in gauges.iter() {
            if name != last {
                let _ = writeln!(out, "# TYPE defender_ocsf_{name} gauge");
                last = name;
            }
            let _ = writeln!(out, "defender_ocsf_{name}{} {v}", labels(l));
        }
        out
    }

    /// The largest value of a gauge over its label sets.
    pub fn gauge_max(&self, name: &str) -> Option<f64> {
        let gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        gauges.iter().filter(|((n, _), _)| n == name).map(|(_, v)| *v).reduce(f64::max)
    }

    /// The sum of a counter over all its label sets.
    pub fn counter_total(&self, name: &str) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters.iter().filter(|((n, _), _)| n == name).map(|(_, v)| v).sum()
    }
}

/// Serves `GET /metrics` in Prometheus text format on `address` until the
/// process ends.
pub fn serve_metrics(address: &str, telemetry: std::sync::Arc<Telemetry>) -> anyhow::Result<std::net::SocketAddr> {
    use anyhow::Context;
    let listener = std::net::TcpListener::bind(address).with_context(|| format!("`metrics_address` {address}: cannot listen"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let telemetry = telemetry.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let telemetry = telemetry.clone();
                        async move {
                            let (status, body) = if req.uri().path() == "/metrics" {
                                (200, telemetry.render_prometheus())
                            } else {
                                (404, "try /metrics\n".to_string())
                            };
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "text/plain; version=0.0.4")
                                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                                    .expect("a valid response"),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    })?;
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let t = Telemetry::default();
        t.counter_add("events_emitted_total", vec![("table".into(), "A\"x".into())], 2);
        t.counter_add("events_emitted_total", vec![("table".into(), "A\"x".into())], 3);
        t.gauge_set("lag_seconds", vec![("table".into(), "B".into())], 61.5);
        let text = t.render_prometheus();
        assert!(text.contains("# TYPE defender_ocsf_events_emitted_total counter\n"), "{text}");
        assert!(text.contains("defender_ocsf_events_emitted_total{table=\"A\\\"x\"} 5\n"), "{text}");
        assert!(text.contains("defender_ocsf_lag_seconds{table=\"B\"} 61.5\n"), "{text}");
        assert_eq!(t.counter_total("events_emitted_total"), 5);
    }

    #[test]
    fn a_labelled_handle_records_into_the_same_series_with_its_label() {
        let t = Telemetry::default();
        let (a, b) = (t.labelled("tenant", "a"), t.labelled("tenant", "b"));
        a.counter_add("batches_delivered_total", vec![], 2);
        b.counter_add("batches_delivered_total", vec![], 3);
        a.gauge_set("lag_seconds", vec![("table".into(), "T".into())], 7.0);
        let text = t.render_prometheus();
        assert!(text.contains("defender_ocsf_batches_delivered_total{tenant=\"a\"} 2\n"), "{text}");
        assert!(text.contains("defender_ocsf_batches_delivered_total{tenant=\"b\"} 3\n"), "{text}");
        assert!(text.contains("defender_ocsf_lag_seconds{table=\"T\",tenant=\"a\"} 7\n"), "{text}");
        assert_eq!(t.counter_total("batches_delivered_total"), 5);
    }
}
