//! Logs (JSON lines on stderr, or in a file) and the metrics the component reports.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Sets up JSON logs at `level` (`error`..`trace`; `RUST_LOG` overrides it)
/// on stderr, or appended to `file`. Stdout is reserved for events.
pub fn init_logging(level: &str, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let builder = json_logs(level);
    match file {
        None => {
            if builder.with_writer(std::io::stderr).try_init().is_ok() {
                let _ = LOGS.set(LogsTo::Stderr);
            }
        }
        Some(path) => {
            use anyhow::Context;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("`log_file` {}: cannot open it for appending", path.display()))?;
            if builder.with_writer(std::sync::Mutex::new(f)).try_init().is_ok() {
                let _ = LOGS.set(LogsTo::Elsewhere);
            }
        }
    }
    Ok(())
}

/// Where the logs of this process go, once set up.
enum LogsTo {
    Stderr,
    Elsewhere,
}

static LOGS: std::sync::OnceLock<LogsTo> = std::sync::OnceLock::new();

/// Reports the error that ends the program: once on stderr, as a JSON log
/// line, and in the log file too when the logs go there.
pub fn fatal(message: &str) {
    match LOGS.get() {
        Some(LogsTo::Stderr) => tracing::error!("{message}"),
        Some(LogsTo::Elsewhere) => {
            tracing::error!("{message}");
            eprintln!("{}", error_line(message));
        }
        None => eprintln!("{}", error_line(message)),
    }
}

/// `message` as an ERROR log line, for when no logging is set up.
fn error_line(message: &str) -> String {
    json_line(&[
        ("timestamp".into(), now_text().into()),
        ("level".into(), "ERROR".into()),
        ("message".into(), message.into()),
        ("target".into(), "defender_ocsf_host".into()),
    ])
}

/// Sets up the same JSON logs written through `writer`, such as a host
/// program's own log (the Fluent Bit plugin's). The first call in a process
/// wins; later ones change nothing.
pub fn init_logging_to<W>(level: &str, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    if json_logs(level).with_writer(writer).try_init().is_ok() {
        let _ = LOGS.set(LogsTo::Elsewhere);
    }
}

/// The field that carries a component's log fields, as JSON text; the log
/// line spreads them out as fields of its own.
pub const COMPONENT_FIELDS: &str = "component_fields";

/// JSON lines, one event each: `timestamp`, `level` and `message` first,
/// then the event's fields (a component's among them), then `target`.
fn json_logs(
    level: &str,
) -> tracing_subscriber::fmt::SubscriberBuilder<tracing_subscriber::fmt::format::DefaultFields, JsonLines, tracing_subscriber::EnvFilter> {
    tracing_subscriber::fmt().event_format(JsonLines).with_env_filter(filter(level))
}

/// `level` for the collector's own logs. Libraries (wasmtime, cranelift,
/// hyper) stay at warn, or `debug` would log every compiled function.
/// `RUST_LOG` overrides: a bare level (`RUST_LOG=debug`) applies to the
/// collector's logs alone; directives (`RUST_LOG=warn,cranelift=debug`)
/// are taken as written.
fn filter(level: &str) -> tracing_subscriber::EnvFilter {
    let ours = |level: &str| format!("warn,defender_ocsf={level},component={level}");
    match std::env::var("RUST_LOG") {
        Ok(bare) if ["error", "warn", "info", "debug", "trace"].contains(&bare.trim().to_ascii_lowercase().as_str()) => {
            tracing_subscriber::EnvFilter::new(ours(bare.trim()))
        }
        Ok(directives) if !directives.trim().is_empty() => tracing_subscriber::EnvFilter::new(directives),
        _ => tracing_subscriber::EnvFilter::new(ours(level)),
    }
}

