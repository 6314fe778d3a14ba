//! A replay endpoint on loopback that speaks the identity platform's token
//! protocol and Graph's runHuntingQuery over a fixed set of rows.
//! `defender-ocsf demo` runs the real collector against it
//! ([`Dataset::demo`]); the tests use it as their mock Graph.
//!
//! It evaluates the KQL the collector emits (a table or `union withsource=`
//! of tables, a half-open `Timestamp`
//! range or one instant, a hash bucket of the rows' content, `order by
//! Timestamp asc` and `take`), and answers anything else the
//! way advanced hunting answers a query it cannot resolve: 400 with a Kusto
//! message. The host library knows none of this: only the binary links it,
//! for `demo`.

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::DateTime;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub type Row = Map<String, Value>;

/// Rows per table, served in `Timestamp` order.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    tables: BTreeMap<String, Vec<(i64, Row)>>,
    /// Security-API collections (`incidents`, `alerts_v2`).
    security: BTreeMap<String, Vec<Row>>,
}

/// Nanoseconds since the epoch of an ISO 8601 timestamp.
fn nanos(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok()?.timestamp_nanos_opt()
}

impl Dataset {
    /// Adds rows to `table`. Every row needs a parseable `Timestamp`.
    pub fn add(&mut self, table: &str, rows: impl IntoIterator<Item = Row>) -> Result<()> {
        let list = self.tables.entry(table.to_string()).or_default();
        for row in rows {
            let ts = row
                .get("Timestamp")
                .and_then(Value::as_str)
                .and_then(nanos)
                .with_context(|| format!("a {table} row has no valid Timestamp: {}", Value::Object(row.clone())))?;
            list.push((ts, row));
        }
        list.sort_by_key(|(ts, _)| *ts);
        Ok(())
    }

    /// Adds objects to a security-API collection (`incidents` or `alerts_v2`).
    pub fn add_security(&mut self, collection: &str, objects: impl IntoIterator<Item = Row>) {
        self.security.entry(collection.to_string()).or_default().extend(objects);
    }

    /// Adds NDJSON rows to `table`.
    pub fn add_ndjson(&mut self, table: &str, text: &str) -> Result<()> {
        let rows = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str::<Row>(l).with_context(|| format!("a {table} line is not a JSON object")))
            .collect::<Result<Vec<_>>>()?;
        self.add(table, rows)
    }

    /// The rows of `table`.
    pub fn rows(&self, table: &str) -> impl Iterator<Item = &Row> {
        self.tables.get(table).into_iter().flatten().map(|(_, r)| r)
    }

    /// The demo's rows, written for this project: a short process tree on a
    /// Windows workstation and a Linux server, including two rows that share
    /// one timestamp. Every timestamp column is moved so that the newest row
    /// is `newest_age` before `now`, keeping the rows' spacing.
    pub fn demo(now: chrono::DateTime<chrono::Utc>, newest_age: chrono::Duration) -> Dataset {
        let text = include_str!("demo_rows.ndjson");
        let rows: Vec<Row> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).expect("demo rows are JSON objects"))
            .collect();
        let newest = rows
            .iter()
            .filter_map(|r| r["Timestamp"].as_str().and_then(nanos))
            .max()
            .expect("demo rows have timestamps");
        let shift = (now - newest_age).timestamp_nanos_opt().expect("now is in range") - newest;
        let shifted = rows.into_iter().map(|mut row| {
            for value in row.values_mut() {
                if let Some(ts) = value.as_str().and_then(nanos) {
                    *value = Value::String(format_ticks(ts + shift));
                }
            }
            row
        });
        let mut dataset = Dataset::default();
        dataset.add("DeviceProcessEvents", shifted).expect("demo rows have timestamps");
        dataset
    }
}

/// `2025-01-01T00:00:00.1234567Z` from nanoseconds.
fn format_ticks(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let ticks = nanos.rem_euclid(1_000_000_000) / 100;
    let dt = DateTime::from_timestamp(secs, 0).expect("in range");
    format!("{}.{ticks:07}Z", dt.format("%Y-%m-%dT%H:%M:%S"))
}

/// The credentials the token endpoint accepts.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// A query the mock understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowQuery {
    /// The table, or the tables of a union.
    pub tables: Vec<String>,
    /// For a union: the column that names each row's table.
    pub source_column: Option<String>,
    /// Rows with `start <= Timestamp < end`, in nanoseconds.
    pub start: i64,
    pub end: i64,
    /// Only rows whose content hashes to bucket `.0` of `.1`.
    pub bucket: Option<(u64, u64)>,
    pub take: usize,
}

/// Parses a table (or `union withsource=C T1, T2, ...`) followed by these
/// operators, each at most once:
/// `where Timestamp >= datetime(a) and Timestamp < datetime(b)`,
/// `where Timestamp == datetime(t)`, `where hash(tostring(pack_all()), n) == i`,
/// `order by Timestamp asc` and a final `take n`.
pub fn parse_query(query: &str) -> Result<WindowQuery, String> {
    let mut parts = query.split('|').map(str::trim);
    let source = parts.next().unwrap_or_default();
    let (tables, source_column) = match source.strip_prefix("union withsource=") {
        Some(rest) => {
            let (column, tables) = rest.split_once(' ').ok_or_else(|| format!("Syntax error in `{source}`"))?;
            (tables.split(',').map(|t| t.trim().to_string()).collect(), Some(column.to_string()))
        }
        None => (vec![source.to_string()], None),
    };
    let mut q = WindowQuery {
        tables,
        source_column,
        start: i64::MIN,
        end: i64::MAX,
        bucket: None,
        take: usize::MAX,
    };
    let datetime = |text: &str| nanos(text).ok_or_else(|| format!("bad datetime {text}"));
    let mut taken = false;
    for part in parts {
        let syntax = || format!("Syntax error in `{part}`");
        if taken {
            return Err(format!("Syntax error: the replay endpoint expects `take` last in `{query}`"));
        }
        if let Some(rest) = part.strip_prefix("where Timestamp >= datetime(") {
            let (a, b) = rest
                .split_once(") and Timestamp < datetime(")
                .and_then(|(a, r)| Some((a, r.strip_suffix(')')?)))
                .ok_or_else(syntax)?;
            (q.start, q.end) = (datetime(a)?, datetime(b)?);
        } else if let Some(rest) = part.strip_prefix("where Timestamp == datetime(") {
            let at = datetime(rest.strip_suffix(')').ok_or_else(syntax)?)?;
            // Kusto keeps 100 ns ticks: the instant is that tick.
            (q.start, q.end) = (at, at.saturating_add(100));
        } else if let Some(rest) = part.strip_prefix("where hash(tostring(pack_all()), ") {
            let (n, i) = rest.split_once(") == ").ok_or_else(syntax)?;
            let (n, i): (u64, u64) = (n.parse().map_err(|_| syntax())?, i.parse().map_err(|_| syntax())?);
            if n == 0 {
                return Err(syntax());
            }
            q.bucket = Some((i, n));
        } else if part == "order by Timestamp asc" {
        } else if let Some(n) = part.strip_prefix("take ") {
            q.take = n.trim().parse().map_err(|_| syntax())?;
            taken = true;
        } else {
            return Err(format!(
                "Syntax error: the replay endpoint does not understand `{part}` in `{query}`"
            ));
        }
    }
    if !taken {
        return Err(format!("Syntax error: the replay endpoint expects a final `take` in `{query}`"));
    }
    Ok(q)
}

/// The hash bucket, out of `buckets`, of a row's content: a stand-in for
/// Kusto's `hash(tostring(pack_all()), buckets)`, as stable.
fn bucket_of(row: &Row, buckets: u64) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    serde_json::to_string(row).expect("a row serialises").hash(&mut h);
    h.finish() % buckets
}