/// The log line format.
pub struct JsonLines;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = vec![
            ("timestamp".to_string(), now_text().into()),
            ("level".to_string(), meta.level().as_str().into()),
            ("message".to_string(), fields.message.unwrap_or_default().into()),
        ];
        for (key, value) in fields.others {
            if !line.iter().any(|(k, _)| *k == key) && key != "target" {
                line.push((key, value));
            }
        }
        line.push(("target".into(), meta.target().into()));
        writeln!(writer, "{}", json_line(&line))
    }
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Fields as one JSON object, in their order.
fn json_line(fields: &[(String, serde_json::Value)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::String(key.clone()).to_string());
        out.push(':');
        out.push_str(&value.to_string());
    }
    out.push('}');
    out
}

/// An event's fields, in the order recorded.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    others: Vec<(String, serde_json::Value)>,
}

impl Fields {
    fn add(&mut self, name: &str, value: serde_json::Value) {
        match (name, value) {
            ("message", serde_json::Value::String(text)) => self.message = Some(text),
            (COMPONENT_FIELDS, serde_json::Value::String(text)) => match serde_json::from_str(&text) {
                Ok(pairs) => self.others.extend::<Vec<(String, serde_json::Value)>>(pairs),
                Err(_) => self.others.push((COMPONENT_FIELDS.into(), text.into())),
            },
            (name, value) => self.others.push((name.to_string(), value)),
        }
    }
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.add(field.name(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.add(field.name(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.add(field.name(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.add(field.name(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.add(field.name(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.add(field.name(), value.into());
    }
}

/// A component's log fields as the JSON text [`COMPONENT_FIELDS`] carries,
/// `[[name, value], ...]` in their order: whole numbers and `true`/`false`
/// as JSON values, anything else as text.
pub fn component_fields(fields: &[(String, String)]) -> String {
    let pairs: Vec<(String, serde_json::Value)> = fields
        .iter()
        .map(|(k, v)| {
            let value = match v.as_str() {
                "true" => true.into(),
                "false" => false.into(),
                text => match (text.parse::<i64>(), text.parse::<u64>()) {
                    (Ok(n), _) if n.to_string() == text => n.into(),
                    (_, Ok(n)) if n.to_string() == text => n.into(),
                    _ => text.into(),
                },
            };
            (k.clone(), value)
        })
        .collect();
    serde_json::to_string(&pairs).unwrap_or_default()
}

/// A series' labels, as name and value pairs.
type Labels = Vec<(String, String)>;

type Key = (String, Labels);

/// Counters and gauges, keyed by name and labels, and the health of the
/// collectors that record into them.
#[derive(Default)]
pub struct Telemetry {
    counters: std::sync::Arc<Mutex<BTreeMap<Key, u64>>>,
    gauges: std::sync::Arc<Mutex<BTreeMap<Key, f64>>>,
    /// Each collector's state, by its labels (its tenant's).
    health: std::sync::Arc<Mutex<BTreeMap<Labels, Health>>>,
    /// Added to every series recorded through this handle.
    labels: Labels,
    /// The source component's own metrics, as it described them: name to
    /// help text and how the summary line shows it.
    described: std::sync::Arc<Mutex<BTreeMap<String, Described>>>,
}

/// A metric the component described: its help text and how the summary
/// line shows it.
type Described = (String, Option<Summary>);

/// How the summary line shows a metric the component described.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Summary {
    /// The sum over its series.
    Total,
    /// The largest value among its series.
    Max,
}

/// A collector's state, for `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Started, not yet through a collection step.
    Starting,
    /// Its last step succeeded: configured, authenticated, collecting.
    Ready,
    /// Its last step failed, and why.
    Failing(String),
}

/// What each of the host's own metrics means, for `# HELP`. The source
/// component describes its own (`source.describe`); a name described by
/// neither is "reported by the source component".
const HELP: &[(&str, &str)] = &[
    (
        "batches_delivered_total",
        "Batches delivered to the output, each followed by its checkpoint.",
    ),
    ("build_info", "Always 1; the labels name the version."),
    (
        "errors_total",
        "Failed collection steps, by kind (transient, auth, permission, config, fatal).",
    ),
    ("last_success_timestamp_seconds", "When a batch was last delivered (Unix seconds)."),
    (
        "stream_consumer_lag",
        "Messages each partition of the stream still holds beyond this instance's committed offset.",
    ),
    (
        "stream_messages_malformed_total",
        "Stream messages the component could not read (counted, logged and skipped), by topic.",
    ),
    ("stream_messages_total", "Messages read from the stream, by topic."),
    (
        "stream_records_total",
        "Records read from the stream, by the table the component named.",
    ),
    (
        "stream_records_unknown_total",
        "Stream records of a category the component does not map (left out), by category.",
    ),
    ("throttled_total", "Times the source's API throttled collection."),
];

/// The kinds of `errors_total`, present from the start at 0.
pub const ERROR_KINDS: &[&str] = &["transient", "auth", "permission", "config", "fatal"];

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
            health: self.health.clone(),
            labels,
            described: self.described.clone(),
        }
    }

    /// Takes the source component's description of its metrics: their
    /// help texts, and which the summary line shows.
    pub fn describe(&self, metrics: impl IntoIterator<Item = (String, String, Option<Summary>)>) {
        let mut described = self.described.lock().unwrap_or_else(|p| p.into_inner());
        for (name, help, summary) in metrics {
            described.insert(name, (help, summary));
        }
    }

    /// The summary line's part for the component's metrics, as it described
    /// them: `name=value` for each, by its total or its largest value.
    pub fn summary(&self) -> String {
        let described = self.described.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let parts: Vec<String> = described
            .iter()
            .filter_map(|(name, (_, summary))| match summary {
                Some(Summary::Total) => Some(format!("{name}={}", self.counter_total(name))),
                Some(Summary::Max) => Some(format!("{name}(max)={}", self.gauge_max(name).unwrap_or(0.0))),
                None => None,
            })
            .collect();
        parts.join(" ")
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
        let described = self.described.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let head = |out: &mut String, name: &str, kind: &str| {
            let help = match HELP.iter().find(|(n, _)| *n == name) {
                Some((_, help)) => help,
                None => described
                    .get(name)
                    .map_or("Reported by the source component.", |(help, _)| help.as_str()),
            };
            let _ = writeln!(out, "# HELP defender_ocsf_{name} {help}");
            let _ = writeln!(out, "# TYPE defender_ocsf_{name} {kind}");
        };
        let mut out = String::new();
        head(&mut out, "build_info", "gauge");
        let _ = writeln!(out, "defender_ocsf_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = "";
        for ((name, l), v) in counters.iter() {
            if name != last {
                head(&mut out, name, "counter");
                last = name;
            }
            let _ = writeln!(out, "defender_ocsf_{name}{} {v}", labels(l));
        }
        let gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = "";
        for ((name, l), v) in gauges.iter() {
            if name != last {
                head(&mut out, name, "gauge");
                last = name;
            }
            let _ = writeln!(out, "defender_ocsf_{name}{} {v}", labels(l));
        }
        out
    }

    /// Records this collector's state for `/readyz`.
    pub fn set_health(&self, health: Health) {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.labels.clone(), health);
    }

    /// Whether every collector is ready (`/readyz`): `Err` says which is not,
    /// and why.
    pub fn readiness(&self) -> Result<(), String> {
        let health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if health.is_empty() {
            return Err("starting".into());
        }
        let waiting: Vec<String> = health
            .iter()
            .filter(|(_, h)| **h != Health::Ready)
            .map(|(labels, h)| {
                let who: Vec<String> = labels.iter().map(|(k, v)| format!("{k} {v}: ")).collect();
                match h {
                    Health::Failing(why) => format!("{}failing: {why}", who.concat()),
                    _ => format!("{}starting", who.concat()),
                }
            })
            .collect();
        if waiting.is_empty() { Ok(()) } else { Err(waiting.join("\n")) }
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

/// Serves `GET /metrics` in Prometheus text format, `GET /healthz` (200
/// while the process runs) and `GET /readyz` (200 once every collector is
/// configured, authenticated and its last step succeeded; 503 with the
/// reason otherwise) on `address` until the process ends.
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
                            let (status, body) = match req.uri().path() {
                                "/metrics" => (200, telemetry.render_prometheus()),
                                // The process is up.
                                "/healthz" => (200, "ok\n".to_string()),
                                // Configured, authenticated, and the last step succeeded.
                                "/readyz" => match telemetry.readiness() {
                                    Ok(()) => (200, "ready\n".to_string()),
                                    Err(why) => (503, format!("{why}\n")),
                                },
                                _ => (404, "try /metrics, /healthz or /readyz\n".to_string()),
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

    /// A component's fields become fields of the line, in their order, with
    /// numbers as numbers; nothing is left as `"fields":"table=..."`.
    #[test]
    fn component_fields_are_fields_of_the_line() {
        let text = component_fields(&[
            ("table".into(), "DeviceFileEvents".into()),
            ("rows".into(), "500".into()),
            ("big".into(), "18446744073709551615".into()),
            ("ok".into(), "true".into()),
            ("window".into(), "2026-01-01T00:00:00Z".into()),
            ("padded".into(), "007".into()),
        ]);
        let mut fields = Fields::default();
        fields.add("message", "query".into());
        fields.add(COMPONENT_FIELDS, text.into());
        let mut line = vec![("message".to_string(), fields.message.clone().unwrap().into())];
        line.extend(fields.others);
        assert_eq!(
            json_line(&line),
            r#"{"message":"query","table":"DeviceFileEvents","rows":500,"big":18446744073709551615,"ok":true,"window":"2026-01-01T00:00:00Z","padded":"007"}"#
        );
    }

    #[test]
    fn renders_prometheus_text() {
        let t = Telemetry::default();
        t.counter_add("events_emitted_total", vec![("table".into(), "A\"x".into())], 2);
        t.counter_add("events_emitted_total", vec![("table".into(), "A\"x".into())], 3);
        t.gauge_set("lag_seconds", vec![("table".into(), "B".into())], 61.5);
        t.gauge_set("lag_seconds", vec![("table".into(), "C".into())], 2.0);
        t.counter_add("unsummed_total", vec![], 7);
        // The component's own metrics, as it described them.
        t.labelled("tenant", "x").describe([
            (
                "events_emitted_total".to_string(),
                "Events the component emitted.".to_string(),
                Some(Summary::Total),
            ),
            ("lag_seconds".to_string(), "How far behind it is.".to_string(), Some(Summary::Max)),
        ]);
        let text = t.render_prometheus();
        assert!(text.contains("# TYPE defender_ocsf_events_emitted_total counter\n"), "{text}");
        assert!(
            text.contains("# HELP defender_ocsf_events_emitted_total Events the component emitted.\n"),
            "{text}"
        );
        assert!(text.contains("# HELP defender_ocsf_lag_seconds How far behind it is.\n"), "{text}");
        assert!(
            text.contains("# HELP defender_ocsf_unsummed_total Reported by the source component.\n"),
            "{text}"
        );
        assert_eq!(
            t.summary(),
            "events_emitted_total=5 lag_seconds(max)=61.5",
            "described metrics only, each as it said"
        );
        assert!(
            text.contains(&format!(
                "defender_ocsf_build_info{{version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        // Every series has its HELP and TYPE.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                text.contains(&format!("# HELP {name} ")) && text.contains(&format!("# TYPE {name} ")),
                "{name}"
            );
        }
        assert!(text.contains("defender_ocsf_events_emitted_total{table=\"A\\\"x\"} 5\n"), "{text}");
        assert!(text.contains("defender_ocsf_lag_seconds{table=\"B\"} 61.5\n"), "{text}");
        assert_eq!(t.counter_total("events_emitted_total"), 5);
    }

    #[test]
    fn ready_once_every_collector_is() {
        let t = Telemetry::default();
        assert_eq!(t.readiness(), Err("starting".into()));
        let (a, b) = (t.labelled("tenant", "a"), t.labelled("tenant", "b"));
        a.set_health(Health::Ready);
        b.set_health(Health::Failing("authentication failed: AADSTS7000215".into()));
        assert_eq!(t.readiness(), Err("tenant b: failing: authentication failed: AADSTS7000215".into()));
        b.set_health(Health::Ready);
        assert_eq!(t.readiness(), Ok(()));
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