#[derive(Default)]
struct Log {
    queries: Vec<String>,
    token_requests: usize,
    /// When the first runHuntingQuery request arrived.
    first_query_at: Option<std::time::Instant>,
}

struct Shared {
    dataset: Dataset,
    /// Each table's schema, inferred once from all its rows.
    schemas: BTreeMap<String, Vec<Value>>,
    credentials: Credentials,
    log: Mutex<Log>,
    /// How long each runHuntingQuery answer is held back (a slow service).
    delay: Mutex<std::time::Duration>,
    /// What the next runHuntingQuery requests get: a fault, or (`None`)
    /// their results.
    faults: Mutex<std::collections::VecDeque<Option<Fault>>>,
    /// At most this many rows per answer, cut silently (Graph's 100,000-row
    /// cap, scaled down).
    row_cap: Mutex<Option<usize>>,
    /// The `expires_in` of the tokens issued, in seconds.
    token_lifetime: Mutex<u64>,
    /// The app's certificate, for client assertions: its RSA public key
    /// (PKCS#1 DER) and its `x5t#S256`.
    certificate: Mutex<Option<(Vec<u8>, String)>>,
}

/// A failure the replay endpoint gives instead of results.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The HTTP status; 0 drops the connection without an answer (a reset).
    pub status: u16,
    pub body: String,
    /// A `Retry-After` header, in seconds.
    pub retry_after: Option<u64>,
}

impl Fault {
    /// 429 with `Retry-After` (Graph's generic throttling).
    pub fn throttled(seconds: u64) -> Fault {
        Fault {
            status: 429,
            body: json!({"error": {"code": "TooManyRequests", "message": "Please retry again later."}}).to_string(),
            retry_after: Some(seconds),
        }
    }
    /// 500 UnknownError with an empty message (a known Graph failure).
    pub fn unknown_error() -> Fault {
        Fault {
            status: 500,
            body: json!({"error": {"code": "UnknownError", "message": ""}}).to_string(),
            retry_after: None,
        }
    }
    /// The answer over the size cap (graph-api.md §1.5).
    pub fn size_limit() -> Fault {
        Fault {
            status: 400,
            body: json!({"error": {"code": "BadRequest", "message": "Result size limit exceeded. Query execution has exceeded the allowed result size."}}).to_string(),
            retry_after: None,
        }
    }
    /// A query that ran out of time on the service's side.
    pub fn query_timeout() -> Fault {
        Fault {
            status: 400,
            body: json!({"error": {"code": "BadRequest", "message": "Query exceeded the timeout period."}}).to_string(),
            retry_after: None,
        }
    }
    /// The connection closed with no answer at all.
    pub fn reset() -> Fault {
        Fault {
            status: 0,
            body: String::new(),
            retry_after: None,
        }
    }
    /// The bearer token expired before the collector expected it to.
    pub fn token_expired() -> Fault {
        Fault {
            status: 401,
            body: json!({"error": {"code": "InvalidAuthenticationToken", "message": "Lifetime validation failed, the token is expired."}})
                .to_string(),
            retry_after: None,
        }
    }
    /// The advanced-hunting CPU quota message, naming a wait.
    pub fn cpu_quota(wait: &str) -> Fault {
        Fault {
            status: 429,
            body: json!({"error": {"code": "TooManyRequests", "message": format!("You have exceeded processing resources allocated to this tenant. You can run queries again in {wait}.")}}).to_string(),
            retry_after: None,
        }
    }
}

/// A running replay endpoint. It stops when dropped.
pub struct ReplayServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReplayServer {
    /// Starts serving `dataset` on an ephemeral loopback port.
    pub fn start(dataset: Dataset, credentials: Credentials) -> Result<ReplayServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let schemas = dataset
            .tables
            .iter()
            .map(|(table, rows)| (table.clone(), schema_of(rows.iter().map(|(_, r)| r))))
            .collect();
        let shared = Arc::new(Shared {
            schemas,
            dataset,
            credentials,
            log: Mutex::new(Log::default()),
            delay: Mutex::new(std::time::Duration::ZERO),
            faults: Mutex::new(Default::default()),
            row_cap: Mutex::new(None),
            token_lifetime: Mutex::new(3599),
            certificate: Mutex::new(None),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = shared.clone();
        let thread = std::thread::Builder::new().name("replay-graph".into()).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                tokio::pin!(stopped);
                loop {
                    let stream = tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                    };
                    let shared = serving.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| handle(req, shared.clone()));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        })?;
        Ok(ReplayServer {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:port`, usable as both `login_endpoint` and `graph_endpoint`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every runHuntingQuery `Query` received so far.
    pub fn queries(&self) -> Vec<String> {
        self.shared.log.lock().unwrap_or_else(|p| p.into_inner()).queries.clone()
    }

    /// How many runHuntingQuery requests were received (cheaper than
    /// `queries().len()`).
    pub fn query_count(&self) -> usize {
        self.shared.log.lock().unwrap_or_else(|p| p.into_inner()).queries.len()
    }

    /// When the first runHuntingQuery request arrived, if one did.
    pub fn first_query_at(&self) -> Option<std::time::Instant> {
        self.shared.log.lock().unwrap_or_else(|p| p.into_inner()).first_query_at
    }

    /// Answers the next runHuntingQuery requests with these failures, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.schedule(faults.into_iter().map(Some));
    }

    /// Plans the answers to the next runHuntingQuery requests, in order: a
    /// fault, or `None` for the request's results.
    pub fn schedule(&self, plan: impl IntoIterator<Item = Option<Fault>>) {
        self.shared.faults.lock().unwrap_or_else(|p| p.into_inner()).extend(plan);
    }

    /// Cuts every answer to at most `cap` rows without saying so, as Graph
    /// does at 100,000.
    pub fn set_row_cap(&self, cap: Option<usize>) {
        *self.shared.row_cap.lock().unwrap_or_else(|p| p.into_inner()) = cap;
    }

    /// Accepts client assertions signed by the key whose public half is
    /// `public_key` (PKCS#1 DER), from the certificate with this `x5t#S256`,
    /// as an app registration with that certificate uploaded does.
    pub fn accept_certificate(&self, public_key: Vec<u8>, thumbprint: String) {
        *self.shared.certificate.lock().unwrap_or_else(|p| p.into_inner()) = Some((public_key, thumbprint));
    }

    /// Issues tokens that expire after `seconds`.
    pub fn set_token_lifetime(&self, seconds: u64) {
        *self.shared.token_lifetime.lock().unwrap_or_else(|p| p.into_inner()) = seconds;
    }

    /// Holds every runHuntingQuery answer back by `delay`.
    pub fn set_delay(&self, delay: std::time::Duration) {
        *self.shared.delay.lock().unwrap_or_else(|p| p.into_inner()) = delay;
    }

    /// How many token requests were received.
    pub fn token_requests(&self) -> usize {
        self.shared.log.lock().unwrap_or_else(|p| p.into_inner()).token_requests
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type Body = Full<Bytes>;

fn reply(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    reply(status, json!({"error": {"code": code, "message": message}}))
}

const TOKEN: &str = "replay-access-token";

/// A connection the replay endpoint drops on purpose.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

type HandlerError = Box<dyn std::error::Error + Send + Sync>;

async fn handle(req: Request<hyper::body::Incoming>, shared: Arc<Shared>) -> Result<Response<Body>, HandlerError> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts.uri.path().to_string();
    let c = &shared.credentials;
    if parts.method == hyper::Method::POST && path == format!("/{}/oauth2/v2.0/token", c.tenant_id) {
        shared.log.lock().unwrap_or_else(|p| p.into_inner()).token_requests += 1;
        let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        if field("grant_type") != "client_credentials" {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "unsupported_grant_type", "error_description": "AADSTS70003: grant type not supported", "error_codes": [70003]}),
            ));
        }
        if field("client_id") != c.client_id {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                json!({"error": "unauthorized_client", "error_description": "AADSTS700016: Application not found in the directory.", "error_codes": [700016]}),
            ));
        }
        if let Some(assertion) = form.get("client_assertion") {
            let certificate = shared.certificate.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Err((code, message)) = check_assertion(assertion, field("client_assertion_type"), c, certificate) {
                return Ok(reply(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "invalid_client", "error_description": format!("AADSTS{code}: {message}"), "error_codes": [code]}),
                ));
            }
        } else if field("client_secret") != c.client_secret {
            return Ok(reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.", "error_codes": [7000215]}),
            ));
        }
        return Ok(reply(
            StatusCode::OK,
            json!({"token_type": "Bearer", "expires_in": *shared.token_lifetime.lock().unwrap_or_else(|p| p.into_inner()), "access_token": TOKEN}),
        ));
    }
    if parts.method == hyper::Method::POST && (path == "/v1.0/security/runHuntingQuery" || path == "/beta/security/runHuntingQuery") {
        let auth = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        if auth != format!("Bearer {TOKEN}") {
            return Ok(graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token is empty or invalid.",
            ));
        }
        let request: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return Ok(graph_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("Invalid request body: {e}"),
                ));
            }
        };
        let query = request.get("Query").and_then(Value::as_str).unwrap_or("").to_string();
        {
            let mut log = shared.log.lock().unwrap_or_else(|p| p.into_inner());
            log.first_query_at.get_or_insert_with(std::time::Instant::now);
            log.queries.push(query.clone());
        }
        let fault = shared.faults.lock().unwrap_or_else(|p| p.into_inner()).pop_front().flatten();
        if let Some(fault) = fault {
            if fault.status == 0 {
                return Err(Box::new(Dropped));
            }
            let mut response = Response::builder().status(fault.status).header("content-type", "application/json");
            if let Some(s) = fault.retry_after {
                response = response.header("retry-after", s.to_string());
            }
            return Ok(response.body(Full::new(Bytes::from(fault.body))).expect("a valid response"));
        }
        let delay = *shared.delay.lock().unwrap_or_else(|p| p.into_inner());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let q = match parse_query(&query) {
            Ok(q) => q,
            Err(e) => return Ok(graph_error(StatusCode::BAD_REQUEST, "BadRequest", &e)),
        };
        // A union fails as a whole when one of its tables cannot be resolved.
        // Rows are copied only to add the union's column, and to rename the
        // columns its tables hold with different types, as Kusto does.
        let (schema, renamed) = union_schema(&shared.schemas, &q.tables);
        let mut in_range: Vec<(i64, std::borrow::Cow<Row>)> = Vec::new();
        for table in &q.tables {
            let Some(rows) = shared.dataset.tables.get(table) else {
                return Ok(graph_error(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("'where' operator: Failed to resolve table or column expression named '{table}'"),
                ));
            };
            for (ts, row) in rows.iter().filter(|(ts, _)| *ts >= q.start && *ts < q.end) {
                let mut row = std::borrow::Cow::Borrowed(row);
                if let Some(column) = &q.source_column {
                    row.to_mut().insert(column.clone(), Value::String(table.clone()));
                }
                for (name, new_name) in renamed.get(table).into_iter().flatten() {
                    if let Some(value) = row.to_mut().remove(name) {
                        row.to_mut().insert(new_name.clone(), value);
                    }
                }
                in_range.push((*ts, row));
            }
        }
        // Oldest first across the tables (a stable sort keeps each table's order).
        in_range.sort_by_key(|(ts, _)| *ts);
        let selected: Vec<std::borrow::Cow<Row>> = in_range
            .into_iter()
            .filter(|(_, row)| q.bucket.is_none_or(|(i, n)| bucket_of(row, n) == i))
            .take(q.take)
            .take(shared.row_cap.lock().unwrap_or_else(|p| p.into_inner()).unwrap_or(usize::MAX))
            .map(|(_, r)| r)
            .collect();
        return Ok(reply(
            StatusCode::OK,
            json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.security.huntingQueryResults",
                "schema": schema,
                "results": selected,
            }),
        ));
    }
    let collection = path
        .strip_prefix("/v1.0/security/")
        .or_else(|| path.strip_prefix("/beta/security/"));
    if let (&hyper::Method::GET, Some(collection)) = (&parts.method, collection) {
        let auth = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        if auth != format!("Bearer {TOKEN}") {
            return Ok(graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token is empty or invalid.",
            ));
        }
        let query: BTreeMap<String, String> = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .queries
            .push(format!("GET {}", parts.uri));
        let Some(objects) = shared.dataset.security.get(collection) else {
            return Ok(graph_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("Resource not found for the segment '{collection}'."),
            ));
        };
        let since = match query.get("$filter").map(|f| f.strip_prefix("lastUpdateDateTime ge ")) {
            None => None,
            Some(Some(t)) => match nanos(t.trim()) {
                Some(n) => Some(n),
                None => {
                    return Ok(graph_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        &format!("Invalid filter clause: {t}"),
                    ));
                }
            },
            Some(None) => {
                return Ok(graph_error(StatusCode::BAD_REQUEST, "BadRequest", "Invalid filter clause"));
            }
        };
        let matching: Vec<&Row> = objects
            .iter()
            .filter(|o| match since {
                None => true,
                Some(s) => o
                    .get("lastUpdateDateTime")
                    .and_then(Value::as_str)
                    .and_then(nanos)
                    .is_some_and(|t| t >= s),
            })
            .collect();
        let top: usize = query.get("$top").and_then(|t| t.parse().ok()).unwrap_or(50);
        let skip: usize = query.get("$skiptoken").and_then(|t| t.parse().ok()).unwrap_or(0);
        let page: Vec<&Row> = matching.iter().skip(skip).take(top).copied().collect();
        let mut body =
            json!({"@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#security/{collection}"), "value": page});
        if skip + top < matching.len() {
            let mut next: Vec<(String, String)> = query.into_iter().filter(|(k, _)| k != "$skiptoken").collect();
            next.push(("$skiptoken".into(), (skip + top).to_string()));
            let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(next).finish();
            let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
            body["@odata.nextLink"] = format!("http://{host}{path}?{encoded}").into();
        }
        return Ok(reply(StatusCode::OK, body));
    }
    Ok(graph_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("no route for {} {path}", parts.method),
    ))
}

/// Checks a client assertion as the identity platform does (RFC 7523 and
/// Entra ID's certificate credentials): its type, the certificate named by
/// `x5t#S256`, the PS256 or RS256 signature, and the claims. The error is
/// an AADSTS code and its message.
fn check_assertion(jwt: &str, kind: &str, credentials: &Credentials, certificate: Option<(Vec<u8>, String)>) -> Result<(), (u64, String)> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let invalid = |what: &str| {
        (
            700027u64,
            format!("Client assertion contains an invalid signature. [Reason - {what}]"),
        )
    };
    if kind != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return Err((50027, "Invalid JWT token: unsupported client_assertion_type.".into()));
    }
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err((50027, "Invalid JWT token. Token format not valid.".into()));
    };
    let decode = |part: &str| -> Result<Value, (u64, String)> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| (50027u64, "Invalid JWT token: not base64url.".to_string()))?;
        serde_json::from_slice(&bytes).map_err(|_| (50027u64, "Invalid JWT token: not JSON.".to_string()))
    };
    let (header_json, claims_json) = (decode(header)?, decode(claims)?);
    let Some((public_key, thumbprint)) = certificate else {
        return Err(invalid("The key was not found."));
    };
    if header_json["x5t#S256"].as_str() != Some(thumbprint.as_str()) {
        return Err(invalid("The key was not found."));
    }
    let algorithm: &dyn ring::signature::VerificationAlgorithm = match header_json["alg"].as_str() {
        Some("PS256") => &ring::signature::RSA_PSS_2048_8192_SHA256,
        Some("RS256") => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        _ => return Err(invalid("The algorithm is not supported.")),
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| invalid("The signature is not base64url."))?;
    ring::signature::UnparsedPublicKey::new(algorithm, public_key)
        .verify(format!("{header}.{claims}").as_bytes(), &signature)
        .map_err(|_| invalid("The signature does not match."))?;
    let now = chrono::Utc::now().timestamp();
    let audience = format!("/{}/oauth2/v2.0/token", credentials.tenant_id);
    if !claims_json["aud"].as_str().is_some_and(|a| a.ends_with(&audience)) {
        return Err((700023, "Client assertion audience claim does not match Realm issuer.".into()));
    }
    if claims_json["iss"].as_str() != Some(credentials.client_id.as_str()) || claims_json["sub"] != claims_json["iss"] {
        return Err((
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.".into(),
        ));
    }
    let (nbf, exp) = (claims_json["nbf"].as_i64().unwrap_or(0), claims_json["exp"].as_i64().unwrap_or(0));
    if nbf > now + 300 || exp < now {
        return Err((700024, "Client assertion is not within its valid time range.".into()));
    }
    if !claims_json["jti"].is_string() {
        return Err((50027, "Invalid JWT token: no jti.".into()));
    }
    Ok(())
}

/// The schema of the union of `tables` (of one table: its own), and for
/// each table the columns its rows carry under another name. Kusto's outer
/// union gives a column that its tables hold with different types one
/// column per type, named `<name>_<type>` (`ReportId_long`,
/// `ReportId_string`).
#[allow(clippy::type_complexity)]
fn union_schema(schemas: &BTreeMap<String, Vec<Value>>, tables: &[String]) -> (Vec<Value>, BTreeMap<String, Vec<(String, String)>>) {
    let of = |t: &String| schemas.get(t).cloned().unwrap_or_default();
    if tables.len() < 2 {
        return (tables.first().map(of).unwrap_or_default(), BTreeMap::new());
    }
    let column = |c: &Value| {
        (
            c["name"].as_str().unwrap_or_default().to_string(),
            c["type"].as_str().unwrap_or_default().to_string(),
        )
    };
    let mut types: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for table in tables {
        for (name, kind) in of(table).iter().map(column) {
            let kinds = types.entry(name).or_default();
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    let kusto = |graph: &str| match graph {
        "Int64" => "long",
        "Int32" => "int",
        "Double" => "real",
        "Boolean" => "bool",
        "DateTime" => "datetime",
        "Dynamic" => "dynamic",
        _ => "string",
    };
    let mut schema = Vec::new();
    let mut renamed: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for table in tables {
        for (name, kind) in of(table).iter().map(column) {
            let clash = types[&name].len() > 1;
            let out = if clash { format!("{name}_{}", kusto(&kind)) } else { name.clone() };
            if clash {
                renamed.entry(table.clone()).or_default().push((name, out.clone()));
            }
            if seen.insert(out.clone()) {
                schema.push(json!({"name": out, "type": kind}));
            }
        }
    }
    (schema, renamed)
}

/// Columns and Graph type names, inferred from the rows.
fn schema_of<'a>(rows: impl Iterator<Item = &'a Row>) -> Vec<Value> {
    let mut columns: BTreeMap<&str, &str> = BTreeMap::new();
    for row in rows {
        for (name, value) in row {
            let kind = match value {
                Value::Number(_) => "Int64",
                Value::Bool(_) => "Boolean",
                Value::Object(_) | Value::Array(_) => "Dynamic",
                Value::String(s) if nanos(s).is_some() => "DateTime",
                _ => continue,
            };
            columns.entry(name).or_insert(kind);
        }
        for name in row.keys() {
            columns.entry(name).or_insert("String");
        }
    }
    columns
        .into_iter()
        .map(|(name, kind)| json!({"name": name, "type": kind}))
        .collect()
}

/// What `defender-ocsf demo` runs: a replay of recent DeviceProcessEvents
/// rows, and the source configuration that points the collector at it.
pub struct Demo {
    pub server: ReplayServer,
    /// The `source` settings of the collector, as in a configuration file.
    pub source: Map<String, Value>,
    /// What the demo replays, for its log line.
    pub what: &'static str,
}

impl Demo {
    /// Starts the replay with the demo rows moved to end ten minutes
    /// before `now`, and collection from an hour before.
    pub fn start(now: chrono::DateTime<chrono::Utc>) -> Result<Demo> {
        let credentials = Credentials {
            tenant_id: "00000000-0000-4000-8000-00000000d3e0".into(),
            client_id: "11111111-1111-4111-8111-111111111111".into(),
            client_secret: "demo-secret-not-a-real-one".into(),
        };
        let server = ReplayServer::start(Dataset::demo(now, chrono::Duration::minutes(10)), credentials.clone())?;
        let source = json!({
            "tenant_id": credentials.tenant_id,
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "login_endpoint": server.url(),
            "graph_endpoint": server.url(),
            "tables": ["DeviceProcessEvents"],
            "start_time": (now - chrono::Duration::hours(1)).to_rfc3339(),
            "delay": "1m",
        });
        Ok(Demo {
            server,
            source: source.as_object().cloned().unwrap_or_default(),
            what: "DeviceProcessEvents",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_collectors_query() {
        let q = parse_query("DeviceProcessEvents | where Timestamp >= datetime(2025-01-01T00:00:00.0000000Z) and Timestamp < datetime(2025-01-01T00:00:00.0000001Z) | order by Timestamp asc | take 5").unwrap();
        assert_eq!(q.tables, ["DeviceProcessEvents"]);
        assert_eq!(q.end - q.start, 100);
        assert_eq!(q.take, 5);
        let q = parse_query("union withsource=SourceTable UrlClickEvents, IdentityDirectoryEvents | take 1").unwrap();
        assert_eq!(q.tables, ["UrlClickEvents", "IdentityDirectoryEvents"]);
        assert_eq!(q.source_column.as_deref(), Some("SourceTable"));
        assert_eq!(parse_query("DeviceProcessEvents | take 0").unwrap().take, 0);
        assert!(parse_query("DeviceProcessEvents | take five").is_err());
        assert!(parse_query("DeviceProcessEvents | where x | take 5").is_err());
        assert!(parse_query("DeviceProcessEvents | order by Timestamp asc").is_err(), "no take");
        let q = parse_query(
            "DeviceEvents | where Timestamp == datetime(2025-01-01T00:00:00.0000001Z) | where hash(tostring(pack_all()), 4) == 3 | take 9",
        )
        .unwrap();
        assert_eq!((q.end - q.start, q.bucket, q.take), (100, Some((3, 4)), 9));
        // The buckets of one count share out every row exactly once.
        let rows: Vec<Row> = (0..50).map(|i| json!({"ReportId": i}).as_object().unwrap().clone()).collect();
        let mut counts = [0; 4];
        for row in &rows {
            counts[bucket_of(row, 4) as usize] += 1;
            assert_eq!(
                bucket_of(row, 4),
                bucket_of(row, 8) % 4,
                "a bucket splits into two of twice the count"
            );
        }
        assert_eq!(counts.iter().sum::<i32>(), 50);
        assert!(counts.iter().all(|c| *c > 0), "{counts:?}");
    }

    #[test]
    fn demo_rows_are_rebased_to_now() {
        let now = chrono::Utc::now();
        let d = Dataset::demo(now, chrono::Duration::minutes(10));
        let newest = d
            .rows("DeviceProcessEvents")
            .filter_map(|r| nanos(r["Timestamp"].as_str()?))
            .max()
            .unwrap();
        assert_eq!(
            newest,
            (now - chrono::Duration::minutes(10)).timestamp_nanos_opt().unwrap() / 100 * 100
        );
    }
}
